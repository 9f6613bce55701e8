"""Every notebook runs end to end (with CI set, so with fewer draws), without errors."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO, load_or_skip

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
DATASETS = {
    "01_quickstart.ipynb": ["chinchilla"],
    "02_families.ipynb": ["colpret_final"],
    "03_compare_recipes.ipynb": ["porian_isoflop"],
    "04_budgets.ipynb": ["chinchilla", "porian_isoflop", "porian_reference_fits"],
}


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path: Path, monkeypatch):
    for name in DATASETS.get(path.name, []):
        load_or_skip(name)
    monkeypatch.setenv("CI", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors


def test_notebooks_are_committed_without_outputs():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name
        assert os.path.getsize(path) < 100_000
