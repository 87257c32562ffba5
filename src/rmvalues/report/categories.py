"""Median rank by category and framing, per model: the figure for one RM (or several without the
paper's base-family design), where Fig. 1's violins by base family do not apply."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rmvalues.errors import InputError
from rmvalues.report.style import (
    DEFAULT_STYLE,
    FigureResult,
    FigureStyle,
    figure_context,
    save_figure,
)

if TYPE_CHECKING:
    import pandas as pd


def category_table(units: pd.DataFrame) -> pd.DataFrame:
    """Mean, SD and n of the median rank per model, category and framing (``all`` first)."""
    import pandas as pd

    missing = [c for c in ("model", "category", "median_rank") if c not in units.columns]
    if missing:
        raise InputError(f"units table lacks column(s) {missing}; is it an `analyze` units table?")
    frames = [units.assign(framing="all")]
    if "framing" in units.columns and units["framing"].notna().all():
        frames.append(units.assign(framing=units["framing"].astype(str)))
    both = pd.concat(frames, ignore_index=True)
    both["category"] = both["category"].astype(str)
    keys = ["model", *[c for c in ("checkpoint",) if c in both.columns], "category", "framing"]
    return (both.groupby(keys, sort=False)["median_rank"]
            .agg(mean="mean", sd="std", n="size").reset_index())


def category_figure(
    units: pd.DataFrame, *, lexicon_label: str = "", style: FigureStyle = DEFAULT_STYLE,
    out_dir: str | Path | None = None, stem: str = "median_rank_by_category",
) -> FigureResult:
    """Bars of mean median rank (± SD over prompts) by category, one bar per framing, one panel
    per model (and checkpoint); the y axis is reversed (rank 1 = best at the top)."""
    import matplotlib.pyplot as plt

    table = category_table(units)
    label = table["model"].astype(str)
    if "checkpoint" in table.columns:
        label = label + " @ " + table["checkpoint"].astype(str)
    table = table.assign(panel=label)
    panels = list(dict.fromkeys(table["panel"]))
    cats = list(dict.fromkeys(table["category"]))
    width_in = max(3.2, 0.55 * len(cats) + 1.5)
    with figure_context(style):
        fig, axes = plt.subplots(1, len(panels), figsize=(width_in * len(panels), 3.2),
                                 squeeze=False, sharey=True)
        for ax, panel in zip(axes[0], panels):
            sub = table[table["panel"] == panel]
            framings = list(dict.fromkeys(sub["framing"]))
            bar = 0.8 / len(framings)
            for i, framing in enumerate(framings):
                part = sub[sub["framing"] == framing].set_index("category").reindex(cats)
                xs = [k + (i - (len(framings) - 1) / 2) * bar for k in range(len(cats))]
                ax.bar(xs, part["mean"], bar, yerr=part["sd"], label=framing, capsize=2)
            rotate = len(cats) > 3
            ax.set_xticks(range(len(cats)), cats, rotation=45 if rotate else 0,
                          ha="right" if rotate else "center")
            ax.set_title(panel, fontsize=8)
        axes[0][0].invert_yaxis()  # shared y: rank 1 = best at the top
        axes[0][0].set_ylabel("median rank (1 = best)")
        axes[0][-1].legend(title="framing", fontsize=7)
        fig.tight_layout()
    paths = save_figure(fig, out_dir, stem, style)
    caption = (f"Median rank of each {lexicon_label + ' ' if lexicon_label else ''}category's words "
               "(mean over prompts, bars ± SD), all prompts and by framing; rank 1 = best.")
    return FigureResult(name=stem, figure=fig, paths=paths, data=table, caption=caption)


def contrast_curve(
    contrasts: pd.DataFrame, *, style: FigureStyle = DEFAULT_STYLE,
    out_dir: str | Path | None = None, stem: str = "contrast_by_checkpoint",
) -> FigureResult:
    """The headline category contrast across training steps (all prompts and by framing, with
    its 95% bootstrap CI): how far category A ranks above B at each checkpoint."""
    import matplotlib.pyplot as plt

    if "checkpoint" not in contrasts.columns:
        raise InputError("the contrasts table has no checkpoint column (not a sweep analysis).")
    first = contrasts.iloc[0]
    data = contrasts[(contrasts["category_a"] == first["category_a"])
                     & (contrasts["category_b"] == first["category_b"])].sort_values("checkpoint")
    with figure_context(style):
        fig, ax = plt.subplots(figsize=(4.5, 3.0))
        for (model, framing), part in data.groupby(["model", "framing"], sort=False):
            label = f"{framing}" if data["model"].nunique() == 1 else f"{model} {framing}"
            ax.plot(part["checkpoint"], part["places_above"], marker="o", label=label)
            ax.fill_between(part["checkpoint"], part["places_above_lo"], part["places_above_hi"],
                            alpha=0.15)
        ax.axhline(0, color="0.5", linewidth=0.8)
        ax.set_xlabel("checkpoint (optimizer step)")
        ax.set_ylabel(f"places {first['category_a']} ranks above {first['category_b']}")
        ax.legend(fontsize=7)
        fig.tight_layout()
    paths = save_figure(fig, out_dir, stem, style)
    caption = (f"Median-rank places by which {first['category_a']} ranks above {first['category_b']} "
               "at each checkpoint (mean over prompts, 95% bootstrap CI over prompts); "
               "above 0: the first category ranks higher.")
    return FigureResult(name=stem, figure=fig, paths=paths, data=data, caption=caption)
