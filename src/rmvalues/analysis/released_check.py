"""Check scores against the paper's released ones: does a set-up reproduce the published numbers?

:func:`compare_with_released` compares any score table (a run of ``rmvalues score``, or an imported
one) with a released dictionary-score CSV, prompt by prompt: Pearson and Spearman correlation, max
and median |Δ|, and how many of the 10 best and 10 worst words agree. A prompt passes when
Spearman ≥ :data:`MIN_SPEARMAN` and max |Δ| is within the tolerance of the dtype the scores were
computed in (:data:`RELEASED_TOLERANCE`). :func:`check_released` scores a registry model's released
words in paper mode and runs that comparison (``rmvalues check-released``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: Each prompt's words must be ranked (almost) exactly as released.
MIN_SPEARMAN = 0.999
#: Max |Δ| per prompt allowed against the released scores, by the dtype we scored in. The released
#: numbers came from one GPU run in float16/bfloat16 (10-bit / 7-bit mantissa on rewards of order
#: 1-10), so another GPU, batch composition or kernel moves a score by a few units in its last
#: place; float32 is for re-checking a table against itself or a float32 run.
RELEASED_TOLERANCE = {"float32": 1e-3, "float16": 5e-2, "bfloat16": 2.5e-1}
TOP_K = 10
#: Released datasets a check can compare with, and the lexicon each holds.
CHECK_DATASETS = {"big2-nouns": "big-two-nouns", "mfd2": "mfd2"}


@dataclass
class ReleasedCheck:
    """Per-prompt agreement with the released scores, and the verdict."""

    table: pd.DataFrame
    tolerance: float
    min_spearman: float = MIN_SPEARMAN
    problems: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        cols = ["prompt_id", "n", "pearson", "spearman", "max_abs_diff", "median_abs_diff",
                f"top{TOP_K}_agree", f"bottom{TOP_K}_agree", "passed"]
        head = (f"{len(self.table)} prompt(s); pass: Spearman >= {self.min_spearman} and max |Δ| "
                f"<= {self.tolerance:g} on every prompt")
        verdict = "PASS: the scores reproduce the released ones" if self.passed else (
            f"FAIL ({len(self.problems)} problem(s)):\n" + "\n".join(f"  - {p}" for p in self.problems))
        body = self.table[cols].to_string(index=False, float_format=lambda x: f"{x:.4g}")
        return f"{head}\n{body}\n{verdict}"


def released_wide(table: pd.DataFrame) -> pd.DataFrame:
    """A long score table as a released dictionary CSV: ``response`` + one column per prompt."""
    missing = {"prompt_id", "candidate", "score"} - set(table.columns)
    if missing:
        raise InputError(f"the score table lacks column(s) {sorted(missing)}")
    wide = table.pivot(index="candidate", columns="prompt_id", values="score")
    prompts = list(dict.fromkeys(table["prompt_id"]))
    words = list(dict.fromkeys(table["candidate"]))
    wide = wide.loc[words, prompts].reset_index().rename(columns={"candidate": "response"})
    wide.columns.name = None
    return wide


def compare_with_released(
    ours: pd.DataFrame,
    released: pd.DataFrame | str | Path,
    *,
    tolerance: float,
    min_spearman: float = MIN_SPEARMAN,
    prompts: Sequence[str] | None = None,
) -> ReleasedCheck:
    """Compare a long score table (``prompt_id, candidate, score``) with released scores.

    ``released``: a released CSV path or its long table (:func:`read_dictionary_scores`).
    ``prompts``: the prompts to compare (default: all of ours; each must be released).
    Every problem (a missing prompt or word, a prompt beyond the thresholds) is listed, naming
    the prompt and the word with the largest |Δ|.
    """
    import numpy as np
    import pandas as pd
    from scipy import stats

    from rmvalues.analysis.importers import read_dictionary_scores

    if not isinstance(released, pd.DataFrame):
        released = read_dictionary_scores(released, model="released")
    problems: list[str] = []
    keys = ["prompt_id", "candidate"]
    ours = ours[keys + ["score"]]
    theirs = released[keys + ["score"]]
    for name, frame in (("our table", ours), ("the released table", theirs)):
        dup = frame[frame.duplicated(keys)]
        if len(dup):
            raise InputError(f"{name} scores {dup.iloc[0]['candidate']!r} twice under prompt "
                             f"{dup.iloc[0]['prompt_id']!r}; one score per word and prompt.")
    wanted = list(prompts) if prompts is not None else list(dict.fromkeys(ours["prompt_id"]))
    released_prompts = set(theirs["prompt_id"])
    for pid in wanted:
        if pid not in released_prompts:
            problems.append(f"prompt {pid!r} is not in the released scores")
    merged = ours.merge(theirs, on=keys, how="outer", suffixes=("_ours", "_released"),
                        indicator=True)
    merged = merged[merged["prompt_id"].isin(wanted)]
    for side, label in (("left_only", "only in ours"), ("right_only", "only in the released file")):
        extra = merged[merged["_merge"] == side]
        if len(extra):
            first = extra.iloc[0]
            problems.append(f"{len(extra)} (prompt, word) pair(s) {label}, e.g. "
                            f"{first['candidate']!r} under {first['prompt_id']!r}")
    both = merged[merged["_merge"] == "both"]
    rows = []
    for pid in wanted:
        cell = both[both["prompt_id"] == pid]
        if cell.empty:
            continue
        a = cell["score_ours"].to_numpy(dtype=float)
        b = cell["score_released"].to_numpy(dtype=float)
        diff = np.abs(a - b)
        worst = int(np.argmax(diff))
        k = min(TOP_K, len(a))
        words = cell["candidate"].to_numpy()
        top = len(set(words[np.argsort(-a, kind="stable")[:k]]) & set(words[np.argsort(-b, kind="stable")[:k]]))
        bottom = len(set(words[np.argsort(a, kind="stable")[:k]]) & set(words[np.argsort(b, kind="stable")[:k]]))
        constant = len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0
        pearson = float("nan") if constant else float(stats.pearsonr(a, b)[0])
        spearman = float("nan") if constant else float(stats.spearmanr(a, b)[0])
        ok = bool(spearman >= min_spearman and diff.max() <= tolerance)
        rows.append({"prompt_id": pid, "n": len(a), "pearson": pearson, "spearman": spearman,
                     "max_abs_diff": float(diff.max()), "median_abs_diff": float(np.median(diff)),
                     f"top{TOP_K}_agree": top, f"bottom{TOP_K}_agree": bottom,
                     "worst_word": str(words[worst]), "worst_ours": float(a[worst]),
                     "worst_released": float(b[worst]), "passed": ok})
        if not ok:
            reasons = []
            if constant:
                reasons.append("the scores are constant, so no ranking can be compared")
            elif not spearman >= min_spearman:
                reasons.append(f"Spearman {spearman:.4f} < {min_spearman}")
            if diff.max() > tolerance:
                reasons.append(f"max |Δ| {diff.max():.3g} > {tolerance:g}")
            problems.append(
                f"prompt {pid!r}: {'; '.join(reasons)} (worst word {words[worst]!r}: ours "
                f"{a[worst]:.6g}, released {b[worst]:.6g}; top-{k} agree {top}/{k}, bottom-{k} "
                f"{bottom}/{k})")
    table = pd.DataFrame(rows)
    if table.empty:
        raise InputError(f"no prompt of {wanted[:3]}... has words scored in both tables; are they "
                         "scores of the same word list and prompt set?")
    return ReleasedCheck(table=table, tolerance=tolerance, min_spearman=min_spearman,
                         problems=problems)


def released_file(model_key: str, dataset: str, data_dir: str | Path | None = None) -> Path:
    """The released CSV of a registry model in ``dataset`` (fetched, sha256-checked)."""
    from rmvalues.analysis.datasets import fetch_dataset
    from rmvalues.models.registry import get_model

    spec = get_model(model_key)
    if not spec.released_scores:
        raise InputError(f"{spec.key} has no released scores in the registry (`released_scores`); "
                         "pass the CSV to compare with (--released).")
    stem = spec.released_scores.removeprefix("big2_rewards_")
    paths, _ = fetch_dataset(dataset, data_dir)
    for path in paths:
        if path.stem.endswith("_rewards_" + stem):
            return path
    raise InputError(f"the released {dataset} files hold no file for {spec.key} "
                     f"(*_rewards_{stem}.csv); pass the CSV to compare with (--released).")


def check_released(
    model: Any,
    *,
    dataset: str = "big2-nouns",
    released: str | Path | None = None,
    data_dir: str | Path | None = None,
    prompts: Any = "paper-54",
    out: str | Path | None = None,
    tolerance: float | None = None,
    device: str | None = None,
    dtype: str | None = None,
    batch_size: int | None = None,
) -> ReleasedCheck:
    """Score ``model``'s released words in paper mode and compare with its released CSV.

    ``model``: a registry key (its ``released_scores`` names the file), or a loaded
    :class:`~rmvalues.models.loading.RewardModel` / folder with ``released`` given. The words are
    the released file's own ``response`` column, so both sides score the same list. Writes the
    scores under ``out/scores`` and the comparison (``released_check.csv/.parquet``, summary,
    manifest) under ``out``.
    """
    from rmvalues.analysis.importers import read_dictionary_scores
    from rmvalues.api import resolve_prompts, score
    from rmvalues.io import sha256_file

    if dataset not in CHECK_DATASETS:
        raise InputError(f"unknown dataset {dataset!r}; choose from {', '.join(CHECK_DATASETS)}")
    if released is None:
        key = model if isinstance(model, str) else getattr(getattr(model, "spec", None), "key", None)
        if key is None:
            raise InputError("this model is not in the registry; pass the released CSV (--released).")
        released = released_file(key, dataset, data_dir)
    released = Path(released)
    theirs = read_dictionary_scores(released, model="released")
    _, pairs = resolve_prompts(prompts)
    words = list(dict.fromkeys(theirs["candidate"]))
    run = score(model, prompts, words, None if out is None else Path(out) / "scores",
                paper_compatible=True, device=device, dtype=dtype, batch_size=batch_size)
    dtype_name = run.manifest.get("dtype", "float32")
    tol = tolerance if tolerance is not None else RELEASED_TOLERANCE.get(dtype_name, 2.5e-1)
    result = compare_with_released(run.table, theirs, tolerance=tol,
                                   prompts=[pid for pid, _ in pairs])
    result.manifest = {
        "model": run.manifest.get("model"), "dataset": dataset, "released_file": released.name,
        "released_sha256": sha256_file(released), "dtype": dtype_name, "tolerance": tol,
        "min_spearman": result.min_spearman, "passed": result.passed, "problems": result.problems,
        **{k: run.manifest[k] for k in ("score_definition", "head_verified", "revision")
           if k in run.manifest},
    }
    if out is not None:
        from rmvalues.analysis.pipeline import write_tables

        write_tables(out, {"released_check": result.table}, result.summary(), "released-check",
                     keep=("scores",),
                     **result.manifest)
    return result
