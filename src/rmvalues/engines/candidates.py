"""Candidate sets: what goes in the assistant turn.

A candidate set is either vocabulary token ids (spliced in as ids, never decoded and re-tokenised;
added and special tokens included and flagged) or text responses (lexicon terms, a list of strings,
a file with one per line) that are tokenised through the chat template. Its content hash keys the
stored shards, so a changed candidate set never reuses old results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rmvalues.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

CandidateKind = Literal["token", "text"]
CANDIDATES_HELP = ("vocab | vocab:START-END | vocab:in=token-intersection|LIST.csv | lexicon:NAME | "
                   "file:PATH | elo")


@dataclass(frozen=True)
class CandidateSet:
    """Candidates in scoring order: ids for tokens, verbatim strings for both kinds."""

    kind: CandidateKind
    source: str
    texts: tuple[str, ...]
    token_ids: tuple[int, ...] | None = None
    special: tuple[bool, ...] | None = None

    def __post_init__(self) -> None:
        if not self.texts:
            raise InputError(
                f"candidate set {self.source!r} is empty; give at least one candidate ({CANDIDATES_HELP})."
            )
        if self.kind == "token" and (self.token_ids is None or len(self.token_ids) != len(self.texts)):
            raise InputError("token candidates need one token id per decoded string")

    def __len__(self) -> int:
        return len(self.texts)

    def content_hash(self) -> str:
        """Hash of the candidates themselves (kind, ids, strings), not of where they came from."""
        from rmvalues.store.manifest import stable_hash

        return stable_hash({"kind": self.kind, "ids": self.token_ids, "texts": self.texts})

    def subset(self, indices: Sequence[int]) -> CandidateSet:
        pick = list(indices)
        return CandidateSet(
            kind=self.kind,
            source=f"{self.source}[subset]",
            texts=tuple(self.texts[i] for i in pick),
            token_ids=None if self.token_ids is None else tuple(self.token_ids[i] for i in pick),
            special=None if self.special is None else tuple(self.special[i] for i in pick),
        )


def special_token_ids(tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """Ids of special and added tokens (control tokens, chat markers, reserved slots)."""
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    return set(tokenizer.all_special_ids) | set(added)


def vocabulary_candidates(
    tokenizer: PreTrainedTokenizerBase, token_ids: Sequence[int] | range | None = None
) -> CandidateSet:
    """Every vocabulary id (or the given ids), with its decoded string and special/added flag."""
    from rmvalues.models.tokenizers import decoded_vocabulary

    decoded = decoded_vocabulary(tokenizer)
    ids = list(range(len(decoded)) if token_ids is None else token_ids)
    bad = [i for i in ids if not 0 <= int(i) < len(decoded)]
    if bad:
        raise InputError(f"token ids {bad[:5]} are outside the vocabulary (0..{len(decoded) - 1})")
    specials = special_token_ids(tokenizer)
    return CandidateSet(
        kind="token",
        source="vocab" if token_ids is None else f"vocab[{len(ids)} ids]",
        texts=tuple(decoded[i] for i in ids),
        token_ids=tuple(int(i) for i in ids),
        special=tuple(int(i) in specials for i in ids),
    )


def text_candidates(texts: Sequence[str], *, source: str = "list") -> CandidateSet:
    """Text responses in the given order; duplicates are dropped (first kept), blanks refused."""
    seen: dict[str, None] = {}
    for text in texts:
        if not isinstance(text, str):
            raise InputError(f"text candidate {text!r} from {source} is not a string")
        if not text.strip():
            raise InputError(f"text candidates from {source} include a blank string; remove it")
        seen.setdefault(text, None)
    return CandidateSet(kind="text", source=source, texts=tuple(seen))


def lexicon_candidates(name: str | Path) -> CandidateSet:
    """The terms of a lexicon (built-in name or file), multi-word terms included."""
    from rmvalues.lexicons import is_wildcard, load_lexicon

    lexicon = load_lexicon(name)
    terms = [t for t in lexicon.terms() if not is_wildcard(t)]
    return text_candidates(terms, source=f"lexicon:{name}")


def file_candidates(path: str | Path) -> CandidateSet:
    """One text candidate per non-empty line of a UTF-8 file (line breaks removed, spaces kept)."""
    path = Path(path).expanduser()
    try:
        lines = path.read_text("utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"candidate file {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"candidate file {path} is not UTF-8 text ({exc})") from None
    return text_candidates([line for line in lines if line.strip()], source=f"file:{path}")


def elo_candidates(data_dir: str | Path | None = None) -> CandidateSet:
    """The 7,530 EloEverything entities of the FAccT 2025 release, in human-rank order, as text
    candidates: scoring them places an RM beside the paper's ten and the human Elo
    (``rmvalues compare``). Files come pinned from the release or ``$RMVALUES_FACCT_DATA``."""
    from rmvalues.analysis.human_preference import elo_entities

    return text_candidates(elo_entities(data_dir), source="elo")


def _id_range(spec: str) -> range:
    try:
        start, end = (int(x) for x in spec.split("-", 1))
    except ValueError:
        raise InputError(f"vocab range {spec!r} must be START-END, e.g. vocab:0-4095") from None
    return range(start, end + 1)


def resolve_candidates(
    spec: str | CandidateSet | Sequence[str] | Sequence[int] | range,
    tokenizer: PreTrainedTokenizerBase,
) -> CandidateSet:
    """A candidate set from a CLI-style spec, a ready set, a list of strings or a list of ids."""
    if isinstance(spec, CandidateSet):
        return spec
    if isinstance(spec, str):
        kind, _, arg = spec.partition(":")
        if kind == "vocab" and arg.startswith("in="):  # a vocabulary filtered by decoded strings
            from rmvalues.engines.candidate_filters import filter_vocabulary, load_string_list

            return filter_vocabulary(tokenizer, load_string_list(arg[3:]), source=arg[3:])
        if kind == "vocab":
            return vocabulary_candidates(tokenizer, _id_range(arg) if arg else None)
        if kind == "lexicon" and arg:
            return lexicon_candidates(arg)
        if kind == "file" and arg:
            return file_candidates(arg)
        if kind == "elo" and not arg:
            return elo_candidates()
        raise InputError(f"unknown candidate set {spec!r}; use {CANDIDATES_HELP}")
    items = list(spec)
    if not items:
        raise InputError(f"the candidate list is empty; give at least one candidate ({CANDIDATES_HELP}).")
    if all(isinstance(x, int) and not isinstance(x, bool) for x in items):
        return vocabulary_candidates(tokenizer, items)
    return text_candidates(items)
