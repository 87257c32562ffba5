"""Figures of the FAccT 2025 analyses (``rmvalues compare``), one function each.

Column contracts are those of the tables of :mod:`rmvalues.analysis.compare` (``moments``,
``agreement``, ``mds``, ``rsa``, ``asymmetry``, ``framing``, ``frequency``, ``human``,
``rank_gaps``, ``identity``); ``violins`` takes long score rows (``model, prompt_id, score``).
Each returns a :class:`~rmvalues.report.style.FigureResult` whose ``data`` is the plotted numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rmvalues.errors import InputError
from rmvalues.report.style import (
    DEFAULT_STYLE,
    FigureResult,
    FigureStyle,
    despine,
    figure_context,
    save_figure,
)

if TYPE_CHECKING:
    import pandas as pd


def _need(frame: pd.DataFrame | None, columns: Sequence[str], what: str) -> pd.DataFrame:
    if frame is None or len(frame) == 0:
        raise InputError(f"{what}: the table is empty.")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{what}: table lacks column(s) {missing}.")
    return frame


def _first_prompt(frame: pd.DataFrame, prompt_id: str | None) -> str:
    prompts = sorted(frame["prompt_id"].astype(str).unique())
    if prompt_id is None:
        return "greatest_ever_one" if "greatest_ever_one" in prompts else prompts[0]
    if prompt_id not in prompts:
        raise InputError(f"prompt {prompt_id!r} is not in the table (has {prompts}).")
    return prompt_id


def violins(runs: pd.DataFrame, *, prompt_id: str | None = None, style: FigureStyle = DEFAULT_STYLE,
            out_dir: str | Path | None = None, stem: str = "facct_violins",
            max_points: int = 20000, seed: int = 0) -> FigureResult:
    """Score distribution of each RM under one prompt (FAccT Fig 1), z-scored per RM so RMs on
    different scales share an axis; at most ``max_points`` scores per RM (a fixed-seed sample)."""
    import matplotlib.pyplot as plt
    import numpy as np

    _need(runs, ["model", "prompt_id", "score"], "violins")
    prompt_id = _first_prompt(runs, prompt_id)
    sel = runs[runs["prompt_id"] == prompt_id]
    rng = np.random.default_rng(seed)
    models = sorted(sel["model"].unique())
    data = []
    for m in models:
        x = sel.loc[sel["model"] == m, "score"].to_numpy(float)
        if len(x) > max_points:
            x = rng.choice(x, max_points, replace=False)
        sd = x.std() or 1.0
        data.append((x - x.mean()) / sd)
    with figure_context(style):
        fig, ax = plt.subplots(figsize=(max(3.0, 0.45 * len(models) + 1), 2.6))
        parts = ax.violinplot(data, showmedians=True, widths=0.8)
        for body in parts["bodies"]:
            body.set_alpha(0.6)
        ax.set_xticks(range(1, len(models) + 1))
        ax.set_xticklabels(models, rotation=45, ha="right")
        ax.set_ylabel("score (z within RM)")
        ax.set_title(prompt_id)
        despine(ax)
    paths = save_figure(fig, out_dir, stem, style)
    from scipy.stats import skew

    summary = {m: float(skew(d)) for m, d in zip(models, data, strict=True)}
    return FigureResult(name=stem, figure=fig, paths=paths, data=summary,
                        caption=f"Score distributions under {prompt_id} (z-scored within each RM).")


def skewness(moments: pd.DataFrame, *, style: FigureStyle = DEFAULT_STYLE,
             out_dir: str | Path | None = None, stem: str = "facct_skewness") -> FigureResult:
    """Skewness of each RM's scores per prompt (FAccT Table 3 as a dot plot)."""
    import matplotlib.pyplot as plt
    import numpy as np

    _need(moments, ["model", "prompt_id", "skewness"], "skewness")
    wide = moments.pivot(index="model", columns="prompt_id", values="skewness").sort_index()
    with figure_context(style):
        fig, ax = plt.subplots(figsize=(3.6, 0.3 * len(wide) + 0.8))
        y = np.arange(len(wide))[::-1]
        for i, prompt_id in enumerate(wide.columns):
            ax.scatter(wide[prompt_id], y, s=16, label=prompt_id, marker="os^dv"[i % 5])
        ax.axvline(0, color="0.5", linewidth=0.6)
        ax.set_yticks(y)
        ax.set_yticklabels(wide.index)
        ax.set_xlabel("skewness of scores")
        ax.legend(frameon=False)
        despine(ax)
    paths = save_figure(fig, out_dir, stem, style)
    return FigureResult(name=stem, figure=fig, paths=paths, data=wide,
                        caption="Skewness of each RM's score distribution per prompt.")


def agreement_heatmap(pairs: pd.DataFrame, *, metric: str = "kendall_tau_b", segment: str = "all",
                      prompt_id: str | None = None, style: FigureStyle = DEFAULT_STYLE,
                      out_dir: str | Path | None = None, stem: str | None = None) -> FigureResult:
    """One agreement metric as an annotated RM x RM heatmap (FAccT Fig 2a, A1)."""
    import matplotlib.pyplot as plt

    from rmvalues.analysis.agreement import similarity_matrix

    _need(pairs, ["prompt_id", "segment", "metric", "model_a", "model_b", "value"], "heatmap")
    prompt_id = _first_prompt(pairs, prompt_id)
    stem = stem or f"facct_{metric}_{segment}"
    mat = similarity_matrix(pairs, prompt_id, segment, metric)
    n = len(mat)
    with figure_context(style):
        fig, ax = plt.subplots(figsize=(0.42 * n + 1.6, 0.42 * n + 1.0))
        im = ax.imshow(mat.to_numpy(float), cmap="viridis", vmin=min(0.0, float(mat.min().min())),
                       vmax=1.0)
        ax.set_xticks(range(n))
        ax.set_xticklabels(mat.columns, rotation=45, ha="right")
        ax.set_yticks(range(n))
        ax.set_yticklabels(mat.index)
        if n <= 12:
            for i in range(n):
                for j in range(n):
                    ax.text(j, i, f"{mat.iat[i, j]:.2f}", ha="center", va="center",
                            fontsize=style.font_size - 2.5, color="white" if mat.iat[i, j] < 0.5 else "black")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=f"{metric} ({segment})")
        ax.set_title(prompt_id)
    paths = save_figure(fig, out_dir, stem, style)
    return FigureResult(name=stem, figure=fig, paths=paths, data=mat,
                        caption=f"{metric} between RMs over the shared vocabulary ({segment}; {prompt_id}).")


def mds_map(mds: pd.DataFrame, *, prompt_id: str | None = None, style: FigureStyle = DEFAULT_STYLE,
            out_dir: str | Path | None = None, stem: str = "facct_mds") -> FigureResult:
    """The RMs placed by MDS on 1 - Kendall tau-b (FAccT Fig 2b), coloured by base family."""
    import matplotlib.pyplot as plt

    from rmvalues.report._frames import infer_family

    _need(mds, ["model", "x", "y", "prompt_id"], "MDS")
    prompt_id = _first_prompt(mds, prompt_id)
    sel = mds[mds["prompt_id"] == prompt_id]
    with figure_context(style):
        fig, ax = plt.subplots(figsize=(3.2, 3.0))
        for row in sel.itertuples():
            ax.scatter(row.x, row.y, s=30, color=style.family_color(infer_family(str(row.model))))
            ax.annotate(str(row.model), (row.x, row.y), fontsize=style.font_size - 2,
                        xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("MDS 1")
        ax.set_ylabel("MDS 2")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(f"{prompt_id} (stress {sel['stress'].iloc[0]:.3f})")
        despine(ax)
    paths = save_figure(fig, out_dir, stem, style)
    return FigureResult(name=stem, figure=fig, paths=paths, data=sel,
                        caption="Metric MDS of the RMs on 1 - Kendall tau-b (colour: base family).")


def rsa_bars(rsa: pd.DataFrame, *, style: FigureStyle = DEFAULT_STYLE,
             out_dir: str | Path | None = None, stem: str = "facct_rsa") -> FigureResult:
    """RSA: Spearman correlation of RM similarity with each model feature, per prompt (Fig 2c)."""
    import matplotlib.pyplot as plt
    import numpy as np

    _need(rsa, ["prompt_id", "feature", "spearman_rho", "p_perm"], "RSA")
    wide = rsa.pivot(index="feature", columns="prompt_id", values="spearman_rho")
    pw = rsa.pivot(index="feature", columns="prompt_id", values="p_perm")
    with figure_context(style):
        fig, ax = plt.subplots(figsize=(3.6, 2.4))
        x = np.arange(len(wide))
        width = 0.8 / max(len(wide.columns), 1)
        for i, prompt_id in enumerate(wide.columns):
            bars = ax.bar(x + i * width, wide[prompt_id], width, label=prompt_id)
            for bar, p in zip(bars, pw[prompt_id], strict=True):
                if p < 0.05:
                    ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), "*", ha="center")
        ax.set_xticks(x + width * (len(wide.columns) - 1) / 2)
        ax.set_xticklabels(wide.index)
        ax.axhline(0, color="0.5", linewidth=0.6)
        ax.set_ylabel("Spearman rho with RM similarity")
        ax.legend(frameon=False)
        despine(ax)
    paths = save_figure(fig, out_dir, stem, style)
    return FigureResult(name=stem, figure=fig, paths=paths, data=wide,
                        caption="RSA of RM agreement with model features; * Mantel permutation p < 0.05.")


def _interval_figure(frame: pd.DataFrame, estimate: str, label_cols: Sequence[str], xlabel: str, *,
                     style: FigureStyle, out_dir: str | Path | None, stem: str, caption: str,
                     row_height: float = 0.18) -> FigureResult:
    """Estimates with their 95% intervals (``ci_low``, ``ci_high``), one labelled row each."""
    import matplotlib.pyplot as plt
    import numpy as np

    with figure_context(style):
        fig, ax = plt.subplots(figsize=(4.0, row_height * len(frame) + 0.8))
        y = np.arange(len(frame))[::-1]
        est = frame[estimate].to_numpy(float)
        ax.errorbar(est, y, xerr=[est - frame["ci_low"], frame["ci_high"] - est], fmt="o",
                    color="black", markersize=3, capsize=2)
        ax.axvline(0, color="0.5", linewidth=0.6)
        ax.set_yticks(y)
        ax.set_yticklabels([" | ".join(map(str, row)) for row in frame[list(label_cols)].itertuples(index=False)],
                           fontsize=style.font_size - 2)
        ax.set_xlabel(xlabel)
        despine(ax)
    paths = save_figure(fig, out_dir, stem, style)
    return FigureResult(name=stem, figure=fig, paths=paths, data=frame, caption=caption)


def asymmetry_plot(asym: pd.DataFrame, *, style: FigureStyle = DEFAULT_STYLE,
                   out_dir: str | Path | None = None, stem: str = "facct_asymmetry") -> FigureResult:
    """Top minus bottom agreement with its model-bootstrap CI, per prompt and metric."""
    _need(asym, ["prompt_id", "metric", "top_minus_bottom", "ci_low", "ci_high"], "asymmetry")
    frame = asym.sort_values(["metric", "prompt_id"]).reset_index(drop=True)
    return _interval_figure(frame, "top_minus_bottom", ["metric", "prompt_id"],
                            "agreement at the top minus at the bottom", style=style, out_dir=out_dir,
                            stem=stem, row_height=0.28,
                            caption="Asymmetry of RM agreement: top minus bottom, 95% model-bootstrap CI.")


def framing_slopes(framing: pd.DataFrame, *, style: FigureStyle = DEFAULT_STYLE,
                   out_dir: str | Path | None = None, stem: str = "facct_framing") -> FigureResult:
    """Score-on-sentiment slopes with 95% CIs per RM, prompt and valence (FAccT Fig 3c)."""
    _need(framing, ["model", "prompt_id", "valence", "slope", "ci_low", "ci_high"], "framing")
    frame = framing.sort_values(["prompt_id", "valence", "model"]).reset_index(drop=True)
    return _interval_figure(frame, "slope", ["prompt_id", "valence", "model"],
                            "slope of score on AFINN sentiment", style=style, out_dir=out_dir,
                            stem=stem, row_height=0.16,
                            caption="Sentiment slopes (OLS, 95% CI), positive and negative words "
                                    "fitted separately.")


def frequency_slopes(frequency: pd.DataFrame, *, style: FigureStyle = DEFAULT_STYLE,
                     out_dir: str | Path | None = None, stem: str = "facct_frequency") -> FigureResult:
    """Log-frequency slopes (controlling for sentiment) with 95% CIs per RM and prompt (Fig 3d)."""
    _need(frequency, ["model", "prompt_id", "slope", "ci_low", "ci_high"], "frequency")
    frame = frequency.sort_values(["prompt_id", "model"]).reset_index(drop=True)
    return _interval_figure(frame, "slope", ["prompt_id", "model"], "slope of score on log BNC frequency",
                            style=style, out_dir=out_dir, stem=stem,
                            caption="Frequency slopes (OLS with sentiment as covariate, 95% CI).")


def human_tau(human: pd.DataFrame, *, style: FigureStyle = DEFAULT_STYLE,
              out_dir: str | Path | None = None, stem: str = "facct_human_tau") -> FigureResult:
    """Kendall tau-b between each RM and the human Elo, per prompt (FAccT Fig A5, first row)."""
    import matplotlib.pyplot as plt

    _need(human, ["model", "prompt_id", "kendall_tau_b"], "human tau")
    wide = human.pivot(index="model", columns="prompt_id", values="kendall_tau_b").sort_index()
    with figure_context(style):
        fig, ax = plt.subplots(figsize=(0.9 * len(wide.columns) + 2.4, 0.3 * len(wide) + 0.9))
        im = ax.imshow(wide.to_numpy(float), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(wide.columns)))
        ax.set_xticklabels(wide.columns, rotation=30, ha="right")
        ax.set_yticks(range(len(wide)))
        ax.set_yticklabels(wide.index)
        for i in range(wide.shape[0]):
            for j in range(wide.shape[1]):
                ax.text(j, i, f"{wide.iat[i, j]:.2f}", ha="center", va="center",
                        fontsize=style.font_size - 2, color="white")
        fig.colorbar(im, ax=ax, label="Kendall tau-b with human Elo")
    paths = save_figure(fig, out_dir, stem, style)
    return FigureResult(name=stem, figure=fig, paths=paths, data=wide,
                        caption="Agreement of each RM with EloEverything human preferences.")


def rank_gap_bars(gaps: pd.DataFrame, *, prompt_id: str | None = None,
                  style: FigureStyle = DEFAULT_STYLE, out_dir: str | Path | None = None,
                  stem: str = "facct_rank_gaps") -> FigureResult:
    """Entities with the largest median-model-rank minus human-rank gaps (FAccT Fig A7)."""
    import matplotlib.pyplot as plt
    import numpy as np

    _need(gaps, ["prompt_id", "candidate", "gap"], "rank gaps")
    prompt_id = _first_prompt(gaps, prompt_id)
    sel = gaps[gaps["prompt_id"] == prompt_id].sort_values("gap").reset_index(drop=True)
    with figure_context(style):
        fig, ax = plt.subplots(figsize=(4.0, 0.16 * len(sel) + 0.8))
        y = np.arange(len(sel))
        ax.barh(y, sel["gap"], color=["#5aae61" if g < 0 else "#9970ab" for g in sel["gap"]])
        ax.set_yticks(y)
        ax.set_yticklabels(sel["candidate"], fontsize=style.font_size - 2)
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_xlabel("median model rank minus human rank")
        ax.set_title(prompt_id)
        despine(ax)
    paths = save_figure(fig, out_dir, stem, style)
    return FigureResult(name=stem, figure=fig, paths=paths, data=sel,
                        caption="Largest human-vs-model rank gaps (> 0: humans rank the entity higher).")


def identity_ranks(identity: pd.DataFrame, *, prompt_id: str | None = None,
                   style: FigureStyle = DEFAULT_STYLE, out_dir: str | Path | None = None,
                   stem: str = "facct_identity") -> FigureResult:
    """Identity terms' percentile ranks (mean over RMs) against their null 95% band; flagged terms
    (in any RM) in colour."""
    import matplotlib.pyplot as plt
    import numpy as np

    _need(identity, ["prompt_id", "term", "percentile", "null_low", "null_high", "flag"], "identity")
    prompt_id = _first_prompt(identity, prompt_id)
    sel = identity[identity["prompt_id"] == prompt_id]
    agg = (sel.groupby("term").agg(percentile=("percentile", "mean"), null_low=("null_low", "mean"),
                                   null_high=("null_high", "mean"),
                                   flagged=("flag", lambda f: int((f != "").sum())))
           .sort_values("percentile").reset_index())
    with figure_context(style):
        fig, ax = plt.subplots(figsize=(3.6, 0.14 * len(agg) + 0.8))
        y = np.arange(len(agg))
        ax.hlines(y, agg["null_low"], agg["null_high"], color="0.8", linewidth=2)
        colors = ["#d6604d" if f else "black" for f in agg["flagged"]]
        ax.scatter(agg["percentile"], y, s=10, color=colors, zorder=2)
        ax.set_yticks(y)
        ax.set_yticklabels(agg["term"], fontsize=style.font_size - 2.5)
        ax.set_xlim(0, 1)
        ax.set_xlabel("percentile rank (1 = top), mean over RMs")
        ax.set_title(prompt_id)
        despine(ax)
    paths = save_figure(fig, out_dir, stem, style)
    return FigureResult(name=stem, figure=fig, paths=paths, data=agg,
                        caption="Identity terms vs frequency-matched random words (grey: null 95% band; "
                                "red: flagged in at least one RM, BH-adjusted).")


def compare_figures(result, *, style: FigureStyle = DEFAULT_STYLE, out_dir: str | Path | None = None
                    ) -> tuple[list[FigureResult], list[str]]:
    """Every figure a :class:`~rmvalues.analysis.compare.CompareResult` supports; names skipped."""
    t = result.tables
    plan = [
        ("FAccT Fig. 1 (violins)", result.runs, lambda: violins(result.runs, style=style, out_dir=out_dir)),
        ("FAccT Table 3 (skewness)", t.get("moments"), lambda: skewness(t["moments"], style=style, out_dir=out_dir)),
        ("FAccT Fig. 2a (Kendall tau-b)", t.get("agreement"), lambda: agreement_heatmap(
            t["agreement"], style=style, out_dir=out_dir)),
        ("FAccT Fig. A1 (RBO_ext, top)", t.get("agreement"), lambda: agreement_heatmap(
            t["agreement"], metric="rbo_ext", segment="top", style=style, out_dir=out_dir)),
        ("FAccT Fig. A1 (RBO_ext, bottom)", t.get("agreement"), lambda: agreement_heatmap(
            t["agreement"], metric="rbo_ext", segment="bottom", style=style, out_dir=out_dir)),
        ("FAccT Fig. 2b (MDS)", t.get("mds"), lambda: mds_map(t["mds"], style=style, out_dir=out_dir)),
        ("FAccT Fig. 2c (RSA)", t.get("rsa"), lambda: rsa_bars(t["rsa"], style=style, out_dir=out_dir)),
        ("Asymmetry (top vs bottom)", t.get("asymmetry"), lambda: asymmetry_plot(
            t["asymmetry"], style=style, out_dir=out_dir)),
        ("FAccT Fig. 3c (framing)", t.get("framing"), lambda: framing_slopes(
            t["framing"], style=style, out_dir=out_dir)),
        ("FAccT Fig. 3d (frequency)", t.get("frequency"), lambda: frequency_slopes(
            t["frequency"], style=style, out_dir=out_dir)),
        ("FAccT Fig. A5 (human Elo)", t.get("human"), lambda: human_tau(t["human"], style=style, out_dir=out_dir)),
        ("FAccT Fig. A7 (rank gaps)", t.get("rank_gaps"), lambda: rank_gap_bars(
            t["rank_gaps"], style=style, out_dir=out_dir)),
        ("Identity terms", t.get("identity"), lambda: identity_ranks(
            t["identity"], style=style, out_dir=out_dir)),
    ]
    results, skipped = [], []
    for title, data, draw in plan:
        if data is None or len(data) == 0:
            skipped.append(title)
            continue
        try:
            fig = draw()
        except InputError as exc:
            skipped.append(f"{title} ({exc})")
            continue
        fig.title = title
        results.append(fig)
    return results, skipped


def report_from_compare(result, runs: Sequence[str | Path], out_dir: str | Path,
                        style: FigureStyle = DEFAULT_STYLE) -> Path:
    """The HTML report of a compare result: its FAccT section plus the input runs' manifests and
    the lexicon used, so the page carries its own provenance."""
    import json

    from rmvalues.report.html import ReportInputs, render_report
    from rmvalues.store.manifest import manifest_path

    manifests = {}
    for run in runs:
        path = Path(run)
        candidates = [manifest_path(path)] + (sorted(path.glob("*.manifest.json")) if path.is_dir() else [])
        for found in candidates:
            if found.is_file():
                manifests[f"{path.name}:{found.name}" if path.is_dir() else path.name] = json.loads(
                    found.read_text("utf-8"))
    lexicons = [result.settings.get("identity_lexicon")] if "identity" in result.tables else []
    inputs = ReportInputs(title="rmvalues compare (FAccT 2025 analyses)", facct=result,
                          manifests=manifests, lexicons=[x for x in lexicons if x])
    return render_report(inputs, out_dir, style=style)
