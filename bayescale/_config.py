"""Process-wide JAX setting bayescale needs: float64, set before JAX creates its first array.

bayescale leaves the number of CPU devices alone: on CPU, chains already run in one
thread per core (``chain_method="threads"``, see :func:`bayescale.inference.default_chain_method`).
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)
