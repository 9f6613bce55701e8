"""Public scaling datasets: read from a data directory, downloaded from their source when missing.

The data directory is ``$BAYESCALE_DATA_DIR`` when set, else a per-user cache
(``$XDG_CACHE_HOME/bayescale`` or ``~/.cache/bayescale``; ``%LOCALAPPDATA%\\bayescale``
on Windows). Files keep their original names under one folder per dataset, so a folder
of original files is a ready cache. A missing file is downloaded from its public source
at a pinned commit and checked against its SHA-256 before it is used.

Examples
--------
>>> import bayescale as bs
>>> sorted(bs.datasets.DATASETS)  # doctest: +NORMALIZE_WHITESPACE
['chinchilla', 'colpret', 'colpret_final', 'olmo_ladder', 'olmo_ladder_tasks', 'porian_isoflop',
 'porian_reference_fits']
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


# the tasks of Bhagia et al.'s ladder: (split as evaluated, chance level); accuracy is length-normalised
# (BoolQ's plain), as in the paper
OLMO_TASKS = {
    "mmlu": ("test", 0.25),
    "hellaswag": ("val", 0.25),
    "arc_challenge": ("test", 0.25),
    "arc_easy": ("test", 0.25),
    "piqa": ("val", 0.5),
    "csqa": ("val", 0.2),
    "socialiqa": ("val", 1 / 3),
    "openbookqa": ("test", 0.25),
    "boolq": ("val", 0.5),
    "winogrande": ("val", 0.5),
}
# MMLU is the average of its four categories weighted by their test questions, as the paper's tables are
_MMLU_QUESTIONS = {"stem": 3018, "humanities": 4705, "social_sciences": 3077, "other": 3242}


def _olmo_task_columns(raw: pd.DataFrame, task: str) -> tuple[np.ndarray, np.ndarray]:
    """Bits per byte and accuracy of one task at every checkpoint of a raw ladder file."""
    split, _ = OLMO_TASKS[task]
    if task == "mmlu":
        weights = np.array(list(_MMLU_QUESTIONS.values()), dtype=float)
        weights /= weights.sum()
        parts = list(zip(_MMLU_QUESTIONS, weights, strict=True))
        bpb = sum(w * raw[f"eval/downstream_bpb/mmlu_{c}_{split}_rc_5shot_bpb"] for c, w in parts)
        acc = sum(w * raw[f"eval/downstream/mmlu_{c}_{split}_rc_5shot_len_norm"] for c, w in parts)
        return np.asarray(bpb, dtype=float), np.asarray(acc, dtype=float)
    metric = "acc" if task == "boolq" else "len_norm"
    bpb = raw[f"eval/downstream_bpb/{task}_{split}_rc_5shot_bpb"]
    acc = raw[f"eval/downstream/{task}_{split}_rc_5shot_{metric}"]
    return np.asarray(bpb, dtype=float), np.asarray(acc, dtype=float)


def _read_olmo_tasks(paths: dict[str, Path]) -> pd.DataFrame:
    ladder = _read_olmo_ladder({"tidy": paths.pop("olmo_ladder_tidy.csv")})
    keep = ["run", "kind", "size", "N", "D", "C", "xC", "rerun", "step"]
    parts = []
    for name, path in paths.items():
        run = Path(name).stem
        rows = ladder.loc[ladder["run"] == run, keep].reset_index(drop=True)
        raw = pd.read_csv(path)
        if len(raw) != len(rows):
            raise ValueError(f"{name} has {len(raw)} checkpoints but the tidy ladder has {len(rows)} for run {run!r}")
        for task, (_, chance) in OLMO_TASKS.items():
            bpb, acc = _olmo_task_columns(raw, task)
            parts.append(rows.assign(task=task, chance=chance, bpb=bpb, acc=acc))
    return pd.concat(parts, ignore_index=True)


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
_OLMO_LADDER = (
    "https://raw.githubusercontent.com/allenai/OLMo-ladder/67a3f440f787d020da35e3ca8eeae475fae754f5/"
    "src/scripts/paper/data/ladder-runs"
)
_OLMO_TIDY = DerivedFile(
    "olmo_ladder_tidy.csv",
    "tidied by the bayescale team from allenai/OLMo-ladder (commit 67a3f440, Apache-2.0), "
    "src/scripts/paper/data/ladder-runs/*.csv, with N from the repository's MODEL_PARAMS",
)
# the ladder's original files, one per run (and the 7B and 13B targets), with their SHA-256
_OLMO_RUNS = {
    "190M-0.5xC.csv": "d4e9f80960149676352b61b739c4dca727bffee5e7a8f41919119365fcde0534",
    "190M-10xC.csv": "192b115c3f02b6503043280f8303c59f5b10897cd631f1b8ec6aea944d22faa6",
    "190M-1xC-rerun.csv": "50e635e970e4a29c838d644f942503f9ef6e0d78feb744055447413de42a3e2b",
    "190M-1xC.csv": "8ac0066547d5edec4d05d2b861a26c7faf591eef6971e11acba2450a45e69c27",
    "190M-2xC.csv": "db90c75f8d031d0754e7108f1a8d16f372603e0c04d2cb00cca08cf272ecf86a",
    "190M-5xC.csv": "aefe54fa03bd158d6da178b1eb2ece88cb0681bb32403845b6e544ae9e4e5dcf",
    "1B-0.5xC.csv": "7c44ecf10ddaeba4c5ceb26ac0db8b9454163c19903556238d3117685768126a",
    "1B-10xC.csv": "ec7e7487c67a774d9b919ec35121966ded7ae2ce5ede135f1d32f509f451476f",
    "1B-1xC-rerun.csv": "878e664acbb68df93b046a4242ccac12b321276e1f2fcbbbc6fa8779bd5eaa24",
    "1B-1xC.csv": "7fe91f0552829238e591e55c03f66b743ac5931388d9710457a845d92c2d9102",
    "1B-2xC.csv": "34ba12a08a52e10e89a71d88a5c13538c3df21e5e993c476cadb08eb4b2eb354",
    "1B-5xC.csv": "d195153f05b846f6d4f8ca95247d1f79d9d00e898d856b244b17e20431539ddb",
    "370M-0.5xC.csv": "04e12eec843bb7b8bf292ec8837edd8db63010469e457d145a1757d48a91bac9",
    "370M-10xC.csv": "3f25b4ec4035caeb71b787d165857667779dc3b92739c6379b8f8ce7079fcb58",
    "370M-1xC-rerun.csv": "e27c89356cc6c842585c0232bb3be20bd066c2d4f859d1a3c772c43e5b6887c7",
    "370M-1xC.csv": "3597a61872596affbb61e83f36c7cc3fe43485c3ed30ba6d658064b57edcea07",
    "370M-2xC.csv": "73c686e580ad0600ca12334bf22ab3dad3265583a948e3beaae5b79b9a20c137",
    "370M-5xC.csv": "199905d322b0332b69f1d0a40de9be43e5eb3cf576fc1d3031578cdea09708fa",
    "3B-0.5xC.csv": "35247d4ff9af52c11bdec95a31e069599f43564ba6094a3893b49d91aa258410",
    "3B-10xC.csv": "1ff388361b6d8e4548aaaaecd8a0437a21e28b9af11c4696225e322c8526e488",
    "3B-1xC-rerun.csv": "5c2b189aa82b964c4005fce327b42e9399110d297c83903d03d03d0892e11d7d",
    "3B-1xC.csv": "bd5dbad1b2942c58439006f77dba46ff2f66ad8760f8d709f9ced4fcb387bedb",
    "3B-2xC.csv": "b933055d54221855c893245331770c0e7314dea5203518640da88773d92d8e47",
    "3B-5xC.csv": "4b02c35ea9b3623402ac3a401dbc66ed827dcecede04343ea65cc2bbf6bfd962",
    "760M-0.5xC.csv": "a02cee96b21c78a6a9c71ba99ead71c454fc6561e50b778681ab1d7182df6cf6",
    "760M-10xC.csv": "e256c9df6d3b7af66bbcf4dc7ca84b45a812bd205b70648ca5177c8b74f6ff40",
    "760M-1xC-rerun.csv": "f5b2775ebc27c80f21e13e0bf35622007b8b30f09734ab0bb6f7e871bf33103b",
    "760M-1xC.csv": "a830185275c91cc077379540ec91a71b4bea6f191ca99a8090c851be19e7956d",
    "760M-2xC.csv": "8c1ad2bf7da390b9eed24af7b6eb12a6393cc077164d51b4e4740f7221f1193c",
    "760M-5xC.csv": "9c08b58d2625f427253bbd2079bad3a90726a66486154dd4f82ef84560e275ec",
    "peteish13_eval_final.csv": "8cbdd4c2818b05ff30476a9bd4ecae620da89193ca61183bc2d61e111a9d0059",
    "peteish13_eval_full.csv": "14cb53fac27ca2553a061f055f31fdc297272026c7eccfb195073656fd21fb2f",
    "peteish7_eval_anneal.csv": "0742d6c113aa0f9c789cf9e5745678fc6f30eb9b873a1f98068fc6f6522c85df",
    "peteish7_eval_full.csv": "3b7c0c268500292564540a951a757f0a938b5c17949fdaec6822068f7d65affb",
}
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
        files=(_OLMO_TIDY,),
        reader=_read_olmo_ladder,
        description=(
            "OLMo model ladder (Bhagia et al. 2024): 190M-3B models x 0.5-10 x Chinchilla tokens, every checkpoint, "
            "plus the OLMo-2 7B-4T and 13B-5T targets; 3,862 rows. Columns: run, kind (ladder / target_7B_4T / "
            "target_13B_5T), size, N (non-embedding parameters), D (tokens), C = 6 N D, xC, rerun, step, lr, "
            "and loss_<set>: 11 validation cross-entropies in nats (e.g. loss_c4_en)."
        ),
    ),
    "olmo_ladder_tasks": Dataset(
        folder="olmo_ladder",
        files=(
            _OLMO_TIDY,
            *(RemoteFile(f"ladder-runs/{name}", f"{_OLMO_LADDER}/{name}", sha) for name, sha in _OLMO_RUNS.items()),
        ),
        reader=_read_olmo_tasks,
        description=(
            "The OLMo ladder's downstream evaluations (Bhagia et al. 2024): every checkpoint of every run in "
            "'olmo_ladder', with each of 10 multiple-choice tasks' bits per byte of the correct answer and its "
            "accuracy (5-shot, length-normalised; BoolQ plain), one row per checkpoint and task; MMLU is the "
            "average of its four categories weighted by their test questions. Columns: run, kind (ladder / "
            "target_7B_4T / target_13B_5T), size, N, D, C, xC, rerun, step, task (mmlu, hellaswag, "
            "arc_challenge, arc_easy, piqa, csqa, socialiqa, openbookqa, boolq, winogrande), chance (the "
            "task's chance level), bpb, acc."
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
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
            tmp.write(content)
        os.replace(tmp.name, path)
    except OSError as err:
        raise DatasetNotAvailable(f"downloaded {remote.url} but cannot write it to {path}: {err}") from None
    return path
