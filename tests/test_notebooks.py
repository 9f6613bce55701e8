"""Every notebook runs end to end (with CI set, so with fewer draws), and its committed outputs are its own."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO, load_or_skip


def _execute_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("notebooks_execute", REPO / "notebooks" / "execute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXECUTE = _execute_module()
MAX_BYTES, source_hash = EXECUTE.MAX_BYTES, EXECUTE.source_hash

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
DATASETS = {
    "01_quickstart.ipynb": ["chinchilla"],
    "02_families.ipynb": ["colpret_final"],
    "03_compare_recipes.ipynb": ["porian_isoflop"],
    "04_budgets.ipynb": ["chinchilla", "porian_isoflop", "porian_reference_fits"],
    "05_downstream.ipynb": ["olmo_ladder_tasks"],
    "06_next_run.ipynb": ["chinchilla"],
}


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path: Path, monkeypatch):
    for name in DATASETS.get(path.name, []):
        load_or_skip(name)
    monkeypatch.setenv("CI", "1")
    monkeypatch.setenv("BAYESCALE_PROGRESS", "0")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebooks_are_committed_with_the_outputs_of_their_code(path: Path):
    """Readers see the figures without running anything; rerun notebooks/execute.py after an edit."""
    nb = nbformat.read(path, as_version=4)
    stored = nb.metadata.get("bayescale", {}).get("source_sha256")
    assert stored == source_hash(nb), f"{path.name}: outputs from other code; run notebooks/execute.py {path.name}"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("outputs") or not c.source.strip() for c in code[:1]), "the first cell has its output"
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {}) for c in code
               for o in c.get("outputs", [])), f"{path.name} shows no figure"  # fmt: skip
    assert not any(o.get("output_type") == "error" for c in code for o in c.get("outputs", []))
    assert os.path.getsize(path) <= MAX_BYTES
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), "opens with its question"
