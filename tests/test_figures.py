"""Each figure function, drawn from small synthetic inputs: files written and what is on them."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib
import numpy as np
import pytest
from matplotlib.collections import PathCollection, PolyCollection

import test_figures_data as data
from rmvalues.errors import InputError
from rmvalues.report import style as style_mod
from rmvalues.report.lm_ranks import figure2
from rmvalues.report.mwlr import figure3, short_label
from rmvalues.report.rm_ranks import beeswarm_offsets, clear_y, figure1, figure_a1, panel_summary
from rmvalues.report.tokens import table1, token_html, token_latex
from rmvalues.report.training import (
    figure4a,
    figure4b,
    figure5,
    figure_a5a,
    figure_a5b,
    figure_a6,
    top_movers,
)

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close_figures():
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def _check_files(result, stem: str) -> None:
    assert set(result.paths) == {"png", "pdf"}
    assert result.paths["png"].name == f"{stem}.png"
    assert result.paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.paths["pdf"].read_bytes()[:5] == b"%PDF-"
    assert result.paths["png"].stat().st_size > 5_000


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def _polys(ax) -> int:
    return sum(isinstance(c, PolyCollection) for c in ax.collections)


def _marker_points(ax, marker: str) -> list[tuple[float, float]]:
    points = []
    for line in ax.lines:
        if line.get_marker() == marker:
            points += list(zip(line.get_xdata(), line.get_ydata()))
    return points


# --- style ------------------------------------------------------------------------------------

def test_serif_font_exists_here_and_colours_are_configurable():
    from matplotlib import font_manager

    font = style_mod.serif_font()
    assert font in {f.name for f in font_manager.fontManager.ttflist}
    assert font in style_mod.SERIF_PREFERENCE
    s = style_mod.FigureStyle()
    assert s.family_color("Gemma") == "#DB4437"
    assert s.family_color("llama") == "#0064E0"
    assert s.family_color("QWEN") == "#7C3AED"
    assert s.with_colors(qwen="#123456").family_color("Qwen") == "#123456"
    # unknown family: a fallback colour that is not a known family's, stable per name (not per
    # call order, case or process), so a family keeps its colour across figures and runs
    fallback = s.family_color("mistral")
    assert fallback.startswith("#") and fallback not in {"#DB4437", "#0064E0", "#7C3AED"}
    fresh = style_mod.FigureStyle()
    assert [fresh.family_color(f) for f in ("phi", "olmo", "MISTRAL")][-1] == fallback
    import subprocess
    import sys

    code = "from rmvalues.report.style import FigureStyle; print(FigureStyle().family_color('mistral'))"
    for seed in ("1", "2"):
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               check=True, env={**os.environ, "PYTHONHASHSEED": seed})
        assert other.stdout.strip() == fallback
    assert s.rc()["font.family"] == "serif"


def test_unknown_format_is_refused(tmp_path):
    import matplotlib.pyplot as plt

    fig = plt.figure()
    with pytest.raises(InputError, match="png, pdf or svg"):
        style_mod.save_figure(fig, tmp_path, "x", formats=["gif"])


# --- Fig 1 / A1 -------------------------------------------------------------------------------

def test_figure1_panels_violins_points_stars_and_reversed_axis(tmp_path):
    units, tests = data.units(), data.panel_tests()
    result = figure1(units, tests, out_dir=tmp_path, n_ranked=265)
    _check_files(result, "fig1")
    axes = result.figure.axes
    assert len(axes) == 4  # framing rows x category columns
    assert [ax.get_title() for ax in axes[:2]] == ["Agency", "Communion"]
    assert [ax.get_title() for ax in axes[2:]] == ["", ""]
    assert "positive" in _texts(axes[1]) and "negative" in _texts(axes[3])
    for ax in axes:
        assert ax.yaxis_inverted()
        assert _polys(ax) == 2  # one violin per base family
        assert [t.get_text() for t in ax.get_xticklabels()] == ["Gemma", "Llama"]
        # per-RM mean +/- SE: one point per model; grand mean: one diamond per family
        assert len(_marker_points(ax, "o")) == len(data.GEMMA_RMS) + len(data.LLAMA_RMS)
        assert len(_marker_points(ax, "D")) == 2
        dotted = [ln for ln in ax.lines if ln.get_linestyle() not in ("-", "None", "")]
        assert len(dotted) == 1 and len(dotted[0].get_xdata()) == 2
    # stars from the panel tests' corrected p: 0.0016 -> **, 0.016 -> *, 0.12 / 1.0 -> n.s.
    assert "**" in _texts(axes[0]) and "*" in _texts(axes[1])
    assert "n.s." in _texts(axes[2]) and "n.s." in _texts(axes[3])
    assert "#1 = best, #265 = worst" in result.figure._supylabel.get_text()


def test_figure1_grand_means_are_the_panel_means_of_the_units():
    units = data.units()
    result = figure1(units)
    expected = units.groupby(["framing", "category", "base"])["median_rank"].mean()
    got = result.data.set_index(["framing", "category", "base"])["grand_mean"]
    assert np.allclose(got.sort_index(), expected.sort_index())
    # and the diamonds are drawn at exactly those values
    ax = result.figure.axes[0]  # positive x Agency
    drawn = sorted(y for _, y in _marker_points(ax, "D"))
    want = sorted(expected.loc[("positive", "Agency")].to_numpy())
    assert np.allclose(drawn, want)


def test_figure_a1_beeswarm_has_every_unit_and_sd_bars(tmp_path):
    cats = ("Care", "Fairness", "Loyalty", "Authority", "Sanctity")
    units = data.units(cats)
    result = figure_a1(units, data.panel_tests(cats), out_dir=tmp_path, lexicon_label="MFD 2.0")
    _check_files(result, "figA1")
    axes = result.figure.axes
    assert len(axes) == 10
    assert [ax.get_title() for ax in axes[:5]] == list(cats)  # the lexicon's own order
    per_panel = (len(data.GEMMA_RMS) + len(data.LLAMA_RMS)) * data.PROMPTS_PER_FRAMING
    for ax in axes:
        swarm = [c for c in ax.collections if isinstance(c, PathCollection)]
        assert sum(len(c.get_offsets()) for c in swarm) == per_panel
        assert _marker_points(ax, "o") == []  # no per-RM points in the appendix version
    summary = panel_summary(units)
    row = summary[(summary.framing == "positive") & (summary.category == "Care")
                  & (summary.base == "gemma")].iloc[0]
    assert row["sd"] > row["se"]
    assert "MFD 2.0" in result.figure._supylabel.get_text()


def test_figure1_accepts_the_analysis_tables_column_names():
    """The statistics engineer's units: base capitalised and categorical; panels with stars."""
    import pandas as pd

    units = data.units()
    units["base"] = pd.Categorical(units["base"].str.capitalize())
    units["category"] = pd.Categorical(units["category"], categories=["Communion", "Agency"])
    tests = data.panel_tests().drop(columns=["p_corrected"]).assign(stars_welch="***",
                                                                    stars_perm="*")
    result = figure1(units, tests, stars_column="stars_perm")
    assert [ax.get_title() for ax in result.figure.axes[:2]] == ["Communion", "Agency"]
    assert "*" in _texts(result.figure.axes[0]) and "***" not in _texts(result.figure.axes[0])
    assert "Stars: permutation tests of the Welch t" in result.caption
    welch = figure1(units, tests)
    assert "***" in _texts(welch.figure.axes[0]) and "Stars: Welch t-tests" in welch.caption


def test_figure1_names_missing_columns():
    with pytest.raises(InputError, match=r"median_rank"):
        figure1(data.units().drop(columns=["median_rank"]))


def test_beeswarm_and_star_placement_helpers():
    values = np.array([1.0, 1.0, 1.0, 5.0])
    offsets = beeswarm_offsets(values, width=0.3)
    assert offsets[3] == 0 and len(set(np.round(offsets[:3], 6))) == 3
    assert np.abs(offsets).max() <= 0.3
    y = clear_y(np.r_[np.full(20, 10.0), np.full(20, 90.0)], 0, 100)
    assert 30 < y < 70  # in the gap between the two clusters, off the frame


# --- Fig 2 ------------------------------------------------------------------------------------

def test_figure2_split_violins_points_and_welch_bh_stars(tmp_path):
    from rmvalues.analysis.anova import welch_posthoc

    units = data.lm_units()
    tests = welch_posthoc(units, "median_rank", "model", by=("category", "framing"))
    result = figure2(units, tests, out_dir=tmp_path)
    _check_files(result, "fig2")
    top, bottom = result.figure.axes
    assert "positive" in top.get_ylabel() and "negative" in bottom.get_ylabel()
    for ax, framing in ((top, "positive"), (bottom, "negative")):
        assert ax.yaxis_inverted()
        assert _polys(ax) == 4  # 2 categories x 2 split halves
        points = [c for c in ax.collections if isinstance(c, PathCollection)]
        assert sum(len(c.get_offsets()) for c in points) == 2 * 2 * 5  # models x cats x prompts
        want = tests[tests.framing == framing].set_index("category")["stars"]
        assert sorted(_texts(ax)) == sorted(want.to_list())
    assert [t.get_text() for t in bottom.get_xticklabels()] == ["Agency", "Communion"]
    legend = [t.get_text() for t in result.figure.legends[0].get_texts()]
    assert legend == ["gemma-2-2b", "Llama-3.2-3B"]
    assert "Benjamini-Hochberg corrected" in result.caption


def test_figure2_needs_exactly_two_models():
    units = data.lm_units()
    extra = units[units.model == units.model.iloc[0]].assign(model="third/model")
    with pytest.raises(InputError, match="exactly two"):
        figure2(__import__("pandas").concat([units, extra]))


# --- Fig 3 ------------------------------------------------------------------------------------

def test_short_labels_follow_the_paper():
    assert short_label("google/gemma-2-2b-it").label == "G2-2b"
    assert short_label("meta-llama/Llama-3.1-70B-Instruct").label == "L3.1-70b"
    assert short_label("meta-llama/Meta-Llama-3-8B-Instruct").label == "L3.0-8b"
    assert short_label("Qwen/Qwen2.5-0.5B").label == "Q2.5-0.5b"
    assert short_label("google/gemma-2b-it").label == "G1-2b"


def test_figure3_lollipops_labels_order_and_points(tmp_path):
    result = figure3(data.mwlr_pairs(), out_dir=tmp_path)
    _check_files(result, "fig3")
    (ax,) = result.figure.axes
    labels = [t.get_text().strip() for t in ax.get_yticklabels()]
    n = 6
    assert len(labels) == n
    # y ticks run bottom-up; read top-down: by q version then size, then p
    top_down = [lab for _, lab in sorted(zip(ax.get_yticks(), labels), reverse=True)]
    assert [lab.split("\u2192")[1].strip() for lab in top_down] == \
        ["L3.0-8b", "L3.0-8b", "L3.1-70b", "L3.1-70b", "L3.2-1b", "L3.2-1b"]
    assert top_down[0].startswith("G2-2b") and top_down[1].startswith("G2-9b")
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert [len(c.get_offsets()) for c in scatters] == [n, n]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Freedom", "Love"]
    assert "mean over 2 prompts" in result.caption
    one = figure3(data.mwlr_pairs(), prompt_id="greatest_ever_one")
    assert "greatest_ever_one" in one.caption


def test_figure3_missing_target_is_named():
    with pytest.raises(InputError, match="Peace"):
        figure3(data.mwlr_pairs(), targets=("Freedom", "Peace"))


# --- Table 1 ----------------------------------------------------------------------------------

def test_table1_shows_spaces_and_escapes_specials(tmp_path):
    table = table1(data.token_scores(), k=13, out_dir=tmp_path)
    assert table.n_total == 40 and len(table.top) == 13 and len(table.bottom) == 13
    assert table.bottom["rank"].tolist() == list(range(28, 41))
    html = (tmp_path / "table1.html").read_text()
    tex = (tmp_path / "table1.tex").read_text()
    assert '<span class="ws" title="space">\u2423</span>Freedom' in html
    assert "<code>&lt;b&gt;</code>" in html and "<b>" not in html
    assert r"\texttt{\textvisiblespace{}Freedom}" in tex
    for escaped in (r"\&", r"100\%", r"\$x\$", r"\#1", r"a\_b", r"\{x\}", r"\textasciitilde{}",
                    r"\textasciicircum{}", r"\textless{}b\textgreater{}"):
        assert escaped in tex, escaped
    assert tex.count(r"\begin{tabular}") == 2 and r"\toprule" in tex


def test_token_rendering_edge_cases():
    assert token_html("\n") == '<span class="ctl">\\n</span>'
    assert token_latex("\n") == r"\textbackslash{}n"
    assert token_latex("a b") == "a b"  # inner spaces stay
    assert token_html("x ").endswith("\u2423</span>")
    assert "(empty)" in token_html("")


def test_table1_reads_implicit_top_bottom_output():
    import pandas as pd

    from rmvalues.implicit import top_bottom

    scores = pd.DataFrame({"prompt_id": "p", "key": [f"t{i}" for i in range(30)],
                           "score": np.linspace(2, -1, 30)})
    tb = top_bottom(scores, k=5, prompt_id="p")
    table = table1(tb, k=5)
    assert table.top["token"].tolist() == ["t0", "t1", "t2", "t3", "t4"]
    assert table.bottom["rank"].tolist() == [26, 27, 28, 29, 30]


# --- Fig 4 / A5 -------------------------------------------------------------------------------

def test_figure4a_lines_per_family_reversed(tmp_path):
    result = figure4a(data.checkpoints(), out_dir=tmp_path)
    _check_files(result, "fig4a")
    axes = result.figure.axes
    assert [ax.get_title() for ax in axes] == ["Agency", "Communion"]
    for ax in axes:
        assert ax.yaxis_inverted()
        assert len(ax.lines) == 2 and all(len(ln.get_xdata()) == 6 for ln in ax.lines)
        assert sorted(_texts(ax)) == ["Gemma", "Llama"]
        assert {ln.get_color() for ln in ax.lines} == {"#DB4437", "#0064E0"}
    a5 = figure_a5a(data.checkpoints(), out_dir=tmp_path)
    _check_files(a5, "figA5a")
    assert all(len(ax.lines) == 3 for ax in a5.figure.axes)
    assert "#7C3AED" in {ln.get_color() for ln in a5.figure.axes[0].lines}


def test_figure4b_final_checkpoint_points_markers_and_gap(tmp_path):
    result = figure4b(data.ablations(), out_dir=tmp_path)
    _check_files(result, "fig4b")
    axes = result.figure.axes
    assert len(axes) == 2
    assert (result.data.median_rank > 0).all()
    # last checkpoint (200) only: 5 runs x 2 families per panel
    assert len(result.data) == 5 * 2 * 2
    want = 650 - 20 + 13 / 10 + 200 / 100  # gemma, Agency, 13k, checkpoint 200
    got = result.data.query("base == 'gemma' and category == 'Agency' and data_size == 13")
    assert np.isclose(got.median_rank.iloc[0], want)
    for ax in axes:
        assert ax.yaxis_inverted()
        scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
        assert len(scatters) == 10
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert labels == ["13k", "27k", "53k", "77k", "632k (GRM)"]
    legend = [t.get_text() for t in result.figure.legends[0].get_texts()]
    assert legend == ["Gemma", "Llama", "uf", "skywork", "uf+skywork"]
    a5 = figure_a5b(data.ablations())
    assert "GRM" not in " ".join(t.get_text() for t in a5.figure.axes[0].get_xticklabels())
    assert "Qwen" in [t.get_text() for t in a5.figure.legends[0].get_texts()]


# --- Fig 5 / A6 -------------------------------------------------------------------------------

def test_figure5_top_and_bottom_movers_coloured_by_category(tmp_path):
    changes = data.rank_changes()
    result = figure5(changes, out_dir=tmp_path)
    _check_files(result, "fig5")
    axes = result.figure.axes
    assert [ax.get_title() for ax in axes] == ["Gemma", "Llama"]
    for ax, family in zip(axes, ("gemma", "llama")):
        bars = ax.patches
        assert len(bars) == 20
        widths = [b.get_width() for b in bars]
        assert widths[:10] == sorted(widths[:10], reverse=True) and min(widths[:10]) >= 0
        sub = changes[changes.base == family]
        change = (sub.rank_first - sub.rank_last).sort_values(ascending=False)
        assert np.isclose(widths[0], change.iloc[0]) and np.isclose(widths[-1], change.iloc[-1])
        colours = {matplotlib.colors.to_hex(b.get_facecolor()) for b in bars}
        assert colours <= {"#3cb371", "#e0a800"}
        assert "preferred later" in _texts(ax) and "preferred earlier" in _texts(ax)
    a6 = figure_a6(changes, out_dir=tmp_path)
    _check_files(a6, "figA6")
    assert [ax.get_title() for ax in a6.figure.axes] == ["Qwen"]


def test_top_movers_accepts_analysis_rank_change_columns():
    changes = data.rank_changes().rename(columns={"token": "item", "rank_first": "rank_start",
                                                  "rank_last": "rank_end"})
    changes["change"] = changes["rank_start"] - changes["rank_end"]
    movers = top_movers(changes.drop(columns=["rank_start", "rank_end"]), n=3)
    assert movers.groupby(["base", "direction"]).size().tolist() == [3] * 6
