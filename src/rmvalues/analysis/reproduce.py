"""Reproduce the paper's Fig 1 statistics (and the Fig 4b table) from the authors' released data.

Two modes:

* ``paper_compatible=True`` replicates the authors' R code exactly: for MFD 2.0 the column range
  ``Care_Virtue:Sanctity_Virtue`` (which silently drops ``Sanctity_Vice``), virtue and vice merged
  into five foundations, and ranks taken over (term, category) rows after pivoting (a term in two
  categories is ranked twice); the figure's stars from the Welch p-value that
  ``MKinfer::perm.t.test`` returns first, Bonferroni over the panels.
* the corrected default keeps all ten MFD categories (or, with ``mfd_grouping="foundations"``, all
  five foundations with both poles), ranks each term once, and takes the stars from the permutation
  p-value the paper's text describes; both p-values are always reported.

For the Big Two nouns the modes differ only in which p-value gives the stars (no noun has two
categories), which the report states.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rmvalues.analysis.ranks import MatchPolicy
from rmvalues.errors import AnalysisError, FetchError, InputError

if TYPE_CHECKING:
    import pandas as pd

    from rmvalues.analysis.mixed import MixedModelResult

FIG1_DATASETS = ("big2-nouns", "mfd2")
DEFAULT_DATASETS = ("big2-nouns", "mfd2", "rank-results")


@dataclass
class Fig1Result:
    """The Fig 1 statistics of one dataset in one mode."""

    dataset: str
    mode: str
    lexicon: str
    policy: MatchPolicy
    categories: list[str]
    verified: bool
    units: pd.DataFrame = field(repr=False)
    mixed: MixedModelResult = field(repr=False)
    framing: pd.DataFrame = field(repr=False)
    panels: pd.DataFrame = field(repr=False)
    stars_from: str = "p_perm"
    items_per_prompt: int = 0

    def tables(self) -> dict[str, pd.DataFrame]:
        prefix = f"{self.dataset}_{self.mode}"
        return {f"{prefix}_units": self.units, f"{prefix}_fixed_effects": self.mixed.fixed,
                f"{prefix}_anova": self.mixed.anova, f"{prefix}_framing": self.framing,
                f"{prefix}_panels": self.panels}


@dataclass
class ReproduceReport:
    """Everything ``rmvalues reproduce`` prints: per-dataset results, Fig 4b, mode differences."""

    mode: str
    fig1: list[Fig1Result] = field(default_factory=list)
    fig4b: pd.DataFrame | None = None
    differences: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def tables(self) -> dict[str, pd.DataFrame]:
        out: dict[str, pd.DataFrame] = {}
        for res in self.fig1:
            out |= res.tables()
        if self.fig4b is not None:
            out["fig4b_final_checkpoint"] = self.fig4b
        return out


def mfd_selection(
    categories: Sequence[str], *, paper_compatible: bool, grouping: Literal["categories", "foundations"]
) -> tuple[list[str], dict[str, str] | None, MatchPolicy]:
    """Which MFD categories to use, how to merge them, and the rank policy, for a mode."""
    cats = list(categories)
    foundations = {c: c.split("_")[0] for c in cats}
    if paper_compatible:
        # R's `pivot_longer(c(Care_Virtue:Sanctity_Virtue))`: a column *range* in file order.
        try:
            lo, hi = cats.index("Care_Virtue"), cats.index("Sanctity_Virtue")
        except ValueError:
            raise AnalysisError(f"MFD lexicon lacks Care_Virtue/Sanctity_Virtue; it has {cats}.") from None
        return cats[lo : hi + 1], foundations, MatchPolicy(rank_over="rows")
    if grouping == "foundations":
        return cats, foundations, MatchPolicy()
    return cats, None, MatchPolicy()


def reproduce_fig1(
    scores: pd.DataFrame,
    lexicon: Any,
    *,
    dataset: str = "big2-nouns",
    paper_compatible: bool = False,
    mfd_grouping: Literal["categories", "foundations"] = "categories",
    n_resamples: int = 9999,
    n_boot: int = 2000,
    seed: int = 42,
    verified: bool = True,
    model_meta: Any = None,
) -> Fig1Result:
    """Units, mixed model, framing summary and panel tests of one released dataset, in one mode."""
    from rmvalues.analysis.hypothesis_tests import group_summary, panel_tests, stars
    from rmvalues.analysis.mixed import fit_mixed_model
    from rmvalues.analysis.ranks import ranked_items
    from rmvalues.analysis.units import median_rank_units

    lex_categories = list(getattr(lexicon, "categories", []))
    if dataset == "mfd2":
        cats, merge, policy = mfd_selection(lex_categories, paper_compatible=paper_compatible,
                                            grouping=mfd_grouping)
    else:
        cats, merge, policy = None, None, MatchPolicy(rank_over="rows" if paper_compatible else "items")
    ranked = ranked_items(scores, lexicon, policy, categories=cats, merge=merge)
    units = median_rank_units(ranked, model_meta=model_meta)
    # R orders the levels of a character column alphabetically: the reference category is the first.
    units["category"] = units["category"].cat.reorder_categories(sorted(units["category"].cat.categories))
    check_models_per_base(units)
    mixed = fit_mixed_model(units)
    panels = panel_tests(units, n_resamples=n_resamples, n_boot=n_boot, seed=seed)
    stars_from = "p_welch" if paper_compatible else "p_perm"
    panels["stars"] = [stars(p) for p in panels[f"{stars_from}_adj"]]
    return Fig1Result(
        dataset=dataset, mode="paper" if paper_compatible else "corrected",
        lexicon=getattr(lexicon, "name", "custom"), policy=policy,
        categories=[str(c) for c in units["category"].cat.categories], verified=verified,
        units=units, mixed=mixed, framing=group_summary(units), panels=panels, stars_from=stars_from,
        items_per_prompt=int(ranked.groupby(["model", "prompt_id"])["item"].nunique().median()),
    )


def check_models_per_base(units: pd.DataFrame) -> None:
    """The base effect is tested between models: every base family needs at least two models."""
    per_base = units.groupby("base", observed=True)["model"].nunique()
    single = per_base[per_base < 2]
    if len(per_base) < 2 or len(single):
        raise AnalysisError(
            f"models per base family: {per_base.to_dict()}. The base comparison needs at least two "
            "base families with at least two models each; add models, or fix --model-meta."
        )


def compare_modes(paper: Fig1Result, corrected: Fig1Result) -> list[str]:
    """Human-readable differences between the paper-compatible and the corrected result."""
    import numpy as np

    name = paper.dataset
    out = []
    if paper.categories != corrected.categories:
        out.append(f"{name}: categories {paper.categories} (paper) vs {corrected.categories} (corrected)")
    if paper.policy != corrected.policy:
        out.append(f"{name}: ranking {paper.policy.describe()} (paper) vs {corrected.policy.describe()}")
    if paper.items_per_prompt != corrected.items_per_prompt:
        out.append(f"{name}: {paper.items_per_prompt} ranked rows per prompt (paper) vs "
                   f"{corrected.items_per_prompt} items (corrected)")
    if len(paper.units) != len(corrected.units):
        out.append(f"{name}: {len(paper.units)} units (paper) vs {len(corrected.units)} (corrected)")
    elif np.allclose(paper.units["median_rank"], corrected.units["median_rank"]):
        out.append(f"{name}: units identical in both modes")
    out.append(f"{name}: stars from {paper.stars_from} (paper) vs {corrected.stars_from} (corrected)")
    if len(paper.panels) == len(corrected.panels):
        keys = ["category", "framing"]
        merged = paper.panels.merge(corrected.panels, on=keys, suffixes=("_paper", "_corr"))
        changed = merged[merged["stars_paper"] != merged["stars_corr"]]
        for r in changed.itertuples():
            out.append(f"{name}: panel {r.category}/{r.framing}: {r.stars_paper} (paper) vs "
                       f"{r.stars_corr} (corrected)")
        if changed.empty:
            out.append(f"{name}: the same stars on every panel")
    return out


def load_released_scores(dataset: str, data_dir: str | Path | None) -> tuple[pd.DataFrame, bool]:
    """A released dictionary-score dataset as one long table, and whether it was sha256-verified."""
    import pandas as pd

    from rmvalues.analysis.datasets import fetch_dataset, get_dataset
    from rmvalues.analysis.importers import model_from_filename, read_dictionary_scores

    spec = get_dataset(dataset)
    paths, verified = fetch_dataset(dataset, data_dir)
    frames = [read_dictionary_scores(p, model_from_filename(p, spec.prefixes)) for p in paths]
    return pd.concat(frames, ignore_index=True), verified


def reproduce(
    data_dir: str | Path | None = None,
    *,
    datasets: Sequence[str] = DEFAULT_DATASETS,
    paper_compatible: bool = False,
    compare: bool = True,
    mfd_grouping: Literal["categories", "foundations"] = "categories",
    n_resamples: int = 9999,
    n_boot: int = 2000,
    seed: int = 42,
) -> ReproduceReport:
    """Run the reproduction for ``datasets``; with ``compare``, also the other mode, to diff them.

    A dataset whose files are not available (an unpinned one without a local copy) is skipped with
    the reason in ``report.skipped``, unless it was the only one asked for.
    """
    import pandas as pd

    from rmvalues.analysis.checkpoints import final_checkpoint_table
    from rmvalues.analysis.datasets import fetch_dataset, get_dataset
    from rmvalues.analysis.importers import read_rank_results
    from rmvalues.lexicons import load_lexicon

    report = ReproduceReport(mode="paper" if paper_compatible else "corrected")
    for name in datasets:
        spec = get_dataset(name)
        try:
            if spec.format == "rank_results_csv":
                paths, _ = fetch_dataset(name, data_dir)
                from rmvalues.analysis.rank_results_runs import with_run_facts

                report.fig4b = final_checkpoint_table(
                    with_run_facts(pd.concat([read_rank_results(p) for p in paths])))
                continue
            if name not in FIG1_DATASETS:
                raise InputError(f"dataset {name!r} has no reproduction; choose from {DEFAULT_DATASETS}.")
            scores, verified = load_released_scores(name, data_dir)
        except FetchError as exc:
            if len(datasets) == 1:
                raise
            report.skipped.append(f"{name}: {exc}")
            continue
        lexicon = load_lexicon(spec.lexicon)
        kwargs = {"dataset": name, "mfd_grouping": mfd_grouping, "n_resamples": n_resamples,
                  "n_boot": n_boot, "seed": seed, "verified": verified}
        main = reproduce_fig1(scores, lexicon, paper_compatible=paper_compatible, **kwargs)
        report.fig1.append(main)
        if compare:
            other = reproduce_fig1(scores, lexicon, paper_compatible=not paper_compatible, **kwargs)
            paper, corrected = (main, other) if paper_compatible else (other, main)
            report.differences += compare_modes(paper, corrected)
    return report


def format_fig1(res: Fig1Result) -> str:
    """One dataset's statistics as text."""
    from rmvalues.analysis.hypothesis_tests import panel_notes

    lines = [f"== {res.dataset} ({res.mode} mode; lexicon {res.lexicon}; {res.policy.describe()}) ==",
             f"files sha256-verified: {'yes' if res.verified else 'NO (unpinned local copy)'}",
             (f"{len(res.units)} units = {res.units['model'].nunique()} models x "
             f"{res.units['prompt_id'].nunique()} prompts x {len(res.categories)} categories; "
             f"{res.items_per_prompt} lexicon items ranked per prompt"),
             "Median rank by framing (mean, SD):"]
    for r in res.framing.itertuples():
        lines.append(f"  {r.framing:<10} {r.mean:8.3f} ({r.sd:.3f}), n = {r.n}")
    lines.append(res.mixed.summary_text())
    lines.append(f"Panel tests ({res.panels['group_a'].iloc[0]} - {res.panels['group_b'].iloc[0]}; "
                 f"{res.panels['correction'].iloc[0]} over {len(res.panels)} panels; stars from "
                 f"{res.stars_from}; {res.panels['n_resamples'].iloc[0]} resamples, seed "
                 f"{res.panels['seed'].iloc[0]}):")
    lines.append(f"  {'category':<12}{'framing':<10}{'n':>9}{'diff':>8}{'p_welch':>10}{'p_perm':>9}"
                 f"{'stars':>6}{'d_rms [95% CI]':>24}{'d_av':>8}{'cohen_d':>9}{'hedges_g':>9}")
    for r in res.panels.itertuples():
        lines.append(f"  {r.category!s:<12}{r.framing!s:<10}{f'{r.n_a}/{r.n_b}':>9}{r.diff:8.2f}"
                     f"{r.p_welch:10.2g}{r.p_perm:9.2g}{r.stars:>6}"
                     f"{f'{r.d_rms:.3f} [{r.d_rms_lo:.3f}, {r.d_rms_hi:.3f}]':>24}{r.d_av:8.3f}"
                     f"{r.cohen_d:9.3f}{r.hedges_g:9.3f}")
    lines += [f"  {note}" for note in panel_notes(res.panels)]
    return "\n".join(lines)


def format_report(report: ReproduceReport) -> str:
    """The whole reproduction as the text ``rmvalues reproduce`` prints."""
    parts = [format_fig1(res) for res in report.fig1]
    if report.fig4b is not None:
        parts.append("== Fig 4b: final checkpoint of each trained RM ==\n" + report.fig4b.to_string(index=False))
    if report.differences:
        parts.append("== What differs between --paper-compatible and the corrected default ==\n"
                     + "\n".join(f"  - {d}" for d in report.differences))
    if report.skipped:
        parts.append("== Skipped ==\n" + "\n".join(f"  - {s}" for s in report.skipped))
    return "\n\n".join(parts)
