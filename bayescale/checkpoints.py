"""Choosing which intermediate checkpoints of a training run to fit.

Scaling datasets log many checkpoints per run. They are not independent observations:
consecutive checkpoints share the run's seed, data order and learning-rate schedule, and
a checkpoint before the end of a decaying schedule is not the loss a shorter run would
reach. :func:`final` (one observation per run) is the conservative default we use in the
notebooks. :func:`after` reproduces Choshen et al.'s cut of early checkpoints and
:func:`thin` keeps a few per run, the last always among them.

What it changes, measured on the OLMo ladder (``benchmarks/checkpoint_coverage.py``:
C4 loss of 16 runs of 190M-1B models, predicting five 3B runs and OLMo-2 7B-4T and
13B-5T): mean absolute relative error 1.5% with final checkpoints only (13B-5T: -3.3%,
the OLMo paper's own fit: -3.8%), 1.3% with five per run, 0.6% with every checkpoint past
10% of its run; the 90% intervals covered 6, 7 and 7 of the 7 targets. More checkpoints
did not make the intervals overconfident there, because the Student-t residual scale
grows to absorb how intermediate checkpoints differ from final losses; but 7 targets
from one ladder are thin evidence, and all three posteriors were weakly identified (16
runs from four model sizes leave E, A and alpha loosely tied: R-hat up to 1.2 with the
default 1,000 draws), so treat these numbers as a first look, not a verdict.

Across model families the verdict is clearer (``benchmarks/checkpoint_treatments.py``: the
hierarchical backtest of 8 ColPret families, each family's largest model held out, trained
on final checkpoints, or on 5 or 25 per run past 10% of the run): the medians are as good
either way (mean ARE 3.4%, 3.5%, 3.6%), but the 90% intervals shrink to a half and a
quarter (median width 16%, 8%, 5% of the prediction) and cover 8, 7 and 5 of the 10
held-out final losses. Consecutive checkpoints share their run's seed, data and schedule;
fitted as independent rows they are the same evidence counted many times.

Examples
--------
>>> import pandas as pd
>>> from bayescale import checkpoints
>>> runs = pd.DataFrame({"run": ["a", "a", "a", "b", "b"], "step": [1, 2, 3, 1, 2], "loss": [5, 4, 3.5, 6, 5]})
>>> checkpoints.final(runs, run="run", step="step")["loss"].tolist()
[3.5, 5.0]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayescale.data import DataError


def _check(frame: pd.DataFrame, *columns: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"columns {missing} are not in the data; available columns: {list(map(str, frame.columns))}")


def final(frame: pd.DataFrame, run: str, step: str) -> pd.DataFrame:
    """The last checkpoint (largest ``step``) of every run, in the order runs first appear.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per checkpoint.
    run : str
        Column identifying the run (model name, run id).
    step : str
        Column ordering checkpoints within a run (step, tokens seen).
    """
    _check(frame, run, step)
    last = frame.groupby(run, sort=False)[step].idxmax()
    return frame.loc[last.to_numpy()]


def after(frame: pd.DataFrame, column: str, minimum: float) -> pd.DataFrame:
    """Checkpoints with ``column >= minimum``, e.g. ``after(df, "D", 10e9)`` drops the first 10B tokens."""
    _check(frame, column)
    return frame[frame[column].to_numpy() >= minimum]


def thin(frame: pd.DataFrame, run: str, step: str, keep: int) -> pd.DataFrame:
    """At most ``keep`` checkpoints per run, spread evenly in log(step), the last one always kept."""
    _check(frame, run, step)
    if isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or keep < 1:
        raise ValueError(f"keep must be an integer >= 1, got {keep!r}")
    chosen = []
    for _, rows in frame.groupby(run, sort=False):
        rows = rows.sort_values(step)
        if len(rows) <= keep:
            chosen.append(rows)
            continue
        positions = np.log(rows[step].to_numpy(dtype=float).clip(min=1e-300))
        targets = np.linspace(positions[0], positions[-1], keep)
        picks = sorted({int(np.argmin(np.abs(positions - t))) for t in targets} | {len(rows) - 1})
        chosen.append(rows.iloc[picks])
    return pd.concat(chosen)
