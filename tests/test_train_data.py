"""Preference data, configuration and checkpoint schedule: formats, validation errors naming the bad
record, subsampling, the length filter, and the paper's defaults. No training here."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from _train_models import llama_tokenizer, preference_records
from rmvalues.errors import InputError
from rmvalues.training.config import TrainConfig
from rmvalues.training.data import (
    HUB_PRESETS,
    load_preference_data,
    normalize_record,
    read_records,
    subsample_indices,
)
from rmvalues.training.schedule import CheckpointSchedule, reference_checkpoint_steps

CONV = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]
CONV_B = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Go away."}]


def test_paper_defaults() -> None:
    cfg = TrainConfig()
    assert (cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout) == (32, 64, 0.05)
    assert cfg.target_modules == ("q_proj", "k_proj", "v_proj", "o_proj")
    assert cfg.modules_to_save == ("score",)
    assert (cfg.learning_rate, cfg.lr_scheduler_type, cfg.warmup_ratio) == (1e-5, "cosine", 0.03)
    assert (cfg.max_grad_norm, cfg.per_device_train_batch_size, cfg.gradient_accumulation_steps) \
        == (5.0, 4, 4)
    assert (cfg.num_train_epochs, cfg.seed, cfg.max_length, cfg.bf16) == (2.0, 1, 1024, "auto")
    lora = cfg.lora_config()
    assert lora.r == 32 and lora.lora_alpha == 64 and lora.task_type == "SEQ_CLS"
    assert set(lora.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert "score" in lora.modules_to_save
    args = cfg.reward_config("/tmp/x")
    assert args.learning_rate == 1e-5 and args.warmup_steps == 0.03 and args.max_grad_norm == 5.0
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps == 16
    assert args.num_train_epochs == 2 and args.seed == 1 and args.max_length == 1024
    assert args.disable_dropout is False  # the LoRA dropout of the recipe stays on
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(InputError, match="unknown training setting"):
        cfg.replace(lora_rank=8)
    with pytest.raises(InputError, match="lora_r"):
        TrainConfig(lora_r=0)


def test_schedule_zero_powers_every_last() -> None:
    schedule = CheckpointSchedule(every=25)
    assert schedule.steps(100) == [0, 1, 2, 4, 8, 16, 25, 32, 50, 64, 75, 100]
    assert CheckpointSchedule(every=0).steps(10) == [0, 1, 2, 4, 8, 10]
    assert CheckpointSchedule(powers_of_two=False, every=3, include_last=False).steps(10) == \
        [0, 3, 6, 9]
    for sched in (schedule, CheckpointSchedule(every=7, include_zero=False)):
        for total in (0, 1, 5, 64, 99):
            assert sched.steps(total) == reference_checkpoint_steps(sched, total)
    assert 64 in schedule and 3 not in schedule
    with pytest.raises(InputError, match=r"checkpoint interval must be >= 0 \(got -1\)"):
        CheckpointSchedule(every=-1)


def test_record_formats() -> None:
    pair = normalize_record({"chosen": CONV, "rejected": CONV_B}, 0)
    assert pair.chosen == CONV and pair.rejected == CONV_B
    pair = normalize_record({"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away."}, 1)
    assert pair.chosen == CONV and pair.rejected == CONV_B
    # Unified-Feedback: the higher rating is chosen, ties are dropped
    uf = {"conv_A": CONV_B, "conv_B": CONV, "conv_A_rating": 1, "conv_B_rating": 3}
    pair = normalize_record(uf, 2)
    assert pair.chosen == CONV and pair.rejected == CONV_B
    assert normalize_record({**uf, "conv_A_rating": 3}, 3) is None
    assert "Unified-Feedback" in "".join(HUB_PRESETS) and \
        HUB_PRESETS["llm-blender/Unified-Feedback"]["config"] == "all"


@pytest.mark.parametrize("record, message", [
    ({"chosen": CONV}, r"record 4: no 'rejected'"),
    ({"text": "hi"}, r"record 4: no 'chosen' and no 'rejected'"),
    ({"chosen": "a", "rejected": "b"}, r"record 4: .*no 'prompt'"),
    ({"chosen": [{"role": "user", "content": "x"}], "rejected": CONV}, "end with an assistant"),
    ({"chosen": [{"role": "bot", "content": "x"}], "rejected": CONV}, "role 'bot'"),
    ({"chosen": [{"content": "x"}], "rejected": CONV}, "'role' and 'content'"),
    ({"prompt": "p", "chosen": "", "rejected": "b"}, "'chosen' must be non-empty"),
    ({"conv_A": CONV, "conv_B": CONV_B, "conv_A_rating": "x", "conv_B_rating": 1}, "number"),
    ("just text", "must be a mapping"),
])
def test_bad_records_are_named(record, message) -> None:
    records = [{"chosen": CONV, "rejected": CONV_B}] * 4 + [record]
    with pytest.raises(InputError, match=message):
        load_preference_data(records, llama_tokenizer())


def test_local_files(tmp_path) -> None:
    records = preference_records(5)
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    parquet = tmp_path / "pairs.parquet"
    pd.DataFrame({"chosen": [CONV] * 3, "rejected": [CONV_B] * 3}).to_parquet(parquet)
    assert read_records(jsonl)[0] == records
    data = load_preference_data(parquet, llama_tokenizer())
    assert len(data) == 3 and data.stats["records"] == 3
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(records[0]) + "\n{not json\n")
    with pytest.raises(InputError, match=r"bad.jsonl, line 2"):
        read_records(bad)
    with pytest.raises(InputError, match="no such file"):
        read_records(tmp_path / "missing.jsonl")
    with pytest.raises(InputError, match="no records"):
        (tmp_path / "empty.jsonl").write_text("")
        load_preference_data(tmp_path / "empty.jsonl", llama_tokenizer())


def test_tokenised_like_the_engine() -> None:
    from rmvalues.models.chat import split_chat

    tok = llama_tokenizer()
    data = load_preference_data(preference_records(2), tok)
    split = split_chat(tok, "Question 0: what, in one word, is best?")
    assert data.chosen_ids[0] == [*split.prefix_ids, *split.response_ids(tok, "good"),
                                  *split.suffix_ids]


def test_subsampling() -> None:
    assert subsample_indices(10, every=4) == [0, 4, 8]
    a = subsample_indices(100, size=10, seed=3)
    assert a == subsample_indices(100, size=10, seed=3) and len(set(a)) == 10 and a == sorted(a)
    assert a != subsample_indices(100, size=10, seed=4)
    assert subsample_indices(5, size=50) == list(range(5))
    with pytest.raises(InputError, match="not both"):
        subsample_indices(10, every=2, size=3)
    data = load_preference_data(preference_records(20), llama_tokenizer(), every=8)
    assert data.indices == [0, 8, 16] and data.stats["after_subsample"] == 3


def test_empty_after_subsampling_and_over_long() -> None:
    tok = llama_tokenizer()
    ties = [{"conv_A": CONV, "conv_B": CONV_B, "conv_A_rating": 2, "conv_B_rating": 2}] * 3
    with pytest.raises(InputError, match="no pairs left after subsampling"):
        load_preference_data(ties, tok)
    long = [{"prompt": "word " * 100, "chosen": "a", "rejected": "b"}] * 3
    with pytest.raises(InputError, match="all 3 pair.*longer than max_length = 20"):
        load_preference_data(long, tok, max_length=20)
    mixed = load_preference_data(long + preference_records(2), tok, max_length=60)
    assert len(mixed) == 2 and mixed.stats["too_long_dropped"] == 3


def test_hub_ids_go_through_load_dataset(monkeypatch) -> None:
    """Hub ids reach ``datasets.load_dataset`` with the preset config; Unified-Feedback ties drop."""
    import datasets

    calls = []
    uf = [{"conv_A": CONV, "conv_B": CONV_B, "conv_A_rating": 5, "conv_B_rating": 1},
          {"conv_A": CONV, "conv_B": CONV_B, "conv_A_rating": 2, "conv_B_rating": 2},
          {"conv_A": CONV_B, "conv_B": CONV, "conv_A_rating": 1, "conv_B_rating": 4}]

    def fake(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        return datasets.Dataset.from_list(uf)

    monkeypatch.setattr(datasets, "load_dataset", fake)
    data = load_preference_data("llm-blender/Unified-Feedback", llama_tokenizer())
    assert calls == [("llm-blender/Unified-Feedback", "all", "train")]
    assert len(data) == 2 and data.stats["ties_dropped"] == 1
    assert data.chosen_ids[0] == data.chosen_ids[1]  # the higher-rated side is chosen either way

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(InputError, match=r"hub dataset 'Skywork/.*could not be loaded.*local"):
        load_preference_data("Skywork/Skywork-Reward-Preference-80K-v0.2", llama_tokenizer())
    with pytest.raises(InputError, match="not a hub dataset id"):
        read_records("no-such-file-or-id")


def test_hub_base_is_pinned_and_gguf_flags_cleared(monkeypatch, tmp_path) -> None:
    from types import SimpleNamespace

    from rmvalues.models import loading
    from rmvalues.training.trainer import BaseModel, clear_gguf_quantization, pin_base

    sha = "a" * 40
    monkeypatch.setattr(loading, "resolve_source", lambda model, revision, spec: (tmp_path, sha))
    assert pin_base(BaseModel("owner/model")).revision == sha
    assert pin_base(BaseModel("owner/model", revision="main")).revision == "main"
    model = SimpleNamespace(hf_quantizer=object(), is_quantized=True,
                            config=SimpleNamespace(quantization_config={"quant_method": "gguf"}))
    clear_gguf_quantization(model)
    assert model.hf_quantizer is None and not model.is_quantized
    assert not hasattr(model.config, "quantization_config")
