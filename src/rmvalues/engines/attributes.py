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
    revision: str | None = None,
    dtype: str | None = None,
    attn_implementation: str | None = None,
    device: str | None = None,
    chat_template: str | Path | None = None,
    trust_remote_code: bool = False,
    **score_kwargs: Any,
) -> list[ScoreResult]:
    """One :func:`rmvalues.api.score` run per attribute (``"all"`` or names), plus the combined
    reward unless ``combined=False``; every run is written to ``out`` as ``<model>@<attribute>``."""
    from rmvalues.api import _load, score
    from rmvalues.models.heads.attributes import attribute_model, resolve_attributes

    rm = _load(model, revision=revision, dtype=dtype, attn_implementation=attn_implementation,
               device=device, chat_template=chat_template, trust_remote_code=trust_remote_code)
    chosen = resolve_attributes(rm, attributes)
    runs = [rm] if combined else []
    runs += [attribute_model(rm, a) for a in chosen]
    return [score(r, prompts, candidates, out, chat_template=chat_template, **score_kwargs)
            for r in runs]
