"""What a mitigation bought and what it cost: the base-family gap before/after, and the change in the
RM's ranking of neutral control prompts.

Quantities (:mod:`rmvalues.analysis.gap`) are computed per framing stratum on the prompts every run
shares, leaving out the neutral controls:

* ``debias_gap``: the family gap among the original RMs (before) and among the mitigated runs that
  keep a base family (after: base-corrected RMs), and after - before, with CIs;
* ``debias_runs``: per mitigated run, its base-attributable tilt ``|tilt - midpoint|`` (midpoint: the
  mean of the two families' mean tilts before) against its sources', with the change and its CI; a
  cross-family ensemble has no family, so this is how its gap is measured;
* ``debias_price``: on the neutral control prompts, how much the mitigated run re-ranks its
  source's candidates (Spearman ρ, top-k overlap) and whether it creates a tilt there.

CIs are percentile bootstrap intervals over prompts (the same draws before and after, so changes
are paired); the RMs themselves are fixed, as a practitioner deploys these RMs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rmvalues.analysis.gap import (
    base_levels,
    category_pair,
    percentile_ci,
    prompt_info,
    tilt_matrix,
    tilts,
)
from rmvalues.analysis.ranks import DEFAULT_POLICY, MatchPolicy
from rmvalues.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

#: Prompt sets searched for prompt factors when none are given (first match wins).
DEFAULT_PROMPT_SETS = ("paper-54", "paraphrase-54", "in-distribution", "neutral-controls")
#: Framing level of control prompts.
NEUTRAL = "neutral"


@dataclass
class DebiasResult:
    pair: tuple[str, str]
    bases: tuple[str, str]
    gap: pd.DataFrame = field(repr=False)
    runs: pd.DataFrame = field(repr=False)
    price: pd.DataFrame | None = field(default=None, repr=False)
    notes: list[str] = field(default_factory=list)

    def tables(self) -> dict[str, pd.DataFrame]:
        out = {"debias_gap": self.gap, "debias_runs": self.runs}
        if self.price is not None:
            out["debias_price"] = self.price
        return out

    def summary_text(self) -> str:
        a, b = self.pair
        lines = [(f"Debias: tilt = median rank {a} - {b}; family gap = {self.bases[1]} - "
                 f"{self.bases[0]}; 95% bootstrap CIs over prompts")]
        for r in self.gap.itertuples():
            lines.append(f"  {r.framing:<10}{r.stage:<8} family gap {r.gap:8.2f} [{r.lo:.2f}, {r.hi:.2f}]"
                         f"  ({r.n_prompts} prompts)")
        lines.append("  base-attributable tilt |tilt - midpoint| (before: the run's sources):")
        for r in self.runs.itertuples():
            lines.append(f"  {r.framing:<10}{r.run:<36} {r.kind:<15} {r.offset_before:7.2f} -> "
                         f"{r.offset_after:7.2f}  change {r.change:7.2f} [{r.change_lo:.2f}, {r.change_hi:.2f}]")
        if self.price is not None:
            lines.append("  price on neutral controls (ranking of the source's candidates):")
            for r in self.price.itertuples():
                lines.append(f"  {r.run:<36} vs {r.source:<20} Spearman {r.spearman:.3f}  top-{r.k} "
                             f"overlap {r.topk_overlap:.2f}  control tilt {r.tilt_before:.2f} -> "
                             f"{r.tilt_after:.2f} [{r.tilt_after_lo:.2f}, {r.tilt_after_hi:.2f}]")
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def _family_gap(d: np.ndarray, in_base2: np.ndarray) -> np.ndarray:
    """Per-prompt gap of a models x prompts tilt table."""
    return d[in_base2].mean(axis=0) - d[~in_base2].mean(axis=0)


def _price(before: pd.DataFrame, after: pd.DataFrame, run: str, source: str, k: int) -> dict[str, float]:
    """Mean Spearman ρ and top-k overlap of after vs before scores over shared control candidates."""
    from scipy import stats

    a = after[after["model"] == run].groupby(["prompt_id", "candidate"], observed=True)["score"].mean()
    b = before[before["model"] == source].groupby(["prompt_id", "candidate"], observed=True)["score"].mean()
    joined = a.to_frame("after").join(b.to_frame("before"), how="inner").reset_index()
    rhos, overlaps = [], []
    for _, g in joined.groupby("prompt_id", observed=True):
        if len(g) < 3:
            continue
        rhos.append(stats.spearmanr(g["before"], g["after"]).statistic)
        kk = min(k, len(g))
        top_b = set(g.nlargest(kk, "before")["candidate"])
        top_a = set(g.nlargest(kk, "after")["candidate"])
        overlaps.append(len(top_a & top_b) / kk)
    return {"spearman": float(np.mean(rhos)) if rhos else float("nan"),
            "topk_overlap": float(np.mean(overlaps)) if overlaps else float("nan"),
            "n_candidates": len(joined)}


def debias(
    before: Sequence[Any],
    after: Sequence[Any],
    lexicon: Any,
    *,
    infos: Mapping[str, Mapping[str, Any]] | None = None,
    pairs: Mapping[str, str] | None = None,
    model_meta: Any = None,
    prompts: Any = None,
    policy: MatchPolicy = DEFAULT_POLICY,
    categories: Sequence[str] | None = None,
    k: int = 20,
    n_boot: int = 2000,
    seed: int = 42,
) -> DebiasResult:
    """Gap before/after and the price on neutral controls (see the module docstring).

    ``before``: the original RMs' runs (both base families); ``after``: mitigated runs (folders or
    files written by ``rmvalues mitigate``, whose manifests name their sources, or frames with
    ``infos`` = {run model: mitigation record}; ``pairs`` = {after model: before model} compares any
    run with its counterpart, e.g. a counterbalanced RM with the unbalanced one of the same seed).
    Neutral controls are the prompts whose framing is
    ``neutral`` in ``prompts`` (default: the built-in sets).
    """
    import pandas as pd

    from rmvalues.analysis.mitigation import mitigation_infos
    from rmvalues.analysis.pipeline import read_run
    from rmvalues.analysis.ranks import ranked_items
    from rmvalues.analysis.units import median_rank_units, model_factors
    from rmvalues.lexicons import load_lexicon

    if not before or not after:
        raise InputError("debias needs the original RMs' runs (before) and the mitigated runs (after).")
    lex = load_lexicon(lexicon) if isinstance(lexicon, str) else lexicon
    records: dict[str, dict[str, Any]] = {k_: dict(v) for k_, v in (infos or {}).items()}
    for after_model, before_model in (pairs or {}).items():
        records[str(after_model)] = {"kind": "paired", "sources": [str(before_model)]}
    after_frames = []
    for run in after:
        for m, info in mitigation_infos(run).items():
            records.setdefault(m, info)
        after_frames.append(read_run(run))
    scores_b = pd.concat([read_run(r) for r in before], ignore_index=True)
    scores_a = pd.concat(after_frames, ignore_index=True)
    after_models = list(dict.fromkeys(scores_a["model"].astype(str)))
    missing = [m for m in after_models if m not in records]
    if missing:
        raise InputError(f"run(s) {missing} carry no mitigation record (sources); pass runs written "
                         "by `rmvalues mitigate`, or name each one's counterpart with --pair AFTER=BEFORE.")
    before_models = list(dict.fromkeys(scores_b["model"].astype(str)))
    for m in after_models:
        lost = [s for s in records[m]["sources"] if s not in before_models]
        if lost:
            raise InputError(f"mitigated run {m!r} comes from {lost}, which are not among the before "
                             f"runs {before_models}; pass their runs too.")
    ids = sorted(set(scores_b["prompt_id"].astype(str)) | set(scores_a["prompt_id"].astype(str)))
    info = prompt_info(ids, prompts if prompts is not None else list(DEFAULT_PROMPT_SETS))
    framing_of = info.set_index("prompt_id")["framing"].astype(str).to_dict()
    neutral = {p for p, f in framing_of.items() if f == NEUTRAL}

    def unit_tilts(scores: pd.DataFrame, meta: Any) -> pd.DataFrame:
        ranked = ranked_items(scores, lex, policy, categories=categories)
        units = median_rank_units(ranked, model_meta=meta, require_base=meta is not None)
        return units

    meta_b = model_factors(before_models, model_meta)
    base_b = meta_b.set_index("model")["base"].astype(str)
    for m in after_models:  # a paired run (e.g. counterbalanced training) keeps its source's family
        if "base" not in records[m] and len(records[m]["sources"]) == 1:
            records[m]["base"] = base_b[records[m]["sources"][0]]
    units_b = unit_tilts(scores_b, meta_b)
    pair = category_pair(units_b, categories)
    tilt_b = tilts(units_b, pair)
    bases = base_levels(tilt_b)
    meta_a = pd.DataFrame([{"model": m, "base": records[m].get("base") or "none"} for m in after_models])
    tilt_a = tilts(unit_tilts(scores_a, meta_a), pair)
    tilt_a = tilt_a.drop(columns="base").merge(meta_a, on="model")
    in2_b = np.array([base_b[m] == bases[1] for m in before_models])
    kept = [m for m in after_models if records[m].get("base") in bases]
    in2_a = np.array([records[m]["base"] == bases[1] for m in kept])
    rng = np.random.default_rng(seed)
    gap_rows, run_rows, notes = [], [], []
    shared = set(tilt_b["prompt_id"]).intersection(*(set(tilt_a.loc[tilt_a["model"] == m, "prompt_id"])
                                                     for m in after_models))
    measured = sorted(p for p in shared if p not in neutral)
    if not measured:
        raise InputError("the before and after runs share no non-control prompt to measure the gap on; "
                         "score them on the same prompts (a base-corrected run holds only its "
                         "evaluation prompts).")
    for framing in dict.fromkeys(framing_of[p] for p in measured):
        pids = [p for p in measured if framing_of[p] == framing]
        d_b = tilt_matrix(tilt_b, before_models, pids)
        d_a = tilt_matrix(tilt_a, after_models, pids)
        draws = rng.integers(0, len(pids), (n_boot, len(pids)))
        g_b = _family_gap(d_b, in2_b)
        boot_b = g_b[draws].mean(axis=1)
        gap_rows.append({"framing": framing, "stage": "before", "gap": float(g_b.mean()),
                         **dict(zip(("lo", "hi"), percentile_ci(boot_b), strict=True)), "n_prompts": len(pids),
                         "runs": ", ".join(before_models)})
        if in2_a.any() and (~in2_a).any():
            g_a = _family_gap(d_a[[after_models.index(m) for m in kept]], in2_a)
            boot_a = g_a[draws].mean(axis=1)
            diff = boot_a - boot_b
            gap_rows.append({"framing": framing, "stage": "after", "gap": float(g_a.mean()),
                             **dict(zip(("lo", "hi"), percentile_ci(boot_a), strict=True)), "n_prompts": len(pids),
                             "runs": ", ".join(kept)})
            gap_rows.append({"framing": framing, "stage": "change", "gap": float(g_a.mean() - g_b.mean()),
                             **dict(zip(("lo", "hi"), percentile_ci(diff), strict=True)), "n_prompts": len(pids),
                             "runs": ""})
        # base-attributable tilt: distance from the midpoint of the two families' mean tilts before
        mid = (d_b[~in2_b].mean(axis=0) + d_b[in2_b].mean(axis=0)) / 2

        def offset(tilt_row: np.ndarray, idx: np.ndarray | slice, mid: np.ndarray = mid) -> float:
            return float(abs(tilt_row[idx].mean() - mid[idx].mean()))

        for m in after_models:
            src = [before_models.index(s) for s in records[m]["sources"]]
            row_a = d_a[after_models.index(m)]
            before_off = np.mean([offset(d_b[i], slice(None)) for i in src])
            after_off = offset(row_a, slice(None))
            boot_change = np.array([offset(row_a, idx) - np.mean([offset(d_b[i], idx) for i in src])
                                    for idx in draws])
            lo, hi = percentile_ci(boot_change)
            run_rows.append({"framing": framing, "run": m, "kind": records[m]["kind"],
                             "sources": ", ".join(records[m]["sources"]),
                             "tilt_after": float(row_a.mean()),
                             "tilt_sources": float(np.mean([d_b[i].mean() for i in src])),
                             "offset_before": float(before_off), "offset_after": after_off,
                             "change": after_off - float(before_off), "change_lo": lo, "change_hi": hi,
                             "n_prompts": len(pids)})
    price = None
    controls = sorted(p for p in shared if p in neutral)
    if controls:
        rows = []
        ctrl_b = scores_b[scores_b["prompt_id"].astype(str).isin(controls)]
        ctrl_a = scores_a[scores_a["prompt_id"].astype(str).isin(controls)]
        d_b = tilt_matrix(tilt_b, before_models, controls)
        d_a = tilt_matrix(tilt_a, after_models, controls)
        draws = rng.integers(0, len(controls), (n_boot, len(controls)))
        for m in after_models:
            row_a = d_a[after_models.index(m)]
            lo, hi = percentile_ci(row_a[draws].mean(axis=1))
            for s in records[m]["sources"]:
                rows.append({"run": m, "source": s, **_price(ctrl_b, ctrl_a, m, s, k), "k": k,
                             "tilt_before": float(d_b[before_models.index(s)].mean()),
                             "tilt_after": float(row_a.mean()), "tilt_after_lo": lo,
                             "tilt_after_hi": hi, "n_prompts": len(controls)})
        price = pd.DataFrame(rows)
    else:
        notes.append("no neutral control prompts in every run: the price was not measured (score "
                     "the before and after RMs on `neutral-controls` too).")
    if not (in2_a.any() and (~in2_a).any()):
        notes.append("the mitigated runs do not cover both base families (e.g. ensembles): the family "
                     "gap after is measured per run as its base-attributable tilt.")
    return DebiasResult(pair=pair, bases=bases, gap=pd.DataFrame(gap_rows), runs=pd.DataFrame(run_rows),
                        price=price, notes=notes)
