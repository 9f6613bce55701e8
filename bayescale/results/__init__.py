"""What a fit gives: :class:`~bayescale.results.fit.ScalingFit` and its views.

:mod:`~.prediction` (draws at new inputs), :mod:`~.budgets` (compute-optimal allocation),
:mod:`~.comparison` (recipes), :mod:`~.chain` (one fit's prediction as another's input),
:mod:`~.fits` (many fits), :mod:`~.netcdf` (the saved layout).
"""
