"""Figure 3: a lollipop of the implicit reward (MWLR) of two target tokens over model pairs.

Input contract — :func:`rmvalues.implicit.target_scores`, one row per (pair, prompt, target):

==============  ===========================================================================
``p_model``     the reference model p (left of the arrow); ``reference`` is accepted too
``q_model``     the compared model q (right of the arrow); ``model`` is accepted too
``target``      the target token (``Freedom``, ``Love``)
``score``       the metric (MWLR): positive = q prefers the token more than p; ``mwlr`` accepted
``prompt_id``   optional; several prompts are averaged unless ``prompt_id=`` picks one
==============  ===========================================================================

Rows are labelled like ``G2-2b → L3.1-70b`` and ordered by q's family version then size, then p's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from rmvalues.errors import InputError
from rmvalues.report.style import (
    DEFAULT_STYLE,
    FigureResult,
    FigureStyle,
    figure_context,
    row_axis,
    save_figure,
)

if TYPE_CHECKING:
    import pandas as pd

#: Colours of the two targets (the paper's: Freedom blue, Love red); others cycle after them.
TARGET_COLORS: tuple[str, ...] = ("#1F77B4", "#D62728", "#2CA02C", "#9467BD")

_P_COLUMNS = ("p_model", "reference", "model_a", "model_p")
_Q_COLUMNS = ("q_model", "model", "model_b", "model_q")
_SCORE_COLUMNS = ("score", "mwlr")

_NAME = re.compile(
    r"(?P<family>gemma|llama|qwen|mistral|phi|olmo)[-_ ]?(?P<version>\d+(?:\.\d+)?(?![\d.]|[bm]))?"
    r"(?:[-_ .](?P<size>\d+(?:\.\d+)?)[bm])?", re.IGNORECASE)
_SIZE = re.compile(r"[-_](\d+(?:\.\d+)?)([bm])(?![a-z])", re.IGNORECASE)


class ModelLabel(NamedTuple):
    """A model's short label and sort key: family letter + version + size (``L3.1-70b``)."""

    label: str
    family: str
    version: float
    size_b: float


def short_label(model: str) -> ModelLabel:
    """``meta-llama/Llama-3.1-70B-Instruct`` -> ``L3.1-70b``; ``google/gemma-2-2b-it`` -> ``G2-2b``.

    Llama's integer versions print as ``3.0`` (the paper's style, which tells Llama 3 from 3.1).
    Unknown names fall back to the repo name with no sort information.
    """
    name = model.rsplit("/", 1)[-1]
    match = _NAME.search(name)
    size_match = _SIZE.search(name)
    if match is None:
        return ModelLabel(name, "other", float("inf"), float("inf"))
    family = match["family"].lower()
    version = match["version"] or "1"
    if family == "llama" and "." not in version:
        version += ".0"
    size = 0.0
    size_text = ""
    if size_match is not None:
        size = float(size_match[1]) / (1000 if size_match[2].lower() == "m" else 1)
        size_text = f"-{size_match[1]}{size_match[2].lower()}"
    return ModelLabel(f"{family[0].upper()}{version}{size_text}", family, float(version), size)


def pair_columns(frame: pd.DataFrame) -> tuple[str, str]:
    """Names of the (p, q) model columns of a pair table."""
    p = next((c for c in _P_COLUMNS if c in frame.columns), None)
    q = next((c for c in _Q_COLUMNS if c in frame.columns), None)
    if p is None or q is None:
        raise InputError(
            f"pair table needs model columns p_model and q_model (has {list(frame.columns)}); "
            "pass the output of rmvalues.implicit.target_scores"
        )
    return p, q


def figure3(
    pairs: pd.DataFrame,
    *,
    targets: Sequence[str] = ("Freedom", "Love"),
    prompt_id: str | None = None,
    metric_label: str = "MWLR",
    style: FigureStyle = DEFAULT_STYLE,
    out_dir: str | Path | None = None,
    stem: str = "fig3",
    row_height: float = 0.22,
    width: float = 4.2,
) -> FigureResult:
    """Fig. 3: lollipops of the targets' MWLR per model pair, ``p → q`` (positive: q prefers)."""
    import matplotlib.pyplot as plt
    import numpy as np

    p_col, q_col = pair_columns(pairs)
    score_col = next((c for c in _SCORE_COLUMNS if c in pairs.columns), None)
    if score_col is None or "target" not in pairs.columns:
        raise InputError(f"pair table needs 'target' and 'score' columns (has {list(pairs.columns)})")
    frame = pairs
    if prompt_id is not None:
        if "prompt_id" not in frame.columns or prompt_id not in set(frame["prompt_id"]):
            raise InputError(f"prompt {prompt_id!r} is not in the pair table")
        frame = frame[frame["prompt_id"] == prompt_id]
    folded = frame["target"].astype(str).str.strip().str.lower()
    lookup = {t.strip().lower(): t for t in targets}
    missing = [t for low, t in lookup.items() if low not in set(folded)]
    if missing:
        raise InputError(f"target(s) {missing} are not in the pair table "
                         f"(targets there: {sorted(set(frame['target']))})")
    frame = frame.assign(target=folded.map(lookup)).dropna(subset=["target"])
    n_prompts = frame["prompt_id"].nunique() if "prompt_id" in frame.columns else 1
    wide = (frame.groupby([p_col, q_col, "target"], observed=True)[score_col].mean()
            .unstack("target").reset_index())
    labels_p = [short_label(m) for m in wide[p_col]]
    labels_q = [short_label(m) for m in wide[q_col]]
    wide["_key"] = [(q.family, q.version, q.size_b, p.family, p.version, p.size_b)
                    for p, q in zip(labels_p, labels_q)]
    width_p = max(len(x.label) for x in labels_p)
    width_q = max(len(x.label) for x in labels_q)
    wide["_label"] = [f"{p.label:<{width_p}} \u2192 {q.label:<{width_q}}"
                      for p, q in zip(labels_p, labels_q)]
    wide = wide.sort_values("_key", kind="stable").reset_index(drop=True)
    n = len(wide)
    y = np.arange(n)[::-1]  # first pair at the top

    with figure_context(style):
        fig, ax = plt.subplots(figsize=(width, 0.6 + row_height * n))
        values = wide[list(targets)].to_numpy(float)
        lo, hi = np.nanmin(values, axis=1), np.nanmax(values, axis=1)
        ax.hlines(y, lo, hi, color="0.6", linewidth=1.0, zorder=1)
        for i, target in enumerate(targets):
            ax.scatter(wide[target], y, s=22, facecolors="white",
                       edgecolors=TARGET_COLORS[i % len(TARGET_COLORS)], linewidths=1.2,
                       label=target, zorder=2)
        ax.axvline(0, color="0.5", linewidth=0.6, alpha=0.6, zorder=0)
        ax.set_yticks(y)
        ax.set_yticklabels(wide["_label"], fontfamily="DejaVu Sans Mono",
                           fontsize=style.font_size - 1.5)
        row_axis(ax, n)
        ax.set_xlabel(f"{metric_label} (positive: right-hand model prefers the token)")
        ax.legend(loc="best", frameon=True, framealpha=0.9, edgecolor="0.8", handletextpad=0.2)
    paths = save_figure(fig, out_dir, stem, style)
    prompts = f"prompt {prompt_id}" if prompt_id else (
        f"mean over {n_prompts} prompts" if n_prompts > 1 else "one prompt")
    caption = (f"{metric_label} of {' vs '.join(repr(t) for t in targets)} for {n} model pairs "
               f"p \u2192 q ({prompts}); positive values: q assigns the token more probability.")
    # A target no joined token matches has no score: say which points are missing, not just skip.
    absent = [f"{t} for {label.strip()}" for t in targets
              for label, v in zip(wide["_label"], wide[t]) if not np.isfinite(v)]
    if absent:
        caption += f" Not shown (no token of the target in the common vocabulary): {'; '.join(absent)}."
    data = wide.drop(columns=["_key"]).rename(columns={"_label": "label"})
    return FigureResult(name=stem, figure=fig, paths=paths, data=data, caption=caption)
