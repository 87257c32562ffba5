"""The real test assets: all fetched and pinned, and a missing one fails with the command to fetch it."""

from __future__ import annotations

import pytest

from rmvalues.assets import asset_path, get_asset, is_fetched, registry
from rmvalues.errors import AssetError
from rmvalues.io import sha256_file

EXPECTED = {
    "llama3-tokenizer", "gemma2-tokenizer", "qwen-tokenizer", "chat-templates",
    "smollm2-135m-instruct", "gemma3-270m",
}


def test_registry_lists_the_issue_assets() -> None:
    assert EXPECTED <= set(registry())
    for asset in registry().values():
        for f in asset.files:
            assert "==" in f.source.requirement and len(f.sha256) == 64
            assert f.source.archive_sha256 and len(f.source.archive_sha256) == 64


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_asset_is_fetched_and_matches_its_pins(name: str) -> None:
    """Never skipped: a missing asset fails here with `rmvalues assets fetch` in the message."""
    folder = asset_path(name)
    for dest, sha256 in get_asset(name).outputs.items():
        assert sha256_file(folder / dest) == sha256, f"{name}/{dest}"


def test_gemma2_tokenizer_pin_is_the_issues() -> None:
    assert get_asset("gemma2-tokenizer").outputs["tokenizer.model"] == (
        "61a7b147390c64585d6c3543dd6fc636906c9af3865a5548f27f31aee1d4c8e2"
    )


def test_missing_asset_names_the_fix(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RMVALUES_CACHE", str(tmp_path))
    assert not is_fetched("llama3-tokenizer")
    with pytest.raises(AssetError, match=r"not fetched; run `rmvalues assets fetch`"):
        asset_path("llama3-tokenizer", "tokenizer.json")


def test_unknown_asset() -> None:
    with pytest.raises(AssetError, match="unknown asset 'llama2'.*known assets: chat-templates"):
        asset_path("llama2")
