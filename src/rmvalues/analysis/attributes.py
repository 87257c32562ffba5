"""Which attribute of a multi-objective RM carries the bias: tilt and family gap per attribute.

Runs scored with ``rmvalues score --attribute`` hold models named ``<model>@<attribute>``
(:data:`rmvalues.store.schema.ATTRIBUTE_SEP`). Per attribute and framing this reports each model's
tilt and, where the attribute exists in RMs of both base families, the family gap
(:mod:`rmvalues.analysis.gap`), with percentile bootstrap CIs over prompts. Combined rewards
(models without an attribute) are listed as attribute ``(combined)`` for comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from rmvalues.analysis.gap import category_pair, percentile_ci, tilt_matrix, tilts
from rmvalues.store.schema import ATTRIBUTE_SEP

if TYPE_CHECKING:
    import pandas as pd

COMBINED = "(combined)"


def split_attribute(model: str) -> tuple[str, str]:
    """``(model, attribute)`` of a run's model name; attribute :data:`COMBINED` when there is none."""
    name, sep, attribute = str(model).partition(ATTRIBUTE_SEP)
    return (name, attribute) if sep else (name, COMBINED)


def has_attributes(models: Sequence[str]) -> bool:
    return any(ATTRIBUTE_SEP in str(m) for m in models)


def attribute_gaps(units: pd.DataFrame, *, categories: Sequence[str] | None = None,
                   n_boot: int = 2000, seed: int = 42) -> pd.DataFrame:
    """``attribute, framing, scope, model, base, value, lo, hi, n_prompts`` (scope ``tilt`` per
    model, ``family gap`` per attribute where both base families have it)."""
    import pandas as pd

    pair = category_pair(units, categories)
    frame = tilts(units, pair)
    framing = (units.drop_duplicates("prompt_id").set_index("prompt_id")["framing"].astype(object)
               if "framing" in units else pd.Series(dtype=object))
    frame["framing"] = frame["prompt_id"].map(framing).fillna("all").astype(str)
    frame["attribute"] = [split_attribute(m)[1] for m in frame["model"]]
    bases = [str(b) for b in (frame["base"].cat.categories if hasattr(frame["base"], "cat")
                              else sorted(frame["base"].unique()))] if "base" in frame else []
    rng = np.random.default_rng(seed)
    rows = []
    for (attribute, stratum), sub in frame.groupby(["attribute", "framing"], sort=True):
        models = list(dict.fromkeys(sub["model"]))
        counts = sub.groupby("prompt_id")["model"].nunique()
        pids = sorted(counts.index[counts == len(models)])
        if not pids:
            continue
        d = tilt_matrix(sub, models, pids)
        draws = rng.integers(0, len(pids), (n_boot, len(pids)))
        base_of = sub.drop_duplicates("model").set_index("model")["base"].astype(str) \
            if "base" in sub else pd.Series("", index=models)
        for i, m in enumerate(models):
            boot = d[i][draws].mean(axis=1)
            lo, hi = percentile_ci(boot)
            rows.append({"attribute": attribute, "framing": stratum, "scope": "tilt", "model": m,
                         "base": base_of[m], "value": float(d[i].mean()), "lo": float(lo),
                         "hi": float(hi), "n_prompts": len(pids)})
        in2 = np.array([base_of[m] == bases[1] for m in models]) if len(bases) == 2 else None
        if in2 is not None and in2.any() and (~in2).any():
            g = d[in2].mean(axis=0) - d[~in2].mean(axis=0)
            lo, hi = percentile_ci(g[draws].mean(axis=1))
            rows.append({"attribute": attribute, "framing": stratum, "scope": "family gap",
                         "model": f"{bases[1]} - {bases[0]}", "base": "", "value": float(g.mean()),
                         "lo": float(lo), "hi": float(hi), "n_prompts": len(pids)})
    return pd.DataFrame(rows, columns=["attribute", "framing", "scope", "model", "base", "value",
                                       "lo", "hi", "n_prompts"])


def attribute_summary_lines(table: pd.DataFrame) -> list[str]:
    lines = ["Per-attribute tilt (median rank A - B) and family gap, 95% bootstrap CIs over prompts:"]
    for r in table.itertuples():
        lines.append(f"  {r.attribute:<36}{r.framing:<10}{r.scope:<11}{r.model:<40}"
                     f"{r.value:8.2f} [{r.lo:.2f}, {r.hi:.2f}]")
    return lines
