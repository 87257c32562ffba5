"""Statistics on small hand-checkable data: ranks, units, tests, corrections, effect sizes, mixed model."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from rmvalues.analysis import (
    MatchPolicy,
    adjust_pvalues,
    bootstrap_ci,
    cohen_d,
    d_av,
    d_rms,
    effect_size,
    fit_mixed_model,
    hedges_g,
    join_lexicon,
    median_rank_units,
    panel_tests,
    permutation_test,
    rank_items,
    stars,
    welch_test,
)
from rmvalues.analysis.effect_sizes import reference_bootstrap_ci
from rmvalues.analysis.mixed import (
    nlme_denominator_df,
    r_term_name,
    reference_sequential_f,
    wald_f_tests,
)
from rmvalues.analysis.ranks import reference_rank
from rmvalues.errors import AnalysisError, InputError


def scores_table(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["model", "prompt_id", "candidate", "score"])
    frame["normalized"] = frame["candidate"].str.strip().str.lower()
    return frame


LEX = pd.DataFrame({"term": ["kind", "strong", "warm"], "category": ["Communion", "Agency", "Communion"]})


def test_ranks_are_one_for_the_highest_and_average_ties():
    s = scores_table([("m", "p", "kind", 3.0), ("m", "p", "strong", 1.0), ("m", "p", "warm", 3.0),
                      ("m", "p", "other", 9.0)])
    ranked = rank_items(join_lexicon(s, LEX))
    got = dict(zip(ranked["item"], ranked["rank"]))
    # "other" is not in the lexicon, so it is not ranked; kind and warm tie for places 1 and 2.
    assert got == {"kind": 1.5, "warm": 1.5, "strong": 3.0}
    assert set(ranked["n_items"]) == {3}


def test_rank_items_agrees_with_the_reference_ranker():
    rng = np.random.default_rng(1)
    terms = [f"w{i}" for i in range(40)]
    lex = pd.DataFrame({"term": terms, "category": ["A"] * 20 + ["B"] * 20})
    values = rng.integers(0, 8, size=40).astype(float)  # many ties
    ranked = rank_items(join_lexicon(scores_table([("m", "p", t, v) for t, v in zip(terms, values)]), lex))
    ranked = ranked.set_index("item").loc[terms]
    assert ranked["rank"].tolist() == reference_rank(list(values))


def test_paper_match_and_variant_policies():
    s = scores_table([("m", "p", " Kind", 4.0), ("m", "p", "kind", 2.0), ("m", "p", "strong", 3.0),
                      ("m", "p", "warm", 1.0)])
    with pytest.raises(AnalysisError, match="no candidate matches a term"):  # case-sensitive
        join_lexicon(s.assign(candidate=s["candidate"].str.upper()), LEX)
    separate = rank_items(join_lexicon(s, LEX, MatchPolicy(match="paper")))
    assert sorted(separate["item"]) == [" Kind", "kind", "strong", "warm"]
    mean = rank_items(join_lexicon(s, LEX, MatchPolicy(match="paper", variants="mean")),
                      MatchPolicy(match="paper", variants="mean"))
    got = dict(zip(mean["item"], mean["score"]))
    assert got == {"kind": 3.0, "strong": 3.0, "warm": 1.0}
    assert dict(zip(mean["item"], mean["rank"]))["warm"] == 3.0


def test_rank_over_rows_counts_a_two_category_term_twice():
    lex = pd.DataFrame({"term": ["a", "a", "b"], "category": ["X", "Y", "X"]})
    s = scores_table([("m", "p", "a", 2.0), ("m", "p", "b", 1.0)])
    items = rank_items(join_lexicon(s, lex), MatchPolicy())
    rows = rank_items(join_lexicon(s, lex), MatchPolicy(rank_over="rows"))
    assert dict(zip(items["item"], items["rank"])) == {"a": 1.0, "b": 2.0}
    assert sorted(rows["rank"]) == [1.5, 1.5, 3.0]


def test_category_merge_and_selection():
    lex = pd.DataFrame({"term": ["a", "a", "b", "c"], "category": ["Care_Virtue", "Care_Vice", "Care_Vice", "Other"]})
    s = scores_table([("m", "p", t, v) for t, v in [("a", 3.0), ("b", 2.0), ("c", 1.0)]])
    joined = join_lexicon(s, lex, categories=["Care_Virtue", "Care_Vice"], merge={"Care_Virtue": "Care", "Care_Vice": "Care"})
    assert sorted(joined["item"]) == ["a", "b"] and set(joined["category"]) == {"Care"}


def test_no_match_names_the_lexicon_and_policy():
    s = scores_table([("m", "p", "zzz", 1.0)])
    with pytest.raises(AnalysisError, match="no candidate matches.*match=exact"):
        join_lexicon(s, LEX)


def test_units_take_the_median_and_attach_factors():
    rows = []
    for model in ("skywork-gemma2-27b", "grm-llama3-8b"):
        for pid in ("best_ever_one", "worst_ever_one"):
            for i, term in enumerate(["kind", "strong", "warm"]):
                rows.append((model, pid, term, float(i)))
    units = median_rank_units(rank_items(join_lexicon(scores_table(rows), LEX)))
    assert len(units) == 8
    comm = units[(units.model == "grm-llama3-8b") & (units.category == "Communion")]
    assert comm["median_rank"].tolist() == [2.0, 2.0]  # ranks of kind (3) and warm (1)
    assert set(units["base"]) == {"Gemma", "Llama"}
    assert dict(zip(units.prompt_id, units.framing.astype(str))) == {"best_ever_one": "positive",
                                                                     "worst_ever_one": "negative"}


def test_units_without_base_metadata_name_the_model():
    s = scores_table([("my-rm", "best_ever_one", "kind", 1.0), ("my-rm", "best_ever_one", "strong", 0.0)])
    with pytest.raises(AnalysisError, match="my-rm.*--model-meta"):
        median_rank_units(rank_items(join_lexicon(s, LEX)))
    units = median_rank_units(rank_items(join_lexicon(s, LEX)), model_meta={"my-rm": {"base": "Qwen"}})
    assert set(units["base"]) == {"Qwen"}


def test_effect_sizes_by_hand():
    x, y = np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0, 8.0])
    # means 2 and 5; variances 1 and 20/3; pooled = (2*1 + 3*20/3)/5 = 4.4
    assert cohen_d(x, y) == pytest.approx(-3 / math.sqrt(4.4))
    assert d_rms(x, y) == pytest.approx(-3 / math.sqrt((1 + 20 / 3) / 2))
    assert d_av(x, y) == pytest.approx(-3 / ((1 + math.sqrt(20 / 3)) / 2))  # Lakens: mean of the SDs
    assert hedges_g(x, y) == pytest.approx(-3 / math.sqrt(4.4) * (1 - 3 / (4 * 7 - 9)))
    assert effect_size(x, y, "d_rms") == pytest.approx(float(d_rms(x, y)))
    assert effect_size(x, y, "d_av") == pytest.approx(float(d_av(x, y)))


def test_bootstrap_ci_matches_reference_and_covers_the_estimate():
    rng = np.random.default_rng(0)
    x, y = rng.normal(0.5, 1, 40), rng.normal(0, 1, 60)
    for kind in ("d_rms", "d_av"):
        fast = bootstrap_ci(x, y, kind, n_boot=300, seed=3)
        assert fast == pytest.approx(reference_bootstrap_ci(x, y, kind, n_boot=300, seed=3))
        assert fast[0] < float(effect_size(x, y, kind)) < fast[1]


def test_welch_and_permutation_tests():
    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 4.0, 6.0, 8.0, 10.0])
    t, df, _ = welch_test(x, y)
    # t = (2.5 - 6) / sqrt(1.6667/4 + 10/5); Welch–Satterthwaite df by hand.
    se2 = (5 / 3) / 4 + 10 / 5
    assert t == pytest.approx(-3.5 / math.sqrt(se2))
    assert df == pytest.approx(se2**2 / (((5 / 3) / 4) ** 2 / 3 + (10 / 5) ** 2 / 4))
    # 9 values, 126 distinct splits: the exact permutation p is a multiple of 1/126.
    p_perm = permutation_test(x, y, n_resamples=9999, seed=1)
    assert 0 < p_perm < 0.2 and round(p_perm * 126, 6) == round(p_perm * 126)
    assert permutation_test(x, y, seed=1) == p_perm  # seeded


def test_corrections_and_stars():
    p = [0.01, 0.04, 0.03, 0.5]
    assert adjust_pvalues(p, "bonferroni").tolist() == pytest.approx([0.04, 0.16, 0.12, 1.0])
    assert adjust_pvalues(p, "holm").tolist() == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert adjust_pvalues(p, "bh").tolist() == pytest.approx([0.04, 0.0533333, 0.0533333, 0.5])
    assert [stars(v) for v in (0.0005, 0.005, 0.02, 0.2)] == ["***", "**", "*", "n.s."]


def test_panel_tests_need_two_groups():
    units = pd.DataFrame({"category": ["A"] * 4, "framing": ["positive"] * 4, "base": ["G"] * 4,
                          "median_rank": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(AnalysisError, match="exactly two base levels"):
        panel_tests(units)


def test_panel_tests_direction_and_columns():
    units = pd.DataFrame({"category": ["A"] * 8, "framing": ["positive"] * 8,
                          "base": ["Gemma"] * 4 + ["Llama"] * 4,
                          "median_rank": [1.0, 2.0, 3.0, 4.0, 3.0, 4.0, 5.0, 6.0]})
    out = panel_tests(units, n_resamples=999, n_boot=200)
    row = out.iloc[0]
    assert row["diff"] == -2.0 and row["group_a"] == "Gemma"
    assert row["d_rms"] == pytest.approx(-2 / math.sqrt(5 / 3))
    assert row["d_av"] == pytest.approx(-2 / math.sqrt(5 / 3))  # equal SDs: d_av = d_rms
    assert row["p_welch_adj"] == row["p_welch"]  # one panel: Bonferroni is the identity


def test_nlme_df_rule_by_hand():
    # 3 groups × 4 rows; column 1 constant within groups (between), column 2 varies (within).
    groups = np.repeat([0, 1, 2], 4)
    exog = np.column_stack([np.ones(12), (groups == 1).astype(float), np.tile([0, 1, 0, 1], 3)])
    col_df, term_df = nlme_denominator_df(exog, groups, [[0], [1], [2]])
    # between: 3 groups - 2 (intercept + column 1) = 1; within: 12 - 3 - 1 = 8; intercept: 8.
    assert col_df.tolist() == [8, 1, 8] and term_df.tolist() == [8, 1, 8]


def test_r_term_names():
    assert r_term_name("base[T.Llama]:category[T.Communion]") == "baseLlama:categoryCommunion"
    assert r_term_name("C(framing, Treatment('positive'))[T.negative]") == "framingnegative"


def test_mixed_model_recovers_a_simulated_effect_and_needs_two_groups():
    rng = np.random.default_rng(0)
    rows = []
    for g in range(8):
        u = rng.normal(0, 1)
        for i in range(30):
            x = i % 2
            rows.append({"model": f"m{g}", "x": "b" if x else "a", "y": 10 + 3 * x + u + rng.normal(0, 1)})
    data = pd.DataFrame(rows)
    res = fit_mixed_model(data, "y ~ x")
    est = res.fixed.set_index("term")
    assert est.loc["xb", "estimate"] == pytest.approx(3, abs=0.3)
    assert est.loc["xb", "df"] == 240 - 8 - 1
    assert res.anova.set_index("term").loc["x", "F"] == pytest.approx(est.loc["xb", "t"] ** 2)
    with pytest.raises(AnalysisError, match="at least two"):
        fit_mixed_model(data.assign(model="one"), "y ~ x")
    with pytest.raises(AnalysisError, match=r"1 of 240 units have a missing value in \['y', 'x'\]"):
        fit_mixed_model(data.assign(x=data["x"].where(data.index > 0)), "y ~ x")
    with pytest.raises(InputError, match="cannot build"):
        fit_mixed_model(data, "y ~ nonexistent")


def test_sequential_f_equals_the_nested_gls_definition():
    rng = np.random.default_rng(3)
    n, groups = 60, np.repeat(np.arange(6), 10)
    a, b = rng.integers(0, 2, n), rng.integers(0, 3, n)
    exog = np.column_stack([np.ones(n), a, b == 1, b == 2, a * (b == 1), a * (b == 2)]).astype(float)
    terms = [[0], [1], [2, 3], [4, 5]]
    cov_obs = np.eye(n) * 2.0 + 0.7 * (groups[:, None] == groups[None, :])
    y = exog @ np.array([1.0, 0.5, -0.3, 0.2, 0.4, 0.0]) + rng.normal(0, 1.5, n)
    weight = np.linalg.inv(cov_obs)
    cov = np.linalg.inv(exog.T @ weight @ exog)
    beta = cov @ exog.T @ weight @ y
    assert wald_f_tests(beta, cov, terms) == pytest.approx(reference_sequential_f(exog, y, cov_obs, terms))
    # The marginal F of the last term equals its sequential F.
    assert wald_f_tests(beta, cov, terms, "marginal")[-1] == pytest.approx(wald_f_tests(beta, cov, terms)[-1])


# --- issue 20: numbers from tests/r/golden.R (output tests/r/golden.out; "G: key" names the line) ---

V = np.array([0.2, -1.1, 0.7, 1.5, -0.4, -0.9])
W = np.array([-0.6, 0.9, 0.3, -1.3, 1.2, -0.5])
SHIFTS = (2.94, 1.96, 1.83, 1.56, 1.43, 1.30)  # panel i: Gemma = V + shift, Llama = W


def family_units() -> pd.DataFrame:
    rows = []
    for i, shift in enumerate(SHIFTS):
        cat, fr = f"c{i // 3 + 1}", f"f{i % 3 + 1}"  # sorted panel order = order of SHIFTS
        rows += [(cat, fr, "Gemma", v + shift) for v in V] + [(cat, fr, "Llama", w) for w in W]
    return pd.DataFrame(rows, columns=["category", "framing", "base", "median_rank"])


def test_a_correction_changes_the_verdict_as_in_r():
    """Six panels whose Welch p-values straddle the thresholds: none, Bonferroni, Holm and BH each
    give different stars (R: p.adjust(p, method); stars by the paper's rule)."""
    p_welch = [0.000404355211701, 0.00608344212423, 0.00895721414439,  # G: family.<i>.p_welch
               0.0202283862912, 0.0300017199251, 0.0444251826894]
    expected = {  # G: family.<i>.<method> and family.<i>.<method>.stars
        "none": (p_welch, ["***", "**", "**", "*", "*", "*"]),
        "bonferroni": ([0.00242613127021, 0.0365006527454, 0.0537432848663, 0.121370317747,
                        0.18001031955, 0.266551096136], ["**", "*", "n.s.", "n.s.", "n.s.", "n.s."]),
        "holm": ([0.00242613127021, 0.0304172106212, 0.0358288565776, 0.0606851588736,
                  0.0606851588736, 0.0606851588736], ["**", "*", "*", "n.s.", "n.s.", "n.s."]),
        "bh": ([0.00242613127021, 0.0179144282888, 0.0179144282888, 0.0303425794368,
                0.0360020639101, 0.0444251826894], ["**", "*", "*", "*", "*", "*"]),
    }
    units = family_units()
    for correction, (adjusted, star_list) in expected.items():
        out = panel_tests(units, correction=correction, n_resamples=99, n_boot=20)  # type: ignore[arg-type]
        assert out["p_welch"].tolist() == pytest.approx(p_welch, rel=1e-9)
        assert out["p_welch_adj"].tolist() == pytest.approx(adjusted, rel=1e-9), correction
        assert out["stars_welch"].tolist() == star_list, correction


def test_effect_sizes_match_r_formulas_with_unequal_sds():
    # G: family.scaled.d_rms / d_av / cohen_d / hedges_g: x = V + 2.94, y = 2 W (n = 6 + 6), e.g.
    # d_rms <- (mean(x) - mean(y)) / sqrt((var(x) + var(y)) / 2); d_av <- ... / ((sd(x) + sd(y)) / 2)
    x, y = V + 2.94, 2 * W
    assert effect_size(x, y, "d_rms") == pytest.approx(1.91702895127, rel=1e-10)
    assert effect_size(x, y, "d_av") == pytest.approx(2.01187478266, rel=1e-10)
    assert effect_size(x, y, "cohen_d") == pytest.approx(1.91702895127, rel=1e-10)  # equal n: = d_rms
    assert effect_size(x, y, "hedges_g") == pytest.approx(1.76956518579, rel=1e-10)


def _ppoints(n: int) -> np.ndarray:
    a = 3 / 8 if n <= 10 else 0.5  # R's ppoints()
    return (np.arange(1, n + 1) - a) / (n + 1 - 2 * a)


def test_bca_interval_matches_r_boot_and_differs_from_percentile():
    from scipy.stats import norm

    # G: bca.*: x <- qnorm(ppoints(10)) + 1.5; y <- qnorm(ppoints(12));
    # boot.ci(boot(c(x, y), <d_rms of the resample>, R = 20000, strata = grp), type = "bca")
    x, y = norm.ppf(_ppoints(10)) + 1.5, norm.ppf(_ppoints(12))
    assert effect_size(x, y, "d_rms") == pytest.approx(1.5533183568, rel=1e-9)
    r_bca = (0.572336874347, 2.4824538555)
    lo, hi = bootstrap_ci(x, y, "d_rms", n_boot=20000, method="bca", seed=1)
    # Monte Carlo error of each limit ~0.02 (R's own seeds 1-3 spread 0.02); BCa sits ~0.22 / 0.33
    # below the percentile interval, so a percentile interval cannot pass.
    assert lo == pytest.approx(r_bca[0], abs=0.06) and hi == pytest.approx(r_bca[1], abs=0.06)
    p_lo, p_hi = bootstrap_ci(x, y, "d_rms", n_boot=20000, seed=1)
    assert p_lo == pytest.approx(0.797593323629, abs=0.06)  # G: bca.percentile_lo
    assert p_lo - lo > 0.15 and p_hi - hi > 0.2
    with pytest.raises(InputError, match="bootstrap method 'basic'"):
        bootstrap_ci(x, y, method="basic")  # type: ignore[arg-type]


def test_permutation_p_convention_and_resolution_limit():
    from rmvalues.analysis.hypothesis_tests import (
        PERMUTATION_CONVENTION,
        permutation_floor,
        permutation_resolution,
    )

    x, y = np.arange(20.0) + 100, np.arange(20.0)  # separated: no relabelling reaches |t|
    # scipy: 2 * (0 + 1) / (R + 1), never 0; (b + 1) / (R + 1) on |t| would give 1 / (R + 1)
    assert permutation_test(x, y, n_resamples=999, seed=0) == pytest.approx(2 / 1000)
    assert permutation_floor(999) == pytest.approx(0.002)
    assert "2 / (R + 1)" in PERMUTATION_CONVENTION
    text = permutation_resolution(999, 4, "bonferroni")
    assert "0.008" in text and "no panel can reach ***" in text
    assert "no panel can reach" not in permutation_resolution(9999, 4, "bonferroni")  # 0.0008
    assert "no panel can reach ***" in permutation_resolution(999, 4, "bh")  # BH floor 0.002
    units = pd.DataFrame({"category": ["A"] * 40, "framing": ["positive"] * 40,
                          "base": ["Gemma"] * 20 + ["Llama"] * 20, "median_rank": np.r_[x, y]})
    row = panel_tests(units, n_resamples=999, n_boot=20).iloc[0]
    assert row["p_perm"] == pytest.approx(0.002) and row["p_perm_at_limit"]


def test_panels_draw_independent_permutation_streams():
    from rmvalues.analysis.hypothesis_tests import panel_streams

    rng = np.random.default_rng(5)
    x, y = rng.normal(0.4, 1, 15), rng.normal(0, 1, 15)
    one = pd.DataFrame({"median_rank": np.r_[x, y], "base": ["Gemma"] * 15 + ["Llama"] * 15})
    units = pd.concat([one.assign(category=c, framing="positive") for c in ("A", "B", "C")])
    out = panel_tests(units, n_resamples=199, n_boot=50, seed=7)
    # identical data in every panel, yet each panel's Monte Carlo p and CI are its own draw
    assert out["p_perm"].nunique() == 3 and out["d_rms_lo"].nunique() == 3
    streams = panel_streams(7, 3)
    for i in range(3):
        assert out["p_perm"].iloc[i] == permutation_test(x, y, n_resamples=199, seed=streams[i][0])
    assert panel_tests(units, n_resamples=199, n_boot=50, seed=7).equals(out)  # one seed per run


def test_reml_profile_matches_statsmodels_inside_and_gls_at_the_boundary():
    import statsmodels.api as sm

    from rmvalues.analysis.mixed import reml_profile, reml_slope_at_boundary

    rng = np.random.default_rng(3)
    codes = np.repeat(np.arange(6), 8)
    exog = np.column_stack([np.ones(48), rng.normal(size=48), (codes % 2).astype(float)])
    endog = exog @ [1.0, 0.5, -0.3] + rng.normal(0, 1.0, 6)[codes] + rng.normal(size=48)
    fit = sm.MixedLM(endog, exog, groups=codes).fit(reml=True)
    gamma = float(fit.cov_re.iloc[0, 0] if hasattr(fit.cov_re, "iloc") else fit.cov_re[0, 0]) / fit.scale
    loglik, beta, _, sigma2 = reml_profile(exog, endog, codes, gamma)
    assert loglik == pytest.approx(fit.llf, abs=1e-6)
    assert beta == pytest.approx(np.asarray(fit.fe_params), rel=1e-5) and sigma2 == pytest.approx(fit.scale, rel=1e-5)
    # at 0: the OLS fit, with the REML log-likelihood of nlme::gls(method = "REML")
    ols = sm.OLS(endog, exog).fit()
    loglik0, beta0, cov0, _ = reml_profile(exog, endog, codes, 0.0)
    assert beta0 == pytest.approx(ols.params) and cov0 == pytest.approx(np.asarray(ols.cov_params()))
    n, p = exog.shape
    gls = -0.5 * ((n - p) * np.log(2 * np.pi * ols.ssr / (n - p)) + (n - p)
                  + np.linalg.slogdet(exog.T @ exog)[1])
    assert loglik0 == pytest.approx(gls, abs=1e-9)
    # the closed-form slope at 0 is the derivative of the profile
    h = 1e-7
    slope = (reml_profile(exog, endog, codes, h)[0] - loglik0) / h
    assert reml_slope_at_boundary(exog, endog, codes) == pytest.approx(slope, rel=1e-3)


def test_linear_algebra_failure_is_a_clear_error(monkeypatch):
    import statsmodels.regression.mixed_linear_model as mlm

    def fail(*args, **kwargs):
        raise np.linalg.LinAlgError("Matrix is not positive definite")

    monkeypatch.setattr(mlm.MixedLM, "fit", fail)
    rng = np.random.default_rng(0)
    units = pd.DataFrame({"model": np.repeat([f"m{i}" for i in range(6)], 10),
                          "x": rng.normal(size=60)})
    units["y"] = units["x"] + rng.normal(0, 1, 6).repeat(10) + rng.normal(size=60)
    with pytest.raises(AnalysisError, match=r"fitting 'y ~ x' failed in linear algebra"):
        fit_mixed_model(units, "y ~ x")
