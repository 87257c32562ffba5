"""The authors' released LM log-probs (paper §4) as ordinary log-prob runs.

The Hugging Face dataset ``Oxford-HIPlab/iclr2026-lm-logprobs`` holds one CSV per LM of the LM
registry, ``<org>--<model>.csv`` with columns ``token_id, token_name, token_decoded`` and one
log-prob column per prompt (the ids of ``paper-54``). Each file is fetched once into the cache and
pinned by sha256: by ``lm_logprobs.toml`` where a pin is known, else recorded on its first verified
download and enforced after. A local folder (``data_dir`` or ``$RMVALUES_LM_LOGPROBS``) replaces the
network. The importer writes one run folder per model, which ``lm-values`` and ``implicit`` read as
if ``rmvalues logprobs`` had written it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import ChecksumError, FetchError, InputError

if TYPE_CHECKING:  # pragma: no cover
    from rmvalues.models.lm_registry import LMSpec
    from rmvalues.store.logprob_runs import LogprobRun

DATA_ENV = "RMVALUES_LM_LOGPROBS"
PROMPT_SET = "paper-54"
_RECORD = "recorded-sha256.json"


@cache
def _pins() -> dict[str, Any]:
    return tomllib.loads(files("rmvalues.analysis").joinpath("lm_logprobs.toml").read_text("utf-8"))


def dataset_url(filename: str, revision: str | None = None) -> str:
    pins = _pins()
    return pins["url"].format(dataset=pins["dataset"], revision=revision or pins["revision"],
                              filename=filename)


def _record_path() -> Path:
    from rmvalues.fetch import cache_dir

    return cache_dir("lm-logprobs") / _RECORD


def recorded_sha256() -> dict[str, str]:
    """sha256 recorded on first download, by file name."""
    path = _record_path()
    return json.loads(path.read_text("utf-8")) if path.exists() else {}


def expected_sha256(filename: str) -> str:
    """The pin of ``filename``: the data file's, else the one recorded on first download ("" none)."""
    return _pins().get("sha256", {}).get(filename) or recorded_sha256().get(filename, "")


def _local_copy(filename: str, data_dir: str | Path | None) -> Path | None:
    root = data_dir if data_dir is not None else os.environ.get(DATA_ENV)
    if not root:
        return None
    root = Path(root).expanduser()
    if not root.is_dir():
        raise InputError(f"log-prob folder {root} is not a directory; pass the folder holding the "
                         "released <org>--<model>.csv files.")
    path = root / filename
    if not path.is_file():
        raise FetchError(f"{filename} is not in the offline folder {root}; put it there, or unset "
                         f"--data-dir / ${DATA_ENV} to download it.")
    return path


def fetch_released_logprobs(spec: LMSpec, data_dir: str | Path | None = None) -> Path:
    """The verified cached copy of ``spec``'s released CSV (local folder first, else the dataset)."""
    from rmvalues.fetch import cache_dir, is_cached
    from rmvalues.io import atomic_path, atomic_write_text, sha256_file

    if not spec.released:
        raise InputError(f"{spec.key} is not in the authors' release ({_pins()['dataset']}); "
                         "compute its log-probs with `rmvalues logprobs --model "
                         f"{spec.key}`.")
    filename = spec.released_filename
    dest = cache_dir("lm-logprobs") / filename
    known = expected_sha256(filename)
    if known and is_cached(dest, known):
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        source = _local_copy(filename, data_dir)
        where = str(source) if source is not None else dataset_url(filename)
        if source is None:
            source = _download(filename, Path(tmp))
        actual = sha256_file(source)
        if known and actual != known:
            raise ChecksumError(f"{where}: sha256 {actual} differs from the pinned/recorded {known}; "
                                "the file was not kept. Use the pinned release, or delete the "
                                "record in the cache if the dataset was deliberately updated.")
        with atomic_path(dest) as part:
            shutil.copyfile(source, part)
    if not known:
        record = recorded_sha256() | {filename: actual}
        atomic_write_text(_record_path(), json.dumps(record, indent=2, sort_keys=True) + "\n")
    return dest


def _download(filename: str, into: Path) -> Path:
    import pooch

    url = dataset_url(filename)
    try:
        return Path(pooch.retrieve(url, known_hash=None, path=into, fname=filename,
                                   progressbar=False))
    except Exception as exc:  # network errors come in many types
        raise FetchError(f"could not download {url} ({exc}). Check the network, or pass "
                         f"--data-dir (or ${DATA_ENV}) with a local copy of the CSVs.") from exc


def read_released_logprobs(path: str | Path, model: str) -> LogprobRun:
    """One released CSV as a :class:`LogprobRun` (tokens = ``token_decoded``, ids = ``token_id``)."""
    import numpy as np

    from rmvalues.analysis.importers import VOCAB_ID_COLUMNS, _read_csv
    from rmvalues.lexicons import paper_normalize
    from rmvalues.prompts import load_prompt_set
    from rmvalues.store.logprob_runs import LogprobRun

    frame = _read_csv(path)
    head = list(frame.columns[:3])
    if head != list(VOCAB_ID_COLUMNS):
        raise InputError(f"{path}: first columns {head}, expected {list(VOCAB_ID_COLUMNS)} "
                         "(a released log-prob CSV).")
    prompts = [str(c) for c in frame.columns[3:]]
    known = set(load_prompt_set(PROMPT_SET).ids)
    unknown = [p for p in prompts if p not in known]
    if not prompts or unknown:
        raise InputError(f"{path}: prompt columns {unknown[:5] or '(none)'} are not prompts of "
                         f"{PROMPT_SET}; is this a released log-prob CSV?")
    values = frame[prompts].apply(lambda c: c.astype(float)).to_numpy(np.float32)
    if np.isnan(values).any():
        raise InputError(f"{path}: {int(np.isnan(values).sum())} empty log-prob cells; the file is "
                         "incomplete (re-fetch it).")
    if frame["token_id"].duplicated().any():
        raise InputError(f"{path}: token ids repeat; the file is corrupt (re-fetch it).")
    # The authors' readers drop rows whose decoded string is empty/NaN; kept here as "" (a join
    # key no lexicon word matches), so the run stays the full vocabulary.
    tokens = frame["token_decoded"].fillna("").astype(str).tolist()
    return LogprobRun(model=model, prompt_ids=prompts,
                      token_ids=frame["token_id"].to_numpy(np.int64), tokens=tokens,
                      normalized=[paper_normalize(t) for t in tokens], logprobs=values.T.copy())


def import_released_logprobs(
    out_dir: str | Path,
    models: Sequence[str] | None = None,
    *,
    data_dir: str | Path | None = None,
    sources: Mapping[str, str | Path] | None = None,
    progress: bool = False,
) -> list[Path]:
    """Write each released LM's log-probs as a run folder ``out_dir/<key>/`` (with its manifest).

    ``models``: LM registry keys or hub ids (default: every released LM). ``sources`` maps keys to
    CSVs already at hand (no fetch, no pin). Returns the written ``logprobs.parquet`` paths.
    """
    from rich.console import Console
    from rich.progress import track

    from rmvalues.io import sha256_file
    from rmvalues.models.lm_registry import get_lm, known_lms
    from rmvalues.store.logprob_runs import save_run

    if sources is not None:
        todo = [(get_lm(k), Path(v)) for k, v in sources.items()]
    else:
        chosen = [get_lm(k) for k in models] if models else \
            [s for s in known_lms().values() if s.released]
        todo = [(s, None) for s in chosen]
    out = Path(out_dir)
    written = []
    for spec, given in track(todo, description="importing log-probs", disable=not progress,
                             console=Console(stderr=True)):
        path = given if given is not None else fetch_released_logprobs(spec, data_dir)
        run = read_released_logprobs(path, spec.hub_id)
        run.meta = {"model_kind": spec.kind, "prompt_set": PROMPT_SET}
        written.append(save_run(run, out / spec.key, imported=True, lm_registry=spec.key,
                                family=spec.family, dtype=spec.dtype, source={
                                    "dataset": _pins()["dataset"], "revision": _pins()["revision"],
                                    "filename": spec.released_filename,
                                    "url": dataset_url(spec.released_filename),
                                    "sha256": sha256_file(path)}))
    return written
