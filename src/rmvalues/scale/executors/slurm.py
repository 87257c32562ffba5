"""SLURM job arrays through submitit: one array task per chunk of units (``map_array``).

``cluster`` is submitit's (unset: SLURM when ``sbatch`` exists, else local processes; ``"local"``
runs the tasks as local subprocesses, which is how the tests submit). ``parameters`` go to
``AutoExecutor.update_parameters`` (``timeout_min``, ``gpus_per_node``, ``slurm_partition``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rmvalues.errors import ExecutorError, WorkersFailedError


def chunks(keys: Sequence[str], units_per_job: int) -> list[list[str]]:
    if units_per_job < 1:
        raise ExecutorError(f"units_per_job must be at least 1 (got {units_per_job})")
    return [list(keys[i:i + units_per_job]) for i in range(0, len(keys), units_per_job)]


def make_executor(out: str | Path, options: dict[str, Any]):
    try:
        import submitit
    except ImportError:
        raise ExecutorError("the slurm executor needs submitit: pip install 'rmvalues[scale]'") from None
    folder = Path(options.get("folder") or Path(out) / ".scale" / "submitit")
    kwargs = {"python": options["python"]} if options.get("python") else {}
    executor = submitit.AutoExecutor(folder=folder, cluster=options.get("cluster"), **kwargs)
    parameters = dict(options.get("parameters") or {})
    parameters.setdefault("name", "rmvalues-score")
    executor.update_parameters(**parameters)
    return executor


def execute_slurm(spec: Any, out: str | Path, keys: Sequence[str],
                  options: dict[str, Any] | None = None,
                  names: Mapping[str, str] | None = None) -> list[Any]:
    """Submit one array task per chunk of ``keys``; wait for them unless ``wait = false``.

    Returns the submitit jobs. A failed task (one that raised, or died: killed, out of memory,
    out of time) raises :class:`WorkersFailedError` after all have ended, naming the task and
    its units (``names`` maps keys to unit ids); the units any task finished stay on disk.
    """
    options = dict(options or {})
    if not keys:
        return []
    from rmvalues.runs.worker import run_units_job

    groups = chunks(list(keys), options.get("units_per_job", 1))
    executor = make_executor(out, options)
    spec_json = spec.to_json()
    jobs = executor.map_array(run_units_job, [spec_json] * len(groups), [str(out)] * len(groups),
                              groups)
    if not options.get("wait", True):
        return jobs
    failures = []
    for job, group in zip(jobs, groups, strict=True):
        try:
            job.result()
        except Exception as exc:  # noqa: BLE001 - FailedJobError, UncompletedJobError, ...
            failures.append((job.job_id, group, _reason(exc)))
    if failures:
        job_id, group, line = failures[0]
        units = ", ".join((names or {}).get(k, k) for k in group)
        raise WorkersFailedError(
            f"{len(failures)} of {len(jobs)} array task(s) failed (e.g. task {job_id}, units "
            f"{units}: {line}); their logs are in {executor.folder}. Finished units are kept; "
            "re-run to finish the rest.")
    return jobs


def _reason(exc: Exception) -> str:
    """One line on why a task failed: the exception it raised, or that it died without a result."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    died = next((line for line in lines if "has not produced any output" in line), None)
    if died is not None:  # submitit's UncompletedJobError: no result pickle was written
        return f"the task died before returning (killed, out of memory or out of time?): {died}"
    return lines[-1] if lines else type(exc).__name__  # FailedJobError ends with the exception
