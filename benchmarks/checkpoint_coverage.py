"""How the choice of checkpoints changes extrapolation intervals, on the OLMo model ladder.

Fits the Chinchilla law to the C4 validation loss of the ladder runs the OLMo paper fits
(190M, 370M, 760M, 1B x 1, 2, 5, 10 times Chinchilla-optimal tokens; no reruns) using

- final:   the last checkpoint of every run (16 rows; bayescale's recommended default);
- thin-5:  five checkpoints per run, spread in log tokens, the last among them;
- all>10%: every checkpoint past the first 10% of its run's tokens;

and predicts, with 90% intervals of a new run, the final C4 loss of the five 3B ladder runs
and of the OLMo-2 7B-4T and 13B-5T models (the paper: 13B-5T predicted 2.344 against 2.438
measured, -3.8%). Prints per target the median, interval and error, and per treatment the
mean absolute relative error and the 90% coverage.

    BAYESCALE_DATA_DIR=../shared/datasets python benchmarks/checkpoint_coverage.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import bayescale as bs
from bayescale import checkpoints

SIZES = ["190M", "370M", "760M", "1B"]


def main() -> None:
    df = bs.datasets.load("olmo_ladder").dropna(subset=["loss_c4_en"])
    ladder = df[(df["kind"] == "ladder") & (~df["rerun"].astype(bool))]
    fit_set = ladder[ladder["size"].isin(SIZES) & ladder["xC"].isin([1, 2, 5, 10])]
    total = fit_set.groupby("run")["D"].transform("max")
    treatments = {
        "final": checkpoints.final(fit_set, run="run", step="D"),
        "thin-5": checkpoints.thin(fit_set[fit_set["D"] >= 0.1 * total], run="run", step="D", keep=5),
        "all>10%": fit_set[fit_set["D"] >= 0.1 * total],
    }
    targets = pd.concat(
        [
            checkpoints.final(ladder[ladder["size"] == "3B"], run="run", step="D"),
            checkpoints.final(df[df["kind"] != "ladder"], run="kind", step="D"),
        ]
    )
    label = np.where(targets["kind"] == "ladder", targets["run"], targets["kind"])
    model = bs.ScalingModel(bs.laws.Chinchilla(), target="loss_c4_en", inputs={"N": "N", "D": "D"})
    summary = []
    for name, rows in treatments.items():
        fit = model.fit(rows, seed=0)
        table = fit.predict(targets[["N", "D"]]).interval(0.9)
        actual = targets["loss_c4_en"].to_numpy()
        err = (table["median"].to_numpy() - actual) / actual
        covered = (table["lower"].to_numpy() <= actual) & (actual <= table["upper"].to_numpy())
        print(f"\n{name}: {len(rows)} rows, healthy={fit.healthy}")
        for i, tgt in enumerate(label):
            print(
                f"  {tgt:<16} actual {actual[i]:.4f}  predicted {table['median'].iloc[i]:.4f} "
                f"[{table['lower'].iloc[i]:.4f}, {table['upper'].iloc[i]:.4f}]  error {err[i]:+.2%}  "
                f"{'covered' if covered[i] else 'MISSED'}"
            )
        summary.append(
            {
                "checkpoints": name,
                "rows": len(rows),
                "mean_ARE": np.mean(np.abs(err)),
                "coverage90": covered.mean(),
                "mean_width": float(np.mean(table["upper"] - table["lower"])),
            }
        )
    print("\n" + pd.DataFrame(summary).round(4).to_string(index=False))


if __name__ == "__main__":
    main()
