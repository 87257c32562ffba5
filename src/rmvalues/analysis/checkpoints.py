"""Training-dynamics summaries: median ranks per checkpoint, rank changes, the Fig 4b table.

Checkpoint sweeps are long tables with a ``checkpoint`` column (see
:func:`rmvalues.analysis.importers.read_checkpoint_scores`); ranks are taken within each (model,
checkpoint) and, for sweeps with more than one prompt, each prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rmvalues.analysis.ranks import FIG5_POLICY, MatchPolicy, ranked_items
from rmvalues.errors import AnalysisError, InputError

if TYPE_CHECKING:
    import pandas as pd

CHECKPOINT_BY = ("model", "prompt_id", "checkpoint")
#: The authors' Fig 4a ranking: normalised match, variants kept apart, (item, category) rows ranked.
FIG4_POLICY = MatchPolicy(match="paper", variants="separate", rank_over="rows")


def _require_checkpoint(scores: pd.DataFrame) -> None:
    if "checkpoint" not in scores.columns:
        raise InputError("scores have no 'checkpoint' column; read a sweep with read_checkpoint_scores.")


def checkpoint_units(
    scores: pd.DataFrame,
    lexicon: Any,
    policy: MatchPolicy = FIG4_POLICY,
    *,
    categories: Sequence[str] | None = None,
    merge: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Median rank per (model, prompt, checkpoint, category): ``..., median_rank, n_items``."""
    _require_checkpoint(scores)
    ranked = ranked_items(scores, lexicon, policy, categories=categories, merge=merge, by=CHECKPOINT_BY)
    return (ranked.groupby([*CHECKPOINT_BY, "category"], observed=True)
            .agg(median_rank=("rank", "median"), n_items=("rank", "size")).reset_index())


def rank_change(
    scores: pd.DataFrame,
    lexicon: Any,
    start: int | None = None,
    end: int | None = None,
    policy: MatchPolicy = FIG5_POLICY,
) -> pd.DataFrame:
    """Rank change of each item between two checkpoints (default first and last), Fig 5 semantics.

    Items are normalised forms with scores averaged over variants (``FIG5_POLICY``), ranked within
    each checkpoint; ``change = rank_start - rank_end``, so positive means preferred later in
    training. Sorted by change, largest rise first.
    """
    _require_checkpoint(scores)
    steps = sorted(scores["checkpoint"].unique())
    start = steps[0] if start is None else start
    end = steps[-1] if end is None else end
    for step in (start, end):
        if step not in steps:
            raise InputError(f"checkpoint {step} is not in the sweep; it has {steps[0]}..{steps[-1]}.")
    sub = scores[scores["checkpoint"].isin([start, end])]
    ranked = ranked_items(sub, lexicon, policy, by=CHECKPOINT_BY)
    wide = ranked.pivot_table(index=["model", "prompt_id", "item", "category"], columns="checkpoint",
                              values="rank", observed=True).reset_index()
    if start not in wide.columns or end not in wide.columns:
        raise AnalysisError(f"no lexicon item is scored at both checkpoints {start} and {end}.")
    wide = wide.rename(columns={start: "rank_start", end: "rank_end"}).dropna(subset=["rank_start", "rank_end"])
    wide["change"] = wide["rank_start"] - wide["rank_end"]
    wide["start"], wide["end"] = start, end
    wide.columns.name = None
    out = wide[["model", "prompt_id", "item", "category", "start", "end", "rank_start", "rank_end", "change"]]
    return out.sort_values(["model", "prompt_id", "change", "item"],
                           ascending=[True, True, False, True]).reset_index(drop=True)


#: Columns that identify one training set (run) of the rank-results tables.
RUN_COLUMNS = ("source", "data_size", "data_source", "method")


def final_checkpoint_table(rank_results: pd.DataFrame) -> pd.DataFrame:
    """Fig 4b: the last checkpoint of every trained RM in ``rank_results_*.csv`` tables.

    A run is one training set (source file / data size, data source, method); each model's last
    checkpoint is the largest it has in that run. (The authors' script takes the largest of the
    whole run, which drops a model whose training stopped earlier; here every model keeps its own.)
    """
    need = ["model", "category", "checkpoint", "median_rank"]
    missing = [c for c in need if c not in rank_results.columns]
    if missing:
        raise InputError(f"rank results lack column(s) {missing}; read them with read_rank_results.")
    run = [c for c in RUN_COLUMNS if c in rank_results.columns]
    last = rank_results.groupby([*run, "model"], dropna=False)["checkpoint"].transform("max")
    out = rank_results[rank_results["checkpoint"] == last]
    cols = [*run, "model", *[c for c in ("base",) if c in out.columns], "category", "checkpoint", "median_rank"]
    return out[cols].sort_values([*run, "model", "category"]).reset_index(drop=True)


def family_gap_table(final: pd.DataFrame, minuend: str = "Llama", subtrahend: str = "Gemma") -> pd.DataFrame:
    """The paper's Fig 4b numbers: final-checkpoint ``minuend - subtrahend`` median rank per
    category and training set (mean over a family's models; NaN where a family is absent).

    A positive gap means the ``subtrahend`` family ranks the category better (rank 1 = best).
    """
    if "base" not in final.columns:
        raise InputError("the final-checkpoint table has no 'base' column; read it with read_rank_results.")
    run = [c for c in RUN_COLUMNS if c in final.columns]
    keys = [*run, "category"]
    frame = final.assign(_family=final["base"].astype(str).str.lower())
    means = frame.groupby([*keys, "_family"], dropna=False)["median_rank"].mean().unstack("_family")
    a, b = minuend.lower(), subtrahend.lower()
    out = means.index.to_frame(index=False)
    out[minuend] = means[a].to_numpy() if a in means.columns else float("nan")
    out[subtrahend] = means[b].to_numpy() if b in means.columns else float("nan")
    out[f"{minuend}_minus_{subtrahend}"] = out[minuend] - out[subtrahend]
    return out

