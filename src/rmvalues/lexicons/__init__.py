"""Value lexicons: the data model, readers and writers, the built-in registry, token matching.

``load_lexicon("big-two-nouns")`` fetches a built-in lexicon (pinned, sha256-checked);
``load_lexicon("my.dic")`` reads a file in any supported format.
"""

from rmvalues.lexicons.model import Lexicon, LexiconInfo
from rmvalues.lexicons.normalize import (
    NORMALIZERS,
    exact_normalize,
    get_normalizer,
    group_variants,
    paper_normalize,
)

__all__ = [
    "NORMALIZERS",
    "Lexicon",
    "LexiconInfo",
    "exact_normalize",
    "get_normalizer",
    "group_variants",
    "paper_normalize",
]
