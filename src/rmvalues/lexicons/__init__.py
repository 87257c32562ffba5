"""Value lexicons: the data model, readers and writers, the built-in registry, token matching.

``load_lexicon("big-two-nouns")`` fetches a built-in lexicon (pinned, sha256-checked);
``load_lexicon("my.dic")`` reads a file in any supported format.
"""

from rmvalues.lexicons.coverage import (
    Coverage,
    joint_coverage,
    lexicon_coverage,
    match_tokens,
    summarize_coverage,
)
from rmvalues.lexicons.model import Lexicon, LexiconInfo, is_wildcard
from rmvalues.lexicons.normalize import (
    NORMALIZERS,
    exact_normalize,
    get_normalizer,
    group_variants,
    paper_normalize,
)
from rmvalues.lexicons.readers import (
    FORMATS,
    detect_format,
    format_lexicon,
    parse_lexicon,
    read_lexicon,
    write_lexicon,
)
from rmvalues.lexicons.registry import (
    LexiconSpec,
    fetch_lexicon,
    fetch_lexicons,
    get_spec,
    lexicon_specs,
    load_lexicon,
)

__all__ = [
    "FORMATS",
    "NORMALIZERS",
    "Coverage",
    "Lexicon",
    "LexiconInfo",
    "LexiconSpec",
    "detect_format",
    "exact_normalize",
    "fetch_lexicon",
    "fetch_lexicons",
    "format_lexicon",
    "get_normalizer",
    "get_spec",
    "group_variants",
    "is_wildcard",
    "joint_coverage",
    "lexicon_coverage",
    "lexicon_specs",
    "load_lexicon",
    "match_tokens",
    "paper_normalize",
    "parse_lexicon",
    "read_lexicon",
    "summarize_coverage",
    "write_lexicon",
]
