"""The lexicon data model: terms mapped to one or more categories, with optional weights.

A :class:`Lexicon` is immutable and reader-agnostic: every file format (long/wide CSV, LIWC ``.dic``
and ``.dicx``) is read into it, and every downstream stage (coverage, token matching, analysis)
reads only it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from rmvalues.errors import LexiconError

if TYPE_CHECKING:
    import pandas as pd

WILDCARD = "*"


@dataclass(frozen=True)
class LexiconInfo:
    """Where a lexicon comes from: what to cite, and the exact file (``sha256``) it was read."""

    name: str
    citation: str = ""
    source: str = ""
    sha256: str | None = None
    description: str = ""


def _clean_label(s: object) -> bool:
    """A term or category name every file format can hold and read back unchanged."""
    return (
        isinstance(s, str)
        and bool(s)
        and s == s.strip()
        and not any(ch in s for ch in "\t\r\n")
    )


def _expandable(word: str) -> bool:
    """A vocabulary string that may become a term when a wildcard matches it."""
    return _clean_label(word) and not is_wildcard(word)


def is_wildcard(term: str) -> bool:
    """LIWC wildcard: a trailing ``*`` matches any continuation (``achiev*`` ⊃ ``achievement``)."""
    return term.endswith(WILDCARD)


@dataclass(frozen=True, eq=False)
class Lexicon:
    """Terms → ``{category: weight}``; an ``X`` membership cell has weight 1.0.

    ``categories`` keeps the file's column / id order, which reports and tables follow.
    Construction validates the invariants every reader relies on, so a ``Lexicon`` in hand is sound:
    at least one category, unique category names, no empty term, every term in at least one known
    category, finite weights.
    """

    info: LexiconInfo
    categories: tuple[str, ...]
    entries: Mapping[str, Mapping[str, float]] = field(repr=False)

    def __post_init__(self) -> None:
        name = self.info.name
        if not self.categories:
            raise LexiconError(f"lexicon {name!r} has no categories; a lexicon needs at least one.")
        for cat in self.categories:
            if not _clean_label(cat):
                raise LexiconError(
                    f"lexicon {name!r} has an invalid category name {cat!r}: names must be "
                    "non-empty, without surrounding whitespace, tabs or line breaks."
                )
        if len(set(self.categories)) != len(self.categories):
            dupes = sorted({c for c in self.categories if self.categories.count(c) > 1})
            raise LexiconError(f"lexicon {name!r} repeats categories {dupes}; rename them.")
        known = set(self.categories)
        frozen: dict[str, Mapping[str, float]] = {}
        for term, cats in self.entries.items():
            if not _clean_label(term) or term == WILDCARD:
                raise LexiconError(
                    f"lexicon {name!r} has an invalid term {term!r}: terms must be non-empty, "
                    "without surrounding whitespace, tabs or line breaks, and not a bare '*'."
                )
            if not cats:
                raise LexiconError(f"lexicon {name!r}: term {term!r} has no category.")
            unknown = sorted(set(cats) - known)
            if unknown:
                raise LexiconError(
                    f"lexicon {name!r}: term {term!r} is in unknown categories {unknown}; "
                    f"known: {list(self.categories)}."
                )
            for cat, weight in cats.items():
                if not isinstance(weight, (int, float)) or not math.isfinite(weight):
                    raise LexiconError(
                        f"lexicon {name!r}: term {term!r} has a non-finite weight {weight!r} "
                        f"in {cat!r}."
                    )
            # Category order inside a term follows the lexicon's, so equal lexicons compare equal.
            frozen[term] = MappingProxyType(
                {c: float(cats[c]) for c in self.categories if c in cats}
            )
        object.__setattr__(self, "categories", tuple(self.categories))
        object.__setattr__(self, "entries", MappingProxyType(frozen))

    # Equality is by value (what round trips need); the entries mapping makes a lexicon unhashable.
    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Lexicon):
            return NotImplemented
        return (
            self.info == other.info
            and self.categories == other.categories
            and {t: dict(c) for t, c in self.entries.items()}
            == {t: dict(c) for t, c in other.entries.items()}
        )

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, term: object) -> bool:
        return term in self.entries

    @property
    def name(self) -> str:
        return self.info.name

    def terms(self, category: str | None = None) -> list[str]:
        """Terms in file order, all or only those of ``category``."""
        if category is None:
            return list(self.entries)
        self._check_category(category)
        return [t for t, cats in self.entries.items() if category in cats]

    def categories_of(self, term: str) -> tuple[str, ...]:
        """Categories of one term (exact string; wildcards are not applied — see :meth:`expand`)."""
        cats = self.entries.get(term)
        if cats is None:
            raise LexiconError(f"{term!r} is not a term of lexicon {self.name!r}.")
        return tuple(cats)

    def counts(self) -> dict[str, int]:
        """Number of terms per category, in category order (a term in two counts twice)."""
        out = dict.fromkeys(self.categories, 0)
        for cats in self.entries.values():
            for cat in cats:
                out[cat] += 1
        return out

    def is_weighted(self) -> bool:
        """True if any weight differs from 1.0 (numeric ``.dicx`` cells such as eMFD's)."""
        return any(w != 1.0 for cats in self.entries.values() for w in cats.values())

    def to_frame(self) -> pd.DataFrame:
        """Long table, one row per term × category: ``term, category, weight``."""
        import pandas as pd

        rows = [(t, c, w) for t, cats in self.entries.items() for c, w in cats.items()]
        frame = pd.DataFrame(rows, columns=["term", "category", "weight"])
        frame["category"] = pd.Categorical(frame["category"], categories=list(self.categories))
        return frame

    def has_wildcards(self) -> bool:
        return any(is_wildcard(t) for t in self.entries)

    def expand(self, vocabulary: Iterable[str]) -> Lexicon:
        """Replace wildcard terms by the vocabulary strings they match (LIWC semantics).

        ``achiev*`` matches every vocabulary string that starts with ``achiev`` (including
        ``achiev`` itself). Exact terms are kept whether or not they occur in the vocabulary. As in
        LIWC, the most specific entry wins: a string that is itself an exact term keeps that term's
        categories, and a string matched by several wildcards takes the longest one's. The result
        has no wildcards; its terms are the exact terms followed by the matches in vocabulary order.
        Strings that cannot be terms (empty, surrounding whitespace, a trailing ``*``) are skipped,
        so pass normalised forms (e.g. the keys of ``group_variants``), not raw decoded tokens.
        """
        wildcards = sorted(
            ((t[:-1], cats) for t, cats in self.entries.items() if is_wildcard(t)),
            key=lambda pc: len(pc[0]),
            reverse=True,
        )
        exact = {t: cats for t, cats in self.entries.items() if not is_wildcard(t)}
        if not wildcards:
            return self
        # Index wildcard prefixes by length so each vocabulary string costs one lookup per length.
        by_length: dict[int, dict[str, Mapping[str, float]]] = {}
        for prefix, cats in wildcards:
            by_length.setdefault(len(prefix), {})[prefix] = cats
        lengths = sorted(by_length, reverse=True)
        expanded: dict[str, Mapping[str, float]] = dict(exact)
        for word in vocabulary:
            if word in expanded or not _expandable(word):
                continue
            for n in lengths:
                if n <= len(word) and (cats := by_length[n].get(word[:n])) is not None:
                    expanded[word] = cats
                    break
        return replace(self, entries=expanded)

    def multi_category_terms(self) -> list[str]:
        """Terms that belong to more than one category (e.g. 57 words of the MFD 2.0 ``.dic``)."""
        return [t for t, cats in self.entries.items() if len(cats) > 1]

    def _check_category(self, category: str) -> None:
        if category not in self.categories:
            raise LexiconError(
                f"{category!r} is not a category of lexicon {self.name!r}; "
                f"categories: {list(self.categories)}."
            )


def reference_expand(lexicon: Lexicon, vocabulary: Iterable[str]) -> Lexicon:
    """Obviously-correct slow path of :meth:`Lexicon.expand`: try every wildcard on every string."""
    exact = {t: c for t, c in lexicon.entries.items() if not is_wildcard(t)}
    if len(exact) == len(lexicon.entries):
        return lexicon
    expanded: dict[str, Mapping[str, float]] = dict(exact)
    for word in vocabulary:
        if word in expanded or not _expandable(word):
            continue
        matches = [t for t in lexicon.entries if is_wildcard(t) and word.startswith(t[:-1])]
        if matches:
            expanded[word] = lexicon.entries[max(matches, key=len)]
    return replace(lexicon, entries=expanded)
