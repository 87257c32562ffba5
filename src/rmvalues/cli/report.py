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
                                           "tables/.")] = Path("report"),
    title: Annotated[str | None, typer.Option(help="Report title.")] = None,
    formats: Annotated[str, typer.Option(help="Figure files to write, comma-separated: png, pdf, "
                                              "svg.")] = "png,pdf",
) -> None:
    """Write a self-contained HTML report (figures embedded) of runs and analyses."""
    from dataclasses import replace

    from rmvalues.report import write_report
    from rmvalues.report.style import DEFAULT_STYLE

    style = replace(DEFAULT_STYLE, formats=tuple(f.strip() for f in formats.split(",") if f.strip()))
    path = write_report(*inputs, out_dir=out, title=title, style=style)
    typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
