"""Paper §5 end to end: checkpoint sweeps (``rmvalues sweep``) and the released rank results →
the tables and figures of Fig 4a/A5a (median rank per checkpoint), 4b/A5b (final checkpoint per
data size, source and method) and 5/A6 (rank change first → last).

As the authors' ``generate_figure_4_and_A5.R``: the sweep's candidates are restricted to a list of
decoded strings (default: the Gemma∩Llama∩Qwen ``token-intersection``) before ranking, the words
of the lexicon (default ``big-two-expanded``) are matched in their normalised form, and a sweep's
base family is read from its manifest's base model (``gemma``/``llama``/``qwen`` in its name, the
authors' ``grepl`` rule).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import AnalysisError, InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

SWEEP_FILE = "sweep.parquet"
_FAMILIES = (("gem", "Gemma"), ("lam", "Llama"), ("qwe", "Qwen"))


@dataclass
class TrainingAnalysis:
    checkpoints: pd.DataFrame | None = None  # Fig 4a / A5a
    final_checkpoint: pd.DataFrame | None = None  # Fig 4b / A5b
    rank_changes: pd.DataFrame | None = None  # Fig 5 / A6
    notes: list[str] = field(default_factory=list)

    def tables(self) -> dict[str, pd.DataFrame]:
        names = {"checkpoint_units": self.checkpoints, "final_checkpoint": self.final_checkpoint,
                 "rank_changes": self.rank_changes}
        return {k: v for k, v in names.items() if v is not None}


def family_of(name: str) -> str:
    """The base family in a model name (the authors' rule: 'gem' Gemma, 'lam' Llama, 'qwe' Qwen)."""
    low = name.lower()
    for key, family in _FAMILIES:
        if key in low:
            return family
    raise InputError(f"cannot tell the base family of {name!r} (no gemma/llama/qwen in its name); "
                     "pass families={sweep: family} (--family SWEEP=FAMILY).")


def read_sweep(path: str | Path, family: str | None = None) -> pd.DataFrame:
    """A sweep's table (its folder or ``sweep.parquet``) with a ``base`` column."""
    import json

    import pandas as pd

    path = Path(path)
    table = path / SWEEP_FILE if path.is_dir() else path
    if not table.is_file():
        raise InputError(f"no checkpoint sweep at {path}; pass a `rmvalues sweep --out` folder.")
    frame = pd.read_parquet(table)
    if "checkpoint" not in frame.columns:
        raise InputError(f"{table} has no 'checkpoint' column; is it a `rmvalues sweep` table?")
    if family is None:
        manifest = table.with_name(table.stem + ".manifest.json")
        fields = json.loads(manifest.read_text("utf-8")).get("fields", {}) if manifest.is_file() \
            else {}
        base = fields.get("base")
        base_name = base.get("source") or base.get("name") if isinstance(base, dict) else base
        family = family_of(str(base_name or fields.get("model") or frame["model"].iloc[0]))
    return frame.assign(base=family)


def analyze_training(
    sweeps: Sequence[str | Path] = (),
    *,
    lexicon: Any = "big-two-expanded",
    strings: str | Sequence[str] | None = "token-intersection",
    prompt: str | None = "greatest_ever_one",
    families: Mapping[str, str] | None = None,
    rank_results: Sequence[str | Path] = (),
    rank_results_map: Any = None,
    start: int | None = None,
    end: int | None = None,
) -> TrainingAnalysis:
    """Fig 4a/5 tables from ``sweeps`` and the Fig 4b table from released ``rank_results`` files."""
    import pandas as pd

    from rmvalues.analysis.checkpoints import checkpoint_units, final_checkpoint_table, rank_change
    from rmvalues.lexicons import load_lexicon

    if not sweeps and not rank_results:
        raise InputError("nothing to analyse: pass sweep folders and/or rank_results files.")
    result = TrainingAnalysis()
    lex = load_lexicon(lexicon) if isinstance(lexicon, (str, Path)) else lexicon
    if sweeps:
        families = dict(families or {})
        scores = pd.concat([read_sweep(s, families.get(str(s)) or families.get(Path(s).name))
                            for s in sweeps], ignore_index=True)
        if prompt is not None:
            if prompt not in set(scores["prompt_id"]):
                raise InputError(f"the sweeps have no prompt {prompt!r}; pass --prompt with one of "
                                 f"{sorted(scores['prompt_id'].unique())[:5]} (or --all-prompts).")
            scores = scores[scores["prompt_id"] == prompt]
        if strings is not None:
            from rmvalues.engines.candidate_filters import load_string_list

            allowed = set(load_string_list(strings) if isinstance(strings, str) else strings)
            kept = scores["candidate"].isin(allowed)
            if not kept.any():
                raise AnalysisError(f"the string filter {strings if isinstance(strings, str) else ''}"
                                    " leaves no candidate of the sweeps; pass --strings none or "
                                    "another list.")
            result.notes.append(f"{int(kept.sum()):,} of {len(scores):,} scores kept by the "
                                "string filter")
            scores = scores[kept]
        base = scores[["model", "base"]].drop_duplicates()
        units = checkpoint_units(scores, lex)
        result.checkpoints = units.merge(base, on="model", how="left")
        result.rank_changes = rank_change(scores, lex, start, end).merge(base, on="model",
                                                                         how="left")
    if rank_results:
        from rmvalues.analysis.importers import read_rank_results
        from rmvalues.analysis.rank_results_runs import rank_results_map as load_map
        from rmvalues.analysis.rank_results_runs import with_run_facts

        frames = [read_rank_results(p) for p in rank_results]
        table = with_run_facts(pd.concat(frames, ignore_index=True), load_map(rank_results_map))
        if "base" not in table.columns or table["base"].isna().any():
            table["base"] = table["model"].map(family_of)
        result.final_checkpoint = final_checkpoint_table(table)
    return result


def write_training_analysis(result: TrainingAnalysis, out_dir: str | Path, *, report: bool = True,
                            **fields: Any) -> Path:
    """Tables (Parquet + CSV), ``summary.txt``, manifest; with ``report`` the figures and an HTML
    page under ``out_dir/report``. Returns the output folder."""
    from rmvalues.analysis.pipeline import write_tables

    lines = [f"{name}: {len(t):,} rows" for name, t in result.tables().items()]
    lines += [f"note: {n}" for n in result.notes]
    out = Path(out_dir)
    write_tables(out, result.tables(), "\n".join(lines), "training-analysis", notes=result.notes,
                 **fields)
    if report:
        import json

        from rmvalues.report import write_report
        from rmvalues.report.html import ReportInputs

        inputs = ReportInputs(
            title="rmvalues: reward-model training (paper §5)", checkpoints=result.checkpoints,
            ablations=result.final_checkpoint, rank_changes=result.rank_changes,
            manifests={out.name: json.loads((out / "manifest.json").read_text("utf-8"))})
        write_report(inputs, out_dir=out / "report")
    return out

