"""Implicit-reward metrics, cross-tokenizer joins and tables (pure numpy/pandas, plus real tokenizers)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmvalues.errors import InputError
from rmvalues.implicit import (
    METRICS,
    compute_metric,
    implicit_rewards,
    is_formatting_token,
    join_vocabularies,
    kl_divergence,
    mwlr,
    reference_join,
    reference_metric,
    renormalize,
    target_scores,
    top_bottom,
)
from rmvalues.lexicons import paper_normalize
from rmvalues.store.logprob_runs import LogprobRun

LP = np.log(np.array([0.2, 0.5, 0.3]))
LQ = np.log(np.array([0.5, 0.25, 0.25]))


# --- metrics: hand-computed values ------------------------------------------------------------------


def test_log_ratio_hand_values():
    np.testing.assert_allclose(compute_metric("log_ratio", LP, LQ),
                               [math.log(2.5), math.log(0.5), math.log(0.25 / 0.3)])


def test_mwlr_hand_values():
    # ½(0.2 + 0.5)·log(0.5/0.2) = 0.35·0.916291 = 0.320702
    np.testing.assert_allclose(compute_metric("mwlr", LP, LQ)[0], 0.35 * math.log(2.5))
    np.testing.assert_allclose(compute_metric("mwlr", LP, LQ)[1], 0.375 * math.log(0.5))
    assert compute_metric("mwlr", [-np.inf], [-np.inf])[0] == 0.0


def test_clipped_log_ratio_hand_values():
    # log q = -3 vs log p = -12: with c = 10, max(-3,-10) - max(-12,-10) = 7; with c = 5 it is 2.
    assert compute_metric("clip10", [-12.0], [-3.0])[0] == pytest.approx(7.0)
    assert compute_metric("clip5", [-12.0], [-3.0])[0] == pytest.approx(2.0)
    assert compute_metric("clip30", [-12.0], [-3.0])[0] == pytest.approx(9.0)
    assert compute_metric("clip12", [-40.0], [-35.0])[0] == 0.0
    for c in (5, 10, 12, 15, 20, 30):
        assert f"clip{c}" in METRICS


def test_probability_difference_and_ratio_hand_values():
    np.testing.assert_allclose(compute_metric("prob_diff", LP, LQ), [0.3, -0.25, -0.05], atol=1e-12)
    np.testing.assert_allclose(compute_metric("ratio", LP, LQ), [2.5, 0.5, 0.25 / 0.3])


def test_odds_ratio_is_on_probabilities():
    # p = 0.2 (odds 0.25), q = 0.5 (odds 1) -> 4; the log-prob "ratio" log q / log p would be 0.43.
    value = compute_metric("odds_ratio", np.log([0.2]), np.log([0.5]))[0]
    assert value == pytest.approx(4.0)
    assert value != pytest.approx(math.log(0.5) / math.log(0.2))
    # p = 0.5, q = 0.25: (1/3) / 1
    assert compute_metric("odds_ratio", LP, LQ)[1] == pytest.approx(1 / 3)


def test_unknown_metric_is_a_clear_error():
    with pytest.raises(InputError, match="unknown implicit-reward metric"):
        compute_metric("kl", LP, LQ)


@given(st.lists(st.floats(-30, -1e-3), min_size=1, max_size=20),
       st.lists(st.floats(-30, -1e-3), min_size=1, max_size=20))
@settings(max_examples=50, deadline=None)
def test_every_metric_equals_its_reference(a, b):
    n = min(len(a), len(b))
    lp, lq = np.array(a[:n]), np.array(b[:n])
    for name in METRICS:
        fast = compute_metric(name, lp, lq)
        ref = [reference_metric(name, x, y) for x, y in zip(lp, lq)]
        np.testing.assert_allclose(fast, ref, rtol=1e-9, atol=1e-12, err_msg=name)


@given(st.lists(st.floats(-20, 5), min_size=2, max_size=40), st.integers(0, 2**32 - 1))
@settings(max_examples=100, deadline=None)
def test_mwlr_sums_to_half_kl_difference(raw, seed):
    """Σ_joint MWLR = ½[KL(q‖p) − KL(p‖q)] for two distributions on one support."""
    lp = renormalize(np.array(raw))
    lq = renormalize(np.random.default_rng(seed).normal(0, 3, len(raw)))
    total = float(np.sum(mwlr(lp, lq)))
    expected = 0.5 * (kl_divergence(lq, lp) - kl_divergence(lp, lq))
    assert total == pytest.approx(expected, rel=1e-9, abs=1e-12)


# --- joins ------------------------------------------------------------------------------------------

P_TOKENS = ["love", " love", "Love", "!", "freedom", "", "cat"]
Q_TOKENS = ["love", "Love", "Love", " Freedom", "dog", "!"]


def test_exact_join_resolves_duplicates_by_max_and_reports_losses():
    vj = join_vocabularies(P_TOKENS, Q_TOKENS, policy="exact")
    assert vj.keys == ("!", "Love", "love")
    r = vj.report
    assert (r.p_tokens, r.q_tokens, r.shared_keys) == (7, 6, 3)
    assert r.p_tokens_lost == 4  # " love", "freedom", "", "cat"
    assert r.q_tokens_lost == 2  # " Freedom", "dog"
    assert r.q_tokens_merged == 1  # the second "Love"
    lq = np.log([0.1, 0.2, 0.3, 0.1, 0.2, 0.1])
    lp = np.log([0.3, 0.1, 0.1, 0.2, 0.1, 0.1, 0.1])
    a, b = vj.apply(lp, lq)
    np.testing.assert_allclose(b, np.log([0.1, 0.3, 0.1]))  # "Love" keeps max(0.2, 0.3)
    np.testing.assert_allclose(a, np.log([0.2, 0.1, 0.3]))
    ref = reference_join(P_TOKENS, Q_TOKENS, lp, lq, policy="exact")
    np.testing.assert_allclose(ref["logp"], a)
    np.testing.assert_allclose(ref["logq"], b)


@pytest.mark.parametrize("aggregate", ["max", "mean", "logsumexp"])
def test_normalized_join_aggregations(aggregate):
    lp = np.log([0.3, 0.1, 0.1, 0.2, 0.1, 0.1, 0.1])
    lq = np.log([0.1, 0.2, 0.3, 0.1, 0.2, 0.1])
    vj = join_vocabularies(P_TOKENS, Q_TOKENS, policy="normalized", aggregate=aggregate)
    assert vj.keys == ("!", "freedom", "love")
    assert vj.report.p_tokens_lost == 2  # "" and "cat"
    a, b = vj.apply(lp, lq)
    love_p = np.log([0.3, 0.1, 0.1])
    expected = {"max": love_p.max(), "mean": love_p.mean(), "logsumexp": np.log(0.5)}[aggregate]
    assert a[2] == pytest.approx(expected)
    ref = reference_join(P_TOKENS, Q_TOKENS, lp, lq, policy="normalized", aggregate=aggregate)
    np.testing.assert_allclose(ref["logp"], a)
    np.testing.assert_allclose(ref["logq"], b)
    assert list(ref["key"]) == list(vj.keys)


def test_join_policies_on_real_llama3_and_gemma2_tokenizers():
    """The decoded-string and normalised-form intersections of Llama-3 × Gemma-2 are stable."""
    from rmvalues.models.tokenizers import bundled_tokenizer, decoded_vocabulary

    llama = decoded_vocabulary(bundled_tokenizer("llama3"))
    gemma = decoded_vocabulary(bundled_tokenizer("gemma2"))
    exact = join_vocabularies(llama, gemma, policy="exact").report
    assert (exact.p_tokens, exact.q_tokens) == (128256, 256000)
    assert exact.shared_keys == 85571
    assert (exact.p_tokens_lost, exact.q_tokens_lost) == (41490, 170176)
    assert (exact.p_tokens_merged, exact.q_tokens_merged) == (1195, 253)
    norm = join_vocabularies(llama, gemma, policy="normalized").report
    assert norm.shared_keys == 40340
    assert (norm.p_keys, norm.q_keys) == (62847, 102421)
    assert (norm.p_tokens_lost, norm.q_tokens_lost) == (51818, 142704)
    # every token is either lost, the representative of a key, or merged into one
    for r in (exact, norm):
        assert r.p_tokens == r.p_tokens_lost + r.shared_keys + r.p_tokens_merged
        assert r.q_tokens == r.q_tokens_lost + r.shared_keys + r.q_tokens_merged


# --- runs, errors and tables ------------------------------------------------------------------------


def _run(model, tokens, prompts, seed):
    rng = np.random.default_rng(seed)
    lp = renormalize(rng.normal(0, 2, (len(prompts), len(tokens))))
    return LogprobRun(model=model, prompt_ids=list(prompts), token_ids=np.arange(len(tokens)),
                      tokens=list(tokens), normalized=[paper_normalize(t) for t in tokens],
                      logprobs=lp)


def test_implicit_rewards_long_table_and_frame_round_trip():
    p = _run("p", P_TOKENS, ["a", "b"], 1)
    q = _run("q", Q_TOKENS, ["a", "b"], 2)
    res = implicit_rewards(p, q, metric="mwlr")
    assert list(res.table.columns) == ["prompt_id", "key", "logp", "logq", "score"]
    assert len(res.table) == 2 * 3
    np.testing.assert_allclose(res.table["score"], mwlr(res.table["logp"], res.table["logq"]))
    again = implicit_rewards(p.to_frame(), q.to_frame(), metric="mwlr")
    np.testing.assert_allclose(again.table["score"], res.table["score"], rtol=1e-6)
    renorm = implicit_rewards(p, q, renormalize_shared=True).table
    for _, g in renorm.groupby("prompt_id", observed=True):
        assert np.exp(g["logp"]).sum() == pytest.approx(1.0)
        assert np.exp(g["logq"]).sum() == pytest.approx(1.0)
        assert g["score"].sum() == pytest.approx(
            0.5 * (kl_divergence(g["logq"], g["logp"]) - kl_divergence(g["logp"], g["logq"])))


def test_different_prompt_sets_or_missing_prompt_is_a_clear_error():
    p = _run("p", P_TOKENS, ["a", "b"], 1)
    q = _run("q", Q_TOKENS, ["a", "c"], 2)
    with pytest.raises(InputError, match="different prompts.*only in p: \\['b'\\]"):
        implicit_rewards(p, q)
    q2 = _run("q", Q_TOKENS, ["a", "b"], 2)
    with pytest.raises(InputError, match="not in the runs"):
        implicit_rewards(p, q2, prompt_ids=["a", "zzz"])
    with pytest.raises(InputError, match="no log-probs for prompt"):
        p.matrix(["zzz"])


def test_incomplete_stored_run_is_a_clear_error():
    from rmvalues.errors import StoreError

    frame = _run("p", P_TOKENS, ["a", "b"], 1).to_frame()
    with pytest.raises(StoreError, match="incomplete"):
        LogprobRun.from_frame(frame.iloc[:-1])


def test_formatting_filter():
    for tok in [" ", "\n\n", "**", "##", "-", "...", " ```", "|", "\u3002", ""]:
        assert is_formatting_token(tok), tok
    for tok in ["love", " Love", "x*", "42", "\u00e9"]:
        assert not is_formatting_token(tok), tok


def test_top_bottom_ranks_and_filter():
    table = pd.DataFrame({"prompt_id": ["a"] * 6 + ["b"] * 6,
                          "key": ["x", "y", "**", "z", " ", "w"] * 2,
                          "score": [5, 4, 9, -1, -9, 0, 5, 4, 9, -1, -9, 0]})
    tb = top_bottom(table, k=2)
    assert list(tb["key"]) == ["**", "x", "z", " "]
    assert list(tb["rank"]) == [1, 2, 5, 6]
    tb = top_bottom(table, k=2, drop_formatting=True)
    assert list(tb["key"]) == ["x", "y", "w", "z"]
    assert list(tb["rank"]) == [1, 2, 3, 4]
    assert (tb["n"] == 4).all()
    one = top_bottom(table, k=1, prompt_id="b")
    assert list(one["key"]) == ["**", " "]


def test_target_scores_mean_over_case_and_space_variants():
    toks_p = ["Love", " love", "LOVE", "freedom", "x"]
    toks_q = ["Love", " love", "LOVE", "Freedom", "x", "y"]
    p = _run("llama", toks_p, ["a"], 3)
    q1 = _run("gemma-a", toks_q, ["a"], 4)
    q2 = _run("gemma-b", toks_q, ["a"], 5)
    out = target_scores([q1, q2], [p], targets=("Freedom", "Love"))
    assert len(out) == 2 * 2
    love = out[(out.p_model == "gemma-a") & (out.target == "Love")].iloc[0]
    assert love.n_variants == 3
    expected = np.mean(mwlr(q1.logprobs[0, :3], p.logprobs[0, :3]))
    assert love.score == pytest.approx(expected)
    freedom = out[out.target == "Freedom"]
    assert freedom["score"].isna().all() and (freedom["n_variants"] == 0).all()


def test_hypothesis_is_derandomized_on_ci():
    """CI runs the property tests with a fixed seed (tests/conftest.py loads the ``ci`` profile)."""
    import os

    from hypothesis import settings as hypothesis_settings

    assert hypothesis_settings.get_profile("ci").derandomize
    if os.environ.get("CI") and not os.environ.get("HYPOTHESIS_PROFILE"):
        assert hypothesis_settings.default.derandomize
