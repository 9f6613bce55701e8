"""Public scaling datasets: read from a data directory, downloaded from their source when missing.

The data directory is ``$BAYESCALE_DATA_DIR`` when set, else a per-user cache
(``$XDG_CACHE_HOME/bayescale`` or ``~/.cache/bayescale``; ``%LOCALAPPDATA%\\bayescale``
on Windows). Files keep their original names under one folder per dataset, so a folder
of original files is a ready cache. A missing file is downloaded from its public source
at a pinned commit and checked against its SHA-256 before it is used.

Examples
--------
>>> import bayescale as bs
>>> sorted(bs.datasets.DATASETS)
['chinchilla', 'colpret', 'colpret_final', 'olmo_ladder', 'porian_isoflop', 'porian_reference_fits']
>>> df = bs.datasets.load("chinchilla")          # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ENV_VAR = "BAYESCALE_DATA_DIR"


class DatasetNotAvailable(FileNotFoundError):
    """A dataset is neither in the data directory nor downloadable right now."""


@dataclass(frozen=True)
class RemoteFile:
    """A file of a public repository at a pinned commit, with its SHA-256."""

    name: str
    url: str
    sha256: str


@dataclass(frozen=True)
class DerivedFile:
    """A table derived from public sources that has no downloadable original; ``origin`` says how it was made."""

    name: str
    origin: str


@dataclass(frozen=True)
class Dataset:
    """A registered dataset: its folder, source files and the reader that tidies them."""

    folder: str
    files: tuple[RemoteFile | DerivedFile, ...]
    reader: Callable[[dict[str, Path]], pd.DataFrame]
    description: str


def _read_chinchilla(paths: dict[str, Path]) -> pd.DataFrame:
    raw = pd.read_csv(paths["svg_extracted_data.csv"])
    n = raw["Model Size"].to_numpy(dtype=float)
    c = raw["Training FLOP"].to_numpy(dtype=float)
    loss = raw["loss"].to_numpy(dtype=float)
    d = c / (6.0 * n)
    excluded = np.zeros(len(raw), dtype=bool)
    excluded[np.argsort(-loss, kind="stable")[:5]] = True
    return pd.DataFrame(
        {"N": n, "D": d, "C": c, "loss": loss, "tokens_per_param": d / n, "besiroglu_excluded": excluded}
    )


def _read_colpret(paths: dict[str, Path]) -> pd.DataFrame:
    (path,) = paths.values()
    raw = pd.read_csv(path, low_memory=False)
    tidy = pd.DataFrame(
        {
            "family": raw["family"].astype(str),
            "model": raw["model_name"].astype(str),
            "N": raw["N_params"].astype(float),
            "D": raw["tokens_seen"].astype(float),
            "C": raw["flops"].astype(float),
            "metric": raw["metric_name"].astype(str),
            "value": raw["metric_value"].astype(float),
            "loss_nats": raw["loss_nats"].astype(float),
        }
    )
    rest = raw.drop(
        columns=["family", "model_name", "N_params", "tokens_seen", "flops", "metric_name", "metric_value", "loss_nats"]
    )
    return pd.concat([tidy, rest], axis=1)


def _read_olmo_ladder(paths: dict[str, Path]) -> pd.DataFrame:
    (path,) = paths.values()
    raw = pd.read_csv(path)
    return raw.rename(columns={"N_params": "N", "D_tokens": "D", "flops_6ND": "C", "size_label": "size"})


def _read_porian_points(paths: dict[str, Path]) -> pd.DataFrame:
    (path,) = paths.values()
    raw = pd.read_csv(path)
    return raw.rename(columns={"config_id": "recipe", "flops_budget": "C", "D_tokens": "D"})


def _read_porian_fits(paths: dict[str, Path]) -> pd.DataFrame:
    (path,) = paths.values()
    return pd.read_csv(path).rename(columns={"config_id": "recipe"})


_PORIAN_ORIGIN = (
    "converted to CSV by the bayescale team from the summary pickles of formll/resolving-scaling-law-discrepancies "
    "(commit 0dc60d91, MIT): data/summary_df*.pickle.xz (see the dataset README beside the file)"
)
_COLPRET_ORIGIN = (
    "rebuilt from IBM/ColPret (github.com/IBM/ColPret, commit 16f23bbe, MIT) by the bayescale team: the "
    "harmonised table of Choshen et al. (2025) is not public in full, so the families whose sources are present "
    "were converted following ColPret's util/read_data.py (see the dataset README beside the file)"
)
_EPOCH = "https://raw.githubusercontent.com/epoch-research/analyzing-chinchilla"
DATASETS: dict[str, Dataset] = {
    "chinchilla": Dataset(
        folder="chinchilla_epoch",
        files=(
            RemoteFile(
                "svg_extracted_data.csv",
                f"{_EPOCH}/92258837425e1b5f2851d624287f0120583a3d0e/data/svg_extracted_data.csv",
                "193478df4e90f040016431996c45682659306840ecdadf83cfb9cd5ca0aa1b30",
            ),
        ),
        reader=_read_chinchilla,
        description=(
            "Hoffmann et al. (2022) Figure 4, as extracted from the SVG by Epoch AI "
            "(github.com/epoch-research/analyzing-chinchilla, commit 92258837, no licence stated). "
            "245 rows: N (parameters), D = C / (6 N) (tokens, derived), C (FLOPs), loss (nats/token), "
            "tokens_per_param, and besiroglu_excluded: True for the 5 highest-loss rows that "
            "Besiroglu et al. (2024) drop, leaving their 240-row fit."
        ),
    ),
    "colpret": Dataset(
        folder="hitchhiker_colpret",
        files=(DerivedFile("colpret_multifamily_primary.csv", _COLPRET_ORIGIN),),
        reader=_read_colpret,
        description=(
            "Multi-family subset of Choshen et al.'s ColPret collection (A Hitchhiker's Guide to Scaling Law "
            "Estimation): 11 families, every checkpoint, one primary metric per family; 73,920 rows. Columns: family, "
            "model, N (parameters; effective for MoE), D (tokens seen at the checkpoint), C (FLOPs), metric, value "
            "(the metric as logged), loss_nats (cross-entropy in nats where the metric is one or a perplexity; NaN "
            "for T5-Pile, whose val_perplexity is kept as logged), and ColPret's other columns. Units differ "
            "between families: model `value` per family, or loss_nats where present."
        ),
    ),
    "colpret_final": Dataset(
        folder="hitchhiker_colpret",
        files=(DerivedFile("colpret_final_checkpoints.csv", _COLPRET_ORIGIN),),
        reader=_read_colpret,
        description="The last checkpoint of every model in 'colpret' (313 rows, same columns).",
    ),
    "porian_isoflop": Dataset(
        folder="porian_isoflop",
        files=(DerivedFile("porian_isoflop_points.csv", _PORIAN_ORIGIN),),
        reader=_read_porian_points,
        description=(
            "Porian et al. (2024), Resolving Discrepancies in Compute-Optimal Scaling of Language Models: the IsoFLOP "
            "points of 15 training recipes (RefinedWeb and OpenWebText2; Kaplan-style vs corrected FLOP counting, "
            "warmup, decay, tuned optimiser), budgets 1.25e16-2.56e19 FLOPs, 5M-901M parameters; 1,745 rows. "
            "Columns: recipe (dataset|hparams|warmup|decay|param_count|loss_split), label (the paper's name), "
            "dataset, hparams, warmup, decay, param_count, loss_split, C (FLOPs), N (parameters, under the recipe's "
            "convention), D = C / (6 N) (tokens), loss (nats)."
        ),
    ),
    "porian_reference_fits": Dataset(
        folder="porian_isoflop",
        files=(DerivedFile("porian_reference_fits.csv", _PORIAN_ORIGIN),),
        reader=_read_porian_fits,
        description=(
            "Porian et al.'s own fits, one row per recipe: a_exponent_Nopt (N* ~ C^a, IsoFLOP method, bootstrap "
            "median) with its 95% interval, b_exponent_Dopt, rho (D*/N*) fits and L*(C) fits."
        ),
    ),
    "olmo_ladder": Dataset(
        folder="olmo_ladder",
        files=(
            DerivedFile(
                "olmo_ladder_tidy.csv",
                "tidied by the bayescale team from allenai/OLMo-ladder (commit 67a3f440, Apache-2.0), "
                "src/scripts/paper/data/ladder-runs/*.csv, with N from the repository's MODEL_PARAMS",
            ),
        ),
        reader=_read_olmo_ladder,
        description=(
            "OLMo model ladder (Bhagia et al. 2024): 190M-3B models x 0.5-10 x Chinchilla tokens, every checkpoint, "
            "plus the OLMo-2 7B-4T and 13B-5T targets; 3,862 rows. Columns: run, kind (ladder / target_7B_4T / "
            "target_13B_5T), size, N (non-embedding parameters), D (tokens), C = 6 N D, xC, rerun, step, lr, "
            "and loss_<set>: 11 validation cross-entropies in nats (e.g. loss_c4_en)."
        ),
    ),
}


def data_dir() -> Path:
    """The directory datasets are read from and downloaded to."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return user_cache_dir()


def user_cache_dir() -> Path:
    """bayescale's per-user cache: ``$XDG_CACHE_HOME/bayescale`` or ``~/.cache/bayescale``
    (``%LOCALAPPDATA%\\bayescale`` on Windows)."""
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "bayescale"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bayescale"


def describe(name: str) -> str:
    """Provenance and columns of dataset ``name``."""
    return _dataset(name).description


def load(name: str, *, download: bool = True) -> pd.DataFrame:
    """Load a public scaling dataset as a tidy DataFrame.

    Parameters
    ----------
    name : str
        A key of :data:`DATASETS`, e.g. ``"chinchilla"``.
    download : bool
        Fetch missing files from their source (pinned commit, checked SHA-256).

    Raises
    ------
    DatasetNotAvailable
        If a file is missing and cannot be downloaded; the message says where it was
        looked for and where it comes from.

    Examples
    --------
    >>> df = bs.datasets.load("chinchilla")                    # doctest: +SKIP
    >>> len(df), int(df.besiroglu_excluded.sum())             # doctest: +SKIP
    (245, 5)
    """
    dataset = _dataset(name)
    folder = data_dir() / dataset.folder
    paths = {f.name: _ensure(f, folder, download) for f in dataset.files}
    frame = dataset.reader(paths)
    frame.attrs["source"] = dataset.description
    return frame


def _dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; available datasets: {sorted(DATASETS)}")
    return DATASETS[name]


def _ensure(remote: RemoteFile | DerivedFile, folder: Path, download: bool) -> Path:
    path = folder / remote.name
    if path.exists():
        return path
    where = f"{path} (data directory from ${ENV_VAR})" if os.environ.get(ENV_VAR) else str(path)
    if isinstance(remote, DerivedFile):
        raise DatasetNotAvailable(
            f"{where} does not exist. It is a derived table with no downloadable original: {remote.origin}. "
            f"Set ${ENV_VAR} to a folder holding '{folder.name}/{remote.name}'"
        )
    if not download:
        raise DatasetNotAvailable(f"{where} does not exist and download=False; it comes from {remote.url}")
    try:
        with urllib.request.urlopen(remote.url, timeout=30) as response:
            content = response.read()
    except (urllib.error.URLError, OSError) as err:
        raise DatasetNotAvailable(
            f"{where} does not exist and downloading it from {remote.url} failed ({err}). "
            f"Download that file by hand into {folder}, or set ${ENV_VAR} to a folder that has "
            f"'{folder.name}/{remote.name}'"
        ) from None
    digest = hashlib.sha256(content).hexdigest()
    if digest != remote.sha256:
        raise DatasetNotAvailable(
            f"the file downloaded from {remote.url} has SHA-256 {digest}, expected {remote.sha256}; not using it"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, delete=False) as tmp:
            tmp.write(content)
        os.replace(tmp.name, path)
    except OSError as err:
        raise DatasetNotAvailable(f"downloaded {remote.url} but cannot write it to {path}: {err}") from None
    return path
