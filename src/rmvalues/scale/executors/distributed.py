"""Several processes on one node (``torchrun`` or ``accelerate launch``), units split by rank.

The coordinator writes the spec to ``OUT/.scale/spec-<hash>.json`` and launches
``python -m rmvalues.runs.worker SPEC OUT --no-merge`` on ``nproc_per_node`` ranks (gloo on CPU,
nccl on GPUs; each rank takes ``cuda:LOCAL_RANK``). A failed rank fails the launch; the units the
others finished stay on disk.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rmvalues.errors import ExecutorError, WorkersFailedError

LAUNCHERS = ("torchrun", "accelerate")


def write_spec(spec: Any, out: str | Path) -> Path:
    from rmvalues.io import atomic_write_text
    from rmvalues.store.manifest import stable_hash

    text = spec.to_json()
    path = Path(out) / ".scale" / f"spec-{stable_hash(text)}.json"
    return atomic_write_text(path, text)


def launch_command(spec_path: str | Path, out: str | Path, *, nproc_per_node: int,
                   launcher: str = "torchrun", extra_args: list[str] | None = None) -> list[str]:
    """The launcher command line for ``nproc_per_node`` ranks of the worker."""
    if launcher not in LAUNCHERS:
        raise ExecutorError(f"unknown launcher {launcher!r}; use torchrun or accelerate")
    if nproc_per_node < 1:
        raise ExecutorError(f"nproc_per_node must be at least 1 (got {nproc_per_node})")
    extra = [str(a) for a in (extra_args or [])]
    if launcher == "torchrun":
        head = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={nproc_per_node}", *extra, "-m"]
    else:
        head = [sys.executable, "-m", "accelerate.commands.launch",
                f"--num_processes={nproc_per_node}", *extra, "-m"]
    return [*head, "rmvalues.runs.worker", str(spec_path), str(out), "--no-merge"]


def default_nproc() -> int:
    import torch

    return max(torch.cuda.device_count(), 1)


def execute_distributed(spec: Any, out: str | Path, keys: Sequence[str],
                        options: dict[str, Any] | None = None,
                        names: Mapping[str, str] | None = None) -> list[Any]:
    """Launch the ranks (they split the remaining units among themselves) and wait;
    :class:`WorkersFailedError` if a rank fails or dies."""
    if not keys:
        return []
    options = dict(options or {})
    nproc = options.get("nproc_per_node") or default_nproc()
    if spec.device_map is not None and nproc > 1:
        raise ExecutorError("device_map='auto' spreads one model over all GPUs; run it with "
                            "nproc_per_node = 1 (or the local executor)")
    command = launch_command(write_spec(spec, out), out, nproc_per_node=nproc,
                             launcher=options.get("launcher", "torchrun"),
                             extra_args=options.get("extra_args"))
    env = {**os.environ, **{str(k): str(v) for k, v in (options.get("env") or {}).items()}}
    result = subprocess.run(command, env=env, check=False)
    if result.returncode != 0:
        raise WorkersFailedError(
            f"{options.get('launcher', 'torchrun')} with {nproc} process(es) exited with "
            f"{result.returncode}; finished units are kept in {out}, re-run to finish the rest.")
    return []
