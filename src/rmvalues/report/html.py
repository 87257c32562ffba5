"""The self-contained HTML report: every figure, statistics table, token list, lexicon, prompt set
and provenance manifest of a set of runs, in one file a reviewer can open offline.

Images are embedded as base64 PNG, styles are inline, and nothing is fetched when the page opens.
Figures are also written beside the report as PNG + PDF for papers. Each figure is drawn only when
its input table is present; a missing input is listed in the report, never an error.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html as _html
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues import __version__
from rmvalues.errors import InputError
from rmvalues.io import atomic_write_text
from rmvalues.report.style import DEFAULT_STYLE, FigureResult, FigureStyle

if TYPE_CHECKING:
    import pandas as pd

    from rmvalues.report.tokens import TokenTable

#: Section ids of the report, in page order (tests and links rely on them).
SECTIONS: tuple[tuple[str, str], ...] = (
    ("overview", "Overview"),
    ("figures", "Figures"),
    ("statistics", "Statistics"),
    ("facct", "FAccT 2025 analyses"),
    ("tokens", "Top and bottom tokens"),
    ("lexicons", "Lexicons"),
    ("prompts", "Prompt sets"),
    ("provenance", "Provenance"),
)


@dataclass
class ReportInputs:
    """Everything a report can show; every field is optional.

    Tables follow the column contracts of the figure functions (see each module's docstring).
    ``tables`` holds further statistics tables by title (mixed-model fixed effects, F tests,
    ANOVA, effect sizes, ...), shown in order. ``manifests`` maps a run's name to its manifest
    dict (:meth:`rmvalues.store.manifest.RunManifest.to_dict`).
    """

    title: str = "rmvalues report"
    lexicon_label: str = "Big Two"  # the lexicon of ``units`` (Fig 1a), as figures name it
    mfd_label: str = "MFD 2.0"  # the lexicon of ``mfd_units`` (Fig 1b)
    units: pd.DataFrame | None = None  # Fig 1 / A1: RM median-rank units
    panel_tests: pd.DataFrame | None = None  # Fig 1 stars
    mfd_units: pd.DataFrame | None = None  # Fig 1b / A1b (MFD 2.0)
    mfd_panel_tests: pd.DataFrame | None = None
    lm_units: pd.DataFrame | None = None  # Fig 2
    lm_tests: pd.DataFrame | None = None
    mwlr_pairs: pd.DataFrame | None = None  # Fig 3
    token_scores: pd.DataFrame | None = None  # Table 1
    checkpoints: pd.DataFrame | None = None  # Fig 4a / A5a
    ablations: pd.DataFrame | None = None  # Fig 4b / A5b
    rank_changes: pd.DataFrame | None = None  # Fig 5 / A6
    search_results: pd.DataFrame | None = None  # response search (report.search)
    debias_gap: pd.DataFrame | None = None  # rmvalues mitigate debias: gap before/after
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # preformatted summaries by title
    lexicons: list[Any] = field(default_factory=list)  # names, LexiconInfo or dicts
    prompt_sets: dict[str, pd.DataFrame] = field(default_factory=dict)
    manifests: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # per-figure keyword overrides
    left_out: list[str] = field(default_factory=list)  # inputs found but not drawn, said so
    facct: Any = None  # a rmvalues.analysis.compare.CompareResult: the FAccT 2025 section


@dataclass
class _Figure:
    id: str
    title: str
    caption: str
    png_b64: str
    width_px: int  # display width: the printed size at a comfortable screen scale
    files: list[str]


def _token_tables(inputs: ReportInputs, out: Path) -> tuple[TokenTable, str]:
    """Table 1, once per model pair when the scores name their pairs (``p_model``/``q_model``)."""
    from rmvalues.report.tokens import table1

    scores = inputs.token_scores
    opts = inputs.options.get("table1", {})
    if not {"p_model", "q_model"} <= set(scores.columns) \
            or len(scores[["p_model", "q_model"]].drop_duplicates()) < 2:
        table = table1(scores, out_dir=out / "tables", **opts)
        return table, table.to_html()
    parts, first = [], None
    groups = scores.groupby(["p_model", "q_model"], sort=True, observed=True)
    for i, ((p, q), frame) in enumerate(groups, start=1):
        table = table1(frame, out_dir=out / "tables", stem=f"table1_pair{i:02d}", **opts)
        first = first or table
        parts.append(f"<h4>{_html.escape(str(p))} \u2192 {_html.escape(str(q))}</h4>{table.to_html()}")
    return first, "\n".join(parts)


def build_figures(inputs: ReportInputs, out_dir: Path | None, style: FigureStyle = DEFAULT_STYLE
                  ) -> tuple[list[FigureResult], list[str]]:
    """Draw every figure whose input is present; returns results and the names skipped."""
    from rmvalues.report import debias, lm_ranks, mwlr, rm_ranks, search, training
    from rmvalues.report._frames import families_in

    opts = inputs.options
    a, b = inputs.lexicon_label, inputs.mfd_label
    fig1 = {"lexicon_label": a, **opts.get("fig1", {})}
    fig1b = {"lexicon_label": b, **opts.get("fig1b", {})}
    plan: list[tuple[str, Any, Callable[[], FigureResult]]] = [
        (f"Fig. 1a ({a})", inputs.units, lambda: rm_ranks.figure1(
            inputs.units, inputs.panel_tests, style=style, out_dir=out_dir, stem="fig1a", **fig1)),
        (f"Fig. A1a ({a})", inputs.units, lambda: rm_ranks.figure_a1(
            inputs.units, inputs.panel_tests, style=style, out_dir=out_dir, stem="figA1a", **fig1)),
        (f"Fig. 1b ({b})", inputs.mfd_units, lambda: rm_ranks.figure1(
            inputs.mfd_units, inputs.mfd_panel_tests, style=style, out_dir=out_dir, stem="fig1b",
            **fig1b)),
        (f"Fig. A1b ({b})", inputs.mfd_units, lambda: rm_ranks.figure_a1(
            inputs.mfd_units, inputs.mfd_panel_tests, style=style, out_dir=out_dir,
            stem="figA1b", **fig1b)),
        ("Fig. 2", inputs.lm_units, lambda: lm_ranks.figure2(
            inputs.lm_units, inputs.lm_tests, style=style, out_dir=out_dir,
            **opts.get("fig2", {}))),
        ("Fig. 3", inputs.mwlr_pairs, lambda: mwlr.figure3(
            inputs.mwlr_pairs, style=style, out_dir=out_dir, **opts.get("fig3", {}))),
        ("Fig. 4a", inputs.checkpoints, lambda: training.figure4a(
            inputs.checkpoints, style=style, out_dir=out_dir, **opts.get("fig4a", {}))),
        ("Fig. A5a", inputs.checkpoints, lambda: training.figure_a5a(
            inputs.checkpoints, style=style, out_dir=out_dir, **opts.get("fig4a", {}))),
        ("Fig. 4b", inputs.ablations, lambda: training.figure4b(
            inputs.ablations, style=style, out_dir=out_dir, **opts.get("fig4b", {}))),
        ("Fig. A5b", inputs.ablations, lambda: training.figure_a5b(
            inputs.ablations, style=style, out_dir=out_dir, **opts.get("fig4b", {}))),
        ("Fig. 5", inputs.rank_changes, lambda: training.figure5(
            inputs.rank_changes, style=style, out_dir=out_dir, **opts.get("fig5", {}))),
        ("Fig. A6", inputs.rank_changes, lambda: training.figure_a6(
            inputs.rank_changes, style=style, out_dir=out_dir, **opts.get("fig5", {}))),
        ("Response search", inputs.search_results, lambda: search.search_figure(
            inputs.search_results, style=style, out_dir=out_dir, **opts.get("search", {}))),
        ("Debias", inputs.debias_gap, lambda: debias.figure_debias(
            inputs.debias_gap, style=style, out_dir=out_dir, **opts.get("debias", {}))),
    ]
    if inputs.units is not None and "base" not in inputs.units.columns:  # one RM, or no families
        from rmvalues.report.categories import category_figure

        plan.insert(0, (f"Median rank by category and framing ({a})", inputs.units,
                        lambda: category_figure(inputs.units, lexicon_label=a, style=style,
                                                out_dir=out_dir)))
        plan = [p for p in plan if not p[0].startswith(("Fig. 1a", "Fig. A1a"))]
    contrasts = inputs.tables.get("contrasts")
    if contrasts is not None and "checkpoint" in contrasts.columns:
        from rmvalues.report.categories import contrast_curve

        plan.insert(1, ("Category contrast across checkpoints", contrasts,
                        lambda: contrast_curve(contrasts, style=style, out_dir=out_dir)))
    appendix_only = {"Fig. A5a": inputs.checkpoints, "Fig. A5b": inputs.ablations,
                     "Fig. A6": inputs.rank_changes}
    results: list[FigureResult] = []
    skipped: list[str] = []
    for title, data, draw in plan:
        if data is None or len(data) == 0:
            skipped.append(title)
            continue
        if title in appendix_only and not families_in(data) - set(training.MAIN_FAMILIES):
            continue  # the appendix versions only add families beyond the main text's
        try:
            result = draw()
        except InputError as exc:  # an input that does not fit is reported, not fatal
            skipped.append(f"{title} ({exc})")
            continue
        result.title = title
        results.append(result)
    return results, skipped


def _png(result: FigureResult, style: FigureStyle) -> tuple[str, int]:
    """The PNG of ``result`` (the written file, or a fresh render) as base64, and the width in
    CSS pixels at which it shows its printed size x 1.4 (figures are sized for a paper column)."""
    import io
    import struct

    png = result.paths.get("png")
    dpi = style.dpi
    if png is not None and png.exists():
        data = png.read_bytes()
    else:
        buffer = io.BytesIO()
        dpi = min(style.dpi, 200)
        result.figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        data = buffer.getvalue()
    width = struct.unpack(">I", data[16:20])[0]  # IHDR width
    return base64.b64encode(data).decode("ascii"), round(width / dpi * 96 * 1.4)


# --- tables -----------------------------------------------------------------------------------

def _is_p_column(column: str) -> bool:
    lowered = column.lower()
    return lowered in {"p", "pr(>f)", "pr(>|t|)"} or lowered.startswith("p_") \
        or lowered.endswith("_p")


def _format_cell(column: str, value: Any) -> str:
    """Numbers formatted for reading: p-values to 3 significant digits, counts as integers."""
    import numbers

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        number = float(value)
        if _is_p_column(column):
            if number == 0:
                return "&lt;&thinsp;1e-300"  # underflow: smaller than a double can hold
            return f"{number:.2e}" if number < 0.001 else f"{number:.3f}"
        if column.lower() in {"n", "df", "num_df", "den_df", "n_units"} and number.is_integer():
            return f"{int(number):,}"
        if number != 0 and (abs(number) >= 1e6 or abs(number) < 1e-3):
            return f"{number:.3e}"
        return f"{number:.3f}" if abs(number) < 1000 else f"{number:,.1f}"
    return _html.escape(str(value))


def table_html(frame: pd.DataFrame, max_rows: int = 200) -> str:
    """``frame`` as an HTML table (numbers right-aligned and formatted, index dropped)."""
    import numbers

    shown = frame.head(max_rows)
    head = "".join(f"<th>{_html.escape(str(c))}</th>" for c in shown.columns)
    rows = []
    for record in shown.itertuples(index=False):
        cells = []
        for column, value in zip(shown.columns, record):
            numeric = isinstance(value, numbers.Real) and not isinstance(value, bool)
            long_text = isinstance(value, str) and len(value) > 40
            cls = ' class="num"' if numeric else (' class="wrap"' if long_text else "")
            cells.append(f"<td{cls}>{_format_cell(str(column), value)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = (f'<p class="note">{len(frame) - max_rows:,} more rows not shown.</p>'
            if len(frame) > max_rows else "")
    return (f'<div class="table-wrap"><table class="stats"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>{more}')


def _panel_note(panels: pd.DataFrame) -> str:
    """What the panel table's effect sizes and permutation p are (analysis.panel_notes)."""
    from rmvalues.analysis.hypothesis_tests import panel_notes

    if not {"n_resamples", "correction", "d_rms"} <= set(panels.columns):
        return ""
    return "".join(f'<p class="note">{_html.escape(n)}</p>' for n in panel_notes(panels))


def panel_view(panels: pd.DataFrame) -> pd.DataFrame:
    """Panel tests as a reader wants them: estimate, SE, df, p (raw and corrected) and each
    effect size with its CI in one cell. Unknown layouts are shown unchanged."""
    need = {"diff", "t", "df", "p_welch", "d_rms", "d_rms_lo", "d_rms_hi"}
    if not need <= set(panels.columns):
        return panels
    keys = [c for c in ("category", "framing") if c in panels.columns]
    view = panels[keys].astype(str).copy()
    if {"group_a", "group_b"} <= set(panels.columns):
        view["contrast"] = panels["group_a"].astype(str) + " \u2212 " + panels["group_b"].astype(str)
    if {"n_a", "n_b"} <= set(panels.columns):
        view["n"] = panels["n_a"].astype(str) + " / " + panels["n_b"].astype(str)
    for column in ("mean_a", "sd_a", "mean_b", "sd_b"):
        if column in panels.columns:
            view[column] = panels[column]
    view["estimate"] = panels["diff"]
    view["SE"] = panels["diff"] / panels["t"]  # Welch SE of the difference
    view["df"] = panels["df"]
    view["t"] = panels["t"]
    for column in ("p_welch", "p_welch_adj", "p_perm", "p_perm_adj"):
        if column in panels.columns:
            view[column] = panels[column]
    for column in ("stars", "stars_welch", "stars_perm"):
        if column in panels.columns:
            view[column] = panels[column]
    # d_rms: Cohen's d with averaged variances; d_av: Lakens' mean-of-SDs d (effect_sizes.EFFECT_NOTE)
    for kind in ("d_rms", "d_av", "hedges_g", "cohen_d"):
        if {kind, f"{kind}_lo", f"{kind}_hi"} <= set(panels.columns):
            view[f"{kind} [95% CI]"] = [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in
                                        zip(panels[kind], panels[f"{kind}_lo"],
                                            panels[f"{kind}_hi"])]
    return view


# --- lexicons, prompts, manifests -------------------------------------------------------------

def _lexicon_record(item: Any) -> dict[str, str]:
    """Name, description, citation and source of a lexicon given by name, info object or dict."""
    if isinstance(item, str):
        from rmvalues.lexicons.registry import lexicon_specs

        spec = lexicon_specs().get(item)
        if spec is None:
            return {"name": item, "description": "", "citation": "(user lexicon)", "source": "",
                    "sha256": ""}
        item = spec.info()
    if isinstance(item, Mapping):
        data = dict(item)
    else:
        data = {k: getattr(item, k, "") for k in ("name", "description", "citation", "source",
                                                   "sha256")}
    return {k: str(data.get(k) or "") for k in ("name", "description", "citation", "source",
                                                 "sha256", "categories")}


def _lexicons_from_manifests(manifests: Mapping[str, Mapping[str, Any]]) -> list[Any]:
    """Lexicons named in run manifests (``fields.lexicon`` / ``fields.lexicons``)."""
    found: list[Any] = []
    for manifest in manifests.values():
        fields = manifest.get("fields", {}) if isinstance(manifest, Mapping) else {}
        for key in ("lexicon", "lexicons"):
            value = fields.get(key)
            if isinstance(value, str):
                found.append(value)
            elif isinstance(value, Mapping):  # {name: {sha256, source}} or one info dict
                found.extend([value] if "name" in value else list(value))
            elif isinstance(value, list):
                found.extend(value)
    return found


def _prompt_sets(inputs: ReportInputs) -> list[dict[str, str]]:
    """Prompt sets shown: those given, those named in manifests, and any built-in set whose ids
    cover every prompt of the units (the released data use the paper's 54 prompts)."""
    from rmvalues.prompts import builtin_prompt_sets, load_prompt_set

    names: list[str] = []
    for manifest in inputs.manifests.values():
        fields = manifest.get("fields", {}) if isinstance(manifest, Mapping) else {}
        for key in ("prompt_set", "prompts", "prompt_sets"):
            value = fields.get(key)
            names += [value] if isinstance(value, str) else \
                [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
    used: set[str] = set()
    for frame in (inputs.units, inputs.mfd_units, inputs.lm_units):
        if frame is not None and "prompt_id" in frame.columns:
            used |= set(map(str, frame["prompt_id"].unique()))
    builtins = builtin_prompt_sets()
    if used:
        for name in builtins:
            if used <= set(load_prompt_set(name).ids):
                names.append(name)
                break
    recorded = recorded_prompt_sets(inputs.manifests)
    out: list[dict[str, str]] = []
    for name, frame in inputs.prompt_sets.items():
        if frame is not None:
            out.append({"name": name, "description": "", "citation": "",
                        "table": table_html(frame, max_rows=500)})
    for name in dict.fromkeys(names):
        if name not in inputs.prompt_sets and name not in builtins and name in recorded:
            out.append({"name": name, "description": "as recorded in the run manifest",
                        "citation": "", "table": table_html(recorded[name], max_rows=500)})
        if name in inputs.prompt_sets or name not in builtins:
            continue
        prompt_set = load_prompt_set(name)
        out.append({"name": prompt_set.name, "description": prompt_set.description,
                    "citation": prompt_set.citation,
                    "table": table_html(prompt_set.to_frame(), max_rows=500)})
    return out


def _dedupe(items: Iterable[Any]) -> list[dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for item in items:
        record = _lexicon_record(item)
        if record["name"] and (record["name"] not in out or not out[record["name"]]["citation"]):
            out[record["name"]] = record
    return list(out.values())


_MANIFEST_KEYS = ("kind", "package_version", "created", "python")
#: Provenance facts looked up anywhere in a manifest's fields (stages nest them differently).
_FIELD_KEYS = ("model", "source", "revision", "weights_fingerprint", "dtype", "head",
               "template_hash", "prompt_set", "lexicon", "mode", "device_type", "config_hash")


def _find_key(value: Any, key: str, depth: int = 3) -> Any:
    """The first value stored under ``key`` in nested dicts/lists, breadth first."""
    level = [value]
    for _ in range(depth + 1):
        nxt: list[Any] = []
        for item in level:
            if isinstance(item, Mapping):
                if key in item and not isinstance(item[key], (Mapping, list)):
                    return item[key]
                nxt += list(item.values())
            elif isinstance(item, list):
                nxt += item
        level = nxt
    return None


def _manifest_summary(name: str, manifest: Mapping[str, Any]) -> dict[str, str]:
    """The provenance facts a reviewer looks for first, as one table row."""
    fields = manifest.get("fields", {}) or {}
    row = {"run": name}
    for key in _MANIFEST_KEYS:
        row[key] = str(manifest.get(key, ""))
    for key in _FIELD_KEYS:
        found = _find_key(fields, key)
        if found is not None:
            row[key] = str(found)
    libs = manifest.get("libraries", {}) or {}
    row["libraries"] = ", ".join(f"{k} {v}" for k, v in libs.items() if v)
    return row


# --- assembly ---------------------------------------------------------------------------------

def render_report(
    inputs: ReportInputs,
    out_dir: str | Path,
    *,
    style: FigureStyle = DEFAULT_STYLE,
    figures: Sequence[FigureResult] | None = None,
) -> Path:
    """Draw the figures (into ``out_dir/figures``) and write ``out_dir/report.html``."""
    import pandas as pd
    from jinja2 import Environment, PackageLoader, select_autoescape


    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create report folder {out}: {exc}; pass a writable --out") from None
    skipped: list[str] = []
    if figures is None:
        figures, skipped = build_figures(inputs, out / "figures", style)
    shown = []
    for r in figures:
        png_b64, width_px = _png(r, style)
        shown.append(_Figure(
            id=r.name, title=r.title or r.name, caption=r.caption, png_b64=png_b64,
            width_px=width_px,
            files=[str(p.relative_to(out)) if p.is_relative_to(out) else str(p)
                   for p in r.paths.values()]))
    for r in figures:
        r.close()

    facct = _facct_section(inputs.facct, out, style) if inputs.facct is not None else None

    skipped.extend(inputs.left_out)
    token_table: TokenTable | None = None
    token_html = ""
    if inputs.token_scores is not None and len(inputs.token_scores):
        try:
            token_table, token_html = _token_tables(inputs, out)
        except InputError as exc:  # reported like a figure whose input does not fit
            skipped.append(f"Table 1 ({exc})")

    stats: list[tuple[str, str]] = []
    if inputs.panel_tests is not None and len(inputs.panel_tests):
        title = (f"Panel tests, {inputs.lexicon_label} (Welch and permutation; corrected p; "
                 "effect sizes with bootstrap CIs)")
        stats.append((title, table_html(panel_view(inputs.panel_tests)) + _panel_note(inputs.panel_tests)))
    if inputs.mfd_panel_tests is not None and len(inputs.mfd_panel_tests):
        stats.append((f"Panel tests, {inputs.mfd_label}",
                      table_html(panel_view(inputs.mfd_panel_tests)) + _panel_note(inputs.mfd_panel_tests)))
    if inputs.lm_tests is not None and len(inputs.lm_tests):
        stats.append(("Log-prob rank tests (Fig. 2)", table_html(inputs.lm_tests)))
    if inputs.search_results is not None and len(inputs.search_results):
        from rmvalues.report.search import search_table

        stats.append(("Response search: best responses and margins over the best single token",
                      table_html(search_table(inputs.search_results))))
    from rmvalues.report.tables import write_table

    for title, frame in inputs.tables.items():
        if frame is not None and len(frame):
            stats.append((title, table_html(frame)))
            write_table(frame, out / "tables", title.replace(" ", "_"))
    for name, frame in (("panel_tests", inputs.panel_tests), ("mfd_panel_tests", inputs.mfd_panel_tests)):
        if frame is not None and len(frame):
            write_table(frame, out / "tables", name)
    fig1 = next((f for f in figures if f.name == "fig1a"), None)
    if fig1 is not None:
        summary = fig1.data.drop(columns=["stars"])  # exactly what Fig. 1a shows
        framing_rank = summary["framing"].map({"positive": 0, "negative": 1}).fillna(2)
        summary = (summary.assign(_f=framing_rank).sort_values(["_f", "category", "base"])
                   .drop(columns="_f"))
        stats.insert(0, ("Fig. 1a panel means (grand mean, SD, SE over units)",
                         table_html(summary)))

    lexicons = _dedupe([*inputs.lexicons, *_lexicons_from_manifests(inputs.manifests)])
    prompt_sets = _prompt_sets(inputs)
    manifests = [(name, _manifest_summary(name, m), json.dumps(m, indent=2, default=str))
                 for name, m in inputs.manifests.items()]
    manifest_table = (table_html(pd.DataFrame([row for _, row, _ in manifests]))
                      if manifests else "")
    overview = _overview(inputs)

    env = Environment(loader=PackageLoader("rmvalues.report", "templates"),
                      autoescape=select_autoescape(["html", "jinja"]), trim_blocks=True,
                      lstrip_blocks=True)
    page = env.get_template("report.html.jinja").render(
        title=inputs.title,
        generated=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        version=__version__,
        sections=SECTIONS,
        overview=overview,
        figures=shown,
        skipped=skipped,
        stats=stats,
        texts=list(inputs.texts.items()),
        token_table=token_html,
        token_caption=(token_table.caption + coverage_line(inputs.tables)) if token_table else "",
        lexicons=lexicons,
        prompt_sets=prompt_sets,
        manifests=manifests,
        manifest_table=manifest_table,
        facct=facct,
    )
    target = out / "report.html"
    atomic_write_text(target, page)
    return target


def _facct_section(result: Any, out: Path, style: FigureStyle) -> dict[str, Any]:
    """Figures (drawn into ``out/figures``), tables and notes of a compare result."""
    from rmvalues.analysis.compare import TABLES
    from rmvalues.report.facct import compare_figures

    drawn, skipped = compare_figures(result, style=style, out_dir=out / "figures")
    figures = []
    for r in drawn:
        png_b64, width_px = _png(r, style)
        figures.append(_Figure(id=r.name, title=r.title, caption=r.caption, png_b64=png_b64,
                               width_px=width_px, files=[str(p.relative_to(out)) for p in r.paths.values()]))
        r.close()
    tables = [(f"{name}: {TABLES.get(name, '')}", table_html(frame))
              for name, frame in result.tables.items() if frame is not None and len(frame)]
    notes = list(result.notes) + ([f"not drawn: {'; '.join(skipped)}"] if skipped else [])
    settings = ", ".join(f"{k} = {v}" for k, v in result.settings.items() if k != "prompts")
    return {"figures": figures, "tables": tables, "notes": notes, "settings": settings}


def _overview(inputs: ReportInputs) -> list[tuple[str, str]]:
    """Key counts for the top of the page."""
    facts: list[tuple[str, str]] = []
    if inputs.units is not None and len(inputs.units):
        u = inputs.units
        facts.append(("Reward models", f"{u['model'].nunique()}"))
        if "prompt_id" in u.columns:
            facts.append(("Prompts", f"{u['prompt_id'].nunique()}"))
        facts.append((f"Median-rank units ({inputs.lexicon_label})", f"{len(u):,}"))
    if inputs.mfd_units is not None and len(inputs.mfd_units):
        facts.append((f"Median-rank units ({inputs.mfd_label})", f"{len(inputs.mfd_units):,}"))
    if inputs.lm_units is not None and len(inputs.lm_units):
        facts.append(("Language models (log-prob ranks)", f"{inputs.lm_units['model'].nunique()}"))
    if inputs.mwlr_pairs is not None and len(inputs.mwlr_pairs):
        from rmvalues.report.mwlr import pair_columns

        a, b = pair_columns(inputs.mwlr_pairs)
        n_pairs = len(inputs.mwlr_pairs[[a, b]].drop_duplicates())
        facts.append(("MWLR model pairs", f"{n_pairs:,}"))
    facts.append(("Input runs", f"{count_runs(inputs.manifests)}"))
    return facts


def coverage_line(tables: Mapping[str, pd.DataFrame]) -> str:
    """" Lexicon match coverage: N of M terms ..." from an analysis' coverage table, if any."""
    frame = next((t for name, t in tables.items() if name.endswith("coverage")
                  and {"n_terms", "n_matched"} <= set(t.columns)), None)
    if frame is None:
        return ""
    return (f" Lexicon match coverage of the analysis: {int(frame['n_matched'].sum())} of "
            f"{int(frame['n_terms'].sum())} (term, category) rows match a candidate.")


def count_runs(manifests: Mapping[str, Any]) -> int:
    """Runs and analyses, not the shards a scoring run writes on its way."""
    return sum(1 for m in manifests.values()
               if not (isinstance(m, Mapping) and str(m.get("kind", "")).endswith("-shard")))


def recorded_prompt_sets(manifests: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """Prompt sets as scoring runs recorded them (``prompt_texts``): custom YAML sets included."""
    import pandas as pd

    found: dict[str, pd.DataFrame] = {}
    for manifest in manifests.values():
        fields = manifest.get("fields", {}) if isinstance(manifest, Mapping) else {}
        texts, name = fields.get("prompt_texts"), fields.get("prompt_set")
        if isinstance(texts, Mapping) and isinstance(name, str) and name not in found:
            found[name] = pd.DataFrame({"prompt_id": list(texts), "text": list(texts.values())})
    return found
