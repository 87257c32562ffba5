"""Seed-to-seed spread of trained RMs beside the base-family effect.

Model metadata with a ``seed`` column (``model, base, seed[, group]``) marks runs of RMs trained
with the same recipe but different seeds (``rmvalues train --seeds``). Per framing this reports
each group's (default: base family's) mean tilt over seeds and its seed-to-seed SD, the family gap
(:mod:`rmvalues.analysis.gap`) with a percentile bootstrap CI over seeds (within family) and
prompts, and, for seeds present in both families, the gap of each seed and their SD: a gap several
times the seed SD is a base effect, not luck of the draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from rmvalues.analysis.gap import base_levels, category_pair, percentile_ci, tilt_matrix, tilts

if TYPE_CHECKING:
    import pandas as pd


def seed_table(meta: Any) -> pd.DataFrame | None:
    """``model, base, seed, group`` from model metadata, or None when it has no ``seed`` column."""
    from rmvalues.analysis.units import read_model_meta

    if meta is None:
        return None
    frame = read_model_meta(meta)
    if "seed" not in frame.columns:
        return None
    frame = frame.copy()
    frame["group"] = frame["group"].astype(str) if "group" in frame else frame["base"].astype(str)
    frame["seed"] = frame["seed"].astype(int)
    return frame[["model", "base", "seed", "group"]]


def seed_spread(units: pd.DataFrame, seeds: pd.DataFrame, *, categories: Sequence[str] | None = None,
                n_boot: int = 2000, seed: int = 42) -> pd.DataFrame:
    """``framing, row, group, n_seeds, value, sd, lo, hi`` (rows: ``tilt`` per group, ``family gap``,
    ``gap per seed``)."""
    import pandas as pd

    pair = category_pair(units, categories)
    frame = tilts(units, pair).merge(seeds[["model", "seed", "group"]], on="model")
    bases = base_levels(frame)
    framing = units.drop_duplicates("prompt_id").set_index("prompt_id")["framing"].astype(object)
    frame["framing"] = frame["prompt_id"].map(framing).fillna("all").astype(str)
    rng = np.random.default_rng(seed)
    rows = []
    for stratum, sub in frame.groupby("framing", sort=False):
        models = list(dict.fromkeys(sub.sort_values(["group", "seed"])["model"]))
        pids = sorted(set.intersection(*(set(sub.loc[sub["model"] == m, "prompt_id"]) for m in models)))
        d = tilt_matrix(sub, models, pids)
        info = sub.drop_duplicates("model").set_index("model").loc[models]
        per_model = d.mean(axis=1)
        for group, idx in info.groupby("group", sort=True).indices.items():
            vals = per_model[idx]
            rows.append({"framing": stratum, "row": "tilt", "group": group, "n_seeds": len(idx),
                         "value": float(vals.mean()), "sd": float(vals.std(ddof=1)) if len(idx) > 1
                         else float("nan"), "lo": np.nan, "hi": np.nan})
        in2 = (info["base"].astype(str) == bases[1]).to_numpy()
        rows_1, rows_2 = np.flatnonzero(~in2), np.flatnonzero(in2)
        gap = float(per_model[rows_2].mean() - per_model[rows_1].mean())
        boot = np.empty(n_boot)
        for i in range(n_boot):
            cols = rng.integers(0, len(pids), len(pids))
            r1, r2 = rng.choice(rows_1, len(rows_1)), rng.choice(rows_2, len(rows_2))
            boot[i] = d[np.ix_(r2, cols)].mean() - d[np.ix_(r1, cols)].mean()
        lo, hi = percentile_ci(boot)
        rows.append({"framing": stratum, "row": "family gap", "group": f"{bases[1]} - {bases[0]}",
                     "n_seeds": int(min(len(rows_1), len(rows_2))), "value": gap,
                     "sd": np.nan, "lo": float(lo), "hi": float(hi)})
        shared = sorted(set(info["seed"][~in2]) & set(info["seed"][in2]))
        if shared:
            per_seed = [per_model[in2 & (info["seed"] == s).to_numpy()].mean()
                        - per_model[~in2 & (info["seed"] == s).to_numpy()].mean() for s in shared]
            rows.append({"framing": stratum, "row": "gap per seed", "group": ", ".join(map(str, shared)),
                         "n_seeds": len(shared), "value": float(np.mean(per_seed)),
                         "sd": float(np.std(per_seed, ddof=1)) if len(shared) > 1 else float("nan"),
                         "lo": float(np.min(per_seed)), "hi": float(np.max(per_seed))})
    return pd.DataFrame(rows, columns=["framing", "row", "group", "n_seeds", "value", "sd", "lo", "hi"])


def seed_summary_lines(table: pd.DataFrame) -> list[str]:
    lines = [("Seed-to-seed spread (tilt per group: mean and SD over seeds; family gap: bootstrap 95% CI "
             "over seeds and prompts; gap per seed: mean, SD, [min, max]):")]
    for r in table.itertuples():
        lines.append(f"  {r.framing:<10}{r.row:<14}{r.group:<20} n={r.n_seeds:<3} {r.value:8.2f}  "
                     f"SD {r.sd:6.2f}  [{r.lo:.2f}, {r.hi:.2f}]")
    return lines
