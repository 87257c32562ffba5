"""Fig A3: how far each implicit-reward metric moves the injected words away from the controls.

Input contract — :func:`rmvalues.training.injection_setups.injection_contrast`: ``metric``,
``prompt_id``, ``z`` (injected words' mean score as a z-score on the control tokens).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rmvalues.errors import InputError
from rmvalues.report.style import (
    DEFAULT_STYLE,
    FigureResult,
    FigureStyle,
    despine,
    figure_context,
    save_figure,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def figure_a3(table: pd.DataFrame, *, style: FigureStyle = DEFAULT_STYLE,
              out_dir: str | Path | None = None, stem: str = "fig_a3") -> FigureResult:
    """One row per metric: each held-out prompt's z-score (dots) and their mean (bar)."""
    import matplotlib.pyplot as plt
    import numpy as np

    need = {"metric", "prompt_id", "z"}
    if table is None or not need <= set(table.columns):
        raise InputError(f"Fig A3 needs columns {sorted(need)}; pass injection_contrast's table.")
    order = list(dict.fromkeys(table["metric"]))
    means = table.groupby("metric", sort=False)["z"].mean().reindex(order)
    undefined = [m for m in order if not np.isfinite(means[m])]
    with figure_context(style):
        fig, ax = plt.subplots(figsize=(4.2, 0.5 + 0.3 * len(order)))
        y = np.arange(len(order))[::-1]
        ax.barh(y, np.nan_to_num(means.to_numpy()), color="0.85", edgecolor="0.4", height=0.6)
        for yi, metric in zip(y, order):
            z = table.loc[table["metric"] == metric, "z"].to_numpy(float)
            ax.scatter(z, np.full(len(z), yi), s=10, color="#1F77B4", zorder=3)
        ax.axvline(0, color="0.5", linewidth=0.6)
        ax.set_yticks(y)
        ax.set_yticklabels(order)
        ax.set_xlabel("injected words vs controls (z on the control tokens)")
        despine(ax)
    paths = save_figure(fig, out_dir, stem, style)
    caption = (f"Fig A3: for each metric, the injected words' mean score as a z-score on the "
               f"{int(table['n_control'].iloc[0]) if 'n_control' in table else 'other'} control "
               f"tokens, per held-out prompt (dots) and averaged (bars)."
               + (f" No finite value for {', '.join(undefined)} (drawn at 0)." if undefined else ""))
    return FigureResult(name=stem, figure=fig, paths=paths, data=means.reset_index(), caption=caption)
