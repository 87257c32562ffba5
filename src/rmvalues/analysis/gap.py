"""The base-family gap as one number per (model, prompt), shared by the robustness analyses.

A model's **tilt** under a prompt is ``median_rank(A) - median_rank(B)`` for the first two
categories of the units (Big Two: A = Agency, B = Communion; rank 1 = highest reward), so a positive
tilt means the RM ranks B's words higher. The **base-family gap** under a prompt is the mean tilt of
the second base family minus that of the first (levels in the units' order: ``Llama - Gemma``), the
per-prompt form of the paper's base x category interaction. Prompt sensitivity, seed spread and the
mitigations' before/after comparisons are all stated on these two quantities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rmvalues.errors import AnalysisError, InputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def percentile_ci(draws: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap draws (non-finite draws ignored; NaN when none is left)."""
    import numpy as np

    draws = np.asarray(draws, float)
    draws = draws[np.isfinite(draws)]
    if not draws.size:
        return float("nan"), float("nan")
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def category_pair(units: pd.DataFrame, categories: Sequence[str] | None = None) -> tuple[str, str]:
    """The two categories whose median ranks are compared (default: the units' first two)."""
    import pandas as pd

    cats = units["category"]
    present = (list(cats.cat.categories) if isinstance(cats.dtype, pd.CategoricalDtype)
               else sorted(cats.unique()))
    present = [c for c in present if c in set(cats)]
    pair = tuple(categories) if categories else tuple(present[:2])
    if len(pair) != 2 or any(c not in present for c in pair):
        raise InputError(f"the gap compares two categories; got {list(pair)}, the units have "
                         f"{present}. Pass two of them.")
    return pair  # type: ignore[return-value]


def tilts(units: pd.DataFrame, pair: tuple[str, str]) -> pd.DataFrame:
    """``model, prompt_id, tilt`` (+ ``base`` when present): median rank of A minus that of B."""
    keys = ["model", "prompt_id"]
    wide = (units[units["category"].isin(pair)]
            .pivot_table(index=keys, columns="category", values="median_rank", observed=True)
            .reset_index())
    wide = wide.dropna(subset=list(pair))
    out = wide[keys].copy()
    out["tilt"] = wide[pair[0]].to_numpy(float) - wide[pair[1]].to_numpy(float)
    if "base" in units:
        out = out.merge(units[["model", "base"]].drop_duplicates("model"), on="model", how="left")
    return out


def prompt_info(prompt_ids: Sequence[str], prompts: Any = None, family: str = "family") -> pd.DataFrame:
    """``prompt_id, family, framing`` of each id from one or more prompt sets (names, files, sets).

    A set without a ``family`` factor gives its prompts the set's name as family; a set without a
    ``framing`` factor gives ``"all"``. Ids found in no set raise an error naming them.
    """
    import pandas as pd

    from rmvalues.prompts import PromptSet, load_prompt_set

    sets = prompts if isinstance(prompts, (list, tuple)) else [prompts or "paper-54"]
    rows: dict[str, dict[str, str]] = {}
    for s in sets:
        pset = s if isinstance(s, PromptSet) else load_prompt_set(s)
        for p in pset:
            rows.setdefault(p.id, {"prompt_id": p.id, "family": p.factors.get(family, pset.name),
                                   "framing": p.factors.get("framing", "all")})
    missing = [pid for pid in dict.fromkeys(prompt_ids) if pid not in rows]
    if missing:
        raise InputError(f"prompt id(s) {missing[:5]} are in no given prompt set; pass the set(s) the "
                         "runs were scored on (--prompts).")
    return pd.DataFrame([rows[pid] for pid in dict.fromkeys(prompt_ids)],
                        columns=["prompt_id", "family", "framing"])


def tilt_matrix(frame: pd.DataFrame, models: Sequence[str], prompt_ids: Sequence[str]) -> np.ndarray:
    """Models x prompts array of tilts; an error names a missing (model, prompt)."""
    wide = frame.pivot_table(index="model", columns="prompt_id", values="tilt", observed=True)
    wide = wide.reindex(index=list(models), columns=list(prompt_ids))
    if wide.isna().to_numpy().any():
        model, pid = next((m, p) for m in wide.index for p in wide.columns if wide.isna().loc[m, p])
        raise AnalysisError(f"model {model!r} has no tilt for prompt {pid!r} (no items of a category "
                            "ranked there); score every model on the same prompts and candidates.")
    return wide.to_numpy(float)


def base_levels(frame: pd.DataFrame) -> tuple[str, str]:
    """The two base families (units' level order); an error unless there are exactly two."""
    import pandas as pd

    if "base" not in frame:
        raise AnalysisError("the base-family gap needs each model's base family; pass --model-meta.")
    col = frame["base"]
    levels = [str(b) for b in (col.cat.categories if isinstance(col.dtype, pd.CategoricalDtype)
                               else sorted(col.unique())) if b in set(col)]
    if len(levels) != 2:
        raise AnalysisError(f"the base-family gap compares two base families; the runs have {levels}.")
    return levels[0], levels[1]


def combined_prompt_set(prompts: Any):
    """One :class:`~rmvalues.prompts.PromptSet` from several (factor keys united; a set lacking a
    factor gives its prompts the level ``"none"``), so units can carry every run's prompt factors."""
    from rmvalues.prompts import Prompt, PromptSet, load_prompt_set

    sets = [p if isinstance(p, PromptSet) else load_prompt_set(p)
            for p in (prompts if isinstance(prompts, (list, tuple)) else [prompts])]
    if len(sets) == 1:
        return sets[0]
    keys = list(dict.fromkeys(k for s in sets for k in s.factor_names))
    seen: dict[str, Prompt] = {}
    for s in sets:
        for p in s:
            seen.setdefault(p.id, Prompt(p.id, p.text, {k: p.factors.get(k, "none") for k in keys},
                                         p.system))
    return PromptSet(name="+".join(s.name for s in sets), prompts=tuple(seen.values()))
