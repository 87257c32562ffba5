"""``rmvalues score --attribute``: score a multi-objective RM's combined reward and each chosen
attribute (:mod:`rmvalues.models.heads.attributes`) as separate runs in one output folder.

The model is loaded once; each attribute is one more pass over the prompts and candidates (the
head is cheap but the backbone runs again), so choose the attributes you need on large runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from rmvalues.api import ScoreResult


def score_attributes(
    model: Any,
    prompts: Any = "paper-54",
    candidates: Any = "vocab",
    out: str | Path | None = None,
    *,
    attributes: str | Sequence[str] = "all",
    combined: bool = True,
    verify: int = 0,
    verify_tolerance: float | None = None,
    progress: bool = False,
    **options: Any,
) -> list[ScoreResult]:
    """One :func:`rmvalues.api.score` run per attribute (``"all"`` or names), plus the combined
    reward unless ``combined=False``; every run is written to ``out`` as ``<model>@<attribute>``.

    ``options``: fields of :class:`~rmvalues.runs.options.ScoreOptions` (loading, conversation,
    engine), as for :func:`~rmvalues.api.score`.
    """
    from rmvalues.api import score
    from rmvalues.models.heads.attributes import attribute_model, resolve_attributes
    from rmvalues.models.loading import RewardModel
    from rmvalues.runs.options import ScoreOptions
    from rmvalues.runs.scorers import run_model
    from rmvalues.runs.spec import RunSpec

    options.pop("attribute", None)
    if isinstance(model, RewardModel):
        rm = model
    else:  # loaded once, the way a score run loads it (registry, checkpoints, GGUF, asset:NAME)
        rm = run_model(RunSpec(model=str(model), prompts=(), **ScoreOptions.pick(options)))
    chosen = resolve_attributes(rm, attributes)
    runs = [rm] if combined else []
    runs += [attribute_model(rm, a) for a in chosen]
    return [score(r, prompts, candidates, out, verify=verify, verify_tolerance=verify_tolerance,
                  progress=progress, **options) for r in runs]
