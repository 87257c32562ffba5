"""Lexicon ↔ vocabulary matching: which tokens carry which lexicon categories, and coverage audits.

Everything here is a pure function of a *decoded vocabulary* (``decoded_vocab[i]`` is the text of
token id ``i``, as ``rmvalues.models.tokenizers.decoded_vocabulary`` returns it) plus, for
multi-token counts, an optional ``encode(text) -> ids`` without special tokens. No tokenizer object
is needed, so tests and analyses can run on any vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rmvalues.errors import InputError, LexiconError
from rmvalues.lexicons.model import Lexicon
from rmvalues.lexicons.normalize import Normalizer, get_normalizer, group_variants

if TYPE_CHECKING:
    import pandas as pd

Encode = Callable[[str], Sequence[int]]

#: Per-term coverage columns, in order.
COVERAGE_COLUMNS: tuple[str, ...] = (
    "term", "categories", "normalized", "bare_id", "space_id", "single_bare", "single_space",
    "single_token", "variants", "variant_ids", "n_variants", "n_tokens", "n_tokens_space",
)


@dataclass(frozen=True)
class Coverage:
    """How a vocabulary covers a lexicon: one row per term (``terms``), counts (``summary``)."""

    terms: pd.DataFrame
    summary: dict[str, int]


def _first_ids(decoded_vocab: Sequence[str]) -> dict[str, int]:
    """Decoded string → lowest token id with that exact text (several ids may decode alike)."""
    out: dict[str, int] = {}
    for token_id, text in enumerate(decoded_vocab):
        out.setdefault(text, token_id)
    return out


def _require_exact_terms(lexicon: Lexicon) -> None:
    if lexicon.has_wildcards():
        raise LexiconError(
            f"lexicon {lexicon.name!r} has wildcard terms; expand them against the vocabulary "
            "first: lexicon.expand(group_variants(decoded_vocab, normalizer))."
        )


def match_tokens(
    lexicon: Lexicon, decoded_vocab: Sequence[str], normalizer: str | Normalizer = "paper"
) -> pd.DataFrame:
    """Every token whose normalised text equals a normalised lexicon term, with its categories.

    Long table ``token_id, token, normalized, term, category, weight``: one row per token × term ×
    category, ordered by token id. This is how the paper assigns scored tokens to lexicon categories
    (" Love", "love" and "LOVE" all count for "love" under the paper normaliser).
    """
    import pandas as pd

    _require_exact_terms(lexicon)
    norm = get_normalizer(normalizer)
    by_form: dict[str, list[str]] = {}
    for term in lexicon.entries:
        by_form.setdefault(norm(term), []).append(term)
    rows = []
    for token_id, text in enumerate(decoded_vocab):
        form = norm(text)
        for term in by_form.get(form, ()) if form else ():
            for cat, weight in lexicon.entries[term].items():
                rows.append((token_id, text, form, term, cat, weight))
    frame = pd.DataFrame(rows, columns=["token_id", "token", "normalized", "term", "category",
                                        "weight"])
    frame["token_id"] = frame["token_id"].astype("int64")
    frame["category"] = pd.Categorical(frame["category"], categories=list(lexicon.categories))
    return frame


def lexicon_coverage(
    lexicon: Lexicon,
    decoded_vocab: Sequence[str],
    *,
    encode: Encode | None = None,
    normalizer: str | Normalizer = "paper",
) -> Coverage:
    """Per-term coverage of ``lexicon`` by one vocabulary.

    Columns: ``bare_id`` / ``space_id`` — the token id whose text is exactly ``term`` /
    ``" " + term`` (``<NA>`` if none); ``single_bare``, ``single_space``, ``single_token`` (either);
    ``variants`` / ``variant_ids`` — every single token that normalises to the term's normalised
    form (case and spacing variants such as ``" Love"``, ``"LOVE"``); ``n_tokens`` /
    ``n_tokens_space`` — how many tokens ``encode`` needs for ``term`` / ``" " + term``
    (``<NA>`` without ``encode``).
    """
    import pandas as pd

    _require_exact_terms(lexicon)
    if not decoded_vocab:
        raise InputError("the decoded vocabulary is empty; pass one string per token id.")
    norm = get_normalizer(normalizer)
    ids = _first_ids(decoded_vocab)
    groups = group_variants(decoded_vocab, norm)
    rows = []
    for term, cats in lexicon.entries.items():
        form = norm(term)
        variant_ids = groups.get(form, []) if form else []
        bare, space = ids.get(term), ids.get(" " + term)
        rows.append((
            term, "|".join(cats), form, bare, space, bare is not None, space is not None,
            bare is not None or space is not None, [decoded_vocab[i] for i in variant_ids],
            list(variant_ids), len(variant_ids),
            len(encode(term)) if encode else None,
            len(encode(" " + term)) if encode else None,
        ))
    frame = pd.DataFrame(rows, columns=list(COVERAGE_COLUMNS))
    for col in ("bare_id", "space_id", "n_tokens", "n_tokens_space"):
        frame[col] = frame[col].astype("Int64")
    return Coverage(terms=frame, summary=summarize_coverage(frame))


def summarize_coverage(terms: pd.DataFrame) -> dict[str, int]:
    """Counts over a per-term coverage table.

    ``multi_token``: terms that are no single token, bare or spaced (their token count is in
    ``n_tokens``); ``any_variant``: terms some single token matches after normalisation.
    """
    return {
        "terms": len(terms),
        "single_bare": int(terms["single_bare"].sum()),
        "single_space": int(terms["single_space"].sum()),
        "single_token": int(terms["single_token"].sum()),
        "any_variant": int((terms["n_variants"] > 0).sum()),
        "multi_token": int((~terms["single_token"]).sum()),
    }


def joint_coverage(coverages: Mapping[str, Coverage]) -> Coverage:
    """Coverage of one lexicon across several vocabularies (e.g. Llama-3 and Gemma-2).

    One row per term with ``single_<name>`` (single token, bare or spaced, in that vocabulary) and
    ``single_all`` (in every one) — the terms that can be compared token-for-token across model
    families. Summary: ``terms``, ``single_<name>`` each, ``single_all``.
    """
    import pandas as pd

    if len(coverages) < 2:
        raise InputError("joint coverage needs at least two vocabularies.")
    names = list(coverages)
    first = coverages[names[0]].terms
    frame = pd.DataFrame({"term": first["term"], "categories": first["categories"]})
    for name in names:
        terms = coverages[name].terms
        if list(terms["term"]) != list(first["term"]):
            raise InputError(
                f"coverage {name!r} is of different terms than {names[0]!r}; compute every "
                "coverage from the same lexicon."
            )
        frame[f"single_{name}"] = terms["single_token"].to_numpy()
    frame["single_all"] = frame[[f"single_{n}" for n in names]].all(axis=1)
    summary = {"terms": len(frame)}
    summary.update({f"single_{n}": int(frame[f"single_{n}"].sum()) for n in names})
    summary["single_all"] = int(frame["single_all"].sum())
    return Coverage(terms=frame, summary=summary)
