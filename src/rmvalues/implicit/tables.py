"""Tables of implicit rewards: top and bottom tokens (the paper's Table 1), per-target scores of
model pairs (Fig 3), and the tables one pair writes (:func:`implicit_tables`; written by
:mod:`rmvalues.store.implicit`)."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from rmvalues.errors import InputError
from rmvalues.implicit.joins import Aggregate, JoinPolicy, join_vocabularies
from rmvalues.implicit.metrics import get_metric
from rmvalues.implicit.rewards import ImplicitResult, check_same_prompts, implicit_rewards
from rmvalues.store.logprob_runs import as_run

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

_FORMAT_CHARS = set("`*_#~|>-=+[](){}<>!\"'.,:;?/\\^$%&@")


def is_formatting_token(token: str) -> bool:
    """True for whitespace, Markdown and punctuation-only tokens (and the empty string)."""
    for ch in token:
        if ch.isspace() or ch in _FORMAT_CHARS:
            continue
        cat = unicodedata.category(ch)
        if cat[0] in ("P", "Z") or cat in ("Cc", "Cf"):
            continue
        return False
    return True


def top_bottom(
    table: pd.DataFrame,
    k: int = 15,
    *,
    prompt_id: str | None = None,
    drop_formatting: bool = False,
    key: str = "key",
    score: str = "score",
) -> pd.DataFrame:
    """Top-k and bottom-k tokens by score (Table 1): ``side, rank, key, score, n``.

    With ``prompt_id`` one prompt's scores are ranked (as the paper's Table 1); otherwise the mean
    over prompts. ``rank`` is the position among all ranked tokens (1 = highest), so bottom ranks
    end at the total count ``n``. ``drop_formatting`` removes whitespace/Markdown/punctuation tokens.
    """
    import pandas as pd

    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    frame = table
    if prompt_id is not None:
        frame = frame[frame["prompt_id"] == prompt_id]
        if frame.empty:
            raise InputError(f"prompt {prompt_id!r} is not in the table")
        agg = frame[[key, score]].set_index(key)[score]
    else:
        agg = frame.groupby(key, observed=True, sort=False)[score].mean()
    if drop_formatting:
        agg = agg[[not is_formatting_token(t) for t in agg.index]]
    ranked = agg.sort_values(ascending=False, kind="stable")
    n = len(ranked)
    top = ranked.head(k)
    bottom = ranked.tail(min(k, max(n - len(top), 0)))
    out = pd.concat([
        pd.DataFrame({"side": "top", "rank": np.arange(1, len(top) + 1), key: top.index,
                      score: top.to_numpy()}),
        pd.DataFrame({"side": "bottom", "rank": np.arange(n - len(bottom) + 1, n + 1),
                      key: bottom.index, score: bottom.to_numpy()}),
    ], ignore_index=True)
    out["n"] = n
    return out


def target_scores(
    p_runs: Mapping[str, object] | Sequence[object],
    q_runs: Mapping[str, object] | Sequence[object],
    targets: Sequence[str] = ("Freedom", "Love"),
    *,
    metric: str = "mwlr",
    prompt_ids: Iterable[str] | None = None,
    common_vocabulary: Literal["all", "pair"] = "all",
) -> pd.DataFrame:
    """Per-target scores for every (p, q) pair of two model lists (Fig 3): q's preference over p.

    Tokens are joined by exact decoded string (duplicates by max log-prob). With
    ``common_vocabulary="all"`` (the paper) only strings present in every model are kept; ``"pair"``
    keeps each pair's own intersection. A target's score is the mean metric over joined tokens whose
    ``strip().lower()`` equals the target's lower-case form (e.g. "Love", " love", "LOVE").
    Returns ``p_model, q_model, prompt_id, target, score, n_variants``.
    """
    import pandas as pd

    p_list = [as_run(r) for r in (p_runs.values() if isinstance(p_runs, Mapping) else p_runs)]
    q_list = [as_run(r) for r in (q_runs.values() if isinstance(q_runs, Mapping) else q_runs)]
    if not p_list or not q_list:
        raise InputError("target_scores needs at least one model on each side")
    everyone = p_list + q_list
    for other in everyone[1:]:
        check_same_prompts(everyone[0], other)
    shared_prompts = list(prompt_ids) if prompt_ids is not None else list(everyone[0].prompt_ids)
    common: set[str] | None = None
    if common_vocabulary == "all":
        for run in everyone:
            strings = set(run.tokens)
            common = strings if common is None else common & strings
    fn = get_metric(metric)
    wanted = {t: t.strip().lower() for t in targets}
    rows = []
    for p in p_list:
        for q in q_list:
            vj = join_vocabularies(p.tokens, q.tokens, policy="exact", aggregate="max")
            keys = np.asarray(vj.keys, dtype=object)
            keep = np.ones(len(keys), bool) if common is None else np.fromiter(
                (k in common for k in keys), bool, count=len(keys))
            folded = np.array([k.strip().lower() for k in keys], dtype=object)
            lp, lq = vj.apply(p.matrix(shared_prompts), q.matrix(shared_prompts))
            scores = fn(lp, lq)
            for target, low in wanted.items():
                mask = keep & (folded == low)
                n = int(mask.sum())
                vals = scores[:, mask].mean(axis=1) if n else np.full(len(shared_prompts), np.nan)
                for pid, v in zip(shared_prompts, vals):
                    rows.append((p.model, q.model, pid, target, float(v), n))
    return pd.DataFrame(rows, columns=["p_model", "q_model", "prompt_id", "target", "score",
                                       "n_variants"])


def prompt_selection(prompts, shared: Sequence[str]) -> list[str] | None:
    """Prompt ids chosen by ``prompts``: None (all), ids, a comma list, or a prompt-set name."""
    if prompts is None:
        return None
    if isinstance(prompts, str):
        if "," in prompts or prompts in set(shared):
            return [p.strip() for p in prompts.split(",") if p.strip()]
        from rmvalues.prompts import load_prompt_set

        return load_prompt_set(prompts).ids
    if hasattr(prompts, "ids"):
        return list(prompts.ids)
    return [str(p) for p in prompts]


@dataclass(frozen=True)
class PairTables:
    """Everything one pair's implicit-reward step writes: the rewards, the tables (Table 1, Fig 3
    rows) and the manifest fields (options, prompts, both runs' metadata)."""

    result: ImplicitResult
    tables: dict[str, pd.DataFrame]
    fields: dict[str, Any]


def implicit_tables(
    p,
    q,
    *,
    metric: str = "mwlr",
    join: JoinPolicy = "exact",
    aggregate: Aggregate | None = None,
    renormalize_shared: bool = False,
    prompts=None,
    k: int = 15,
    table1_prompt: str | None = "greatest_ever_one",
    drop_formatting: bool = False,
    targets: Sequence[str] = ("Freedom", "Love"),
    drop_nonfinite: bool = False,
) -> PairTables:
    """Implicit rewards of q over p from two runs (no model is loaded) and the tables of the pair:
    ``top_bottom`` (Table 1, on ``table1_prompt`` when the runs have it, else the mean over
    prompts) and ``target_scores`` (Fig 3 rows for this pair)."""
    p_run, q_run = as_run(p), as_run(q)
    shared = check_same_prompts(p_run, q_run)
    chosen = prompt_selection(prompts, shared)
    res = implicit_rewards(p_run, q_run, metric=metric, join=join, aggregate=aggregate,
                           renormalize_shared=renormalize_shared, prompt_ids=chosen,
                           drop_nonfinite=drop_nonfinite)
    ids = chosen or shared
    t1 = table1_prompt if table1_prompt in set(ids) else None
    tables = {
        # The pair's models as columns, so a report over several pairs draws a Table 1 for each.
        "top_bottom": top_bottom(res.table, k, prompt_id=t1, drop_formatting=drop_formatting)
        .assign(p_model=p_run.model, q_model=q_run.model),
        "target_scores": target_scores([p_run], [q_run], targets, metric=metric, prompt_ids=ids,
                                       common_vocabulary="pair"),
    }
    fields = {"p": p_run.model, "q": q_run.model, "metric": metric, "join": res.report.to_dict(),
              "renormalize_shared": renormalize_shared, "prompt_ids": ids, "table1_prompt": t1,
              "k": k, "drop_formatting": drop_formatting, "targets": list(targets),
              "nonfinite_rows_dropped": res.nonfinite_dropped, "p_meta": p_run.meta,
              "q_meta": q_run.meta}
    return PairTables(result=res, tables=tables, fields=fields)


def write_implicit(p, q, out_dir, **options: Any) -> ImplicitResult:
    """:func:`implicit_tables` (same options) written to ``out_dir`` by
    :func:`rmvalues.store.implicit.write_pair_tables`: ``<metric>.parquet`` (prompt_id, key, logp,
    logq, score), ``top_bottom.csv``, ``target_scores.csv``, ``join.json`` (what the join kept and
    lost) and ``manifest.json``."""
    from rmvalues.store.implicit import write_pair_tables

    pair = implicit_tables(p, q, **options)
    write_pair_tables(out_dir, pair)
    return pair.result
