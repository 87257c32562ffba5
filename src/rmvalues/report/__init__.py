"""Figures and the self-contained HTML report: one function per figure, one report assembling them.

Every figure function takes tidy tables in a documented column contract (see each module), returns
a :class:`~rmvalues.report.style.FigureResult` (the matplotlib Figure, the PNG/PDF paths, the
plotted numbers) and imports matplotlib only when called.
"""

from __future__ import annotations

from typing import Any

from rmvalues.registry import Registry

#: Public name -> where it is defined (loaded on first access, so importing is cheap).
_EXPORTS: Registry[Any] = Registry("rmvalues.report name")
for _module, _names in {
    "style": ("FigureStyle", "FigureResult", "DEFAULT_STYLE", "serif_font"),
    "rm_ranks": ("figure1", "figure_a1", "panel_summary"),
    "lm_ranks": ("figure2",),
    "mwlr": ("figure3", "short_label"),
    "tokens": ("table1", "TokenTable"),
    "training": ("figure4a", "figure_a5a", "figure4b", "figure_a5b", "figure5", "figure_a6",
                 "top_movers"),
    "html": ("ReportInputs", "render_report"),
    "inputs": ("load_report_inputs", "report_from_reproduce", "inputs_from_reproduce",
               "inputs_from_lm_values", "write_report"),
    "browser": ("screenshot",),
    "facct": ("compare_figures", "report_from_compare"),
}.items():
    for _name in _names:
        _EXPORTS.register(_name, f"rmvalues.report.{_module}:{_name}")
del _module, _names, _name

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


__getattr__ = _EXPORTS.module_getattr("rmvalues.report")
