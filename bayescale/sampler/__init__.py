"""How it is sampled: NUTS on a NumPyro model function, compiled once per structure and data shape.

The sampler knows a model function, its argument pytree and its latent sites, nothing of
laws or groups: :mod:`~bayescale.sampler.runner` (one fit, many fits), :mod:`~.options`
(NUTS settings), :mod:`~.laplace` (starts at the mode), :mod:`~.adaptation` (warmup of a
dense mass matrix), :mod:`~.diagnostics` (the health rule), :mod:`~.compile`,
:mod:`~.threads`, :mod:`~.cluster` (Dask workers) and :mod:`~.progress` (how programs are compiled
and run).
"""
