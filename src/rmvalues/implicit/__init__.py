"""Implicit reward models between two language models (see :mod:`rmvalues.implicit.rewards`)."""

from rmvalues.implicit.rewards import (
    CLIP_FLOORS,
    METRIC_FUNCTIONS,
    METRICS,
    ImplicitResult,
    JoinReport,
    VocabularyJoin,
    check_same_prompts,
    clipped_log_ratio,
    compute_metric,
    get_metric,
    implicit_rewards,
    is_formatting_token,
    join_vocabularies,
    kl_divergence,
    log_ratio,
    logsumexp,
    mwlr,
    odds_ratio,
    prob_difference,
    prob_ratio,
    reference_join,
    reference_metric,
    renormalize,
    target_scores,
    top_bottom,
    write_implicit,
)

__all__ = [
    "CLIP_FLOORS", "METRICS", "METRIC_FUNCTIONS", "ImplicitResult", "JoinReport", "VocabularyJoin",
    "check_same_prompts", "clipped_log_ratio", "compute_metric", "get_metric", "implicit_rewards",
    "is_formatting_token", "join_vocabularies", "kl_divergence", "log_ratio", "logsumexp", "mwlr",
    "odds_ratio", "prob_difference", "prob_ratio", "reference_join", "reference_metric",
    "renormalize", "target_scores", "top_bottom", "write_implicit",
]
