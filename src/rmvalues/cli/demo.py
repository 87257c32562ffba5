"""`rmvalues demo`: the main job on real tokenizers (README command 1 runs it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo(
    out: Annotated[Path, typer.Option(help="Directory for the results (created if missing).")]
    = Path("demo-out"),
) -> None:
    """Audit which value-lexicon terms are single tokens for Llama-3, Gemma-2 and Qwen."""
    from rmvalues.demo import run_demo

    run_demo(out)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
