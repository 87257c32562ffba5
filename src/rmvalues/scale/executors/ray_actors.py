"""Ray: one actor per GPU (or CPU slot) holding the loaded model; units are handed out as actors free.

Connects to ``address`` (``"auto"`` inside a Ray cluster) or starts a local Ray (``num_cpus``);
a Ray started here is shut down afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rmvalues.scale.errors import ExecutorError


class _UnitActor:
    """A Ray actor around :class:`~rmvalues.scale.worker.UnitWorker` (the model loads once)."""

    def __init__(self, spec_json: str, out: str) -> None:
        import os

        os.environ.setdefault("OMP_NUM_THREADS", "1")
        from rmvalues.scale.worker import UnitWorker

        self.worker = UnitWorker(spec_json, out)

    def run(self, keys: list[str]) -> list[str]:
        return self.worker.run(keys)


def execute_ray(spec: Any, out: str | Path, keys: Sequence[str],
                options: dict[str, Any] | None = None) -> list[str]:
    """Run ``keys`` on ``actors`` Ray actors; returns the keys written."""
    options = dict(options or {})
    if not keys:
        return []
    try:
        import ray
        from ray.util import ActorPool
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
        pool = ActorPool(actors)
        written: list[str] = []
        try:
            for done in pool.map_unordered(lambda a, key: a.run.remote([key]), list(keys)):
                written.extend(done)
        except ray.exceptions.RayError as exc:
            raise ExecutorError(
                f"a Ray actor failed ({type(exc).__name__}: {str(exc).strip().splitlines()[0]}); "
                f"finished units are kept in {out}, re-run to finish the rest.") from None
        finally:
            for a in actors:
                ray.kill(a)
        return written
    finally:
        if started:
            ray.shutdown()
