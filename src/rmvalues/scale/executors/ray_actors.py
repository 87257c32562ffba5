"""Ray: one actor per GPU (or CPU slot) holding the loaded model; units are handed out as actors free.

Connects to ``address`` (``"auto"`` inside a Ray cluster) or starts a local Ray (``num_cpus``);
a Ray started here is shut down afterwards.

An actor that dies (its process killed, its node lost) loses the unit it was running and leaves
the pool; the surviving actors finish the other units, and the run then fails with
:class:`~rmvalues.errors.WorkersFailedError` naming what is unfinished (re-run to finish
only that). A unit that raises fails alone; its actor takes the next one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rmvalues.errors import ExecutorError, WorkersFailedError


class _UnitActor:
    """A Ray actor around :class:`~rmvalues.runs.worker.UnitWorker` (the model loads once)."""

    def __init__(self, spec_json: str, out: str) -> None:
        import os

        os.environ.setdefault("OMP_NUM_THREADS", "1")
        from rmvalues.runs.worker import UnitWorker

        self.worker = UnitWorker(spec_json, out)

    def run(self, keys: list[str]) -> list[str]:
        return self.worker.run(keys)


def execute_ray(spec: Any, out: str | Path, keys: Sequence[str],
                options: dict[str, Any] | None = None,
                names: Mapping[str, str] | None = None) -> list[str]:
    """Run ``keys`` on ``actors`` Ray actors; returns the keys written.

    Raises :class:`WorkersFailedError` once every unit has ended if any failed or its actor died
    (``names`` maps keys to the unit ids shown in that message).
    """
    options = dict(options or {})
    if not keys:
        return []
    try:
        import ray
    except ImportError:
        raise ExecutorError("the ray executor needs ray: pip install 'rmvalues[scale]'") from None
    import torch

    started = False
    if not ray.is_initialized():
        init = {"include_dashboard": False, "log_to_driver": False, **(options.get("init") or {})}
        if options.get("address"):
            init["address"] = options["address"]
        elif options.get("num_cpus"):
            init["num_cpus"] = options["num_cpus"]
        ray.init(**init)
        started = True
    try:
        gpus = options.get("num_gpus_per_actor", 1 if torch.cuda.is_available() else 0)
        cpus = options.get("num_cpus_per_actor", 1)
        available = ray.cluster_resources()
        default = int(available.get("GPU", 0) // gpus) if gpus else int(available.get("CPU", 1) // cpus)
        count = max(1, min(options.get("actors") or default or 1, len(keys)))
        actor = ray.remote(num_gpus=gpus, num_cpus=cpus)(_UnitActor)
        actors = [actor.remote(spec.to_json(), str(out)) for _ in range(count)]
        try:
            written, failures, unstarted = _run_on_actors(ray, actors, list(keys))
        finally:
            for a in actors:  # every unit has ended here (or the caller was interrupted)
                ray.kill(a)
        if failures or unstarted:
            key, reason = failures[0]
            raise WorkersFailedError(
                f"{len(failures)} unit(s) failed on Ray actors (e.g. {_label(key, names)}: {reason})"
                + (f" and {len(unstarted)} never started: every actor had died" if unstarted
                   else "")
                + f"; finished units are kept in {out}, re-run to finish the rest.")
        return written
    finally:
        if started:
            ray.shutdown()


def _run_on_actors(ray: Any, actors: list[Any], keys: list[str]):
    """Hand ``keys`` out one at a time to whichever actor is free; wait for every unit to end.

    Returns (keys written, [(key, reason)] for the units that failed, keys never started). An
    actor whose process died is dropped; one whose unit raised stays in the pool.
    """
    from collections import deque

    queue = deque(keys)
    idle = list(actors)
    pending: dict[Any, tuple[Any, str]] = {}
    written: list[str] = []
    failures: list[tuple[str, str]] = []
    while queue or pending:
        while idle and queue:
            a, key = idle.pop(), queue.popleft()
            pending[a.run.remote([key])] = (a, key)
        if not pending:  # no live actor left to take the queued units
            break
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        a, key = pending.pop(ref)
        try:
            written.extend(ray.get(ref))
            idle.append(a)
        except ray.exceptions.RayTaskError as exc:  # the unit raised; the actor lives on
            failures.append((key, _first_line(getattr(exc, "cause", None) or exc)))
            idle.append(a)
        except ray.exceptions.RayError as exc:  # the actor (its process, its node) is gone
            failures.append((key, f"its actor died ({_first_line(exc)})"))
    return written, failures, list(queue)


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0].strip()}" if lines else type(exc).__name__


def _label(key: str, names: Mapping[str, str] | None) -> str:
    return (names or {}).get(key, f"unit {key}")
