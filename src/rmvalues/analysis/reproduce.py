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
from rmvalues.errors import AnalysisError, FetchError, InputError, RmvaluesError

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
class RankResultsFile:
    """What one ``rank_results_*.csv`` held: the one-line summary ``reproduce`` prints per file."""

    name: str
    rows: int
    distinct: int = 0
    models: list[str] = field(default_factory=list)
    families: list[str] = field(default_factory=list)
    last_checkpoints: dict[str, float] = field(default_factory=dict)
    base_inferred: list[str] = field(default_factory=list)
    identical_to: str | None = None

    def summary(self) -> str:
        if self.identical_to is not None:
            return (f"{self.name}: byte-identical to {self.identical_to}; counted once (under "
                    f"{self.identical_to})")
        dups = self.rows - self.distinct
        lasts = sorted({f"{v:g}" for v in self.last_checkpoints.values()})
        parts = [f"{self.rows:,} rows", f"{dups:,} exact duplicate(s) collapsed" if dups else
                 "no duplicates", f"{len(self.models)} model(s) ({', '.join(self.families)})",
                 f"last checkpoint {'/'.join(lasts)}" + (" (differs by model)" if len(lasts) > 1 else "")]
        if self.base_inferred:
            parts.append(f"base family inferred from the id of {', '.join(self.base_inferred)}")
        return f"{self.name}: " + "; ".join(parts)


@dataclass
class ReproduceReport:
    """Everything ``rmvalues reproduce`` prints: per-dataset results, Fig 4b, mode differences.

    ``status`` says, per dataset asked for, ``"done"`` or why it was skipped; ``failed`` lists
    the ones not done (the CLI then exits non-zero).
    """

    mode: str
    fig1: list[Fig1Result] = field(default_factory=list)
    fig4b: pd.DataFrame | None = None
    fig4b_gap: pd.DataFrame | None = None
    rank_files: list[RankResultsFile] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)
    sources: dict[str, dict[str, str]] = field(default_factory=dict)  # dataset -> file -> origin

    @property
    def failed(self) -> list[str]:
        return [name for name, state in self.status.items() if state != "done"]

    def tables(self) -> dict[str, pd.DataFrame]:
        out: dict[str, pd.DataFrame] = {}
        for res in self.fig1:
            out |= res.tables()
        if self.fig4b is not None:
            out["fig4b_final_checkpoint"] = self.fig4b
        if self.fig4b_gap is not None:
            out["fig4b_llama_minus_gemma"] = self.fig4b_gap
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


def load_rank_results(
    paths: Sequence[str | Path], runs: dict[str, dict[str, Any]] | None = None
) -> tuple[pd.DataFrame, list[RankResultsFile]]:
    """Released ``rank_results_*.csv`` files as one table, cleaned, with a summary per file.

    Exact duplicate rows are collapsed; a file byte-identical to an earlier one is counted once;
    ``runs`` (file name -> data_size, data_source, method; the registry's) sets each file's training
    set, as the authors' figure script does.
    """
    import pandas as pd

    from rmvalues.analysis.importers import read_rank_results
    from rmvalues.io import sha256_file

    frames, summaries, seen = [], [], {}
    for path in map(Path, paths):
        digest = sha256_file(path)
        if digest in seen:
            summaries.append(RankResultsFile(path.name, 0, identical_to=seen[digest]))
            continue
        seen[digest] = path.name
        raw = read_rank_results(path)
        frame = raw.drop_duplicates(ignore_index=True)
        for column, value in (runs or {}).get(path.name, {}).items():
            frame[column] = value
        lasts = frame.groupby("model")["checkpoint"].max()
        summaries.append(RankResultsFile(
            path.name, rows=len(raw), distinct=len(frame), models=sorted(frame["model"].unique()),
            families=sorted(frame["base"].unique()), last_checkpoints=lasts.to_dict(),
            base_inferred=list(raw.attrs.get("base_inferred", []))))
        frames.append(frame)
    if not frames:
        raise InputError("no rank_results_*.csv file to read.")
    return pd.concat(frames, ignore_index=True), summaries


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

    A dataset that cannot be reproduced (files not available, or an error in its analysis) is
    skipped with the reason in ``report.status`` / ``report.skipped``, so one failing dataset
    never hides another; a missing file still raises when it was the only dataset asked for. A
    ``data_dir`` holding none of the expected folders, or nothing reproduced at all, is an error.
    ``report.sources`` records where each file came from.
    """
    from rmvalues.analysis.datasets import check_data_dir, file_origins

    check_data_dir(data_dir, tuple(datasets))
    report = ReproduceReport(mode="paper" if paper_compatible else "corrected")
    for name in datasets:
        report.sources[name] = file_origins(name, data_dir)
        try:
            _reproduce_one(report, name, data_dir, paper_compatible=paper_compatible,
                           compare=compare, mfd_grouping=mfd_grouping, n_resamples=n_resamples,
                           n_boot=n_boot, seed=seed)
        except RmvaluesError as exc:
            if len(datasets) == 1 and isinstance(exc, FetchError):
                raise
            report.status[name] = f"skipped: {exc}"
            report.skipped.append(f"{name}: {exc}")
            continue
        report.status[name] = "done"
    if not report.fig1 and report.fig4b is None:
        raise FetchError("nothing was reproduced: " + "; ".join(report.skipped))
    return report


def _reproduce_one(report: ReproduceReport, name: str, data_dir: str | Path | None, *,
                   paper_compatible: bool, compare: bool, mfd_grouping: Any, n_resamples: int,
                   n_boot: int, seed: int) -> None:
    """Add one dataset's results to ``report`` (raises when it cannot be reproduced)."""
    from rmvalues.analysis.checkpoints import family_gap_table, final_checkpoint_table
    from rmvalues.analysis.datasets import fetch_dataset, get_dataset
    from rmvalues.lexicons import load_lexicon

    spec = get_dataset(name)
    if spec.format == "rank_results_csv":
        paths, _ = fetch_dataset(name, data_dir)
        table, report.rank_files = load_rank_results(paths, spec.runs)
        report.fig4b = final_checkpoint_table(table)
        report.fig4b_gap = family_gap_table(report.fig4b)
        return
    if name not in FIG1_DATASETS:
        raise InputError(f"dataset {name!r} has no reproduction; choose from {DEFAULT_DATASETS}.")
    scores, verified = load_released_scores(name, data_dir)
    lexicon = load_lexicon(spec.lexicon)
    kwargs = {"dataset": name, "mfd_grouping": mfd_grouping, "n_resamples": n_resamples,
              "n_boot": n_boot, "seed": seed, "verified": verified}
    main = reproduce_fig1(scores, lexicon, paper_compatible=paper_compatible, **kwargs)
    report.fig1.append(main)
    if compare:
        other = reproduce_fig1(scores, lexicon, paper_compatible=not paper_compatible, **kwargs)
        paper, corrected = (main, other) if paper_compatible else (other, main)
        report.differences += compare_modes(paper, corrected)


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
    if report.rank_files:
        parts.append("== Fig 4b: released rank_results files ==\n"
                     + "\n".join(f"  {f.summary()}" for f in report.rank_files))
    if report.fig4b_gap is not None:
        parts.append("== Fig 4b: final-checkpoint median rank, Llama - Gemma (positive: Gemma "
                     "ranks the category better) ==\n" + report.fig4b_gap.to_string(index=False))
    if report.differences:
        parts.append("== What differs between --paper-compatible and the corrected default ==\n"
                     + "\n".join(f"  - {d}" for d in report.differences))
    if report.status:
        parts.append("== Datasets ==\n" + "\n".join(f"  {name}: {state}"
                                                   for name, state in report.status.items()))
    return "\n\n".join(parts)
