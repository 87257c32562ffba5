"""Many LMs at once (paper §4): Fig 2's analysis over pairs of log-prob runs, and the implicit
rewards of every cross-family instruct pair on the vocabulary all of them share (Fig 3, Table 1).

A run's family and kind come from its manifest (``family``, ``model_kind``) or from the LM registry
(:mod:`rmvalues.models.lm_registry`) by model name. Pairing rules:

* ``lm-values``: ``kind`` (default; the paper's Fig 2) pairs runs of the same kind across families
  (Gemma-2-2B vs Llama-3.2-3B, and their instruct versions); ``family`` pairs runs within a family
  (base vs instruct); ``all`` every pair; ``joint`` one analysis with every run as a model level.
* ``implicit``: ``all-instruct`` pairs every instruct run of family ``p_family`` (Gemma) with every
  one of ``q_family`` (Llama), p → q, scores positive where q prefers the token (the authors'
  direction: MWLR(Llama, Gemma)); tokens are the decoded strings common to all those runs, as the
  authors' Fig 3 and Table 1 (3 Gemma-2 × 7 Llama = 21 pairs for the ten instruct models).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import AnalysisError, InputError

if TYPE_CHECKING:  # pragma: no cover
    from rmvalues.analysis.lm_values import LMValuesResult
    from rmvalues.store.logprob_runs import LogprobRun

LM_PAIRINGS = ("kind", "family", "all", "joint")
IMPLICIT_PAIRINGS = ("all-instruct",)


@dataclass(frozen=True)
class LabelledRun:
    """A log-prob run with the registry facts pairing needs."""

    run: LogprobRun
    key: str
    family: str
    kind: str


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


def label_run(run: LogprobRun) -> LabelledRun:
    """Family and kind of ``run`` from its manifest, else from the LM registry."""
    from rmvalues.models.lm_registry import find_lm

    spec = find_lm(str(run.meta.get("lm_registry") or run.model))
    family = run.meta.get("family") or (spec.family if spec else None)
    kind = run.meta.get("model_kind") or (spec.kind if spec else None)
    if not family or not kind:
        raise InputError(
            f"run {run.model!r}: its family/kind are unknown (not in the LM registry, not in its "
            "manifest); compute it with `rmvalues logprobs --model KEY` for a registry model, or "
            "add the model to rmvalues/models/lm_registry.toml."
        )
    return LabelledRun(run=run, key=spec.key if spec else _safe(run.model), family=str(family),
                       kind=str(kind))


def run_folders(sources: Sequence[str | Path]) -> list[Path]:
    """Run folders among ``sources``: a folder holding ``logprobs.parquet``, or its sub-folders."""
    from rmvalues.store.logprob_runs import RESULTS_FILE

    found: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_file() and path.name == RESULTS_FILE:
            found.append(path.parent)
        elif (path / RESULTS_FILE).is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(p.parent for p in path.glob(f"*/{RESULTS_FILE}")))
        else:
            raise InputError(f"{path} does not exist; pass log-prob run folders (from `rmvalues "
                             "logprobs` or `rmvalues import-logprobs`).")
    if not found:
        raise InputError(f"no log-prob runs (logprobs.parquet) in {', '.join(map(str, sources))}.")
    return found


def load_labelled_runs(sources: Sequence[Any], *, progress: bool = False) -> list[LabelledRun]:
    """Runs (objects, or folders as :func:`run_folders` finds them) with family and kind."""
    from rich.console import Console
    from rich.progress import track

    from rmvalues.store.logprob_runs import LogprobRun, load_run

    objects = [s for s in sources if isinstance(s, LogprobRun)]
    paths = [s for s in sources if not isinstance(s, LogprobRun)]
    runs = list(objects)
    if paths:
        runs += [load_run(f) for f in track(run_folders(paths), description="loading runs",
                                             disable=not progress, console=Console(stderr=True))]
    from rmvalues.models.lm_registry import known_lms

    # Registry order (the authors' list: Gemma before Llama) fixes each pair's order and folder name.
    order = {k: i for i, k in enumerate(known_lms())}
    labelled = sorted((label_run(r) for r in runs), key=lambda r: (order.get(r.key, len(order)),
                                                                   r.key))
    keys = [r.key for r in labelled]
    if len(set(keys)) != len(keys):
        raise InputError(f"runs repeat a model ({keys}); pass each model's run once.")
    return labelled


def lm_pairs(runs: Sequence[LabelledRun], pairing: str = "kind") -> list[list[LabelledRun]]:
    """Groups of runs to compare under ``pairing`` (see the module docstring)."""
    if pairing not in LM_PAIRINGS:
        raise InputError(f"unknown pairing {pairing!r}; choose one of {', '.join(LM_PAIRINGS)}.")
    if len(runs) < 2:
        raise InputError("lm-values pairs need at least two runs; pass more log-prob runs.")
    if pairing == "joint":
        return [list(runs)]
    groups = []
    for a, b in itertools.combinations(runs, 2):
        if pairing == "all" \
                or (pairing == "kind" and a.kind == b.kind and a.family != b.family) \
                or (pairing == "family" and a.family == b.family and a.kind != b.kind):
            groups.append([a, b])
    if not groups:
        seen = ", ".join(f"{r.key} ({r.family}, {r.kind})" for r in runs)
        need = ("runs of the same kind from two families" if pairing == "kind"
                else "a pretrained and an instruct run of one family")
        raise InputError(f"--pairs {pairing} forms no pair from {seen}: it needs {need}. "
                         "Pass more runs or choose --pairs all.")
    return groups


def write_lm_values_pairs(
    sources: Sequence[Any],
    out_dir: str | Path,
    *,
    pairing: str = "kind",
    lexicon: Any = "big-two-nouns",
    prompts: Any = "paper-54",
    correction: str = "bh",
    progress: bool = False,
) -> dict[str, LMValuesResult]:
    """Fig 2's analysis for every group of :func:`lm_pairs`, one sub-folder each, plus an index."""
    import pandas as pd
    from rich.console import Console
    from rich.progress import track

    from rmvalues.analysis.lm_values import lm_values, write_lm_values
    from rmvalues.io import atomic_path
    from rmvalues.store.manifest import build_manifest, write_manifest

    runs = load_labelled_runs(sources, progress=progress)
    groups = lm_pairs(runs, pairing)
    out = Path(out_dir)
    results: dict[str, LMValuesResult] = {}
    for group in track(groups, description="lm-values", disable=not progress,
                       console=Console(stderr=True)):
        name = "__vs__".join(r.key for r in group) if len(group) < 4 else "joint"
        res = lm_values([r.run for r in group], lexicon, prompts=prompts, correction=correction)
        write_lm_values(res, out / name)
        results[name] = res
    index = pd.DataFrame([{"folder": n, "models": " | ".join(r.models), "n_words": len(r.words),
                           "n_units": len(r.units), "residual_df": r.residual_df}
                          for n, r in results.items()])
    with atomic_path(out / "pairs.csv") as tmp:
        index.to_csv(tmp, index=False)
    write_manifest(out / "manifest.json", build_manifest(
        "lm-values-pairs", pairing=pairing, lexicon=str(getattr(lexicon, "name", lexicon)),
        models={r.key: {"model": r.run.model, "family": r.family, "kind": r.kind} for r in runs},
        pairs=list(results)))
    return results


# --- implicit rewards of many pairs ------------------------------------------------------------


def implicit_pair_list(runs: Sequence[LabelledRun], pairing: str = "all-instruct", *,
                       p_family: str = "gemma", q_family: str = "llama"
                       ) -> list[tuple[LabelledRun, LabelledRun]]:
    """(p, q) pairs: every instruct run of ``p_family`` against every one of ``q_family``."""
    if pairing not in IMPLICIT_PAIRINGS:
        raise InputError(f"unknown --pairs {pairing!r}; choose one of {', '.join(IMPLICIT_PAIRINGS)}.")
    instruct = [r for r in runs if r.kind == "instruct"]
    ps = [r for r in instruct if r.family == p_family]
    qs = [r for r in instruct if r.family == q_family]
    if not ps or not qs:
        have = sorted({r.family for r in instruct}) or ["none"]
        raise InputError(
            f"--pairs {pairing} needs instruct runs of both {p_family!r} and {q_family!r}; the "
            f"instruct runs given are from {', '.join(have)} only. Pass runs of both families."
        )
    return [(p, q) for p in ps for q in qs]


def common_strings(runs: Sequence[LogprobRun]) -> set[str]:
    """Decoded strings present in every run's vocabulary (empty strings never count)."""
    common: set[str] | None = None
    for run in runs:
        strings = {t for t in run.tokens if t}
        common = strings if common is None else common & strings
    return common or set()


@dataclass(frozen=True)
class ImplicitPairsResult:
    pairs: list[tuple[str, str]]  # (p key, q key)
    folders: list[str]
    n_common: int
    target_scores: Any  # pd.DataFrame


def write_implicit_pairs(
    sources: Sequence[Any],
    out_dir: str | Path,
    *,
    pairing: str = "all-instruct",
    p_family: str = "gemma",
    q_family: str = "llama",
    metric: str = "mwlr",
    prompts: Any = None,
    k: int = 15,
    table1_prompt: str | None = "greatest_ever_one",
    figure_prompt: str | None = "greatest_ever_one",
    drop_formatting: bool = False,
    targets: Sequence[str] = ("Freedom", "Love"),
    progress: bool = False,
) -> ImplicitPairsResult:
    """Implicit rewards of every pair on the common vocabulary, in one tree ``report`` draws.

    ``out_dir/<p>__<q>/``: ``<metric>.parquet`` (common strings only), ``top_bottom.csv`` (Table 1
    on ``table1_prompt``, with the pair's models as columns), ``join.json``, manifest.
    ``out_dir/target_scores.csv``: Fig 3 rows of all pairs (on ``figure_prompt``, the authors'
    ``greatest_ever_one``; all prompts averaged when ``None``), ``pairs.csv`` and a manifest.
    """
    import json

    import numpy as np
    import pandas as pd
    from rich.console import Console
    from rich.progress import track

    from rmvalues.implicit import check_same_prompts, implicit_rewards, target_scores, top_bottom
    from rmvalues.implicit.tables import prompt_selection
    from rmvalues.io import atomic_path, atomic_write_text
    from rmvalues.store.manifest import build_manifest, write_manifest

    runs = load_labelled_runs(sources, progress=progress)
    pairs = implicit_pair_list(runs, pairing, p_family=p_family, q_family=q_family)
    members = list({r.key: r for pair in pairs for r in pair}.values())
    for other in members[1:]:
        check_same_prompts(members[0].run, other.run)
    shared_prompts = list(members[0].run.prompt_ids)
    chosen = prompt_selection(prompts, shared_prompts) or shared_prompts
    common = common_strings([r.run for r in members])
    if not common:
        raise AnalysisError("the runs share no decoded token string; check that they are "
                            "full-vocabulary log-prob runs.")
    out = Path(out_dir)
    folders = []
    t1 = table1_prompt if table1_prompt in set(chosen) else None
    for p, q in track(pairs, description=f"{metric} pairs", disable=not progress,
                      console=Console(stderr=True)):
        res = implicit_rewards(p.run, q.run, metric=metric, join="exact", aggregate="max",
                               prompt_ids=chosen)
        table = res.table[res.table["key"].isin(common)].reset_index(drop=True)
        folder = out / f"{p.key}__{q.key}"
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / f"{metric}.parquet") as tmp:
            table.to_parquet(tmp, index=False)
        tb = top_bottom(table, k, prompt_id=t1, drop_formatting=drop_formatting)
        tb.insert(0, "q_model", q.run.model)
        tb.insert(0, "p_model", p.run.model)
        with atomic_path(folder / "top_bottom.csv") as tmp:
            tb.to_csv(tmp, index=False)
        atomic_write_text(folder / "join.json", json.dumps(res.report.to_dict(), indent=2) + "\n")
        write_manifest(folder / "manifest.json", build_manifest(
            "implicit-rewards", p=p.run.model, q=q.run.model, metric=metric,
            prompt_set=p.run.meta.get("prompt_set"),
            join=res.report.to_dict(), common_vocabulary=len(common),
            common_over=[r.run.model for r in members], prompt_ids=chosen, table1_prompt=t1,
            k=k, drop_formatting=drop_formatting))
        folders.append(folder.name)
    fig_prompts = [figure_prompt] if figure_prompt in set(chosen) else chosen
    p_runs = list({p.key: p.run for p, _ in pairs}.values())
    q_runs = list({q.key: q.run for _, q in pairs}.values())
    scores = target_scores(p_runs, q_runs, targets, metric=metric, prompt_ids=fig_prompts,
                           common_vocabulary="all")
    with atomic_path(out / "target_scores.csv") as tmp:
        scores.to_csv(tmp, index=False)
    index = pd.DataFrame({"folder": folders, "p_model": [p.run.model for p, _ in pairs],
                          "q_model": [q.run.model for _, q in pairs]})
    with atomic_path(out / "pairs.csv") as tmp:
        index.to_csv(tmp, index=False)
    missing = scores.loc[np.isnan(scores["score"]), ["p_model", "q_model", "target"]]
    write_manifest(out / "manifest.json", build_manifest(
        "implicit-pairs", pairing=pairing, p_family=p_family, q_family=q_family, metric=metric,
        models=[r.run.model for r in members], n_pairs=len(pairs), common_vocabulary=len(common),
        prompt_ids=chosen, figure_prompts=fig_prompts, targets=list(targets),
        targets_missing=missing.drop_duplicates().to_dict("records")))
    return ImplicitPairsResult(pairs=[(p.key, q.key) for p, q in pairs], folders=folders,
                               n_common=len(common), target_scores=scores)
