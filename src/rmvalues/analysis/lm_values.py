"""Value lexicons in LM log-probs (paper §4, Fig 2): which category do base models expect as an answer?

For two (or more) log-prob runs: keep the lexicon words that are single tokens in every vocabulary
(decoded string equal to the word exactly, no leading space — the paper's filter); per prompt and
model rank them by log-prob (1 = most likely, ties averaged); take the median rank per (prompt,
category, model) — the unit, with the prompt's framing attached (54 prompts × 2 categories × 2 models
= 216 units). Then a Type-II ANOVA ``median_rank ~ C(category) * C(framing) * C(model)`` and Welch
t-tests between models per category × framing cell with Benjamini–Hochberg correction over the cells.
The statistics come from :mod:`rmvalues.analysis`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rmvalues.errors import AnalysisError, InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from rmvalues.store.logprob_runs import LogprobRun


@dataclass
class LMValuesResult:
    """Words kept, per-item ranks, units, the ANOVA and the post hoc tests of one comparison."""

    models: list[str]
    words: pd.DataFrame  # item, category, token_id_<i> per model
    ranks: pd.DataFrame  # model, prompt_id, item, category, score (log-prob), rank, n_items
    units: pd.DataFrame  # model, prompt_id, category, median_rank, n_items, framing, ...
    formula: str
    anova: pd.DataFrame
    posthoc: pd.DataFrame
    lexicon: str

    @property
    def residual_df(self) -> int:
        return int(self.anova.loc[self.anova["term"] == "Residual", "df"].iloc[0])

    def summary(self) -> str:
        counts = self.words["category"].value_counts().sort_index()
        head = (
            f"Lexicon {self.lexicon!r} in log-probs of {', '.join(self.models)}: "
            f"{len(self.words)} words are single tokens in every vocabulary "
            f"({', '.join(f'{c}: {n}' for c, n in counts.items())}); "
            f"{len(self.units)} units, ANOVA residual df {self.residual_df}."
        )
        lines = [head]
        means = self.units.groupby(["framing", "category", "model"], observed=True)[
            "median_rank"].mean()
        for (framing, category, model), value in means.items():
            lines.append(f"  mean median rank  {framing:<8} {category:<10} {model}: {value:.1f}")
        for _, row in self.anova.iterrows():
            if row["term"] != "Residual":
                lines.append(f"  ANOVA {row['term']}: F({row['df']}, {self.residual_df}) = "
                             f"{row['F']:.2f}, p = {row['p']:.3g}")
        for _, row in self.posthoc.iterrows():
            cell = " ".join(str(row[c]) for c in ("category", "framing") if c in row)
            lines.append(f"  Welch {cell}: {row['group_a']} - {row['group_b']} = {row['diff']:.1f} "
                         f"ranks, p_BH = {row['p_adj']:.3g} {row['stars']}")
        return "\n".join(lines)


def shared_single_token_words(
    runs: Sequence[LogprobRun], lexicon: Any = "big-two-nouns",
    categories: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Lexicon words whose exact string is one token in every run's vocabulary.

    One row per (word, category) with ``token_id_<i>`` the word's token in run ``i`` (when several
    ids decode to the word, the one with the highest mean log-prob over prompts, as the paper's
    max-duplicate rule).
    """
    import pandas as pd

    from rmvalues.lexicons import Lexicon, load_lexicon

    lex = lexicon if isinstance(lexicon, Lexicon) else load_lexicon(lexicon)
    cats = list(categories) if categories is not None else list(lex.categories)
    unknown = [c for c in cats if c not in lex.categories]
    if unknown:
        raise InputError(f"lexicon {lex.name!r} has no categories {unknown}; it has "
                         f"{list(lex.categories)}.")
    rows = [(term, cat) for cat in cats for term in lex.terms(cat)]
    frame = pd.DataFrame(rows, columns=["item", "category"])
    for i, run in enumerate(runs):
        best: dict[str, int] = {}
        mean = run.logprobs.mean(axis=0)
        wanted = set(frame["item"])
        for j, tok in enumerate(run.tokens):
            if tok in wanted and (tok not in best or mean[j] > mean[best[tok]]):
                best[tok] = j
        frame[f"col_{i}"] = frame["item"].map(best)
    cols = [f"col_{i}" for i in range(len(runs))]
    frame = frame.dropna(subset=cols).reset_index(drop=True)
    if frame.empty:
        raise AnalysisError(
            f"no word of lexicon {lex.name!r} is a single token in every vocabulary "
            f"({', '.join(r.model for r in runs)}); use models with larger vocabularies or another "
            "lexicon."
        )
    for i, run in enumerate(runs):
        idx = frame[f"col_{i}"].astype(int).to_numpy()
        frame[f"token_id_{i}"] = run.token_ids[idx]
    frame.attrs["columns"] = {f"col_{i}": run.model for i, run in enumerate(runs)}
    return frame


def lexicon_ranks(runs: Sequence[LogprobRun], words: pd.DataFrame,
                  prompt_ids: Sequence[str]) -> pd.DataFrame:
    """Log-prob and rank (1 = most likely, ties averaged) of every kept word per model and prompt."""
    import pandas as pd

    from rmvalues.analysis.ranks import MatchPolicy, rank_items

    parts = []
    for i, run in enumerate(runs):
        cols = words[f"col_{i}"].astype(int).to_numpy()
        scores = run.matrix(prompt_ids)[:, cols]  # prompts × words
        parts.append(pd.DataFrame({
            "model": run.model,
            "prompt_id": np.repeat(list(prompt_ids), len(words)),
            "item": np.tile(words["item"].to_numpy(), len(prompt_ids)),
            "category": np.tile(words["category"].to_numpy(), len(prompt_ids)),
            "score": scores.ravel().astype(float),
        }))
    # Every kept (word, category) row is ranked within its (model, prompt).
    return rank_items(pd.concat(parts, ignore_index=True), MatchPolicy(rank_over="rows"))


def lm_values(
    runs: Sequence[LogprobRun],
    lexicon: Any = "big-two-nouns",
    *,
    prompts: Any = "paper-54",
    categories: Sequence[str] | None = None,
    correction: str = "bh",
) -> LMValuesResult:
    """The Fig 2 analysis of log-prob runs (see the module docstring)."""
    from rmvalues.analysis import type2_anova, welch_posthoc
    from rmvalues.analysis.units import median_rank_units
    from rmvalues.implicit import check_same_prompts
    from rmvalues.lexicons import Lexicon

    runs = list(runs)
    if not runs:
        raise InputError("lm_values needs at least one log-prob run")
    models = [r.model for r in runs]
    if len(set(models)) != len(models):
        raise InputError(f"runs repeat a model name ({models}); give each run its own name")
    for other in runs[1:]:
        check_same_prompts(runs[0], other)
    prompt_ids = list(runs[0].prompt_ids)
    words = shared_single_token_words(runs, lexicon, categories)
    ranks = lexicon_ranks(runs, words, prompt_ids)
    units = median_rank_units(ranks, require_base=False, prompts=prompts)
    if units["framing"].isna().any():
        missing = sorted(units.loc[units["framing"].isna(), "prompt_id"].unique())[:5]
        raise AnalysisError(f"prompts {missing} have no framing in prompt set {prompts!r}; pass the "
                            "prompt set the runs were computed on.")
    terms = ["C(category)", "C(framing)"] + (["C(model)"] if len(runs) > 1 else [])
    formula = "median_rank ~ " + " * ".join(terms)
    anova = type2_anova(units, formula)
    if len(runs) > 1:
        posthoc = welch_posthoc(units, "median_rank", "model", by=["category", "framing"],
                                correction=correction)
    else:
        posthoc = welch_posthoc(units, "median_rank", "category", by=["framing"],
                                correction=correction)
    lex_name = lexicon.name if isinstance(lexicon, Lexicon) else str(lexicon)
    out_words = words.drop(columns=[c for c in words.columns if c.startswith("col_")])
    out_words = out_words.rename(columns={f"token_id_{i}": f"token_id[{m}]"
                                          for i, m in enumerate(models)})
    return LMValuesResult(models=models, words=out_words, ranks=ranks, units=units,
                          formula=formula, anova=anova, posthoc=posthoc, lexicon=lex_name)


def write_lm_values(result: LMValuesResult, out_dir: str | Path) -> list[Path]:
    """Write ``lm_words/lm_ranks/lm_units/lm_anova/lm_tests.csv``, ``lm_summary.txt`` and a manifest."""
    from rmvalues.io import atomic_path, atomic_write_text
    from rmvalues.store.manifest import build_manifest, write_manifest

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    # File stems follow what `rmvalues report` recognises (lm_units: Fig 2, lm_tests: its stars).
    for name, stem in (("words", "lm_words"), ("ranks", "lm_ranks"), ("units", "lm_units"),
                       ("anova", "lm_anova"), ("posthoc", "lm_tests")):
        path = out_dir / f"{stem}.csv"
        with atomic_path(path) as tmp:
            getattr(result, name).to_csv(tmp, index=False)
        paths.append(path)
    paths.append(atomic_write_text(out_dir / "lm_summary.txt", result.summary() + "\n"))
    write_manifest(out_dir / "manifest.json", build_manifest(
        "lm-values", models=result.models, lexicon=result.lexicon, formula=result.formula,
        n_words=len(result.words), n_units=len(result.units), residual_df=result.residual_df))
    return paths
