"""Simulate a small ladder of training runs from a known Chinchilla law.

Writes ``simulated_runs.csv`` (the quickstart's data) and ``simulated_truth.json``
(the law, its parameters, the noise model and the true loss at the quickstart target)
next to this script. Deterministic: run it again and the files are byte-identical.

    python data/simulate_runs.py

The design mimics a real sweep: 10 model sizes from 20M to 3B parameters, each
trained for 6 token budgets between 4 and 128 tokens per parameter (C = 6 N D).
Noise is multiplicative, Student-t with 5 degrees of freedom and scale 1% on the log
loss, so a few runs land visibly off the curve as real ones do (bad seeds, spikes).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SEED = 20240515
TRUTH = {"E": 1.8, "A": 450.0, "alpha": 0.34, "B": 2000.0, "beta": 0.36}
NOISE = {"distribution": "student_t", "nu": 5.0, "sigma": 0.01}
TARGET = {"N": 70e9, "D": 1.4e12}


def chinchilla_loss(n, d, p=TRUTH):
    return p["E"] + p["A"] * n ** -p["alpha"] + p["B"] * d ** -p["beta"]


def simulate(seed: int = SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = np.geomspace(2e7, 3e9, 10)
    ratios = np.array([4.0, 8.0, 16.0, 32.0, 64.0, 128.0])
    n, r = (a.ravel() for a in np.meshgrid(sizes, ratios, indexing="ij"))
    d = r * n
    noise = NOISE["sigma"] * rng.standard_t(NOISE["nu"], size=n.size)
    loss = chinchilla_loss(n, d) * np.exp(noise)
    return pd.DataFrame({"N": n.round(), "D": d.round(), "C": 6 * n.round() * d.round(), "loss": loss.round(5)})


def main() -> None:
    runs = simulate()
    runs.to_csv(HERE / "simulated_runs.csv", index=False)
    truth = {
        "law": "chinchilla: loss = E + A N^-alpha + B D^-beta",
        "parameters": TRUTH,
        "noise": NOISE | {"on": "log(loss)"},
        "seed": SEED,
        "target": TARGET | {"true_mean_loss": chinchilla_loss(TARGET["N"], TARGET["D"])},
        "rows": len(runs),
    }
    (HERE / "simulated_truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    print(f"wrote {len(runs)} runs to {HERE / 'simulated_runs.csv'}")


if __name__ == "__main__":
    main()
