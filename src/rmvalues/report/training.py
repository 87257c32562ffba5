"""Figures 4a/4b/A5 and 5/A6: what reward-model training does to a base model's value ranking.

Input contracts (from :mod:`rmvalues.analysis.checkpoints`):

* Fig. 4a / A5a — checkpoint units: ``checkpoint``, ``category``, ``median_rank`` and ``base``
  (or ``model``, whose family is inferred). Several models or prompts of one family are averaged.
* Fig. 4b / A5b — final-checkpoint table: ``data_size`` (thousands of preference pairs),
  ``data_source``, ``category``, ``median_rank``, ``base``/``model``; optional ``method`` (``BT``,
  ``GRM``, ...) and ``checkpoint`` (the last one of each run is kept).
* Fig. 5 / A6 — rank changes: ``item`` (or ``token``), ``category``, ``change`` (first minus last
  rank: positive = preferred later; or ``rank_start``/``rank_end``), ``base``/``model``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rmvalues.errors import InputError
from rmvalues.report._frames import FAMILY_ORDER, canonical, pick_order, with_family
from rmvalues.report.style import (
    DEFAULT_STYLE,
    FigureResult,
    FigureStyle,
    despine,
    family_label,
    figure_context,
    save_figure,
)

if TYPE_CHECKING:
    import pandas as pd

#: Fig. 4 / 5 show the two families of the main text; the appendix versions add the rest (Qwen).
MAIN_FAMILIES: tuple[str, ...] = ("gemma", "llama")
_MARKERS: tuple[str, ...] = ("o", "^", "D", "s", "v", "P", "X")


def _select_families(frame: pd.DataFrame, families: Sequence[str] | None, what: str) -> list[str]:
    present = pick_order(frame["base"], None, FAMILY_ORDER, "families")
    if families is None:
        return present
    chosen = [f for f in present if f.lower() in {x.lower() for x in families}]
    if not chosen:
        raise InputError(f"{what} has none of the families {list(families)} (present: {present})")
    return chosen


def _rank_label(lexicon_label: str, n_ranked: int | None) -> str:
    worst = f", #{n_ranked} = worst" if n_ranked else ""
    return f"Median rank ({lexicon_label})\n#1 = best{worst}"


def figure4a(
    checkpoints: pd.DataFrame,
    *,
    families: Sequence[str] | None = MAIN_FAMILIES,
    categories: Sequence[str] | None = None,
    lexicon_label: str = "Big Two",
    n_ranked: int | None = None,
    style: FigureStyle = DEFAULT_STYLE,
    out_dir: str | Path | None = None,
    stem: str = "fig4a",
    panel_width: float = 2.0,
    height: float = 2.65,
) -> FigureResult:
    """Fig. 4a: median rank over training checkpoints, one line per base family, category panels."""
    import matplotlib.pyplot as plt

    frame = canonical(with_family(checkpoints, "checkpoint table"),
                      ("base", "category", "checkpoint", "median_rank"), "checkpoint table")
    chosen = _select_families(frame, families, "checkpoint table")
    category_order = pick_order(frame["category"], categories, (), "categories", sort=False)
    frame = frame[frame["base"].isin(chosen)]
    curves = (frame.groupby(["category", "base", "checkpoint"], observed=True)["median_rank"]
              .mean().reset_index().sort_values("checkpoint"))
    with figure_context(style):
        fig, axes = plt.subplots(1, len(category_order), sharey=True, squeeze=False,
                                 figsize=(0.8 + panel_width * len(category_order), height))
        for c, category in enumerate(category_order):
            ax = axes[0, c]
            for family in chosen:
                line = curves[(curves["category"] == category) & (curves["base"] == family)]
                if line.empty:
                    continue
                ax.plot(line["checkpoint"], line["median_rank"], color=style.family_color(family),
                        linewidth=1.1, label=family_label(family))
                last = line.iloc[-1]
                ax.annotate(family_label(family), (last["checkpoint"], last["median_rank"]),
                            xytext=(3, 0), textcoords="offset points", va="center",
                            fontsize=style.font_size - 1, color=style.family_color(family))
            ax.set_title(str(category).replace("_", " "), pad=4)
            ax.set_xlabel("Checkpoint (training step)")
            ax.margins(x=0.04)
            xmin, xmax = ax.get_xlim()
            ax.set_xlim(xmin, xmax + 0.22 * (xmax - xmin))  # room for the end labels
        if not axes[0, 0].yaxis_inverted():
            axes[0, 0].invert_yaxis()
        axes[0, 0].set_ylabel(_rank_label(lexicon_label, n_ranked))
        fig.tight_layout(w_pad=0.6)
    paths = save_figure(fig, out_dir, stem, style)
    caption = (f"Median rank of {lexicon_label} categories across reward-model training "
               f"checkpoints, by base family ({', '.join(map(family_label, chosen))}).")
    return FigureResult(name=stem, figure=fig, paths=paths, data=curves, caption=caption)


def figure_a5a(checkpoints: pd.DataFrame, **kwargs) -> FigureResult:
    """Fig. A5a: Fig. 4a with every family (Qwen included)."""
    kwargs.setdefault("stem", "figA5a")
    return figure4a(checkpoints, families=None, **kwargs)


def figure4b(
    ablations: pd.DataFrame,
    *,
    families: Sequence[str] | None = MAIN_FAMILIES,
    methods: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    lexicon_label: str = "Big Two",
    n_ranked: int | None = None,
    style: FigureStyle = DEFAULT_STYLE,
    out_dir: str | Path | None = None,
    stem: str = "fig4b",
    panel_width: float = 2.3,
    height: float = 2.65,
) -> FigureResult:
    """Fig. 4b: final-checkpoint median rank against preference-data size, marker by data source.

    Bradley-Terry runs sit on a linear size axis; other methods (e.g. GRM) follow after a gap,
    labelled with their size and method, so one large run does not squash the rest.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    frame = canonical(with_family(ablations, "ablation table"),
                      ("base", "category", "data_size", "data_source", "median_rank"),
                      "ablation table", optional=("checkpoint", "method"))
    if "method" not in frame.columns:
        frame["method"] = "BT"
    if methods is not None:
        frame = frame[frame["method"].isin(methods)]
    try:
        chosen = _select_families(frame, families, "ablation table")
    except InputError:  # a table without the main text's families is drawn with those it holds
        chosen = _select_families(frame, None, "ablation table")
    frame = frame[frame["base"].isin(chosen)]
    run = ["base", "category", "data_size", "data_source", "method"]
    if "checkpoint" in frame.columns:  # the last checkpoint of each run
        last = frame.groupby(run, observed=True)["checkpoint"].transform("max")
        frame = frame[frame["checkpoint"] == last]
    points = frame.groupby(run, observed=True)["median_rank"].mean().reset_index()
    if points.empty:  # e.g. no row has all of data_size, data_source, method
        raise InputError("ablation table: no run has data_size, data_source and a median rank to "
                         "draw; give every row its training set (see analysis/released.toml runs)")
    category_order = pick_order(points["category"], categories, (), "categories", sort=False)
    sources = pick_order(points["data_source"], None, (), "sources", sort=False)
    markers = {s: _MARKERS[i % len(_MARKERS)] for i, s in enumerate(sources)}

    bt = points["method"].str.upper() == "BT"
    bt_sizes = sorted(points.loc[bt, "data_size"].unique())
    span = (max(bt_sizes) - min(bt_sizes)) if len(bt_sizes) > 1 else 10.0
    others = points.loc[~bt, ["data_size", "method"]].drop_duplicates().sort_values("data_size")
    right = max(bt_sizes) if bt_sizes else 0.0
    other_x = {(r.data_size, r.method): right + span * (0.25 + 0.2 * i)
               for i, r in enumerate(others.itertuples())}
    points["x"] = [s if b else other_x[(s, m)] for s, m, b in
                   zip(points["data_size"], points["method"], bt)]
    ticks = [(float(s), f"{s:g}k") for s in bt_sizes] + \
        [(x, f"{s:g}k ({m})") for (s, m), x in other_x.items()]

    with figure_context(style):
        fig, axes = plt.subplots(1, len(category_order), sharey=True, squeeze=False,
                                 figsize=(0.8 + panel_width * len(category_order), height))
        for c, category in enumerate(category_order):
            ax = axes[0, c]
            cell = points[points["category"] == category]
            for x, group in cell.groupby("x"):
                if len(group) > 1:
                    ax.plot([x, x], [group["median_rank"].min(), group["median_rank"].max()],
                            color="black", linestyle=(0, (1, 1.5)), linewidth=0.5, zorder=1)
            for row in cell.itertuples():
                ax.scatter(row.x, row.median_rank, marker=markers[row.data_source], s=22,
                           color=style.family_color(row.base), zorder=2, linewidths=0)
            if other_x:
                ax.axvline(right + span * 0.125, color="0.75", linewidth=0.6, linestyle="--")
            ax.set_xticks([t for t, _ in ticks])
            ax.set_xticklabels([label for _, label in ticks], rotation=90,
                               fontsize=style.font_size - 1.5)
            ax.set_title(str(category).replace("_", " "), pad=4)
            ax.set_xlabel("Preference data (pairs)")
            ax.margins(x=0.08, y=0.1)
        if not axes[0, 0].yaxis_inverted():
            axes[0, 0].invert_yaxis()
        axes[0, 0].set_ylabel(_rank_label(lexicon_label, n_ranked))
        handles = [Line2D([], [], linestyle="", marker="s", color=style.family_color(f),
                          label=family_label(f)) for f in chosen]
        handles += [Line2D([], [], linestyle="", marker=markers[s], color="0.35", label=s)
                    for s in sources]
        fig.legend(handles=handles, loc="upper center", ncol=len(handles), frameon=False,
                   bbox_to_anchor=(0.5, 1.0), handletextpad=0.1, columnspacing=0.8)
        fig.tight_layout(rect=(0, 0, 1, 0.93), w_pad=0.6)
    paths = save_figure(fig, out_dir, stem, style)
    caption = (f"Final-checkpoint median rank of {lexicon_label} categories against the amount "
               "of preference data; colour: base family, marker: data source; dotted lines join "
               "runs on the same data.")
    return FigureResult(name=stem, figure=fig, paths=paths, data=points, caption=caption)


def figure_a5b(ablations: pd.DataFrame, **kwargs) -> FigureResult:
    """Fig. A5b: Fig. 4b for every family (Qwen included), Bradley-Terry runs only."""
    kwargs.setdefault("stem", "figA5b")
    kwargs.setdefault("methods", ["BT"])
    return figure4b(ablations, families=None, **kwargs)


def top_movers(rank_changes: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """Per family, the ``n`` items that rose and the ``n`` that fell most (mean over prompts).

    Columns: ``base, item, category, change, direction`` (``rose`` / ``fell``).
    """
    import pandas as pd

    frame = with_family(rank_changes, "rank-change table").rename(
        columns={"token": "item", "rank_change": "change", "rank_first": "rank_start",
                 "rank_last": "rank_end"})
    if "change" not in frame.columns:
        if not {"rank_start", "rank_end"} <= set(frame.columns):
            raise InputError("rank-change table needs 'change' or 'rank_start' and 'rank_end' "
                             f"(has {list(rank_changes.columns)}); use analysis.rank_change")
        frame["change"] = frame["rank_start"] - frame["rank_end"]
    frame = canonical(frame, ("base", "item", "category", "change"), "rank-change table")
    mean = (frame.groupby(["base", "item", "category"], observed=True)["change"].mean()
            .reset_index())
    parts = []
    for family, group in mean.groupby("base", sort=False):
        ordered = group.sort_values(["change", "item"], ascending=[False, True])
        rose = ordered.head(n).assign(direction="rose")
        fell = ordered.iloc[len(ordered) - min(n, max(len(ordered) - len(rose), 0)):]
        parts += [rose, fell.assign(direction="fell")]
    return pd.concat(parts, ignore_index=True)


def figure5(
    rank_changes: pd.DataFrame,
    *,
    n: int = 10,
    families: Sequence[str] | None = MAIN_FAMILIES,
    style: FigureStyle = DEFAULT_STYLE,
    out_dir: str | Path | None = None,
    stem: str = "fig5",
    panel_width: float = 2.4,
    height: float = 4.4,
) -> FigureResult:
    """Fig. 5: per base family, the ``n`` items that rose and the ``n`` that fell most between the
    first and last checkpoint, as horizontal bars coloured by category."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    movers = top_movers(rank_changes, n)
    chosen = _select_families(movers, families, "rank-change table")
    categories = pick_order(movers["category"], None, (), "categories", sort=False)
    with figure_context(style):
        fig, axes = plt.subplots(1, len(chosen), squeeze=False,
                                 figsize=(0.6 + panel_width * len(chosen), height))
        for c, family in enumerate(chosen):
            ax = axes[0, c]
            rows = movers[movers["base"] == family].reset_index(drop=True)
            y = list(range(len(rows)))
            ax.barh(y, rows["change"], color=[style.category_color(k) for k in rows["category"]],
                    height=0.75, edgecolor="none")
            ax.set_yticks(y)
            ax.set_yticklabels(rows["item"], fontsize=style.font_size - 1)
            ax.invert_yaxis()  # largest rise at the top
            ax.axvline(0, color="black", linewidth=0.5)
            ax.set_title(family_label(family), pad=4)
            ax.set_xlabel("Rank change (first \u2192 last checkpoint)")
            n_rose = int((rows["direction"] == "rose").sum())
            if 0 < n_rose < len(rows):
                ax.axhline(n_rose - 0.5, color="0.7", linewidth=0.5, linestyle="--")
            despine(ax)
            # Each note sits in the empty half of its group: rises are positive, falls negative.
            lo, hi = ax.get_xlim()
            note = {"ha": "center", "va": "center", "fontsize": style.font_size - 1,
                    "style": "italic", "color": "0.3", "rotation": 90}
            if n_rose and lo < 0:
                ax.text(lo / 2, (n_rose - 1) / 2, "preferred later", **note)
            if n_rose < len(rows) and hi > 0:
                ax.text(hi / 2, n_rose + (len(rows) - n_rose - 1) / 2, "preferred earlier",
                        **note)
        handles = [Patch(color=style.category_color(k), label=str(k)) for k in categories]
        fig.legend(handles=handles, loc="upper center", ncol=len(handles), frameon=False,
                   bbox_to_anchor=(0.5, 1.0))
        fig.tight_layout(rect=(0, 0, 1, 0.95), w_pad=1.0)
    paths = save_figure(fig, out_dir, stem, style)
    caption = (f"The {n} lexicon items whose rank rose most and the {n} that fell most between "
               "the first and last training checkpoint, coloured by category.")
    return FigureResult(name=stem, figure=fig, paths=paths,
                        data=movers[movers["base"].isin(chosen)], caption=caption)


def figure_a6(rank_changes: pd.DataFrame, **kwargs) -> FigureResult:
    """Fig. A6: Fig. 5 for the families outside the main text (Qwen)."""
    kwargs.setdefault("stem", "figA6")
    kwargs.setdefault("families", [f for f in with_family(rank_changes, "rank-change table")
                                   ["base"].unique() if f not in MAIN_FAMILIES] or ["qwen"])
    return figure5(rank_changes, **kwargs)
