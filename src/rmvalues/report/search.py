"""The response-search figure and table: best k-token responses against the best single token.

Input contract — the results table of :func:`rmvalues.runs.search.search_responses` (one row
per reported response: ``model, prompt_id, method, direction, length, rank, response, score``),
optionally with a single-token score run (``prompt_id, candidate, score``) for the comparison;
without it the search's own one-token responses are used (beam search reports them).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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

#: Colours of the two directions: highest-scoring (max) and lowest-scoring (min) responses.
DIRECTION_COLORS = {"max": "#1F77B4", "min": "#D62728"}
_LABEL_CHARS = 28


def _short(text: object) -> str:
    text = repr(str(text))
    return text if len(text) <= _LABEL_CHARS else text[:_LABEL_CHARS - 1] + "\u2026'"


def search_table(results: pd.DataFrame, singles: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per search: the best response, its scores (search, reference as ids and as text),
    whether its text re-tokenises, and its margin over the best single token."""
    from rmvalues.analysis.search import SEARCH_BY, best_responses, search_margins

    best = best_responses(results)
    margins = search_margins(results, singles)[[*SEARCH_BY, "single", "single_score", "margin"]]
    columns = [c for c in ("reference_score", "text_score", "retokenizes") if c in best.columns]
    table = best[[*SEARCH_BY, "length", "response", "score", *columns]].merge(
        margins, on=list(SEARCH_BY), how="left")
    return table.sort_values(list(SEARCH_BY), kind="stable").reset_index(drop=True)


def search_figure(
    results: pd.DataFrame,
    singles: pd.DataFrame | None = None,
    *,
    style: FigureStyle = DEFAULT_STYLE,
    out_dir: str | Path | None = None,
    stem: str = "search",
    row_height: float = 0.26,
    width: float = 5.0,
) -> FigureResult:
    """Per prompt and direction: the best single token (open) and the best k-token response
    (filled) on the RM's score axis, joined by a line; the k-token response labels its point."""
    import matplotlib.pyplot as plt
    import numpy as np

    from rmvalues.analysis.search import search_margins

    if results is None or not len(results):
        raise InputError("no search results to draw; run `rmvalues search` first")
    margins = search_margins(results, singles).sort_values(
        ["direction", "model", "method", "prompt_id"], ascending=[True, True, True, True],
        kind="stable").reset_index(drop=True)
    several = margins["model"].nunique() > 1 or margins["method"].nunique() > 1
    labels = [f"{r.prompt_id} ({r.model}, {r.method})" if several else str(r.prompt_id)
              for r in margins.itertuples()]
    n = len(margins)
    y = np.arange(n)[::-1]
    with figure_context(style):
        fig, ax = plt.subplots(figsize=(width, 0.7 + row_height * n))
        for direction, color in DIRECTION_COLORS.items():
            rows = (margins["direction"] == direction).to_numpy()
            if not rows.any():
                continue
            ax.hlines(y[rows], margins["single_score"][rows], margins["score"][rows],
                      color=color, alpha=0.5, linewidth=1.0, zorder=1)
            ax.scatter(margins["single_score"][rows], y[rows], s=20, facecolors="white",
                       edgecolors=color, linewidths=1.1, zorder=2,
                       label=f"best single token ({direction})")
            ax.scatter(margins["score"][rows], y[rows], s=22, color=color, zorder=3,
                       label=f"best response ({direction})")
        for yi, record in zip(y, margins.itertuples()):
            ax.annotate(_short(record.response), (record.score, yi), xytext=(4, 2),
                        textcoords="offset points", fontsize=style.font_size - 2.5,
                        fontfamily="DejaVu Sans Mono")
        ax.set_yticks(y)
        ax.set_yticklabels(labels, fontsize=style.font_size - 1.5)
        row_axis(ax, n)
        ax.set_xlabel("reward-model score")
        ax.legend(loc="best", frameon=True, framealpha=0.9, edgecolor="0.8", handletextpad=0.2,
                  fontsize=style.font_size - 2)
    paths = save_figure(fig, out_dir, stem, style)
    lengths = sorted(set(margins["length"]))
    mean_margin = float(np.nanmean(margins["margin"])) if margins["margin"].notna().any() else None
    caption = (f"Best {'/'.join(map(str, lengths))}-token responses found by search against the "
               f"best single token, per prompt (blue: highest-scoring, red: lowest-scoring)"
               + (f"; mean margin {mean_margin:+.3g}." if mean_margin is not None else "."))
    return FigureResult(name=stem, figure=fig, paths=paths, data=margins, caption=caption)
