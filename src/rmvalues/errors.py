"""Errors the toolkit raises on bad input.

Every error names the input at fault and the fix; the CLI prints the message as one line and exits
non-zero. Code raises the most specific subclass so callers can catch a family of problems.
"""

from __future__ import annotations


class RmvaluesError(Exception):
    """Base class: a problem with the user's input or environment, with a message saying the fix."""

    exit_code: int = 2


class InputError(RmvaluesError):
    """A bad argument, option or file given by the user."""


class LexiconError(RmvaluesError):
    """A malformed, unknown or empty lexicon."""


class FetchError(RmvaluesError):
    """A remote file could not be fetched (no network, unknown name, bad archive member)."""


class ChecksumError(FetchError):
    """A fetched file does not match its pinned sha256; nothing is kept."""


class AssetError(RmvaluesError):
    """A test asset (tokenizer, chat template, small model) is missing or invalid."""


class ModelError(RmvaluesError):
    """A model cannot be found, loaded or run as asked."""


class TemplateError(ModelError):
    """A chat template is missing or cannot be split into prefix / response / suffix."""


class ScoreError(RmvaluesError):
    """Scoring produced invalid numbers (NaN/inf) or cannot proceed."""


class StoreError(RmvaluesError):
    """An output directory or stored run is unusable (not writable, corrupt, mismatched)."""


class AnalysisError(RmvaluesError):
    """An analysis cannot run on the given data (no matches, missing metadata, degenerate design)."""


class ExecutorError(RmvaluesError):
    """An executor is unknown, misconfigured, unavailable here, or its workers failed."""


class PlanMismatchError(ExecutorError):
    """A worker's units are not the planner's (the model resolved differently on the two)."""


class WorkersFailedError(ExecutorError):
    """Workers of a run died or failed (a killed Ray actor, a SLURM task, a torchrun rank).

    The units they finished stay on disk; :func:`rmvalues.scale.execute` names the unfinished
    units, and re-running the same command runs only those.
    """
