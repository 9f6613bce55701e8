"""What is sampled: the NumPyro model of a specification and its numeric arguments.

:mod:`~bayescale.model.args` (the arguments pytree, padding, sampling scales),
:mod:`~.build` (the model function, the only ``numpyro.sample`` calls), :mod:`~.arguments`
(data -> arguments: reference scales, priors), :mod:`~.pilot` and :mod:`~.pooled` (how pooled
groups are parameterised).
"""
