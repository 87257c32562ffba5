"""The debias section's figure: the base-family gap before and after each mitigation, with CIs.

Input: the ``debias_gap`` table of :mod:`rmvalues.analysis.debias` (``framing, stage, gap, lo,
hi, n_prompts``); the ``debias_runs`` and ``debias_price`` tables are shown beside it as tables.
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
    save_figure,
)

if TYPE_CHECKING:
    import pandas as pd

STAGE_ORDER = ("before", "after", "change")
STAGE_COLORS = {"before": "#b2182b", "after": "#2166ac", "change": "0.35"}


def figure_debias(
    gap: pd.DataFrame,
    *,
    style: FigureStyle = DEFAULT_STYLE,
    out_dir: str | Path | None = None,
    stem: str = "debias",
    width: float = 4.2,
) -> FigureResult:
    """Points with 95% CI bars: the family gap per framing before, after, and the change."""
    import matplotlib.pyplot as plt
    import numpy as np

    needed = {"framing", "stage", "gap", "lo", "hi"}
    if not needed <= set(gap.columns):
        raise InputError(f"the debias gap table needs columns {sorted(needed)}; has {list(gap.columns)}.")
    frame = gap.assign(_o=gap["stage"].map({s: i for i, s in enumerate(STAGE_ORDER)}))
    frame = frame.sort_values(["framing", "_o"], kind="stable").reset_index(drop=True)
    y = np.arange(len(frame))[::-1]
    with figure_context(style):
        fig, ax = plt.subplots(figsize=(width, 0.7 + 0.28 * len(frame)))
        for stage, color in STAGE_COLORS.items():
            sel = (frame["stage"] == stage).to_numpy()
            if sel.any():
                ax.errorbar(frame["gap"][sel], y[sel], xerr=[frame["gap"][sel] - frame["lo"][sel],
                                                             frame["hi"][sel] - frame["gap"][sel]],
                            fmt="o", color=color, markersize=4, capsize=2, linewidth=1, label=stage)
        ax.axvline(0, color="0.5", linewidth=0.6, alpha=0.6)
        ax.set_yticks(y)
        ax.set_yticklabels([f"{f} · {s}" for f, s in zip(frame["framing"], frame["stage"], strict=True)])
        ax.set_xlabel("family gap in median rank (tilt difference), 95% CI")
        ax.legend(frameon=False, fontsize=style.font_size - 1.5, loc="best")
        fig.tight_layout()
    paths = save_figure(fig, out_dir, stem, style)
    numbers = "; ".join(f"{r.framing} {r.stage} {r.gap:.2f} [{r.lo:.2f}, {r.hi:.2f}]"
                        for r in frame.itertuples())
    caption = ("Base-family gap (mean tilt of the second family minus the first; tilt = median rank "
               f"of the first category minus the second) before and after mitigation: {numbers}.")
    return FigureResult(name=stem, figure=fig, paths=paths, data=frame.drop(columns="_o"),
                        caption=caption)
