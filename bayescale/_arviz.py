"""ArviZ, imported without its banner about the upcoming 1.x refactor (we pin ``arviz<1``)."""

import warnings

with warnings.catch_warnings():
    # The banner starts with a newline, and filters match at the start of the message.
    warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing a major refactor", category=FutureWarning)
    import arviz as az

__all__ = ["az"]
