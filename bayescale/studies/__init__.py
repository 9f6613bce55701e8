"""Studies that run many fits: law comparison (:mod:`~.laws`), calibration on simulated data
(:mod:`~.calibration`)."""
