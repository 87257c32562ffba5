"""The local executor: this process loads the model once and runs the units one after another."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def execute_local(spec: Any, out: str | Path, keys: Sequence[str] | None = None, *,
                  rm: Any = None, on_unit: Callable[[Any], None] | None = None,
                  options: dict[str, Any] | None = None):
    """Score ``keys`` (default: every remaining unit) here; returns the plan and the keys written."""
    from rmvalues.scale.worker import UnitWorker

    worker = UnitWorker(spec, out, rm=rm)
    return worker.plan, worker.run(keys, on_unit=on_unit)
