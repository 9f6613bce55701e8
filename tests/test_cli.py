"""The command line: a real fit on the bundled data, and one-line errors with exit status 2."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import cli
from tests.conftest import REPO

RUNS = str(REPO / "data" / "simulated_runs.csv")


def run(*args):
    return subprocess.run([sys.executable, "-m", "bayescale.cli", *args], capture_output=True, text=True, cwd=REPO)


def test_fit_prints_summary_prediction_and_writes_plot(tmp_path):
    png = tmp_path / "fit.png"
    nc = tmp_path / "fit.nc"
    result = run(
        "fit", RUNS, "--law", "chinchilla", "--target", "N=70e9,D=1.4e12", "--plot", str(png), "--save", str(nc)
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "posterior (90% equal-tailed intervals)" in out and "alpha" in out and "r_hat" in out
    assert "prediction at N=7e+10, D=1.4e+12" in out and "loss of a new run" in out
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert nc.exists()


@pytest.mark.parametrize("chosen", [None, "chosen"])
def test_compiled_samplers_are_kept_in_the_user_cache_unless_jax_is_told_otherwise(tmp_path, chosen):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    if chosen:
        env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path / chosen)
    code = "import jax; from bayescale import cli; print(cli.use_compilation_cache(), jax.config."
    code += "jax_compilation_cache_max_size)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, check=True)
    folder, limit = result.stdout.split()
    if chosen:
        assert (folder, limit) == (str(tmp_path / chosen), "-1")  # the user's choice, untouched
    else:
        assert (folder, int(limit)) == (str(tmp_path / "xdg" / "bayescale" / "jax"), cli.CACHE_MAX_BYTES)


def help_text(*args, capsys) -> str:
    with pytest.raises(SystemExit) as done:
        cli.main(list(args))
    assert done.value.code == 0
    return capsys.readouterr().out


def test_help_explains_the_laws_and_the_columns(capsys):
    text = help_text("fit", "--help", capsys=capsys)
    for words in ("E + A N^-alpha + B D^-beta", "--column", "--target", "N=70e9,D=1.4e12", "--metric", "--group"):
        assert words in text


@pytest.mark.parametrize(
    "args,message",
    [
        (["fit", "missing.csv"], "bayescale: error: no such file: missing.csv"),
        (["fit", RUNS, "--metric", "val_loss"], "column 'val_loss' (target) is not in the data"),
        (["fit", RUNS, "--column", "N=params"], "column 'params' (law input N) is not in the data"),
        (["fit", RUNS, "--law", "chinchila"], "unknown law 'chinchila'; valid laws"),
        (["fit", RUNS, "--target", "N=7e10"], "target must give exactly the law's inputs ['N', 'D']; missing ['D']"),
        (["fit", RUNS, "--law", "power", "--x", "N", "--column", "D=D"], "--column names ['D'], which are not inputs"),
        (["fit", RUNS, "--x", "N"], "--x applies to one-input laws; chinchilla's inputs are N, D"),
        (["fit", RUNS, "--law", "accuracy"], "the accuracy law needs the task's chance level, e.g. --chance 0.25"),
        (["fit", RUNS, "--chance", "0.25"], "--chance, --falling and --ceiling apply to the accuracy law, not chinch"),
        (["fit", RUNS, "--breaks", "2"], "--breaks applies to the broken_power law, not chinchilla"),
        (["fit", RUNS, "--law", "broken_power", "--breaks", "0"], "breaks must be a whole number >= 1, got 0"),
        (["fit", RUNS, "--pivots", "N0=1e8"], "--pivots applies to the farseer law, not chinchilla"),
        (["fit", RUNS, "--law", "farseer", "--pivots", "N=1e8"], "--pivots takes N0 and D0, got ['N']"),
        (["fit", RUNS, "--law", "farseer", "--pivots", "N0=-1"], "N0 must be a finite number > 0, got -1.0"),
        (["predict", "missing.nc", "--at", "N=1e9,D=1e10"], "no saved fit at 'missing.nc'"),
    ],
)
def test_errors_are_one_line_with_status_2(args, message, capsys):
    status = cli.main(args)
    err = capsys.readouterr().err
    assert status == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_malformed_csv(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text('N,D,loss\n1e9,2e10,3.1\n2e9,"4e10,2.9\n')
    assert cli.main(["fit", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bayescale: error: cannot read {bad} as CSV") and err.count("\n") == 1


def test_non_numeric_cell_in_csv(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "N,D,loss\n1e8,2e9,3.9\n2e8,4e9,oops\n4e8,8e9,3.3\n8e8,1.6e10,3.1\n1.6e9,3.2e10,2.9\n"
        "3.2e9,6.4e10,2.8\n6.4e9,1.3e11,2.6\n"
    )
    assert cli.main(["fit", str(bad)]) == 2
    assert (
        "column 'loss' (target) must have a numeric dtype, got str; non-numeric values at row 1"
        in capsys.readouterr().err
    )


def test_bad_arguments_exit_2_through_argparse():
    result = run("fit", RUNS, "--level", "1.5")
    assert result.returncode == 2 and "--level must be in (0, 1)" in result.stderr


def test_version_and_laws(capsys):
    import bayescale as bs
    from bayescale.config import VERSION

    assert help_text("--version", capsys=capsys).strip() == f"bayescale {VERSION}"
    assert cli.main(["laws"]) == 0
    listed = capsys.readouterr().out
    for name in bs.laws.LAWS:  # every registered law, with its formula
        assert name in listed and bs.laws.get(name).formula in listed
    assert all(name in help_text("fit", "--help", capsys=capsys) for name in bs.laws.LAWS)


def test_fit_an_accuracy_curve(tmp_path, capsys):
    c = np.geomspace(1e19, 1e22, 10)
    law = bs.laws.AccuracyLaw("C", chance=0.25)
    acc = np.asarray(law.mean({"floor_shift": 0.0, "lift": 1.5, "B": 0.8, "C_mid": 1e21}, C=c))
    path = tmp_path / "acc.csv"
    pd.DataFrame({"flops": c, "acc": acc * np.exp(0.01 * np.sin(np.arange(10)))}).to_csv(path, index=False)
    args = ["fit", str(path), "--law", "accuracy", "--x", "C", "--column", "C=flops", "--metric", "acc"]
    assert cli.main([*args, "--chance", "0.25", "--target", "C=1e23", "--save", str(tmp_path / "acc.nc")]) == 0
    out = capsys.readouterr().out
    assert "acc of a new run" in out
    assert bs.load_fit(tmp_path / "acc.nc").model.law == law


def test_predict_and_optimal_from_a_saved_fit(tmp_path, capsys):
    nc = tmp_path / "fit.nc"
    assert cli.main(["fit", RUNS, "--save", str(nc), "--warmup", "300", "--draws", "300"]) == 0
    capsys.readouterr()
    assert cli.main(["predict", str(nc), "--at", "N=7e10,D=1.4e12", "--at", "N=1e9,D=2e10"]) == 0
    out = capsys.readouterr().out
    assert "prediction at N=7e+10, D=1.4e+12; 1.4 decades beyond the data" in out
    assert "prediction at N=1e+09, D=2e+10; inside the data's range" in out
    assert "loss of a new run" in out and "mean curve (the law)" in out
    assert cli.main(["optimal", str(nc), "--C", "1e22,5.88e23"]) == 0
    out = capsys.readouterr().out
    assert "tokens_per_param" in out and "5.88e+23" in out


def test_fit_with_groups_and_compare(tmp_path, capsys):
    import numpy as np
    import pandas as pd

    import bayescale as bs
    from tests.conftest import simulate

    law = bs.laws.SaturatingPowerLaw("C")
    c = np.geomspace(1e18, 1e21, 12)
    frames = [
        simulate(law, {"E": 1.8, "A": 3.0 * 1e18**0.25, "alpha": 0.25}, {"C": c}, 0.005, 1).assign(recipe="base"),
        simulate(law, {"E": 1.8, "A": 4.0 * 1e18**0.35, "alpha": 0.35}, {"C": c}, 0.005, 2).assign(recipe="tuned"),
    ]
    csv, nc = tmp_path / "recipes.csv", tmp_path / "recipes.nc"
    pd.concat(frames).rename(columns={"y": "loss"}).to_csv(csv, index=False)
    fitted = cli.main([
        "fit", str(csv), "--law", "saturating_power", "--x", "C", "--group", "recipe", "--save", str(nc),
        "--warmup", "500", "--draws", "500",
    ])  # fmt: skip
    assert fitted == 0, capsys.readouterr().err
    capsys.readouterr()
    assert cli.main(["compare", str(nc), "--candidate", "tuned", "--baseline", "base", "--at", "C=1e19",
                     "--at", "C=1e23"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "tuned minus base" in out and "prob_better" in out
    assert cli.main(["compare", str(nc), "--candidate", "nope", "--baseline", "base", "--at", "C=1e19"]) == 2
    assert "candidate 'nope' is not a fitted recipe" in capsys.readouterr().err


def test_warnings_print_once(tmp_path):
    result = run("fit", RUNS, "--warmup", "20", "--draws", "40")
    assert result.returncode == 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("bayescale: warning:")]
    assert lines and len(lines) == len(set(lines)), result.stderr
