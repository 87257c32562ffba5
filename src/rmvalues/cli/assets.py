"""`rmvalues assets`: fetch and list the real test assets (tokenizers, templates, small models)."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="Test assets: real tokenizers, chat templates and small models.", no_args_is_help=True)


@app.command("list")
def list_assets() -> None:
    """List the known assets, whether each is fetched, where, and how to use a bundled model."""
    from rich.console import Console
    from rich.table import Table

    from rmvalues.assets import is_fetched, registry

    table = Table("name", "fetched", "as a model (--model / --base)", "path", "description")
    for name, asset in sorted(registry().items()):
        fetched = is_fetched(name)
        model = any(dest.endswith(".gguf") for dest in asset.outputs)
        table.add_row(name, "yes" if fetched else "no", f"asset:{name}" if model else "",
                      str(asset.directory) if fetched else "", asset.description)
    Console(width=240).print(table)


@app.command("fetch")
def fetch(
    names: Annotated[list[str] | None, typer.Argument(help="Assets to fetch (default: all).")] = None,
) -> None:
    """Download and verify assets into the cache (`$RMVALUES_CACHE`)."""
    from rmvalues.assets import fetch_asset, registry

    for name in names or sorted(registry()):
        path = fetch_asset(name)
        typer.echo(f"{name}: {path}")
