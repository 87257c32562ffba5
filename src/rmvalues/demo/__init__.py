"""The main job's demo: the real pipeline end to end on the bundled tokenizers and small models.

1. Lexicon coverage (:mod:`rmvalues.lexicons.audit`): which value-lexicon terms the paper's
   tokenizers hold as single tokens.
2. Paper §4 on two small real LMs (:mod:`rmvalues.demo.lm`): full-vocabulary log-probs, the Big Two
   analysis (Fig 2) and the implicit reward model between them (MWLR, Table 1, Fig 3).
3. The paper's Fig 1 statistics reproduced from the authors' released RM scores.
4. One self-contained HTML report of all of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rmvalues.lexicons.audit import (
    DEMO_LEXICONS,
    DEMO_TOKENIZERS,
    DemoOutputs,
    check_out_dir,
    coverage_audit,
    print_audit,
    write_audit,
)

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console


def run_demo(out: str | Path, *, console: Console | None = None, rm_steps: int = 20) -> DemoOutputs:
    """Run the coverage audit on the real tokenizers, print it, write it to ``out``; then the LM
    step, a value-injected reward model audited with the engine (``rm_steps`` training steps, 0
    skips it), the Fig 1 reproduction and the report."""
    from rich.console import Console

    console = console or Console()
    out = Path(out)
    check_out_dir(out)  # fail before the slow part
    console.print("Auditing lexicons " + ", ".join(DEMO_LEXICONS) + " against the "
                  + ", ".join(DEMO_TOKENIZERS.values()) + " tokenizers ...", highlight=False)
    audit = coverage_audit()
    print_audit(audit, console)
    paths = write_audit(audit, out)
    console.print(f"Results in {paths.out.resolve()}/: {paths.summary_csv.name}, "
                  f"{paths.summary_parquet.name}, {paths.terms_parquet.name} (per term), "
                  f"{paths.manifest.name} (provenance)", highlight=False, soft_wrap=True)
    from rmvalues.demo.lm import run_lm_demo  # paper §4 on SmolLM2 + Gemma-3, into <out>/lm/

    run_lm_demo(out, console)
    if rm_steps:
        from rmvalues.demo.rm import run_rm_demo  # the engine on a real (trained) reward model

        run_rm_demo(out, console, steps=rm_steps)
    reproduce_paper_fig1(out / "reproduce", console)
    from rmvalues.report import write_report

    report = write_report(out, out_dir=out / "report", title="rmvalues demo")
    console.print(f"Report (self-contained HTML, figures embedded): {report.resolve()}",
                  highlight=False, soft_wrap=True)
    return paths


def reproduce_paper_fig1(out: Path, console: Console) -> bool:
    """Reproduce the paper's Fig 1 statistics for the Big Two from the authors' released scores.

    The released files come from ``$RMVALUES_PAPER_DATA`` or are downloaded from their pinned
    commit; where neither works the step is skipped with the reason (the rest of the demo stands).
    """
    from rmvalues.analysis.pipeline import write_tables
    from rmvalues.analysis.reproduce import format_report, reproduce
    from rmvalues.errors import FetchError

    console.print("Reproducing the paper's Fig 1 statistics (Big Two, 10 released RMs) ...",
                  highlight=False)
    try:
        result = reproduce(None, datasets=["big2-nouns"], compare=True)
    except FetchError as exc:
        console.print(f"[yellow]skipped the reproduction:[/] {exc}", highlight=False, soft_wrap=True)
        return False
    text = format_report(result)
    console.print(text, highlight=False, markup=False, soft_wrap=True)
    write_tables(out, result.tables(), text, "reproduce", mode=result.mode,
                 skipped=result.skipped, differences=result.differences)
    console.print(f"Reproduction tables in {out.resolve()}/", highlight=False, soft_wrap=True)
    return True

