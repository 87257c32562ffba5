"""Implicit reward models between two language models: metrics on log-probs, cross-tokenizer joins.

For two next-token distributions over the same prompt, p = π₁(·|x) and q = π₂(·|x), every metric
scores a token by how much more q likes it than p (positive = preferred by q):

- ``log_ratio``: r = log q − log p, the implicit reward up to c(x) and β;
- ``mwlr``: ½(p + q)(log q − log p), the paper's mixture-weighted log ratio. Summed over a shared
  vocabulary it equals ½[KL(q‖p) − KL(p‖q)];
- ``clip<c>`` (c ∈ {5, 10, 12, 15, 20, 30}): max(log q, −c) − max(log p, −c), the floor-clipped log
  ratio the authors compared;
- ``prob_diff``: q − p; ``ratio``: q / p; ``odds_ratio``: [q/(1−q)] / [p/(1−p)]. The last two are
  computed on probabilities — the authors' exploratory code divided log-probs, which is wrong.

Two models with different tokenizers are compared after an explicit join (:func:`join_vocabularies`):
by exact decoded string (duplicate strings resolved by the max log-prob, as the paper) or by the
paper's normalised form with mean / max / logsumexp aggregation; the join reports how many tokens each
side loses. Only numpy and pandas are needed here.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from rmvalues.errors import AnalysisError, InputError
from rmvalues.finite import finite_rows
from rmvalues.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from rmvalues.store.logprob_runs import LogprobRun

JoinPolicy = Literal["exact", "normalized"]
Aggregate = Literal["max", "mean", "logsumexp"]

#: Floors c of the clipped log ratio that the authors compared.
CLIP_FLOORS: tuple[int, ...] = (5, 10, 12, 15, 20, 30)

# --- metrics ----------------------------------------------------------------------------------------


def _arrays(logp, logq) -> tuple[np.ndarray, np.ndarray]:
    lp = np.asarray(logp, dtype=np.float64)
    lq = np.asarray(logq, dtype=np.float64)
    if lp.shape != lq.shape:
        raise InputError(f"log-prob arrays differ in shape: {lp.shape} vs {lq.shape}; join them first")
    return lp, lq


def log_ratio(logp, logq) -> np.ndarray:
    """r = log q − log p."""
    lp, lq = _arrays(logp, logq)
    with np.errstate(invalid="ignore"):
        return lq - lp


def mwlr(logp, logq) -> np.ndarray:
    """½(p + q)(log q − log p); 0 where both probabilities are 0."""
    lp, lq = _arrays(logp, logq)
    weight = 0.5 * (np.exp(lp) + np.exp(lq))
    with np.errstate(invalid="ignore"):
        out = weight * (lq - lp)
    return np.where(weight == 0.0, 0.0, out)


def clipped_log_ratio(logp, logq, c: float) -> np.ndarray:
    """max(log q, −c) − max(log p, −c): a log ratio blind to differences below probability e^−c."""
    if not c > 0:
        raise InputError(f"clip floor c must be positive, got {c}")
    lp, lq = _arrays(logp, logq)
    return np.maximum(lq, -c) - np.maximum(lp, -c)


def prob_difference(logp, logq) -> np.ndarray:
    """q − p."""
    lp, lq = _arrays(logp, logq)
    return np.exp(lq) - np.exp(lp)


def prob_ratio(logp, logq) -> np.ndarray:
    """q / p on probabilities (computed as exp(log q − log p), which is the same number)."""
    lp, lq = _arrays(logp, logq)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.exp(lq - lp)


def _log_odds(lp: np.ndarray) -> np.ndarray:
    # log(p / (1 − p)) = log p − log(1 − p); -expm1(log p) is 1 − p without cancellation near p = 1.
    with np.errstate(divide="ignore"):
        return lp - np.log(-np.expm1(lp))


def odds_ratio(logp, logq) -> np.ndarray:
    """[q/(1−q)] / [p/(1−p)] on probabilities."""
    lp, lq = _arrays(logp, logq)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.exp(_log_odds(lq) - _log_odds(lp))


#: The implicit-reward metrics by name, as ``f(logp, logq) -> scores``, in the tables' order.
METRIC_FUNCTIONS: Registry[Callable[[np.ndarray, np.ndarray], np.ndarray]] = Registry(
    "implicit-reward metric", hint="clip<c> accepts any positive floor c")
METRIC_FUNCTIONS.register("mwlr", mwlr)
METRIC_FUNCTIONS.register("log_ratio", log_ratio)
for _c in CLIP_FLOORS:
    METRIC_FUNCTIONS.register(f"clip{_c}", functools.partial(clipped_log_ratio, c=float(_c)))
METRIC_FUNCTIONS.register("prob_diff", prob_difference)
METRIC_FUNCTIONS.register("ratio", prob_ratio)
METRIC_FUNCTIONS.register("odds_ratio", odds_ratio)
#: Every registered metric name (:func:`get_metric` also accepts ``clip<c>`` for any c > 0).
METRICS: tuple[str, ...] = METRIC_FUNCTIONS.names()
_CLIP = re.compile(r"^clip(\d+(?:\.\d+)?)$")


def get_metric(name: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The metric ``name`` as ``f(logp, logq) -> scores``; ``clip<c>`` accepts any positive c."""
    m = _CLIP.match(name)
    if m and name not in METRIC_FUNCTIONS:
        return functools.partial(clipped_log_ratio, c=float(m.group(1)))
    return METRIC_FUNCTIONS.get(name)


def compute_metric(name: str, logp, logq) -> np.ndarray:
    """Scores of metric ``name`` for aligned log-prob arrays (positive = preferred by q)."""
    return get_metric(name)(logp, logq)


def reference_metric(name: str, logp: float, logq: float) -> float:
    """Obviously-correct scalar path: each metric written out on probabilities with :mod:`math`."""
    p, q = math.exp(logp), math.exp(logq)
    if name == "log_ratio":
        return logq - logp
    if name == "mwlr":
        return 0.5 * (p + q) * (logq - logp)
    if name == "prob_diff":
        return q - p
    if name == "ratio":
        return q / p
    if name == "odds_ratio":
        return (q / (1 - q)) / (p / (1 - p))
    m = _CLIP.match(name)
    if m:
        c = float(m.group(1))
        return max(logq, -c) - max(logp, -c)
    raise InputError(f"unknown implicit-reward metric {name!r}")


# --- distributions ----------------------------------------------------------------------------------


def logsumexp(x, axis: int = -1) -> np.ndarray:
    """log Σ exp(x) along ``axis``, stable; −inf for an all −inf slice."""
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(x - m), axis=axis))


def renormalize(logp, axis: int = -1) -> np.ndarray:
    """Log-probs renormalised to sum to one along ``axis`` (over the tokens present)."""
    x = np.asarray(logp, dtype=np.float64)
    return x - np.expand_dims(logsumexp(x, axis=axis), axis)


def kl_divergence(logp, logq) -> float:
    """KL(p‖q) = Σ p (log p − log q) for aligned log-prob vectors (terms with p = 0 are 0)."""
    lp, lq = _arrays(logp, logq)
    p = np.exp(lp)
    with np.errstate(invalid="ignore"):
        terms = p * (lp - lq)
    return float(np.sum(np.where(p == 0.0, 0.0, terms)))


# --- cross-tokenizer joins --------------------------------------------------------------------------

_DEFAULT_AGGREGATE: dict[str, Aggregate] = {"exact": "max", "normalized": "logsumexp"}
_AGGREGATES = ("max", "mean", "logsumexp")


@dataclass(frozen=True)
class JoinReport:
    """What a cross-tokenizer join kept and lost, per side.

    ``*_tokens``: vocabulary size; ``*_keys``: distinct join keys (empty keys never join);
    ``shared_keys``: keys on both sides (the joint vocabulary); ``*_tokens_lost``: tokens whose key
    is missing on the other side or empty; ``*_tokens_merged``: kept tokens folded into another
    token's key (duplicates / variants) by the aggregation.
    """

    policy: str
    aggregate: str
    p_tokens: int
    q_tokens: int
    p_keys: int
    q_keys: int
    shared_keys: int
    p_tokens_lost: int
    q_tokens_lost: int
    p_tokens_merged: int
    q_tokens_merged: int

    def to_dict(self) -> dict[str, int | str]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"join by {self.policy} ({self.aggregate}): {self.shared_keys:,} shared keys; "
            f"p loses {self.p_tokens_lost:,} of {self.p_tokens:,} tokens "
            f"(+{self.p_tokens_merged:,} merged), q loses {self.q_tokens_lost:,} of "
            f"{self.q_tokens:,} (+{self.q_tokens_merged:,} merged)"
        )


@dataclass(frozen=True)
class _Side:
    order: np.ndarray  # token ids sorted by shared-key index (only tokens that join)
    starts: np.ndarray  # start offset of each shared key's group within ``order``
    counts: np.ndarray


@dataclass(frozen=True)
class VocabularyJoin:
    """A join of two vocabularies: shared keys and how each side's tokens fold onto them."""

    keys: tuple[str, ...]
    report: JoinReport
    _p: _Side
    _q: _Side

    def apply(self, logp, logq) -> tuple[np.ndarray, np.ndarray]:
        """Aggregate log-prob arrays (…, vocab) of each side onto the shared keys (…, n_keys)."""
        return (_aggregate(np.asarray(logp), self._p, self.report.aggregate),
                _aggregate(np.asarray(logq), self._q, self.report.aggregate))


def _keys_for(tokens: Sequence[str], policy: str) -> list[str]:
    if policy == "exact":
        return list(tokens)
    if policy == "normalized":
        from rmvalues.lexicons import paper_normalize

        return [paper_normalize(t) for t in tokens]
    raise InputError(f"unknown join policy {policy!r}; choose 'exact' or 'normalized'.")


def _side(keys: Sequence[str], index: Mapping[str, int]) -> tuple[_Side, int, int]:
    """Group token ids by shared-key index; returns the grouping, tokens lost, tokens kept."""
    key_idx = np.fromiter((index.get(k, -1) if k else -1 for k in keys), dtype=np.int64,
                          count=len(keys))
    kept = np.flatnonzero(key_idx >= 0)
    order = kept[np.argsort(key_idx[kept], kind="stable")]
    counts = np.bincount(key_idx[kept], minlength=len(index))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return _Side(order=order, starts=starts, counts=counts), len(keys) - len(kept), len(kept)


def _aggregate(x: np.ndarray, side: _Side, how: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if len(side.counts) == 0:
        return np.empty(x.shape[:-1] + (0,))
    vals = x[..., side.order]
    if how == "max":
        return np.maximum.reduceat(vals, side.starts, axis=-1)
    if how == "mean":
        return np.add.reduceat(vals, side.starts, axis=-1) / side.counts
    if how == "logsumexp":
        m = np.maximum.reduceat(vals, side.starts, axis=-1)
        m = np.where(np.isfinite(m), m, 0.0)
        shifted = np.exp(vals - np.repeat(m, side.counts, axis=-1))
        with np.errstate(divide="ignore"):
            return m + np.log(np.add.reduceat(shifted, side.starts, axis=-1))
    raise InputError(f"unknown aggregation {how!r}; choose one of {', '.join(_AGGREGATES)}.")


def join_vocabularies(
    p_tokens: Sequence[str],
    q_tokens: Sequence[str],
    *,
    policy: JoinPolicy = "exact",
    aggregate: Aggregate | None = None,
) -> VocabularyJoin:
    """Join two decoded vocabularies (index = token id) by ``policy``.

    ``exact``: tokens match when their decoded strings are identical (leading spaces kept); several
    ids decoding to the same string are folded with ``aggregate`` (default ``max``: the paper keeps
    the duplicate with the highest log-prob). ``normalized``: tokens match by the paper's normalised
    form (ASCII, stripped, lower-case); variants are folded with ``aggregate`` (default
    ``logsumexp``: the probability of the word in any surface form; ``max`` / ``mean`` also allowed).
    Empty strings/forms never join.
    """
    aggregate = aggregate or _DEFAULT_AGGREGATE.get(policy, "max")
    if aggregate not in _AGGREGATES:
        raise InputError(f"unknown aggregation {aggregate!r}; choose one of {', '.join(_AGGREGATES)}.")
    p_keys = _keys_for(p_tokens, policy)
    q_keys = _keys_for(q_tokens, policy)
    p_set = {k for k in p_keys if k}
    q_set = {k for k in q_keys if k}
    shared = sorted(p_set & q_set)
    index = {k: i for i, k in enumerate(shared)}
    p_side, p_lost, p_kept = _side(p_keys, index)
    q_side, q_lost, q_kept = _side(q_keys, index)
    report = JoinReport(
        policy=policy, aggregate=aggregate, p_tokens=len(p_keys), q_tokens=len(q_keys),
        p_keys=len(p_set), q_keys=len(q_set), shared_keys=len(shared),
        p_tokens_lost=p_lost, q_tokens_lost=q_lost,
        p_tokens_merged=p_kept - len(shared), q_tokens_merged=q_kept - len(shared),
    )
    return VocabularyJoin(keys=tuple(shared), report=report, _p=p_side, _q=q_side)


def reference_join(
    p_tokens: Sequence[str], q_tokens: Sequence[str], logp, logq, *, policy: JoinPolicy = "exact",
    aggregate: Aggregate | None = None,
) -> pd.DataFrame:
    """Slow pandas path of a join for one prompt: ``key, logp, logq`` (tests hold it equal)."""
    import pandas as pd

    aggregate = aggregate or _DEFAULT_AGGREGATE[policy]

    def fold(tokens, values):
        frame = pd.DataFrame({"key": _keys_for(tokens, policy), "v": np.asarray(values, float)})
        frame = frame[frame["key"] != ""]
        g = frame.groupby("key")["v"]
        if aggregate == "logsumexp":
            return g.apply(lambda v: float(logsumexp(v.to_numpy())))
        return g.agg(aggregate)

    left, right = fold(p_tokens, logp), fold(q_tokens, logq)
    out = pd.concat([left.rename("logp"), right.rename("logq")], axis=1, join="inner")
    return out.sort_index().reset_index().rename(columns={"index": "key"})


# --- implicit rewards between two runs --------------------------------------------------------------


def check_same_prompts(p, q) -> list[str]:
    """The shared prompt ids of two runs, in p's order; a clear error when the prompt sets differ."""
    p_ids, q_ids = list(p.prompt_ids), list(q.prompt_ids)
    if set(p_ids) != set(q_ids):
        only_p = sorted(set(p_ids) - set(q_ids))
        only_q = sorted(set(q_ids) - set(p_ids))
        raise InputError(
            f"runs {p.model!r} and {q.model!r} cover different prompts "
            f"(only in p: {only_p[:5]}{'…' if len(only_p) > 5 else ''}; only in q: "
            f"{only_q[:5]}{'…' if len(only_q) > 5 else ''}); compute both log-prob runs on the same "
            "prompt set, or pass --prompts with ids both runs contain."
        )
    return p_ids


@dataclass(frozen=True)
class ImplicitResult:
    """Implicit-reward scores of one model pair: a long table and the join that produced it."""

    p_model: str
    q_model: str
    metric: str
    join: VocabularyJoin
    table: pd.DataFrame  # prompt_id, key, logp, logq, score
    nonfinite_dropped: int = 0  # (prompt, key) rows left out for a NaN/inf score

    @property
    def report(self) -> JoinReport:
        return self.join.report


def implicit_rewards(
    p,
    q,
    *,
    metric: str = "mwlr",
    join: JoinPolicy = "exact",
    aggregate: Aggregate | None = None,
    renormalize_shared: bool = False,
    prompt_ids: Iterable[str] | None = None,
    drop_nonfinite: bool = False,
) -> ImplicitResult:
    """Implicit reward of q over p for every shared token and prompt (positive = preferred by q).

    An empty join, or a NaN/inf score (unless ``drop_nonfinite`` leaves those rows out), is refused.

    ``p`` and ``q`` are :class:`~rmvalues.store.logprob_runs.LogprobRun` objects or long log-prob
    tables (the results schema). With ``renormalize_shared`` both distributions are renormalised over
    the joint vocabulary first, so they are proper distributions on the same support.
    """
    import pandas as pd

    p, q = _run_from(p), _run_from(q)
    shared = check_same_prompts(p, q)
    if prompt_ids is not None:
        wanted = list(prompt_ids)
        missing = [i for i in wanted if i not in set(shared)]
        if missing:
            raise InputError(f"prompt id(s) {missing[:5]} are not in the runs; choose from {shared[:5]}…")
        shared = wanted
    fn = get_metric(metric)
    vj = join_vocabularies(p.tokens, q.tokens, policy=join, aggregate=aggregate)
    if not vj.keys:
        raise AnalysisError(
            f"empty join: the runs of {p.model!r} and {q.model!r} have no token string in common "
            f"under the {join!r} join, so there is nothing to compare. Try --join normalized, or "
            "check that both runs hold decoded vocabularies.")
    lp, lq = vj.apply(p.matrix(shared), q.matrix(shared))
    if renormalize_shared:
        lp, lq = renormalize(lp), renormalize(lq)
    scores = fn(lp, lq)
    n = len(vj.keys)
    table = pd.DataFrame({
        "prompt_id": pd.Categorical(np.repeat(shared, n), categories=shared),
        "key": np.tile(np.asarray(vj.keys, dtype=object), len(shared)),
        "logp": lp.ravel(),
        "logq": lq.ravel(),
        "score": scores.ravel(),
    })
    keep = finite_rows(table["score"], what=f"{metric} of {q.model} over {p.model}",
                       label=lambda i: f"prompt {table['prompt_id'].iat[i]!r} token "
                                       f"{table['key'].iat[i]!r}",
                       drop=drop_nonfinite, error=AnalysisError,
                       fix="A log-prob run holds NaN/inf (a model with broken weights); recompute "
                           "it with `rmvalues logprobs`.")
    dropped = int((~keep).sum())
    if dropped == len(table):
        raise AnalysisError(f"{metric} of {q.model} over {p.model} is non-finite for every row; "
                            "nothing is left to write. Recompute the log-prob runs.")
    if dropped:
        table = table[keep].reset_index(drop=True)
    return ImplicitResult(p_model=p.model, q_model=q.model, metric=metric, join=vj, table=table,
                          nonfinite_dropped=dropped)


# --- tables -----------------------------------------------------------------------------------------

_FORMAT_CHARS = set("`*_#~|>-=+[](){}<>!\"'.,:;?/\\^$%&@")


def is_formatting_token(token: str) -> bool:
    """True for whitespace, Markdown and punctuation-only tokens (and the empty string)."""
    for ch in token:
        if ch.isspace() or ch in _FORMAT_CHARS:
            continue
        cat = unicodedata.category(ch)
        if cat[0] in ("P", "Z") or cat in ("Cc", "Cf"):
            continue
        return False
    return True


def top_bottom(
    table: pd.DataFrame,
    k: int = 15,
    *,
    prompt_id: str | None = None,
    drop_formatting: bool = False,
    key: str = "key",
    score: str = "score",
) -> pd.DataFrame:
    """Top-k and bottom-k tokens by score (Table 1): ``side, rank, key, score, n``.

    With ``prompt_id`` one prompt's scores are ranked (as the paper's Table 1); otherwise the mean
    over prompts. ``rank`` is the position among all ranked tokens (1 = highest), so bottom ranks
    end at the total count ``n``. ``drop_formatting`` removes whitespace/Markdown/punctuation tokens.
    """
    import pandas as pd

    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    frame = table
    if prompt_id is not None:
        frame = frame[frame["prompt_id"] == prompt_id]
        if frame.empty:
            raise InputError(f"prompt {prompt_id!r} is not in the table")
        agg = frame[[key, score]].set_index(key)[score]
    else:
        agg = frame.groupby(key, observed=True, sort=False)[score].mean()
    if drop_formatting:
        agg = agg[[not is_formatting_token(t) for t in agg.index]]
    ranked = agg.sort_values(ascending=False, kind="stable")
    n = len(ranked)
    top = ranked.head(k)
    bottom = ranked.tail(min(k, max(n - len(top), 0)))
    out = pd.concat([
        pd.DataFrame({"side": "top", "rank": np.arange(1, len(top) + 1), key: top.index,
                      score: top.to_numpy()}),
        pd.DataFrame({"side": "bottom", "rank": np.arange(n - len(bottom) + 1, n + 1),
                      key: bottom.index, score: bottom.to_numpy()}),
    ], ignore_index=True)
    out["n"] = n
    return out


def target_scores(
    p_runs: Mapping[str, object] | Sequence[object],
    q_runs: Mapping[str, object] | Sequence[object],
    targets: Sequence[str] = ("Freedom", "Love"),
    *,
    metric: str = "mwlr",
    prompt_ids: Iterable[str] | None = None,
    common_vocabulary: Literal["all", "pair"] = "all",
) -> pd.DataFrame:
    """Per-target scores for every (p, q) pair of two model lists (Fig 3): q's preference over p.

    Tokens are joined by exact decoded string (duplicates by max log-prob). With
    ``common_vocabulary="all"`` (the paper) only strings present in every model are kept; ``"pair"``
    keeps each pair's own intersection. A target's score is the mean metric over joined tokens whose
    ``strip().lower()`` equals the target's lower-case form (e.g. "Love", " love", "LOVE").
    Returns ``p_model, q_model, prompt_id, target, score, n_variants``.
    """
    import pandas as pd

    p_list = [_run_from(r) for r in (p_runs.values() if isinstance(p_runs, Mapping) else p_runs)]
    q_list = [_run_from(r) for r in (q_runs.values() if isinstance(q_runs, Mapping) else q_runs)]
    if not p_list or not q_list:
        raise InputError("target_scores needs at least one model on each side")
    everyone = p_list + q_list
    for other in everyone[1:]:
        check_same_prompts(everyone[0], other)
    shared_prompts = list(prompt_ids) if prompt_ids is not None else list(everyone[0].prompt_ids)
    common: set[str] | None = None
    if common_vocabulary == "all":
        for run in everyone:
            strings = set(run.tokens)
            common = strings if common is None else common & strings
    fn = get_metric(metric)
    wanted = {t: t.strip().lower() for t in targets}
    rows = []
    for p in p_list:
        for q in q_list:
            vj = join_vocabularies(p.tokens, q.tokens, policy="exact", aggregate="max")
            keys = np.asarray(vj.keys, dtype=object)
            keep = np.ones(len(keys), bool) if common is None else np.fromiter(
                (k in common for k in keys), bool, count=len(keys))
            folded = np.array([k.strip().lower() for k in keys], dtype=object)
            lp, lq = vj.apply(p.matrix(shared_prompts), q.matrix(shared_prompts))
            scores = fn(lp, lq)
            for target, low in wanted.items():
                mask = keep & (folded == low)
                n = int(mask.sum())
                vals = scores[:, mask].mean(axis=1) if n else np.full(len(shared_prompts), np.nan)
                for pid, v in zip(shared_prompts, vals):
                    rows.append((p.model, q.model, pid, target, float(v), n))
    return pd.DataFrame(rows, columns=["p_model", "q_model", "prompt_id", "target", "score",
                                       "n_variants"])


# --- the pipeline step: stored runs in, tables out ----------------------------------------------


def _run_from(source) -> LogprobRun:
    """A run object as is, a stored run (its directory or logprobs.parquet) read from disk, or a
    run's long frame."""
    from pathlib import Path

    from rmvalues.errors import StoreError
    from rmvalues.store.logprob_runs import LogprobRun, load_run

    if isinstance(source, LogprobRun):
        return source
    if not isinstance(source, (str, Path)):
        return LogprobRun.from_frame(source)
    path = Path(source)
    if not path.exists():
        raise StoreError(
            f"{source!r} is not a stored log-prob run; compute it first with `rmvalues logprobs "
            f"--model {source} --kind pretrained|instruct --out DIR` and pass DIR."
        )
    return load_run(path)


def _prompt_selection(prompts, shared: Sequence[str]) -> list[str] | None:
    """Prompt ids chosen by ``prompts``: None (all), ids, a comma list, or a prompt-set name."""
    if prompts is None:
        return None
    if isinstance(prompts, str):
        if "," in prompts or prompts in set(shared):
            return [p.strip() for p in prompts.split(",") if p.strip()]
        from rmvalues.prompts import load_prompt_set

        return load_prompt_set(prompts).ids
    if hasattr(prompts, "ids"):
        return list(prompts.ids)
    return [str(p) for p in prompts]


def write_implicit(
    p,
    q,
    out_dir,
    *,
    metric: str = "mwlr",
    join: JoinPolicy = "exact",
    aggregate: Aggregate | None = None,
    renormalize_shared: bool = False,
    prompts=None,
    k: int = 15,
    table1_prompt: str | None = "greatest_ever_one",
    drop_formatting: bool = False,
    targets: Sequence[str] = ("Freedom", "Love"),
    drop_nonfinite: bool = False,
) -> ImplicitResult:
    """Implicit rewards of q over p from two stored runs (no model is loaded), written to ``out_dir``:

    ``<metric>.parquet`` (prompt_id, key, logp, logq, score), ``top_bottom.csv`` (Table 1, on
    ``table1_prompt`` when the runs have it, else the mean over prompts), ``target_scores.csv``
    (Fig 3 rows for this pair), ``join.json`` (what the join kept and lost) and ``manifest.json``.
    """
    import json

    from rmvalues.io import staged_folder
    from rmvalues.store.manifest import build_manifest, write_manifest

    p_run, q_run = _run_from(p), _run_from(q)
    shared = check_same_prompts(p_run, q_run)
    chosen = _prompt_selection(prompts, shared)
    res = implicit_rewards(p_run, q_run, metric=metric, join=join, aggregate=aggregate,
                           renormalize_shared=renormalize_shared, prompt_ids=chosen,
                           drop_nonfinite=drop_nonfinite)
    ids = chosen or shared
    t1 = table1_prompt if table1_prompt in set(ids) else None
    tables = {
        # The pair's models as columns, so a report over several pairs draws a Table 1 for each.
        "top_bottom": top_bottom(res.table, k, prompt_id=t1, drop_formatting=drop_formatting)
        .assign(p_model=p_run.model, q_model=q_run.model),
        "target_scores": target_scores([p_run], [q_run], targets, metric=metric, prompt_ids=ids,
                                       common_vocabulary="pair"),
    }
    # Written into a staged folder swapped in whole: the folder never mixes two runs.
    with staged_folder(out_dir, "implicit-rewards") as out:
        res.table.to_parquet(out / f"{metric}.parquet", index=False)
        for name, frame in tables.items():
            frame.to_csv(out / f"{name}.csv", index=False)
        (out / "join.json").write_text(json.dumps(res.report.to_dict(), indent=2) + "\n", "utf-8")
        write_manifest(out / "manifest.json", build_manifest(
            "implicit-rewards", p=p_run.model, q=q_run.model, metric=metric,
            join=res.report.to_dict(), renormalize_shared=renormalize_shared, prompt_ids=ids,
            table1_prompt=t1, k=k, drop_formatting=drop_formatting, targets=list(targets),
            nonfinite_rows_dropped=res.nonfinite_dropped, p_meta=p_run.meta, q_meta=q_run.meta))
    return res
