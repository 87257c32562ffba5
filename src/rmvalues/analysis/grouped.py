"""What an analysis is run over: the run keys of the input (model, checkpoint), the design that
decides between the paper's mixed model and the within-RM statistics, and the lexicon coverage.

``analyze`` never silently drops rows: rows of several checkpoints are kept apart by the sweep's
``checkpoint`` column, and two inputs that hold the same model (and checkpoint) are refused with
their names, since ranking them together would mix two runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rmvalues.errors import AnalysisError, InputError

if TYPE_CHECKING:
    import pandas as pd

#: Below this share of lexicon terms matched, an exact-match analysis warns (and suggests paper).
COVERAGE_WARNING = 0.5


def run_keys(scores: pd.DataFrame) -> tuple[str, ...]:
    """The columns that tell runs apart: ``model``, plus ``checkpoint`` for a training sweep."""
    if "checkpoint" in scores.columns and scores["checkpoint"].notna().any():
        if scores["checkpoint"].isna().any():
            raise InputError("some rows have a checkpoint and some do not; analyse the sweep and the "
                             "plain runs separately, or give the plain runs a checkpoint.")
        return ("model", "checkpoint")
    return ("model",)


def combine_runs(tables: Sequence[pd.DataFrame], sources: Sequence[Any]) -> pd.DataFrame:
    """Concatenate run tables, refusing two inputs that hold the same model (and checkpoint)."""
    import pandas as pd

    seen: dict[tuple, str] = {}
    for table, source in zip(tables, sources):
        keys = list(run_keys(table))
        for key in table[keys].drop_duplicates().itertuples(index=False, name=None):
            if key in seen:
                what = " at checkpoint ".join(map(str, key))
                raise InputError(
                    f"model {what} is in two inputs ({seen[key]} and {_name(source)}); ranking them "
                    "together would mix two runs. Pass each run once, or rename one run's model.")
            seen[key] = _name(source)
    return pd.concat(list(tables), ignore_index=True)


def _name(source: Any) -> str:
    return "a table" if hasattr(source, "columns") else str(source)


def describe_units(units: pd.DataFrame, keys: Sequence[str]) -> str:
    """``"216 units: 1 model x 2 checkpoints x 54 prompts x 2 categories"``."""
    parts = [f"{units[k].nunique()} {k}{'s' if units[k].nunique() != 1 else ''}"
             for k in (*keys, "prompt_id", "category")]
    return f"{len(units)} units: " + " x ".join(parts).replace("prompt_ids", "prompts").replace(
        "prompt_id", "prompt").replace("categorys", "categories")


@dataclass
class Design:
    """Whether the paper's base-family mixed model applies, and if not, why."""

    mixed: bool
    reason: str | None = None


def base_design(units: pd.DataFrame, model_meta: Any) -> tuple[pd.DataFrame, Design]:
    """Attach base-family factors when every model has them; the mixed model needs at least two
    families with at least two models each (and one checkpoint per model)."""
    from rmvalues.analysis.units import model_factors

    models = list(dict.fromkeys(units["model"]))
    if len(models) < 2 and model_meta is None:
        return units, Design(False, "one model: the within-RM statistics above (the paper's "
                                    "base-family mixed model needs 2 families x 2 models)")
    try:
        factors = model_factors(models, model_meta)
    except AnalysisError as exc:
        return units, Design(False, f"{exc} Compared model by model instead.")
    import pandas as pd

    units = units.merge(factors, on="model", how="left")
    units["base"] = pd.Categorical(units["base"], categories=sorted(units["base"].unique()))
    per_base = units.groupby("base", observed=True)["model"].nunique()
    if len(per_base) < 2 or (per_base < 2).any():
        return units, Design(False, f"models per base family {per_base.to_dict()}: the paper's mixed "
                                    "model needs two families with two models each; the models are "
                                    "compared directly instead")
    if "checkpoint" in units.columns:
        return units, Design(False, "several checkpoints: compared across checkpoints instead of the "
                                    "base-family mixed model")
    return units, Design(True)


def match_coverage(scores: pd.DataFrame, lexicon: Any, policy: Any, ranked: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    """Lexicon terms matched per category, and a warning when an exact-match analysis of a
    vocabulary run matches few of them (with how many ``--match paper`` would match)."""
    import pandas as pd

    from rmvalues.analysis.ranks import MatchPolicy, candidate_keys, lexicon_frame, term_keys

    lex = lexicon_frame(lexicon)
    matched_items = set(ranked["item"])
    keys = term_keys(lex["term"], policy)
    if policy.variants == "mean":
        hit = keys.isin(matched_items)
    else:
        hit = keys.isin(set(candidate_keys(scores[scores["candidate"].isin(matched_items)], policy)))
    lex = lex.assign(matched=hit.to_numpy())
    table = (lex.groupby("category", sort=False)["matched"].agg(n_terms="size", n_matched="sum")
             .reset_index())
    n_terms, n_hit = lex["term"].nunique(), lex.loc[lex["matched"], "term"].nunique()
    if n_hit >= COVERAGE_WARNING * n_terms:
        return table, None
    text = f"only {n_hit} of {n_terms} lexicon terms match a candidate under {policy.describe()}"
    if policy.match == "exact":
        paper = MatchPolicy(match="paper", variants=policy.variants, rank_over=policy.rank_over)
        n_paper = int(term_keys(lex["term"], paper).drop_duplicates().isin(
            set(candidate_keys(scores, paper))).sum())
        if n_paper > n_hit:
            text += (f"; --match paper (ASCII, stripped, lower-case) matches {n_paper}: use it for "
                     "vocabulary runs")
    return pd.DataFrame(table), text + "."


def group_levels(units: pd.DataFrame, group_by: str) -> list[Any]:
    import pandas as pd

    col = units[group_by]
    if isinstance(col.dtype, pd.CategoricalDtype):
        return [c for c in col.cat.categories if c in set(col)]
    return sorted(col.dropna().unique())


def checkpoint_pairs(units: pd.DataFrame) -> list[tuple[Any, Any]]:
    """Before/after: the first checkpoint against the last (and each step against the first)."""
    steps = group_levels(units, "checkpoint")
    return [(steps[0], s) for s in steps[1:]]


def two_categories(units: pd.DataFrame) -> tuple[str, str]:
    """The headline pair: the two categories of a two-category lexicon, else the first two."""
    from rmvalues.analysis.single_rm import categories_of

    cats = categories_of(units)
    if len(cats) < 2:
        raise AnalysisError(f"a category contrast needs two categories; the units have {cats}.")
    return cats[0], cats[1]
