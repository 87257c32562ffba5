"""Seed sweeps and counterbalanced preference data (issue 19: is a trained RM's bias robust to the
seed, and does balancing the data remove it?).

* :func:`train_seeds`: one :func:`~rmvalues.training.trainer.train_reward_model` run per seed, each
  in ``OUT/seed-<N>`` (each resumable on its own), plus ``OUT/seeds.json`` naming them.
* :func:`counterbalance_records`: preference records changed so that, summed over the data, words
  of category A are preferred over those of category B exactly as often as the reverse. A pair's
  signal is ``(#A in chosen - #A in rejected) - (#B in chosen - #B in rejected)`` (whole-word,
  case-insensitive lexicon matches). ``mode="swap"`` (default) is counterfactual data augmentation
  (Lu et al. 2018, arXiv:1807.11714): every pair with a signal gets a copy in which each A word is
  replaced by a B word and vice versa (a seeded one-to-one pairing of the two word lists), whose
  signal is the opposite, so the total is 0 and every preference is seen both ways.
  ``mode="duplicate"`` re-weights instead: pairs of the minority sign are duplicated (a weight of
  2, 3, ... in the Bradley–Terry loss, which TRL has no per-pair weight for) until the signed total
  is as close to 0 as whole pairs allow (it leans on the few minority pairs, seen many times).
  The report says how far the data were from balance before and after.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rmvalues.errors import InputError

if TYPE_CHECKING:
    from rmvalues.training.config import TrainConfig
    from rmvalues.training.trainer import TrainResult

_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")


def _text(value: Any) -> str:
    """All text of a response: a string or a list of chat messages."""
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence):
        return " ".join(str(m.get("content", "")) if isinstance(m, Mapping) else str(m) for m in value)
    return str(value)


@dataclass(frozen=True)
class Counterbalance:
    """What :func:`counterbalance_records` did."""

    categories: tuple[str, str]
    signal_before: int  # signed total of the pairs' signals (> 0: A preferred over B)
    signal_after: int
    pairs_before: int
    pairs_after: int
    added: int  # pairs appended (swapped copies or duplicates)
    mode: str = "swap"

    def to_dict(self) -> dict[str, Any]:
        return {"categories": list(self.categories), "signal_before": self.signal_before,
                "signal_after": self.signal_after, "pairs_before": self.pairs_before,
                "pairs_after": self.pairs_after, "added": self.added, "mode": self.mode}


def pair_signal(record: Mapping[str, Any], words_a: set[str], words_b: set[str]) -> int:
    """``(#A in chosen - #A in rejected) - (#B in chosen - #B in rejected)``."""
    def count(value: Any, words: set[str]) -> int:
        return sum(w.lower() in words for w in _WORD.findall(_text(value)))

    chosen, rejected = record.get("chosen", ""), record.get("rejected", "")
    return (count(chosen, words_a) - count(rejected, words_a)) - (count(chosen, words_b)
                                                                  - count(rejected, words_b))


def counterbalance_records(
    records: Sequence[Mapping[str, Any]],
    lexicon: Any = "big-two-nouns",
    categories: tuple[str, str] = ("Agency", "Communion"),
    *,
    mode: str = "swap",
    seed: int = 1,
) -> tuple[list[dict[str, Any]], Counterbalance]:
    """Records balanced so the signed A-over-B total is ~0: swapped copies or duplicates (see module)."""
    from rmvalues.lexicons import load_lexicon

    if mode not in ("swap", "duplicate"):
        raise InputError(f"counterbalance mode {mode!r}: use swap or duplicate.")
    lex = load_lexicon(lexicon) if isinstance(lexicon, (str, Path)) else lexicon
    words = [{t.lower() for t in lex.terms(c)} for c in categories]
    records = [dict(r) for r in records]
    signals = np.array([pair_signal(r, *words) for r in records])
    total = int(signals.sum())
    out = list(records)
    added = 0
    if mode == "swap":
        mapping = _swap_mapping(words, seed)
        for r, sig in zip(records, signals, strict=True):
            if sig:
                out.append({**r, "chosen": _swap(r.get("chosen", ""), mapping),
                            "rejected": _swap(r.get("rejected", ""), mapping)})
                added += 1
    elif total:
        minority = np.flatnonzero(np.sign(signals) == -np.sign(total))
        if minority.size == 0:
            raise InputError(f"every preference pair that involves {categories[0]} or {categories[1]} "
                             "words favours the same side; duplication cannot balance it. Add pairs "
                             "of the other direction.")
        rng = np.random.default_rng(seed)
        remaining = total
        # draw minority pairs (cycling through a seeded order) while that brings the total closer to 0
        order = rng.permutation(minority)
        i = 0
        while True:
            s = int(signals[order[i % len(order)]])
            if abs(remaining + s) >= abs(remaining):
                break
            out.append(dict(records[order[i % len(order)]]))
            remaining += s
            added += 1
            i += 1
    after = int(sum(pair_signal(r, *words) for r in out))
    return out, Counterbalance(tuple(categories), total, after, len(records), len(out), added, mode)


def _swap_mapping(words: Sequence[set[str]], seed: int) -> dict[str, str]:
    """A seeded pairing of A words with B words, both ways (the longer list's words cycle)."""
    rng = np.random.default_rng(seed)
    a, b = (list(rng.permutation(sorted(w))) for w in words)
    mapping = {w: b[i % len(b)] for i, w in enumerate(a)}
    mapping.update({w: a[i % len(a)] for i, w in enumerate(b)})
    return mapping


def _swap(value: Any, mapping: Mapping[str, str]) -> Any:
    """``value`` (text or chat messages) with every mapped word replaced, keeping a capital."""
    def one(match: re.Match) -> str:
        word = match.group(0)
        new = mapping.get(word.lower())
        if new is None:
            return word
        return new[:1].upper() + new[1:] if word[:1].isupper() else new

    if isinstance(value, str):
        return _WORD.sub(one, value)
    if isinstance(value, Sequence):
        return [{**m, "content": _swap(m.get("content", ""), mapping)} if isinstance(m, Mapping)
                else _swap(m, mapping) for m in value]
    return value


def seed_dir(out: str | Path, seed: int) -> Path:
    return Path(out) / f"seed-{seed}"


def train_seeds(
    base: Any,
    data: Any,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    seeds: Sequence[int] = (1, 2, 3),
    **train_kwargs: Any,
) -> list[TrainResult]:
    """Train the same recipe once per seed into ``OUT/seed-<N>`` (head init, data order, subsample)."""
    import json

    from rmvalues.io import atomic_write_text
    from rmvalues.training.config import TrainConfig
    from rmvalues.training.trainer import train_reward_model

    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise InputError(f"--seeds must list distinct integers; got {seeds}.")
    config = config or TrainConfig()
    results = [train_reward_model(base, data, seed_dir(out, s), config.replace(seed=s), **train_kwargs)
               for s in seeds]
    atomic_write_text(Path(out) / "seeds.json", json.dumps(
        {"seeds": seeds, "runs": {str(s): str(seed_dir(out, s)) for s in seeds}}, indent=2) + "\n")
    return results
