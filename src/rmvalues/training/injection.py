"""Value injection at the reward-model level: the audit checking itself on a known, planted value.

From a lexicon with categories A and B, a synthetic preference set is built on paper-style prompts:
the chosen response is a word of A, the rejected one a word of B. Words and prompts are split into
training and held-out parts (inflected variants of a word — ``ally``/``allies`` — stay on one side).
After training, the checkpoints are swept on the held-out prompts with the held-out words as
candidates, and the per-prompt median rank of category A (1 = best) is compared between the first
and last checkpoint with a one-sided paired Wilcoxon signed-rank test: the audit passes when A rose
significantly on words and prompts the model never saw in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rmvalues.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from rmvalues.training.config import TrainConfig


def word_group(word: str) -> str:
    """Crude stem that keeps inflected variants together (``allies``/``ally``, ``contests``)."""
    w = word.lower().strip()
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", "")):
        if w.endswith(suffix) and len(w) > len(suffix) + 2:
            return w[: -len(suffix)] + repl
    return w


def _split(items: Sequence[str], held_out: float, rng: np.random.Generator,
           key=lambda x: x) -> tuple[list[str], list[str]]:
    groups: dict[str, list[str]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    names = sorted(groups)
    rng.shuffle(names)
    n_test = max(1, round(held_out * len(names)))
    if n_test >= len(names):
        raise InputError(f"cannot hold out {held_out:.0%} of {len(names)} group(s) and keep some "
                         "for training; use a smaller held-out fraction or more items.")
    test = sorted(x for name in names[:n_test] for x in groups[name])
    train = sorted(x for name in names[n_test:] for x in groups[name])
    return train, test


@dataclass
class InjectionSplit:
    """Training and held-out words of each category, and training and held-out prompts."""

    category_a: str
    category_b: str
    train_a: list[str]
    train_b: list[str]
    test_a: list[str]
    test_b: list[str]
    train_prompts: dict[str, str]
    test_prompts: dict[str, str]

    def test_lexicon(self) -> pd.DataFrame:
        """The held-out words as a ``term, category`` lexicon for the analysis functions."""
        import pandas as pd

        return pd.DataFrame({"term": [*self.test_a, *self.test_b],
                             "category": [self.category_a] * len(self.test_a)
                             + [self.category_b] * len(self.test_b)})

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def injection_split(
    lexicon: Any = "big-two-nouns",
    category_a: str = "Communion",
    category_b: str = "Agency",
    prompts: Any = "paper-54",
    *,
    held_out_words: float = 0.3,
    held_out_prompts: float = 0.3,
    max_words: int | None = None,
    seed: int = 1,
) -> InjectionSplit:
    """Split a lexicon's two categories and a prompt set into training and held-out parts.

    Single words only (no wildcards, no spaces); terms in both categories are dropped. ``max_words``
    caps each category (a seeded draw) to keep small runs small.
    """
    from rmvalues.lexicons import load_lexicon
    from rmvalues.prompts import prompt_pairs

    lex = lexicon if hasattr(lexicon, "terms") else load_lexicon(lexicon)
    for category in (category_a, category_b):
        if category not in lex.categories:
            raise InputError(f"lexicon {getattr(lex, 'name', lexicon)!r} has no category "
                             f"{category!r}; it has {list(lex.categories)}.")
    if category_a == category_b:
        raise InputError("value injection needs two different categories.")
    a = {t for t in lex.terms(category_a) if t.isalpha()}
    b = {t for t in lex.terms(category_b) if t.isalpha()}
    a, b = sorted(a - b), sorted(b - a)
    rng = np.random.default_rng(seed)
    if max_words is not None:
        a = sorted(rng.choice(a, size=min(max_words, len(a)), replace=False).tolist())
        b = sorted(rng.choice(b, size=min(max_words, len(b)), replace=False).tolist())
    if len(a) < 2 or len(b) < 2:
        raise InputError(f"categories {category_a!r}/{category_b!r} need at least two single-word "
                         "terms each for a training/held-out split.")
    train_a, test_a = _split(a, held_out_words, rng, word_group)
    train_b, test_b = _split(b, held_out_words, rng, word_group)
    _, pairs = prompt_pairs(prompts)
    texts = dict(pairs)
    train_ids, test_ids = _split(list(texts), held_out_prompts, rng)
    return InjectionSplit(category_a, category_b, train_a, train_b, test_a, test_b,
                          {i: texts[i] for i in train_ids}, {i: texts[i] for i in test_ids})


def injection_records(split: InjectionSplit, n_pairs: int, *, seed: int = 1) -> list[dict[str, str]]:
    """``n_pairs`` preference records: a training prompt, chosen = an A word, rejected = a B word."""
    if n_pairs < 1:
        raise InputError(f"n_pairs must be >= 1 (got {n_pairs}).")
    rng = np.random.default_rng(seed)
    prompts = list(split.train_prompts.values())
    return [{"prompt": prompts[rng.integers(len(prompts))],
             "chosen": split.train_a[rng.integers(len(split.train_a))],
             "rejected": split.train_b[rng.integers(len(split.train_b))]}
            for _ in range(n_pairs)]


@dataclass
class InjectionResult:
    """Per held-out prompt median ranks of A at the first and last checkpoint, and the test."""

    split: InjectionSplit
    units: pd.DataFrame  # checkpoint_units on the held-out prompts and words
    start: int
    end: int
    median_rank_start: float
    median_rank_end: float
    rose: int  # held-out prompts where A's median rank improved
    n_prompts: int
    p_value: float  # one-sided paired Wilcoxon signed-rank, H1: A's rank improved
    sweep_table: pd.DataFrame = field(repr=False)
    train_dir: Path | None = None

    @property
    def summary(self) -> str:
        return (f"{self.split.category_a} over {self.split.category_b}: median rank of held-out "
                f"{self.split.category_a} words on {self.n_prompts} held-out prompts "
                f"{self.median_rank_start:.1f} (step {self.start}) -> {self.median_rank_end:.1f} "
                f"(step {self.end}); improved on {self.rose}/{self.n_prompts} prompts, one-sided "
                f"Wilcoxon p = {self.p_value:.3g}")


def injection_test(sweep_table: pd.DataFrame, split: InjectionSplit, *,
                   start: int | None = None, end: int | None = None) -> InjectionResult:
    """Test that category A's median rank improved from ``start`` to ``end`` (default first → last)
    on the held-out prompts and words of ``split``."""
    from scipy.stats import wilcoxon

    from rmvalues.analysis import checkpoint_units

    table = sweep_table[sweep_table["prompt_id"].isin(list(split.test_prompts))]
    steps = sorted(table["checkpoint"].unique())
    if not steps:
        raise InputError("the sweep holds none of the held-out prompts.")
    start = steps[0] if start is None else start
    end = steps[-1] if end is None else end
    units = checkpoint_units(table, split.test_lexicon())
    a = units[units["category"] == split.category_a]
    wide = a.pivot_table(index="prompt_id", columns="checkpoint", values="median_rank")
    if start not in wide.columns or end not in wide.columns or start == end:
        raise InputError(f"need two different checkpoints in the sweep (start {start}, end {end}).")
    diff = (wide[start] - wide[end]).to_numpy()  # > 0: A ranked better at the end
    if np.all(diff == 0):
        p = 1.0
    else:
        p = float(wilcoxon(diff, alternative="greater", zero_method="wilcox").pvalue)
    return InjectionResult(split=split, units=units, start=int(start), end=int(end),
                           median_rank_start=float(np.median(wide[start])),
                           median_rank_end=float(np.median(wide[end])),
                           rose=int((diff > 0).sum()), n_prompts=len(diff), p_value=p,
                           sweep_table=table)


def run_injection(
    base: Any,
    out: str | Path,
    *,
    lexicon: Any = "big-two-nouns",
    category_a: str = "Communion",
    category_b: str = "Agency",
    prompts: Any = "paper-54",
    n_pairs: int = 400,
    config: TrainConfig | None = None,
    held_out_words: float = 0.3,
    held_out_prompts: float = 0.3,
    max_words: int | None = None,
    gguf_file: str | None = None,
    device: str | None = None,
    sweep_steps: Sequence[int] | None = None,
    batch_size: int = 64,
) -> InjectionResult:
    """Inject a preference for ``category_a`` over ``category_b`` into a reward model trained from
    ``base`` and test, with the sweep and statistics, that the audit finds it on held-out data.

    Sweeps the first and last checkpoints by default (``sweep_steps`` for more).
    """
    from rmvalues.store.manifest import build_manifest, write_manifest
    from rmvalues.training.config import TrainConfig
    from rmvalues.training.sweep import sweep
    from rmvalues.training.trainer import train_reward_model

    config = config or TrainConfig()
    out = Path(out)
    split = injection_split(lexicon, category_a, category_b, prompts,
                            held_out_words=held_out_words, held_out_prompts=held_out_prompts,
                            max_words=max_words, seed=config.seed)
    records = injection_records(split, n_pairs, seed=config.seed)
    run = train_reward_model(base, records, out / "train", config, gguf_file=gguf_file,
                             device=device)
    steps = list(sweep_steps) if sweep_steps is not None else [run.steps[0], run.steps[-1]]
    swept = sweep(out / "train", split.test_prompts, [*split.test_a, *split.test_b],
                  out / "sweep", steps=steps, device=device, batch_size=batch_size)
    result = injection_test(swept.table, split)
    result.train_dir = out / "train"
    result.units.to_parquet(out / "injection_units.parquet", index=False)
    write_manifest(out / "injection.manifest.json", build_manifest(
        "rm-value-injection", split=split.to_dict(), n_pairs=n_pairs, summary=result.summary,
        p_value=result.p_value, median_rank_start=result.median_rank_start,
        median_rank_end=result.median_rank_end, start=result.start, end=result.end))
    return result
