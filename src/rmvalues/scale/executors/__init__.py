"""Executors: where a plan's units run. Every executor writes the same engine shards.

``local`` (one process, the default), ``accelerate`` (``torchrun``/``accelerate launch`` processes on
one node, units split by rank), ``slurm`` (a submitit job array, ``map_array``) and ``ray`` (one
actor per GPU holding the model). Options come from a YAML or TOML file with one section per
executor; :data:`EXECUTOR_OPTIONS` lists what each section accepts::

    executor = "slurm"              # optional: the default executor of this file
    [slurm]
    units_per_job = 4
    parameters = {slurm_partition = "gpu", gpus_per_node = 1, timeout_min = 240}
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rmvalues.errors import ExecutorError
from rmvalues.registry import Registry

#: Where units run: ``local`` is this process (:class:`~rmvalues.runs.worker.UnitWorker`); the
#: others are ``run(spec, out, keys, options, names) -> jobs`` over the remaining unit keys.
EXECUTORS: Registry[Any] = Registry("executor", error=ExecutorError)
EXECUTORS.register("local", "rmvalues.runs.worker:UnitWorker")
EXECUTORS.register("accelerate", "rmvalues.scale.executors.distributed:execute_distributed")
EXECUTORS.register("slurm", "rmvalues.scale.executors.slurm:execute_slurm")
EXECUTORS.register("ray", "rmvalues.scale.executors.ray_actors:execute_ray")

#: The keys each executor's section accepts, with their types (checked when the file is read).
EXECUTOR_OPTIONS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "local": {},
    "accelerate": {"nproc_per_node": int, "launcher": str, "extra_args": list, "env": dict},
    "slurm": {"folder": str, "cluster": str, "units_per_job": int, "parameters": dict,
              "wait": bool, "python": str},
    "ray": {"address": str, "actors": int, "num_cpus": int, "num_gpus_per_actor": (int, float),
            "num_cpus_per_actor": (int, float), "init": dict},
}


def read_executor_config(path: str | Path | None) -> dict[str, Any]:
    """The executor options file (``.yaml``/``.yml``/``.toml``) as ``{executor?, section: {...}}``."""
    if path is None:
        return {}
    path = Path(path).expanduser()
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ExecutorError(f"executor config {path} cannot be read ({exc.strerror or exc})") from None
    import tomllib

    import yaml

    if path.suffix not in (".toml", ".yaml", ".yml"):
        raise ExecutorError(f"executor config {path} must be a .toml, .yaml or .yml file")
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else (yaml.safe_load(text) or {})
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ExecutorError(f"executor config {path} is not valid: {exc}") from None
    return validate_executor_config(data, source=str(path))


def validate_executor_config(data: Mapping[str, Any], source: str = "executor config") -> dict:
    """Check section names, keys and value types; name the offending entry and the allowed ones."""
    if not isinstance(data, Mapping):
        raise ExecutorError(f"{source} must be a mapping of executor sections")
    out: dict[str, Any] = {}
    for name, section in data.items():
        if name == "executor":
            out[name] = check_executor(section)
            continue
        if name not in EXECUTOR_OPTIONS:
            raise ExecutorError(f"{source}: unknown section {name!r}; use {', '.join(EXECUTORS)}")
        if not isinstance(section, Mapping):
            raise ExecutorError(f"{source}: [{name}] must be a table of options")
        allowed = EXECUTOR_OPTIONS[name]
        for key, value in section.items():
            if key not in allowed:
                raise ExecutorError(f"{source}: [{name}] has no option {key!r}; it accepts "
                                    f"{', '.join(allowed) or 'no options'}")
            if not isinstance(value, allowed[key]) or isinstance(value, bool) != (
                    allowed[key] is bool):
                raise ExecutorError(f"{source}: [{name}] {key} = {value!r} has the wrong type")
        out[name] = dict(section)
    return out


def check_executor(name: Any) -> str:
    return EXECUTORS.check(name)
