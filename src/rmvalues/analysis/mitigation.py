"""Mitigations of the base-family bias that write ordinary score runs, so ``analyze``/``report`` and
:mod:`rmvalues.analysis.debias` treat them like any RM.

* :func:`ensemble`: the mean of z-scored rewards of RMs from different base families (z-scored per
  model and prompt over the candidates every member scored, so no member dominates by its scale).
* :func:`base_corrected`: ``r - λ·m``, with ``m`` the implicit reward of the RM's base
  pretrained→instruct shift (MWLR, :mod:`rmvalues.implicit`) and λ the pooled within-prompt OLS slope
  of ``r`` on ``m`` fitted on held-out prompts; the corrected run holds only the other prompts, so
  the gap is never measured on the prompts λ was fitted on. Noise in ``m`` attenuates the OLS λ
  (regression dilution), so the correction removes less than all of a bias ``m`` carries.

Counterbalanced preference data is a training option (:mod:`rmvalues.training`), not a transform.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rmvalues.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

#: Manifest field every mitigated run carries: {kind, sources, base, ...}.
MITIGATION_FIELD = "mitigation"


@dataclass
class MitigatedRun:
    """A mitigated results table (score schema), what made it, and where it was written."""

    table: pd.DataFrame = field(repr=False)
    model: str
    info: dict[str, Any]
    path: Path | None = None

    def summary(self) -> str:
        kind = self.info["kind"]
        extra = (f"λ = {self.info['lambda']:.4g} fitted on {len(self.info['fit_prompts'])} prompt(s)"
                 if kind == "base-corrected" else f"members {', '.join(self.info['sources'])}")
        return (f"{self.model}: {kind} ({extra}); {self.table['prompt_id'].nunique()} prompt(s) x "
                f"{len(self.table) // max(self.table['prompt_id'].nunique(), 1):,} candidates"
                + (f" -> {self.path}" if self.path else ""))


def _runs(runs: Sequence[Any]) -> pd.DataFrame:
    import pandas as pd

    from rmvalues.analysis.pipeline import read_run

    return pd.concat([read_run(r) for r in runs], ignore_index=True)


def _result_frame(model: str, keys: pd.DataFrame, scores: np.ndarray, kind: str) -> pd.DataFrame:
    import pandas as pd

    from rmvalues.lexicons import paper_normalize

    n = len(keys)
    return pd.DataFrame({
        "model": [model] * n, "prompt_id": keys["prompt_id"].astype(str).to_numpy(),
        "candidate_kind": [kind] * n, "token_id": pd.array(keys.get("token_id", [None] * n), dtype="Int64"),
        "candidate": keys["candidate"].to_numpy(),
        "normalized": [paper_normalize(t) for t in keys["candidate"]],
        "score": np.asarray(scores, dtype=np.float32)})


def _zscore(values: pd.Series, groups: pd.Series) -> np.ndarray:
    grouped = values.groupby(groups, observed=True)
    sd = grouped.transform("std", ddof=0).to_numpy(float)
    z = (values.to_numpy(float) - grouped.transform("mean").to_numpy(float)) / np.where(sd > 0, sd, 1.0)
    return z


def ensemble(
    runs: Sequence[Any],
    *,
    name: str | None = None,
    model_meta: Any = None,
    weights: Mapping[str, float] | None = None,
    require_families: int = 2,
) -> MitigatedRun:
    """Average of per-(model, prompt) z-scored rewards over the candidates every member scored.

    Members are joined by exact candidate string (a string a tokenizer decodes from several ids keeps
    its mean). ``require_families``: members must span at least this many base families
    (registry or ``model_meta``); 1 allows a same-family ensemble (a control).
    """
    from rmvalues.analysis.units import model_factors

    scores = _runs(runs)
    models = list(dict.fromkeys(scores["model"]))
    if len(models) < 2:
        raise InputError(f"an ensemble needs at least two RMs; the runs hold {models}.")
    bases = model_factors(models, model_meta).set_index("model")["base"].astype(str).to_dict()
    if len(set(bases.values())) < require_families:
        raise InputError(f"the ensemble members {models} come from base families "
                         f"{sorted(set(bases.values()))}; a cross-family ensemble needs "
                         f"{require_families}. Add an RM of another family.")
    w = {m: float((weights or {}).get(m, 1.0)) for m in models}
    if any(v <= 0 for v in w.values()):
        raise InputError(f"ensemble weights must be positive; got {w}.")
    per = (scores.groupby(["model", "prompt_id", "candidate"], observed=True, sort=False)["score"]
           .mean().reset_index())
    counts = per.groupby(["prompt_id", "candidate"], observed=True)["model"].transform("nunique")
    shared = per[counts == len(models)].reset_index(drop=True)
    if shared.empty:
        raise InputError("the ensemble members share no (prompt, candidate); score them on the same "
                         "prompts and on candidates with the same strings (e.g. a lexicon).")
    shared["z"] = _zscore(shared["score"], shared["model"].astype(str) + "\0" + shared["prompt_id"].astype(str))
    shared["w"] = shared["model"].map(w)
    shared["wz"] = shared["z"] * shared["w"]
    agg = shared.groupby(["prompt_id", "candidate"], observed=True, sort=False)[["wz", "w"]].sum()
    keys = agg.reset_index()[["prompt_id", "candidate"]]
    model = name or "ensemble(" + "+".join(models) + ")"
    kinds = set(scores["candidate_kind"])
    table = _result_frame(model, keys, (agg["wz"] / agg["w"]).to_numpy(),
                          "text" if kinds != {"token"} else "token")
    info = {"kind": "ensemble", "sources": models, "source_bases": bases, "weights": w, "base": None,
            "standardisation": "z-score per member and prompt over shared candidates",
            "n_shared_candidates": len(keys)}
    return MitigatedRun(table=table, model=model, info=info)


def read_implicit(source: Any) -> pd.DataFrame:
    """An implicit-reward table (``prompt_id, key, score``): a frame, a parquet file, or the folder
    ``rmvalues implicit`` wrote (its ``mwlr.parquet``)."""
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        table = source
    else:
        path = Path(source)
        if path.is_dir():
            path = path / "mwlr.parquet"
        if not path.exists():
            raise InputError(f"implicit-reward table {path} does not exist; compute it with "
                             "`rmvalues implicit BASE_RUN INSTRUCT_RUN --out DIR` and pass DIR.")
        table = pd.read_parquet(path)
    if not {"prompt_id", "key", "score"} <= set(table.columns):
        raise InputError(f"an implicit-reward table needs columns prompt_id, key, score; got "
                         f"{list(table.columns)}.")
    return table


def split_prompts(prompt_ids: Sequence[str], fit_fraction: float = 0.5, seed: int = 0
                  ) -> tuple[list[str], list[str]]:
    """A seeded random split of prompt ids into (fit, evaluate), both non-empty."""
    ids = list(dict.fromkeys(prompt_ids))
    if len(ids) < 2:
        raise InputError("fitting λ on held-out prompts needs at least two prompts; give more, or "
                         "pass fit prompts explicitly.")
    if not 0 < fit_fraction < 1:
        raise InputError(f"fit_fraction must be between 0 and 1 (got {fit_fraction}).")
    order = np.random.default_rng(seed).permutation(len(ids))
    k = min(max(1, round(fit_fraction * len(ids))), len(ids) - 1)
    fit = sorted(order[:k])
    return [ids[i] for i in fit], [ids[i] for i in sorted(order[k:])]


def fit_lambda(r: np.ndarray, m: np.ndarray, groups: np.ndarray) -> float:
    """Pooled within-group OLS slope of ``r`` on ``m`` (each prompt centred: a prompt's offset is not
    evidence about λ)."""
    import pandas as pd

    frame = pd.DataFrame({"r": r, "m": m, "g": groups})
    rc = frame["r"] - frame.groupby("g")["r"].transform("mean")
    mc = frame["m"] - frame.groupby("g")["m"].transform("mean")
    denom = float((mc * mc).sum())
    if denom <= 0:
        raise InputError("the implicit reward is constant within every fit prompt; λ cannot be fitted.")
    return float((rc * mc).sum() / denom)


def base_corrected(
    run: Any,
    implicit: Any,
    *,
    fit_prompts: Sequence[str] | None = None,
    fit_fraction: float = 0.5,
    seed: int = 0,
    lam: float | None = None,
    name: str | None = None,
    model_meta: Any = None,
) -> MitigatedRun:
    """``r - λ·m`` on the prompts not used to fit λ (see the module docstring).

    ``run``: one RM's results; ``implicit``: its base pretrained→instruct implicit reward
    (:func:`read_implicit`), joined on (prompt, exact candidate string). ``fit_prompts``: the prompts
    λ is fitted on (default a seeded ``fit_fraction`` split); ``lam`` fixes λ instead.
    """
    from rmvalues.analysis.units import model_factors

    scores = _runs([run])
    models = list(dict.fromkeys(scores["model"]))
    if len(models) != 1:
        raise InputError(f"base correction applies to one RM at a time; the run holds {models}.")
    imp = read_implicit(implicit)
    imp = imp.groupby(["prompt_id", "key"], observed=True)["score"].mean().rename("m").reset_index()
    imp["prompt_id"] = imp["prompt_id"].astype(str)
    joined = scores.assign(prompt_id=scores["prompt_id"].astype(str)).merge(
        imp, left_on=["prompt_id", "candidate"], right_on=["prompt_id", "key"], how="inner")
    if joined.empty:
        raise InputError("no (prompt, candidate) of the RM run is in the implicit-reward table; compute "
                         "the implicit reward on the RM's prompts with the same base tokenizer.")
    prompts = list(dict.fromkeys(joined["prompt_id"]))
    if lam is None:
        if fit_prompts is None:
            fit, evaluate = split_prompts(prompts, fit_fraction, seed)
        else:
            fit = [str(p) for p in fit_prompts]
            unknown = [p for p in fit if p not in set(prompts)]
            if unknown:
                raise InputError(f"fit prompt(s) {unknown[:5]} are not in both the run and the "
                                 "implicit-reward table.")
            evaluate = [p for p in prompts if p not in set(fit)]
            if not evaluate:
                raise InputError("every prompt is a fit prompt; leave some out to measure the gap on.")
        on_fit = joined[joined["prompt_id"].isin(fit)]
        lam = fit_lambda(on_fit["score"].to_numpy(float), on_fit["m"].to_numpy(float),
                         on_fit["prompt_id"].to_numpy())
    else:
        fit, evaluate = [], prompts
    out = joined[joined["prompt_id"].isin(evaluate)].reset_index(drop=True)
    source = models[0]
    model = name or f"{source}-basecorrected"
    table = _result_frame(model, out, out["score"].to_numpy(float) - lam * out["m"].to_numpy(float),
                          str(out["candidate_kind"].iloc[0]))
    table["token_id"] = out["token_id"].to_numpy()
    base = model_factors([source], model_meta)["base"].iloc[0]
    info = {"kind": "base-corrected", "sources": [source], "base": str(base), "lambda": float(lam),
            "fit_prompts": fit, "eval_prompts": evaluate,
            "n_dropped_candidates": int(scores["prompt_id"].isin(evaluate).sum() - len(out))}
    return MitigatedRun(table=table, model=model, info=info)


def write_mitigated(result: MitigatedRun, out: str | Path, **fields: Any) -> Path:
    """Write the run like ``rmvalues score`` does: ``OUT/<model>.parquet`` and its manifest."""
    from rmvalues.store.manifest import build_manifest, write_results
    from rmvalues.store.shards import check_writable, slug

    folder = check_writable(out)
    path = write_results(result.table, folder / f"{slug(result.model)}.parquet",
                         build_manifest("rm-scores", model=result.model,
                                        **{MITIGATION_FIELD: result.info}, **fields))
    result.path = path
    return path


def mitigation_infos(run: Any) -> dict[str, dict[str, Any]]:
    """Model → mitigation record of the tables of a stored run (file or folder; {} for a frame or an
    ordinary run)."""
    from rmvalues.store.manifest import manifest_path, read_manifest

    if not isinstance(run, (str, Path)):
        return {}
    path = Path(run)
    tables = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    out = {}
    for table in tables:
        mpath = manifest_path(table)
        if mpath.exists():
            fields = read_manifest(mpath).fields
            if fields.get(MITIGATION_FIELD) and fields.get("model"):
                out[str(fields["model"])] = dict(fields[MITIGATION_FIELD])
    return out
