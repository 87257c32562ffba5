"""``rmvalues analyze``: stored runs + a lexicon → tidy tables, a text summary and a manifest.

The stage reads only what scoring wrote (long results tables, Parquet) or the released CSV formats,
and writes every table as Parquet and CSV beside ``summary.txt`` and ``manifest.json``. All outputs
are computed before anything is written, and each file is written atomically, so a failed analysis
leaves no partial output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.analysis.mixed import PAPER_FORMULA
from rmvalues.analysis.ranks import DEFAULT_POLICY, MatchPolicy
from rmvalues.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

    from rmvalues.analysis.mixed import MixedModelResult


@dataclass
class AnalysisResult:
    """Tables of one analysis and the settings that produced them."""

    lexicon: str
    policy: MatchPolicy
    settings: dict[str, Any]
    ranks: pd.DataFrame = field(repr=False)
    units: pd.DataFrame = field(repr=False)
    framing: pd.DataFrame | None = field(default=None, repr=False)
    mixed: MixedModelResult | None = field(default=None, repr=False)
    panels: pd.DataFrame | None = field(default=None, repr=False)
    topk: pd.DataFrame | None = field(default=None, repr=False)
    null: pd.DataFrame | None = field(default=None, repr=False)
    notes: list[str] = field(default_factory=list)
    # Within-RM statistics and group comparisons (rmvalues.analysis.single_rm)
    contrasts: pd.DataFrame | None = field(default=None, repr=False)
    groups: pd.DataFrame | None = field(default=None, repr=False)
    coverage: pd.DataFrame | None = field(default=None, repr=False)
    keys: tuple[str, ...] = ("model",)

    def tables(self) -> dict[str, pd.DataFrame]:
        out = {"ranks": self.ranks, "units": self.units}
        if self.framing is not None:
            out["framing"] = self.framing
        if self.mixed is not None:
            out["fixed_effects"] = self.mixed.fixed
            out["anova"] = self.mixed.anova
        if self.panels is not None:
            out["panels"] = self.panels
        if self.topk is not None:
            out["topk"] = self.topk
        if self.null is not None:
            out["null_baselines"] = self.null
        for name in ("contrasts", "groups", "coverage"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    def summary_text(self) -> str:
        from rmvalues.analysis.grouped import describe_units
        from rmvalues.analysis.single_rm import summary_lines

        lines = [f"rmvalues analysis: lexicon {self.lexicon}; {self.policy.describe()}",
                 describe_units(self.units, self.keys)]
        lines += summary_lines(self.contrasts, self.groups, self.null if self.mixed is None else None,
                               self.keys)
        if self.framing is not None:
            lines.append("Median rank by framing (mean, SD):")
            lines += [f"  {r.framing:<10} {r.mean:8.3f} ({r.sd:.3f}), n = {r.n}" for r in self.framing.itertuples()]
        if self.mixed is not None:
            lines.append(self.mixed.summary_text())
        if self.panels is not None:
            lines += panel_summary_lines(self.panels)
        if self.null is not None and self.mixed is not None:
            lines.append("Null baselines (base x category interaction SS vs random item sets):")
            for r in self.null.itertuples():
                lines.append(f"  {r.kind:<16} observed {r.observed:10.3f}  null 95% {r.null_q95:10.3f}  "
                             f"percentile {r.percentile:5.1f}  p = {r.p_value:.3g} ({r.n_draws} draws)")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def panel_summary_lines(panels: pd.DataFrame) -> list[str]:
    """Panel tests as text: tests, effect sizes named for what they compute, the permutation p
    convention and its resolution limit."""
    from rmvalues.analysis.hypothesis_tests import panel_notes

    first = panels.iloc[0]
    lines = [(f"Panel tests ({first.group_a} - {first.group_b}; {first.correction} over {len(panels)} "
              f"panels; {first.ci_method} bootstrap 95% CIs):")]
    for r in panels.itertuples():
        limit = " (at its resolution limit)" if r.p_perm_at_limit else ""
        lines.append(f"  {r.category!s:<14}{r.framing!s:<10} diff {r.diff:7.2f}  p_welch "
                     f"{r.p_welch:.2g} ({r.stars_welch})  p_perm {r.p_perm:.2g}{limit} ({r.stars_perm})  "
                     f"d_rms {r.d_rms:.3f} [{r.d_rms_lo:.3f}, {r.d_rms_hi:.3f}]  d_av {r.d_av:.3f}")
    return lines + [f"  {note}" for note in panel_notes(panels)]


def read_run(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """A results table from a Parquet file/directory (``rmvalues score``) or a released CSV."""
    import pandas as pd

    from rmvalues.analysis.importers import read_dictionary_scores, read_vocabulary_scores

    if isinstance(source, pd.DataFrame):
        return source
    path = Path(source)
    if not path.exists():
        raise InputError(f"run {path} does not exist; pass a results .parquet (or folder) or a released .csv.")
    if path.suffix == ".csv":
        header = path.open(encoding="utf-8").readline()
        return read_vocabulary_scores(path) if "token_id" in header else read_dictionary_scores(path)
    from rmvalues.store.manifest import read_results

    if path.is_dir():
        # A run folder holds the merged table(s) at the top (shards sit in a sub-folder and a
        # log-prob run keeps its vocabulary table beside the results): read only the results.
        tables = [p for p in sorted(path.glob("*.parquet")) if p.name != "vocabulary.parquet"]
        if not tables:
            raise InputError(f"{path} holds no results .parquet at its top level; pass the table itself.")
        return pd.concat([read_results(p) for p in tables], ignore_index=True)
    return read_results(path)


def analyze(
    runs: Sequence[str | Path | pd.DataFrame],
    lexicon: Any,
    *,
    policy: MatchPolicy = DEFAULT_POLICY,
    model_meta: Any = None,
    formula: str = PAPER_FORMULA,
    categories: Sequence[str] | None = None,
    merge: Mapping[str, str] | None = None,
    correction: str = "bonferroni",
    n_resamples: int = 9999,
    n_boot: int = 2000,
    seed: int = 42,
    top_k: int | None = None,
    null_draws: int = 0,
    ci_method: str = "percentile",
    anova_type: str = "sequential",
    group_by: str | None = None,
) -> AnalysisResult:
    """Ranks, units and — when the runs span two base families with two or more models each —
    the paper's mixed model and panel tests; optional top-k counts and null baselines
    (``null_draws`` random item sets and label shuffles, see :mod:`rmvalues.analysis.null`).
    Otherwise (one model, models without family metadata, checkpoints of a sweep) the within-RM
    category contrasts per run and framing, compared across ``group_by`` (default: checkpoint for
    a sweep, model for several models), with the null baselines for each run
    (:mod:`rmvalues.analysis.single_rm`).

    ``lexicon`` is a built-in name, a file path, or a :class:`~rmvalues.lexicons.Lexicon`.
    """
    import pandas as pd

    from rmvalues.analysis.grouped import base_design, combine_runs, match_coverage, run_keys
    from rmvalues.analysis.hypothesis_tests import group_summary, panel_tests
    from rmvalues.analysis.mixed import fit_mixed_model
    from rmvalues.analysis.ranks import ranked_items
    from rmvalues.analysis.single_rm import within_rm
    from rmvalues.analysis.topk import topk_counts
    from rmvalues.analysis.units import median_rank_units
    from rmvalues.lexicons import load_lexicon

    if not runs:
        raise InputError("no runs given; pass one or more results tables.")
    lex = load_lexicon(lexicon) if isinstance(lexicon, (str, Path)) else lexicon
    scores = combine_runs([read_run(r) for r in runs], runs)
    keys = run_keys(scores)
    ranked = ranked_items(scores, lex, policy, categories=categories, merge=merge, by=(*keys, "prompt_id"))
    units = median_rank_units(ranked, require_base=False, by=keys)
    settings = {"formula": formula, "correction": correction, "n_resamples": n_resamples,
                "n_boot": n_boot, "ci_method": ci_method, "anova_type": anova_type, "seed": seed, "top_k": top_k, "null_draws": null_draws, "categories": categories,
                "merge": dict(merge) if merge else None, "policy": policy.to_dict(), "group_by": group_by}
    units, design = base_design(units, model_meta)
    result = AnalysisResult(lexicon=getattr(lex, "name", str(lexicon)), policy=policy, settings=settings,
                            ranks=ranked, units=units, keys=keys)
    result.coverage, warning = match_coverage(scores, lex, policy, ranked)
    if warning:
        result.notes.append(warning)
    if "framing" in units and units["framing"].notna().all():
        result.framing = group_summary(units)
    if top_k:
        result.topk = topk_counts(scores, lex, top_k, policy, categories=categories, merge=merge)
    within_rm(result, scores, lex, group_by=group_by, null_draws=null_draws if not design.mixed else 0,
              n_boot=n_boot, seed=seed, categories=categories, merge=merge)
    if not design.mixed:
        result.notes.append(str(design.reason))
        return result
    result.mixed = fit_mixed_model(units, formula, anova_type=anova_type)  # type: ignore[arg-type]
    if null_draws:
        from rmvalues.analysis.null import null_baseline

        result.null = pd.concat([null_baseline(scores, lex, kind=kind, policy=policy, model_meta=model_meta,
                                               n_draws=null_draws, seed=seed, categories=categories,
                                               merge=merge).to_frame()
                                 for kind in ("random_words", "shuffled_labels")], ignore_index=True)
    if units["framing"].notna().all():
        result.panels = panel_tests(units, correction=correction, n_resamples=n_resamples,  # type: ignore[arg-type]
                                    n_boot=n_boot, seed=seed, ci_method=ci_method)
    return result


def write_tables(
    out_dir: str | Path, tables: Mapping[str, pd.DataFrame], summary: str, kind: str, **fields: Any
) -> list[Path]:
    """Write each table as ``NAME.parquet`` and ``NAME.csv``, plus ``summary.txt`` and ``manifest.json``."""
    import pandas as pd

    from rmvalues.io import atomic_path, atomic_write_text
    from rmvalues.store.manifest import build_manifest, write_manifest

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {out}: {exc}") from None
    written = []
    for name, table in tables.items():
        frame = table.copy()
        for col in frame.columns:  # categoricals as plain strings: readable by any tool
            if isinstance(frame[col].dtype, pd.CategoricalDtype):
                frame[col] = frame[col].astype(str)
        for suffix, write in ((".parquet", lambda f, p: f.to_parquet(p, index=False)),
                              (".csv", lambda f, p: f.to_csv(p, index=False))):
            target = out / f"{name}{suffix}"
            with atomic_path(target) as tmp:
                write(frame, tmp)
            written.append(target)
    written.append(atomic_write_text(out / "summary.txt", summary + "\n"))
    manifest = build_manifest(kind, tables=sorted(tables), **fields)
    written.append(write_manifest(out / "manifest.json", manifest))
    return written


def write_analysis(result: AnalysisResult, out_dir: str | Path, **fields: Any) -> list[Path]:
    """Write an :class:`AnalysisResult` (tables, summary, manifest with lexicon and policy)."""
    return write_tables(out_dir, result.tables(), result.summary_text(), "analysis",
                        lexicon=result.lexicon, settings=result.settings, notes=result.notes, **fields)
