"""Figures and the self-contained HTML report: one function per figure, one report assembling them.

Every figure function takes tidy tables in a documented column contract (see each module), returns
a :class:`~rmvalues.report.style.FigureResult` (the matplotlib Figure, the PNG/PDF paths, the
plotted numbers) and imports matplotlib only when called.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> module that defines it (loaded on first access, so importing is cheap).
_EXPORTS: dict[str, str] = {
    "FigureStyle": "style",
    "FigureResult": "style",
    "DEFAULT_STYLE": "style",
    "serif_font": "style",
    "figure1": "rm_ranks",
    "figure_a1": "rm_ranks",
    "panel_summary": "rm_ranks",
    "figure2": "lm_ranks",
    "figure3": "mwlr",
    "short_label": "mwlr",
    "table1": "tokens",
    "TokenTable": "tokens",
    "figure4a": "training",
    "figure_a5a": "training",
    "figure4b": "training",
    "figure_a5b": "training",
    "figure5": "training",
    "figure_a6": "training",
    "top_movers": "training",
    "ReportInputs": "html",
    "render_report": "html",
    "load_report_inputs": "inputs",
    "report_from_reproduce": "inputs",
    "inputs_from_reproduce": "inputs",
    "inputs_from_lm_values": "inputs",
    "screenshot": "browser",
    "write_report": "inputs",
    "compare_figures": "facct",
    "report_from_compare": "facct",
}

__all__ = [
    "DEFAULT_STYLE",
    "FigureResult",
    "FigureStyle",
    "ReportInputs",
    "TokenTable",
    "compare_figures",
    "figure1",
    "figure2",
    "figure3",
    "figure4a",
    "figure4b",
    "figure5",
    "figure_a1",
    "figure_a5a",
    "figure_a5b",
    "figure_a6",
    "inputs_from_lm_values",
    "inputs_from_reproduce",
    "load_report_inputs",
    "panel_summary",
    "render_report",
    "report_from_compare",
    "report_from_reproduce",
    "screenshot",
    "serif_font",
    "short_label",
    "table1",
    "top_movers",
    "write_report",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rmvalues.report' has no attribute {name!r}")
    return getattr(importlib.import_module(f"rmvalues.report.{module}"), name)
