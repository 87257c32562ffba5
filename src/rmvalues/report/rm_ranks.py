"""Figure 1 and Figure A1: where each base family's RMs rank a lexicon's categories.

Input contract — the median-rank *units* table of :mod:`rmvalues.analysis`, one row per
(model, prompt, category):

=============  ==============================================================================
``model``      RM key
``base``       base family (``gemma``, ``llama``, ...); ``base_family`` is accepted too
``framing``    ``positive`` / ``negative`` prompt framing
``category``   lexicon category (``Agency``, ``Communion``, MFD foundations, ...)
``median_rank`` median rank of the category's words among all ranked words (1 = best)
=============  ==============================================================================

Optional panel tests (one row per category x framing): ``category``, ``framing`` and ``stars``
or a corrected p-value column (``p_corrected``), as written by the panel-test analysis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rmvalues.report._frames import (
    FAMILY_ORDER,
    FRAMING_ORDER,
    canonical,
    describe_stars,
    pick_order,
    stars_lookup,
)
from rmvalues.report.style import (
    DEFAULT_STYLE,
    FigureResult,
    FigureStyle,
    family_label,
    figure_context,
    save_figure,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from matplotlib.axes import Axes

_HINT = "pass the median-rank units table (rmvalues.analysis), one row per model x prompt x category"


def panel_summary(units: pd.DataFrame) -> pd.DataFrame:
    """Per panel (framing x category) and family: grand mean, SD, SE and unit count.

    The grand mean is the plain mean over units, the number the statistics tables report for
    each cell, so the figure and the tables cannot disagree.
    """
    frame = canonical(units, ("base", "framing", "category", "median_rank"), "units table",
                      hint=_HINT)
    grouped = frame.groupby(["framing", "category", "base"], sort=False, observed=True)["median_rank"]
    out = grouped.agg(grand_mean="mean", sd="std", n_units="count").reset_index()
    out["se"] = out["sd"] / out["n_units"].pow(0.5)
    return out


def model_summary(units: pd.DataFrame) -> pd.DataFrame:
    """Per RM and panel: mean median rank over prompts, with SD and SE."""
    frame = canonical(units, ("model", "base", "framing", "category", "median_rank"),
                      "units table", hint=_HINT)
    grouped = frame.groupby(["framing", "category", "base", "model"], sort=False,
                            observed=True)["median_rank"]
    out = grouped.agg(mean="mean", sd="std", n_units="count").reset_index()
    out["se"] = out["sd"] / out["n_units"].pow(0.5)
    return out


def figure1(
    units: pd.DataFrame,
    tests: pd.DataFrame | None = None,
    *,
    lexicon_label: str = "Big Two",
    n_ranked: int | None = None,
    variant: Literal["main", "a1"] = "main",
    families: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    framings: Sequence[str] | None = None,
    stars_column: str | None = None,
    style: FigureStyle = DEFAULT_STYLE,
    out_dir: str | Path | None = None,
    stem: str | None = None,
    panel_width: float = 1.25,
    height: float = 3.5,
) -> FigureResult:
    """Fig. 1: violins of median rank by base family, framing rows x category columns.

    ``variant="main"`` overlays each RM's mean +/- SE and the grand mean +/- SE; ``"a1"`` (the
    appendix version) overlays every unit as a beeswarm and the grand mean +/- SD. The y axis is
    reversed (#1 = best at the top, #``n_ranked`` = worst). Stars come from ``tests``
    (``stars_column``, default the Welch stars as in the paper).
    """
    import matplotlib.pyplot as plt

    frame = canonical(units, ("model", "base", "framing", "category", "median_rank"),
                      "units table", hint=_HINT)
    family_order = pick_order(frame["base"], families, FAMILY_ORDER, "families")
    category_order = pick_order(frame["category"], categories, (), "categories", sort=False)
    framing_order = pick_order(frame["framing"], framings, FRAMING_ORDER, "framings")
    frame = frame[frame["base"].isin(family_order) & frame["category"].isin(category_order)
                  & frame["framing"].isin(framing_order)]
    n_ranked = n_ranked or _infer_n_ranked(frame)
    stars, stars_source = stars_lookup(tests, ("category", "framing"), stars_column)
    panels = panel_summary(frame)
    per_model = model_summary(frame)
    spread = "sd" if variant == "a1" else "se"

    n_rows, n_cols = len(framing_order), len(category_order)
    width = 0.9 + panel_width * n_cols
    with figure_context(style):
        fig, axes = plt.subplots(
            n_rows, n_cols, figsize=(width, height), sharey="row",
            squeeze=False,
        )
        for r, framing in enumerate(framing_order):
            row_values = frame.loc[frame["framing"] == framing, "median_rank"].to_numpy(float)
            lo, hi = float(row_values.min()), float(row_values.max())
            pad = 0.05 * (hi - lo or 1.0)
            for c, category in enumerate(category_order):
                ax = axes[r, c]
                cell = frame[(frame["framing"] == framing) & (frame["category"] == category)]
                _draw_panel(ax, cell, panels, per_model, family_order, style, variant, spread,
                            framing, category)
                ax.set_ylim(hi + pad, lo - pad)  # reversed: best (rank 1) at the top
                label = stars.get((category, framing), "")
                if label:
                    y = clear_y(cell["median_rank"].to_numpy(float), lo - pad, hi + pad)
                    ax.text((len(family_order) - 1) / 2, y, label, ha="center", va="center",
                            fontsize=style.font_size + 1, zorder=5,
                            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6})
                if r == 0:
                    ax.set_title(str(category).replace("_", " "), pad=4)
                if c == n_cols - 1:
                    ax.text(1.04, 0.5, str(framing), transform=ax.transAxes, rotation=270,
                            ha="left", va="center")
                ax.set_xticks(range(len(family_order)))
                ax.set_xticklabels([family_label(f) for f in family_order],
                                   fontsize=style.font_size - 1)
                ax.set_xlim(-0.6, len(family_order) - 0.4)
                ax.tick_params(axis="x", length=0)
        # Margins in inches, so wide (MFD) and narrow (Big Two) figures look alike.
        fig.subplots_adjust(wspace=0.08, hspace=0.16, left=0.72 / width, right=1 - 0.2 / width,
                            top=0.93, bottom=0.07)
        fig.supylabel(f"Median rank ({lexicon_label})\n#1 = best, #{n_ranked} = worst",
                      fontsize=style.font_size, x=0.05 / width)
    stem = stem or ("figA1" if variant == "a1" else "fig1")
    paths = save_figure(fig, out_dir, stem, style)
    data = panels.assign(stars=[stars.get((c, f), "") for c, f in
                                zip(panels["category"], panels["framing"])])
    what = "each unit (beeswarm), grand mean +/- SD" if variant == "a1" else \
        "each RM's mean +/- SE, grand mean +/- SE"
    caption = (f"Median rank of {lexicon_label} categories by base family; violins over "
               f"model x prompt units, {what}; dotted lines join family means; "
               f"#1 = best, #{n_ranked} = worst.")
    if stars_source:
        caption += f" Stars: {describe_stars(stars_source, tests)}."
    return FigureResult(name=stem, figure=fig, paths=paths, data=data, caption=caption)


def figure_a1(units: pd.DataFrame, tests: pd.DataFrame | None = None, **kwargs) -> FigureResult:
    """Fig. A1: Fig. 1 with every unit as a beeswarm and grand mean +/- SD."""
    return figure1(units, tests, variant="a1", **kwargs)


def _draw_panel(
    ax: Axes,
    cell: pd.DataFrame,
    panels: pd.DataFrame,
    per_model: pd.DataFrame,
    family_order: Sequence[str],
    style: FigureStyle,
    variant: str,
    spread: str,
    framing: str,
    category: str,
) -> None:
    import numpy as np

    means: list[tuple[float, float]] = []
    for x, family in enumerate(family_order):
        values = cell.loc[cell["base"] == family, "median_rank"].to_numpy(float)
        if len(values) == 0:
            continue
        color = style.family_color(family)
        if len(values) > 1 and np.ptp(values) > 0:
            parts = ax.violinplot([values], positions=[x], widths=0.8, showextrema=False)
            for body in parts["bodies"]:
                body.set_facecolor(color)
                body.set_alpha(0.12)
                body.set_edgecolor(color)
                body.set_linewidth(0.8)
        if variant == "a1":
            offsets = beeswarm_offsets(values, width=0.32)
            ax.scatter(x + offsets, values, s=3.5, color=color, alpha=0.55, linewidths=0,
                       zorder=2)
        else:
            models = per_model[(per_model["framing"] == framing)
                               & (per_model["category"] == category)
                               & (per_model["base"] == family)]
            xs = x + _spread_positions(len(models), 0.14)
            ax.errorbar(xs, models["mean"], yerr=models["se"].fillna(0), fmt="o", ms=2.5,
                        color=color, alpha=0.45, elinewidth=0.6, capsize=1.2, zorder=2)
        summary = panels[(panels["framing"] == framing) & (panels["category"] == category)
                         & (panels["base"] == family)].iloc[0]
        err = float(summary[spread]) if not math.isnan(summary[spread]) else 0.0
        ax.errorbar([x], [summary["grand_mean"]], yerr=[err], fmt="D", ms=3.2, color="black",
                    elinewidth=0.8, capsize=2.0, zorder=4)
        means.append((x, float(summary["grand_mean"])))
    if len(means) > 1:
        ax.plot(*zip(*means), linestyle=(0, (1, 1.5)), color="black", linewidth=0.6, zorder=3)


def _spread_positions(n: int, half_width: float) -> np.ndarray:
    import numpy as np

    if n <= 1:
        return np.zeros(n)
    return np.linspace(-half_width, half_width, n)


def beeswarm_offsets(values: np.ndarray, width: float = 0.35, bins: int = 60) -> np.ndarray:
    """Horizontal offsets that stack points with similar y side by side (a simple beeswarm).

    Points in the same y bin fan out 0, +d, -d, +2d, ...; ``d`` shrinks so the widest bin fits
    in ``width`` either side, keeping the swarm inside its violin.
    """
    import numpy as np

    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return np.zeros(0)
    lo, hi = values.min(), values.max()
    idx = np.zeros(len(values), dtype=int) if hi == lo else \
        np.minimum(((values - lo) / (hi - lo) * bins).astype(int), bins - 1)
    offsets = np.zeros(len(values))
    counts = np.bincount(idx)
    step = min(0.04, width / max(1, (counts.max() - 1) / 2 + 0.5))
    seen = np.zeros(len(counts), dtype=int)
    for i in np.argsort(values, kind="stable"):
        k = seen[idx[i]]
        seen[idx[i]] += 1
        offsets[i] = ((k + 1) // 2) * step * (1 if k % 2 else -1)
    return offsets


def clear_y(values: np.ndarray, axis_min: float, axis_max: float, n_candidates: int = 50) -> float:
    """A y near the panel centre where the violins are thin, for the significance stars.

    Scores candidate heights by normalised kernel density plus a pull towards the centre, so the
    label sits in empty space without drifting to the panel edge.
    """
    import numpy as np

    values = np.asarray(values, dtype=float)
    centre, half = (axis_min + axis_max) / 2, (axis_max - axis_min) / 2 or 1.0
    # Keep off the frame: stars at the very edge collide with tick labels and titles.
    candidates = np.linspace(centre - 0.75 * half, centre + 0.75 * half, n_candidates)
    density = np.zeros_like(candidates)
    if len(values) > 1 and np.std(values) > 0:
        bandwidth = 1.06 * np.std(values, ddof=1) * len(values) ** (-1 / 5)  # Silverman
        z = (candidates[:, None] - values[None, :]) / bandwidth
        density = np.exp(-0.5 * z**2).sum(axis=1)
        density /= density.max()
    score = density + 0.5 * np.abs(candidates - centre) / half
    return float(candidates[int(np.argmin(score))])


def _infer_n_ranked(frame: pd.DataFrame) -> int:
    """Words ranked per prompt: an explicit column, else the category sizes summed per unit
    group (exact when categories partition the words, as the Big Two's do)."""
    for column in ("n_ranked", "n_terms", "n_candidates", "n_words"):
        if column in frame.columns:
            return int(frame[column].max())
    if "n_items" in frame.columns and "prompt_id" in frame.columns:
        per_prompt = frame.groupby(["model", "prompt_id", "framing"], observed=True)["n_items"]
        return int(per_prompt.sum().max())
    return math.ceil(frame["median_rank"].max())
