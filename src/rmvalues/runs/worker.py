"""The body of every executor: one process holding one loaded model, scoring the units it is given.

Also the entry point of multi-process runs on one node::

    torchrun --nproc_per_node 8 -m rmvalues.runs.worker SPEC.json OUT
    accelerate launch -m rmvalues.runs.worker SPEC.json OUT

Each rank takes every ``world_size``-th remaining unit (the split is fixed by a barrier before any
rank writes), and rank 0 merges once all ranks are done (``--no-merge`` leaves that to the caller).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rmvalues.runs.keys import shard_manifest
from rmvalues.runs.spec import RunSpec, Unit

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from rmvalues.engines.candidates import CandidateSet
    from rmvalues.models.chat import ChatSplit

log = logging.getLogger("rmvalues.scale")


class UnitWorker:
    """Loads the run's model once and scores the units it is asked for, writing their shards."""

    def __init__(self, spec: RunSpec | str, out: str | Path | None, *, rm: Any = None,
                 device: str | None = None, llm: Any = None, record_units: bool = True,
                 lock: bool = False) -> None:
        from rmvalues.runs.plan import make_plan
        from rmvalues.runs.scorers import make_scorer, run_model
        from rmvalues.store.shards import run_lock

        self.spec = RunSpec.from_json(spec) if isinstance(spec, str) else spec
        #: Whether shard manifests name the unit (executors) or not (``rmvalues score``'s shards).
        self.record_units = record_units
        # ``lock``: the folder's lock is taken before the model loads (minutes for a big one), so
        # a second run into the folder is refused at once; the plan's store then holds it.
        with run_lock(out if lock else None):
            if rm is None:
                rm = run_model(self.spec, device)
            self.engine = make_scorer(self.spec, rm, llm=llm)
            #: The model as the scorer runs it (paper mode: the paper's head copy).
            self.rm = self.engine.rm
            self.plan = make_plan(self.spec, out, rm=self.rm, lock=lock)

    def score_unit(self, unit: Unit, on_batch: Callable[[int], None] | None = None) -> pd.DataFrame:
        """Score one unit; write its shard when the run has an output directory."""
        context = self.plan.context
        split = context.splits[unit.prompt_id]
        frame = score_shard(self.engine, unit.prompt_id, split, context.subset(unit),
                            paper_compatible=self.spec.paper_compatible, on_batch=on_batch)
        if self.plan.store is not None:
            extra = ({"unit": unit.id, "candidate_range": [unit.start, unit.stop],
                      "rank": os.environ.get("RANK")} if self.record_units else {})
            manifest = shard_manifest(context.unit_config(unit), unit.prompt_id,
                                      context.texts[unit.prompt_id], unit.key, split, **extra)
            self.plan.store.save(unit.prompt_id, unit.key, frame, manifest)
        return frame

    def run(self, keys: Sequence[str] | None = None,
            on_unit: Callable[[Unit], None] | None = None) -> list[str]:
        """Score the units with these keys (default: all remaining); return the keys written here.

        A unit whose shard already exists (another worker finished it) is skipped.
        """
        context = self.plan.context
        units = context.find(list(keys)) if keys is not None else self.plan.remaining()
        written = []
        for unit in units:
            if self.plan.is_done(unit):
                continue
            self.score_unit(unit)
            written.append(unit.key)
            log.info("%s: unit %s written", self.plan.model, unit.id)
            if on_unit is not None:
                on_unit(unit)
        return written


@dataclass
class LocalRun:
    """What :func:`run_locally` did: every unit's frame (in plan order) and the counts."""

    frames: list[pd.DataFrame] = field(default_factory=list)
    resumed: int = 0
    scored: int = 0
    scoring_seconds: float = 0.0


def run_locally(worker: UnitWorker, *, on_batch: Callable[[int], None] | None = None,
                on_scored: Callable[[Unit], None] | None = None) -> LocalRun:
    """Every unit of ``worker``'s plan in this process: a finished shard is read back (and
    ``on_batch`` told its size), the rest are scored and written; ``on_scored`` follows each new one.

    The resume loop of ``rmvalues score`` and of checkpoint sweeps.
    """
    import time

    plan, done = worker.plan, LocalRun()
    for unit in plan.units:
        frame = plan.load(unit)
        if frame is not None:
            done.resumed += 1
            if on_batch is not None:
                on_batch(unit.size)
        else:
            tick = time.perf_counter()
            frame = worker.score_unit(unit, on_batch=on_batch)
            done.scoring_seconds += time.perf_counter() - tick
            done.scored += unit.size
            if on_scored is not None:
                on_scored(unit)
        done.frames.append(frame)
    return done


def score_shard(engine: Any, prompt_id: str, split: ChatSplit, candidates: CandidateSet, *,
                paper_compatible: bool = False,
                on_batch: Callable[[int], None] | None = None) -> pd.DataFrame:
    """One prompt x ``candidates`` scored by ``engine`` (a scorer of :mod:`rmvalues.runs.scorers`),
    checked finite, as a results frame in candidate order."""
    rm = engine.rm
    if paper_compatible:
        scores = engine.score_conversations(conversations(rm, split, candidates, True), on_batch)
    else:
        scores = engine.score_prompt(split, candidates, on_batch)
    _check_finite(scores, candidates, rm.name, prompt_id)
    return _frame(rm.name, prompt_id, candidates, scores)


def conversations(rm: Any, split: ChatSplit, candidates: CandidateSet,
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
    from rmvalues.finite import finite_rows

    finite_rows(scores, what=f"{model}, prompt {prompt_id!r}", rows="candidate score(s)",
                label=lambda i: (f"id {candidates.token_ids[i]} {candidates.texts[i]!r}"
                                 if candidates.token_ids else repr(candidates.texts[i]))
                + f" -> {scores[i]}",
                fix="The model overflows in this dtype or its weights are broken; try --dtype "
                    "float32.", drop_hint=None, outcome="Nothing was written for this prompt")


def run_units_job(spec_json: str, out: str, keys: Sequence[str]) -> list[str]:
    """One array task (submitit): load the model, score ``keys``; return the keys written."""
    return UnitWorker(spec_json, out).run(keys)


def _rank_device(local_rank: int) -> str | None:
    import torch

    if torch.cuda.is_available():
        return f"cuda:{local_rank % torch.cuda.device_count()}"
    return None


def distributed_main(spec_path: str | Path, out: str | Path, *, merge: bool = True) -> list[str]:
    """Run this rank's share of the remaining units (``RANK``/``WORLD_SIZE`` from the launcher)."""
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    spec = RunSpec.from_json(Path(spec_path).read_text("utf-8"))
    if world > 1 and spec.device_map is not None:
        from rmvalues.errors import ExecutorError

        raise ExecutorError("device_map='auto' spreads one model over all of a node's GPUs; "
                            "launch one process per node, not one per GPU")
    dist = None
    if world > 1:
        import torch
        import torch.distributed as dist

        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        worker = UnitWorker(spec, out, device=None if spec.device else _rank_device(local_rank))
        remaining = [u.key for u in worker.plan.remaining()]
        if dist is not None:
            dist.barrier()  # every rank has listed the remaining units before any rank writes
        written = worker.run(remaining[rank::world])
        if dist is not None:
            dist.barrier()
        if merge and rank == 0:
            from rmvalues.runs.table import merge_plan

            merge_plan(worker.plan, executor=f"distributed x{world}")
        return written
    finally:
        if dist is not None:
            dist.destroy_process_group()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rmvalues.runs.worker",
                                     description="Score a share of a run's units on this rank.")
    parser.add_argument("spec", help="run spec JSON (written by the accelerate executor)")
    parser.add_argument("out", help="output directory")
    parser.add_argument("--no-merge", action="store_true", help="leave merging to the caller")
    args = parser.parse_args(argv)
    from rmvalues.errors import RmvaluesError

    try:
        distributed_main(args.spec, args.out, merge=not args.no_merge)
    except RmvaluesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
