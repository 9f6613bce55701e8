"""Two fits in sequence: what the first predicts is the second's input (scale -> task loss -> accuracy)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayescale.results.prediction import KINDS


class Chain:
    """Predict through two fits: the first's target at new inputs is the input of the second.

    The OLMo ladder's two steps (Bhagia et al. 2024): a law of the task's loss in model size
    and tokens, then accuracy against that loss. Each posterior draw of the first fit's
    prediction (a new run's task loss, with its extrapolation risk and noise) goes through
    the same-numbered draw of the second fit, so the accuracy's band holds the uncertainty of
    both steps, where a plug-in of the first step's median would hold only the second's.

    Beyond the data each step adds its extrapolation risk (:mod:`bayescale.model.discrepancy`).
    The second step's input is a loss, whose range says little about how far a prediction
    reaches (a model ten times larger has a loss only a few percent lower), so its risk grows
    with the decades by which the first step's inputs (model size, tokens) lie beyond the
    first fit's runs: fit both steps on the same runs, and the second law is trusted as far as
    the scales it was learned at.

    Parameters
    ----------
    first : ScalingFit
        Predicts the intermediate quantity (e.g. task bits per byte from ``N`` and ``D``).
    second : ScalingFit
        Takes it as its law's input (e.g. accuracy against bits per byte).
    via : str, optional
        The second law's input that the first fit's target feeds; by default its only input.
    kind : {"observation", "curve", "mean"}
        Which of the first fit's draws feed the second: a new run's value (default: the
        loss the model will have, noise included), the expected value, or the law alone.

    Examples
    --------
    >>> chain = bs.Chain(task_loss_fit, accuracy_fit)                           # doctest: +SKIP
    >>> chain.predict(pd.DataFrame({"N": [1.3e10], "D": [5e12]})).interval(0.9)  # doctest: +SKIP
    """

    def __init__(self, first, second, via: str | None = None, kind: str = "observation") -> None:
        inputs = second.model.law.inputs
        if via is None:
            if len(inputs) != 1:
                raise TypeError(f"the second fit's law has inputs {list(inputs)}: say which the first feeds with via=")
            via = inputs[0]
        if via not in inputs:
            raise ValueError(f"via={via!r} is not an input of the second fit's law, whose inputs are {list(inputs)}")
        if len(inputs) != 1:
            raise ValueError(f"the second fit's law must have the one input the first feeds; it has {list(inputs)}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if first.model.counts:
            raise ValueError("the first fit's target is a count (Binomial); chain a fit of a loss or a rate instead")
        self.first, self.second, self.via, self.kind = first, second, via, kind

    def predict(self, data: pd.DataFrame | None = None, /, *, seed: int | None = None, risk: bool = True, **inputs):
        """The second fit's target at the first fit's inputs, both fits' uncertainty carried.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Rows of the first fit's inputs (and the second's group column, if it has groups).
        seed : int, optional
            Seed of both steps' noise and risk draws; defaults to each fit's own seed.
        risk : bool
            Include each step's extrapolation risk (default).
        **inputs
            Alternatively the first fit's inputs as keywords, e.g. ``N=1.3e10, D=5e12``.

        Returns
        -------
        Prediction
            The second step's draws; its table has the first step's inputs and the median of
            the intermediate quantity (a column named ``via``).
        """
        group = self.second.model.group
        # the second fit's group keyword is not an input of the first (unless the first has that group too)
        first_inputs = {k: v for k, v in inputs.items() if k != group or k == self.first.model.group}
        first = self.first.predict(data, seed=seed, risk=risk, **first_inputs)
        middle = first.draws(self.kind)
        table = first.inputs.copy()
        table[self.via] = first.interval(0.5, kind=self.kind)["median"].to_numpy()
        groups = None
        if group is not None:
            if group not in table.columns:
                if data is not None and group in data.columns:
                    labels = data[group].to_numpy()
                elif group in inputs:
                    labels = np.broadcast_to(np.asarray(inputs[group], dtype=object), (len(table),))
                else:
                    raise TypeError(f"the second fit has groups: give each row's {group!r} as a column or keyword")
                table.insert(0, group, labels)
            groups = table[group].to_numpy()
        # the second law's input is a loss, not a scale: it is trusted as far as the scales it was
        # learned at, and beyond them drifts per decade of the first step's inputs
        distance = self.first.extrapolation(data, **first_inputs) if risk else None
        return self.second.predict_from_draws(
            {self.via: middle}, table, groups=groups, seed=seed, risk=risk, distance=distance
        )

    def __repr__(self) -> str:
        return f"Chain({self.first.model.target} -> {self.via} -> {self.second.model.target})"
