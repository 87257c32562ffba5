"""Find a report's inputs: analysis tables and run manifests in folders, or a reproduction result.

``rmvalues report DIR...`` and ``rmvalues reproduce`` both end here. Tables are recognised by file
stem (Parquet or CSV, searched recursively), so any stage that writes its tables under the names
below is picked up without configuration:

==========================  =====================================================================
stem (or ``*_<stem>``)      report field
==========================  =====================================================================
``units``                   Fig 1 units (``mfd2_*_units`` / ``mfd_units``: the MFD 2.0 version)
``panels``/``panel_tests``  Fig 1 panel tests
``lm_units``                Fig 2 units; ``lm_tests``/``posthoc``: its Welch + BH tests
``target_scores``           Fig 3 (``mwlr_pairs`` too)
``top_bottom``              Table 1 (``token_scores`` too)
``checkpoint_units``        Fig 4a (``checkpoints`` too)
``final_checkpoint``        Fig 4b (``ablations`` too)
``rank_change``             Fig 5 (``rank_changes`` too)
==========================  =====================================================================

Tables named ``fixed_effects``, ``anova``, ``framing``, ``effect_sizes``, ``topk``,
``null_baselines`` or ``coverage`` (or ending so) go to the statistics section as they are.

Every ``*.manifest.json`` / ``manifest.json`` found is shown under provenance.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import InputError
from rmvalues.report.html import ReportInputs, render_report
from rmvalues.report.style import DEFAULT_STYLE, FigureStyle

if TYPE_CHECKING:
    import pandas as pd

    from rmvalues.analysis.reproduce import ReproduceReport

#: File stem suffix -> ReportInputs field (longest suffix wins; MFD handled separately).
_FIELDS: dict[str, str] = {
    "lm_units": "lm_units",
    "lm_tests": "lm_tests",
    "posthoc": "lm_tests",
    "units": "units",
    "panels": "panel_tests",
    "panel_tests": "panel_tests",
    "target_scores": "mwlr_pairs",
    "mwlr_pairs": "mwlr_pairs",
    "top_bottom": "token_scores",
    "token_scores": "token_scores",
    "checkpoint_units": "checkpoints",
    "checkpoints": "checkpoints",
    "final_checkpoint": "ablations",
    "ablations": "ablations",
    "rank_change": "rank_changes",
    "rank_changes": "rank_changes",
    "search": "search_results",
    "debias_gap": "debias_gap",
}
#: Fields whose tables from several folders (one per model pair) are stacked, not replaced.
_STACKED = ("mwlr_pairs", "token_scores")
_STAT_TABLES = ("fixed_effects", "anova", "framing", "effect_sizes", "topk", "variance",
                "coverage", "null_baselines", "search_margins", "search_composition",
                "sensitivity_components", "sensitivity_families", "debias_runs", "debias_price",
                "attribute_gaps", "seed_spread", "contrasts", "groups")
_MFD_FIELDS = {"units": "mfd_units", "panel_tests": "mfd_panel_tests"}
#: In a folder whose manifest says it holds log-prob analyses, ``units`` are Fig 2's units.
_KIND_FIELDS: dict[str, dict[str, str]] = {"lm-values": {"units": "lm_units"}}
#: How figures name the built-in lexicons; other lexicons go by their own name.
LEXICON_LABELS: dict[str, str] = {"big-two-nouns": "Big Two", "big-two-expanded": "Big Two",
                                  "big-two": "Big Two", "mfd2": "MFD 2.0", "mfd2-dic": "MFD 2.0"}


def lexicon_label(name: str) -> str:
    """The name a figure gives lexicon ``name`` (``"mfd2"`` -> ``"MFD 2.0"``)."""
    return LEXICON_LABELS.get(name, Path(name).stem if ("/" in name or "." in name) else name)


def _is_mfd(name: str | None) -> bool:
    return bool(name) and LEXICON_LABELS.get(str(name), "").startswith("MFD")


def _read_table(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    except Exception as exc:  # noqa: BLE001 (pyarrow / parser errors come in many types)
        raise InputError(f"cannot read table {path}: {exc}; is it a complete Parquet/CSV file?"
                         ) from None


def _field_for(stem: str, kind: str | None = None, mfd: bool = False
               ) -> tuple[str | None, str | None]:
    """(report field, statistics-table title) for a table file stem; (None, None) if unknown.

    ``mfd``: the folder's manifest says its lexicon is the MFD, so its units feed Fig 1b.
    """
    lowered = stem.lower()
    for suffix in sorted(_FIELDS, key=len, reverse=True):
        if lowered == suffix or lowered.endswith("_" + suffix):
            name = _FIELDS[suffix]
            if (mfd or lowered.startswith("mfd")) and name in _MFD_FIELDS:
                name = _MFD_FIELDS[name]
            return _KIND_FIELDS.get(kind or "", {}).get(name, name), None
    for suffix in _STAT_TABLES:
        if lowered == suffix or lowered.endswith("_" + suffix):
            return None, stem.replace("_", " ")
    return None, None


def _table_files(folder: Path) -> list[Path]:
    """Tables under ``folder`` (hidden paths skipped), Parquet preferred over a same-stem CSV,
    and the mode its manifest names (``corrected``/``paper``) before the other mode's tables."""
    files = [f for f in sorted(folder.rglob("*")) if f.is_file()
             and f.suffix in (".parquet", ".csv")
             and not any(p.startswith(".") for p in f.relative_to(folder).parts)]
    parquet = {f.with_suffix("") for f in files if f.suffix == ".parquet"}
    files = [f for f in files if f.suffix == ".parquet" or f.with_suffix("") not in parquet]
    modes = set()
    for manifest in folder.rglob("manifest.json"):
        try:
            modes.add(json.loads(manifest.read_text("utf-8")).get("fields", {}).get("mode"))
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
    preferred = [f"_{m}_" for m in modes if isinstance(m, str)]
    return sorted(files, key=lambda f: (not any(p in f.stem for p in preferred), str(f)))


def _read_manifest(file: Path) -> dict[str, Any]:
    try:
        return json.loads(file.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"manifest {file} is not valid JSON ({exc}); delete it or re-run the "
                         "stage that wrote it") from None


def load_report_inputs(sources: Iterable[str | Path], *, title: str | None = None) -> ReportInputs:
    """Collect tables, summaries and manifests from run or analysis folders (or single files)."""
    inputs = ReportInputs()
    paths = [Path(s) for s in sources]
    if not paths:
        raise InputError("no input given; pass one or more run or analysis folders")
    for path in paths:
        if not path.exists():
            raise InputError(f"{path} does not exist; pass a run or analysis folder")
        folder = path if path.is_dir() else path.parent
        manifests = ([f for f in sorted(folder.rglob("*manifest.json"))
                      if not any(p.startswith(".") for p in f.relative_to(folder).parts)]
                     if path.is_dir() else
                     [m for m in (folder / "manifest.json",
                                  path.with_name(path.stem + ".manifest.json")) if m.exists()])
        tables = _table_files(folder) if path.is_dir() else [path]
        if not (manifests or tables or any(folder.glob("*summary.txt"))):
            raise InputError(
                f"{path} holds no rmvalues output (no manifest, table or summary.txt), so the "
                "report would be empty; pass a folder written by `rmvalues score`, `analyze "
                "--out`, `reproduce --out`, `logprobs` or `implicit`.")
        for file in manifests:
            inputs.manifests[_run_name(file, folder)] = _read_manifest(file)
            if inputs.token_scores is None:
                inputs.token_scores = vocabulary_token_scores(file, inputs.manifests[_run_name(file, folder)])
        for summary in sorted(folder.glob("*summary.txt")):
            label = summary.stem.replace("_", " ")
            inputs.texts[f"{folder.name}: {label}"] = summary.read_text("utf-8")
        top = inputs.manifests.get(_run_name(folder / "manifest.json", folder), {})
        kind = top.get("kind") if isinstance(top, Mapping) else None
        lexicon = (top.get("fields", {}) or {}).get("lexicon") if isinstance(top, Mapping) else None
        lexicon = lexicon if isinstance(lexicon, str) else None
        if lexicon and kind != "lm-values":
            if _is_mfd(lexicon):
                inputs.mfd_label = lexicon_label(lexicon)
            else:
                inputs.lexicon_label = lexicon_label(lexicon)
        for file in tables:
            field_name, stat_title = _field_for(file.stem, kind, _is_mfd(lexicon))
            if field_name is not None and getattr(inputs, field_name) is None:
                setattr(inputs, field_name, _read_table(file))
            elif field_name in _STACKED:  # several pairs' tables: all of them, one frame
                import pandas as pd

                setattr(inputs, field_name, pd.concat(
                    [getattr(inputs, field_name), _read_table(file)], ignore_index=True))
            elif field_name is not None:
                inputs.left_out.append(
                    f"{file.relative_to(folder) if path.is_dir() else file} (a second "
                    f"{field_name} table; only the first is drawn: report its folder on its own)")
            elif stat_title is not None and stat_title not in inputs.tables:
                inputs.tables[stat_title] = _read_table(file)
    inputs.title = title or f"rmvalues report: {', '.join(p.name for p in paths)}"
    return inputs


def vocabulary_token_scores(manifest_file: Path, manifest: Mapping[str, Any]) -> pd.DataFrame | None:
    """A vocabulary scoring run's token scores for the top/bottom table: each token's mean score
    over the run's prompts (``None`` for other runs)."""
    fields = manifest.get("fields", {}) if isinstance(manifest, Mapping) else {}
    candidates = fields.get("candidates") if isinstance(fields, Mapping) else None
    if manifest.get("kind") != "rm-scores" or not isinstance(candidates, Mapping) \
            or candidates.get("kind") != "token":
        return None
    table = manifest_file.with_name(manifest_file.name.removesuffix(".manifest.json") + ".parquet")
    if not table.is_file():
        return None
    scores = _read_table(table)
    keys = [c for c in ("token_id", "candidate") if c in scores.columns]
    return scores.groupby(keys, as_index=False, sort=False)["score"].mean()


def _run_name(manifest: Path, base: Path) -> str:
    rel = manifest.relative_to(base)
    stem = manifest.name.removesuffix(".manifest.json").removesuffix("manifest.json").rstrip(".")
    parts = [base.name, *rel.parent.parts] + ([stem] if stem else [])
    return "/".join(p for p in parts if p)


def write_report(
    *sources: str | Path | ReportInputs,
    out_dir: str | Path,
    title: str | None = None,
    style: FigureStyle = DEFAULT_STYLE,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Write ``out_dir/report.html`` (and figures under ``out_dir/figures``) for ``sources``.

    ``sources`` are run/analysis folders or ready :class:`ReportInputs`; folders are merged.
    ``options`` passes keyword arguments per figure, e.g. ``{"fig3": {"targets": ["Love", "Peace"]}}``.
    """
    ready = [s for s in sources if isinstance(s, ReportInputs)]
    folders = [s for s in sources if not isinstance(s, ReportInputs)]
    if len(ready) > 1 or (ready and folders):
        raise InputError("pass either one ReportInputs or folders, not both")
    inputs = ready[0] if ready else load_report_inputs(folders, title=title)
    if title:
        inputs.title = title
    if options:
        inputs.options = {**inputs.options, **{k: dict(v) for k, v in options.items()}}
    return render_report(inputs, out_dir, style=style)


def inputs_from_reproduce(report: ReproduceReport, title: str | None = None) -> ReportInputs:
    """Map an :class:`~rmvalues.analysis.reproduce.ReproduceReport` onto report inputs.

    Big Two results feed Fig. 1a, MFD 2.0 results Fig. 1b; every mixed model, F table and framing
    summary goes to the statistics section, and each dataset's settings to provenance.
    """
    from rmvalues.store.manifest import build_manifest

    inputs = ReportInputs(title=title or f"rmvalues reproduce ({report.mode} mode)")
    for res in report.fig1:
        if res.mode != report.mode:
            continue
        label = lexicon_label(res.lexicon)
        if res.dataset.startswith("mfd") or _is_mfd(res.lexicon):
            inputs.mfd_units, inputs.mfd_panel_tests = res.units, res.panels
            inputs.mfd_label = label
            inputs.options["fig1b"] = {"n_ranked": res.items_per_prompt,
                                       "stars_column": _stars_column(res.stars_from)}
        else:
            inputs.units, inputs.panel_tests = res.units, res.panels
            inputs.lexicon_label = label
            inputs.options["fig1"] = {"n_ranked": res.items_per_prompt,
                                      "stars_column": _stars_column(res.stars_from)}
        inputs.tables[f"{label}: mixed model, fixed effects"] = res.mixed.fixed
        inputs.tables[f"{label}: mixed model, F tests ({res.mixed.anova_type})"] = res.mixed.anova
        inputs.tables[f"{label}: median rank by framing"] = res.framing
        inputs.texts[f"{label}: model summary"] = res.mixed.summary_text()
        inputs.lexicons.append(res.lexicon)
        inputs.manifests[f"reproduce/{res.dataset}"] = build_manifest(
            "reproduce", dataset=res.dataset, mode=res.mode, lexicon=res.lexicon,
            ranking=res.policy.describe(), stars_from=res.stars_from,
            sha256_verified=res.verified, categories=res.categories,
            items_per_prompt=res.items_per_prompt).to_dict()
    if report.fig4b is not None and len(report.fig4b):
        inputs.tables["Fig. 4b: final checkpoint of each trained RM"] = report.fig4b
        if {"data_size", "data_source"} <= set(report.fig4b.columns):
            inputs.ablations = report.fig4b
    if report.differences:
        inputs.texts["Paper-compatible vs corrected mode"] = "\n".join(
            f"- {d}" for d in report.differences)
    if report.skipped:
        inputs.texts["Skipped datasets"] = "\n".join(f"- {s}" for s in report.skipped)
    return inputs


def inputs_from_lm_values(result: Any, title: str | None = None) -> ReportInputs:
    """Report inputs of a :class:`rmvalues.analysis.lm_values.LMValuesResult` (Fig 2 and its tests)."""
    return ReportInputs(
        title=title or f"rmvalues log-prob values: {', '.join(result.models)}",
        lm_units=result.units, lm_tests=result.posthoc,
        tables={f"Log-prob ranks: Type-II ANOVA ({result.formula})": result.anova},
        texts={"Log-prob values: summary": result.summary()},
        lexicons=[result.lexicon])


def _stars_column(stars_from: str) -> str:
    """The panel-test stars column matching a reproduction's ``stars_from`` (``p_perm`` ...)."""
    return "stars_perm" if "perm" in stars_from else "stars_welch"


def report_from_reproduce(
    report: ReproduceReport,
    out_dir: str | Path,
    *,
    title: str | None = None,
    style: FigureStyle = DEFAULT_STYLE,
) -> Path:
    """What ``rmvalues reproduce`` calls last: the report of a reproduction, in ``out_dir``."""
    return render_report(inputs_from_reproduce(report, title), out_dir, style=style)
