"""Checkpoints as a unit axis: a sweep is the run plan of each checkpoint, in one output folder.

A unit of a sweep is (checkpoint, prompt [, candidate slice]). Each checkpoint's units are those of
an ordinary run plan (:class:`~rmvalues.runs.plan.Plan`) whose model is the checkpoint, so their
keys are the engine's shard keys over the checkpoint's provenance (source folder, step, training
run key) and their shards sit beside each other in ``OUT/shards/<run>/``. Planning needs one
loaded checkpoint: the others differ from it only in those provenance fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from rmvalues.runs.plan import Plan
    from rmvalues.runs.spec import RunSpec, Unit
    from rmvalues.store.shards import ShardStore


@dataclass
class SweepPlan:
    """The plans of a sweep's checkpoints, by step, sharing one shard store."""

    spec: RunSpec
    plans: dict[int, Plan]
    store: ShardStore | None

    @property
    def steps(self) -> list[int]:
        return list(self.plans)

    def units(self) -> list[tuple[int, Unit]]:
        return [(step, u) for step, plan in self.plans.items() for u in plan.units]

    def remaining(self) -> list[tuple[int, Unit]]:
        return [(step, u) for step, plan in self.plans.items() for u in plan.remaining()]

    def estimate(self) -> dict[str, Any]:
        """Units and candidate scores, total and remaining, over every checkpoint."""
        parts = [plan.estimate() for plan in self.plans.values()]
        return {"checkpoints": len(parts), **{k: sum(p[k] for p in parts) for k in (
            "units", "done", "remaining", "scores", "scores_remaining", "token_forwards",
            "token_forwards_remaining")}}

    def summary(self) -> str:
        e = self.estimate()
        return (f"{e['checkpoints']} checkpoint(s), {e['units']} unit(s), {e['done']} done, "
                f"{e['remaining']} remaining; {e['scores_remaining']:,} of {e['scores']:,} scores "
                "left")

    def release(self) -> None:
        if self.store is not None:
            self.store.release()


def make_sweep_plan(spec: RunSpec, models: Mapping[int, Callable[[], Any]], out: Any, *,
                    lock: bool = False) -> SweepPlan:
    """The plan of sweeping ``spec``'s prompts and candidates over checkpoints.

    ``models`` maps each step to a function returning that checkpoint's model as planning needs it
    (provenance, tokenizer, head; see :func:`rmvalues.training.sweep.checkpoint_probes`). ``lock``
    holds the output folder's lock until :meth:`SweepPlan.release`.
    """
    from rmvalues.runs.plan import Plan
    from rmvalues.runs.spec import RunContext
    from rmvalues.store.shards import ShardStore

    store, plans = None, {}
    try:
        for step, probe in models.items():
            context = RunContext(spec, probe())
            if store is None and out is not None:
                store = ShardStore(out, context.model, lock=lock)
            plans[step] = Plan(context=context, store=store)
    except BaseException:
        if store is not None:
            store.release()
        raise
    return SweepPlan(spec=spec, plans=plans, store=store)
