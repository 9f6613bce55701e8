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
