"""ArviZ, imported without its banner about the upcoming 1.x refactor (we pin ``arviz<1``)."""

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="ArviZ is undergoing a major refactor", category=FutureWarning)
    import arviz as az

__all__ = ["az"]
