"""Python API of the reward-model scoring stage: ``rmvalues.api.score(...)``.

Scores every (prompt, candidate) pair with one reward model, one resumable shard per prompt, and
writes the long results table with its manifest. A short facade over :mod:`rmvalues.runs`
(options -> plan of units -> local worker -> table -> optional verify); the CLI command
``rmvalues score`` is a thin layer over :func:`score`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from rmvalues.engines.candidates import CandidateSet
    from rmvalues.models.loading import RewardModel


@dataclass
class ScoreResult:
    """What a run produced: the table, where it is, and a one-line summary."""

    table: pd.DataFrame
    path: Path | None
    summary: str
    manifest: dict[str, Any] = field(default_factory=dict)


def _determinism() -> dict[str, Any]:
    import torch

    return {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "torch_threads": torch.get_num_threads(),
    }


def _Progress(enabled: bool, total: int, description: str) -> Any:
    """A progress bar on a terminal, periodic lines when redirected (:mod:`rmvalues.runs.progress`)."""
    from rmvalues.runs.progress import Progress

    return Progress(enabled, total, description)


def score(
    model: str | Path | RewardModel,
    prompts: Any = "paper-54",
    candidates: str | CandidateSet | Sequence[str] | Sequence[int] = "vocab",
    out: str | Path | None = None,
    *,
    verify: int = 0,
    verify_tolerance: float | None = None,
    progress: bool = False,
    on_shard: Callable[[str], None] | None = None,
    **options: Any,
) -> ScoreResult:
    """Score every prompt × candidate with one reward model; write shards, table and manifest to ``out``.

    ``model``: registry key, hub id, local folder, a ``rmvalues train`` run or ``checkpoint-N``
    folder, ``asset:NAME`` (a bundled GGUF model; the ``gguf_file`` option picks the file of a
    folder), or a loaded :class:`RewardModel`.
    ``prompts``: a prompt-set name/file (``"paper-54"``), a PromptSet, ``{id: text}`` or a list; a
    set's system prompts go into each prompt's conversation.
    ``candidates``: ``"vocab"``, ``"vocab:0-4095"``, ``"lexicon:NAME"``, ``"file:PATH"``, a
    CandidateSet, a list of strings (text) or of ints (token ids).
    ``options``: fields of :class:`~rmvalues.runs.options.ScoreOptions` (revision, dtype, device,
    date_string, chat_template, paper_compatible, batch_size, truncate_candidates, ...).
    Re-running with the same settings resumes: finished shards are read back, not recomputed.
    ``verify``: re-score that many random pairs through the reference path and fail if max |Δ|
    exceeds ``verify_tolerance`` (default: by dtype, times the scores' std,
    :func:`~rmvalues.runs.verify.default_verify_tolerance`). ``on_shard`` is called after each new shard.
    A candidate longer than the model's context is refused unless ``truncate_candidates``.
    """
    from rmvalues.models.loading import RewardModel
    from rmvalues.runs import RunSpec, UnitWorker, early_candidates, run_manifest_fields
    from rmvalues.runs.worker import run_locally
    from rmvalues.store.manifest import build_manifest
    from rmvalues.store.shards import check_writable

    started = time.perf_counter()
    if out is not None:
        check_writable(out, create=False)  # an early error leaves no empty folder behind
    source = model.provenance()["source"] if isinstance(model, RewardModel) else model
    spec = RunSpec.build(source, prompts, early_candidates(candidates), **options)
    if verify < 0:
        raise InputError(f"--verify must be >= 0 (got {verify})")
    if spec.attribute:
        raise InputError("attribute runs are several runs: use "
                         "rmvalues.engines.attributes.score_attributes (`rmvalues score --attribute`)")

    worker = UnitWorker(spec, out, rm=model if isinstance(model, RewardModel) else None,
                        record_units=False, lock=True)
    rm, plan = worker.rm, worker.plan
    cands = plan.context.candidates
    bar = _Progress(progress, len(plan.units) * len(cands), f"scoring {rm.name}")
    try:
        done = run_locally(worker, on_batch=bar.advance, on_scored=(
            (lambda unit: on_shard(unit.prompt_id)) if out is not None and on_shard else None))
    finally:
        bar.close()
        if plan.store is not None:
            plan.store.release()  # every shard is on disk; the merged table is written atomically

    import pandas as pd

    table = pd.concat(done.frames, ignore_index=True)
    resumed, scored = done.resumed, done.scored
    verification = None
    if verify:
        from rmvalues.runs.verify import verify_scores

        verification = verify_scores(rm, plan.context.splits, cands, table, verify,
                                     tolerance=verify_tolerance,
                                     paper_compatible=spec.paper_compatible)
    elapsed = time.perf_counter() - started
    runner = getattr(worker.engine, "runner", None)  # the vLLM backend batches for itself
    fields = {
        **run_manifest_fields(plan.context),
        "special_token_ids": ([t for t, s in zip(cands.token_ids, cands.special) if s]
                              if cands.special else []),
        "batch_size": runner.batch_size if runner else None,
        "max_batch_tokens": runner.max_tokens if runner else None,
        "attention": getattr(worker.engine, "attention", None),
        "determinism": _determinism(),
        "shard_keys": ({u.prompt_id: u.key for u in plan.units} if spec.shard_size is None
                       else {u.id: u.key for u in plan.units}),
        "verify": verification,
        "truncated_candidates": worker.engine.truncated,
    }
    path = None
    if plan.store is not None:
        path = plan.store.write_table(table, build_manifest("rm-scores", **fields))
    notes = [fields["engine"]]
    if scored:
        notes.insert(0, f"{scored / max(done.scoring_seconds, 1e-9):,.0f} candidates/s")
    if resumed:
        notes.append(f"{resumed} shard(s) resumed")
    if plan.store is not None and plan.store.rejected:
        notes.append(f"{len(plan.store.rejected)} stored shard(s) failed verification and were "
                     "recomputed")
    if verification:
        notes.append(f"verify max |Δ| {verification['max_abs_diff']:.2g}")
    summary = (f"{rm.name}: {len(spec.prompts)} prompt(s) x {len(cands):,} {cands.kind} candidates = "
               f"{len(table):,} scores in {elapsed:.1f}s ({', '.join(notes)})"
               + (f" -> {path}" if path else ""))
    return ScoreResult(table=table, path=path, summary=summary, manifest=fields)
