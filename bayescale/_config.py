"""Process-wide JAX setting bayescale needs: float64, set before JAX creates its first array.

bayescale leaves the number of CPU devices alone. Chains run vectorised on one device
by default; to spread them over CPU cores call ``numpyro.set_host_device_count(n)``
before JAX starts and fit with ``chain_method="parallel"`` (see the README: on 2 cores it
halves the wall time of small fits, but we have seen it hang on large dense models).
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)
