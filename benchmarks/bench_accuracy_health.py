"""Sampler health of accuracy curves where the climb is in the data, beginning, or not yet begun.

Twelve simulated runs over two decades of compute (1e19-1e21 FLOPs), ``AccuracyLaw("C",
chance=0.25)`` with the ceiling learned or known (``ceiling=1``), LogitNormal noise of 0.05 on the
log-odds. Designs: ``chance`` (every run at chance: a task that has not taken off), ``onset`` (the
midpoint at 3e21, the climb just beginning at the largest runs) and ``mid`` (the midpoint at 1e21).
Per fit: divergences, leapfrog steps per draw, the largest R-hat, the smallest bulk ESS, seconds
(the first fit of each law compiles) and the 90% band of the mean at 1e24 FLOPs, three decades on.

    python benchmarks/bench_accuracy_health.py --seeds 8
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import bayescale as bs

DESIGNS = {"chance": None, "onset": 3e21, "mid": 1e21}
CEILINGS = {"learned": None, "1": 1.0}


def simulate(law: bs.laws.AccuracyLaw, midpoint: float | None, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(5 + seed)
    c = np.geomspace(1e19, 1e21, 12)
    if midpoint is None:  # at chance on the log-odds
        log_odds = np.full(c.size, np.log(1 / 3))
    else:
        truth = {"floor_shift": 0.0, "B": 0.9, "C_mid": midpoint} | ({} if law.ceiling else {"lift": 2.0})
        mu = np.asarray(law.mean(truth, C=c))
        log_odds = np.log(mu / (1 - mu))
    return pd.DataFrame({"C": c, "acc": 1 / (1 + np.exp(-(log_odds + 0.05 * rng.standard_normal(c.size))))})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--designs", default=",".join(DESIGNS), help=f"comma-separated, of {list(DESIGNS)}")
    parser.add_argument("--ceilings", default=",".join(CEILINGS), help=f"comma-separated, of {list(CEILINGS)}")
    args = parser.parse_args()
    rows = []
    for ceiling in args.ceilings.split(","):
        law = bs.laws.AccuracyLaw("C", chance=0.25, ceiling=CEILINGS[ceiling])
        for design in args.designs.split(","):
            for seed in range(args.seeds):
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", bs.SamplerWarning)
                    data = simulate(law, DESIGNS[design], seed)
                    fit = bs.ScalingModel(law, target="acc").fit(data, seed=seed, extend=0)
                seconds = time.perf_counter() - start
                summary, stats = fit.summary(), fit.idata.sample_stats
                band = fit.predict(C=[1e24]).interval(0.9, kind="mean").iloc[0]
                rows.append(
                    {
                        "ceiling": ceiling,
                        "design": design,
                        "seed": seed,
                        "divergences": int(stats["diverging"].sum()),
                        "steps": float(stats["n_steps"].mean()),
                        "r_hat": float(summary["r_hat"].max()),
                        "min_ess": float(summary["ess_bulk"].min()),
                        "seconds": seconds,
                        "band_1e24": f"{band['lower']:.2f}-{band['upper']:.2f}",
                    }
                )
                print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(
        table.groupby(["ceiling", "design"], sort=False)
        .agg(
            divergences=("divergences", "sum"),
            most=("divergences", "max"),
            steps=("steps", "median"),
            r_hat_max=("r_hat", "max"),
            min_ess=("min_ess", "min"),
            seconds=("seconds", "median"),
        )
        .round(3)
        .to_string()
    )


if __name__ == "__main__":
    main()
