"""Figure 2: how two language models rank a lexicon's categories by next-token log-probability.

Input contract — log-prob median-rank units, one row per (model, prompt, category):

=============  ==============================================================================
``model``      LM name or hub id (two models; more are refused)
``framing``    ``positive`` / ``negative`` prompt framing
``category``   lexicon category
``median_rank`` median log-prob rank of the category's words (1 = most probable)
``base``       optional base family (colour); inferred from the model name when absent
=============  ==============================================================================

Optional tests: :func:`rmvalues.analysis.anova.welch_posthoc` by ``(category, framing)`` with
``group="model"`` (Welch + BH), i.e. columns ``category``, ``framing``, ``stars`` or ``p_adj``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rmvalues.errors import InputError
from rmvalues.report._frames import (
    FRAMING_ORDER,
    canonical,
    describe_stars,
    infer_family,
    pick_order,
    stars_lookup,
)
from rmvalues.report.style import (
    DEFAULT_STYLE,
    FigureResult,
    FigureStyle,
    despine,
    figure_context,
    save_figure,
)

if TYPE_CHECKING:
    import pandas as pd

_HINT = "pass log-prob median-rank units: model, prompt_id, category, framing, median_rank"


def model_colors(models: Sequence[str], frame: pd.DataFrame, style: FigureStyle) -> list[str]:
    """One colour per model from its base family; a second model of the same family is lightened
    so a base model and its instruct version stay apart."""
    from matplotlib.colors import to_hex, to_rgb

    colors: list[str] = []
    for model in models:
        rows = frame.loc[frame["model"] == model]
        family = str(rows["base"].iloc[0]) if "base" in rows.columns else infer_family(model)
        color = style.family_color(family)
        while color in colors:
            color = to_hex(tuple(0.55 * c + 0.45 for c in to_rgb(color)))
        colors.append(color)
    return colors


def figure2(
    units: pd.DataFrame,
    tests: pd.DataFrame | None = None,
    *,
    models: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    lexicon_label: str = "Big Two",
    model_labels: dict[str, str] | None = None,
    style: FigureStyle = DEFAULT_STYLE,
    out_dir: str | Path | None = None,
    stem: str = "fig2",
    width: float = 3.6,
    height: float = 4.2,
) -> FigureResult:
    """Fig. 2: split violins (one half per model) + strip points per category; positive prompts
    on top, negative below; y reversed (rank 1 at the top); stars from Welch + BH ``tests``."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.transforms import blended_transform_factory

    frame = canonical(units, ("model", "framing", "category", "median_rank"),
                      "log-prob units table", optional=("base",), hint=_HINT)
    frame["model"] = frame["model"].astype(str)
    model_order = pick_order(frame["model"], models, (), "models", sort=False)
    if len(model_order) != 2:
        raise InputError(f"Fig. 2 compares exactly two models; the units have {model_order}. "
                         "Pass models=[A, B] to choose two.")
    category_order = pick_order(frame["category"], categories, (), "categories", sort=False)
    framing_order = pick_order(frame["framing"], None, FRAMING_ORDER, "framings")
    frame = frame[frame["model"].isin(model_order) & frame["category"].isin(category_order)]
    frame["category"] = frame["category"].astype(str)
    labels = {m: (model_labels or {}).get(m, m.rsplit("/", 1)[-1]) for m in model_order}
    frame["label"] = frame["model"].map(labels)
    palette = dict(zip(labels.values(), model_colors(model_order, frame, style)))
    hue_order = [labels[m] for m in model_order]
    stars, stars_source = stars_lookup(tests, ("category", "framing"))

    with figure_context(style):
        fig, axes = plt.subplots(len(framing_order), 1, figsize=(width, height), sharex=True,
                                 squeeze=False)
        for r, framing in enumerate(framing_order):
            ax = axes[r, 0]
            cell = frame[frame["framing"] == framing]
            sns.violinplot(data=cell, x="category", y="median_rank", hue="label",
                           order=category_order, hue_order=hue_order, palette=palette,
                           split=True, inner=None, linewidth=0.6, alpha=0.55, ax=ax,
                           legend=False, density_norm="width")
            sns.stripplot(data=cell, x="category", y="median_rank", hue="label",
                          order=category_order, hue_order=hue_order, palette=palette,
                          dodge=True, size=2.2, alpha=0.8, jitter=0.08, ax=ax, legend=False,
                          linewidth=0)
            ax.invert_yaxis()
            ax.set_ylabel(f"Median rank\n({framing} prompts)")
            ax.set_xlabel("")
            despine(ax)
            top = blended_transform_factory(ax.transData, ax.transAxes)
            for x, category in enumerate(category_order):
                label = stars.get((category, framing), "")
                if label:
                    ax.text(x, 1.0, label, transform=top, ha="center", va="bottom",
                            fontsize=style.font_size + 1)
            ax.margins(y=0.08)
        axes[-1, 0].set_xlabel(f"{lexicon_label} category")
        handles = [plt.Rectangle((0, 0), 1, 1, facecolor=palette[h], alpha=0.7, edgecolor="none")
                   for h in hue_order]
        fig.legend(handles, hue_order, loc="upper center", ncol=2, frameon=False,
                   bbox_to_anchor=(0.55, 1.0), handlelength=1.0)
        fig.subplots_adjust(top=0.9, hspace=0.18)
    paths = save_figure(fig, out_dir, stem, style)
    data = (frame.groupby(["framing", "category", "model"], observed=True)["median_rank"]
            .agg(mean="mean", sd="std", n="count").reset_index())
    data["stars"] = [stars.get((c, f), "") for c, f in zip(data["category"], data["framing"])]
    caption = (f"Median log-prob rank of {lexicon_label} categories under "
               f"{' and '.join(hue_order)} (one point per prompt; 1 = most probable).")
    if stars:
        caption += f" Stars: {describe_stars(stars_source, tests)}."
    return FigureResult(name=stem, figure=fig, paths=paths, data=data, caption=caption)
