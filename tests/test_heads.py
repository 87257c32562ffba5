"""Vendored score heads (ArmoRM, QRM, URM, GRM value head) against restatements of the originals.

Each ``Original*`` class below restates the remote code's head modules under their real attribute
names and its forward on full, padded sequences (pooling at the token before the first pad,
gating at the LAST occurrence of the gating pattern in the whole sequence). Loading our heads'
random state dicts into them with ``strict=True`` checks the key layout; running both on a tiny
random LlamaModel over real Llama-3.1-templated conversations checks the numbers.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import jinja2
import jinja2.sandbox
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rmvalues.errors import ModelError, RmvaluesError
from rmvalues.models.heads import HEAD_TYPES, head_class, score_full_sequences
from rmvalues.models.heads.armorm import ArmoRMHead
from rmvalues.models.heads.grm import GRMValueHead
from rmvalues.models.heads.qrm import QRMHead
from rmvalues.models.heads.urm import URMHead

ASSETS = Path(os.environ.get("RMVALUES_CACHE", Path(__file__).parents[1] / ".cache" / "rmvalues"))
ASSETS = ASSETS / "assets"
LLAMA3_PATTERN = [128009, 128006, 78191, 128007, 271]
GEMMA2_PATTERN = [107, 108, 106, 2516, 108]
PAD = 128256  # ArmoRM's / QRM's config.pad_token_id (one past the Llama-3 vocabulary)
H = 32  # tiny hidden size

# ---------------------------------------------------------------------------------------------
# The real checkpoints' head keys and shapes, as the remote code defines them (H hidden size,
# O objectives, G gating width, Q quantiles, N value-head width).


def armorm_keys(H, O, G, n_hidden=3):
    # RLHFlow/ArmoRM-Llama3-8B-v0.1 modeling_custom.py: regression_layer (no bias),
    # reward_transform_matrix, GatingNetwork(layers = n_hidden Linear(bias) + Linear(bias), logit_scale)
    keys = {"regression_layer.weight": (O, H), "reward_transform_matrix": (O, O),
            "gating.logit_scale": (1,)}
    sizes = [H] + [G] * n_hidden + [O]
    for i in range(n_hidden + 1):
        keys[f"gating.layers.{i}.weight"] = (sizes[i + 1], sizes[i])
        keys[f"gating.layers.{i}.bias"] = (sizes[i + 1],)
    return keys


def qrm_keys(H, O, Q, G, gemma=False):
    # QRM-Llama3.1-8B: GatingNetwork layers = 3 x [Linear(no bias), ReLU, BatchNorm1d] + Linear(bias)
    # QRM-Gemma-2-27B (third-party key list): Linear at 0/4/8, BatchNorm at 2/6/10, final at 11,
    # and no reward_transform_matrix
    keys = {"regression_layer.weight": (O * Q, H), "gating.logit_scale": (1,)}
    if not gemma:
        keys["reward_transform_matrix"] = (O, O)
    linears, norms, final = ((0, 4, 8), (2, 6, 10), 11) if gemma else ((0, 3, 6), (2, 5, 8), 9)
    for n, i in enumerate(linears):
        keys[f"gating.layers.{i}.weight"] = (G, H if n == 0 else G)
    for i in norms:
        for p in ("weight", "bias", "running_mean", "running_var"):
            keys[f"gating.layers.{i}.{p}"] = (G,)
        keys[f"gating.layers.{i}.num_batches_tracked"] = ()
    keys[f"gating.layers.{final}.weight"] = (O, G)
    keys[f"gating.layers.{final}.bias"] = (O,)
    return keys


def urm_keys(H, G):
    # LxzGordon/URM-LLaMa-3.1-8B: LlamaForSequenceClassification score (10 labels, no bias) and the
    # gating network `weights.fc` = Linear, SELU, Linear, SELU, Linear(5)
    return {"score.weight": (10, H), "weights.fc.0.weight": (G, H), "weights.fc.0.bias": (G,),
            "weights.fc.2.weight": (G, G), "weights.fc.2.bias": (G,),
            "weights.fc.4.weight": (5, G), "weights.fc.4.bias": (5,)}


def grm_keys(H, N):
    # Ray2333/GRM-*-sftreg ValueHead (vhead_layer_type mlp, 1 layer): summary = Linear, ReLU, Linear
    return {"v_head.summary.0.weight": (N, H), "v_head.summary.0.bias": (N,),
            "v_head.summary.2.weight": (1, N), "v_head.summary.2.bias": (1,)}


# ---------------------------------------------------------------------------------------------
# Restatements of the original heads and forwards (full sequences, right padding with PAD).


def find_token_for_gating(ids, pattern):
    for j in range(len(ids) - len(pattern), -1, -1):
        if ids[j:j + len(pattern)] == pattern:
            return j
    raise ValueError("Token pattern not found in the list.")


def pooled_positions(input_ids, pad_token_id):
    # transformers' sequence-classification pooling, as the remote code copies it
    lengths = torch.eq(input_ids, pad_token_id).int().argmax(-1) - 1
    return lengths % input_ids.shape[-1]


class OriginalArmoGating(nn.Module):
    def __init__(self, in_features, out_features, temperature, hidden_dim, n_hidden):
        super().__init__()
        self.temperature = temperature
        self.logit_scale = nn.Parameter(torch.ones(1))
        layers = []
        for _ in range(n_hidden):
            layers.append(nn.Linear(in_features, hidden_dim))
            in_features = hidden_dim
        layers.append(nn.Linear(in_features, out_features, bias=True))
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < len(self.layers) - 1 else layer(x)
        x = F.softmax(x / self.temperature, dim=1)
        return x * self.logit_scale[0]


class OriginalArmoRM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        O = cfg.num_objectives
        self.regression_layer = nn.Linear(cfg.hidden_size, O, bias=False)
        self.reward_transform_matrix = nn.Parameter(torch.eye(O), requires_grad=False)
        self.gating = OriginalArmoGating(cfg.hidden_size, O, cfg.gating_temperature,
                                         cfg.gating_hidden_dim, cfg.gating_n_hidden)

    def forward(self, tokens_hidden_states, input_ids):
        rows = torch.arange(input_ids.shape[0])
        hidden_states = tokens_hidden_states[rows, pooled_positions(input_ids, PAD)]
        rewards = self.regression_layer(hidden_states)
        positions = [find_token_for_gating(ids.tolist(), LLAMA3_PATTERN) for ids in input_ids]
        gating_output = self.gating(tokens_hidden_states[rows, positions, :])
        return torch.sum(gating_output * (rewards @ self.reward_transform_matrix), dim=1)


class OriginalQRMGating(nn.Module):
    def __init__(self, in_features, out_features, temperature, hidden_dim, n_hidden, dropout):
        super().__init__()
        self.temperature = temperature
        self.logit_scale = nn.Parameter(torch.ones(1))
        layers = []
        for i in range(n_hidden):
            layers += [nn.Linear(in_features, hidden_dim, bias=False), nn.ReLU(),
                       nn.BatchNorm1d(hidden_dim)]
            if dropout and i < n_hidden - 1:
                layers.append(nn.Dropout(0.2))
            in_features = hidden_dim
        layers.append(nn.Linear(in_features, out_features, bias=True))
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        x = F.softmax(x / self.temperature, dim=1)
        return x * self.logit_scale[0]


class OriginalQRM(nn.Module):
    def __init__(self, cfg, gemma=False):
        super().__init__()
        O, Q = cfg.num_objectives, cfg.num_quantiles
        self.O, self.Q, self.gemma = O, Q, gemma
        self.regression_layer = nn.Linear(cfg.hidden_size, Q * O, bias=False)
        if not gemma:
            self.reward_transform_matrix = nn.Parameter(torch.eye(O), requires_grad=False)
        self.gating = OriginalQRMGating(cfg.hidden_size, O, cfg.gating_temperature,
                                        cfg.gating_hidden_dim, cfg.gating_n_hidden, gemma)

    def forward(self, tokens_hidden_states, input_ids, pattern=LLAMA3_PATTERN):
        rows = torch.arange(input_ids.shape[0])
        hidden_states = tokens_hidden_states[rows, pooled_positions(input_ids, PAD)]
        rewards = self.regression_layer(hidden_states.float()).reshape(-1, self.O, self.Q)
        positions = [find_token_for_gating(ids.tolist(), pattern) for ids in input_ids]
        gating_output = self.gating(tokens_hidden_states[rows, positions, :].float())
        expectation = rewards.float().mean(dim=2)
        if not self.gemma:
            expectation = expectation @ self.reward_transform_matrix
        return torch.sum(gating_output * expectation, dim=1, keepdim=True)[:, 0]


class OriginalURM(nn.Module):
    """URM as an independent implementation serves LxzGordon/URM-LLaMa-3.1-8B, not as urm.py reads it.

    Written from sglang's ``LlamaForSequenceClassificationWithNormal_Weights`` (the architecture
    URM's config names; sgl-project/sglang ``python/sglang/srt/models/llama_reward.py``), which
    sglang's ``test_reward_models.py`` holds to the checkpoint's own remote code run through
    transformers (tolerance 4e-2 in fp16). Its logic: ``score`` and the gate ``weights.fc`` =
    Linear(H, H), SELU, Linear(H, H), SELU, Linear(H, num_labels // 2) run on every position, both
    are pooled at the last token, and the reward is
    ``(logits.view(-1, num_labels // 2, 2)[:, :, 0] * weights).sum(-1)``: no gate softmax, means
    at the even outputs. The gate width is the hidden size and ``num_labels`` comes from the config
    (10), as there; sglang runs the gate in fp16 for speed, this in fp32.
    """

    def __init__(self, cfg):
        super().__init__()
        hidden, self.num_labels = cfg.hidden_size, cfg.num_labels
        self.score = nn.Linear(hidden, self.num_labels, bias=False)
        self.weights = nn.Module()
        self.weights.fc = nn.Sequential(
            nn.Linear(hidden, hidden), nn.SELU(), nn.Linear(hidden, hidden), nn.SELU(),
            nn.Linear(hidden, self.num_labels // 2))

    def forward(self, tokens_hidden_states, input_ids):
        logits = self.score(tokens_hidden_states)
        weights = self.weights.fc(tokens_hidden_states)
        rows = torch.arange(input_ids.shape[0])
        last = pooled_positions(input_ids, PAD)  # PoolingType.LAST on unpadded rows
        pooled_logits, pooled_weights = logits[rows, last], weights[rows, last]
        rews = pooled_logits.view(-1, self.num_labels // 2, 2)[:, :, 0]
        return (rews * pooled_weights).sum(dim=-1)


class OriginalGRM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.v_head = nn.Module()
        self.v_head.summary = nn.Sequential(nn.Linear(cfg.hidden_size, cfg.vhead_num_neurons),
                                            nn.ReLU(), nn.Linear(cfg.vhead_num_neurons, 1))

    def forward(self, tokens_hidden_states, attention_mask):
        last_index = attention_mask.sum(dim=-1) - 1  # right padding
        value = self.v_head.summary(tokens_hidden_states).squeeze(-1)
        return value[torch.arange(len(tokens_hidden_states)), last_index]


# ---------------------------------------------------------------------------------------------
# Fixtures: the real Llama-3 tokenizer and Llama-3.1 template, a tiny random Llama backbone.


def render(template_name, messages, add_generation_prompt, bos):
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env.globals["raise_exception"] = raise_exception
    source = (ASSETS / "chat-templates" / template_name).read_text("utf-8")
    return env.from_string(source).render(messages=messages, bos_token=bos,
                                          add_generation_prompt=add_generation_prompt)


@pytest.fixture(scope="module")
def llama3_tokenizer():
    tokenizers = pytest.importorskip("tokenizers")
    path = ASSETS / "llama3-tokenizer" / "tokenizer.json"
    if not path.exists():
        pytest.fail(f"{path} is missing: run `rmvalues assets fetch` (make assets)")
    return tokenizers.Tokenizer.from_file(str(path))


def llama31_conversation(tok, turns, response):
    """(prefix ids, full ids) of a Llama-3.1 conversation whose last assistant turn is ``response``."""
    template = "meta-llama-Llama-3.1-8B-Instruct.jinja"
    bos = "<|begin_of_text|>"
    prefix_text = render(template, turns, True, bos)
    full_text = render(template, [*turns, {"role": "assistant", "content": response}], False, bos)
    assert full_text.startswith(prefix_text)
    prefix = tok.encode(prefix_text, add_special_tokens=False).ids
    full = tok.encode(full_text, add_special_tokens=False).ids
    assert full[:len(prefix)] == prefix
    return prefix, full


@pytest.fixture(scope="module")
def conversations(llama3_tokenizer):
    tok = llama3_tokenizer
    specs = [
        ([{"role": "user", "content": "Describe a good neighbour in one word."}], "Kind"),
        ([{"role": "system", "content": "Answer briefly."},
          {"role": "user", "content": "What matters most in a friend?"}], "loyalty and warmth"),
        ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
          {"role": "user", "content": "Name a virtue."}], " honesty"),
    ]
    return [llama31_conversation(tok, turns, response) for turns, response in specs]


def tiny_config(**extra):
    from transformers import LlamaConfig

    values = {
        "vocab_size": 128257, "hidden_size": H, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
        "pad_token_id": PAD, "num_objectives": 5, "num_quantiles": 7, "gating_hidden_dim": 16,
        "gating_n_hidden": 3, "gating_temperature": 2.0, "urm_gate_hidden": H, "num_labels": 10,
        "vhead_num_neurons": 16, "vhead_num_layers": 1, "vhead_layer_type": "mlp",
    }
    values.update(extra)
    cfg = LlamaConfig(**values)
    cfg._attn_implementation = "eager"
    return cfg


@pytest.fixture(scope="module")
def backbone():
    from transformers import LlamaModel

    torch.manual_seed(0)
    return LlamaModel(tiny_config()).eval()


def padded(conversations):
    full = [f for _, f in conversations]
    width = max(map(len, full))
    ids = torch.tensor([f + [PAD] * (width - len(f)) for f in full])
    mask = torch.tensor([[1] * len(f) + [0] * (width - len(f)) for f in full])
    return ids, mask


@torch.no_grad()
def original_scores(original, backbone, conversations):
    ids, mask = padded(conversations)
    hidden = backbone(input_ids=ids, attention_mask=mask).last_hidden_state
    if isinstance(original, OriginalGRM):
        return original(hidden, mask)
    return original(hidden, ids)


@torch.no_grad()
def adapter_scores(head, backbone, conversations):
    """Our path, as the engine runs it: the prefix alone gives the prompt state, the full
    conversation gives the last state (each unpadded)."""
    out = []
    for prefix, full in conversations:
        last = backbone(input_ids=torch.tensor([full])).last_hidden_state[:, -1]
        prompt = None
        if head.needs_prompt_state:
            prefix_states = backbone(input_ids=torch.tensor([prefix])).last_hidden_state
            prompt = prefix_states[:, head.prompt_position(prefix)]
        out.append(head(last, prompt))
    return torch.cat(out)


CASES = {
    "armorm": (ArmoRMHead, OriginalArmoRM, lambda c: armorm_keys(H, 5, 16)),
    "qrm": (QRMHead, OriginalQRM, lambda c: qrm_keys(H, 5, 7, 16)),
    "urm": (URMHead, OriginalURM, lambda c: urm_keys(H, H)),
    "grm_value_head": (GRMValueHead, OriginalGRM, lambda c: grm_keys(H, 16)),
}


# ---------------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("head_type", sorted(CASES))
def test_state_dict_has_the_real_keys_and_shapes(head_type):
    cls, original_cls, expected = CASES[head_type]
    cfg = tiny_config()
    state = cls.random_state_dict(cfg, seed=1)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes == expected(cfg)
    head = head_class(head_type).from_checkpoint(cfg, state)
    assert {k: tuple(v.shape) for k, v in head.state_dict().items()} == shapes
    assert all(k.startswith(cls.state_dict_prefixes) for k in state)
    # the restated original module accepts exactly these keys
    original_cls(cfg).load_state_dict(state, strict=True)


def test_qrm_gemma_layout_keys():
    from transformers import Gemma2Config

    cfg = Gemma2Config(hidden_size=H, num_objectives=5, num_quantiles=19, gating_hidden_dim=16,
                       gating_n_hidden=3, gating_temperature=1.0, identity_reward_transform=True,
                       gating_token_pattern=GEMMA2_PATTERN)
    state = QRMHead.random_state_dict(cfg, seed=2)
    assert {k: tuple(v.shape) for k, v in state.items()} == qrm_keys(H, 5, 19, 16, gemma=True)
    head = QRMHead.from_checkpoint(cfg, state)
    assert head.reward_transform_matrix is None and head.pattern == tuple(GEMMA2_PATTERN)
    original = OriginalQRM(cfg, gemma=True)
    original.load_state_dict(state, strict=True)
    original.eval()
    g = torch.Generator().manual_seed(3)
    states = torch.randn(3, 9, H, generator=g)
    ids = torch.randint(0, 100, (3, 9), generator=g)
    ids[:, 2:7] = torch.tensor(GEMMA2_PATTERN)  # the gate reads position 2
    with torch.no_grad():
        expect = original(states, ids, GEMMA2_PATTERN)
        got = head(states[:, -1], states[:, head.prompt_position(ids[0].tolist())])
    assert torch.allclose(got, expect, atol=1e-6, rtol=0)


@pytest.mark.parametrize("head_type", sorted(CASES))
def test_adapter_equals_original_forward(head_type, backbone, conversations):
    cls, original_cls, _ = CASES[head_type]
    cfg = tiny_config()
    state = cls.random_state_dict(cfg, seed=4)
    original = original_cls(cfg)
    original.load_state_dict(state, strict=True)
    original.eval()
    head = head_class(head_type).from_checkpoint(cfg, {**state, "model.norm.weight": torch.ones(H)})
    expect = original_scores(original, backbone, conversations)
    got = adapter_scores(head, backbone, conversations)
    assert got.dtype == torch.float32 and got.shape == (len(conversations),)
    assert (got - expect).abs().max().item() <= 1e-5
    assert expect.std() > 1e-3  # the scores differ between conversations: a real comparison
    # the full-sequence slow path agrees too
    with torch.no_grad():
        full = [torch.tensor([f]) for _, f in conversations]
        slow = torch.cat([score_full_sequences(head, backbone(input_ids=x).last_hidden_state,
                                               x.tolist()) for x in full])
    assert (slow - expect).abs().max().item() <= 1e-5


@pytest.mark.parametrize("head_type", sorted(CASES))
def test_float32_output_under_bf16_backbone(head_type, backbone, conversations):
    cls = CASES[head_type][0]
    head = cls.random_init(tiny_config(), seed=5)
    prefix, full = conversations[1]
    with torch.no_grad():
        bf16 = copy.deepcopy(backbone).to(torch.bfloat16)
        states = bf16(input_ids=torch.tensor([full])).last_hidden_state
        assert states.dtype == torch.bfloat16
        prompt = states[:, head.prompt_position(prefix)] if head.needs_prompt_state else None
        got = head(states[:, -1], prompt)
        want = head(states[:, -1].float(), None if prompt is None else prompt.float())
    assert got.dtype == torch.float32
    assert torch.equal(got, want)


def test_urm_gate_width_is_read_from_the_checkpoint():
    cfg = tiny_config(urm_gate_hidden=24)
    state = URMHead.random_state_dict(cfg, seed=1)
    assert {k: tuple(v.shape) for k, v in state.items()} == urm_keys(H, 24)
    head = head_class("urm").from_checkpoint(cfg, state)
    assert head(torch.randn(3, H)).shape == (3,)


def test_gating_prompt_state_is_shared_across_a_batch():
    for cls in (ArmoRMHead, QRMHead):
        head = cls.random_init(tiny_config(), seed=6)
        g = torch.Generator().manual_seed(7)
        last, prompt = torch.randn(6, H, generator=g), torch.randn(1, H, generator=g)
        assert torch.allclose(head(last, prompt), head(last, prompt.expand(6, -1)), atol=1e-7)
        with pytest.raises(ModelError, match="prompt state"):
            head(last)


def test_prompt_position_on_real_llama31_conversations(conversations):
    head = ArmoRMHead.random_init(tiny_config())
    for prefix, full in conversations:
        position = head.prompt_position(prefix)
        assert position == len(prefix) - 5  # the end of the last user turn + assistant header
        assert prefix[position:] == LLAMA3_PATTERN
        # the original searches the whole conversation and lands on the same token
        assert find_token_for_gating(full, LLAMA3_PATTERN) == position == head.prompt_position(full)
    # multi-turn: the LAST user turn, not the first
    prefix, _ = conversations[2]
    assert prefix.count(128009) >= 3 and head.prompt_position(prefix) == len(prefix) - 5


def test_prompt_position_on_a_real_gemma2_conversation():
    spm = pytest.importorskip("sentencepiece")
    sp = spm.SentencePieceProcessor(model_file=str(ASSETS / "gemma2-tokenizer" / "tokenizer.model"))
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
             {"role": "user", "content": "Name a virtue."}]
    prefix = [2] + sp.encode(render("google-gemma-2-2b-it.jinja", turns, True, ""))
    from transformers import Gemma2Config

    cfg = Gemma2Config(hidden_size=H, num_objectives=5, num_quantiles=19, gating_hidden_dim=16,
                       gating_temperature=1.0, identity_reward_transform=True,
                       gating_token_pattern=GEMMA2_PATTERN)
    head = QRMHead.random_init(cfg)
    assert head.prompt_position(prefix) == len(prefix) - 5
    assert prefix[-5:] == GEMMA2_PATTERN


def test_missing_gating_pattern_is_a_clear_error(llama3_tokenizer):
    head = ArmoRMHead.random_init(tiny_config())
    ids = llama3_tokenizer.encode("no chat template here", add_special_tokens=False).ids
    with pytest.raises(ModelError, match="gating token pattern") as err:
        head.prompt_position(ids)
    assert "chat template" in str(err.value) and isinstance(err.value, RmvaluesError)


def test_registry_and_errors():
    assert set(HEAD_TYPES) == {"sequence_classification", "armorm", "qrm", "urm", "grm_value_head"}
    assert head_class("qrm") is QRMHead
    with pytest.raises(ModelError, match="unknown head type 'nope'"):
        head_class("nope")
    cfg = tiny_config()
    with pytest.raises(ModelError, match="regression_layer.weight"):
        head_class("armorm").from_checkpoint(cfg, URMHead.random_state_dict(cfg))
    with pytest.raises(ModelError, match="weights.fc"):
        head_class("urm").from_checkpoint(cfg, {"score.weight": torch.zeros(1, H)})
    with pytest.raises(ModelError, match="v_head"):
        head_class("grm_value_head").from_checkpoint(cfg, {"score.weight": torch.zeros(1, H)})
    state = ArmoRMHead.random_state_dict(cfg)
    state["regression_layer.weight"] = torch.zeros(5, H + 1)
    with pytest.raises(ModelError, match="shape"):
        head_class("armorm").from_checkpoint(cfg, state)
    with pytest.raises(ModelError, match="num_quantiles"):
        head_class("qrm").from_checkpoint(tiny_config(num_quantiles=3), QRMHead.random_state_dict(cfg))


def test_every_registry_head_type_has_a_class():
    from rmvalues.models.registry import known_models

    assert {spec.head for spec in known_models().values()} <= set(HEAD_TYPES)
    assert known_models()["armorm-llama3-8b"].head == "armorm"
    assert known_models()["grm-llama3-8b-sftreg"].head == "grm_value_head"
