"""How far reward models agree on one ranking of the same candidates (FAccT 2025, Fig 2, A1).

The join: runs are matched on the decoded candidate string, verbatim (leading spaces kept), so RMs
with different tokenizers meet on the strings they share. Duplicate policy (a string that one RM's
vocabulary encodes with more than one token id): ``"drop"`` removes that string from the shared
vocabulary for every RM (the authors' choice: no string is scored twice); ``"mean"`` keeps it with
the mean of its encodings' scores. The shared vocabulary is the set of strings present in every run
under every prompt compared (the prompts all runs share).

Metrics per pair of RMs, on the whole shared vocabulary and on its top and bottom separately:
Kendall's tau-b and Spearman's rho (scipy), Spearman's footrule as a similarity
``1 - sum|r_a - r_b| / floor(n^2 / 2)`` (the exact maximum, Diaconis & Graham 1977), NDCG@k and
RBO_ext (p = 0.9, tie-aware; :mod:`rmvalues.analysis.rbo`). "Top" for tau/rho/footrule is the union of
both RMs' top-k strings, "bottom" the union of their bottom-k; NDCG and RBO read the ranking from
the top (descending scores) or from the bottom (ascending).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from rmvalues.errors import AnalysisError, InputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

DuplicatePolicy = Literal["drop", "mean"]
Segment = Literal["all", "top", "bottom"]
METRICS = ("kendall_tau_b", "spearman_rho", "footrule", "ndcg", "rbo_ext")


def shared_vocabulary(
    runs: pd.DataFrame, prompts: Sequence[str] | None = None, duplicates: DuplicatePolicy = "drop"
) -> pd.DataFrame:
    """Scores over the shared vocabulary: one row per (prompt_id, candidate), one column per model.

    ``attrs['duplicates']`` lists the strings the duplicate policy acted on.
    """
    import pandas as pd

    if duplicates not in ("drop", "mean"):
        raise InputError(f"duplicate policy {duplicates!r}: use 'drop' or 'mean'.")
    frame = runs if prompts is None else runs[runs["prompt_id"].isin(list(prompts))]
    if frame.empty:
        raise AnalysisError("no scores to compare (check the prompt ids).")
    # Only prompts that every model was scored under can be compared.
    per_model = frame.groupby("model", observed=True)["prompt_id"].agg(lambda p: set(p))
    common = set.intersection(*per_model.tolist())
    if not common:
        raise AnalysisError("the runs share no prompt id; agreement compares RMs under the same prompt.")
    frame = frame[frame["prompt_id"].isin(sorted(common))]
    counts = frame.groupby(["model", "prompt_id", "candidate"], observed=True).size()
    dup = sorted(set(counts[counts > 1].index.get_level_values("candidate")))
    if duplicates == "drop" and dup:
        frame = frame[~frame["candidate"].isin(dup)]
    wide = frame.pivot_table(index=["prompt_id", "candidate"], columns="model", values="score",
                             aggfunc="mean", observed=True)
    n_prompts = frame["prompt_id"].nunique()
    wide = wide.dropna()
    per_string = wide.reset_index().groupby("candidate")["prompt_id"].transform("size").to_numpy()
    wide = wide[per_string == n_prompts]
    if wide.empty:
        raise AnalysisError("the runs share no candidate string under every prompt; nothing to compare.")
    wide = pd.DataFrame(wide)
    wide.columns = [str(c) for c in wide.columns]
    wide.attrs["duplicates"] = dup
    wide.attrs["policy"] = duplicates
    return wide


def footrule_similarity(x: np.ndarray, y: np.ndarray) -> float:
    """``1 - sum|rank(x) - rank(y)| / floor(n^2/2)`` with average ranks (1: same order)."""
    import numpy as np
    from scipy.stats import rankdata

    n = len(x)
    if n < 2:
        return float("nan")
    return 1.0 - float(np.abs(rankdata(x) - rankdata(y)).sum()) / (n * n // 2)


def ndcg_at_k(reference: np.ndarray, ranker: np.ndarray, k: int) -> float:
    """NDCG@k of the order given by ``ranker`` (descending), with linear gains from
    ``reference``'s ranks rescaled to [0, 1] (1 = reference's best); log2 discount."""
    import numpy as np
    from scipy.stats import rankdata

    n = len(reference)
    if n < 2:
        return float("nan")
    gain = (rankdata(reference) - 1) / (n - 1)
    k = min(k, n)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    order = np.argsort(-np.asarray(ranker, dtype=float), kind="stable")[:k]
    ideal = np.sort(gain)[::-1][:k]
    return float((gain[order] * discount).sum() / (ideal * discount).sum())


def pair_metrics(names: np.ndarray, x: np.ndarray, y: np.ndarray, k: int, p: float = 0.9
                 ) -> dict[tuple[Segment, str], float]:
    """All metrics of one pair, on every segment (see the module docstring)."""
    import numpy as np
    from scipy.stats import kendalltau, spearmanr

    from rmvalues.analysis.rbo import groups_from_scores, rbo_ext

    out: dict[tuple[Segment, str], float] = {}
    n = len(x)
    k = min(k, n)
    for segment in ("all", "top", "bottom"):
        if segment == "all":
            pick = np.arange(n)
        else:
            sign = -1 if segment == "top" else 1
            pick = np.union1d(np.argsort(sign * x, kind="stable")[:k],
                              np.argsort(sign * y, kind="stable")[:k])
        xs, ys = x[pick], y[pick]
        out[(segment, "kendall_tau_b")] = float(kendalltau(xs, ys).statistic)
        out[(segment, "spearman_rho")] = float(spearmanr(xs, ys).statistic)
        out[(segment, "footrule")] = footrule_similarity(xs, ys)
    for segment, sign in (("top", 1.0), ("bottom", -1.0)):
        out[(segment, "ndcg")] = ndcg_at_k(sign * x, sign * y, k)
        desc = segment == "top"
        out[(segment, "rbo_ext")] = rbo_ext(groups_from_scores(names, x, descending=desc, depth=k),
                                            groups_from_scores(names, y, descending=desc, depth=k),
                                            p=p, k=k)
    return out


def pairwise_agreement(
    shared: pd.DataFrame, *, k: int = 100, p: float = 0.9
) -> pd.DataFrame:
    """Long table: prompt_id, segment, metric, model_a, model_b, value (every ordered pair; NDCG
    is asymmetric: model_a gives the relevance, model_b the ranking)."""
    import numpy as np
    import pandas as pd

    rows = []
    models = list(shared.columns)
    for prompt_id, block in shared.groupby(level="prompt_id", sort=True):
        names = block.index.get_level_values("candidate").to_numpy()
        values = {m: block[m].to_numpy(dtype=float) for m in models}
        for i, a in enumerate(models):
            for b in models[i:]:
                ab = pair_metrics(names, values[a], values[b], k, p)
                ba = ab if a == b else {**ab, **{
                    (s, "ndcg"): ndcg_at_k((1.0 if s == "top" else -1.0) * values[b],
                                           (1.0 if s == "top" else -1.0) * values[a], min(k, len(names)))
                    for s in ("top", "bottom")}}
                for (segment, metric), value in ab.items():
                    rows.append((prompt_id, segment, metric, a, b, value))
                    if a != b:
                        rows.append((prompt_id, segment, metric, b, a, ba[(segment, metric)]))
    out = pd.DataFrame(rows, columns=["prompt_id", "segment", "metric", "model_a", "model_b", "value"])
    out["n_shared"] = out["prompt_id"].map(shared.groupby(level="prompt_id").size())
    out["k"] = k
    return out.sort_values(["prompt_id", "segment", "metric", "model_a", "model_b"],
                           ignore_index=True).astype({"value": np.float64})


def similarity_matrix(pairs: pd.DataFrame, prompt_id: str, segment: str, metric: str,
                      order: Sequence[str] | None = None) -> pd.DataFrame:
    """One metric as a square model x model matrix."""
    sel = pairs[(pairs["prompt_id"] == prompt_id) & (pairs["segment"] == segment)
                & (pairs["metric"] == metric)]
    if sel.empty:
        raise AnalysisError(f"no {metric} values for prompt {prompt_id!r}, segment {segment!r}.")
    mat = sel.pivot(index="model_a", columns="model_b", values="value")
    order = list(order) if order is not None else sorted(mat.index)
    return mat.loc[order, order]


def mds_embedding(similarity: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Metric MDS (scikit-learn SMACOF) of the models on ``1 - S``, S symmetrised: model, x, y, stress."""
    import numpy as np
    import pandas as pd
    from sklearn.manifold import MDS

    s = similarity.to_numpy(dtype=float)
    d = 1.0 - (s + s.T) / 2.0
    np.fill_diagonal(d, 0.0)
    d = np.clip(d, 0.0, None)
    mds = MDS(n_components=2, metric="precomputed", init="random", n_init=4, random_state=seed,
              normalized_stress="auto")
    xy = mds.fit_transform(d)
    return pd.DataFrame({"model": list(similarity.index), "x": xy[:, 0], "y": xy[:, 1],
                         "stress": float(mds.stress_)})


# --- RSA -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFeatures:
    """What RSA compares the RMs on: base family, developer (hub org) and size in billions."""

    family: str
    developer: str
    size_b: float


def model_features(models: Sequence[str], meta: pd.DataFrame | None = None) -> dict[str, ModelFeatures]:
    """Features from ``meta`` (columns model, base, developer, size_b) or the model registry."""
    from rmvalues.models.registry import find_model

    out = {}
    given = {} if meta is None else meta.set_index("model").to_dict("index")
    for m in models:
        if m in given:
            row = given[m]
            out[m] = ModelFeatures(str(row["base"]), str(row.get("developer", "")), float(row["size_b"]))
            continue
        spec = find_model(m)
        if spec is None:
            raise InputError(
                f"model {m!r} is not in the registry, so RSA does not know its family, developer and "
                "size; pass --model-meta with columns model, base, developer, size_b."
            )
        out[m] = ModelFeatures(spec.base_family, spec.hub_id.split("/")[0], spec.size_b)
    return out


def feature_matrices(models: Sequence[str], features: Mapping[str, ModelFeatures]
                     ) -> dict[str, np.ndarray]:
    """Model-similarity predictions: same family / same developer (1/0), size ``1/(1+|dB|)``
    (the FAccT code's forms)."""
    import numpy as np

    f = [features[m] for m in models]
    n = len(f)

    def build(fn) -> np.ndarray:
        return np.array([[fn(f[i], f[j]) for j in range(n)] for i in range(n)], dtype=float)

    return {
        "same_family": build(lambda a, b: float(a.family == b.family)),
        "same_developer": build(lambda a, b: float(a.developer == b.developer)),
        "size": build(lambda a, b: 1.0 / (1.0 + abs(a.size_b - b.size_b))),
    }


def rsa(similarity: np.ndarray, feature: np.ndarray, *, n_perm: int = 9999, seed: int = 0
        ) -> tuple[float, float]:
    """Spearman correlation of the off-diagonal upper triangles, and a one-sided Mantel
    permutation p (rows and columns of ``feature`` permuted together): ``(rho, p)``.

    NaN when the feature is constant over pairs (e.g. all RMs from one family)."""
    import numpy as np
    from scipy.stats import spearmanr

    s = (np.asarray(similarity, dtype=float) + np.asarray(similarity, dtype=float).T) / 2
    n = s.shape[0]
    iu = np.triu_indices(n, 1)
    if len(iu[0]) < 3 or np.ptp(feature[iu]) == 0:
        return float("nan"), float("nan")
    from scipy.stats import rankdata

    observed = float(spearmanr(s[iu], feature[iu]).statistic)
    # Relabelling permutes the off-diagonal cells among themselves, so the feature's ranks can be
    # taken once and permuted with it: each permuted rho is a Pearson r of ranks.
    ranked = np.zeros_like(np.asarray(feature, dtype=float))
    ranked[iu] = rankdata(feature[iu])
    ranked = ranked + ranked.T
    rs = rankdata(s[iu])
    rs = (rs - rs.mean()) / np.linalg.norm(rs - rs.mean())
    rng = np.random.default_rng(seed)
    perms = np.array([rng.permutation(n) for _ in range(n_perm)])
    f = ranked[perms[:, :, None], perms[:, None, :]][:, iu[0], iu[1]]
    f = f - f.mean(axis=1, keepdims=True)
    null = (f @ rs) / np.linalg.norm(f, axis=1)
    hits = int((null >= observed - 1e-12).sum())
    return observed, (hits + 1) / (n_perm + 1)


def reference_rsa(similarity: np.ndarray, feature: np.ndarray, *, n_perm: int = 9999, seed: int = 0
                  ) -> tuple[float, float]:
    """:func:`rsa` the slow way: permute the feature matrix and call scipy's spearmanr each time."""
    import numpy as np
    from scipy.stats import spearmanr

    s = (np.asarray(similarity, dtype=float) + np.asarray(similarity, dtype=float).T) / 2
    iu = np.triu_indices(s.shape[0], 1)
    observed = float(spearmanr(s[iu], feature[iu]).statistic)
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(s.shape[0]) for _ in range(n_perm)]
    hits = sum(spearmanr(s[iu], feature[np.ix_(q, q)][iu]).statistic >= observed - 1e-12 for q in perms)
    return observed, (hits + 1) / (n_perm + 1)


def rsa_table(pairs: pd.DataFrame, features: Mapping[str, ModelFeatures], *, metric: str = "kendall_tau_b",
              segment: str = "all", n_perm: int = 9999, seed: int = 0) -> pd.DataFrame:
    """RSA of every prompt's ``metric`` matrix against each feature matrix."""
    import pandas as pd

    rows = []
    for prompt_id in sorted(pairs["prompt_id"].unique()):
        mat = similarity_matrix(pairs, prompt_id, segment, metric)
        models = list(mat.index)
        for name, fmat in feature_matrices(models, features).items():
            rho, p = rsa(mat.to_numpy(), fmat, n_perm=n_perm, seed=seed)
            rows.append((prompt_id, metric, segment, name, rho, p, len(models), n_perm))
    return pd.DataFrame(rows, columns=["prompt_id", "metric", "segment", "feature", "spearman_rho",
                                       "p_perm", "n_models", "n_perm"])


# --- asymmetry -----------------------------------------------------------------------------------


def asymmetry(pairs: pd.DataFrame, *, metrics: Sequence[str] = ("rbo_ext", "kendall_tau_b"),
              n_perm: int = 9999, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Agreement at the top minus at the bottom, per prompt and metric, over the distinct RM pairs.

    ``p_perm``: sign-flip permutation test of the mean paired difference (pairs as units).
    Pairs sharing an RM are not independent, so the CI resamples *models* (a bootstrap over RMs,
    keeping the pairs of distinct resampled RMs), which carries that dependence.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for (prompt_id, metric), sel in pairs[pairs["metric"].isin(list(metrics))].groupby(
            ["prompt_id", "metric"], sort=True):
        sel = sel[sel["model_a"] < sel["model_b"]]
        wide = sel.pivot_table(index=["model_a", "model_b"], columns="segment", values="value")
        if not {"top", "bottom"} <= set(wide.columns) or len(wide) < 2:
            continue
        diff = (wide["top"] - wide["bottom"]).to_numpy()
        observed = float(diff.mean())
        flips = rng.choice([-1.0, 1.0], size=(n_perm, len(diff)))
        p = (1 + int((np.abs((flips * diff).mean(axis=1)) >= abs(observed) - 1e-12).sum())) / (n_perm + 1)
        models = sorted(set(wide.index.get_level_values(0)) | set(wide.index.get_level_values(1)))
        lookup = dict(zip(wide.index, diff, strict=True))
        boots = []
        for _ in range(n_boot):
            pick = sorted(set(rng.choice(models, size=len(models), replace=True)))
            vals = [lookup[(a, b)] for i, a in enumerate(pick) for b in pick[i + 1:] if (a, b) in lookup]
            if vals:
                boots.append(np.mean(vals))
        lo, hi = (np.quantile(boots, [0.025, 0.975]) if boots else (np.nan, np.nan))
        rows.append((prompt_id, metric, float(wide["top"].mean()), float(wide["bottom"].mean()),
                     observed, float(lo), float(hi), p, len(diff)))
    return pd.DataFrame(rows, columns=["prompt_id", "metric", "mean_top", "mean_bottom",
                                       "top_minus_bottom", "ci_low", "ci_high", "p_perm", "n_pairs"])
