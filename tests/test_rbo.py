"""Rank-biased overlap against Webber, Moffat & Zobel (2010) on hand-worked lists, ties included."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from rmvalues.analysis.rbo import (
    agreements,
    groups_from_scores,
    rbo_ext,
    rbo_min,
    reference_rbo_ext,
)

P = Fraction(9, 10)


def _ext(a: list[Fraction], p: Fraction = P) -> Fraction:
    """Eq. 30 by hand: A_k p^k + (1-p)/p * sum_d A_d p^d."""
    k = len(a)
    return a[-1] * p**k + (1 - p) / p * sum(ad * p ** (d + 1) for d, ad in enumerate(a))


def test_untied_lists_by_hand():
    # S = a b c d, T = b a d c: overlaps X_d = 0, 2, 2, 4, so A_d = 0, 1, 2/3, 1.
    s, t = [["a"], ["b"], ["c"], ["d"]], [["b"], ["a"], ["d"], ["c"]]
    assert agreements(s, t, 4) == pytest.approx([0, 1, 2 / 3, 1])
    expected = _ext([Fraction(0), Fraction(1), Fraction(2, 3), Fraction(1)])
    # 0.6561 + (1/9) * (0.81 + 2/3 * 0.729 + 0.6561) = 0.872999...
    assert float(expected) == pytest.approx(0.6561 + (0.81 + 0.486 + 0.6561) / 9)
    assert rbo_ext(s, t, p=0.9) == pytest.approx(float(expected), abs=1e-12)
    assert rbo_min(s, t, p=0.9) == pytest.approx(float(expected - Fraction(6561, 10000)), abs=1e-12)


def test_ties_follow_eq_28():
    # S = {a b} c (a and b tied at rank 1), T = a b c.
    # d=1: S_:1 = {a,b}, T_:1 = {a}: X = 1, A = 2*1/(2+1) = 2/3; d=2,3: A = 1.
    s, t = [["a", "b"], ["c"]], [["a"], ["b"], ["c"]]
    assert agreements(s, t, 3) == pytest.approx([2 / 3, 1, 1])
    assert rbo_ext(s, t) == pytest.approx(float(_ext([Fraction(2, 3), Fraction(1), Fraction(1)])))
    # A tie on both sides that holds the same items agrees fully.
    assert rbo_ext([["a", "b"], ["c"]], [["b", "a"], ["c"]]) == pytest.approx(1.0)


def test_identical_and_disjoint():
    s = [[x] for x in "abcdefgh"]
    assert rbo_ext(s, s, p=0.9) == pytest.approx(1.0)
    assert rbo_ext(s, [[x] for x in "ijklmnop"]) == 0.0
    with pytest.raises(ValueError):
        rbo_ext(s, s, p=1.0)


def test_fast_path_equals_reference_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(40):
        n = int(rng.integers(3, 40))
        items = [f"w{i}" for i in range(n)]
        x = rng.integers(0, 6, n).astype(float)  # coarse scores: many ties
        y = x + rng.integers(-2, 3, n)
        k = int(rng.integers(1, n + 1))
        s = groups_from_scores(items, x, depth=k)
        t = groups_from_scores(items, y, depth=k)
        assert rbo_ext(s, t, 0.9, k) == pytest.approx(reference_rbo_ext(s, t, 0.9, k), abs=1e-12)


def test_groups_from_scores_keeps_straddling_tie_whole():
    groups = groups_from_scores(["a", "b", "c", "d"], np.array([3.0, 2.0, 2.0, 1.0]), depth=2)
    assert groups == [["a"], ["b", "c"]]
    assert groups_from_scores(["a", "b", "c"], np.array([3.0, 2.0, 1.0]), descending=False) == [
        ["c"], ["b"], ["a"]]
