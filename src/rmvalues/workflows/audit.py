"""``rmvalues audit``: from "my reward model" to an answer in one call.

Scores the chosen lexicons (default: Big Two nouns and MFD 2.0) with each model on a prompt set
(default: the paper's 54), analyses them with the within-RM statistics (category contrasts paired
over prompts, CIs, d_z, null baselines; several models compared directly), places each model beside
the paper's ten RMs (their released Big Two scores, on the same median-rank scale), and writes a
report that opens with the answer (:mod:`rmvalues.report.audit`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

    from rmvalues.analysis.pipeline import AnalysisResult

DEFAULT_LEXICONS = ("big-two-nouns", "mfd2")
#: The headline pair for the Big Two (the paper's question: Communion vs Agency).
HEADLINE = {"big-two-nouns": ("Communion", "Agency"), "big-two": ("Communion", "Agency"),
            "big-two-expanded": ("Communion", "Agency")}
#: Released dataset whose scores are on the same scale as a lexicon's audit.
RELEASED = {"big-two-nouns": "big2-nouns"}


@dataclass
class AuditResult:
    """Per lexicon: the analysis of all audited models, the headline contrasts and the released
    RMs' contrasts on the same scale."""

    models: list[str]
    prompts: Any
    prompt_set: str = ""
    analyses: dict[str, AnalysisResult] = field(default_factory=dict)
    headline: dict[str, pd.DataFrame] = field(default_factory=dict)
    released: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    score_paths: dict[str, list[str]] = field(default_factory=dict)
    report: Path | None = None


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def headline_contrasts(analysis: AnalysisResult, lexicon: str) -> pd.DataFrame:
    """One pair per lexicon, oriented so that ``category_a`` is the headline category:
    Communion vs Agency, or for a larger lexicon the categories ranked best and worst (over all
    models and prompts)."""
    from rmvalues.analysis.single_rm import categories_of

    contrasts = analysis.contrasts
    cats = categories_of(analysis.units)
    if lexicon in HEADLINE and set(HEADLINE[lexicon]) <= set(cats):
        a, b = HEADLINE[lexicon]
    else:
        means = analysis.units.groupby("category", observed=True)["median_rank"].mean().sort_values()
        a, b = str(means.index[0]), str(means.index[-1])
    same = (contrasts["category_a"] == a) & (contrasts["category_b"] == b)
    flipped = (contrasts["category_a"] == b) & (contrasts["category_b"] == a)
    rows = contrasts[same].copy()
    if rows.empty:
        rows = flip_contrasts(contrasts[flipped])
    return rows.reset_index(drop=True)


def flip_contrasts(frame: pd.DataFrame) -> pd.DataFrame:
    """The same contrasts stated for B − A (swap the categories, negate, mirror the CIs)."""
    out = frame.copy()
    out["category_a"], out["category_b"] = frame["category_b"], frame["category_a"]
    out["median_rank_a"], out["median_rank_b"] = frame["median_rank_b"], frame["median_rank_a"]
    out["a_better"], out["b_better"] = frame["b_better"], frame["a_better"]
    for col in ("places_above", "t", "d_z"):
        out[col] = -frame[col]
    out["places_above_lo"], out["places_above_hi"] = -frame["places_above_hi"], -frame["places_above_lo"]
    out["d_z_lo"], out["d_z_hi"] = -frame["d_z_hi"], -frame["d_z_lo"]
    return out


def released_contrasts(lexicon: Any, pair: tuple[str, str], prompts: Any, *, policy: Any,
                       data_dir: str | Path | None = None, n_boot: int = 500, seed: int = 42
                       ) -> tuple[pd.DataFrame | None, str | None]:
    """The paper's ten RMs' headline contrasts from their released scores (all prompts), or a
    note saying why there are none."""
    from rmvalues.analysis.ranks import ranked_items
    from rmvalues.analysis.reproduce import load_released_scores
    from rmvalues.analysis.single_rm import category_contrasts
    from rmvalues.analysis.units import median_rank_units
    from rmvalues.errors import RmvaluesError
    from rmvalues.lexicons import load_lexicon

    lexicon = load_lexicon(lexicon) if isinstance(lexicon, str) else lexicon
    dataset = RELEASED.get(lexicon.name)
    if dataset is None:
        return None, f"{lexicon.name}: the paper released no scores for this lexicon; no comparison."
    from rmvalues.prompts import prompt_pairs

    paper = dict(prompt_pairs("paper-54")[1])
    _, pairs = prompt_pairs(prompts)
    if any(paper.get(pid) != text for pid, text in pairs):
        return None, (f"{lexicon.name}: the released scores are on the paper's 54 prompts; these "
                      "prompts are not among them, so the paper's RMs are not on the same scale "
                      "and are not shown.")
    try:
        scores, _ = load_released_scores(dataset, data_dir)
    except RmvaluesError as exc:
        return None, f"{lexicon.name}: released scores unavailable ({exc}); no comparison with the paper's RMs."
    # the same prompts as the audit (all 54, or the subset it ran): the same scale
    scores = scores[scores["prompt_id"].isin([pid for pid, _ in pairs])]
    units = median_rank_units(ranked_items(scores, lexicon, policy), require_base=False)
    contrasts = category_contrasts(units, pair[0], pair[1], by=["model"], n_boot=n_boot, seed=seed)
    contrasts = contrasts[contrasts["framing"] == "all"].assign(source="released (paper)")
    return contrasts.reset_index(drop=True), None


def audit(
    models: Sequence[str | Path],
    *,
    lexicons: Sequence[str] = DEFAULT_LEXICONS,
    prompts: Any = "paper-54",
    out: str | Path = "audit",
    gguf_file: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    batch_size: int | None = None,
    null_draws: int = 999,
    n_boot: int = 2000,
    seed: int = 42,
    match: str = "exact",
    data_dir: str | Path | None = None,
    compare_released: bool = True,
    progress: bool = False,
) -> AuditResult:
    """Score, analyse and report (see the module docstring); ``out`` holds ``scores/``,
    ``analysis/<lexicon>/``, ``tables/`` and ``report.md``. Re-running resumes the scoring."""
    import pandas as pd

    from rmvalues.analysis.pipeline import analyze, write_analysis
    from rmvalues.analysis.ranks import MatchPolicy
    from rmvalues.analysis.single_rm import group_comparison, single_rm_nulls
    from rmvalues.api import score
    from rmvalues.lexicons import load_lexicon
    from rmvalues.models.checkpoints import load_model_ref, resolve_model_ref
    from rmvalues.store.shards import check_writable

    if not models:
        raise InputError("no --model given; pass one or more reward models to audit.")
    if not lexicons:
        raise InputError("no --lexicon given; pass at least one (default: big-two-nouns and mfd2).")
    out = Path(check_writable(out))
    policy = MatchPolicy(match=match)  # type: ignore[arg-type]
    lexes = {name: load_lexicon(name) for name in lexicons}  # bad names fail before any loading
    refs = [resolve_model_ref(m, gguf_file) for m in models]
    names = [r.name for r in refs]
    if len(set(names)) != len(names):
        raise InputError(f"two --model arguments name the same model ({names}); audit each once.")
    from rmvalues.prompts import prompt_pairs

    result = AuditResult(models=[], prompts=prompts, prompt_set=prompt_pairs(prompts)[0])
    tables: dict[str, list[pd.DataFrame]] = {name: [] for name in lexicons}
    for ref in refs:
        rm = load_model_ref(ref, device=device, dtype=dtype)
        result.models.append(rm.name)
        for name in lexicons:
            folder = out / "scores" / _slug(rm.name) / _slug(name)
            scored = score(rm, prompts, f"lexicon:{name}", folder, batch_size=batch_size,
                           progress=progress)
            tables[name].append(scored.table)
            result.score_paths.setdefault(rm.name, []).append(str(scored.path))
        del rm
    for name, lex in lexes.items():
        analysis = analyze(tables[name], lex, policy=policy, n_boot=n_boot, seed=seed,
                           group_by="model" if len(refs) > 1 else None)
        head = headline_contrasts(analysis, name)
        pair = (str(head["category_a"].iloc[0]), str(head["category_b"].iloc[0]))
        if null_draws:  # the nulls of the headline pair
            analysis.null = single_rm_nulls(pd.concat(tables[name], ignore_index=True), lex, *pair,
                                            policy=policy, n_draws=null_draws, seed=seed)
        if len(refs) > 1:
            analysis.groups = group_comparison(analysis.units, "model", *pair)
        write_analysis(analysis, out / "analysis" / _slug(name), runs=result.score_paths)
        result.analyses[name] = analysis
        result.headline[name] = head
        if compare_released:
            released, note = released_contrasts(lex, pair, prompts, policy=policy,
                                                 data_dir=data_dir, seed=seed)
            if released is not None:
                result.released[name] = released
            if note:
                result.notes.append(note)
    from rmvalues.report.audit import write_audit_report

    result.report = write_audit_report(result, out, settings={
        "models": [str(m) for m in models], "lexicons": list(lexicons), "prompts": result.prompt_set,
        "null_draws": null_draws, "n_boot": n_boot, "seed": seed, "policy": policy.to_dict()})
    return result
