"""Execute the notebooks in place, so that readers see their figures and tables without running them.

Every notebook is run top to bottom with full-length chains and saved with its outputs and the
SHA-256 of its code cells (``metadata.bayescale.source_sha256``). ``tests/test_notebooks.py``
checks that the stored outputs belong to the code as committed (rerun this script after editing
a notebook) and runs every notebook again with short chains.

    BAYESCALE_DATA_DIR=../shared/datasets python notebooks/execute.py [NAME ...]
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
MAX_BYTES = 400_000  # a notebook's size with its outputs; figures are saved at a modest resolution


def source_hash(nb) -> str:
    """SHA-256 of the notebook's code cells, in order."""
    code = "\n\x00\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    return hashlib.sha256(code.encode()).hexdigest()


def execute(path: Path) -> int:
    nb = nbformat.read(path, as_version=4)
    env = {k: v for k, v in os.environ.items() if k != "CI"}  # full-length chains
    os.environ.clear()
    os.environ.update({**env, "MPLBACKEND": "module://matplotlib_inline.backend_inline", "BAYESCALE_PROGRESS": "0"})
    NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    nb.metadata.pop("widgets", None)
    nb.metadata["bayescale"] = {"source_sha256": source_hash(nb)}
    nbformat.write(nb, path)
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{path.name} is {size:,} bytes with its outputs, over {MAX_BYTES:,}: trim its figures")
    return size


def main(names: list[str]) -> None:
    paths = sorted(HERE.glob("*.ipynb"))
    if names:
        paths = [p for p in paths if any(name in p.name for name in names)]
    for path in paths:
        print(f"{path.name}: {execute(path):,} bytes", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
