"""A multi-token response search run (``rmvalues.search_responses(...)``): shards, resume, manifest.

For each prompt and direction (max / min), one search (:mod:`rmvalues.engines.search`: exhaustive
pairs, beam or GCG) finds the best k-token responses of a reward model; every reported response is
re-scored through the reference path as ids and as text. Output under ``out``::

    OUT/<model>_search.parquet            one row per reported response (SEARCH_COLUMNS)
    OUT/<model>_search.manifest.json
    OUT/<model>_search_trace.parquet      best-so-far per step (the search's progress)
    OUT/search-shards/<model>/<prompt>-<direction>-<key>.parquet (+ _trace, manifest)
    OUT/search-state/<model>/<prompt>-<direction>-<key>.json     state of a search in progress

A finished (prompt, direction) shard is read back on a re-run with the same settings; a killed run
resumes the search in progress from its state file (saved after every step). The CLI command
``rmvalues search`` is a thin layer over :func:`search_responses`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import InputError, ScoreError
from rmvalues.models.chat import DEFAULT_DATE_STRING
from rmvalues.runs.progress import Progress

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from rmvalues.engines.search import SearchOutcome
    from rmvalues.models.loading import RewardModel

#: Bump when a change to the searches changes what they find (invalidates stored shards).
SEARCH_VERSION = 1
#: Columns of the results table, in order.
SEARCH_COLUMNS: tuple[str, ...] = (
    "model", "prompt_id", "method", "direction", "length", "rank", "token_ids", "pieces",
    "response", "score", "objective", "fluency", "reference_score", "text_score", "retokenizes",
    "complete", "steps", "evaluations", "seed",
)


@dataclass
class SearchResult:
    """What a search run produced: responses, per-step trace, where they are, a summary."""

    table: pd.DataFrame
    trace: pd.DataFrame
    path: Path | None
    summary: str
    manifest: dict[str, Any] = field(default_factory=dict)


def _check_options(method: str, directions: Sequence[str], length: int, keep: int) -> None:
    from rmvalues.engines.search import DIRECTIONS, MAX_LENGTH, METHODS

    if method not in METHODS:
        raise InputError(f"unknown search method {method!r}; use {', '.join(METHODS)}")
    bad = [d for d in directions if d not in DIRECTIONS]
    if bad or not directions:
        raise InputError(f"unknown direction {bad or directions}; use max, min or both")
    if not 1 <= length <= MAX_LENGTH:
        raise InputError(f"--length must be 1..{MAX_LENGTH} (got {length})")
    if method == "exhaustive2" and length != 2:
        raise InputError(f"exhaustive2 searches 2-token responses; pass --length 2 (got {length}) "
                         "or use --method beam|gcg")
    if keep < 1:
        raise InputError(f"--keep must be at least 1 (got {keep})")


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(SEARCH_COLUMNS))
    for column in ("score", "reference_score", "text_score", "fluency"):
        frame[column] = frame[column].astype("float32")
    for column in ("length", "rank", "steps", "evaluations", "seed"):
        frame[column] = frame[column].astype("int64")
    return frame


def _write(frame: pd.DataFrame, path: Path) -> None:
    from rmvalues.io import atomic_path

    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def _outcome_rows(rm: RewardModel, split: Any, outcome: SearchOutcome, *, model: str,
                  prompt_id: str, method: str, direction: str, seed: int,
                  tolerance: float) -> list[dict[str, Any]]:
    """One row per found response, each re-scored through the reference path."""
    import math

    from rmvalues.engines.search import rescore

    checks = rescore(rm, split, [f.token_ids for f in outcome.found])
    rows = []
    for found, check in zip(outcome.found, checks, strict=True):
        delta = abs(check["reference_score"] - found.score)
        if not delta <= tolerance:
            raise ScoreError(
                f"{model}, prompt {prompt_id!r}: the search scored {check['response']!r} "
                f"{found.score:.6g} but the reference path {check['reference_score']:.6g} "
                f"(|Δ| {delta:.3g} > {tolerance:g}); the cached path disagrees with a full forward, "
                "report this as a bug.")
        rows.append({
            "model": model, "prompt_id": prompt_id, "method": method, "direction": direction,
            "length": len(found.token_ids), "rank": found.rank,
            "token_ids": [int(t) for t in found.token_ids], "pieces": check["pieces"],
            "response": check["response"], "score": found.score, "objective": found.objective,
            "fluency": math.nan if found.fluency is None else found.fluency,
            "reference_score": check["reference_score"], "text_score": check["text_score"],
            "retokenizes": check["retokenizes"], "complete": outcome.complete,
            "steps": outcome.steps, "evaluations": outcome.evaluations, "seed": seed,
        })
    return rows


def search_responses(
    model: str | Path | RewardModel,
    prompts: Any = "paper-54",
    out: str | Path | None = None,
    *,
    method: str = "beam",
    direction: str | Sequence[str] = "max",
    length: int = 4,
    tokens: str | Sequence[int] = "vocab",
    include_special: bool = False,
    keep: int = 10,
    beam_width: int = 8,
    singles: Any = None,
    first_tokens: int = 50,
    steps: int = 100,
    topk: int = 256,
    search_width: int = 512,
    init: Sequence[int] | None = None,
    fluency_model: Any = None,
    fluency_weight: float = 0.0,
    seed: int = 0,
    time_budget: float | None = None,
    revision: str | None = None,
    batch_size: int | None = None,
    dtype: str | None = None,
    device: str | None = None,
    date_string: str = DEFAULT_DATE_STRING,
    chat_template: str | Path | None = None,
    trust_remote_code: bool = False,
    mode: str = "auto",
    verify_tolerance: float | None = None,
    progress: bool = False,
) -> SearchResult:
    """Search the best (``direction="max"``) or worst (``"min"``, or ``"both"``) ``length``-token
    responses of a reward model to each prompt.

    ``method``: ``"beam"`` (width ``beam_width``), ``"gcg"`` (``steps`` iterations, ``topk``
    substitutions per position, ``search_width`` candidates per step, optional ``fluency_model``
    — a causal LM folder/hub id or loaded model sharing the tokenizer — weighted by
    ``fluency_weight``), or ``"exhaustive2"`` (length 2; first tokens: the top and bottom
    ``first_tokens`` of ``singles``, a stored ``rmvalues score`` run, else of a single-token pass
    over the allowed tokens). ``tokens``: the allowed response tokens (``vocab``, ``alpha``,
    ``words``, with an optional id range, or a list of ids). ``keep``: responses reported per
    search (exhaustive2) — beam reports its final beam and the best of each shorter length.
    ``time_budget``: seconds per (prompt, direction) search. Every reported response is re-scored
    through the reference path; a fast-path score off by more than ``verify_tolerance`` (default by
    dtype) fails the run.
    """
    import pandas as pd

    from rmvalues.analysis.search import read_singles
    from rmvalues.engines.score import Engine
    from rmvalues.engines.search import (
        ResponseScorer,
        beam_search,
        exhaustive2,
        first_token_set,
        gcg,
        token_space,
    )
    from rmvalues.models.chat import conversation_kwargs, split_chat
    from rmvalues.models.checkpoints import load_model_ref
    from rmvalues.models.loading import RewardModel
    from rmvalues.prompts import prompt_pairs
    from rmvalues.runs.scorers import registry_batch_size
    from rmvalues.runs.verify import VERIFY_TOLERANCE
    from rmvalues.store.manifest import build_manifest, library_versions, stable_hash
    from rmvalues.store.shards import check_writable, slug

    started = time.perf_counter()
    directions = ["max", "min"] if direction == "both" else (
        [direction] if isinstance(direction, str) else list(direction))
    _check_options(method, directions, length, keep)
    if out is not None:
        out = check_writable(out)
    set_name, pairs = prompt_pairs(prompts)
    singles_frame = read_singles(singles) if singles is not None else None
    rm = model if isinstance(model, RewardModel) else load_model_ref(
        model, revision=revision, dtype=dtype, device=device, chat_template=chat_template,
        trust_remote_code=trust_remote_code)
    space = token_space(rm.tokenizer, tokens, include_special=include_special)
    if singles_frame is not None and "model" in singles_frame.columns:
        models = set(singles_frame["model"])
        if rm.name in models:
            singles_frame = singles_frame[singles_frame["model"] == rm.name]
        elif len(models) > 1:
            raise InputError(f"the stored score run holds several models ({sorted(models)}) but "
                             f"not {rm.name!r}; pass the run of this model as --singles")
    fluency = _fluency(fluency_model, fluency_weight, rm, device=device) if method == "gcg" else None
    engine = Engine(rm, batch_size=batch_size, row_cap=registry_batch_size(rm), mode=mode)
    provenance = rm.provenance()
    tolerance = verify_tolerance if verify_tolerance is not None else VERIFY_TOLERANCE.get(
        provenance["dtype"], 1e-1)
    settings = {"method": method, "length": length, "tokens": space.source,
                "tokens_hash": space.content_hash(), "keep": keep, "seed": seed,
                "time_budget": time_budget}
    if method == "beam":
        settings["beam_width"] = beam_width
    elif method == "gcg":
        settings.update(steps=steps, topk=topk, search_width=search_width,
                        init=list(init) if init is not None else None,
                        fluency_model=getattr(fluency_model, "name", None) or (
                            str(fluency_model) if fluency_model is not None else None),
                        fluency_weight=fluency_weight if fluency is not None else 0.0)
    else:
        settings.update(first_tokens=first_tokens,
                        singles=stable_hash(singles_frame[["prompt_id", "token_id", "score"]]
                                            .to_dict("list")) if singles_frame is not None else None)
    versions = library_versions()
    base = {"search_version": SEARCH_VERSION, "provenance": provenance, **settings,
            "libraries": {k: versions.get(k) for k in ("torch", "transformers", "tokenizers")}}
    shard_dir = out / "search-shards" / slug(rm.name) if out is not None else None
    state_dir = out / "search-state" / slug(rm.name) if out is not None else None

    bar = Progress(progress, 0, "search", unit="step", announce=False)  # restarted per search
    rows: list[dict[str, Any]] = []
    traces: list[pd.DataFrame] = []
    resumed = searched = 0
    try:
        for pid, text in pairs:
            split = split_chat(rm.tokenizer, text, date_string=date_string,
                               chat_template=chat_template)
            for dirn in directions:
                key = stable_hash({**base, "prompt": text, "direction": dirn,
                                   **conversation_kwargs(split)})
                stem = f"{slug(pid)}-{dirn}-{key}"
                if shard_dir is not None and (shard_dir / f"{stem}.parquet").exists():
                    rows += pd.read_parquet(shard_dir / f"{stem}.parquet").to_dict("records")
                    traces.append(pd.read_parquet(shard_dir / f"{stem}_trace.parquet"))
                    resumed += 1
                    continue
                state_file = state_dir / f"{stem}.json" if state_dir is not None else None
                state = (json.loads(state_file.read_text("utf-8"))
                         if state_file is not None and state_file.exists() else None)
                scorer = ResponseScorer(engine, split)

                def on_step(snapshot: dict[str, Any], best: float,
                            state_file: Path | None = state_file) -> None:
                    if state_file is not None:
                        from rmvalues.io import atomic_write_text

                        atomic_write_text(state_file, json.dumps(snapshot))
                    bar.postfix = f"best {best:+.4f}"
                    bar.advance(1)

                if method == "exhaustive2":
                    if singles_frame is not None:
                        prompt_singles = singles_frame[singles_frame["prompt_id"] == pid]
                    else:  # a single-token pass over the allowed first tokens (not resumed)
                        first = list(space.first)
                        scores = scorer.next_token_scores((), scorer.state(()), first)
                        prompt_singles = pd.DataFrame({"token_id": first, "score": scores})
                    first = first_token_set(prompt_singles, first_tokens)
                    bar.restart(f"{pid} {dirn}", len(first))
                    outcome = exhaustive2(scorer, space, first, dirn, keep=keep,
                                          time_budget=time_budget, state=state, on_step=on_step)
                elif method == "beam":
                    bar.restart(f"{pid} {dirn}", length)
                    outcome = beam_search(scorer, space, length, dirn, width=beam_width,
                                          time_budget=time_budget, state=state, on_step=on_step)
                else:
                    bar.restart(f"{pid} {dirn}", steps)
                    outcome = gcg(scorer, space, length, dirn, steps=steps, topk=topk,
                                  search_width=search_width, seed=seed, init=init,
                                  fluency=fluency, time_budget=time_budget, state=state,
                                  on_step=on_step)
                shard = _frame(_outcome_rows(rm, split, outcome, model=rm.name, prompt_id=pid,
                                             method=method, direction=dirn, seed=seed,
                                             tolerance=tolerance))
                trace = pd.DataFrame(outcome.trace).assign(
                    model=rm.name, prompt_id=pid, method=method, direction=dirn)
                if shard_dir is not None:
                    _write(trace, shard_dir / f"{stem}_trace.parquet")
                    from rmvalues.store.manifest import manifest_path, write_manifest

                    write_manifest(manifest_path(shard_dir / f"{stem}.parquet"), build_manifest(
                        "rm-search-shard", prompt_id=pid, prompt=text, direction=dirn,
                        shard_key=key, **base, **conversation_kwargs(split)))
                    _write(shard, shard_dir / f"{stem}.parquet")  # last: the shard is finished
                    if state_file is not None and state_file.exists():
                        state_file.unlink()
                        if not any(state_dir.iterdir()):
                            state_dir.rmdir()
                rows += shard.to_dict("records")
                traces.append(trace)
                searched += 1
    finally:
        bar.close()

    table = _frame(rows)
    trace_table = pd.concat(traces, ignore_index=True) if traces else pd.DataFrame()
    flagged = int((~table["retokenizes"].astype(bool)).sum())
    fields = {
        **provenance, "engine": engine.mode, "search_version": SEARCH_VERSION, **settings,
        "directions": directions, "prompt_set": set_name, "prompt_ids": [p for p, _ in pairs],
        "date_string": date_string, "verify_tolerance": tolerance,
        "max_abs_diff": float((table["score"] - table["reference_score"]).abs().max()),
        "not_retokenizing": flagged,
    }
    path = None
    if out is not None:
        from rmvalues.store.manifest import manifest_path, write_manifest

        path = out / f"{slug(rm.name)}_search.parquet"
        _write(trace_table, out / f"{slug(rm.name)}_search_trace.parquet")
        write_manifest(manifest_path(path), build_manifest("rm-search", **fields))
        _write(table, path)
    best = table[table["rank"] == 1].sort_values("length").groupby(
        ["prompt_id", "direction"]).tail(1)
    shown = "; ".join(f"{r.prompt_id} {r.direction}: {r.response!r} {r.score:+.4f}"
                      for r in best.head(4).itertuples())
    notes = [f"{searched} searched"] + ([f"{resumed} resumed"] if resumed else [])
    if flagged:
        notes.append(f"{flagged} response(s) whose text does not re-tokenise to the searched ids")
    summary = (f"{rm.name} {method} (length {length}): {len(pairs)} prompt(s) x "
               f"{len(directions)} direction(s), {', '.join(notes)} in "
               f"{time.perf_counter() - started:.1f}s. {shown}" + (f" -> {path}" if path else ""))
    return SearchResult(table=table, trace=trace_table, path=path, summary=summary, manifest=fields)


def _fluency(model: Any, weight: float, rm: RewardModel, *, device: str | None) -> Any:
    """The GCG fluency term: a causal LM with the RM's vocabulary, or ``None``."""
    from rmvalues.engines.search import Fluency

    if model is None:
        if weight:
            raise InputError("--fluency-weight needs --fluency-model (a small causal LM that "
                             "shares the reward model's tokenizer)")
        return None
    if isinstance(model, (str, Path)):
        from rmvalues.models.lm import load_causal_lm

        loaded = load_causal_lm(model, device=device or str(rm.device))
        if loaded.tokenizer.get_vocab() != rm.tokenizer.get_vocab():
            raise InputError(f"fluency model {model!r} has another vocabulary than the reward "
                             "model; pick an LM with the same tokenizer")
        model = loaded.model
    elif hasattr(model, "model") and hasattr(model, "tokenizer"):  # a LoadedLM
        model = model.model
    return Fluency(model=model.eval(), weight=float(weight))
