"""`rmvalues demo`: the main job on real tokenizers (README command 1 runs it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo(
    out: Annotated[Path, typer.Option(help="Directory for the results (created if missing).")]
    = Path("demo-out"),
    rm_steps: Annotated[int, typer.Option(
        help="Training steps of the value-injected SmolLM2 reward model that the demo audits "
             "(0: skip that step).")] = 20,
) -> None:
    """The real pipeline on small real models: lexicon coverage, LM log-probs, implicit RM, a
    value-injected reward model trained and audited, Fig 1, report."""
    from rmvalues.demo import run_demo

    run_demo(out, rm_steps=rm_steps)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
