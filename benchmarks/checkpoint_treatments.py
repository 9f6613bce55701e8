"""Checkpoint treatments across model families: does fitting intermediate checkpoints overstate certainty?

The backtest of ``backtest_families.py`` (hierarchical Chinchilla law, each family's largest
model held out and its final loss predicted), with the training rows taken three ways:

- final:       the last checkpoint of every run (the backtest itself; bayescale's default);
- 5 per run:   five checkpoints per run past the first 10% of its tokens, the last among them
               (:func:`bayescale.checkpoints.thin`);
- 25 per run:  the same with 25, standing in for "every checkpoint" (Choshen et al. fit all
               checkpoints past 10% of training; 25 keeps the largest families' 9,000-44,000
               rows affordable and is already far past the point where checkpoints add
               independent information).

The held-out targets are always final losses. Reported per treatment: mean ARE, the 90%
coverage over held-out points and the median width of the 90% intervals relative to the
median. If intermediate checkpoints were treated as independent evidence about the final
losses, the intervals would shrink and coverage fall.

    BAYESCALE_DATA_DIR=../shared/datasets python benchmarks/checkpoint_treatments.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from backtest_families import colpret_data, fit_arguments, model_for

import bayescale as bs
from bayescale import checkpoints

TREATMENTS = {"final": None, "5 per run": 5, "25 per run": 25}


def checkpoint_rows(keep: int) -> pd.DataFrame:
    """Every family's checkpoints past 10% of each run's tokens, thinned to ``keep`` per run.

    The same families, metrics and filters as :func:`backtest_families.colpret_data`:
    the metric of each run's final checkpoint in ColPret's final table, single-epoch runs
    for the data-constrained families.
    """
    finals = bs.datasets.load("colpret_final")[["model", "metric"]]
    df = bs.datasets.load("colpret").merge(finals, on=["model", "metric"])  # each run's primary metric
    df = df.assign(target=df["loss_nats"].fillna(df["value"]))
    blations = df["family"].str.startswith("GPT2-datablations")
    df = df[~blations | (df["epochs"].fillna(1) <= 1)].copy()
    split = df["family"] == "GPT2-datablations"
    df.loc[split, "family"] = "GPT2-datablations-" + df.loc[split, "data"].astype(str)
    df = df[df["D"] >= 0.1 * df.groupby("model")["D"].transform("max")]
    df = checkpoints.thin(df, run="model", step="D", keep=keep)
    return df.reset_index(drop=True)[["family", "model", "N", "D", "target"]]


def run(finals: pd.DataFrame, sources: dict[str, pd.DataFrame], draws: int, seed: int) -> pd.DataFrame:
    sizes = finals.groupby("family")["N"].nunique()
    rows = []
    for family in sorted(sizes[sizes >= 3].index):
        own = finals[finals["family"] == family]
        largest = own["N"].max()
        held = own[own["N"] == largest]
        for treatment, source in sources.items():
            train = source[(source["family"] != family) | (source["N"] < largest)]
            start = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", bs.SamplerWarning)
                fit = model_for("hierarchical").fit(train, seed=seed, warmup=draws, draws=draws)
            table = fit.predict(held[["N", "D", "family"]]).interval(0.9)
            actual = held["target"].to_numpy()
            median, lower, upper = (table[c].to_numpy() for c in ("median", "lower", "upper"))
            rows.append(
                {
                    "family": family,
                    "treatment": treatment,
                    "n_train_rows": len(train),
                    "n_held": len(held),
                    "are": float(np.mean(np.abs(median - actual) / actual)),
                    "covered": int(np.sum((lower <= actual) & (actual <= upper))),
                    "relative_width90": float(np.median((upper - lower) / median)),
                    "seconds": time.perf_counter() - start,
                    "warnings": len(caught),
                    "divergences": fit.health.divergences,
                }
            )
            print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Per treatment: mean ARE over families, coverage over held-out points, median relative width."""
    grouped = results.groupby("treatment", sort=False)
    return pd.DataFrame(
        {
            "mean ARE": grouped["are"].mean(),
            "coverage90": grouped["covered"].sum() / grouped["n_held"].sum(),
            "median width90 / median": grouped["relative_width90"].median(),
            "held-out points": grouped["n_held"].sum(),
            "train rows (median)": grouped["n_train_rows"].median(),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    fit_arguments(parser)
    args = parser.parse_args()
    finals = colpret_data()
    sources = {name: finals if keep is None else checkpoint_rows(keep) for name, keep in TREATMENTS.items()}
    results = run(finals, sources, args.draws, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    results.to_csv(args.out / "checkpoint_treatments.csv", index=False)
    print(summarise(results).round(3).to_string())


if __name__ == "__main__":
    main()
