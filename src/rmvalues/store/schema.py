"""The long-format results table every engine writes and every analysis reads.

One row per (model, prompt, candidate). Importers of the paper's released files produce the same
columns, so analyses cannot tell a re-scored run from an imported one.
"""

from __future__ import annotations

import pyarrow as pa

#: A model column ``<model>@<attribute>`` holds one attribute of a multi-objective RM
#: (:mod:`rmvalues.models.heads.attributes`); analyses group such runs by attribute.
ATTRIBUTE_SEP = "@"

#: Column order of a results table.
SCORE_COLUMNS: tuple[str, ...] = (
    "model",  # model key (registry key, hub id or directory name)
    "prompt_id",  # prompt id within its prompt set, e.g. "greatest_ever_one"
    "candidate_kind",  # "token" (a vocabulary id) or "text" (a lexicon term / string)
    "token_id",  # vocabulary id for token candidates, null for text
    "candidate",  # the decoded token or the text, verbatim (leading spaces kept)
    "normalized",  # the paper normaliser of `candidate` (ASCII only, stripped, lower-case)
    "score",  # the RM score, or the LM log-probability
)

SCORE_SCHEMA = pa.schema(
    [
        pa.field("model", pa.string(), nullable=False),
        pa.field("prompt_id", pa.string(), nullable=False),
        pa.field("candidate_kind", pa.string(), nullable=False),
        pa.field("token_id", pa.int64(), nullable=True),
        pa.field("candidate", pa.string(), nullable=False),
        pa.field("normalized", pa.string(), nullable=False),
        pa.field("score", pa.float32(), nullable=False),
    ]
)
