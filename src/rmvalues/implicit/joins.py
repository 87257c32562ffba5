"""Cross-tokenizer joins: two decoded vocabularies folded onto shared keys, with what each side loses.

By exact decoded string (duplicate strings resolved by the max log-prob, as the paper) or by the
paper's normalised form with mean / max / logsumexp aggregation; :func:`reference_join` is the slow
pandas path the tests hold :func:`join_vocabularies` equal to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from rmvalues.errors import InputError
from rmvalues.implicit.metrics import logsumexp

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

JoinPolicy = Literal["exact", "normalized"]
Aggregate = Literal["max", "mean", "logsumexp"]

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
