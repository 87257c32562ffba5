"""The fast path: prefix-cached batched scoring of many responses to one prompt.

Every candidate conversation of a prompt shares its prefix (system header, user turn, assistant
header). The prefix is run once; its KV cache is then reused for every batch (never mutated: see
the attention below). Only the response + suffix tokens run per candidate, with explicit
``position_ids`` (the prefix length onward) and attention over prefix + continuation. Continuations are
bucketed by length, so no batch holds padding and the last position is every row's final token.
The head reads that final hidden state in float32 — transformers' pad-token pooling is never used,
so the pad/eos token is a valid candidate.

Attention over the cached prefix (``attention=``): ``"shared"`` (Llama, Gemma-2, Qwen2) attends every
row to ONE copy of the prefix K/V (:mod:`rmvalues.engines.shared_prefix`); ``"expand"`` is the
reference: the cache expanded over the batch as zero-copy views, onto which transformers' attention
concatenates each row's new keys (a copy of the prefix per row and layer). Shared is the
float32 default: the reference's scores up to float32 rounding (tests/test_shared_attention.py). In
bf16/fp16 the expanded cache stays the default because it runs the reference forward's own kernel
(CPU: scores within 1e-4 x their spread of one full forward); shared there is opt-in: bit-identical
under eager attention in bf16 (Gemma-2), but under sdpa some outputs round the other way (tiny test
RMs on CPU: up to 0.14 x the score spread in bf16, 0.03 x in fp16; see the module).

Batches are sized by tokens: a batch holds at most ``max_batch_tokens`` tokens (rows x tokens each
row runs: the continuation on the shared path, where the prefix is held once; prefix + continuation
on the expand and full paths) and, if ``batch_size`` is given, at most that many rows. The default
budget of the shared path is :data:`SHARED_BATCH_TOKENS` (by device: measured on CPU by
benchmarks/ets_throughput.py --sweep; on GPUs a budget that fills the matmuls of an 8B model while
its activations stay a few GB); the other paths keep :data:`MAX_BATCH_TOKENS` and 64 rows.

Heads that cannot run on a cached prefix (``supports_prefix_cache = False``) and ``mode="full"`` use
the full-sequence path: whole conversations, bucketed by length, batched without padding.
"""

from __future__ import annotations

import copy
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from rmvalues.errors import InputError, ModelError, ScoreError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from rmvalues.engines.shared_prefix import SharedPrefix
    from rmvalues.models.chat import ChatSplit
    from rmvalues.models.loading import RewardModel

log = logging.getLogger("rmvalues.engines")

EngineMode = Literal["auto", "prefix", "full"]
Attention = Literal["shared", "expand"]
#: The prefix path's attentions (:func:`resolve_attention`), as a tuple for checks.
ATTENTIONS: tuple[str, ...] = get_args(Attention)
ProgressCallback = Callable[[int], None]


def prefix_cacheable(rm: RewardModel) -> bool:
    """Whether the head can score from a cached prefix (its state depends only on the prefix)."""
    return bool(rm.head.supports_prefix_cache)


def resolve_mode(rm: RewardModel, mode: EngineMode) -> Literal["prefix", "full"]:
    """The path to run: prefix caching unless asked otherwise or the head cannot use it (logged)."""
    if mode not in ("auto", "prefix", "full"):
        raise InputError(f"unknown engine mode {mode!r}; use auto, prefix or full")
    if mode == "full":
        return "full"
    if not prefix_cacheable(rm):
        if mode == "prefix":
            raise ModelError(f"the {rm.head.head_type} head cannot run on a cached prefix")
        log.warning("%s: the %s head cannot run on a cached prefix; using the full-sequence path",
                    rm.name, rm.head.head_type)
        return "full"
    return "prefix"


def resolve_attention(rm: RewardModel, attention: Attention | None) -> Attention:
    """The prefix path's attention. ``None``: shared-prefix in float32 (the reference's scores up
    to float32 rounding), else the expanded cache, which runs the reference forward's own kernel
    (in bf16/fp16 the split softmax rounds differently under sdpa/flash: see
    :mod:`rmvalues.engines.shared_prefix`). Shared is refused (logged, expanded instead) for
    architectures it does not support."""
    import torch

    from rmvalues.engines.shared_prefix import supports_shared_attention

    if attention is not None and attention not in ATTENTIONS:
        raise InputError(f"unknown attention {attention!r}; use {' or '.join(ATTENTIONS)}")
    if attention is None:
        attention = "shared" if rm.dtype == torch.float32 else "expand"
    config = getattr(getattr(rm, "backbone", None), "config", None)
    if attention == "shared" and not supports_shared_attention(config):
        log.info("%s: shared-prefix attention does not support model type %r; expanding the "
                 "prefix cache per row", rm.name, getattr(config, "model_type", None))
        return "expand"
    return attention


def _expanded_cache(cache, batch: int):
    """A per-batch copy of the prefix cache whose tensors are zero-copy views expanded to ``batch``.

    Dynamic layers rebind their tensors (``torch.cat``) rather than write into them, so shallow
    layer copies holding expanded views are safe; other layer types get a deep copy.
    """
    from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

    out = copy.copy(cache)
    layers = []
    for layer in cache.layers:
        if type(layer) in (DynamicLayer, DynamicSlidingWindowLayer):
            clone = copy.copy(layer)
            if layer.is_initialized and layer.keys.numel():
                clone.keys = layer.keys.expand(batch, *layer.keys.shape[1:])
                clone.values = layer.values.expand(batch, *layer.values.shape[1:])
        else:
            clone = copy.deepcopy(layer)
            clone.batch_repeat_interleave(batch)
        layers.append(clone)
    out.layers = layers
    return out


@dataclass
class PrefixState:
    """A prompt's prefilled prefix: its KV cache and (for gating heads) the prompt hidden state."""

    length: int
    cache: object
    prompt_hidden: torch.Tensor | None
    #: The cache as shared-prefix attention reads it (built on first use; False: not shareable).
    shared: SharedPrefix | bool | None = None


def _head_scores(rm: RewardModel, last_hidden: torch.Tensor,
                 prompt_hidden: torch.Tensor | None) -> torch.Tensor:
    last = last_hidden.float()
    if rm.head.needs_prompt_state:
        if prompt_hidden is None:
            raise ModelError(f"the {rm.head.head_type} head needs a prompt state")
        return rm.head(last, prompt_hidden.float().expand(last.shape[0], -1))
    return rm.head(last)


#: Most tokens (rows x sequence length, cached prefix included) one forward batch may hold on the
#: expand and full paths, so a bucket of long candidates runs in smaller batches instead of
#: exhausting memory.
MAX_BATCH_TOKENS = 32_768
#: Rows per batch on the expand and full paths when no batch size is given.
DEFAULT_BATCH_SIZE = 64
#: Default token budget of the shared-prefix path (continuation tokens per forward; the prefix is
#: held once), by device type. CPU: where benchmarks/ets_throughput.py --sweep levels off (random
#: Llama, hidden 512, 2 cores shared with other jobs, 1 thread, candidates/s at 64/128/256/512/
#: 1024/2048 tokens: 166/203/227/234/246/248); larger budgets only add memory. GPUs: 16,384 tokens
#: (8,192 two-token candidates) fill an H100's matmuls for 8B models while the activations stay a
#: few GB (Llama-3-8B: ~0.5 GB per 14,336-wide MLP activation in bf16); not yet measured.
SHARED_BATCH_TOKENS = {"cpu": 1_024, "default": 16_384}


def shared_batch_tokens(device) -> int:
    """The shared path's default token budget on ``device``."""
    kind = getattr(device, "type", str(device).split(":")[0])
    return SHARED_BATCH_TOKENS.get(kind, SHARED_BATCH_TOKENS["default"])


class BatchRunner:
    """Runs candidate batches, halving the batch on accelerator OOM and carrying on.

    A batch holds at most ``max_tokens`` tokens and, unless ``batch_size`` is ``None``, at most
    ``batch_size`` rows. After an OOM ``batch_size`` is half the rows that failed, and stays so.
    """

    def __init__(self, batch_size: int | None, max_tokens: int = MAX_BATCH_TOKENS) -> None:
        if batch_size is not None and batch_size < 1:
            raise ScoreError(f"batch size must be at least 1 (got {batch_size})")
        if max_tokens < 1:
            raise ScoreError(f"the batch token budget must be at least 1 (got {max_tokens})")
        self.batch_size = batch_size
        self.max_tokens = max_tokens

    def rows_per_batch(self, row_tokens: int) -> int:
        """Rows of ``row_tokens`` tokens each that fit one batch (at least one)."""
        rows = self.max_tokens // max(row_tokens, 1)
        if self.batch_size is not None:
            rows = min(rows, self.batch_size)
        return max(1, rows)

    def run(self, items: Sequence, fn: Callable, on_batch: ProgressCallback | None = None, *,
            row_tokens: int = 1):
        """``fn`` over consecutive chunks of ``items`` (a sequence or a tensor of rows); its
        results (numpy arrays or tensors, kept where ``fn`` left them) concatenated."""
        import torch

        out: list = []
        start = 0
        while start < len(items):
            chunk = items[start:start + self.rows_per_batch(row_tokens)]
            try:
                out.append(fn(chunk))
            except torch.OutOfMemoryError:
                if len(chunk) == 1:
                    raise ScoreError("out of accelerator memory at batch size 1; use a smaller "
                                     "dtype or a larger device") from None
                self.batch_size = len(chunk) // 2
                log.warning("out of memory; halving the batch size to %d", self.batch_size)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            start += len(chunk)
            if on_batch is not None:
                on_batch(len(chunk))
        if not out:
            return np.zeros(0, dtype=np.float32)
        return torch.cat(out) if isinstance(out[0], torch.Tensor) else np.concatenate(out)


def length_buckets(sequences: Sequence[Sequence[int]]) -> dict[int, list[int]]:
    """Indices of the sequences by length, in first-seen order: batches without padding.

    Shared with :func:`rmvalues.engines.logprobs.next_token_logprobs`, which batches the same way.
    """
    buckets: dict[int, list[int]] = defaultdict(list)
    for i, seq in enumerate(sequences):
        buckets[len(seq)].append(i)
    return buckets


class Engine:
    """Scores one model's candidate conversations, prompt by prompt.

    ``mode``: ``"auto"`` (prefix caching unless the head cannot use it), ``"prefix"`` or ``"full"``.
    ``attention``: the prefix path's attention, ``"shared"`` (one prefix K/V for the batch, where
    the architecture supports it) or ``"expand"`` (the reference); ``None``: shared where it
    rounds like the reference (:func:`resolve_attention`). ``batch_size``: most rows per
    forward (``None``: as many as ``max_batch_tokens`` allows on the shared path, 64 elsewhere).
    ``max_batch_tokens``: most tokens per forward (``None``: :func:`shared_batch_tokens` on the
    shared path, :data:`MAX_BATCH_TOKENS` elsewhere). ``row_cap``: the rows per forward off the
    shared path when ``batch_size`` is not given (a model registry's per-model default, sized for
    the expanded cache; the shared path batches by tokens alone). The batch size is shared across prompts, so
    a size halved after OOM stays halved.
    """

    def __init__(self, rm: RewardModel, *, batch_size: int | None = None,
                 mode: EngineMode = "auto", attention: Attention | None = None,
                 max_batch_tokens: int | None = None, row_cap: int | None = None,
                 pool: Callable[[Sequence[int]], int] | None = None) -> None:
        self.rm = rm
        self.mode = resolve_mode(rm, mode)
        self.attention = resolve_attention(rm, attention)
        shared = self.mode == "prefix" and self.attention == "shared"
        if shared:
            budget = max_batch_tokens or shared_batch_tokens(rm.device)
        else:
            batch_size = batch_size or row_cap or DEFAULT_BATCH_SIZE
            budget = max_batch_tokens or MAX_BATCH_TOKENS
        self.runner = BatchRunner(batch_size, budget)
        #: Full path only: the position the head reads in each conversation (default: the last).
        self.pool = pool

    # -- prefix-cached path --------------------------------------------------------------------

    def prefill(self, prefix_ids: Sequence[int]) -> PrefixState:
        import torch
        from transformers import DynamicCache

        rm = self.rm
        # Full (not sliding-window) layers: a sliding layer would keep only the last window of the
        # prefix, so the continuation's attention would reduce over fewer keys than one full
        # forward does. Equal in exact arithmetic, but in bf16/fp16 the reordered sums round
        # differently (a tiny Gemma-2 with a window shorter than its prompt: max |Δ| 0.049 in
        # bf16). With full layers the window is applied by the mask, as in the full forward (on the
        # shared path by shared_prefix_attention's mask, over the same keys).
        cache = DynamicCache()
        ids = torch.tensor([list(prefix_ids)], device=rm.device)
        with torch.inference_mode():
            out = rm.backbone(input_ids=ids, attention_mask=torch.ones_like(ids), cache=cache,
                              use_cache=True)
        prompt_hidden = None
        if rm.head.needs_prompt_state:
            position = rm.head.prompt_position(list(prefix_ids))
            prompt_hidden = out.last_hidden_state[:, position]
        return PrefixState(length=len(prefix_ids), cache=cache, prompt_hidden=prompt_hidden)

    def _shared(self, state: PrefixState) -> SharedPrefix | None:
        """``state``'s prefix for shared attention; ``None`` (expand instead) when its cache does
        not hold the whole prefix in every layer (a sliding-window cache not built by prefill)."""
        from rmvalues.engines.shared_prefix import SharedPrefix

        if state.shared is None:
            state.shared = SharedPrefix.from_cache(state.cache, state.length,
                                                   self.rm.attn_implementation)
            if state.shared is None:
                log.info("%s: the prefix cache does not hold the whole prefix in every layer; "
                         "expanding it per row", self.rm.name)
                state.shared = False
        return state.shared or None

    def _continue_batch(self, state: PrefixState, ids: torch.Tensor,
                        positions: torch.Tensor) -> torch.Tensor:
        """float32 scores (on the model's device) of one batch of equal-length continuations
        (``ids``: rows x length; ``positions``: 1 x length, the prefix length onward)."""
        import torch

        from rmvalues.engines.shared_prefix import shared_attention

        rm = self.rm
        size, length = ids.shape
        with torch.inference_mode():
            # reads the model's own attention implementation, so before the switch
            shared = self._shared(state) if self.attention == "shared" else None
            if shared is not None:
                with shared_attention(rm.backbone):
                    out = rm.backbone(input_ids=ids, position_ids=positions.expand(size, -1),
                                      use_cache=False, shared_prefix=shared)
            else:
                mask = ids.new_ones(1, 1).expand(size, state.length + length)
                out = rm.backbone(input_ids=ids, attention_mask=mask,
                                  position_ids=positions.expand(size, -1),
                                  cache=_expanded_cache(state.cache, size), use_cache=True)
            return _head_scores(rm, out.last_hidden_state[:, -1], state.prompt_hidden).float()

    def score_continuations(self, prefix_ids: Sequence[int],
                            continuations: Sequence[Sequence[int]],
                            on_batch: ProgressCallback | None = None) -> np.ndarray:
        """Scores of ``prefix_ids + c`` for each continuation ``c`` (response + suffix ids)."""
        return self.score_state(self.prefill(prefix_ids), continuations, on_batch)

    def extend(self, state: PrefixState, ids: Sequence[int]) -> PrefixState:
        """The state of ``state``'s prefix followed by ``ids``, leaving ``state`` as it was.

        Multi-token search grows a response this way: every candidate next token of a partial
        response then shares one cache of prefix + response so far. One row has nothing to share,
        so this runs the expanded-cache (reference) attention whatever ``attention`` says.
        """
        import torch

        rm = self.rm
        tokens = torch.tensor([list(ids)], device=rm.device)
        total = state.length + tokens.shape[1]
        cache = _expanded_cache(state.cache, 1)  # views: the parent's tensors are never written
        with torch.inference_mode():
            rm.backbone(input_ids=tokens, attention_mask=torch.ones(1, total, dtype=torch.long,
                                                                     device=rm.device),
                        position_ids=torch.arange(state.length, total, device=rm.device)[None],
                        cache=cache, use_cache=True)
        return PrefixState(length=total, cache=cache, prompt_hidden=state.prompt_hidden)

    def score_state(self, state: PrefixState, continuations: Sequence[Sequence[int]],
                    on_batch: ProgressCallback | None = None) -> np.ndarray:
        """Scores of ``state``'s prefix followed by each continuation, on its cache.

        Each length bucket becomes one id tensor and one position row up front; batches are slices
        of them, and the scores stay on the device until the last bucket (one copy to the host).
        """
        import torch

        device = self.rm.device
        order, parts = [], []
        # the shared path holds the prefix once; the expanded cache holds it per row
        shared = self.attention == "shared" and self._shared(state) is not None
        prefix_rows = 0 if shared else state.length
        for indices in length_buckets(continuations).values():
            ids = torch.tensor([continuations[i] for i in indices], device=device)
            length = ids.shape[1]
            positions = torch.arange(state.length, state.length + length, device=device)[None]
            parts.append(self.runner.run(
                ids, lambda b, positions=positions: self._continue_batch(state, b, positions),
                on_batch, row_tokens=prefix_rows + length))
            order.extend(indices)
        result = np.empty(len(continuations), dtype=np.float32)
        if parts:
            result[order] = torch.cat(parts).cpu().numpy()
        return result

    # -- full-sequence path ---------------------------------------------------------------------

    def _full_batch(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        import torch

        from rmvalues.models.heads import score_full_sequences

        ids = torch.tensor([list(s) for s in batch], device=self.rm.device)
        with torch.inference_mode():
            hidden = self.rm.backbone(input_ids=ids, attention_mask=torch.ones_like(ids),
                                      use_cache=False).last_hidden_state
            positions = None if self.pool is None else [self.pool(list(s)) for s in batch]
            scores = score_full_sequences(self.rm.head, hidden.float(), batch, positions)
        return scores.float().cpu().numpy()

    def score_conversations(self, conversations: Sequence[Sequence[int]],
                            on_batch: ProgressCallback | None = None) -> np.ndarray:
        """Scores of whole conversations, batched by length (no padding, no cache)."""
        conversations = self._fit(conversations, 0, 0, lambda i: f"conversation #{i}", False)
        result = np.empty(len(conversations), dtype=np.float32)
        for indices in length_buckets(conversations).values():
            rows = [conversations[i] for i in indices]
            result[indices] = self.runner.run(rows, self._full_batch, on_batch,
                                              row_tokens=len(rows[0]))
        return result

    # -- one prompt ------------------------------------------------------------------------------

    #: Cut candidates longer than the model's context instead of refusing them (set by the caller).
    truncate: bool = False
    #: How many candidates were cut so far.
    truncated: int = 0

    def _fit(self, sequences: Sequence[Sequence[int]], fixed: int, keep_tail: int,
             label: Callable[[int], str], truncate: bool) -> list[list[int]]:
        """``sequences`` checked against the model's ``max_position_embeddings`` (see
        :func:`rmvalues.models.validate.fit_context`)."""
        from rmvalues.models.validate import context_limit, fit_context

        limit = context_limit(getattr(getattr(self.rm, "backbone", None), "config", None))
        seqs, cut = fit_context(sequences, limit=limit, fixed=fixed, keep_tail=keep_tail,
                                truncate=truncate, label=label, model=self.rm.name)
        self.truncated += cut
        return seqs

    def score_prompt(self, split: ChatSplit, candidates,
                     on_batch: ProgressCallback | None = None) -> np.ndarray:
        """float32 scores of every candidate of one prompt (too long for the model: refused, or
        cut with ``truncate``)."""
        def label(i: int) -> str:
            text = candidates.texts[i]
            return f"#{i} {text[:40]!r}{'...' if len(text) > 40 else ''}"

        tail = len(split.suffix_ids)
        if self.mode == "prefix":
            continuations = self._fit(continuation_ids(self.rm, split, candidates),
                                      len(split.prefix_ids), tail, label, self.truncate)
            return self.score_continuations(split.prefix_ids, continuations, on_batch)
        conversations = self._fit(conversation_ids(self.rm, split, candidates), 0, tail, label,
                                  self.truncate)
        return self.score_conversations(conversations, on_batch)


def continuation_ids(rm: RewardModel, split: ChatSplit, candidates) -> list[list[int]]:
    """Response + suffix ids of every candidate: the token itself, or the text in context."""
    suffix = list(split.suffix_ids)
    if candidates.kind == "token":
        return [[t, *suffix] for t in candidates.token_ids]
    return [[*split.response_ids(rm.tokenizer, text), *suffix] for text in candidates.texts]


def conversation_ids(rm: RewardModel, split: ChatSplit, candidates) -> list[list[int]]:
    """Full ids (prefix + response + suffix) of every candidate's conversation."""
    prefix = list(split.prefix_ids)
    return [prefix + c for c in continuation_ids(rm, split, candidates)]
