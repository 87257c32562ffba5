"""Implicit reward models between two language models: metrics on log-probs
(:mod:`~rmvalues.implicit.metrics`), cross-tokenizer joins (:mod:`~rmvalues.implicit.joins`), the
rewards of a model pair (:mod:`~rmvalues.implicit.rewards`) and their tables
(:mod:`~rmvalues.implicit.tables`). Only numpy and pandas are needed here.
"""

from rmvalues.implicit.joins import JoinReport, VocabularyJoin, join_vocabularies, reference_join
from rmvalues.implicit.metrics import (
    CLIP_FLOORS,
    METRIC_FUNCTIONS,
    METRICS,
    clipped_log_ratio,
    compute_metric,
    get_metric,
    kl_divergence,
    log_ratio,
    logsumexp,
    mwlr,
    odds_ratio,
    prob_difference,
    prob_ratio,
    reference_metric,
    renormalize,
)
from rmvalues.implicit.rewards import ImplicitResult, check_same_prompts, implicit_rewards
from rmvalues.implicit.tables import (
    PairTables,
    implicit_tables,
    is_formatting_token,
    target_scores,
    top_bottom,
    write_implicit,
)

__all__ = [
    "CLIP_FLOORS", "METRICS", "METRIC_FUNCTIONS", "ImplicitResult", "JoinReport", "PairTables",
    "VocabularyJoin", "check_same_prompts", "clipped_log_ratio", "compute_metric", "get_metric",
    "implicit_rewards", "implicit_tables", "is_formatting_token", "join_vocabularies",
    "kl_divergence", "log_ratio", "logsumexp", "mwlr", "odds_ratio", "prob_difference",
    "prob_ratio", "reference_join", "reference_metric", "renormalize", "target_scores",
    "top_bottom", "write_implicit",
]
