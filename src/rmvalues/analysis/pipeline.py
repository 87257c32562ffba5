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

from rmvalues.analysis.ranks import DEFAULT_POLICY, MatchPolicy
from rmvalues.errors import AnalysisError, InputError
from rmvalues.finite import finite_rows

if TYPE_CHECKING:
    import pandas as pd

    from rmvalues.analysis.mixed import MixedModelResult
    from rmvalues.analysis.sensitivity import SensitivityResult


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
    sensitivity: SensitivityResult | None = field(default=None, repr=False)
    attributes: pd.DataFrame | None = field(default=None, repr=False)
    seeds: pd.DataFrame | None = field(default=None, repr=False)
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
        if self.sensitivity is not None:
            out.update(self.sensitivity.tables())
        if self.attributes is not None:
            out["attribute_gaps"] = self.attributes
        if self.seeds is not None:
            out["seed_spread"] = self.seeds
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
        if self.sensitivity is not None:
            lines += self.sensitivity.summary_lines()
        if self.attributes is not None:
            from rmvalues.analysis.attributes import attribute_summary_lines

            lines += attribute_summary_lines(self.attributes)
        if self.seeds is not None:
            from rmvalues.analysis.seeds import seed_summary_lines

            lines += seed_summary_lines(self.seeds)
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
        lines.append(f"  {r.category!s:<14}{getattr(r, 'framing', '')!s:<10} diff {r.diff:7.2f}  p_welch "
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
    from rmvalues.analysis.implicit_units import implicit_tables, read_implicit_scores

    implicit = implicit_tables(path)
    if implicit:  # an implicit RM (a pair's MWLR table) read as a score run, both directions
        frames = [read_implicit_scores(t) for t in implicit]
        out = pd.concat(frames, ignore_index=True)
        out.attrs = {"model_meta": [m for f in frames for m in f.attrs["model_meta"]],
                     "prompt_set": frames[0].attrs.get("prompt_set")}
        return out
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
        out = pd.concat([read_results(p) for p in tables], ignore_index=True)
    else:
        tables, out = [path], read_results(path)
    out.attrs["prompt_set"] = _recorded_prompt_set(tables)
    return out


def _recorded_prompt_set(tables: Sequence[Path]) -> str | None:
    """The prompt set the tables' manifests record (None when absent or when they disagree)."""
    from rmvalues.errors import StoreError
    from rmvalues.store.manifest import manifest_path, read_manifest

    names = set()
    for table in tables:
        try:
            fields = read_manifest(manifest_path(table)).fields
        except StoreError:
            names.add(None)
            continue
        names.add(fields.get("prompt_file") or fields.get("prompt_set"))
    return names.pop() if len(names) == 1 else None


def resolve_analysis_prompts(frames: Sequence[pd.DataFrame], prompts: Any = None
                             ) -> tuple[Any, list[str]]:
    """The prompt set whose factors the units get: ``prompts`` if given, else the one every run's
    manifest records (a built-in name or YAML path), else ``paper-54``; plus notes on the choice."""
    from rmvalues.prompts import load_prompt_set

    if prompts is not None:
        from rmvalues.analysis.gap import combined_prompt_set

        return combined_prompt_set(prompts), []
    recorded = {f.attrs.get("prompt_set") for f in frames}
    if len(recorded) == 1 and (name := recorded.pop()):
        try:
            return load_prompt_set(name), []
        except InputError:
            note = (f"the runs' prompt set {name!r} cannot be loaded by name; factors taken from "
                    "paper-54 (pass --prompts with its YAML file)")
            return load_prompt_set("paper-54"), [note]
    return load_prompt_set("paper-54"), []


def default_formula(units: pd.DataFrame) -> str:
    """``median_rank ~ base * category`` times every prompt factor of the design present with two
    or more levels (``framing`` for the paper's 54, giving the paper's formula)."""
    terms = ["base", "category"]
    if "framing" in units.columns and units["framing"].nunique() > 1:
        terms.append("framing")
    return "median_rank ~ " + " * ".join(terms)


def analyze(
    runs: Sequence[str | Path | pd.DataFrame],
    lexicon: Any,
    *,
    policy: MatchPolicy = DEFAULT_POLICY,
    model_meta: Any = None,
    formula: str | None = None,
    categories: Sequence[str] | None = None,
    merge: Mapping[str, str] | None = None,
    correction: str = "bonferroni",
    n_resamples: int = 9999,
    n_boot: int = 2000,
    seed: int = 42,
    top_k: int | None = None,
    drop_nonfinite: bool = False,
    null_draws: int = 0,
    ci_method: str = "percentile",
    anova_type: str = "sequential",
    prompts: Any = None,
    sensitivity: bool = False,
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
    NaN/inf scores are refused, or with ``drop_nonfinite`` left out (counted in the settings).
    ``prompts``: the prompt set(s) the runs were scored on (default paper-54), whose factors the
    units carry. ``sensitivity``: also estimate how the base-family gap varies with the prompt
    (:mod:`rmvalues.analysis.sensitivity`); units without a framing (neutral controls) are then
    left out of the paper's mixed model and panel tests only.
    Runs may be implicit-reward tables (:mod:`rmvalues.analysis.implicit_units`). Prompt factors
    come from ``prompts``, else the prompt set the runs' manifests record; ``formula=None`` builds
    the formula from the factors present (:func:`default_formula`).
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
    frames = [read_run(r) for r in runs]
    pset, notes = resolve_analysis_prompts(frames, prompts)
    implicit_meta = [m for f in frames for m in f.attrs.get("model_meta", [])]
    if implicit_meta:  # implicit RMs: base = the family whose preference the scores express
        from rmvalues.analysis.units import read_model_meta

        given = [read_model_meta(model_meta)] if model_meta is not None else []
        model_meta = pd.concat([*given, pd.DataFrame(implicit_meta)], ignore_index=True)
    scores = combine_runs(frames, runs)
    keep = finite_rows(scores["score"], what="the runs' scores", drop=drop_nonfinite,
                       error=AnalysisError,
                       label=lambda i: (f"{scores['model'].iat[i]} / {scores['prompt_id'].iat[i]} / "
                                        f"{scores['candidate'].iat[i]!r}"),
                       fix="Ranks of NaN/inf are meaningless; re-score those prompts.")
    if not keep.all():
        scores = scores[keep].reset_index(drop=True)
    keys = run_keys(scores)
    ranked = ranked_items(scores, lex, policy, categories=categories, merge=merge, by=(*keys, "prompt_id"))
    units = median_rank_units(ranked, require_base=False, by=keys, prompts=pset)
    formula = formula or default_formula(units)
    settings = {"formula": formula, "correction": correction, "n_resamples": n_resamples,
                "n_boot": n_boot, "ci_method": ci_method, "anova_type": anova_type, "seed": seed,
                "top_k": top_k, "null_draws": null_draws, "categories": categories,
                "merge": dict(merge) if merge else None, "policy": policy.to_dict(),
                "prompts": pset.name, "sensitivity": sensitivity, "group_by": group_by}
    settings["prompt_set"] = pset.name
    settings["nonfinite_rows_dropped"] = int((~keep).sum())
    units, design = base_design(units, model_meta)
    result = AnalysisResult(lexicon=getattr(lex, "name", str(lexicon)), policy=policy, settings=settings,
                            ranks=ranked, units=units, keys=keys, notes=notes)
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
    from rmvalues.analysis.attributes import attribute_gaps, has_attributes

    if has_attributes(units["model"].unique()):
        # per-attribute runs: gaps per attribute; the paper's model only over combined rewards
        result.attributes = attribute_gaps(units, n_boot=n_boot, seed=seed)
        units = units[~units["model"].map(lambda m: has_attributes([m]))].reset_index(drop=True)
        result.notes.append("attribute runs (MODEL@ATTRIBUTE) are analysed per attribute "
                            "(attribute_gaps); the mixed model uses the combined rewards only")
        if units["model"].nunique() < 2:
            return result
    from rmvalues.analysis.reproduce import check_models_per_base
    from rmvalues.analysis.seeds import seed_spread, seed_table

    seeds = seed_table(model_meta)
    if seeds is not None:  # trained RMs over several seeds: spread beside the family gap
        result.seeds = seed_spread(units, seeds, n_boot=n_boot, seed=seed)
    check_models_per_base(units)
    if sensitivity:
        from rmvalues.analysis.sensitivity import prompt_sensitivity

        result.sensitivity = prompt_sensitivity(units, pset, n_boot=n_boot, seed=seed)
        from rmvalues.analysis.units import FRAMING_LEVELS

        framed = units["framing"].isin(FRAMING_LEVELS)
        if not framed.all():
            result.notes.append(f"{int((~framed).sum())} units without a positive/negative framing "
                                "(e.g. neutral controls) are left out of the mixed model and panel "
                                "tests")
            units = units[framed].reset_index(drop=True)
            units["framing"] = units["framing"].cat.remove_unused_categories()
            if units.empty:
                return result
    try:
        result.mixed = fit_mixed_model(units, formula, anova_type=anova_type)  # type: ignore[arg-type]
    except AnalysisError as exc:
        if not sensitivity:
            raise
        # A suite may lack what the paper's model needs (e.g. one framing only): report the rest.
        result.notes.append(f"paper mixed model skipped on these prompts: {exc}")
        return result
    if null_draws:
        from rmvalues.analysis.null import null_baseline

        result.null = pd.concat([null_baseline(scores, lex, kind=kind, policy=policy, model_meta=model_meta,
                                               n_draws=null_draws, seed=seed, categories=categories,
                                               merge=merge).to_frame()
                                 for kind in ("random_words", "shuffled_labels")], ignore_index=True)
    if units["framing"].notna().all():
        result.panels = panel_tests(units, correction=correction, n_resamples=n_resamples,  # type: ignore[arg-type]
                                    n_boot=n_boot, seed=seed, ci_method=ci_method)
    elif units["framing"].isna().all():  # a prompt set without framing: one panel per category
        result.panels = panel_tests(units, by=("category",), correction=correction,  # type: ignore[arg-type]
                                    n_resamples=n_resamples, n_boot=n_boot, seed=seed,
                                    ci_method=ci_method)
    return result


def write_tables(
    out_dir: str | Path, tables: Mapping[str, pd.DataFrame], summary: str, kind: str, *,
    keep: Sequence[str] = (), **fields: Any
) -> list[Path]:
    """Write each table as ``NAME.parquet`` and ``NAME.csv``, plus ``summary.txt`` and ``manifest.json``.

    The folder is staged and swapped in whole (:func:`rmvalues.io.staged_folder`): it never mixes
    two runs, and a failure leaves the previous output as it was; ``keep`` names sub-folders of
    the old one carried over.
    """
    import pandas as pd

    from rmvalues.io import staged_folder
    from rmvalues.store.manifest import build_manifest, write_manifest

    out = Path(out_dir)
    names = []
    with staged_folder(out, kind, keep) as stage:
        for name, table in tables.items():
            frame = table.copy()
            for col in frame.columns:  # categoricals as plain strings: readable by any tool
                if isinstance(frame[col].dtype, pd.CategoricalDtype):
                    frame[col] = frame[col].astype(str)
            frame.to_parquet(stage / f"{name}.parquet", index=False)
            frame.to_csv(stage / f"{name}.csv", index=False)
            names += [f"{name}.parquet", f"{name}.csv"]
        (stage / "summary.txt").write_text(summary + "\n", "utf-8")
        write_manifest(stage / "manifest.json", build_manifest(kind, tables=sorted(tables), **fields))
    return [out / n for n in [*names, "summary.txt", "manifest.json"]]


def write_analysis(result: AnalysisResult, out_dir: str | Path, **fields: Any) -> list[Path]:
    """Write an :class:`AnalysisResult` (tables, summary, manifest with lexicon and policy)."""
    return write_tables(out_dir, result.tables(), result.summary_text(), "analysis",
                        lexicon=result.lexicon, settings=result.settings, notes=result.notes, **fields)
