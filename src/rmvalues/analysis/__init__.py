"""The paper's statistics: ranks and median-rank units, mixed models, panel tests, effect sizes,
Type-II ANOVA, top-k, checkpoint summaries, null baselines, and the reproduction of the paper's
numbers from the authors' released data.

Heavy libraries (pandas, statsmodels, scipy) are imported inside the functions, so importing this
package is cheap.
"""

from rmvalues.analysis.anova import type2_anova, welch_posthoc
from rmvalues.analysis.checkpoints import checkpoint_units, final_checkpoint_table, rank_change
from rmvalues.analysis.datasets import fetch_dataset, released_datasets
from rmvalues.analysis.effect_sizes import bootstrap_ci, cohen_d, d_av, d_rms, effect_size, hedges_g
from rmvalues.analysis.hypothesis_tests import (
    adjust_pvalues,
    group_summary,
    panel_tests,
    permutation_test,
    stars,
    welch_test,
)
from rmvalues.analysis.importers import (
    read_checkpoint_scores,
    read_dictionary_scores,
    read_rank_results,
    read_released_folder,
    read_vocabulary_scores,
)
from rmvalues.analysis.mixed import PAPER_FORMULA, MixedModelResult, fit_mixed_model
from rmvalues.analysis.null import NullResult, null_baseline
from rmvalues.analysis.pipeline import AnalysisResult, analyze, write_analysis
from rmvalues.analysis.ranks import FIG5_POLICY, MatchPolicy, join_lexicon, rank_items, ranked_items
from rmvalues.analysis.reproduce import ReproduceReport, format_report, reproduce, reproduce_fig1
from rmvalues.analysis.topk import top_items, topk_counts
from rmvalues.analysis.units import median_rank_units, model_factors, prompt_factors

__all__ = [
    "FIG5_POLICY",
    "PAPER_FORMULA",
    "AnalysisResult",
    "MatchPolicy",
    "MixedModelResult",
    "NullResult",
    "ReproduceReport",
    "adjust_pvalues",
    "analyze",
    "bootstrap_ci",
    "checkpoint_units",
    "cohen_d",
    "d_av",
    "d_rms",
    "effect_size",
    "fetch_dataset",
    "final_checkpoint_table",
    "fit_mixed_model",
    "format_report",
    "group_summary",
    "hedges_g",
    "join_lexicon",
    "median_rank_units",
    "model_factors",
    "null_baseline",
    "panel_tests",
    "permutation_test",
    "prompt_factors",
    "rank_change",
    "rank_items",
    "ranked_items",
    "read_checkpoint_scores",
    "read_dictionary_scores",
    "read_rank_results",
    "read_released_folder",
    "read_vocabulary_scores",
    "released_datasets",
    "reproduce",
    "reproduce_fig1",
    "stars",
    "top_items",
    "topk_counts",
    "type2_anova",
    "welch_posthoc",
    "welch_test",
    "write_analysis",
]
