"""Benchmark: with three groups, does the hierarchy extrapolate better than fitting each alone, and cover?

The shape of an over-training study (Gadre et al. 2024): three training sets as the groups, models
of 11M-411M parameters at 20, 80 and 320 tokens per parameter (``bench_hierarchy_health.py``'s
``overtraining`` design), simulated from Gadre et al.'s law with each set's parameters scattered
around Chinchilla's (exponents by 15%, E by 10%, prefactors by 30%; 1% log-normal noise). Each
set predicts new runs at 1.4B and 6.9B parameters (20 tokens per parameter) and 1.4B at 80,
0.5-1.2 decades beyond its largest run. Chinchilla's law is fitted (it contains the truth):

- ``hierarchical``: the package default, every parameter pooled across the sets;
- ``independent``: every parameter ``independent`` (each set under the law's priors; the sets
  share the noise scale).

Reported per arm, over all seeds, sets and targets: the mean absolute relative error of the
median, and the share of held-out values inside the 90% interval of a new run, with the
extrapolation risk (the default) and without it (the law and the noise only: what a correct law
should cover at the nominal rate).

With ``--real``, the same two arms on real curves instead: the OLMo ladder's six evaluation sets
(``backtest_families.py``'s ``olmo`` data: the same runs scored on each set) taken three at a time,
all 20 triples, each fitted on the runs below 1B parameters (190M-760M x 0.5-10 x Chinchilla's tokens)
and predicting its 1B and 3B runs (0.1-0.6 decades beyond), default fit settings. ``--cut 4e8`` fits only
the 190M and 370M runs and predicts the 760M, 1B and 3B ones (0.3-0.9 decades beyond): two model sizes per
set, as a study with few sizes has.

    python benchmarks/coverage_few_groups.py [--seeds 20]
    BAYESCALE_DATA_DIR=../shared/datasets python benchmarks/coverage_few_groups.py --real [--cut 4e8]
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayescale as bs

CHINCHILLA = {"E": 1.82, "A": 482.0, "alpha": 0.348, "B": 2085.0, "beta": 0.366}
SPREAD = {"E": 0.1, "A": 0.3, "alpha": 0.15, "B": 0.3, "beta": 0.15}
SIZES, MULTIPLIERS = [1.1e7, 7.9e7, 1.54e8, 4.11e8], [20.0, 80.0, 320.0]
TARGETS = pd.DataFrame({"N": [1.4e9, 6.9e9, 1.4e9], "tokens_per_param": [20.0, 20.0, 80.0]})
SETS = ("c4", "redpajama", "refinedweb")
ARMS = {"hierarchical": {}, "independent": {"independent": list(CHINCHILLA)}}


def simulate(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The fitted runs and the held-out ones of one seed (true law and noise as the module says)."""
    rng = np.random.default_rng(seed)
    law = bs.laws.get("overtraining")
    n, m = (g.ravel() for g in np.meshgrid(SIZES, MULTIPLIERS, indexing="ij"))
    runs, held = [], []
    for name in SETS:
        truth = {k: CHINCHILLA[k] * np.exp(SPREAD[k] * rng.standard_normal()) for k in law.parameter_names}
        for frame, (size, ratio) in ((runs, (n, m)), (held, (TARGETS["N"].to_numpy(), TARGETS["tokens_per_param"]))):
            loss = np.asarray(law.mean(truth, N=size, D=size * ratio)) * np.exp(0.01 * rng.standard_normal(len(size)))
            frame.append(pd.DataFrame({"data": name, "N": size, "D": size * np.asarray(ratio), "loss": loss}))
    return pd.concat(runs, ignore_index=True), pd.concat(held, ignore_index=True)


def olmo_triples(cut: float = 1e9):
    """``(name, runs, held)`` for every three of the OLMo ladder's evaluation sets: runs up to ``cut``
    parameters fitted, the larger ones held out (columns as :func:`simulate`'s)."""
    import backtest_families  # the ladder's final checkpoints, one row per run and evaluation set

    olmo = backtest_families.olmo_data().rename(columns={"family": "data", "target": "loss"})
    for sets in itertools.combinations(backtest_families.OLMO_SETS, 3):
        three = olmo[olmo["data"].isin(sets)].reset_index(drop=True)
        small = three["N"] <= cut
        yield "+".join(sets), three[small].reset_index(drop=True), three[~small].reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--real", action="store_true", help="the OLMo ladder's evaluation sets, three at a time")
    parser.add_argument("--cut", type=float, default=1e9, help="with --real: fit the runs up to this many parameters")
    parser.add_argument("--csv", type=Path, help="write one row per case, arm and risk here")
    options = parser.parse_args()
    if options.real:
        cases = ((i, *case) for i, case in enumerate(olmo_triples(options.cut)))
    else:
        cases = ((seed, f"seed {seed}", *simulate(seed)) for seed in range(options.seeds))
    rows = []
    start = time.perf_counter()
    for seed, name, runs, held in cases:
        for arm, treatments in ARMS.items():
            model = bs.ScalingModel(bs.laws.Chinchilla(), target="loss", group="data", **treatments)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", bs.SamplerWarning)
                fit = model.fit(runs, seed=seed)
            for risk in (True, False):
                band = fit.predict(held[["N", "D", "data"]], risk=risk).interval(0.9)
                rows.append(
                    pd.DataFrame(
                        {
                            "case": name,
                            "arm": arm,
                            "risk": risk,
                            "are": (band["median"] / held["loss"] - 1).abs(),
                            "covered": (band["lower"] <= held["loss"]) & (held["loss"] <= band["upper"]),
                            "log_width": np.log(band["upper"] / band["lower"]),
                            "warned": any(issubclass(w.category, bs.SamplerWarning) for w in caught),
                        }
                    )
                )
        print(f"{name} done at {time.perf_counter() - start:.0f} s", flush=True)
    table = pd.concat(rows, ignore_index=True)
    scores = {
        "mean_are": ("are", "mean"),
        "coverage90": ("covered", "mean"),
        "median_log_width": ("log_width", "median"),
        "n": ("are", "size"),
        "warned": ("warned", "mean"),  # share of held-out runs whose fit gave a SamplerWarning
    }
    if options.csv:
        table.groupby(["case", "arm", "risk"]).agg(**scores).to_csv(options.csv, float_format="%.6g")
    summary = table.groupby(["arm", "risk"]).agg(**scores)
    with pd.option_context("display.width", 160, "display.float_format", "{:.4f}".format):
        print(summary)


if __name__ == "__main__":
    main()
