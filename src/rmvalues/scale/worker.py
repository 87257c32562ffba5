"""The body of every executor: one process holding one loaded model, scoring the units it is given.

Also the entry point of multi-process runs on one node::

    torchrun --nproc_per_node 8 -m rmvalues.scale.worker SPEC.json OUT
    accelerate launch -m rmvalues.scale.worker SPEC.json OUT

Each rank takes every ``world_size``-th remaining unit (the split is fixed by a barrier before any
rank writes), and rank 0 merges once all ranks are done (``--no-merge`` leaves that to the caller).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rmvalues.scale.units import RunSpec, Unit

log = logging.getLogger("rmvalues.scale")


class UnitWorker:
    """Loads the run's model once and writes the shard of each unit it is asked for."""

    def __init__(self, spec: RunSpec | str, out: str | Path, *, rm: Any = None,
                 device: str | None = None, llm: Any = None) -> None:
        from rmvalues.engines.score import Engine
        from rmvalues.scale.plan import make_plan

        self.spec = RunSpec.from_json(spec) if isinstance(spec, str) else spec
        if self.spec.backend == "vllm":
            from rmvalues.scale.units import probe_model
            from rmvalues.scale.vllm_backend import make_vllm_engine

            self.rm = rm if rm is not None else probe_model(self.spec)
            self.plan = make_plan(self.spec, out, rm=self.rm)
            self.engine = make_vllm_engine(self.spec, self.rm, llm=llm)
            return
        if rm is None:
            from rmvalues.models.loading import load_reward_model

            options = self.spec.load_options()
            if device is not None and options["device_map"] is None:
                options["device"] = device
            rm = load_reward_model(self.spec.model, **options)
        pool = None
        if self.spec.paper_compatible:  # as score(): the paper's head copy and pad pooling
            from rmvalues.engines import paper_compat

            rm = paper_compat.paper_model(rm)
            pool = paper_compat.paper_pooling(rm)
        self.rm = rm
        self.plan = make_plan(self.spec, out, rm=rm)
        batch = self.spec.batch_size or (rm.spec.batch_size if getattr(rm, "spec", None) else 64)
        self.engine = Engine(rm, batch_size=batch,
                             mode="full" if self.spec.paper_compatible else self.spec.mode,
                             pool=pool)

    def run(self, keys: Sequence[str] | None = None,
            on_unit: Callable[[Unit], None] | None = None) -> list[str]:
        """Score the units with these keys (default: all remaining); return the keys written here.

        A unit whose shard already exists (another worker finished it) is skipped.
        """
        from rmvalues.api import score_shard, shard_manifest

        context = self.plan.context
        units = context.find(list(keys)) if keys is not None else self.plan.remaining()
        written = []
        for unit in units:
            if self.plan.is_done(unit):
                continue
            cands = context.subset(unit)
            split = context.splits[unit.prompt_id]
            text = context.texts[unit.prompt_id]
            frame = score_shard(self.engine, unit.prompt_id, split, cands,
                                paper_compatible=self.spec.paper_compatible)
            manifest = shard_manifest(context.unit_config(unit), unit.prompt_id, text, unit.key, split,
                                      unit=unit.id, candidate_range=[unit.start, unit.stop],
                                      rank=os.environ.get("RANK"))
            self.plan.store.save(unit.prompt_id, unit.key, frame, manifest)
            written.append(unit.key)
            log.info("%s: unit %s written", self.plan.model, unit.id)
            if on_unit is not None:
                on_unit(unit)
        return written


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
        from rmvalues.scale.errors import ExecutorError

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
            from rmvalues.scale.merge import merge_plan

            merge_plan(worker.plan, executor=f"distributed x{world}")
        return written
    finally:
        if dist is not None:
            dist.destroy_process_group()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rmvalues.scale.worker",
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
