"""The README is the front door: its commands are the ones CI runs, and its claims are pinned."""

import re

from tests.conftest import REPO


def readme_commands():
    text = (REPO / "README.md").read_text()
    quickstart = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", quickstart, flags=re.S)


def test_ci_runs_the_readme_install_and_test_commands():
    install, test = readme_commands()
    ci = (REPO / ".ci" / "run").read_text()
    install_step = install.split(" && .venv/bin/bayescale fit")[0]
    for step in install_step.split(" && "):
        assert step in ci, step
    assert test in ci.splitlines()


def test_quickstart_data_is_what_the_script_generates(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("simulate_runs", REPO / "data" / "simulate_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.simulate().to_csv(tmp_path / "runs.csv", index=False)
    assert (tmp_path / "runs.csv").read_bytes() == (REPO / "data" / "simulated_runs.csv").read_bytes()


def test_the_readme_s_first_python_example_runs_as_written(tmp_path, monkeypatch):
    """The "Extrapolate" block (the old README's "In Python" section, a contract with users), verbatim."""
    import matplotlib.pyplot as plt

    from tests.conftest import load_or_skip

    load_or_skip("chinchilla")
    text = (REPO / "README.md").read_text()
    block = text.split("## Extrapolate", 1)[1].split("```python\n", 1)[1].split("\n```", 1)[0]
    assert "fit.predict(N=[7e10], D=[1.4e12])" in block and 'bs.load_fit("fit.nc")' in block
    monkeypatch.chdir(tmp_path)  # it saves fit.nc
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert (tmp_path / "fit.nc").exists()
    pred = namespace["pred"]
    new_run, law = pred.interval(0.9).iloc[0], pred.interval(0.9, kind="mean").iloc[0]
    assert new_run["lower"] < law["lower"] < law["upper"] < new_run["upper"]  # a new run: noise and risk too
    plt.close("all")


def test_the_readme_stays_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= 250
