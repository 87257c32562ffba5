"""Resumable shards: a killed run, resumed, equals an uninterrupted one; changed settings recompute."""

from __future__ import annotations

import pandas as pd
import pytest

from _engine_models import tiny_rm
from rmvalues.api import score
from rmvalues.store.manifest import manifest_path, read_manifest, read_results
from rmvalues.store.schema import SCORE_COLUMNS

PROMPTS = {f"p{i}": f"Name the best quality number {i}, in one word." for i in range(4)}
CANDIDATES = "vocab:0-199"


class Killed(Exception):
    pass


def run(out, **kwargs):
    calls: list[str] = []
    result = score(tiny_rm("llama"), PROMPTS, CANDIDATES, out, on_shard=calls.append, **kwargs)
    return result, calls


def test_killed_run_resumes_to_the_same_table(tmp_path):
    full, calls = run(tmp_path / "full")
    assert calls == list(PROMPTS)

    def die_after_two(prompt_id, seen=[]):  # noqa: B006 - counts across calls on purpose
        seen.append(prompt_id)
        if len(seen) == 2:
            raise Killed

    with pytest.raises(Killed):
        score(tiny_rm("llama"), PROMPTS, CANDIDATES, tmp_path / "killed", on_shard=die_after_two)
    assert not (tmp_path / "killed" / "llama-0.parquet").exists()  # no merged table yet
    resumed, calls = run(tmp_path / "killed")
    assert calls == ["p2", "p3"]  # only unfinished shards are recomputed
    assert "2 shard(s) resumed" in resumed.summary
    pd.testing.assert_frame_equal(read_results(resumed.path), read_results(full.path))
    assert list(read_results(full.path).columns) == list(SCORE_COLUMNS)
    assert len(read_results(full.path)) == 4 * 200


def test_changed_setting_does_not_reuse_shards(tmp_path):
    run(tmp_path)
    _, calls = run(tmp_path)
    assert calls == []
    _, calls = run(tmp_path, date_string="01 Jan 2025")  # changes the Llama-3.1 prefix
    assert calls == list(PROMPTS)
    changed = score(tiny_rm("llama"), PROMPTS, "vocab:0-198", tmp_path)
    assert "resumed" not in changed.summary


def test_manifest_records_provenance(tmp_path):
    result, _ = run(tmp_path, verify=3)
    manifest = read_manifest(manifest_path(result.path))
    fields = manifest.fields
    assert manifest.kind == "rm-scores"
    assert manifest.libraries["transformers"] and manifest.package_version
    assert fields["dtype"] == "float32" and fields["attn_implementation"] == "sdpa"
    assert fields["date_string"] == "26 Jul 2024"
    assert len(fields["template_hash"]) == 64
    assert fields["prefix_ids"]["p0"][0] == 128000
    assert fields["candidates"]["count"] == 200 and fields["candidates"]["hash"]
    assert fields["weights_fingerprint"] and fields["engine"] == "prefix"
    assert fields["verify"]["n"] == 3 and fields["verify"]["max_abs_diff"] <= 1e-4
    shard_manifests = sorted((tmp_path / "shards" / "llama-0").glob("*.manifest.json"))
    assert len(shard_manifests) == 4
    assert read_manifest(shard_manifests[0]).fields["shard_key"] in shard_manifests[0].name
