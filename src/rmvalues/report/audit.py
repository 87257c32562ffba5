"""The audit report: it opens with the answer, then the evidence.

``report.md`` (and the same text in ``summary.txt``) starts with one paragraph per model and
lexicon — "Communion ranks N places above Agency (95% CI ...); paired tests over the 54 prompts;
by framing; Cohen's d_z; against the nulls" and a verdict — then places each model beside the
paper's ten RMs on the same scale, then the details. Tables go to ``tables/`` as CSV and LaTeX,
one figure per lexicon (median rank by category and framing) to ``figures/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from rmvalues.workflows.audit import AuditResult

LEXICON_TITLES = {"big-two-nouns": "Big Two nouns", "mfd2": "Moral Foundations Dictionary 2.0"}


def _null_phrase(nulls: pd.DataFrame | None, model: str) -> tuple[str, pd.DataFrame | None]:
    if nulls is None or nulls.empty:
        return "no null baselines drawn (--null-draws 0)", None
    sel = nulls[nulls["model"] == model]
    parts = [f"{'random word sets' if r['kind'] == 'random_words' else 'shuffled category labels'} "
             f"p = {r['p_value']:.2g}" for r in sel.to_dict("records")]
    n = int(sel["n_draws"].iloc[0]) if len(sel) else 0
    return f"against nulls of {n} draws: " + ", ".join(parts), sel


def answer_paragraph(head: pd.DataFrame, nulls: pd.DataFrame | None, model: str) -> str:
    """The answer for one model and lexicon (all prompts, by framing, nulls, verdict)."""
    from rmvalues.analysis.single_rm import ALL, describe_contrast, verdict

    rows = head[head["model"] == model]
    overall = rows[rows["framing"] == ALL].iloc[0].to_dict()
    text = describe_contrast(overall)
    by_framing = [describe_contrast(r) for r in rows[rows["framing"] != ALL].to_dict("records")]
    null_text, sel = _null_phrase(nulls, model)
    a, b = overall["category_a"], overall["category_b"]
    if verdict(overall, sel):
        winner = a if overall["places_above"] > 0 else b
        loser = b if winner == a else a
        conclusion = f"**Verdict: {model} prefers {winner} over {loser}.**"
    else:
        conclusion = (f"**Verdict: no reliable {a}/{b} preference** (a preference needs the paired "
                      "tests over prompts and the shuffled-label null below 0.05).")
    lines = [f"{text}; {null_text}. {conclusion}"]
    if by_framing:
        lines.append("By framing: " + "; ".join(by_framing) + ".")
    return "\n\n".join(lines)


def group_line(r: Mapping[str, Any]) -> str:
    """One comparison of two models' headline gaps, paired over prompts."""
    return (f"{r['group_y']} vs {r['group_x']}: {r['category_a']} - {r['category_b']} gap "
            f"{r['places_above_y']:+.1f} vs {r['places_above_x']:+.1f} places (difference "
            f"{r['change']:+.1f} over {r['n_prompts']} paired prompts; {r['correction']}-corrected "
            f"paired t p = {r['p_t_adj']:.2g}, Wilcoxon p = {r['p_wilcoxon_adj']:.2g}).")


def beside_released(head: pd.DataFrame, released: pd.DataFrame, model: str) -> tuple[str, pd.DataFrame]:
    """Where ``model``'s headline contrast sits among the paper's RMs, and the table (sorted)."""
    import pandas as pd

    from rmvalues.analysis.single_rm import ALL

    ours = head[(head["model"] == model) & (head["framing"] == ALL)].assign(source="audited")
    table = pd.concat([released, ours], ignore_index=True).sort_values("places_above", ascending=False)
    table = table[["model", "source", "category_a", "category_b", "places_above", "places_above_lo",
                   "places_above_hi", "p_t", "d_z"]].reset_index(drop=True)
    value = float(ours["places_above"].iloc[0])
    above = released[released["places_above"] > value]
    below = released[released["places_above"] < value]
    a, b = ours["category_a"].iloc[0], ours["category_b"].iloc[0]
    where = (f"above all {len(released)} of the paper's RMs" if above.empty else
             f"below all {len(released)} of the paper's RMs" if below.empty else
             f"between {above.sort_values('places_above').iloc[0]['model']} "
             f"({above['places_above'].min():+.1f}) and {below.sort_values('places_above').iloc[-1]['model']} "
             f"({below['places_above'].max():+.1f})")
    text = (f"Beside the paper's ten RMs (their released scores, same lexicon, prompts and ranking): "
            f"{model}'s {a} - {b} gap of {value:+.1f} places sits {where}; theirs range from "
            f"{released['places_above'].min():+.1f} to {released['places_above'].max():+.1f}.")
    return text, table


def write_audit_report(result: AuditResult, out: Path, settings: Mapping[str, Any]) -> Path:
    """Write ``report.md``, ``summary.txt``, ``tables/``, ``figures/`` and ``manifest.json``."""
    from dataclasses import replace

    from rmvalues.analysis.single_rm import ALL
    from rmvalues.io import atomic_write_text
    from rmvalues.report.categories import category_figure
    from rmvalues.report.style import DEFAULT_STYLE
    from rmvalues.report.tables import write_table
    from rmvalues.store.manifest import build_manifest, write_manifest

    tables_dir, figures_dir = out / "tables", out / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    n_prompts = {name: int(a.units["prompt_id"].nunique()) for name, a in result.analyses.items()}
    title = ", ".join(result.models)
    answer, details, written = [f"# rmvalues audit: {title}", ""], [], []
    for name, analysis in result.analyses.items():
        lex_title = LEXICON_TITLES.get(name, name)
        head = result.headline[name]
        answer.append(f"## {lex_title} ({n_prompts[name]} prompts of {result.prompt_set})")
        answer.append("")
        for model in result.models:
            prefix = f"**{model}**: " if len(result.models) > 1 else ""
            answer.append(prefix + answer_paragraph(head, analysis.null, model))
            answer.append("")
            if name in result.released:
                text, table = beside_released(head, result.released[name], model)
                answer.append(text)
                answer.append("")
                written += write_table(table, tables_dir, f"{name}_beside_paper_rms"
                                       + (f"_{model}" if len(result.models) > 1 else "").replace("/", "_"))
        if analysis.groups is not None:
            answer += [group_line(r) for r in analysis.groups.to_dict("records")] + [""]
        figure = category_figure(analysis.units, lexicon_label=lex_title, out_dir=figures_dir,
                                 stem=f"{name}_median_rank_by_category",
                                 style=replace(DEFAULT_STYLE, formats=("png",)))
        figure.close()
        cats = figure.data.drop(columns="panel")
        written += write_table(cats, tables_dir, f"{name}_median_rank_by_category")
        written += write_table(analysis.contrasts, tables_dir, f"{name}_contrasts")
        if analysis.null is not None:
            written += write_table(analysis.null, tables_dir, f"{name}_null_baselines")
        if analysis.coverage is not None:
            written += write_table(analysis.coverage, tables_dir, f"{name}_coverage")
        written += list(figure.paths.values())
        overall = cats[cats["framing"] == ALL].sort_values(["model", "mean"])
        details += [f"## Details: {lex_title}", "",
                    f"![median ranks]({figure.paths['png'].relative_to(out)})", "",
                    "Categories by mean median rank (1 = best), all prompts:", ""]
        details += [f"- {r['model']}: {r['category']} {r['mean']:.1f} (SD {r['sd']:.1f})"
                    for r in overall.to_dict("records")]
        details += ["", "```", analysis.summary_text(), "```", ""]
    notes = list(result.notes)
    if notes:
        answer += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    answer += [
        ("How to read this: ranks are within each prompt among the lexicon's words (1 = best); a "
        "category's score under a prompt is its words' median rank (the paper's unit). The paired "
        "tests treat the prompts as the sample and these words as fixed; the null baselines ask "
        "whether random word sets of the same sizes, or random splits of these words, differ as "
        "much. d_z is the mean paired difference over its SD."), ""]
    text = "\n".join(answer + details)
    report = atomic_write_text(out / "report.md", text)
    atomic_write_text(out / "summary.txt", text)
    write_manifest(out / "manifest.json", build_manifest(
        "audit", models=result.models, settings=dict(settings), scores=result.score_paths,
        notes=notes, files=sorted(str(p.relative_to(out)) for p in written)))
    return report
