"""Vocabulary candidates filtered by a list of decoded strings (``--candidates vocab:in=LIST``).

Trained RMs of different families are compared on the same strings: the paper ranks the Big Two
words among the 85,632 decoded strings that the Gemma, Llama and Qwen vocabularies share (Fig 4a),
built in as ``token-intersection`` (pinned by sha256, ``string_lists.toml``). ``LIST`` may also be a
CSV with a ``token_decoded`` column, or a text file with one string per line.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from rmvalues.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

    from rmvalues.engines.candidates import CandidateSet


@cache
def builtin_string_lists() -> dict[str, dict[str, str]]:
    data = tomllib.loads(files("rmvalues.engines").joinpath("string_lists.toml").read_text("utf-8"))
    return data["lists"]


def string_list_path(name: str) -> Path:
    """The verified local file of a built-in list (from ``$RMVALUES_PAPER_DATA`` or its URL)."""
    from rmvalues.fetch import cache_dir, fetch_url

    spec = builtin_string_lists()[name]
    filename = spec["url"].rsplit("/", 1)[-1]
    return fetch_url(spec["url"], spec["sha256"], cache_dir("string-lists") / filename,
                     local_dir=os.environ.get("RMVALUES_PAPER_DATA") or None,
                     what=f"string list {name}")


def load_string_list(name_or_path: str | Path) -> list[str]:
    """Decoded strings of a built-in list or a file (CSV: ``token_decoded`` column; else lines).

    Strings are kept verbatim (leading spaces, ``"null"``, the empty string stays out).
    """
    import pandas as pd

    lists = builtin_string_lists()
    column = "token_decoded"
    if str(name_or_path) in lists:
        path, column = string_list_path(str(name_or_path)), lists[str(name_or_path)]["column"]
    else:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise InputError(f"string list {name_or_path!r} is neither a built-in list "
                             f"({', '.join(lists)}) nor a file.")
    if path.suffix == ".csv":
        frame = pd.read_csv(path, keep_default_na=False, na_values=[], dtype=str)
        if column not in frame.columns:
            raise InputError(f"{path} has no {column!r} column (columns: {list(frame.columns)}).")
        strings = frame[column].tolist()
    else:
        strings = path.read_text("utf-8").split("\n")
    return [s for s in dict.fromkeys(strings) if s != ""]


def filter_vocabulary(tokenizer: PreTrainedTokenizerBase, strings: Iterable[str], *,
                      source: str) -> CandidateSet:
    """Vocabulary token candidates whose decoded string is in ``strings`` (every id that decodes to
    one; special and added tokens flagged as usual); an error when none is."""
    from rmvalues.engines.candidates import vocabulary_candidates
    from rmvalues.models.tokenizers import decoded_vocabulary

    wanted = set(strings)
    ids = [i for i, s in enumerate(decoded_vocabulary(tokenizer)) if s in wanted]
    if not ids:
        raise InputError(f"the filter {source} leaves no token of this vocabulary: none of its "
                         f"{len(wanted):,} strings is a decoded token here. Check the list (decoded "
                         "strings, leading spaces kept) or use --candidates vocab.")
    found = vocabulary_candidates(tokenizer, ids)
    from dataclasses import replace

    return replace(found, source=f"vocab:in={source} ({len(ids)} ids)")
