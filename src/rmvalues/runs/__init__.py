"""One owner for a scoring run: options -> plan of units (content keys) -> worker -> shards -> table.

:func:`rmvalues.api.score` runs a plan here, in this process; :mod:`rmvalues.scale`'s executors
run the same units elsewhere (torchrun, SLURM, Ray). Everything that decides a shard's key or a
manifest's fields lives in this package, so all paths write the same files.

    from rmvalues.runs import RunSpec, make_plan
    spec = RunSpec.build("path/or/hub-id", "paper-54", "vocab", shard_size=32768)
    make_plan(spec, "out").summary()          # units, done, remaining, token forwards
"""

from rmvalues.runs.keys import (
    ENGINE_VERSION,
    PAPER_MODE_VERSION,
    run_fields,
    run_manifest_fields,
    shard_config,
    shard_key,
    shard_manifest,
)
from rmvalues.runs.options import ScoreOptions
from rmvalues.runs.plan import Plan, make_plan, plan
from rmvalues.runs.spec import RunContext, RunSpec, Unit, early_candidates, probe_model
from rmvalues.runs.worker import UnitWorker, score_shard

__all__ = ["ENGINE_VERSION", "PAPER_MODE_VERSION", "Plan", "RunContext", "RunSpec", "ScoreOptions", "Unit", "UnitWorker",
           "early_candidates", "make_plan", "plan", "probe_model", "run_fields",
           "run_manifest_fields", "score_shard", "shard_config", "shard_key", "shard_manifest"]
