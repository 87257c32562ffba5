"""`rmvalues report`: a thin layer over :func:`rmvalues.report.write_report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report_command(
    inputs: Annotated[list[Path], typer.Argument(
        metavar="RUN_OR_ANALYSIS_DIR...",
        help="Run or analysis folders (from `rmvalues score`, `analyze --out`, `reproduce --out`, "
             "...); their tables and manifests are merged into one report.")],
    out: Annotated[Path, typer.Option(help="Folder for report.html, figures/ (PNG + PDF) and "
                                           "tables/ (CSV + LaTeX).")] = Path("report"),
    title: Annotated[str | None, typer.Option(help="Report title.")] = None,
    formats: Annotated[str, typer.Option(help="Figure files to write, comma-separated: png, pdf, "
                                              "svg.")] = "png,pdf",
    screenshot: Annotated[Path | None, typer.Option(
        help="Also save a PNG screenshot of the report, taken with headless Chromium (for "
             "docs).")] = None,
) -> None:
    """Write a self-contained HTML report (figures embedded) of runs and analyses.

    Figures and statistics come from analysis folders (``analyze``/``reproduce``/log-prob
    outputs; one RM gets its median ranks by category and framing); a scoring run folder
    contributes its provenance manifest, its prompt set, and — for a vocabulary run — the top and
    bottom tokens. Statistics tables are also written to ``tables/`` as CSV and LaTeX.
    """
    from dataclasses import replace

    from rmvalues.report import write_report
    from rmvalues.report.style import DEFAULT_STYLE

    style = replace(DEFAULT_STYLE, formats=tuple(f.strip() for f in formats.split(",") if f.strip()))
    path = write_report(*inputs, out_dir=out, title=title, style=style)
    typer.echo(f"wrote {path}")
    if screenshot is not None:
        from rmvalues.report.browser import screenshot as take_screenshot

        run = take_screenshot(path, screenshot)
        for note in run.notes:
            typer.echo(note, err=True)
        for line in run.console:
            typer.echo(f"browser console: {line}", err=True)
        typer.echo(f"wrote {screenshot}")


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
