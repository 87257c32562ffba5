"""Python API of the reward-model scoring stage: ``rmvalues.api.score(...)``.

Scores every (prompt, candidate) pair with one reward model through the prefix-cached engine, one
resumable shard per prompt, and writes the long results table with its manifest. The CLI command
``rmvalues score`` is a thin layer over :func:`score`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rmvalues.errors import InputError, ScoreError
from rmvalues.models.chat import DEFAULT_DATE_STRING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from rmvalues.engines.candidates import CandidateSet
    from rmvalues.models.chat import ChatSplit
    from rmvalues.models.loading import RewardModel

log = logging.getLogger("rmvalues.score")

#: Bump when a change to the engine changes the numbers it produces (invalidates stored shards).
ENGINE_VERSION = 1
#: Bump when paper mode's numbers change (v2: per-model dtype, head dtype, pad pooling, URM logit).
PAPER_MODE_VERSION = 2
#: Default ``--verify`` tolerance on max |Δ| per dtype, as a fraction of the standard deviation of
#: the run's scores. bf16/fp16: twice the largest measured cost of reordered reductions (0.076 x
#: std in bf16, 0.0063 x std in fp16, tiny Gemma-2s, tests/test_engine_low_precision.py), which
#: kernels for other batch shapes or devices may incur; the CPU engine itself measures <= 4e-6 x std.
VERIFY_TOLERANCE = {"float32": 1e-4, "float16": 0.013, "bfloat16": 0.16}
#: How many offending candidates a NaN/inf error lists.
_SHOW_BAD = 10


@dataclass
class ScoreResult:
    """What a run produced: the table, where it is, and a one-line summary."""

    table: pd.DataFrame
    path: Path | None
    summary: str
    manifest: dict[str, Any] = field(default_factory=dict)


def resolve_prompts(prompts: Any, *, allow_system: bool = False) -> tuple[str, list[tuple[str, str]]]:
    """``(set name, [(prompt id, text), ...])`` from a set name/file, a PromptSet, a mapping or list.

    A set whose prompts carry system prompts is refused unless ``allow_system`` (the caller then
    reads them from the set's ``systems``), so no path drops them silently.
    """
    if isinstance(prompts, (str, Path)):
        from rmvalues.prompts import load_prompt_set

        prompts = load_prompt_set(prompts)
    if getattr(prompts, "systems", None) and not allow_system:
        raise InputError(
            f"prompt set {getattr(prompts, 'name', '')!r} has system prompts, which this path does "
            "not render; score it with `rmvalues score` (one process), or drop the system prompts."
        )
    if hasattr(prompts, "prompts"):
        name = str(getattr(prompts, "name", "prompts"))
        pairs = [(p.id, p.text) for p in prompts.prompts]
    elif isinstance(prompts, Mapping):
        name, pairs = "custom", [(str(k), str(v)) for k, v in prompts.items()]
    else:
        name, pairs = "custom", [(f"p{i}", str(t)) for i, t in enumerate(prompts)]
    if not pairs:
        raise InputError("the prompt set is empty; give at least one prompt")
    ids = [pid for pid, _ in pairs]
    if len(set(ids)) != len(ids):
        raise InputError(f"prompt ids must be unique; duplicated: {sorted({i for i in ids if ids.count(i) > 1})}")
    return name, pairs


def _frame(model: str, prompt_id: str, candidates: CandidateSet, scores: np.ndarray) -> pd.DataFrame:
    import pandas as pd

    from rmvalues.lexicons import paper_normalize

    n = len(candidates)
    token_ids = (pd.array(candidates.token_ids, dtype="Int64") if candidates.token_ids is not None
                 else pd.array([None] * n, dtype="Int64"))
    return pd.DataFrame({
        "model": [model] * n,
        "prompt_id": [prompt_id] * n,
        "candidate_kind": [candidates.kind] * n,
        "token_id": token_ids,
        "candidate": list(candidates.texts),
        "normalized": [paper_normalize(t) for t in candidates.texts],
        "score": scores.astype(np.float32),
    })


def _check_finite(scores: np.ndarray, candidates: CandidateSet, model: str, prompt_id: str) -> None:
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size == 0:
        return
    shown = ", ".join(
        (f"id {candidates.token_ids[i]} {candidates.texts[i]!r}" if candidates.token_ids
         else repr(candidates.texts[i])) + f" -> {scores[i]}"
        for i in bad[:_SHOW_BAD]
    )
    more = f" (and {bad.size - _SHOW_BAD} more)" if bad.size > _SHOW_BAD else ""
    raise ScoreError(
        f"{model}, prompt {prompt_id!r}: {bad.size} non-finite score(s): {shown}{more}. The model "
        "overflows in this dtype or its weights are broken; try --dtype float32. Nothing was "
        "written for this prompt."
    )


def _determinism() -> dict[str, Any]:
    import torch

    return {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "torch_threads": torch.get_num_threads(),
    }


def _Progress(enabled: bool, total: int, description: str) -> Any:
    """A progress bar on a terminal, periodic lines when redirected (:mod:`rmvalues.progress`)."""
    from rmvalues.progress import Progress

    return Progress(enabled, total, description)


def _conversations(rm: RewardModel, split: ChatSplit, candidates: CandidateSet,
                   paper_compatible: bool) -> list[list[int]]:
    """Full ids of every candidate conversation (the reference path's and paper mode's input).

    Exact mode builds them with :func:`~rmvalues.engines.reference.reference_conversations`
    (``apply_chat_template(tokenize=True)``), not from the fast path's prefix/suffix split, so
    ``--verify`` checks the split too.
    """
    if paper_compatible:
        from rmvalues.engines.paper_compat import paper_conversations

        return paper_conversations(rm.tokenizer, split, candidates)
    from rmvalues.engines.reference import reference_conversations

    return reference_conversations(rm.tokenizer, split, candidates)


def default_verify_tolerance(dtype: str, scores: Sequence[float]) -> float:
    """``VERIFY_TOLERANCE[dtype]`` x the standard deviation of the run's scores (x 1 if they do not
    spread), so the check is as strict for an RM whose rewards span 0.1 as for one spanning 100."""
    spread = float(np.std(np.asarray(scores, dtype=np.float64))) if len(scores) > 1 else 0.0
    factor = VERIFY_TOLERANCE.get(dtype, VERIFY_TOLERANCE["bfloat16"])
    return factor * (spread if spread > 0 else 1.0)


def verify_scores(
    rm: RewardModel,
    splits: Mapping[str, ChatSplit],
    candidates: CandidateSet,
    table: pd.DataFrame,
    n: int,
    *,
    tolerance: float,
    paper_compatible: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Re-score ``n`` random (prompt, candidate) pairs with the reference path; fail beyond tolerance."""
    from rmvalues.engines.paper_compat import paper_pooling
    from rmvalues.engines.reference import reference_score

    pool = paper_pooling(rm) if paper_compatible else None
    rng = np.random.default_rng(seed)
    prompt_ids = list(splits)
    rows = rng.choice(len(table), size=min(n, len(table)), replace=False)
    worst = (0.0, None)
    for row in sorted(rows):
        prompt_index, cand_index = divmod(int(row), len(candidates))
        prompt_id = prompt_ids[prompt_index]
        one = candidates.subset([cand_index])
        conversation = _conversations(rm, splits[prompt_id], one, paper_compatible)
        ref = float(reference_score(rm, conversation, pool)[0])
        fast = float(table["score"].iloc[int(row)])
        delta = abs(ref - fast)
        if not delta <= worst[0]:
            worst = (delta, (prompt_id, one.texts[0], fast, ref))
    result = {"n": len(rows), "max_abs_diff": worst[0], "tolerance": tolerance}
    if worst[0] > tolerance:
        prompt_id, text, fast, ref = worst[1]
        raise ScoreError(
            f"--verify failed: max |fast - reference| = {worst[0]:.3g} > {tolerance:g} (prompt "
            f"{prompt_id!r}, candidate {text!r}: fast {fast:.6g}, reference {ref:.6g}). The fast "
            "path disagrees with one full forward per conversation; report this as a bug."
        )
    return result


def score(
    model: str | Path | RewardModel,
    prompts: Any = "paper-54",
    candidates: str | CandidateSet | Sequence[str] | Sequence[int] = "vocab",
    out: str | Path | None = None,
    *,
    revision: str | None = None,
    batch_size: int | None = None,
    dtype: str | None = None,
    attn_implementation: str | None = None,
    device: str | None = None,
    date_string: str = DEFAULT_DATE_STRING,
    chat_template: str | Path | None = None,
    paper_compatible: bool = False,
    trust_remote_code: bool = False,
    verify: int = 0,
    verify_tolerance: float | None = None,
    mode: str = "auto",
    progress: bool = False,
    on_shard: Callable[[str], None] | None = None,
    truncate_candidates: bool = False,
    gguf_file: str | None = None,
) -> ScoreResult:
    """Score every prompt × candidate with one reward model; write shards, table and manifest to ``out``.

    ``model``: registry key, hub id, local folder, a ``rmvalues train`` run or ``checkpoint-N``
    folder, ``asset:NAME`` (a bundled GGUF model; ``gguf_file`` picks the file of a folder), or a
    loaded :class:`RewardModel`.
    ``prompts``: a prompt-set name/file (``"paper-54"``), a PromptSet, ``{id: text}`` or a list.
    ``candidates``: ``"vocab"``, ``"vocab:0-4095"``, ``"lexicon:NAME"``, ``"file:PATH"``, a
    CandidateSet, a list of strings (text) or of ints (token ids).
    Re-running with the same settings resumes: finished shards are read back, not recomputed.
    ``verify``: re-score that many random pairs through the reference path and fail if max |Δ|
    exceeds ``verify_tolerance`` (default by dtype). ``on_shard`` is called after each new shard.
    A candidate longer than the model's context is refused unless ``truncate_candidates``.
    """
    from rmvalues.engines.candidates import resolve_candidates
    from rmvalues.store.manifest import build_manifest
    from rmvalues.store.shards import ShardStore, check_writable

    started = time.perf_counter()
    if out is not None:
        check_writable(out, create=False)
    if batch_size is not None and batch_size < 1:
        raise InputError(f"--batch-size must be at least 1 (got {batch_size}); omit it for the default")
    # a prompt-set file, so `analyze` can read its factors back (a built-in goes by name)
    prompt_file = (str(Path(prompts).resolve()) if isinstance(prompts, (str, Path))
                   and Path(prompts).is_file() else None)
    if isinstance(prompts, (str, Path)):
        from rmvalues.prompts import load_prompt_set

        prompts = load_prompt_set(prompts)
    set_name, pairs = resolve_prompts(prompts, allow_system=True)
    systems = dict(getattr(prompts, "systems", None) or {})
    candidates = early_candidates(candidates)
    if verify < 0:
        raise InputError(f"--verify must be >= 0 (got {verify})")

    from rmvalues.engines import paper_compat

    if paper_compatible:  # the paper's dtype per model, its score definition and pooling
        dtype = paper_compat.paper_dtype(model, dtype)
    rm = _load(model, revision=revision, dtype=dtype, attn_implementation=attn_implementation,
               device=device, chat_template=chat_template, trust_remote_code=trust_remote_code,
               gguf_file=gguf_file)
    if paper_compatible:
        rm = paper_compat.paper_model(rm)
    cands = resolve_candidates(candidates, rm.tokenizer)
    from rmvalues.engines.score import Engine
    from rmvalues.models.chat import split_chat

    batch = batch_size or (rm.spec.batch_size if rm.spec else 64)
    engine = Engine(rm, batch_size=batch, mode="full" if paper_compatible else mode,
                    pool=paper_compat.paper_pooling(rm) if paper_compatible else None)
    splits = {pid: split_chat(rm.tokenizer, text, date_string=date_string,
                              chat_template=chat_template, system=systems.get(pid))
              for pid, text in pairs}
    provenance = rm.provenance()
    base_config = shard_config(rm, cands, paper_compatible=paper_compatible)
    if truncate_candidates:  # cut candidates change the numbers: never share shards with a plain run
        base_config["truncate_candidates"] = engine.truncate = True
    store = ShardStore(out, rm.name, lock=True) if out is not None else None
    bar = _Progress(progress, len(pairs) * len(cands), f"scoring {rm.name}")
    frames, keys, resumed, scored, scoring_seconds = [], {}, 0, 0, 0.0
    try:
        for pid, text in pairs:
            split = splits[pid]
            key = shard_key(base_config, text, split)
            keys[pid] = key
            frame = (store.load(pid, key, rows=len(cands),
                                expect={"candidates": base_config["candidates"]})
                     if store is not None else None)
            if frame is not None:
                resumed += 1
                bar.advance(len(cands))
            else:
                tick = time.perf_counter()
                frame = score_shard(engine, pid, split, cands, paper_compatible=paper_compatible,
                                    on_batch=bar.advance)
                scoring_seconds += time.perf_counter() - tick
                scored += len(cands)
                if store is not None:
                    store.save(pid, key, frame, shard_manifest(base_config, pid, text, key, split))
                    if on_shard is not None:
                        on_shard(pid)
            frames.append(frame)
    finally:
        bar.close()
        if store is not None:
            store.release()  # every shard is on disk; the merged table is written atomically

    import pandas as pd

    table = pd.concat(frames, ignore_index=True)
    verification = None
    if verify:
        tolerance = (verify_tolerance if verify_tolerance is not None
                     else default_verify_tolerance(provenance["dtype"], table["score"]))
        verification = verify_scores(rm, splits, cands, table, verify, tolerance=tolerance,
                                     paper_compatible=paper_compatible)
    elapsed = time.perf_counter() - started
    fields = {
        **provenance,
        "engine": "paper-compatible" if paper_compatible else engine.mode,
        "engine_version": ENGINE_VERSION,
        **paper_compat.score_fields(rm, paper_compatible),
        **run_fields(set_name, pairs, cands, splits),
        "prompt_file": prompt_file,
        "special_token_ids": ([t for t, s in zip(cands.token_ids, cands.special) if s]
                              if cands.special else []),
        "batch_size": engine.runner.batch_size,
        "determinism": _determinism(),
        "shard_keys": keys,
        "verify": verification,
        "truncated_candidates": engine.truncated,
    }
    path = None
    if store is not None:
        path = store.write_table(table, build_manifest("rm-scores", **fields))
    notes = [fields["engine"]]
    if scored:
        notes.insert(0, f"{scored / max(scoring_seconds, 1e-9):,.0f} candidates/s")
    if resumed:
        notes.append(f"{resumed} shard(s) resumed")
    if store is not None and store.rejected:
        notes.append(f"{len(store.rejected)} stored shard(s) failed verification and were recomputed")
    if verification:
        notes.append(f"verify max |Δ| {verification['max_abs_diff']:.2g}")
    summary = (f"{rm.name}: {len(pairs)} prompt(s) x {len(cands):,} {cands.kind} candidates = "
               f"{len(table):,} scores in {elapsed:.1f}s ({', '.join(notes)})"
               + (f" -> {path}" if path else ""))
    return ScoreResult(table=table, path=path, summary=summary, manifest=fields)


def run_fields(prompt_set: str, prompts: Sequence[tuple[str, str]], candidates: CandidateSet,
               splits: Mapping[str, ChatSplit]) -> dict[str, Any]:
    """The prompt, candidate and conversation fields of a run's manifest.

    The conversation fields are a shard's (:func:`~rmvalues.models.chat.conversation_kwargs`), with
    ``prefix_ids`` per prompt. Shared with :func:`rmvalues.scale.merge.merge_plan`, so a merged
    table records them as :func:`score` does.
    """
    from rmvalues.models.chat import conversation_kwargs

    return {
        "prompt_set": prompt_set,
        "prompt_ids": [pid for pid, _ in prompts],
        "prompt_texts": dict(prompts),  # a custom set is shown in reports from here
        "candidates": {"kind": candidates.kind, "source": candidates.source,
                       "count": len(candidates), "hash": candidates.content_hash()},
        **conversation_kwargs(next(iter(splits.values()))),
        "prefix_ids": {pid: list(s.prefix_ids) for pid, s in splits.items()},
    }


def shard_config(rm: RewardModel, candidates: CandidateSet, *,
                 paper_compatible: bool = False) -> dict[str, Any]:
    """What every shard key of one model's run hashes besides the prompt (model, libraries, candidates).

    A hook for :mod:`rmvalues.scale`: a unit scoring a slice of the candidates passes that slice, so
    its key differs from the whole prompt's, while the whole set gives exactly :func:`score`'s key.
    """
    from rmvalues.store.manifest import library_versions

    versions = library_versions()
    return {
        "engine_version": ENGINE_VERSION,
        "provenance": rm.provenance(),
        "libraries": {k: versions.get(k) for k in ("torch", "transformers", "tokenizers")},
        "candidates": candidates.content_hash(),
        "paper_compatible": paper_compatible and PAPER_MODE_VERSION,
    }


def shard_key(config: Mapping[str, Any], prompt_text: str, split: ChatSplit) -> str:
    """The key of one prompt's shard: :func:`shard_config` plus the prompt and its conversation."""
    from rmvalues.models.chat import conversation_kwargs
    from rmvalues.store.manifest import stable_hash

    # Everything that affects this prompt's numbers; batch size and engine path are left out on
    # purpose (tests hold them equal), so an OOM-halved run still resumes.
    return stable_hash({**config, "prompt": prompt_text, **conversation_kwargs(split)})


def shard_manifest(config: Mapping[str, Any], prompt_id: str, prompt_text: str, key: str,
                   split: ChatSplit, **extra: Any):
    """The manifest written beside one shard."""
    from rmvalues.models.chat import conversation_kwargs
    from rmvalues.store.manifest import build_manifest

    return build_manifest("rm-scores-shard", prompt_id=prompt_id, prompt=prompt_text,
                          shard_key=key, **config, **conversation_kwargs(split), **extra)


def score_shard(engine: Any, prompt_id: str, split: ChatSplit, candidates: CandidateSet, *,
                paper_compatible: bool = False,
                on_batch: Callable[[int], None] | None = None) -> pd.DataFrame:
    """One prompt x ``candidates`` scored by ``engine`` (an :class:`~rmvalues.engines.score.Engine`),
    checked finite, as a results frame in candidate order."""
    rm = engine.rm
    if paper_compatible:
        scores = engine.score_conversations(_conversations(rm, split, candidates, True), on_batch)
    else:
        scores = engine.score_prompt(split, candidates, on_batch)
    _check_finite(scores, candidates, rm.name, prompt_id)
    return _frame(rm.name, prompt_id, candidates, scores)


def early_candidates(candidates: Any) -> Any:
    """Resolve what needs no tokenizer (lexicon, file, text) now, so bad input fails before loading.

    Public so that :mod:`rmvalues.scale` resolves a run's candidates exactly as :func:`score` does.
    """
    from rmvalues.engines.candidates import CandidateSet, resolve_candidates

    if isinstance(candidates, CandidateSet):
        return candidates
    if isinstance(candidates, str):
        return candidates if candidates.startswith("vocab") else resolve_candidates(candidates, None)
    items = list(candidates)
    if not items or all(isinstance(x, str) for x in items):
        return resolve_candidates(items, None)
    return items


def _load(model: Any, **kwargs: Any) -> RewardModel:
    from rmvalues.models.checkpoints import load_model_ref
    from rmvalues.models.loading import RewardModel

    if isinstance(model, RewardModel):
        return model
    return load_model_ref(model, **kwargs)
