"""Token-string normalisers, and grouping of vocabulary variants under one normalised form.

The paper matches decoded tokens to lexicon terms after dropping non-ASCII characters, stripping
whitespace and lower-casing, so " Love", "love" and "LOVE" all count as the term "love". The exact
normaliser keeps strings as they are, for case-sensitive matching.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rmvalues.errors import InputError

Normalizer = Callable[[str], str]


def paper_normalize(s: str) -> str:
    """The paper's normaliser: drop non-ASCII characters, strip whitespace, lower-case."""
    return s.encode("ascii", "ignore").decode("ascii").strip().lower()


def exact_normalize(s: str) -> str:
    """Identity: case-sensitive, whitespace-sensitive exact matching."""
    return s


NORMALIZERS: dict[str, Normalizer] = {"paper": paper_normalize, "exact": exact_normalize}


def get_normalizer(normalizer: str | Normalizer) -> Normalizer:
    """A normaliser by name (``paper``, ``exact``) or passed through if already a callable."""
    if callable(normalizer):
        return normalizer
    try:
        return NORMALIZERS[normalizer]
    except KeyError:
        raise InputError(
            f"unknown normaliser {normalizer!r}; choose one of {', '.join(NORMALIZERS)}."
        ) from None


def group_variants(
    decoded_vocab: Sequence[str], normalizer: str | Normalizer = "paper"
) -> dict[str, list[int]]:
    """Normalised form → token ids whose decoded string normalises to it (ids ascending).

    ``decoded_vocab[i]`` is the decoded string of token id ``i``. Forms that normalise to the empty
    string (whitespace, pure non-ASCII pieces) are left out: they can match no lexicon term.
    """
    norm = get_normalizer(normalizer)
    groups: dict[str, list[int]] = {}
    for token_id, text in enumerate(decoded_vocab):
        form = norm(text)
        if form:
            groups.setdefault(form, []).append(token_id)
    return groups
