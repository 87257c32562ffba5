"""Shared-prefix attention: a batch of continuations attends to ONE copy of the prompt's K/V.

The reference prefix path (``attention="expand"``) hands each batch a cache whose prefix tensors are
views expanded over the batch; transformers' attention then concatenates them with every row's new
keys and values, so the prefix is copied once per row and layer. Here attention is split in two, as
in Hydragen (Juravsky et al. 2024) and FlashInfer's cascade attention: the scores against the prefix
(one K/V for the whole batch: batch, GQA group and query position fold into the rows of one matmul
per key/value head) and against the continuation's own keys (causal), combined through their shared
log-sum-exp (one max and one normaliser over both parts), so nothing of the prefix is materialised
per row.

It runs as an attention function registered in transformers' ``AttentionInterface`` under
:data:`ATTENTION_NAME`; :func:`shared_attention` switches a model to it for one forward and back
(the model itself is never modified). The prefix reaches the function as the ``shared_prefix``
keyword, which the supported models pass through to their attention functions. Without a cache the
model builds no mask for a custom implementation, so the function applies causality, the sliding
window (Gemma-2, Qwen2) and logit soft-capping (Gemma-2) itself.

Rounding follows the implementation the model was loaded with: after ``eager`` (Gemma-2) the scores
are products in the model dtype and the normalised probabilities are rounded to it before the
values are summed, exactly as eager attention does (tiny Gemma-2 RMs on CPU: bf16 scores within
6e-6 x their spread of the reference, fp16 within 0.003 x); after ``sdpa``/flash the scores are float32 and the unnormalised probabilities
are rounded, as the fused kernels do, but their vectorised exp and blocking are not reproduced, so
in bf16/fp16 some output elements differ by one unit in the last place (on CPU ~8% of them, which
moves tiny Llama test RMs' scores by up to 0.14 x their spread in bf16, 0.03 x in fp16). Sums run in float32 either way and the
output is rounded once; in float32 all of this is rounding of the order of 1e-7.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rmvalues.errors import ModelError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

#: The name the attention function is registered under.
ATTENTION_NAME = "rmvalues_shared_prefix"
#: Model types whose attention modules pass ``sliding_window``/``softcap`` (where they have them)
#: and every extra keyword through to the attention function, checked against the reference path
#: by tests/test_shared_attention.py.
SUPPORTED_MODEL_TYPES = frozenset({"llama", "gemma2", "qwen2"})


def supports_shared_attention(config) -> bool:
    """Whether a backbone of this config can run :func:`shared_prefix_attention`."""
    return getattr(config, "model_type", None) in SUPPORTED_MODEL_TYPES


@dataclass
class SharedPrefix:
    """One prompt's prefix K/V per layer, as the attention function reads them.

    ``keys``/``values``: per layer, (kv heads, prefix length, head dim) in the dtype the scores are
    computed in. ``eager``: round like transformers' eager attention (else like the fused kernels).
    """

    length: int
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    eager: bool
    _masks: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_cache(cls, cache, length: int, implementation: str) -> SharedPrefix | None:
        """From a batch-1 cache whose layers hold the whole prefix (the engine's prefill: full, not
        sliding, layers); ``None`` for any other cache."""
        import torch

        eager = implementation == "eager"
        keys, values = [], []
        for layer in cache.layers:
            if layer.keys is None or layer.keys.shape[0] != 1 or layer.keys.shape[-2] != length:
                return None
            k, v = layer.keys[0], layer.values[0]
            if not eager:  # float32 scores; the upcast is exact and done once per prompt
                k, v = k.to(torch.float32), v.to(torch.float32)
            keys.append(k)
            values.append(v)
        return cls(length=length, keys=keys, values=values, eager=eager)

    def masks(self, window: int | None, length: int, device) -> tuple[torch.Tensor,
                                                                     torch.Tensor | None]:
        """Additive float32 masks of a ``length``-token continuation: over its own keys (causal,
        windowed) and over the prefix keys (``None`` when the window reaches the whole prefix)."""
        key = (window, length, device)  # device: layers split over GPUs (device_map)
        if key not in self._masks:
            import torch

            i = torch.arange(length, device=device)[:, None]
            own = torch.arange(length, device=device)[None, :]
            allowed = own <= i
            prefix_mask = None
            if window is not None:
                allowed &= own > i - window
                # query i sits at position prefix length + i; prefix key j is seen iff
                # j > that - window (transformers' sliding_window_overlay)
                if self.length + length - 1 - window >= 0:  # the last query misses some
                    seen = torch.arange(self.length, device=device)[None, :] > (
                        self.length + i - window)
                    prefix_mask = _additive(seen)
            self._masks[key] = (_additive(allowed), prefix_mask)
        return self._masks[key]


def _additive(allowed: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.zeros(allowed.shape, dtype=torch.float32, device=allowed.device).masked_fill_(
        ~allowed, float("-inf"))


def shared_prefix_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor,
                            value: torch.Tensor, attention_mask: torch.Tensor | None,
                            scaling: float | None = None, dropout: float = 0.0,
                            sliding_window: int | None = None, softcap: float | None = None,
                            shared_prefix: SharedPrefix | None = None, **kwargs
                            ) -> tuple[torch.Tensor, None]:
    """Attention of ``query`` (B, H, L, D) over the shared prefix and its own ``key``/``value``
    (B, Hkv, L, D), returned as (B, L, H, D) like transformers' attention functions."""
    import torch

    if shared_prefix is None:
        raise ModelError(f"{ATTENTION_NAME} attention runs only inside the engine's shared-prefix "
                         "forward (no shared_prefix given)")
    b, h, length, d = query.shape
    hkv = key.shape[1]
    g = h // hkv
    pk, pv = shared_prefix.keys[module.layer_idx], shared_prefix.values[module.layer_idx]
    p = pk.shape[1]
    if scaling is None:
        scaling = d ** -0.5
    low = query.dtype
    work = low if shared_prefix.eager else torch.float32
    q = query.to(work).view(b, hkv, g, length, d)
    # (Hkv, B*G*L, D): one matmul per key/value head against the one prefix copy
    rows = q.permute(1, 0, 2, 3, 4).reshape(hkv, b * g * length, d)
    s_prefix = torch.matmul(rows, pk.transpose(1, 2)) * scaling
    s_own = torch.matmul(q, key.to(work).unsqueeze(2).transpose(-1, -2)) * scaling
    if softcap is not None:
        s_prefix = torch.tanh(s_prefix / softcap) * softcap
        s_own = torch.tanh(s_own / softcap) * softcap
    own_mask, prefix_mask = shared_prefix.masks(sliding_window, length, query.device)
    s_prefix = s_prefix.view(hkv, b, g, length, p).float()
    s_own = s_own.permute(1, 0, 2, 3, 4).float() + own_mask  # (Hkv, B, G, L, L)
    if prefix_mask is not None:
        s_prefix = s_prefix + prefix_mask
    # one max and one normaliser over both parts; the diagonal keeps every row's max finite
    top = torch.maximum(s_prefix.amax(-1, keepdim=True), s_own.amax(-1, keepdim=True))
    e_prefix, e_own = torch.exp(s_prefix - top), torch.exp(s_own - top)
    total = e_prefix.sum(-1, keepdim=True) + e_own.sum(-1, keepdim=True)
    if shared_prefix.eager:  # softmax(float32).to(dtype) @ values, as eager attention
        e_prefix = (e_prefix / total).to(low)
        e_own = (e_own / total).to(low)
    elif low != torch.float32:  # fused kernels round the unnormalised probabilities
        e_prefix, e_own = e_prefix.to(low), e_own.to(low)
    out = torch.matmul(e_prefix.float().view(hkv, b * g * length, p), pv.float())
    out = out.view(hkv, b, g, length, d)
    out = out + torch.matmul(e_own.float(), value.float().permute(1, 0, 2, 3).unsqueeze(2))
    if not shared_prefix.eager:
        out = out / total
    # (Hkv, B, G, L, D) -> (B, L, H, D), head = kv head * G + group as in repeat_kv
    return out.permute(1, 3, 0, 2, 4).reshape(b, length, h, d).to(low), None


def _register() -> None:
    from transformers import AttentionInterface

    if ATTENTION_NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(ATTENTION_NAME, shared_prefix_attention)


@contextlib.contextmanager
def shared_attention(backbone) -> Iterator[None]:
    """Run ``backbone``'s forwards inside with shared-prefix attention; its own implementation is
    restored on exit (the full-sequence path and other users of the model see no change)."""
    _register()
    config = backbone.config
    before = config._attn_implementation_internal
    config._attn_implementation_internal = ATTENTION_NAME
    try:
        yield
    finally:
        config._attn_implementation_internal = before
