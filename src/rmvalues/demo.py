"""The main job's demo: the real pipeline end to end on the bundled tokenizers and small models.

1. Lexicon coverage (below): which value-lexicon terms the paper's tokenizers hold as single tokens.
2. Paper §4 on two small real LMs (:mod:`rmvalues.demo_lm`): full-vocabulary log-probs, the Big Two
   analysis (Fig 2) and the implicit reward model between them (MWLR, Table 1, Fig 3).
3. The paper's Fig 1 statistics reproduced from the authors' released RM scores.
4. One self-contained HTML report of all of it.

Exhaustive token search can only score a lexicon term that is one token, and comparing Llama- and
Gemma-based reward models needs terms that are one token in both vocabularies. This audit counts,
for each lexicon x tokenizer, the terms that are single tokens bare (``"love"``) or with a leading
space (``" love"``), those single in both Llama-3 and Gemma-2, and those that need several tokens.
It runs on the real tokenizers from the fetched test assets and writes a table plus a manifest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rmvalues.errors import InputError, StoreError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from rich.console import Console

DEMO_LEXICONS: tuple[str, ...] = ("big-two-nouns", "mfd2")
#: Bundled tokenizer name → display name.
DEMO_TOKENIZERS: dict[str, str] = {"llama3": "Llama-3", "gemma2": "Gemma-2", "qwen": "Qwen"}
#: The two families the paper compares token-for-token.
JOINT: tuple[str, str] = ("llama3", "gemma2")

SUMMARY_COLUMNS: tuple[str, ...] = (
    "lexicon", "tokenizer", "terms", "single_bare", "single_space", "single_token", "any_variant",
    "multi_token",
)
TERM_COLUMNS: tuple[str, ...] = (
    "lexicon", "tokenizer", "term", "categories", "bare_id", "space_id", "single_bare",
    "single_space", "single_token", "n_variants", "n_tokens", "n_tokens_space",
)


@dataclass(frozen=True)
class CoverageAudit:
    """``summary``: one row per lexicon x tokenizer; ``terms``: one row per lexicon x tokenizer x term."""

    summary: pd.DataFrame
    terms: pd.DataFrame
    joint_column: str
    provenance: dict


@dataclass(frozen=True)
class DemoOutputs:
    """Where the demo wrote its results."""

    out: Path
    summary_csv: Path
    summary_parquet: Path
    terms_parquet: Path
    manifest: Path


def joint_column(joint: Sequence[str]) -> str:
    """Name of the summary column counting terms single in every tokenizer of ``joint``."""
    return "single_" + "_and_".join(joint)


def coverage_audit(
    lexicons: Sequence[str] = DEMO_LEXICONS,
    tokenizers: Sequence[str] = tuple(DEMO_TOKENIZERS),
    joint: Sequence[str] = JOINT,
) -> CoverageAudit:
    """Coverage of each lexicon by each bundled tokenizer, plus joint single-token counts."""
    import pandas as pd

    from rmvalues.lexicons import joint_coverage, lexicon_coverage, load_lexicon
    from rmvalues.models.tokenizers import bundled_sources, bundled_tokenizer, decoded_vocabulary

    missing = [name for name in joint if name not in tokenizers]
    if missing:
        raise InputError(
            f"joint tokenizers {missing} are not among the audited {list(tokenizers)}; "
            "audit them too or change `joint`."
        )
    vocabularies = {}
    for name in tokenizers:
        tok = bundled_tokenizer(name)  # type: ignore[arg-type]
        vocabularies[name] = (decoded_vocabulary(tok),
                              lambda text, tok=tok: tok.encode(text, add_special_tokens=False))
    column = joint_column(joint)
    summaries, terms, lexicon_sources = [], [], {}
    for lexicon_name in lexicons:
        lexicon = load_lexicon(lexicon_name)
        lexicon_sources[lexicon_name] = {"sha256": lexicon.info.sha256, "source": lexicon.info.source}
        coverages = {}
        for name, (vocab, encode) in vocabularies.items():
            coverage = lexicon_coverage(lexicon, vocab, encode=encode)
            coverages[name] = coverage
            summaries.append({"lexicon": lexicon_name, "tokenizer": name, **coverage.summary})
            frame = coverage.terms.assign(lexicon=lexicon_name, tokenizer=name)
            terms.append(frame[list(TERM_COLUMNS)])
        both = joint_coverage({name: coverages[name] for name in joint}).summary["single_all"]
        for row in summaries[-len(vocabularies):]:
            row[column] = both
    summary = pd.DataFrame(summaries, columns=[*SUMMARY_COLUMNS, column])
    provenance = {
        "lexicons": lexicon_sources,
        "tokenizers": {name: bundled_sources(name) for name in tokenizers},  # type: ignore[arg-type]
        "joint": list(joint),
    }
    return CoverageAudit(summary=summary, terms=pd.concat(terms, ignore_index=True),
                         joint_column=column, provenance=provenance)


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise StoreError(f"--out {out} is a file; pass a directory (it is created if missing).")


def _prepare_out(out: Path) -> None:
    _check_out(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the output directory {out} ({exc.strerror}); "
                         "pass a writable --out.") from None


def write_audit(audit: CoverageAudit, out: str | Path) -> DemoOutputs:
    """Write the audit as ``coverage.csv`` / ``coverage.parquet`` / ``coverage_terms.parquet`` and
    ``manifest.json`` into ``out``; each file appears whole or not at all."""
    from rmvalues.io import atomic_path, sha256_file
    from rmvalues.store.manifest import build_manifest, write_manifest

    out = Path(out)
    _prepare_out(out)
    paths = DemoOutputs(
        out=out,
        summary_csv=out / "coverage.csv",
        summary_parquet=out / "coverage.parquet",
        terms_parquet=out / "coverage_terms.parquet",
        manifest=out / "manifest.json",
    )
    with atomic_path(paths.summary_csv) as tmp:
        audit.summary.to_csv(tmp, index=False)
    with atomic_path(paths.summary_parquet) as tmp:
        audit.summary.to_parquet(tmp, index=False)
    with atomic_path(paths.terms_parquet) as tmp:
        audit.terms.to_parquet(tmp, index=False)
    outputs = {p.name: sha256_file(p) for p in (paths.summary_csv, paths.summary_parquet,
                                                 paths.terms_parquet)}
    write_manifest(paths.manifest, build_manifest("lexicon-coverage", outputs=outputs,
                                                  **audit.provenance))
    return paths


def print_audit(audit: CoverageAudit, console: Console) -> None:
    """The summary as a rich table, one row per lexicon x tokenizer."""
    from rich.table import Table

    joint_label = " and ".join(DEMO_TOKENIZERS.get(n, n) for n in audit.provenance["joint"])
    table = Table(
        title="Lexicon terms that are single tokens", title_justify="left",
        caption=("bare: 'love' is one token; space: ' love' is; either: one of them; "
                 f"both: single in {joint_label}; several: no single-token form"),
        caption_justify="left",
    )
    table.add_column("lexicon", no_wrap=True)
    table.add_column("tokenizer", no_wrap=True)
    for header in ("terms", "bare", "space", "either", "both", "several"):
        table.add_column(header, justify="right")
    for row in audit.summary.itertuples(index=False):
        table.add_row(row.lexicon, DEMO_TOKENIZERS.get(row.tokenizer, row.tokenizer),
                      str(row.terms), str(row.single_bare), str(row.single_space),
                      str(row.single_token), str(getattr(row, audit.joint_column)),
                      str(row.multi_token))
    console.print(table)


def run_demo(out: str | Path, *, console: Console | None = None, rm_steps: int = 20) -> DemoOutputs:
    """Run the coverage audit on the real tokenizers, print it, write it to ``out``; then the LM
    step, a value-injected reward model audited with the engine (``rm_steps`` training steps, 0
    skips it), the Fig 1 reproduction and the report."""
    from rich.console import Console

    console = console or Console()
    out = Path(out)
    _check_out(out)  # fail before the slow part
    console.print("Auditing lexicons " + ", ".join(DEMO_LEXICONS) + " against the "
                  + ", ".join(DEMO_TOKENIZERS.values()) + " tokenizers ...", highlight=False)
    audit = coverage_audit()
    print_audit(audit, console)
    paths = write_audit(audit, out)
    console.print(f"Results in {paths.out.resolve()}/: {paths.summary_csv.name}, "
                  f"{paths.summary_parquet.name}, {paths.terms_parquet.name} (per term), "
                  f"{paths.manifest.name} (provenance)", highlight=False, soft_wrap=True)
    from rmvalues.demo_lm import run_lm_demo  # paper §4 on SmolLM2 + Gemma-3, into <out>/lm/

    run_lm_demo(out, console)
    if rm_steps:
        from rmvalues.demo_rm import run_rm_demo  # the engine on a real (trained) reward model

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

