"""How much of the base-family gap depends on the prompt: variance components and per-family gaps.

Within one framing stratum, a model's tilt (:mod:`rmvalues.analysis.gap`) under prompt p is modelled
with prompt as a random effect beside model::

    tilt[m, p] = mu[base(m)] + u[m] + v[p] + w[p, base(m)] + e[m, p]

``u`` (model within base), ``v`` (prompt), ``w`` (prompt x base: the part of the gap that changes
with the prompt) and ``e`` (residual) are independent, zero-mean, with variances σ²_model, σ²_prompt,
σ²_prompt:base and σ²_residual. The data are a complete models x prompts table, balanced within each
base, so the ANOVA (expected-mean-square) estimators below are the REML estimates whenever they are
positive (Searle, Casella & McCulloch 1992, §4.7; :func:`reference_variance_components` fits the
REML model with statsmodels and tests hold the two equal); negative estimates are set to 0, as REML
would. The per-prompt gap ``g[p] = mean tilt of base 2 - mean tilt of base 1`` has true SD
``sqrt(2 σ²_prompt:base)`` across prompts. CIs are percentile intervals of a pigeonhole bootstrap
(prompts resampled with replacement, and models within each base: Owen 2007, Ann. Appl. Stat.),
which is conservative for crossed designs.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from rmvalues.errors import AnalysisError

if TYPE_CHECKING:
    import pandas as pd

COMPONENTS = ("model", "prompt", "prompt:base", "residual")


def variance_components(d: np.ndarray, in_base2: np.ndarray) -> dict[str, float]:
    """ANOVA estimates for a models x prompts tilt table ``d`` (``in_base2``: rows of base 2).

    Returns σ² of each component (:data:`COMPONENTS`), the mean ``gap`` and ``gap_sd`` (the true SD
    of the per-prompt gap). With one model in each base the residual is not identifiable: it is 0
    and prompt:base absorbs it (an upper bound).
    """
    n_prompts = d.shape[1]
    blocks = [d[~in_base2], d[in_base2]]
    ns = np.array([len(b) for b in blocks], float)
    col = [b.mean(axis=0) for b in blocks]
    ss_res = df_res = ss_row = df_row = 0.0
    for b, c in zip(blocks, col, strict=True):
        row = b.mean(axis=1, keepdims=True)
        ss_res += float(((b - row - c + b.mean()) ** 2).sum())
        df_res += (len(b) - 1) * (n_prompts - 1)
        ss_row += n_prompts * float(((row - b.mean()) ** 2).sum())
        df_row += len(b) - 1
    residual = ss_res / df_res if df_res else 0.0
    model = max(0.0, (ss_row / df_row - residual) / n_prompts) if df_row else 0.0
    gaps = col[1] - col[0]
    noise = residual * float((1 / ns).sum())
    s2_gap = float(gaps.var(ddof=1)) if n_prompts > 1 else 0.0
    s2_mid = float(((col[0] + col[1]) / 2).var(ddof=1)) if n_prompts > 1 else 0.0
    prompt_base = max(0.0, (s2_gap - noise) / 2)
    prompt = max(0.0, s2_mid - s2_gap / 4)
    return {"model": model, "prompt": prompt, "prompt:base": prompt_base, "residual": residual,
            "gap": float(gaps.mean()), "gap_sd": float(np.sqrt(2 * prompt_base))}


def reference_variance_components(frame: pd.DataFrame) -> dict[str, float]:
    """The same model fitted by REML (statsmodels MixedLM, crossed effects as variance components).

    ``frame``: ``model, prompt_id, base, tilt``. Slow; for tests.
    """
    import statsmodels.formula.api as smf

    data = frame.reset_index(drop=True).copy()
    data["one"] = 1
    data["pb"] = data["prompt_id"].astype(str) + ":" + data["base"].astype(str)
    vc = {"model": "0 + C(model)", "prompt": "0 + C(prompt_id)", "pb": "0 + C(pb)"}
    fit = smf.mixedlm("tilt ~ C(base)", data, groups="one", vc_formula=vc, re_formula="0").fit(
        reml=True, method=["lbfgs", "powell"])
    names = list(fit.model.exog_vc.names)
    out = dict(zip(names, (float(x) for x in fit.vcomp), strict=True))
    return {"model": out["model"], "prompt": out["prompt"], "prompt:base": out["pb"],
            "residual": float(fit.scale)}


def _resample_rows(rng: np.random.Generator, in_base2: np.ndarray) -> np.ndarray:
    """Row indices: models drawn with replacement within each base (base sizes kept)."""
    idx = [np.flatnonzero(~in_base2), np.flatnonzero(in_base2)]
    return np.concatenate([rng.choice(i, size=len(i), replace=True) for i in idx])


@dataclass
class SensitivityResult:
    """Variance components per framing stratum, the gap per prompt family, and per prompt."""

    pair: tuple[str, str]
    bases: tuple[str, str]
    components: pd.DataFrame = field(repr=False)
    families: pd.DataFrame = field(repr=False)
    prompts: pd.DataFrame = field(repr=False)
    notes: list[str] = field(default_factory=list)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"sensitivity_components": self.components, "sensitivity_families": self.families,
                "sensitivity_prompts": self.prompts}

    def summary_lines(self) -> list[str]:
        a, b = self.pair
        lines = [(f"Prompt sensitivity of the base-family gap (tilt = median rank {a} - {b}; gap = "
                 f"{self.bases[1]} - {self.bases[0]}; pigeonhole bootstrap 95% CIs):")]
        for framing, comp in self.components.groupby("framing", sort=False):
            lines.append(f"  framing {framing}: variance components (prompt as a random effect)")
            for r in comp.itertuples():
                lines.append(f"    {r.component:<12} σ² {r.variance:10.3f} [{r.lo:.3f}, {r.hi:.3f}]  "
                             f"share {r.share:6.1%}")
        lines.append("  gap per prompt family:")
        for r in self.families.itertuples():
            lines.append(f"    {r.family:<24}{r.framing:<10} gap {r.gap:8.2f} [{r.lo:.2f}, {r.hi:.2f}]  "
                         f"SD over prompts {r.gap_sd:6.2f}  same sign {r.same_sign}/{r.n_prompts}")
        return lines + [f"  note: {n}" for n in self.notes]


def prompt_sensitivity(
    units: pd.DataFrame,
    prompts: Any = None,
    *,
    categories: Sequence[str] | None = None,
    family: str = "family",
    n_boot: int = 2000,
    seed: int = 42,
) -> SensitivityResult:
    """Variance components (with CIs) and the gap per prompt family (with CIs) from median-rank units.

    ``prompts``: the prompt set(s) the runs were scored on (names, files or sets), which give each
    prompt its ``family`` and ``framing``. Every model needs a base family, two families in all.
    """
    import pandas as pd

    pair = category_pair(units, categories)
    frame = tilts(units, pair)
    bases = base_levels(frame)
    info = prompt_info(list(frame["prompt_id"].unique()), prompts, family)
    frame = frame.merge(info, on="prompt_id")
    models = list(dict.fromkeys(frame.sort_values("base")["model"]))
    base_of = frame.drop_duplicates("model").set_index("model")["base"].astype(str)
    in_base2 = np.array([base_of[m] == bases[1] for m in models])
    if in_base2.all() or not in_base2.any():
        raise AnalysisError("prompt sensitivity needs models of both base families.")
    notes = []
    if in_base2.sum() < 2 and (~in_base2).sum() < 2:
        notes.append("one model per base family: model x prompt noise is not separable from "
                     "prompt:base, whose variance is then an upper bound.")
    rng = np.random.default_rng(seed)
    comp_rows, fam_rows, prompt_rows = [], [], []
    for framing, stratum in frame.groupby("framing", sort=False):
        pids = list(dict.fromkeys(stratum["prompt_id"]))
        d = tilt_matrix(stratum, models, pids)
        est = variance_components(d, in_base2)
        draws = np.empty((n_boot, len(COMPONENTS)))
        for i in range(n_boot):
            rows, cols = _resample_rows(rng, in_base2), rng.integers(0, len(pids), len(pids))
            boot = variance_components(d[np.ix_(rows, cols)], in_base2[rows])
            draws[i] = [boot[c] for c in COMPONENTS]
        total = sum(est[c] for c in COMPONENTS) or float("nan")
        for j, c in enumerate(COMPONENTS):
            lo, hi = percentile_ci(draws[:, j])
            comp_rows.append({"framing": framing, "component": c, "variance": est[c],
                              "sd": float(np.sqrt(est[c])), "lo": lo, "hi": hi,
                              "share": est[c] / total, "n_models": len(models), "n_prompts": len(pids)})
        gaps = d[in_base2].mean(axis=0) - d[~in_base2].mean(axis=0)
        fam_of = stratum.drop_duplicates("prompt_id").set_index("prompt_id")["family"]
        for pid, g in zip(pids, gaps, strict=True):
            prompt_rows.append({"prompt_id": pid, "family": fam_of[pid], "framing": framing, "gap": g})
        for fam in dict.fromkeys(fam_of[pids]):
            cols_f = np.flatnonzero(fam_of[pids].to_numpy() == fam)
            sub = d[:, cols_f]
            est_f = variance_components(sub, in_base2)
            boot = np.empty(n_boot)
            for i in range(n_boot):
                rows, cols = _resample_rows(rng, in_base2), rng.integers(0, len(cols_f), len(cols_f))
                s = sub[np.ix_(rows, cols)]
                boot[i] = s[in_base2[rows]].mean() - s[~in_base2[rows]].mean()
            lo, hi = percentile_ci(boot)
            g_f = gaps[cols_f]
            fam_rows.append({"family": fam, "framing": framing, "n_prompts": len(cols_f),
                             "gap": float(g_f.mean()), "lo": lo, "hi": hi, "gap_sd": est_f["gap_sd"],
                             "same_sign": int((np.sign(g_f) == np.sign(g_f.mean())).sum())})
    return SensitivityResult(pair=pair, bases=bases, components=pd.DataFrame(comp_rows),
                             families=pd.DataFrame(fam_rows), prompts=pd.DataFrame(prompt_rows),
                             notes=notes)
