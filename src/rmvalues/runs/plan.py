"""A run as a plan of units: which are done (their shard is on disk), which remain, and the work left.

The plan is recomputed from the spec and the output directory every time (nothing but the shards
holds state), so it is always current, and any executor can take the remaining units.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from rmvalues.runs.spec import RunContext, RunSpec, Unit
    from rmvalues.store.shards import ShardStore


@dataclass
class Plan:
    """The units of one model's run and where their shards go."""

    context: RunContext
    store: ShardStore | None

    @property
    def spec(self) -> RunSpec:
        return self.context.spec

    @property
    def model(self) -> str:
        return self.context.model

    @property
    def units(self) -> list[Unit]:
        return self.context.units

    def shard_path(self, unit: Unit) -> Path:
        return self.store.shard_path(unit.prompt_id, unit.key)

    def is_done(self, unit: Unit) -> bool:
        """Whether ``unit``'s shard is on disk (never, for a run without an output directory)."""
        return self.store is not None and self.shard_path(unit).exists()

    def load(self, unit: Unit) -> pd.DataFrame | None:
        """``unit``'s finished shard, or ``None`` (also when the stored shard fails verification
        against its manifest: key, prompt, row count, candidate hash, checksum)."""
        if self.store is None:
            return None
        return self.store.load(unit.prompt_id, unit.key, rows=unit.size,
                               expect={"candidates": self.context.unit_config(unit)["candidates"]})

    def done(self) -> list[Unit]:
        return [u for u in self.units if self.is_done(u)]

    def remaining(self) -> list[Unit]:
        return [u for u in self.units if not self.is_done(u)]

    def estimate(self) -> dict[str, Any]:
        """Counts of units, candidate scores and token forwards: total, done, remaining."""
        remaining = {u.key for u in self.remaining()}
        total_tokens = sum(u.token_forwards for u in self.units)
        left_tokens = sum(u.token_forwards for u in self.units if u.key in remaining)
        total_scores = sum(u.size for u in self.units)
        left_scores = sum(u.size for u in self.units if u.key in remaining)
        return {
            "model": self.model,
            "units": len(self.units), "done": len(self.units) - len(remaining),
            "remaining": len(remaining),
            "scores": total_scores, "scores_remaining": left_scores,
            "token_forwards": total_tokens, "token_forwards_remaining": left_tokens,
            "merged": self.store.table_path.exists(),
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per unit: id, prompt, candidate range, key, token forwards, done, shard path."""
        import pandas as pd

        return pd.DataFrame([{
            "unit": u.id, "model": u.model, "revision": u.revision, "prompt_id": u.prompt_id,
            "start": u.start, "stop": u.stop, "key": u.key, "token_forwards": u.token_forwards,
            "done": self.is_done(u), "shard": str(self.shard_path(u)),
        } for u in self.units])

    def summary(self) -> str:
        e = self.estimate()
        return (f"{e['model']}: {e['units']} unit(s), {e['done']} done, {e['remaining']} remaining; "
                f"{e['scores_remaining']:,} of {e['scores']:,} scores and "
                f"{e['token_forwards_remaining']:,} of {e['token_forwards']:,} token forwards left"
                + ("; merged table written" if e["merged"] else ""))


def make_plan(spec: RunSpec, out: str | Path | None, *, rm: Any = None,
              lock: bool = False) -> Plan:
    """The plan of ``spec`` in ``out``; with ``rm`` (a loaded model) its keys are the workers' own,
    otherwise the model is probed (config, tokenizer, meta-device body; no weights). Without
    ``out`` nothing is stored and every unit remains. ``lock`` holds the output folder's lock
    (released by ``plan.store.release()``), so a second run into it fails at once."""
    from rmvalues.runs.spec import RunContext, probe_model
    from rmvalues.store.shards import ShardStore

    context = RunContext(spec, rm if rm is not None else probe_model(spec))
    return Plan(context=context,
                store=ShardStore(out, context.model, lock=lock) if out is not None else None)


def plan(model: str | Path, prompts: Any = "paper-54", candidates: Any = "vocab",
         out: str | Path = ".", **options: Any) -> Plan:
    """:func:`make_plan` from :func:`rmvalues.api.score`-style arguments (``rmvalues plan``)."""
    from rmvalues.runs.spec import RunSpec

    return make_plan(RunSpec.build(model, prompts, candidates, **options), out)
