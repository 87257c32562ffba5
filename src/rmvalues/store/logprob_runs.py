"""A causal LM's log-prob run: the (prompts × vocabulary) matrix in memory, a results table on disk.

On disk a run is the long results table (:data:`~rmvalues.store.schema.SCORE_SCHEMA`,
``candidate_kind="token"``, ``score`` = log-prob) plus a manifest and the tokenizer's vocabulary
table; :func:`~rmvalues.engines.logprobs.run_logprobs` computes one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rmvalues.errors import InputError, StoreError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

RESULTS_FILE = "logprobs.parquet"
VOCAB_FILE = "vocabulary.parquet"
MANIFEST_KIND = "lm-logprobs"


@dataclass
class LogprobRun:
    """One model's next-token log-probs: ``logprobs[i, j]`` for prompt ``prompt_ids[i]`` and token
    ``token_ids[j]`` (decoded ``tokens[j]``, normalised ``normalized[j]``)."""

    model: str
    prompt_ids: list[str]
    token_ids: np.ndarray
    tokens: list[str]
    normalized: list[str]
    logprobs: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.token_ids = np.asarray(self.token_ids, dtype=np.int64)
        self.logprobs = np.asarray(self.logprobs, dtype=np.float32)
        n_p, n_v = len(self.prompt_ids), len(self.token_ids)
        if self.logprobs.shape != (n_p, n_v) or len(self.tokens) != n_v \
                or len(self.normalized) != n_v:
            raise StoreError(
                f"log-prob run {self.model!r} is inconsistent: matrix {self.logprobs.shape}, "
                f"{n_p} prompts, {n_v} token ids, {len(self.tokens)} tokens"
            )
        if len(set(self.prompt_ids)) != n_p:
            raise StoreError(f"log-prob run {self.model!r} repeats a prompt id")

    def matrix(self, prompt_ids: Iterable[str] | None = None) -> np.ndarray:
        """Rows of the log-prob matrix for ``prompt_ids`` (all, in order, by default)."""
        if prompt_ids is None:
            return self.logprobs
        index = {p: i for i, p in enumerate(self.prompt_ids)}
        wanted = list(prompt_ids)
        missing = [p for p in wanted if p not in index]
        if missing:
            raise InputError(
                f"run {self.model!r} has no log-probs for prompt(s) {missing[:5]}; it covers "
                f"{len(self.prompt_ids)} prompts ({', '.join(self.prompt_ids[:3])}, …). Re-run "
                "`rmvalues logprobs` with a prompt set containing them."
            )
        return self.logprobs[[index[p] for p in wanted]]

    def to_frame(self) -> pd.DataFrame:
        """The long results table (one row per prompt × token), ``SCORE_COLUMNS`` order."""
        return self.to_arrow().to_pandas()

    def to_arrow(self):
        """The long results table as a pyarrow Table with exactly ``SCORE_SCHEMA``.

        Strings are built once per vocabulary and repeated through dictionary indices, so a run of
        54 prompts × 262k tokens converts without millions of Python strings.
        """
        import pyarrow as pa

        from rmvalues.store.schema import SCORE_SCHEMA

        n_p, n_v = self.logprobs.shape

        def repeat(values: Sequence[str], index: np.ndarray):
            return pa.DictionaryArray.from_arrays(pa.array(index), pa.array(list(values),
                                                                           pa.string())) \
                .cast(pa.string())

        zeros = np.zeros(n_p * n_v, np.int32)
        by_token = np.tile(np.arange(n_v, dtype=np.int32), n_p)
        columns = [
            repeat([self.model], zeros),
            repeat(self.prompt_ids, np.repeat(np.arange(n_p, dtype=np.int32), n_v)),
            repeat(["token"], zeros),
            pa.array(np.tile(self.token_ids, n_p), pa.int64()),
            repeat(self.tokens, by_token),
            repeat(self.normalized, by_token),
            pa.array(self.logprobs.ravel(), pa.float32()),
        ]
        return pa.Table.from_arrays(columns, schema=SCORE_SCHEMA)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, model: str | None = None) -> LogprobRun:
        """Rebuild a run from a long log-prob table of one model (every prompt, same token ids)."""
        import pandas as pd

        needed = {"model", "prompt_id", "token_id", "candidate", "score"}
        missing = needed - set(frame.columns)
        if missing:
            raise StoreError(f"log-prob table lacks column(s) {sorted(missing)}")
        if "candidate_kind" in frame.columns and (frame["candidate_kind"] != "token").any():
            raise StoreError("log-prob table has non-token rows; implicit rewards need token runs")
        models = pd.unique(frame["model"])
        if model is None:
            if len(models) != 1:
                raise InputError(
                    f"log-prob table holds {len(models)} models ({', '.join(map(str, models[:4]))}); "
                    "pass model=... to pick one."
                )
            model = str(models[0])
        elif len(models) != 1 or models[0] != model:
            frame = frame[frame["model"] == model]
            if frame.empty:
                raise InputError(f"model {model!r} is not in the log-prob table")
        p_codes, prompts = pd.factorize(frame["prompt_id"], sort=False)
        tids = frame["token_id"].to_numpy(dtype=np.int64)
        vocab, t_codes = np.unique(tids, return_inverse=True)
        counts = np.bincount(p_codes, minlength=len(prompts))
        if (counts != len(vocab)).any() or len(frame) != len(prompts) * len(vocab):
            bad = [str(prompts[i]) for i in np.flatnonzero(counts != len(vocab))[:5]]
            raise StoreError(
                f"log-prob run {model!r} is incomplete: prompt(s) {bad} do not have one row for each "
                f"of the {len(vocab)} token ids; re-run `rmvalues logprobs` for this model."
            )
        matrix = np.full((len(prompts), len(vocab)), np.nan, np.float32)
        matrix[p_codes, t_codes] = frame["score"].to_numpy(dtype=np.float32)
        first = np.zeros(len(vocab), np.int64)
        first[t_codes[::-1]] = np.arange(len(frame))[::-1]
        cand = frame["candidate"].to_numpy(dtype=object)[first]
        if "normalized" in frame.columns:
            norm = frame["normalized"].to_numpy(dtype=object)[first]
        else:
            from rmvalues.lexicons import paper_normalize

            norm = [paper_normalize(c) for c in cand]
        return cls(model=model, prompt_ids=[str(p) for p in prompts], token_ids=vocab,
                   tokens=[str(c) for c in cand], normalized=[str(c) for c in norm],
                   logprobs=matrix)


def save_run(run: LogprobRun, out_dir: str | Path, *, vocabulary: pd.DataFrame | None = None,
             **manifest_fields: Any) -> Path:
    """Write ``out_dir/logprobs.parquet`` (+ manifest) and ``out_dir/vocabulary.parquet``."""
    import pyarrow.parquet as pq

    from rmvalues.io import staged_folder
    from rmvalues.store.manifest import build_manifest, manifest_path, write_manifest

    fields = {"model": run.model, "prompt_ids": run.prompt_ids, "n_tokens": len(run.token_ids),
              **run.meta, **manifest_fields}
    with staged_folder(out_dir, MANIFEST_KIND) as stage:
        if vocabulary is not None:
            vocabulary.to_parquet(stage / VOCAB_FILE, index=False)
        pq.write_table(run.to_arrow(), stage / RESULTS_FILE)
        write_manifest(manifest_path(stage / RESULTS_FILE), build_manifest(MANIFEST_KIND, **fields))
    return Path(out_dir) / RESULTS_FILE


def load_run(path: str | Path, *, model: str | None = None) -> LogprobRun:
    """Read a stored log-prob run: its directory or its ``logprobs.parquet`` file."""
    import pyarrow.parquet as pq

    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise StoreError(
            f"no log-prob run at {path}; pass a directory written by `rmvalues logprobs --out DIR` "
            "(it holds logprobs.parquet)."
        )
    try:
        table = pq.read_table(path, read_dictionary=["model", "prompt_id", "candidate_kind",
                                                     "candidate", "normalized"])
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise StoreError(f"cannot read log-prob run {path}: {exc}") from exc
    run = LogprobRun.from_frame(table.to_pandas(), model=model)
    from rmvalues.store.manifest import manifest_path, read_manifest

    mpath = manifest_path(path)
    if mpath.exists():
        run.meta = dict(read_manifest(mpath).fields)
        run.meta.pop("prompt_ids", None)
    return run


def as_run(source: Any) -> LogprobRun:
    """A run object as is, a stored run (its directory or logprobs.parquet) read from disk, or a
    run's long frame."""
    if isinstance(source, LogprobRun):
        return source
    if not isinstance(source, (str, Path)):
        return LogprobRun.from_frame(source)
    path = Path(source)
    if not path.exists():
        raise StoreError(
            f"{source!r} is not a stored log-prob run; compute it first with `rmvalues logprobs "
            f"--model {source} --kind pretrained|instruct --out DIR` and pass DIR."
        )
    return load_run(path)
