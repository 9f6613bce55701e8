"""Benchmark: the sampler's health on small hierarchical designs, over many seeds.

Divergence counts are heavy-tailed (most fits 0-5, now and then one chain with dozens), so a
design is judged over many seeds, each a new simulated data set and chain seed:

- ``contract``: the hierarchy issue's usage block, 4 simulated Chinchilla families x 8 runs
  (4 sizes x 2 tokens per parameter), ``pooled=["alpha", "beta", "E"]`` (the prefactors
  pooled too), exponents scattered by 10%, E by 5%, 1% noise;
- ``few_runs``: the same four families, a fifth of 8 runs, one of 2 runs and one of 1 (about Chinchilla's
  values, scattered by half of ``six``'s spreads), the usage block's model: families of one or two runs
  sit outside the pilot's frame;
- ``six``: 6 simulated Chinchilla families x 20 runs (4 sizes x 5 ratios), every parameter
  pooled, scattered as in ``bench_hierarchical_fit.py`` (like ``tests/test_pooled_frame.py``'s);
- ``saturating``: 6 simulated families x 8 model sizes and one of 2, ``E + A N^-alpha``, every
  parameter pooled, scattered by 10-30%, Student-t noise of 1% (like ``tests/test_hierarchy.py``'s);
- ``overtraining``: 3 training sets as groups (as Gadre et al.'s over-training study), models of
  11M-411M parameters at 20 tokens per parameter and over-trained to 80 and 320, Gadre et al.'s
  law (``E + A N^-alpha + B D^-alpha``), every parameter pooled, scattered as in ``six``;
- ``three``: the same three training sets fitted with Chinchilla's law (every parameter pooled);
- ``nested``: two grouping levels, 4 simulated families x 3 recipes x 6 model sizes, ``E + A
  N^-alpha``, families scattered by 15-30% and their recipes by 2-5% (like
  ``tests/test_nested_groups.py``'s), ``group="recipe", within="family"``, every parameter
  pooled; ``nested_flat``: the same data with the recipes as one population;
- ``nested_chinchilla``, ``nested_chinchilla_flat``: the same with Chinchilla's law, 4 families
  x 3 recipes x 8 runs (4 sizes x 10 and 40 tokens per parameter), families scattered as in
  ``six`` and recipes by 2%;
- ``olmo``: the OLMo ladder's final checkpoints below 1B parameters (190M-760M x 0.5-10xC, 18 runs
  with the reruns), six evaluation sets as the groups (as ``benchmarks/backtest_families.py``'s
  ``cut`` split; needs the public datasets), Chinchilla's law, every parameter pooled;
- ``colpret``: the README's multi-family example (ColPret's final checkpoints of single-epoch
  runs, 10 families, default priors; needs the public datasets), the chain seed varied;
  ``colpret_literature``: the same with ``priors="literature"``; ``colpret_sigma``: with a noise scale per
  family (``pooled=[..., "sigma"]``, 73 dimensions); ``colpret_scale``: with ``group_scale=True`` (72).

Prints one line per fit (divergences, max R-hat, min bulk ESS, leapfrog steps per draw,
SamplerWarnings, wall time, and whether the fit was sampled twice or its chains ran on) and per
design the totals: divergences, fits without any SamplerWarning, the largest count in one fit.
``--pooled-warmup`` pools the chains' warmup windows (``pooled_warmup=True``; each chain's own by
default); ``--dense`` gives every design a dense mass matrix (``dense_mass=True``).

    python benchmarks/bench_hierarchy_health.py [--designs contract six ...] [--seeds 20] [--pooled-warmup] [--dense]
"""

from __future__ import annotations

import argparse
import time
import warnings

import arviz as az
import numpy as np
import pandas as pd
from backtest_families import CUTS, olmo_data

import bayescale as bs

CHINCHILLA = {"E": 1.82, "A": 482.0, "alpha": 0.348, "B": 2085.0, "beta": 0.366}
SPREAD = {"E": 0.1, "A": 0.3, "alpha": 0.15, "B": 0.3, "beta": 0.15}


def contract(seed: int) -> tuple[bs.ScalingModel, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    law = bs.laws.Chinchilla()
    n, r = (a.ravel() for a in np.meshgrid(np.geomspace(3e7, 2e9, 4), [10.0, 40.0], indexing="ij"))
    frames = []
    for f in range(4):
        p = {
            "E": 1.8 * np.exp(0.05 * rng.standard_normal()),
            "A": 450.0,
            "alpha": 0.34 * np.exp(0.1 * rng.standard_normal()),
            "B": 2000.0,
            "beta": 0.36 * np.exp(0.1 * rng.standard_normal()),
        }
        y = np.asarray(law.mean(p, N=n, D=n * r)) * np.exp(0.01 * rng.standard_normal(n.size))
        frames.append(pd.DataFrame({"family": f"f{f}", "N": n, "D": n * r, "loss": y}))
    model = bs.ScalingModel(law, target="loss", group="family", pooled=["alpha", "beta", "E"])
    return model, pd.concat(frames, ignore_index=True)


def few_runs(seed: int) -> tuple[bs.ScalingModel, pd.DataFrame]:
    model, df = contract(seed)
    rng = np.random.default_rng(seed + 1000)
    law = bs.laws.Chinchilla()
    frames = [df[df["family"] != "f3"]]
    for f, runs in (("f4", 8), ("f5", 2), ("f6", 1)):  # a fifth family like the others, one of 2 runs, one of 1
        n, r = (a.ravel() for a in np.meshgrid(np.geomspace(3e7, 2e9, 4), [10.0, 40.0], indexing="ij"))
        p = {k: CHINCHILLA[k] * np.exp(0.5 * SPREAD[k] * rng.standard_normal()) for k in CHINCHILLA}
        n, d = n[:runs], (n * r)[:runs]
        y = np.asarray(law.mean(p, N=n, D=d)) * np.exp(0.01 * rng.standard_normal(n.size))
        frames.append(pd.DataFrame({"family": f, "N": n, "D": d, "loss": y}))
    frames.append(df[df["family"] == "f3"])
    return model, pd.concat(frames, ignore_index=True)


def six(seed: int) -> tuple[bs.ScalingModel, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    law = bs.laws.Chinchilla()
    n, r = (g.ravel() for g in np.meshgrid(np.geomspace(5e7, 5e9, 4), [5.0, 10.0, 20.0, 40.0, 80.0], indexing="ij"))
    frames = []
    for f in range(6):
        truth = {k: v * np.exp(SPREAD[k] * rng.standard_normal()) for k, v in CHINCHILLA.items()}
        y = np.asarray(law.mean(truth, N=n, D=n * r)) * np.exp(0.01 * rng.standard_normal(n.size))
        frames.append(pd.DataFrame({"family": f"f{f}", "N": n, "D": n * r, "loss": y}))
    return bs.ScalingModel(law, target="loss", group="family"), pd.concat(frames, ignore_index=True)


def saturating(seed: int) -> tuple[bs.ScalingModel, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    law = bs.laws.SaturatingPowerLaw("N")
    population, spread = {"E": 1.8, "A": 400.0, "alpha": 0.3}, {"E": 0.1, "A": 0.3, "alpha": 0.15}
    frames = []
    for f in range(7):
        truth = {k: v * np.exp(spread[k] * rng.standard_normal()) for k, v in population.items()}
        n = np.geomspace(2e7, 2e9, 8)[: 8 if f < 6 else 2]
        y = np.asarray(law.mean(truth, N=n)) * np.exp(0.01 * rng.standard_t(4, size=n.size))
        frames.append(pd.DataFrame({"family": f"f{f}", "N": n, "loss": y}))
    return bs.ScalingModel(law, target="loss", group="family"), pd.concat(frames, ignore_index=True)


def overtraining(seed: int) -> tuple[bs.ScalingModel, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    law = bs.laws.get("overtraining")
    n, m = (g.ravel() for g in np.meshgrid([1.1e7, 7.9e7, 1.54e8, 4.11e8], [20.0, 80.0, 320.0], indexing="ij"))
    frames = []
    for name in ("c4", "redpajama", "refinedweb"):
        truth = {k: CHINCHILLA[k] * np.exp(SPREAD[k] * rng.standard_normal()) for k in law.parameter_names}
        y = np.asarray(law.mean(truth, N=n, D=n * m)) * np.exp(0.01 * rng.standard_normal(n.size))
        frames.append(pd.DataFrame({"data": name, "N": n, "D": n * m, "loss": y}))
    return bs.ScalingModel(law, target="loss", group="data"), pd.concat(frames, ignore_index=True)


def three(seed: int) -> tuple[bs.ScalingModel, pd.DataFrame]:
    _, df = overtraining(seed)
    return bs.ScalingModel(bs.laws.Chinchilla(), target="loss", group="data"), df


def nested(seed: int, within: str | None = "family") -> tuple[bs.ScalingModel, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    law = bs.laws.SaturatingPowerLaw("N")
    population = {"E": 1.8, "A": 400.0, "alpha": 0.3}
    between, inside = {"E": 0.15, "A": 0.3, "alpha": 0.2}, {"E": 0.02, "A": 0.05, "alpha": 0.02}
    frames = []
    for f in range(4):
        family = {k: v * np.exp(between[k] * rng.standard_normal()) for k, v in population.items()}
        for r in range(3):
            truth = {k: v * np.exp(inside[k] * rng.standard_normal()) for k, v in family.items()}
            n = np.geomspace(2e7, 2e9, 6)
            y = np.asarray(law.mean(truth, N=n)) * np.exp(0.01 * rng.standard_normal(n.size))
            frames.append(pd.DataFrame({"family": f"f{f}", "recipe": f"f{f}-r{r}", "N": n, "loss": y}))
    model = bs.ScalingModel(law, target="loss", group="recipe", within=within)
    return model, pd.concat(frames, ignore_index=True)


def nested_chinchilla(seed: int, within: str | None = "family") -> tuple[bs.ScalingModel, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    law = bs.laws.Chinchilla()
    n, r = (a.ravel() for a in np.meshgrid(np.geomspace(3e7, 2e9, 4), [10.0, 40.0], indexing="ij"))
    frames = []
    for f in range(4):
        family = {k: CHINCHILLA[k] * np.exp(SPREAD[k] * rng.standard_normal()) for k in CHINCHILLA}
        for j in range(3):
            truth = {k: v * np.exp(0.02 * rng.standard_normal()) for k, v in family.items()}
            y = np.asarray(law.mean(truth, N=n, D=n * r)) * np.exp(0.01 * rng.standard_normal(n.size))
            frames.append(pd.DataFrame({"family": f"f{f}", "recipe": f"f{f}-r{j}", "N": n, "D": n * r, "loss": y}))
    model = bs.ScalingModel(law, target="loss", group="recipe", within=within)
    return model, pd.concat(frames, ignore_index=True)


def colpret(seed: int, priors=None, pooled=("alpha", "beta", "E"), **model) -> tuple[bs.ScalingModel, pd.DataFrame]:
    runs = bs.datasets.load("colpret_final")
    runs = runs[runs["epochs"].fillna(1) <= 1].dropna(subset=["loss_nats"])
    law = bs.laws.Chinchilla()
    return bs.ScalingModel(law, target="loss_nats", group="family", pooled=list(pooled), priors=priors, **model), runs


def olmo(seed: int) -> tuple[bs.ScalingModel, pd.DataFrame]:
    df = olmo_data()
    model = bs.ScalingModel(bs.laws.Chinchilla(), target="target", group="family")
    return model, df[df["N"] <= CUTS["olmo"]]


DESIGNS = {
    "contract": contract,
    "few_runs": few_runs,
    "six": six,
    "saturating": saturating,
    "overtraining": overtraining,
    "three": three,
    "nested": nested,
    "nested_flat": lambda seed: nested(seed, within=None),
    "nested_chinchilla": nested_chinchilla,
    "nested_chinchilla_flat": lambda seed: nested_chinchilla(seed, within=None),
    "olmo": olmo,
    "colpret": colpret,
    "colpret_literature": lambda seed: colpret(seed, priors="literature"),
    "colpret_sigma": lambda seed: colpret(seed, pooled=("alpha", "beta", "E", "sigma")),
    "colpret_scale": lambda seed: colpret(seed, group_scale=True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--designs",
        nargs="+",
        default=["contract", "six", "saturating", "overtraining", "three"],
        choices=sorted(DESIGNS),
    )
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--target-accept", type=float, default=None, help="target_accept_prob (default: the package's)")
    parser.add_argument("--dense", action="store_true", help="dense_mass=True (above 64 dimensions too)")
    parser.add_argument(
        "--pooled-warmup", action="store_true", help="warmup windows pooled across the chains (pooled_warmup=True)"
    )
    options = parser.parse_args()
    nuts = {} if options.target_accept is None else {"target_accept_prob": options.target_accept}
    if options.pooled_warmup:
        nuts["pooled_warmup"] = True
    if options.dense:
        nuts["dense_mass"] = True
    for name in options.designs:
        divergences, healthy = [], 0
        for seed in range(options.seeds):
            model, df = DESIGNS[name](seed)
            start = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", bs.SamplerWarning)
                fit = model.fit(df, seed=seed, **nuts)
            wall = time.perf_counter() - start
            stats = fit.idata.sample_stats
            table = az.summary(fit.idata, kind="diagnostics")
            count = int(stats["diverging"].sum())
            divergences.append(count)
            healthy += not caught
            how = f"{stats.sizes['draw']} draws per chain" + (
                ", sampled twice" if "sampled twice" in fit.health.note else ""
            )
            print(
                f"{name} seed {seed}: {count} divergences, R-hat {table['r_hat'].max():.3f}, "
                f"min ESS {table['ess_bulk'].min():.0f}, {float(stats['n_steps'].mean()):.1f} steps/draw, "
                f"{len(caught)} warnings, {wall:.1f} s ({how})",
                flush=True,
            )
        print(
            f"{name}: {sum(divergences)} divergences in {len(divergences)} fits (largest {max(divergences)}), "
            f"{healthy} without a SamplerWarning\n",
            flush=True,
        )


if __name__ == "__main__":
    main()
