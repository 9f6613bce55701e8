"""How much literature priors help with few runs: fit a family's 3 smallest runs, predict its largest.

For every family of the shared datasets whose token counts vary, the three smallest runs are
fitted alone (no other family) with the Chinchilla law under its default priors and under
``priors="literature"``, and with the over-training law (one exponent) under literature
priors; each fit predicts the family's largest run. Reported: absolute relative error (ARE)
of the posterior median and whether the 90% predictive interval covers the held-out loss.

- ``olmo``: the OLMo ladder's final checkpoints, C4 loss; a family is a token multiplier
  (0.5-10 x Chinchilla's), its runs the sizes 190M-3B: fit 190M, 370M, 760M, predict 3B.
- ``porian``: Porian et al.'s IsoFLOP sweeps, a family per recipe (15); the runs are the
  best run of every budget (a ladder of compute-optimal runs): fit the 3 smallest budgets,
  predict the largest (1.3e19 or 1.6e18 FLOPs, 2-3 decades away).
- ``colpret``: ColPret's final checkpoints, families with at least 4 sizes and varying D.

Chinchilla's own runs are left out: Hoffmann et al.'s and Besiroglu et al.'s fits, the
literature priors' sources, were made on them.

    BAYESCALE_DATA_DIR=../shared/datasets python benchmarks/backtest_literature.py
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from backtest_families import colpret_data

import bayescale as bs

# The default arm gives the exponents' default priors explicitly: under priors it chose itself the package
# refuses 3 rows for 6 parameters. (Not the levels': a level's default is relative to the target's scale,
# a prior given is absolute.)
EXPONENT_DEFAULTS = {p.name: p.prior for p in bs.laws.Chinchilla().parameters if not p.in_target_units}
ARMS = {
    "chinchilla, default priors": dict(law="chinchilla", priors=EXPONENT_DEFAULTS),
    "chinchilla, literature priors": dict(law="chinchilla", priors="literature"),
    "overtraining, literature priors": dict(law="overtraining", priors="literature"),
}


def olmo() -> pd.DataFrame:
    df = bs.datasets.load("olmo_ladder")
    ladder = df[(df["kind"] == "ladder") & ~df["rerun"]]
    final = ladder.loc[ladder.groupby("run")["step"].idxmax()]
    return final.assign(family=final["xC"].map(lambda x: f"{x:g}xC"), target=final["loss_c4_en"])[
        ["family", "N", "D", "target"]
    ]


def porian() -> pd.DataFrame:
    df = bs.datasets.load("porian_isoflop")
    budget = np.round(np.log2(df["C"] / 1.25e16))
    best = df.assign(budget=budget).sort_values("loss").groupby(["recipe", "budget"]).head(1)
    return best.rename(columns={"recipe": "family", "loss": "target"})[["family", "N", "D", "target"]]


def colpret() -> pd.DataFrame:
    df = colpret_data()
    sizes = df.groupby("family")["N"].nunique()
    varying = df.groupby("family")["D"].nunique() > 1
    keep = sizes[(sizes >= 4) & varying].index
    return df[df["family"].isin(keep)][["family", "N", "D", "target"]]


def main() -> None:
    rows = []
    for dataset, load in (("olmo", olmo), ("porian", porian), ("colpret", colpret)):
        df = load()
        for family, runs in df.groupby("family"):
            runs = runs.assign(C=6 * runs["N"] * runs["D"]).sort_values("C")
            if len(runs) < 4:
                continue
            train, held = runs.iloc[:3], runs.iloc[[-1]]
            for arm, how in ARMS.items():
                model = bs.ScalingModel(how["law"], target="target", priors=how.get("priors"))
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", bs.DataWarning)  # 3 rows for 5-6 parameters: the point
                    warnings.simplefilter("ignore", bs.SamplerWarning)
                    fit = model.fit(train, seed=0)
                table = fit.predict(held[["N", "D"]]).interval(0.9)
                actual = float(held["target"].iloc[0])
                rows.append(
                    {
                        "dataset": dataset,
                        "family": family,
                        "arm": arm,
                        "are": abs(float(table["median"].iloc[0]) - actual) / actual,
                        "covered": bool(table["lower"].iloc[0] <= actual <= table["upper"].iloc[0]),
                        "width": float((table["upper"] - table["lower"]).iloc[0]) / actual,
                        "decades": float(np.log10(held["C"].iloc[0] / train["C"].max())),
                        "healthy": fit.healthy,
                        "seconds": time.perf_counter() - start,
                    }
                )
                print(rows[-1], flush=True)
    out = pd.DataFrame(rows)
    out.to_csv("results/backtest_literature.csv", index=False)
    columns = dict(
        families=("family", "nunique"),
        mean_are=("are", "mean"),
        median_are=("are", "median"),
        coverage=("covered", "mean"),
        median_width=("width", "median"),
        healthy=("healthy", "mean"),
    )
    summary = out.groupby(["dataset", "arm"]).agg(**columns)
    overall = out.groupby("arm").agg(**columns)
    print(summary.round(3).to_string())
    print(overall.round(3).to_string())


if __name__ == "__main__":
    main()
