"""Where identity-group terms land in each RM's ranking, against frequency-matched random words
(FAccT 2025's identity-term finding).

Per model x prompt, candidates are collapsed to words (:func:`~rmvalues.analysis.covariates.word_scores`:
the mean over a word's encodings) and each word gets a percentile rank (0 = lowest score, 1 =
highest; average ranks for ties). For each identity term the null is ``n_null`` random non-identity
words from the same log-frequency bin (BNC, ``n_bins`` quantile bins over the words that have a
frequency); a term without a BNC frequency is compared with all other words and marked
``matched=False``. Two-sided empirical p = ``min(1, 2 * min(P(null <= obs), P(null >= obs)))`` with
the +1 correction; ``flag`` = BH-adjusted p below ``alpha`` within each model x prompt. Needs
full-vocabulary (or otherwise broad) runs: a lexicon run holds no random words to draw from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rmvalues.errors import AnalysisError

if TYPE_CHECKING:
    import pandas as pd


def identity_ranks(runs: pd.DataFrame, terms: pd.DataFrame, frequency: pd.DataFrame, *,
                   n_null: int = 1000, n_bins: int = 10, alpha: float = 0.05, seed: int = 0
                   ) -> pd.DataFrame:
    """``terms``: columns term, category. Returns one row per (model, prompt_id, term, category)."""
    import numpy as np
    import pandas as pd
    from scipy.stats import false_discovery_control

    from rmvalues.analysis.covariates import word_scores

    words = word_scores(runs)
    words = words[words["word"].str.fullmatch(r"[a-z][a-z'\-]*")]
    identity = set(terms["term"].str.lower())
    freq = frequency.set_index("word")["freq_per_million"]
    vocab = pd.Index(sorted(set(words["word"])))
    logf = np.log(freq.reindex(vocab).where(lambda s: s > 0))
    has_f = logf.notna()
    bins = pd.Series(-1, index=vocab)
    if has_f.sum() >= n_bins:
        bins[has_f] = pd.qcut(logf[has_f], n_bins, labels=False, duplicates="drop").astype(int)
    rng = np.random.default_rng(seed)
    rows = []
    for (model, prompt_id), sel in words.groupby(["model", "prompt_id"], sort=True):
        rank = sel.set_index("word")["score"].rank(method="average", ascending=False)  # 1 = top
        pct = (len(rank) - rank) / max(len(rank) - 1, 1)  # 0 = lowest, 1 = highest
        pool = pct[~pct.index.isin(identity)]
        pool_bins = bins.reindex(pool.index)
        found = []
        for term, category in terms[["term", "category"]].itertuples(index=False):
            key = term.lower()
            if key not in pct.index:
                continue
            b = bins.get(key, -1)
            candidates = pool[pool_bins == b] if b >= 0 else pool
            matched = b >= 0 and len(candidates) >= 20
            if not matched:
                candidates = pool
            if candidates.empty:
                continue
            null = rng.choice(candidates.to_numpy(), size=n_null, replace=True)
            obs = float(pct[key])
            lo = (1 + (null <= obs).sum()) / (n_null + 1)
            hi = (1 + (null >= obs).sum()) / (n_null + 1)
            found.append((model, prompt_id, term, category, float(rank[key]), obs, float(np.median(null)),
                          float(np.quantile(null, 0.025)), float(np.quantile(null, 0.975)),
                          min(1.0, 2 * min(lo, hi)), bool(matched), len(pct)))
        if found:
            block = pd.DataFrame(found, columns=["model", "prompt_id", "term", "category", "rank", "percentile",
                                                 "null_median", "null_low", "null_high", "p",
                                                 "matched", "n_words"])
            block["p_adj"] = false_discovery_control(block["p"].to_numpy())
            block["flag"] = np.where(block["p_adj"] < alpha,
                                     np.where(block["percentile"] > block["null_median"], "high", "low"), "")
            rows.append(block)
    if not rows:
        raise AnalysisError("no identity term is among the runs' candidates (after normalisation); "
                            "identity ranks need full-vocabulary or broad runs.")
    return pd.concat(rows, ignore_index=True)
