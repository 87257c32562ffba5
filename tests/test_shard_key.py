"""Shard-key invalidation matrix: every setting that changes the numbers changes the shard key.

For each setting, two runs into the SAME output folder differ in that setting alone. The second
must resume nothing (every prompt scored again) and its table must equal a fresh run's with the
same settings; a third run with unchanged settings resumes everything (the key is stable). Tiny
random-weight Llama RMs on the real Llama-3 tokenizer and Llama-3.1 template (tests/_engine_models).
"""

from __future__ import annotations

import dataclasses
import functools
import shutil

import pandas as pd
import pytest

from _engine_models import tiny_rm_dir
from rmvalues.api import score

PROMPTS = {"p0": "Name the best quality in a friend, in one word.",
           "p1": "Name the worst quality in a leader, in one word."}
CANDIDATES = "vocab:0-39"
# Same turns, another template: no system header, so the prefix ids differ.
PLAIN_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}"
                  "<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>{% endfor %}")


@functools.cache
def load(seed: int = 0, dtype: str = "float32", attn: str | None = None, folder=None):
    from rmvalues.models.loading import load_reward_model

    return load_reward_model(folder or tiny_rm_dir("llama", seed), device="cpu", dtype=dtype,
                             attn_implementation=attn, name="tiny")


def hub_like(seed: int, revision: str):
    """One hub id at two pinned revisions (other weights): the revision is all that differs."""
    return dataclasses.replace(load(seed), source="owner/tiny-rm", revision=revision,
                               fingerprint=None)


def other_head():
    from rmvalues.models.heads import head_class

    rm = load()
    cls = head_class("grm_value_head")
    return dataclasses.replace(rm, head=cls.from_checkpoint(
        rm.backbone.config, cls.random_state_dict(rm.backbone.config, seed=1)).eval())


def weights_folder(tmp_path, seed: int):
    """The same local folder (same name, so the same shard directory) holding other weights."""
    folder = tmp_path / "model" / "tiny"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(tiny_rm_dir("llama", seed), folder)
    from rmvalues.models.loading import load_reward_model

    return load_reward_model(folder, device="cpu", dtype="float32")


# setting -> (run A kwargs, run B kwargs, whether B's numbers must differ from A's)
CASES = {
    "paper_compatible": ({}, {"paper_compatible": True}, True),
    "dtype": ({}, {"model": lambda _: load(dtype="bfloat16")}, True),
    "attn_implementation": ({}, {"model": lambda _: load(attn="eager")}, False),
    "chat_template": ({}, {"chat_template": PLAIN_TEMPLATE}, True),
    "date_string": ({}, {"date_string": "01 Jan 2025"}, True),
    "revision": ({"model": lambda _: hub_like(0, "a" * 40)},
                 {"model": lambda _: hub_like(1, "b" * 40)}, True),
    "weights": ({"model": lambda tmp: weights_folder(tmp, 0)},
                {"model": lambda tmp: weights_folder(tmp, 1)}, True),
    "head_type": ({}, {"model": lambda _: other_head()}, True),
    "candidates": ({}, {"candidates": "vocab:40-79"}, True),
    "candidate_order": ({}, {"candidates": list(range(39, -1, -1))}, True),
    "prompt_text": ({}, {"prompts": {k: v.replace("in one word", "briefly")
                                     for k, v in PROMPTS.items()}}, True),
}


def run(out, tmp_path, settings):
    settings = dict(settings)
    model = settings.pop("model", lambda _: load())(tmp_path)
    calls: list[str] = []
    args = {"prompts": PROMPTS, "candidates": CANDIDATES, **settings}
    result = score(model, args.pop("prompts"), args.pop("candidates"), out,
                   on_shard=calls.append, **args)
    return result, calls


@pytest.mark.parametrize("setting", sorted(CASES))
def test_changed_setting_resumes_nothing_and_equals_a_fresh_run(setting, tmp_path):
    a, b, numbers_differ = CASES[setting]
    first, calls = run(tmp_path / "out", tmp_path, a)
    assert calls == list(PROMPTS)
    second, calls = run(tmp_path / "out", tmp_path, b)
    assert calls == list(PROMPTS), f"{setting}: a stale shard was resumed"
    assert "resumed" not in second.summary
    fresh, _ = run(tmp_path / "fresh", tmp_path, b)
    pd.testing.assert_frame_equal(second.table, fresh.table)
    if numbers_differ:  # else resuming A's shards would have passed the equality above
        differ = (len(first.table) != len(second.table)
                  or (first.table["score"] - second.table["score"]).abs().max() > 1e-3
                  or list(first.table["candidate"]) != list(second.table["candidate"]))
        assert differ, f"{setting}: the two settings give the same table; the case proves nothing"
    third, calls = run(tmp_path / "out", tmp_path, b)
    assert calls == [] and "2 shard(s) resumed" in third.summary  # the key is stable
    pd.testing.assert_frame_equal(third.table, fresh.table)
