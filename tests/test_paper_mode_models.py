"""Paper mode per model (issue 13): dtype, URM's logits[:, 0], transformers 4.43 pad pooling, head
dtype, and the QRM head that refuses to guess its parameters."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from _engine_models import tiny_rm, tiny_rm_dir
from rmvalues.api import score
from rmvalues.engines.candidates import vocabulary_candidates
from rmvalues.engines.paper_compat import (
    pad_pooling,
    paper_conversations,
    paper_dtype,
    paper_pooling,
)
from rmvalues.engines.reference import reference_score
from rmvalues.errors import ModelError
from rmvalues.models.chat import split_chat
from rmvalues.models.heads.qrm import QRMHead
from rmvalues.models.registry import get_model, known_models
from test_heads import GEMMA2_PATTERN, tiny_config

PROMPT = "What, in one word, is the best thing ever?"


def transformers_443_pooling(ids: torch.Tensor, pad: int) -> torch.Tensor:
    """transformers 4.43 ``*ForSequenceClassification``: first pad minus one, modulo the length."""
    return (torch.eq(ids, pad).int().argmax(-1) - 1) % ids.shape[-1]


def test_pad_pooling_is_transformers_443():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 6, (200, 9), generator=g)  # pad 5: absent, first, middle, last, twice
    want = transformers_443_pooling(ids, 5)
    got = [pad_pooling(5)(row.tolist()) for row in ids]
    assert got == want.tolist()
    assert pad_pooling(None)([5, 5, 5]) == 2 and pad_pooling(5)([1, 2, 5, 3]) == 1


def test_registry_records_the_papers_dtype_and_score_per_model():
    fp16 = {k for k, m in known_models().items() if m.paper_dtype == "float16"}
    assert fp16 == {"urm-llama3.1-8b", "grm-gemma2-2b", "grm-llama3-8b", "grm-llama3.2-3b"}
    assert all(m.paper_dtype == "bfloat16" for k, m in known_models().items()
               if m.released_scores and k not in fp16)
    assert get_model("urm-llama3.1-8b").paper_score == "first_logit"
    assert get_model("grm-llama3-8b").dtype == "float16"  # its published weights
    assert not get_model("qrm-gemma2-27b").head_verified
    assert paper_dtype("urm-llama3.1-8b", None) == "float16"
    assert paper_dtype("skywork-gemma2-27b", None) == "bfloat16"
    assert paper_dtype("urm-llama3.1-8b", "float32") == "float32"  # an explicit dtype wins


def test_default_dtype_is_the_checkpoints_own_where_supported(monkeypatch):
    from rmvalues.models.loading import torch_dtype

    spec = get_model("skywork-gemma2-27b")
    assert torch_dtype(None, device="cpu", spec=spec, published="float16") == torch.float32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert torch_dtype(None, device="cuda", spec=spec, published="float16") == torch.float16
    assert torch_dtype(None, device="cuda", spec=spec, published=None) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert torch_dtype(None, device="cuda", spec=spec, published="bfloat16") == torch.float16


def test_a_pad_candidate_is_read_before_the_pad_as_transformers_did():
    rm = tiny_rm("gemma")  # pad id 0; the Gemma-2 template never writes it
    pad = rm.backbone.config.pad_token_id
    tok = rm.tokenizer
    split = split_chat(tok, PROMPT)
    ids = [pad, 1000, 2000]
    result = score(rm, {"q": PROMPT}, ids, None, paper_compatible=True)
    conversations = paper_conversations(tok, split, vocabulary_candidates(tok, ids))
    assert pad in conversations[0] and pad not in conversations[1]
    # restated original: a full forward, hidden state at transformers 4.43's pooled position
    with torch.no_grad():
        for conv, got in zip(conversations, result.table["score"]):
            x = torch.tensor([conv])
            hidden = rm.backbone(input_ids=x).last_hidden_state[0]
            want = float(hidden[int(transformers_443_pooling(x, pad)[0])] @ rm.head.weight[0])
            assert abs(got - want) <= 1e-5
    assert result.manifest["pooling"].startswith(f"before the first pad token (id {pad})")
    # the pad candidate is read where its conversation's pad sits, not at the end
    last = reference_score(rm, conversations[:1])[0]
    assert abs(result.table["score"].iloc[0] - last) > 1e-4


def test_paper_mode_matches_transformers_sequence_classification():
    from transformers import AutoModelForSequenceClassification

    rm = tiny_rm("gemma")
    original = AutoModelForSequenceClassification.from_pretrained(tiny_rm_dir("gemma")).eval()
    split = split_chat(rm.tokenizer, PROMPT)
    words = ["kindness", "power", "honesty"]
    result = score(rm, {"q": PROMPT}, words, None, paper_compatible=True)
    from rmvalues.engines.candidates import text_candidates

    with torch.no_grad():
        want = [float(original(input_ids=torch.tensor([c])).logits[0, 0]) for c in
                paper_conversations(rm.tokenizer, split, text_candidates(words))]
    assert np.abs(result.table["score"].to_numpy() - np.array(want)).max() <= 1e-5


def test_head_runs_in_the_backbone_dtype_in_paper_mode():
    from rmvalues.models.loading import load_reward_model

    rm = load_reward_model(tiny_rm_dir("gemma"), device="cpu", dtype="bfloat16")
    words = [f"w{i}" for i in range(30)]
    paper = score(rm, {"q": PROMPT}, words, None, paper_compatible=True)
    values = torch.tensor(paper.table["score"].to_numpy())
    assert torch.equal(values.to(torch.bfloat16).float(), values)  # bf16 scores, as released
    assert paper.manifest["head_dtype"] == "bfloat16"
    assert next(rm.head.parameters()).dtype == torch.float32  # the caller's model is untouched
    exact = score(rm, {"q": PROMPT}, words, None)
    assert exact.manifest["head_dtype"] == "float32"


def test_urm_paper_score_is_logits_0_without_the_gate(tmp_path):
    from transformers import LlamaForSequenceClassification

    from _engine_models import tokenizer
    from test_heads_engine import load_tiny_rm

    rm, _state = load_tiny_rm(tmp_path, "urm", tokenizer("llama3"))
    rm = dataclasses.replace(rm, spec=get_model("urm-llama3.1-8b"))
    words = ["kindness", "power", "honesty", "greed"]
    paper = score(rm, {"q": PROMPT}, words, None, paper_compatible=True)
    default = score(rm, {"q": PROMPT}, words, None)
    assert paper.manifest["score_definition"].startswith("logits[:, 0]")
    assert default.manifest["score_definition"].startswith("sum(attribute means * gate)")
    # what the authors ran: transformers' own class from the config, 10 labels, gate dropped
    original = LlamaForSequenceClassification.from_pretrained(tmp_path / "urm", num_labels=10).eval()
    split = split_chat(rm.tokenizer, PROMPT)
    from rmvalues.engines.candidates import text_candidates

    convs = paper_conversations(rm.tokenizer, split, text_candidates(words))
    pool = paper_pooling(rm)
    with torch.no_grad():
        want = []
        for c in convs:
            out = original.model(input_ids=torch.tensor([c])).last_hidden_state[0, pool(c)]
            want.append(float(original.score(out)[0]))
    assert np.abs(paper.table["score"].to_numpy() - np.array(want)).max() <= 1e-5
    assert np.abs(paper.table["score"].to_numpy() - default.table["score"].to_numpy()).max() > 1e-3
    assert rm.head.first_logit_only is False  # paper mode worked on its own copy


def test_qrm_refuses_to_guess_its_parameters():
    from transformers import Gemma2Config

    base = {"hidden_size": 32, "num_objectives": 5, "num_quantiles": 19, "gating_hidden_dim": 16,
                "gating_n_hidden": 3, "gating_temperature": 1.0, "identity_reward_transform": True,
                "gating_token_pattern": GEMMA2_PATTERN}
    state = QRMHead.random_state_dict(Gemma2Config(**base), seed=1)
    assert QRMHead.from_checkpoint(Gemma2Config(**base), state).pattern == tuple(GEMMA2_PATTERN)
    for missing, message in (("gating_temperature", "no gating_temperature"),
                             ("num_quantiles", "no num_quantiles"),
                             ("identity_reward_transform", "reward_transform_matrix"),
                             ("gating_token_pattern", "gating_token_pattern")):
        cfg = Gemma2Config(**{k: v for k, v in base.items() if k != missing})
        if missing in ("gating_temperature", "num_quantiles"):
            setattr(cfg, missing, None)
        with pytest.raises(ModelError, match=message):
            QRMHead.from_checkpoint(cfg, state)
    # the Llama layout keeps the verified Llama-3 pattern and its own transform matrix
    llama = tiny_config()
    assert QRMHead.from_checkpoint(llama, QRMHead.random_state_dict(llama)).reward_transform_matrix is not None


def test_manifest_records_an_unverified_head():
    from rmvalues.engines.paper_compat import score_fields

    rm = dataclasses.replace(tiny_rm("llama"), spec=get_model("qrm-gemma2-27b"))
    assert score_fields(rm, True)["head_verified"] is False
    assert score_fields(tiny_rm("llama"), False)["head_verified"] is None


def test_scale_out_paper_mode_equals_score(tmp_path):
    """`score --executor local --paper-compatible` runs paper mode as `score` does (pooling incl.)."""
    from rmvalues.scale import RunSpec, execute
    from rmvalues.store.manifest import read_results

    rm = tiny_rm("gemma")
    ids = [rm.backbone.config.pad_token_id, *range(1000, 1040)]
    prompts = {"q": PROMPT}
    plain = score(rm, prompts, ids, None, paper_compatible=True)
    spec = RunSpec.build(str(tiny_rm_dir("gemma")), prompts, ids, device="cpu", dtype="float32",
                         paper_compatible=True, shard_size=16)
    scaled = read_results(execute(spec, tmp_path).path)
    assert np.abs(scaled["score"].to_numpy() - plain.table["score"].to_numpy()).max() <= 1e-5
