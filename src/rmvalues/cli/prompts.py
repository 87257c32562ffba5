"""`rmvalues prompts`: list the built-in prompt sets and show one (built-in name or YAML file)."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="Prompt sets: the paper's 54 prompts, the FAccT 3, or your own YAML.",
                  no_args_is_help=True)


@app.command("list")
def list_sets() -> None:
    """List the built-in prompt sets with their size, factors and description."""
    from rich.console import Console
    from rich.table import Table

    from rmvalues.prompts import builtin_prompt_sets, load_prompt_set

    table = Table("name", "prompts", "factors", "description")
    for name in builtin_prompt_sets():
        prompt_set = load_prompt_set(name)
        table.add_row(name, str(len(prompt_set)), ", ".join(prompt_set.factor_names),
                      prompt_set.description)
    Console().print(table)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="A built-in prompt set name, or a YAML file path.")],
) -> None:
    """Every prompt of a set with its id and factor levels, then the levels per factor."""
    from rich.console import Console
    from rich.table import Column, Table

    from rmvalues.prompts import load_prompt_set

    prompt_set = load_prompt_set(name)
    console = Console()
    console.print(f"[bold]{prompt_set.name}[/]: {len(prompt_set)} prompts", highlight=False)
    table = Table(Column("id", no_wrap=True), "text", *prompt_set.factor_names)
    for prompt in prompt_set:
        table.add_row(prompt.id, prompt.text, *prompt.factors.values())
    console.print(table)
    for factor in prompt_set.factor_names:
        counts = {level: 0 for level in prompt_set.levels(factor)}
        for prompt in prompt_set:
            counts[prompt.factors[factor]] += 1
        console.print(f"[bold]{factor}:[/] " + ", ".join(f"{k} ({v})" for k, v in counts.items()),
                      highlight=False)
    for label, value in [("description", prompt_set.description),
                         ("citation", prompt_set.citation), ("source", prompt_set.source)]:
        if value:
            console.print(f"[bold]{label}:[/] {value}", highlight=False, soft_wrap=True)
