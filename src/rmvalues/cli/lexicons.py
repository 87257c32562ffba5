"""`rmvalues lexicons`: list, fetch and inspect value lexicons (built-in names or files)."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="Value lexicons: built-in (Big Two, MFD 2.0, ...) or your own files.",
                  no_args_is_help=True)


@app.command("list")
def list_lexicons() -> None:
    """List the built-in lexicons and whether each is in the cache."""
    from rich.console import Console
    from rich.table import Table

    from rmvalues.lexicons.registry import is_fetched, lexicon_specs

    table = Table("name", "format", "fetched", "description")
    for name, spec in lexicon_specs().items():
        table.add_row(name, spec.format, "yes" if is_fetched(name) else "no", spec.description)
    Console().print(table)


@app.command("fetch")
def fetch(
    names: Annotated[list[str] | None, typer.Argument(help="Lexicons to fetch (default: all).")]
    = None,
) -> None:
    """Download and verify built-in lexicons into the cache (`$RMVALUES_CACHE`)."""
    from rmvalues.lexicons.registry import fetch_lexicons, lexicon_specs

    for name, path in fetch_lexicons(names or list(lexicon_specs())).items():
        typer.echo(f"{name}: {path}")


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="A built-in lexicon name, or a lexicon file path.")],
    samples: Annotated[int, typer.Option(min=0, help="Sample terms to print per category.")] = 8,
    fmt: Annotated[str | None, typer.Option("--format", help="File format (default: detected): "
                                            "long-csv, wide-csv, dicx or dic.")] = None,
    duplicates: Annotated[str, typer.Option(help="For files: 'error' on a repeated term, or "
                                            "'merge' its rows.")] = "error",
) -> None:
    """Counts per category, sample terms, citation, source and sha256 of one lexicon."""
    from rich.console import Console
    from rich.table import Table

    from rmvalues.lexicons.model import is_wildcard
    from rmvalues.lexicons.registry import load_lexicon

    lexicon = load_lexicon(name, fmt=fmt, duplicates=duplicates)  # type: ignore[arg-type]
    info = lexicon.info
    console = Console()
    console.print(f"[bold]{info.name}[/]: {len(lexicon)} terms in {len(lexicon.categories)} "
                  "categories", highlight=False)
    notes = []
    if multi := len(lexicon.multi_category_terms()):
        notes.append(f"{multi} terms in more than one category")
    if wild := sum(1 for t in lexicon.entries if is_wildcard(t)):
        notes.append(f"{wild} wildcard terms (expanded on demand against a vocabulary)")
    if lexicon.is_weighted():
        notes.append("weighted")
    for note in notes:
        console.print(f"  {note}", highlight=False)
    table = Table("category", "terms", "sample")
    for cat, count in lexicon.counts().items():
        table.add_row(cat, str(count), ", ".join(lexicon.terms(cat)[:samples]))
    console.print(table)
    for label, value in [("description", info.description), ("citation", info.citation),
                         ("source", info.source), ("sha256", info.sha256)]:
        if value:
            console.print(f"[bold]{label}:[/] {value}", highlight=False, soft_wrap=True)


@app.command("convert")
def convert(
    source: Annotated[str, typer.Argument(help="A built-in lexicon name, or a lexicon file path.")],
    target: Annotated[str, typer.Argument(help="Output file (.dic, .dicx or .csv).")],
    fmt: Annotated[str | None, typer.Option("--format", help="Output format (default: from the "
                                            "extension; .csv is wide-csv).")] = None,
    duplicates: Annotated[str, typer.Option(help="For source files: 'error' on a repeated term, "
                                            "or 'merge' its rows.")] = "error",
) -> None:
    """Write a lexicon in another format (e.g. a .dicx as a LIWC .dic)."""
    from rmvalues.lexicons.readers import write_lexicon
    from rmvalues.lexicons.registry import load_lexicon

    lexicon = load_lexicon(source, duplicates=duplicates)  # type: ignore[arg-type]
    path = write_lexicon(lexicon, target, fmt)  # type: ignore[arg-type]
    typer.echo(f"{path}: {len(lexicon)} terms in {len(lexicon.categories)} categories")
