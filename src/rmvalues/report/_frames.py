"""Input checks shared by the figure functions: required columns, column aliases, level order.

Each figure documents the tidy table it reads; these helpers turn a table that does not fit into
one :class:`~rmvalues.errors.InputError` naming the table, the missing columns and the fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from rmvalues.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

#: Accepted spellings of the columns figures read, first = canonical. Upstream stages name a few
#: columns differently (``base`` vs ``base_family``); figures accept any of them.
ALIASES: dict[str, tuple[str, ...]] = {
    "base": ("base", "base_family", "family"),
    "framing": ("framing", "prompt_framing", "valence"),
    "category": ("category", "Category"),
    "median_rank": ("median_rank", "rank", "sum_value"),
    "model": ("model", "model_id"),
    "prompt_id": ("prompt_id", "prompt"),
    # Welch first: the paper's reported panel p-values are Welch's (see analysis.hypothesis_tests).
    "stars": ("stars", "stars_welch", "stars_perm"),
    "p_corrected": ("p_corrected", "p_welch_adj", "p_perm_adj", "p_adj", "p_bh", "p_fdr"),
    "p": ("p", "p_welch", "p_perm", "p_value"),
}

#: Default display order of base families and framings (others follow alphabetically).
FAMILY_ORDER: tuple[str, ...] = ("gemma", "llama", "qwen")
FRAMING_ORDER: tuple[str, ...] = ("positive", "negative")
_FRAMING_SYNONYMS = {"good": "positive", "bad": "negative", "pos": "positive", "neg": "negative"}


def canonical(
    frame: pd.DataFrame,
    required: Sequence[str],
    what: str,
    optional: Sequence[str] = (),
    hint: str = "",
) -> pd.DataFrame:
    """A copy of ``frame`` with the canonical names of ``required`` (and present ``optional``).

    Raises :class:`InputError` listing the missing columns, what produces them and ``hint``.
    """
    if frame is None or len(frame) == 0:
        raise InputError(f"{what} is empty; {hint or 'run the analysis that produces it first'}")
    renames: dict[str, str] = {}
    missing: list[str] = []
    for name in (*required, *optional):
        found = next((c for c in ALIASES.get(name, (name,)) if c in frame.columns), None)
        if found is None:
            if name in required:
                missing.append(name)
        elif found != name:
            renames[found] = name
    if missing:
        raise InputError(
            f"{what} lacks column(s) {missing} (has {list(frame.columns)}); "
            f"{hint or 'pass the table the analysis stage writes'}"
        )
    out = frame.rename(columns=renames).copy()
    if "framing" in out.columns:
        out["framing"] = out["framing"].map(
            lambda v: _FRAMING_SYNONYMS.get(str(v).lower(), str(v).lower())
        )
    if "base" in out.columns:
        out["base"] = out["base"].astype(str).str.lower()
    return out


def ordered(values: Iterable[object], preferred: Sequence[str] = (), sort: bool = True) -> list[str]:
    """Distinct values as strings: those in ``preferred`` first (in its order), then the rest
    sorted (or in order of appearance, which keeps a lexicon's own category order)."""
    categories = getattr(getattr(values, "cat", None), "categories", None)
    if categories is not None:  # a categorical's own level order wins over appearance
        present = set(map(str, values))
        values = [c for c in categories if str(c) in present]
    seen = list(dict.fromkeys(str(v) for v in values))
    lowered = {v.lower(): v for v in seen}
    head = [lowered[p.lower()] for p in preferred if p.lower() in lowered]
    rest = [v for v in seen if v not in head]
    return head + (sorted(rest) if sort else rest)


def pick_order(values: Iterable[object], given: Sequence[str] | None, default: Sequence[str],
               what: str, sort: bool = True) -> list[str]:
    """The user's order if given (checked against the data), else :func:`ordered` with default."""
    present = ordered(values, default, sort=sort)
    if given is None:
        return present
    unknown = [g for g in given if g not in present]
    if unknown:
        raise InputError(f"{what} {unknown} not in the data (present: {present})")
    return list(given)


def stars_lookup(
    tests: pd.DataFrame | None, keys: Sequence[str], stars_column: str | None = None
) -> tuple[dict[tuple[str, ...], str], str]:
    """Significance stars per panel key from a panel-test table, and the column they came from.

    Uses ``stars_column`` if given, else the first of the ``stars`` aliases (Welch before
    permutation, as in the paper's figure), else stars computed from a corrected (then raw)
    p-value column with the analysis' own star rule.
    """
    if tests is None or len(tests) == 0:
        return {}, ""
    if stars_column is not None:
        if stars_column not in tests.columns:
            raise InputError(f"panel-test table has no column {stars_column!r} "
                             f"(has {list(tests.columns)})")
        others = [c for c in ALIASES["stars"] if c != stars_column and c in tests.columns]
        source = stars_column
        tests = tests.drop(columns=others).rename(columns={stars_column: "stars"})
    else:
        source = next((c for name in ("stars", "p_corrected", "p") for c in ALIASES[name]
                       if c in tests.columns), "")
    frame = canonical(tests, keys, "panel-test table", optional=("stars", "p_corrected", "p"))
    if "stars" in frame.columns:
        values = frame["stars"].fillna("").astype(str)
    elif "p_corrected" in frame.columns:
        values = frame["p_corrected"].map(p_to_stars)
    elif "p" in frame.columns:
        values = frame["p"].map(p_to_stars)
    else:
        raise InputError(
            f"panel-test table has neither 'stars' nor a p-value column (has {list(tests.columns)})"
        )
    lookup = {tuple(str(v) for v in key): s
              for key, s in zip(frame[list(keys)].itertuples(index=False), values)}
    return lookup, source


_TEST_NAMES = {"welch": "Welch t-tests", "perm": "permutation tests of the Welch t"}
_CORRECTIONS = {"bh": "Benjamini-Hochberg", "bonferroni": "Bonferroni", "holm": "Holm",
                "none": "no"}


def describe_stars(source: str, tests: pd.DataFrame | None) -> str:
    """A caption phrase for where stars come from, e.g. "Welch t-tests, Bonferroni corrected"."""
    if not source:
        return ""
    test = next((name for key, name in _TEST_NAMES.items() if key in source), "panel tests")
    correction = ""
    if tests is not None and "correction" in tests.columns and len(tests):
        raw = str(tests["correction"].iloc[0])
        correction = f", {_CORRECTIONS.get(raw, raw)} corrected"
    return f"{test}{correction} (*** p < .001, ** p < .01, * p < .05)"


def p_to_stars(p: float | None) -> str:
    """The analysis' star rule, with an empty label for a missing p-value."""
    import math

    from rmvalues.analysis.hypothesis_tests import stars

    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    return stars(float(p))


def infer_family(name: str) -> str:
    """Base family of a model name or hub id (``"google/gemma-2-2b"`` -> ``"gemma"``)."""
    from rmvalues.models.registry import find_model

    spec = find_model(name)
    if spec is not None:
        return spec.base_family
    lowered = name.lower()
    for family in ("gemma", "llama", "qwen", "mistral", "phi", "olmo"):
        if family in lowered:
            return family
    return "other"


def with_family(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """``frame`` with a lower-case ``base`` column: its own, or inferred from ``model`` names."""
    out = canonical(frame, (), what, optional=("base", "model"))
    if "base" not in out.columns:
        if "model" not in out.columns:
            raise InputError(f"{what} needs a 'base' (family) or 'model' column "
                             f"(has {list(frame.columns)})")
        families = {m: infer_family(str(m)) for m in out["model"].unique()}
        out["base"] = out["model"].map(families)
    return out


def families_in(frame: pd.DataFrame | None) -> set[str]:
    """Base families present in ``frame`` (empty for no table)."""
    if frame is None or len(frame) == 0:
        return set()
    return set(with_family(frame, "table")["base"].unique())
