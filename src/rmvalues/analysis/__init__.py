"""The paper's statistics: ranks and median-rank units, mixed models, panel tests, effect sizes,
Type-II ANOVA, top-k, checkpoint summaries, null baselines, and the reproduction of the paper's
numbers from the authors' released data.

Heavy libraries (pandas, statsmodels, scipy) are imported inside the functions, so importing this
package is cheap.
"""

from rmvalues.analysis.effect_sizes import bootstrap_ci, cohen_d, d_av, effect_size, hedges_g
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
from rmvalues.analysis.ranks import FIG5_POLICY, MatchPolicy, join_lexicon, rank_items, ranked_items
from rmvalues.analysis.units import median_rank_units, model_factors, prompt_factors

__all__ = [
    "FIG5_POLICY",
    "PAPER_FORMULA",
    "MatchPolicy",
    "MixedModelResult",
    "adjust_pvalues",
    "bootstrap_ci",
    "cohen_d",
    "d_av",
    "effect_size",
    "fit_mixed_model",
    "group_summary",
    "hedges_g",
    "join_lexicon",
    "median_rank_units",
    "model_factors",
    "panel_tests",
    "permutation_test",
    "prompt_factors",
    "rank_items",
    "ranked_items",
    "read_checkpoint_scores",
    "read_dictionary_scores",
    "read_rank_results",
    "read_released_folder",
    "read_vocabulary_scores",
    "stars",
    "welch_test",
]
