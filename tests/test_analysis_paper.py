"""Acceptance: the paper's Fig 1 (Big Two) statistics from the ten released files, against R 4.2 /
nlme 3.1-162 (issues 5, 20, 21).

Every expected number comes from ``tests/r/golden.R`` (which builds the units from the released CSVs
itself and calls nlme/stats); its output is ``tests/r/golden.out``, and the comment next to each
number names the key there (``G: key``). :func:`test_cited_numbers_match_the_committed_r_output`
holds the numbers written here to that file.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rmvalues.analysis import (
    fit_mixed_model,
    group_summary,
    median_rank_units,
    panel_tests,
    ranked_items,
    read_released_folder,
)
from rmvalues.analysis.reproduce import reproduce_fig1
from rmvalues.errors import AnalysisError
from rmvalues.lexicons import load_lexicon

GOLDEN = Path(__file__).parent / "r" / "golden.out"
#: Numbers cited below, by their golden.out key (R 4.2.2 / nlme 3.1-162, tests/r/golden.R).
R = {
    # summary(lme(median_rank ~ base * category * framing, random = ~1 | model, method = "REML"))$tTable
    "big2.paper.fixed.baseLlama.p": 0.0211589259139,
    "big2.paper.fixed.categoryCommunion.p": 0.312350359578,
    "big2.paper.fixed.framingnegative.p": 5.35265502176e-113,
    "big2.paper.fixed.baseLlama:categoryCommunion.p": 2.50940044492e-06,
    "big2.paper.fixed.baseLlama:framingnegative.p": 4.21748814079e-08,
    "big2.paper.fixed.categoryCommunion:framingnegative.p": 8.65698981642e-147,
    "big2.paper.fixed.baseLlama:categoryCommunion:framingnegative.p": 4.97982879276e-15,
    # anova(<same fit>) (sequential) and anova(<same fit>, type = "marginal")
    "big2.paper.anova_sequential.base.p": 0.941298442459,
    "big2.paper.anova_sequential.base:category.p": 0.211662203812,
    "big2.paper.anova_sequential.base:framing.p": 0.893059645376,
    "big2.paper.anova_sequential.base:category:framing.p": 4.99600361081e-15,
    "big2.paper.anova_marginal.base.F": 8.17827747996,
    "big2.paper.anova_marginal.base.p": 0.0211589259139,
    "big2.paper.anova_marginal.base:category.p": 2.50940044499e-06,
    "big2.paper.loglik": -4017.61258418,
    # t.test(Gemma, Llama) per panel (Welch), p.adjust(<4 p_welch>, method), stars by the paper's rule
    "big2.panel.Agency.positive.p_welch": 0.000491823893783,
    "big2.panel.Agency.negative.p_welch": 0.000108166817457,
    "big2.panel.Communion.positive.p_welch": 0.000929956088565,
    "big2.panel.Communion.negative.p_welch": 1.43753921518e-11,
    "big2.panel.Agency.positive.bonferroni": 0.00196729557513,
    "big2.panel.Agency.negative.bonferroni": 0.00043266726983,
    "big2.panel.Communion.positive.bonferroni": 0.00371982435426,
    "big2.panel.Communion.negative.bonferroni": 5.75015686071e-11,
    "big2.panel.Agency.positive.holm": 0.000983647787566,
    "big2.panel.Agency.negative.holm": 0.000324500452372,
    "big2.panel.Communion.positive.holm": 0.000983647787566,
    "big2.panel.Communion.negative.holm": 5.75015686071e-11,
    "big2.panel.Agency.positive.BH": 0.000655765191711,
    "big2.panel.Agency.negative.BH": 0.000216333634915,
    "big2.panel.Communion.positive.BH": 0.000929956088565,
    "big2.panel.Communion.negative.BH": 5.75015686071e-11,
    "big2.panel.Agency.positive.d_rms": 0.429925087287,
    "big2.panel.Agency.positive.d_av": 0.43200207231,
    "big2.panel.Communion.negative.d_rms": 0.845330993013,
    "big2.panel.Communion.negative.d_av": 0.859373038017,
    # lme(median_rank ~ base * context + size_b + category, ...): variance ~8e-6, nlme stops inside
    # the boundary; gls(<same formula>, method = "REML") is the fit exactly at 0.
    "big2.boundary.loglik": -4513.76998775,
    "big2.boundary.gls_loglik": -4513.76998681,
    "big2.boundary.fixed.baseLlama.se": 1.95770194407,
    "big2.boundary.fixed.size_b.se": 0.0693677903776,
    "big2.boundary.fixed.categoryCommunion.se": 0.970734362179,
    "big2.boundary.anova_sequential.size_b.F": 1.31625271546,
    "big2.boundary.anova_sequential.category.F": 779.093134743,
    "big2.boundary.anova_sequential.base:context.F": 0.31889052488,
    # lme(median_rank ~ size_b + base + category, ...): R keeps size_b first; also on the boundary
    "big2.order.loglik": -4519.69772873,
    "big2.order.gls_loglik": -4519.69772779,
    "big2.order.anova_sequential.size_b.F": 0.781989234626,
    "big2.order.anova_sequential.base.F": 0.54376898706,
    "big2.order.anova_sequential.category.F": 781.383914241,
    "big2.order.anova_marginal.size_b.F": 1.32012268369,
    "big2.order.fixed.baseLlama.estimate": 1.00675334909,
    "big2.order.fixed.baseLlama.se": 1.36526156994,
    # base releveled to Llama: lme(median_rank ~ base * category, ...); and
    # lme(median_rank ~ category:framing + framing, ...)
    "big2.names.fixed.baseGemma:categoryCommunion.estimate": 1.55979938272,
    "big2.nested.fixed.categoryCommunion:framingpositive.estimate": 3.63055555556,
    "big2.nested.fixed.categoryCommunion:framingnegative.estimate": 50.5601851852,
    "big2.nested.anova_sequential.category:framing.F": 1624.38642462,
}


# G: big2.paper.fixed.<term>.estimate / .se / .df, rounded to 3 decimals
FIXED_3DP = {
        "(Intercept)": (132.461, 1.129, 1064),
        "baseLlama": (-4.167, 1.457, 8),
        "categoryCommunion": (-1.382, 1.367, 1064),
        "framingnegative": (-34.998, 1.367, 1064),
        "baseLlama:categoryCommunion": (8.354, 1.765, 1064),
        "baseLlama:framingnegative": (9.746, 1.765, 1064),
        "categoryCommunion:framingnegative": (58.826, 1.934, 1064),
        "baseLlama:categoryCommunion:framingnegative": (-19.828, 2.496, 1064),
    }
# G: big2.paper.anova_sequential.<term>.F (2 decimals) / .den_df
SEQUENTIAL_F_2DP = {"base": (0.01, 8), "category": (1963.79, 1064), "framing": (86.46, 1064),
                    "base:category": (1.56, 1064), "base:framing": (0.02, 1064),
                    "category:framing": (1472.78, 1064), "base:category:framing": (63.10, 1064)}

# G: big2.panel.<category>.<framing>.p_welch (2 significant digits) and .d_rms (3 decimals)
PANEL_P_D = {("Agency", "positive"): (4.9e-4, 0.430), ("Agency", "negative"): (1.1e-4, -0.478),
             ("Communion", "positive"): (9.3e-4, -0.401), ("Communion", "negative"): (1.4e-11, 0.845)}


def golden() -> dict[str, str]:
    return dict(line.rstrip("\n").split("\t", 1) for line in GOLDEN.read_text("utf-8").splitlines())


def test_cited_numbers_match_the_committed_r_output():
    out = golden()
    for key, value in R.items():
        assert float(out[key]) == pytest.approx(value, rel=1e-11), key
    for term, (est, se, df) in FIXED_3DP.items():
        key = f"big2.paper.fixed.{term}"
        assert (round(float(out[f"{key}.estimate"]), 3), round(float(out[f"{key}.se"]), 3),
                int(out[f"{key}.df"])) == (est, se, df), term
    for term, (f, den) in SEQUENTIAL_F_2DP.items():
        key = f"big2.paper.anova_sequential.{term}"
        assert (round(float(out[f"{key}.F"]), 2), int(out[f"{key}.den_df"])) == (f, den), term
    assert [round(float(out[f"big2.framing.{fr}.{stat}"]), 3) for fr in ("positive", "negative")
            for stat in ("mean", "sd")] == [131.775, 10.673, 126.090, 27.289]
    for (cat, fr), (p, d) in PANEL_P_D.items():
        key = f"big2.panel.{cat}.{fr}"
        assert (float(f"{float(out[f'{key}.p_welch']):.1e}"), round(float(out[f"{key}.d_rms"]), 3)) == (p, d)
    assert int(out["big2.n_units"]) == 1080 and int(out["big2.items_per_prompt"]) == 263


@pytest.fixture(scope="module")
def scores(shared_dir):
    return read_released_folder(shared_dir / "paper-data" / "dict_big2_nouns")


@pytest.fixture(scope="module")
def units(scores):
    ranked = ranked_items(scores, load_lexicon("big-two-nouns"))
    # G: big2.items_per_prompt = 263
    assert set(ranked.groupby(["model", "prompt_id"])["n_items"].first()) == {263}
    return median_rank_units(ranked)


@pytest.fixture(scope="module")
def paper_mode(scores):
    return reproduce_fig1(scores, load_lexicon("big-two-nouns"), paper_compatible=True,
                          n_resamples=9999, n_boot=200)


@pytest.fixture(scope="module")
def mixed(units):
    return fit_mixed_model(units)


def test_units(units):
    assert len(units) == 1080  # G: big2.n_units
    assert list(units["base"].cat.categories) == ["Gemma", "Llama"]
    assert list(units["category"].cat.categories) == ["Agency", "Communion"]
    assert list(units["framing"].cat.categories) == ["positive", "negative"]


def test_fixed_effects_match_nlme(mixed):
    expected = FIXED_3DP
    fixed = mixed.fixed.set_index("term")
    assert list(fixed.index) == list(expected)
    for term, (est, se, df) in expected.items():
        assert round(fixed.loc[term, "estimate"], 3) == est, term
        assert round(fixed.loc[term, "se"], 3) == se, term
        assert fixed.loc[term, "df"] == df, term
    assert round(fixed.loc["baseLlama", "t"], 2) == -2.86
    assert round(fixed.loc["baseLlama:categoryCommunion:framingnegative", "t"], 2) == -7.94


def test_sequential_f_table_matches_nlme(mixed):
    expected = SEQUENTIAL_F_2DP
    table = mixed.anova.set_index("term")
    for term, (f, den) in expected.items():
        # nlme's optimiser stops a hair from the REML optimum; F agrees to 0.01 (Category: 1963.785).
        assert table.loc[term, "F"] == pytest.approx(f, abs=0.01), term
        assert table.loc[term, "den_df"] == den and table.loc[term, "num_df"] == 1


def test_framing_means_and_sds(units):
    # G: big2.framing.positive.mean / .sd, big2.framing.negative.mean / .sd
    summary = group_summary(units).set_index("framing")
    assert round(summary.loc["positive", "mean"], 3) == 131.775
    assert round(summary.loc["positive", "sd"], 3) == 10.673
    assert round(summary.loc["negative", "mean"], 3) == 126.090
    assert round(summary.loc["negative", "sd"], 3) == 27.289


def test_panel_welch_p_and_d_rms(units):
    out = panel_tests(units, n_boot=500).set_index(["category", "framing"])
    expected = PANEL_P_D
    for key, (p, d) in expected.items():
        row = out.loc[key]
        assert (row["n_a"], row["n_b"]) == (108, 162)
        assert float(f"{row['p_welch']:.1e}") == p, key
        assert round(row["d_rms"], 3) == d, key
        assert row["d_rms_lo"] < row["d_rms"] < row["d_rms_hi"]
        assert row["stars_welch"] != "n.s." and 0 < row["p_perm"] < 0.01


def test_paper_mode_fixed_effect_and_f_test_p_values(paper_mode):
    """Issue 21: fixed-effect t p (two-sided, nlme df) and F-test p (nlme denominator df)."""
    fixed = paper_mode.mixed.fixed.set_index("term")
    for term in ("baseLlama", "categoryCommunion", "framingnegative", "baseLlama:categoryCommunion",
                 "baseLlama:framingnegative", "categoryCommunion:framingnegative",
                 "baseLlama:categoryCommunion:framingnegative"):
        # statsmodels' SEs agree with nlme's to ~3e-5 relative, so p to ~1e-3 relative
        assert fixed.loc[term, "p"] == pytest.approx(R[f"big2.paper.fixed.{term}.p"], rel=1e-3), term
    assert round(fixed.loc["baseLlama", "p"], 4) == 0.0212  # the paper's baseLlama p
    anova = paper_mode.mixed.anova.set_index("term")
    assert anova.loc["base", "p"] == pytest.approx(R["big2.paper.anova_sequential.base.p"], abs=5e-5)
    assert round(anova.loc["base", "p"], 4) == 0.9413  # the paper's base F p
    for term in ("base:category", "base:framing", "base:category:framing"):
        assert anova.loc[term, "p"] == pytest.approx(R[f"big2.paper.anova_sequential.{term}.p"],
                                                     rel=1e-3), term
    # nlme prints p = 0 for category, framing and category:framing: its 1 - pf() underflows
    assert (anova.loc[["category", "framing", "category:framing"], "p"] < 1e-15).all()
    assert paper_mode.mixed.loglik == pytest.approx(R["big2.paper.loglik"], abs=1e-6)


def test_paper_mode_marginal_f_test(units):
    marginal = fit_mixed_model(units, anova_type="marginal").anova.set_index("term")
    assert marginal.loc["base", "F"] == pytest.approx(R["big2.paper.anova_marginal.base.F"], rel=1e-3)
    assert marginal.loc["base", "p"] == pytest.approx(R["big2.paper.anova_marginal.base.p"], rel=1e-3)
    assert marginal.loc["base:category", "p"] == pytest.approx(
        R["big2.paper.anova_marginal.base:category.p"], rel=1e-3)


PANELS = [("Agency", "positive"), ("Agency", "negative"), ("Communion", "positive"),
          ("Communion", "negative")]


def test_paper_mode_panel_p_values_and_stars(paper_mode):
    """Welch p, Bonferroni-adjusted p and the figure's stars (paper mode: stars from p_welch)."""
    out = paper_mode.panels.set_index(["category", "framing"])
    expected_stars = {("Agency", "positive"): "**", ("Agency", "negative"): "***",  # G: *.bonferroni.stars
                      ("Communion", "positive"): "**", ("Communion", "negative"): "***"}
    for cat, fr in PANELS:
        row, key = out.loc[(cat, fr)], f"big2.panel.{cat}.{fr}"
        assert row["p_welch"] == pytest.approx(R[f"{key}.p_welch"], rel=1e-9)
        assert row["p_welch_adj"] == pytest.approx(R[f"{key}.bonferroni"], rel=1e-9)
        assert row["stars"] == row["stars_welch"] == expected_stars[(cat, fr)]
        assert row["p_perm_at_limit"] == math.isclose(row["p_perm"], 2 / 10000)


def test_corrections_change_the_verdict_on_the_paper_panels(units):
    """Holm and BH give *** where Bonferroni gives ** (Agency/positive, Communion/positive)."""
    expected_stars = {"bonferroni": ["**", "***", "**", "***"],  # G: big2.panel.*.<method>.stars
                      "holm": ["***", "***", "***", "***"], "bh": ["***", "***", "***", "***"]}
    for correction, r_name in (("bonferroni", "bonferroni"), ("holm", "holm"), ("bh", "BH")):
        out = panel_tests(units, correction=correction, n_resamples=99, n_boot=20).set_index(
            ["category", "framing"])
        for (cat, fr), star in zip(PANELS, expected_stars[correction]):
            assert out.loc[(cat, fr), "p_welch_adj"] == pytest.approx(
                R[f"big2.panel.{cat}.{fr}.{r_name}"], rel=1e-9), (correction, cat, fr)
            assert out.loc[(cat, fr), "stars_welch"] == star, (correction, cat, fr)


def test_d_rms_and_lakens_d_av_on_the_paper_panels(units):
    out = panel_tests(units, n_resamples=99, n_boot=20).set_index(["category", "framing"])
    for cat, fr in (("Agency", "positive"), ("Communion", "negative")):
        for kind in ("d_rms", "d_av"):
            assert out.loc[(cat, fr), kind] == pytest.approx(R[f"big2.panel.{cat}.{fr}.{kind}"], rel=1e-9)


def test_boundary_fit_reaches_nlme_loglik(units):
    """Issue 20.3: the random-intercept variance's REML optimum is 0; the fit is reported there."""
    res = fit_mixed_model(units, "median_rank ~ base*context + size_b + category")
    assert res.boundary and res.variance.set_index("component").loc["group", "variance"] == 0
    assert res.loglik == pytest.approx(R["big2.boundary.loglik"], abs=1e-6)
    assert res.loglik == pytest.approx(R["big2.boundary.gls_loglik"], abs=1e-8)
    assert "random-intercept variance at the boundary" in res.summary_text()
    fixed = res.fixed.set_index("term")
    for term in ("baseLlama", "size_b", "categoryCommunion"):
        assert fixed.loc[term, "se"] == pytest.approx(R[f"big2.boundary.fixed.{term}.se"], rel=1e-5), term
    anova = res.anova.set_index("term")
    # G: big2.boundary.term_order = base,context,size_b,category,base:context
    assert list(anova.index) == ["(Intercept)", "base", "context", "size_b", "category", "base:context"]
    for term in ("size_b", "category", "base:context"):
        assert anova.loc[term, "F"] == pytest.approx(R[f"big2.boundary.anova_sequential.{term}.F"],
                                                     rel=1e-5), term


def test_term_order_follows_r_with_a_numeric_covariate_first(units):
    """Issue 20.4: ``size_b + base``: R tests size_b first (patsy would move it last)."""
    res = fit_mixed_model(units, "median_rank ~ size_b + base + category")
    # G: big2.order.term_order = size_b,base,category; big2.order.fixed_names
    assert list(res.anova["term"]) == ["(Intercept)", "size_b", "base", "category"]
    assert list(res.fixed["term"]) == ["(Intercept)", "size_b", "baseLlama", "categoryCommunion"]
    assert res.boundary and res.loglik == pytest.approx(R["big2.order.loglik"], abs=1e-6)
    anova = res.anova.set_index("term")
    for term in ("size_b", "base", "category"):
        assert anova.loc[term, "F"] == pytest.approx(R[f"big2.order.anova_sequential.{term}.F"], rel=1e-5)
    fixed = res.fixed.set_index("term")
    assert fixed.loc["baseLlama", "estimate"] == pytest.approx(R["big2.order.fixed.baseLlama.estimate"], rel=1e-6)
    assert fixed.loc["baseLlama", "se"] == pytest.approx(R["big2.order.fixed.baseLlama.se"], rel=1e-5)
    marginal = fit_mixed_model(units, "median_rank ~ size_b + base + category", anova_type="marginal")
    assert marginal.anova.set_index("term").loc["size_b", "F"] == pytest.approx(
        R["big2.order.anova_marginal.size_b.F"], rel=1e-5)


def test_r_style_names_in_tables(units):
    """Issue 20.5: another reference level and an interaction without a main effect, named as R does."""
    res = fit_mixed_model(units, "median_rank ~ C(base, Treatment('Llama')) * category")
    # G: big2.names.fixed_names, big2.names.term_order
    assert list(res.fixed["term"]) == ["(Intercept)", "baseGemma", "categoryCommunion",
                                       "baseGemma:categoryCommunion"]
    assert list(res.anova["term"]) == ["(Intercept)", "base", "category", "base:category"]
    assert res.fixed.set_index("term").loc["baseGemma:categoryCommunion", "estimate"] == pytest.approx(
        R["big2.names.fixed.baseGemma:categoryCommunion.estimate"], rel=1e-6)
    nested = fit_mixed_model(units, "median_rank ~ category:framing + framing")
    # G: big2.nested.fixed_names
    assert list(nested.fixed["term"]) == ["(Intercept)", "framingnegative", "categoryCommunion:framingpositive",
                                          "categoryCommunion:framingnegative"]
    fixed = nested.fixed.set_index("term")
    for term in ("categoryCommunion:framingpositive", "categoryCommunion:framingnegative"):
        assert fixed.loc[term, "estimate"] == pytest.approx(R[f"big2.nested.fixed.{term}.estimate"], rel=1e-6)
    assert nested.anova.set_index("term").loc["category:framing", "F"] == pytest.approx(
        R["big2.nested.anova_sequential.category:framing.F"], rel=1e-4)


def test_a_singular_design_is_a_clear_error_naming_the_formula(units):
    aliased = units.assign(size_x2=units["size_b"] * 2)
    with pytest.raises(AnalysisError, match=r"median_rank ~ size_b \+ size_x2.*rank 3"):
        fit_mixed_model(aliased, "median_rank ~ size_b + size_x2 + base")


def test_analyze_summary_states_what_its_numbers_are(shared_dir):
    from rmvalues.analysis import analyze

    runs = sorted((shared_dir / "paper-data" / "dict_big2_nouns").glob("*.csv"))
    res = analyze(runs, "big-two-nouns", formula="median_rank ~ size_b + base + category",
                  anova_type="marginal", n_resamples=999, n_boot=20)
    text = res.summary_text()
    assert "random-intercept variance at the boundary" in text
    assert "F tests (marginal" in text
    # G: big2.order.anova_marginal.size_b.F = 1.32012268369
    assert res.mixed.anova.set_index("term").loc["size_b", "F"] == pytest.approx(
        R["big2.order.anova_marginal.size_b.F"], rel=1e-5)
    assert "smallest possible p = 2 / (R + 1)" in text
    assert "smallest bonferroni-corrected p over 4 panel(s) = 0.008 (so no panel can reach ***" in text
    assert "d_rms: Cohen's d with averaged variances" in text and "d_av: Lakens' d_av" in text
    assert (res.panels["p_perm_at_limit"] == (res.panels["p_perm"] == 0.002)).all()
    assert "(at its resolution limit)" in text
