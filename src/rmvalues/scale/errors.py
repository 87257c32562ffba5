"""Errors of the scale-out layer (all :class:`~rmvalues.errors.RmvaluesError`)."""

from __future__ import annotations

from rmvalues.errors import RmvaluesError


class ExecutorError(RmvaluesError):
    """An executor is unknown, misconfigured, unavailable here, or its workers failed."""


class PlanMismatchError(ExecutorError):
    """A worker's units are not the planner's (the model resolved differently on the two)."""


class WorkersFailedError(ExecutorError):
    """Workers of a run died or failed (a killed Ray actor, a SLURM task, a torchrun rank).

    The units they finished stay on disk; :func:`rmvalues.scale.execute` names the unfinished
    units, and re-running the same command runs only those.
    """
