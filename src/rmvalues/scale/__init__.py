"""Scale-out: where a run's units execute (local, accelerate/torchrun, SLURM via submitit, Ray).

The run itself (spec, plan of units, content keys, worker, merge) is :mod:`rmvalues.runs`'s, so
every executor writes the same Parquet shards as ``rmvalues score`` and the merged table is the
same whichever ran it.

    from rmvalues.runs import RunSpec, make_plan
    from rmvalues.scale import execute
    spec = RunSpec.build("path/or/hub-id", "paper-54", "vocab", shard_size=32768)
    execute(spec, "out", executor="slurm", executor_config="cluster.toml")
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rmvalues.errors import ExecutorError, PlanMismatchError, WorkersFailedError
from rmvalues.runs import Plan, RunSpec, Unit, make_plan
from rmvalues.scale.executors import EXECUTORS, read_executor_config

log = logging.getLogger("rmvalues.scale")

__all__ = ["EXECUTORS", "ExecutorError", "PlanMismatchError", "ScaleResult", "WorkersFailedError",
           "execute", "read_executor_config"]


@dataclass
class ScaleResult:
    """What an executed run left: its plan, the merged table's path, the units finished now."""

    plan: Plan
    path: Path | None
    finished: list[str] = field(default_factory=list)
    summary: str = ""


def execute(
    spec: RunSpec,
    out: str | Path,
    executor: str | None = None,
    executor_config: str | Path | dict[str, Any] | None = None,
    *,
    rm: Any = None,
    merge: bool = True,
    on_unit: Callable[[Unit], None] | None = None,
) -> ScaleResult:
    """Run the remaining units of ``spec`` in ``out`` with ``executor``, then merge the table.

    ``executor``: local (default) | accelerate | slurm | ray; default: the config file's
    ``executor`` entry, else local. ``executor_config``: a YAML/TOML file or its parsed mapping.
    ``rm``: an already loaded model (local executor only). ``on_unit`` is called after each unit
    written by the local executor.

    Workers that die or fail mid-run (a killed Ray actor, SLURM task or torchrun rank) raise
    :class:`WorkersFailedError` once the others have ended, naming the unfinished units; their
    finished shards stay, and re-running the same call runs only the unfinished units.
    """
    from rmvalues.scale.executors import check_executor, validate_executor_config
    from rmvalues.store.shards import run_lock

    started = time.perf_counter()
    config = (validate_executor_config(executor_config) if isinstance(executor_config, dict)
              else read_executor_config(executor_config))
    name = check_executor(executor or config.get("executor", "local"))
    options = config.get(name, {})
    if rm is not None and name != "local":
        raise ExecutorError(f"a loaded model can only run on the local executor, not {name}")
    # The coordinator holds the folder's lock from before planning (which probes or loads the
    # model) to the merge, as `rmvalues score` does; its workers write shards under it.
    with run_lock(out):
        return _execute(spec, out, name, options, rm=rm, merge=merge, on_unit=on_unit,
                        started=started)


def _execute(spec: RunSpec, out: str | Path, name: str, options: dict[str, Any], *, rm: Any,
             merge: bool, on_unit: Callable[[Unit], None] | None, started: float) -> ScaleResult:
    """:func:`execute`'s body, under the output folder's lock."""
    from rmvalues.runs.table import merge_plan

    if name == "local":
        worker = EXECUTORS.get(name)(spec, out, rm=rm)
        run_plan, finished = worker.plan, set(worker.run(on_unit=on_unit))
    else:
        spec = _for_workers(spec, name, options)
        run_plan = make_plan(spec, out)
        keys = [u.key for u in run_plan.remaining()]
        names = {u.key: u.id for u in run_plan.units}
        try:
            jobs = EXECUTORS.get(name)(spec, out, keys, options, names)
            if jobs and not options.get("wait", True):
                ids = ", ".join(str(j.job_id) for j in jobs[:3])
                return ScaleResult(run_plan, None, [], f"{run_plan.model}: submitted "
                                   f"{len(jobs)} array task(s) ({ids}...); re-run to merge "
                                   "when they finish")
        except WorkersFailedError as exc:
            _raise_unfinished(run_plan, name, exc)
        finished = set(keys) - {u.key for u in run_plan.remaining()}
    ids = [u.id for u in run_plan.units if u.key in finished]
    path = merge_plan(run_plan, executor=name) if merge else None
    summary = (f"{run_plan.model}: {len(run_plan.units)} unit(s), {len(ids)} run now by the "
               f"{name} executor in {time.perf_counter() - started:.1f}s"
               + (f" -> {path}" if path else ""))
    return ScaleResult(run_plan, path, ids, summary)


def _raise_unfinished(run_plan: Plan, name: str, exc: WorkersFailedError) -> None:
    """Re-raise a worker failure naming the units left unfinished (from the shards on disk).

    Returns (so the run merges) when every unit got written anyway, e.g. a worker that died
    after writing its last unit while the others finished the rest.
    """
    left = run_plan.remaining()
    if not left:
        log.warning("%s: %s; every unit is written nonetheless, merging", run_plan.model, exc)
        return
    shown = ", ".join(u.id for u in left[:8]) + (", ..." if len(left) > 8 else "")
    raise WorkersFailedError(
        f"{run_plan.model}: the {name} executor's workers failed: {exc} Unfinished: "
        f"{len(left)} of {len(run_plan.units)} unit(s) ({shown}); re-running the same command "
        "runs only those.") from None


_GPU_PARAMETERS = ("gpus_per_node", "gpus_per_task", "slurm_gpus_per_node", "slurm_gpus_per_task")


def _for_workers(spec: RunSpec, name: str, options: dict[str, Any]) -> RunSpec:
    """Pin ``device="cuda"`` when remote workers get GPUs and the spec leaves the device open.

    A login node without GPUs would otherwise plan (and key) the run for the CPU, and every GPU
    worker would refuse the units as not its own.
    """
    import dataclasses

    if spec.device is not None or spec.device_map is not None:
        return spec
    if name == "slurm":
        params = options.get("parameters") or {}
        gpus = any(params.get(k) for k in _GPU_PARAMETERS)
    elif name == "ray":
        gpus = bool(options.get("num_gpus_per_actor"))
    else:
        return spec
    return dataclasses.replace(spec, device="cuda") if gpus else spec
