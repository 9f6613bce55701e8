"""Process-wide settings bayescale needs before anything else (float64 in JAX, a quiet ArviZ), and its version.

JAX must be told before it creates its first array. ArviZ 0.x announces its 1.x refactor
once a day at its first import; we pin ``arviz<1``, so the banner is noise for our users.
"""

from __future__ import annotations

import importlib.metadata
import warnings

import jax

jax.config.update("jax_enable_x64", True)

with warnings.catch_warnings():
    # The banner starts with a newline, and filters match at the start of the message.
    warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing a major refactor", category=FutureWarning)
    import arviz  # noqa: F401

with warnings.catch_warnings():
    # tqdm.auto (imported by NumPyro and for our progress bars) asks for ipywidgets in a notebook without
    # them, once, at its import; its text bars work without them
    warnings.filterwarnings("ignore", message="IProgress not found")
    import tqdm.auto  # noqa: F401

VERSION = importlib.metadata.version("bayescale")  # pyproject.toml's, as installed
