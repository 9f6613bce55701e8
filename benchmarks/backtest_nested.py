"""Two grouping levels on real recipes: Porian et al.'s eight recipes, nested in their dataset or in their setting.

Porian et al.'s IsoFLOP sweeps train one recipe setting (hyperparameters, warmup, decay: four
of them) on two datasets (RefinedWeb and OpenWebText2): eight recipes. Each recipe in turn
keeps its 1, 2 or 3 smallest model sizes (or all but its largest) and predicts its largest,
with every other recipe in the fit, as in ``backtest_families.py``. Three models of the same
Chinchilla law, all parameters pooled:

- ``one level``: the recipes as one population (``group="family"``);
- ``nested in dataset``: ``within="dataset"``, the recipes of one dataset about its location;
- ``nested in setting``: ``within="setting"``, each setting's two datasets about its location.

Reported per model and runs kept: the mean absolute relative error (ARE) of the held-out
runs' median, the 90% intervals' coverage and interval score (each recipe's extrapolation risk
counted from every recipe's runs, ``ScalingFit.reach``, and from its own runs, the rule before),
the fits without a sampler warning, and the median seconds per fit.

    BAYESCALE_DATA_DIR=../shared/datasets python benchmarks/backtest_nested.py --out benchmarks/results
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from backtest_families import fit_and_score, fit_arguments, holdouts, porian_data

import bayescale as bs

MODELS = {
    "one level": dict(group="family"),
    "nested in dataset": dict(group="family", within="dataset"),
    "nested in setting": dict(group="family", within="setting"),
}


def recipes() -> pd.DataFrame:
    """Porian's recipes (``backtest_families.porian_data``) with their dataset and setting as columns."""
    df = porian_data()
    parts = df["family"].str.split("|", n=1, expand=True)
    return df.assign(dataset=parts[0], setting=parts[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    fit_arguments(parser)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    df = recipes()
    rows = []
    for family in sorted(df["family"].unique()):
        for kept, train, held in holdouts(df, family):
            for name, how in MODELS.items():
                model = bs.ScalingModel(bs.laws.Chinchilla(), target="target", **how)
                rows += fit_and_score(model, train, held, args.draws, args.seed, {"kept": kept, "model": name})
    results = pd.DataFrame(rows)
    results.to_csv(args.out / "backtest_nested.csv", index=False)

    def per_run(share):  # a share per recipe, weighted by its held-out runs
        return np.average(share, weights=results.loc[share.index, "n_held"])

    summary = results.groupby(["kept", "model"], sort=False).agg(
        mean_are=("are", "mean"),
        coverage90=("coverage90", per_run),
        coverage90_own_reach=("coverage90_own_reach", per_run),
        interval_score90=("interval_score90", "mean"),
        interval_score90_own_reach=("interval_score90_own_reach", "mean"),
        healthy=("healthy", "mean"),
        seconds=("seconds", "median"),
    )
    print(summary.round(3).to_string())


if __name__ == "__main__":
    main()
