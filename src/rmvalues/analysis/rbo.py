"""Rank-biased overlap (Webber, Moffat & Zobel 2010, "A similarity measure for indefinite rankings",
ACM TOIS 28(4)), tie-aware, for rankings evaluated to a common depth ``k``.

A ranking is a sequence of tie groups (sets of items sharing one rank). Ties follow the paper's
Section 4.3: at depth ``d`` the prefix holds every item whose tie group *starts* at a position
``<= d`` (so a prefix may exceed ``d`` items), and the agreement is
``A_d = 2 X_d / (|S_:d| + |T_:d|)`` (Eq. 28), which is ``X_d / d`` without ties.

* :func:`rbo_ext` — the extrapolated point estimate, Eq. 30 with ``A_d``:
  ``A_k p^k + (1 - p)/p * sum_{d=1..k} A_d p^d``; 1 for identical rankings.
* :func:`rbo_min` — the truncated sum ``(1 - p)/p * sum_{d<=k} A_d p^d`` (the part of RBO
  determined by the first ``k`` ranks; what the FAccT code reports).

The PyPI package ``rbo`` (0.1.3) was checked and not used: it takes flat lists only, so tied scores
cannot be given as ties, and it prints through tqdm. :func:`reference_rbo_ext` is the
obviously-correct set-by-set form the fast path is tested against.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

Ranking = Sequence[Iterable[Hashable]]


def groups_from_scores(items: Sequence[Hashable], scores: np.ndarray, *, descending: bool = True,
                       depth: int | None = None) -> list[list[Hashable]]:
    """Items ordered by score as tie groups (equal scores share a group), cut after ``depth`` items
    (a tie group straddling the cut is kept whole)."""
    import numpy as np

    values = np.asarray(scores, dtype=float)
    order = np.argsort(-values if descending else values, kind="stable")
    groups: list[list[Hashable]] = []
    last = None
    for taken, i in enumerate(order):
        if last is None or values[i] != last:
            if depth is not None and taken >= depth:
                break
            groups.append([])
            last = values[i]
        groups[-1].append(items[i])
    return groups


def _starts(ranking: Ranking) -> list[tuple[int, list[Hashable]]]:
    """(1-based start position, items) of each tie group."""
    out, pos = [], 1
    for group in ranking:
        items = list(group)
        if not items:
            continue
        out.append((pos, items))
        pos += len(items)
    return out


def agreements(s: Ranking, t: Ranking, k: int) -> list[float]:
    """``A_1..A_k`` (Eq. 28), incrementally: each group enters the prefix at its start depth."""
    s_groups, t_groups = _starts(s), _starts(t)
    seen_s: set[Hashable] = set()
    seen_t: set[Hashable] = set()
    overlap = 0
    i = j = 0
    out = []

    def admit(groups, at: int, d: int, own: set[Hashable], other: set[Hashable]) -> tuple[int, int]:
        """Add the groups starting at depth <= d to ``own``; (next group, overlap gained)."""
        gained = 0
        while at < len(groups) and groups[at][0] <= d:
            for item in groups[at][1]:
                if item not in own:
                    own.add(item)
                    gained += item in other
            at += 1
        return at, gained

    for d in range(1, k + 1):
        i, gained_s = admit(s_groups, i, d, seen_s, seen_t)
        j, gained_t = admit(t_groups, j, d, seen_t, seen_s)
        overlap += gained_s + gained_t
        size = len(seen_s) + len(seen_t)
        out.append(2.0 * overlap / size if size else 0.0)
    return out


def _depth(s: Ranking, t: Ranking, k: int | None) -> int:
    n = min(sum(len(list(g)) for g in s), sum(len(list(g)) for g in t))
    if n == 0:
        raise ValueError("RBO needs two non-empty rankings")
    return n if k is None else min(k, n)


def _check_p(p: float) -> None:
    if not 0.0 < p < 1.0:
        raise ValueError(f"RBO persistence p must be in (0, 1), got {p}")


def _weighted(s: Ranking, t: Ranking, p: float, k: int | None) -> tuple[list[float], float]:
    """``A_1..A_k`` and the truncated sum ``(1 - p)/p * sum_d A_d p^d``."""
    _check_p(p)
    a = agreements(s, t, _depth(s, t, k))
    return a, (1 - p) / p * sum(ad * p**d for d, ad in enumerate(a, start=1))


def rbo_ext(s: Ranking, t: Ranking, p: float = 0.9, k: int | None = None) -> float:
    """Extrapolated RBO (Eq. 30, tie-aware) of two rankings given as tie groups, at depth ``k``
    (default: the shorter ranking's length)."""
    a, truncated = _weighted(s, t, p, k)
    return a[-1] * p ** len(a) + truncated


def rbo_min(s: Ranking, t: Ranking, p: float = 0.9, k: int | None = None) -> float:
    """RBO truncated at depth ``k``: ``(1 - p) * sum_{d<=k} p^(d-1) A_d``."""
    return _weighted(s, t, p, k)[1]


def reference_rbo_ext(s: Ranking, t: Ranking, p: float = 0.9, k: int | None = None) -> float:
    """Eq. 30 computed set by set: rebuild both prefixes at every depth (slow, obviously right)."""
    k = _depth(s, t, k)
    s_groups, t_groups = _starts(s), _starts(t)

    def prefix(groups: list[tuple[int, list[Hashable]]], d: int) -> set[Hashable]:
        return {item for start, items in groups if start <= d for item in items}

    a = []
    for d in range(1, k + 1):
        ps, pt = prefix(s_groups, d), prefix(t_groups, d)
        a.append(2 * len(ps & pt) / (len(ps) + len(pt)))
    return a[-1] * p**k + (1 - p) / p * sum(a[d - 1] * p**d for d in range(1, k + 1))
