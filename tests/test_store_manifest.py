"""Manifests and the atomic results writer."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from rmvalues.errors import StoreError
from rmvalues.store.manifest import (
    build_manifest,
    manifest_path,
    read_manifest,
    read_results,
    stable_hash,
    write_results,
)
from rmvalues.store.schema import SCORE_COLUMNS


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": ["m", "m"],
            "prompt_id": ["p", "p"],
            "candidate_kind": ["token", "text"],
            "token_id": [5, None],
            "candidate": [" a", "common good"],
            "normalized": ["a", "common good"],
            "score": [1.5, -2.0],
        }
    )


def test_manifest_records_versions_and_fields(tmp_path):
    manifest = build_manifest("rm-scores", model="x", prefix_ids=(1, 2), out=tmp_path)
    path = write_results(_frame(), tmp_path / "shard.parquet", manifest)
    assert manifest_path(path) == tmp_path / "shard.manifest.json"
    back = read_manifest(manifest_path(path))
    assert back.kind == "rm-scores"
    from rmvalues.io import sha256_file

    # write_results adds what a reader checks the table against: its rows and content checksum
    assert back.fields == {"model": "x", "prefix_ids": [1, 2], "out": str(tmp_path), "rows": 2,
                           "content_sha256": sha256_file(path)}
    assert back.libraries["torch"] and back.libraries["transformers"]
    table = read_results(path)
    assert list(table.columns) == list(SCORE_COLUMNS)
    assert str(table["score"].dtype) == "float32"
    assert table["token_id"].isna().tolist() == [False, True]
    assert json.loads(manifest_path(path).read_text())["package"] == "rmvalues"


def test_bad_table_leaves_nothing(tmp_path):
    with pytest.raises(StoreError, match="lacks column"):
        write_results(_frame().drop(columns="score"), tmp_path / "s.parquet",
                      build_manifest("rm-scores"))
    assert list(tmp_path.iterdir()) == []


def test_stable_hash_is_canonical():
    assert stable_hash({"a": (1, 2), "b": 1}) == stable_hash({"b": 1, "a": [1, 2]})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})
