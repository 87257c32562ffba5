"""Full-vocabulary next-token log-probabilities of a causal LM for each prompt (paper §4).

For every prompt: one forward pass, the last position's logits in fp32, ``log_softmax`` over the
tokenizer's vocabulary (the normaliser summed in float64). Logit rows beyond the tokenizer's
vocabulary (embedding matrices padded to a multiple of 64/128) are dropped before the softmax, so they take no probability mass.

Prompts are built per ``kind``: ``instruct`` renders ``[user: prompt]`` with the chat template and the
generation prompt (Llama-3's "Today Date" pinned and recorded); ``pretrained`` is BOS + the raw
prompt (the paper) or a text template such as FAccT's ``"User: {prompt}\\nAssistant:"``.

Prompts are right-padded into token-budget batches (the 54 prompts of a run in one or a few
forwards); tests hold the batched fast path equal to :func:`reference_logprobs`, a manual softmax of
one unbatched forward.

The result is a :class:`~rmvalues.store.logprob_runs.LogprobRun` (one model's prompts × vocabulary
matrix), stored with :func:`~rmvalues.store.logprob_runs.save_run`.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rmvalues.errors import InputError, ScoreError
from rmvalues.finite import finite_rows
from rmvalues.models.chat import Kind, instruct_template, prompt_input_ids
from rmvalues.store.logprob_runs import LogprobRun, save_run

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# --- the numeric kernel -----------------------------------------------------------------------------


def _check_vocab(model: PreTrainedModel, vocab_size: int) -> int:
    rows = int(model.get_output_embeddings().weight.shape[0])
    if vocab_size > rows:
        raise InputError(
            f"tokenizer has {vocab_size} ids but the model only {rows} logit rows; pass the "
            "tokenizer that belongs to this model."
        )
    return rows


def next_token_logprobs(
    model: PreTrainedModel,
    input_ids: Sequence[Sequence[int]],
    *,
    vocab_size: int,
    batch_size: int = 8,
    max_batch_tokens: int | None = None,
) -> np.ndarray:
    """Log-probs (n_prompts × vocab_size, fp32) of the next token after each id sequence.

    Prompts of different lengths share a forward: longest first, right-padded into batches of at
    most ``batch_size`` rows and ``max_batch_tokens`` padded tokens (default
    :data:`~rmvalues.engines.score.MAX_BATCH_TOKENS`), the batch halved on accelerator OOM by
    :class:`~rmvalues.engines.score.BatchRunner`. Right padding (not left) keeps every real token
    at its own position, after the same keys as in the unpadded forward (the pads come later, so
    the causal mask hides them), and leaves no query row fully masked. Only the last real
    position's logits are computed (``logits_to_keep`` per row, so no (B, L, V) logits), and rows
    ≥ ``vocab_size`` (padded embedding rows) are dropped before the ``log_softmax``. Equal to
    :func:`reference_logprobs` up to kernel rounding: ≤ 1e-5 on tiny models, ≤ 5e-5 on fp32
    SmolLM2 (logits ~33; a matrix-vector output projection rounds them differently).
    """
    from rmvalues.engines.score import MAX_BATCH_TOKENS, BatchRunner

    _check_vocab(model, vocab_size)
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    if any(len(s) == 0 for s in input_ids):
        raise InputError("an empty prompt tokenised to no ids; give every prompt some text")
    if not input_ids:
        return np.empty((0, vocab_size), np.float32)
    order = sorted(range(len(input_ids)), key=lambda i: -len(input_ids[i]))
    runner = BatchRunner(batch_size, max_batch_tokens or MAX_BATCH_TOKENS)
    rows = runner.run(order, lambda chunk: _padded_batch_logprobs(
        model, [input_ids[i] for i in chunk], vocab_size), row_tokens=len(input_ids[order[0]]))
    out = np.empty_like(rows)
    out[order] = rows
    return out


def _padded_batch_logprobs(model: PreTrainedModel, batch: Sequence[Sequence[int]],
                           vocab_size: int) -> np.ndarray:
    """One right-padded forward of ``batch``: log-probs after each sequence's last real token."""
    import torch

    # The input embedding's device: with a device_map the layers are spread over several GPUs.
    device = model.get_input_embeddings().weight.device
    lengths = [len(s) for s in batch]
    width = max(lengths)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, seq in enumerate(batch):
        ids[row, :len(seq)] = torch.tensor(list(seq))
        mask[row, :len(seq)] = 1
    # logits_to_keep slices the final hidden states, which sit with the output projection.
    last = torch.tensor(lengths, device=model.get_output_embeddings().weight.device)[:, None] - 1
    inputs = {"input_ids": ids.to(device), "use_cache": False}
    if min(lengths) < width:  # without padding the forward is the unbatched one, mask-free
        inputs["attention_mask"] = mask.to(device)
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        inputs["logits_to_keep"] = last
    with torch.inference_mode():
        logits = model(**inputs).logits
        if logits.shape[1] != 1:  # a forward without (per-row) logits_to_keep: all positions
            logits = torch.take_along_dim(logits, last[..., None].to(logits.device), dim=1)
        # fp32 logits, normalised in float64: an fp32 logsumexp over 10^5 terms is off by
        # ~1e-5, which would shift every log-prob of the prompt by that much.
        return log_softmax64(logits[:, 0, :vocab_size])


def log_softmax64(logits: Any) -> np.ndarray:
    """fp32 log-probs of fp32-rounded ``logits`` (rows), normalised in float64."""
    import torch

    return torch.log_softmax(logits.float().double(), dim=-1).float().cpu().numpy()


def reference_logprobs(model: PreTrainedModel, input_ids: Sequence[int], *, vocab_size: int
                       ) -> np.ndarray:
    """Obviously-correct path: one unbatched full forward, manual softmax in float64."""
    import torch

    _check_vocab(model, vocab_size)
    device = next(model.parameters()).device
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([list(input_ids)], device=device)).logits
    z = logits[0, -1, :vocab_size].double().cpu().numpy()
    m = z.max()
    return (z - m - np.log(np.exp(z - m).sum())).astype(np.float32)


# --- the pipeline step ------------------------------------------------------------------------------


def compute_logprobs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Any,
    *,
    kind: Kind,
    model_name: str,
    template: str | None = None,
    chat_template: str | Path | None = None,
    date_string: str | None = None,
    batch_size: int = 8,
    tokens: Sequence[str] | None = None,
    drop_nonfinite: bool = False,
) -> LogprobRun:
    """Full-vocabulary next-token log-probs of ``model`` for every prompt, as a :class:`LogprobRun`.

    A prompt whose log-probs hold NaN/inf is refused, or with ``drop_nonfinite`` left out (listed
    in the run's ``meta``)."""
    from rmvalues.lexicons import paper_normalize
    from rmvalues.models.chat import DEFAULT_DATE_STRING, template_hash
    from rmvalues.models.tokenizers import decoded_vocabulary
    from rmvalues.prompts import prompt_pairs

    pairs = prompt_pairs(prompts)[1]
    ids = prompt_input_ids(tokenizer, [t for _, t in pairs], kind=kind, template=template,
                           chat_template=chat_template, date_string=date_string,
                           model=repr(model_name))
    tokens = list(tokens) if tokens is not None else decoded_vocabulary(tokenizer)
    vocab_size = len(tokens)
    rows = _check_vocab(model, vocab_size)
    matrix = next_token_logprobs(model, ids, vocab_size=vocab_size, batch_size=batch_size)
    keep = finite_rows(matrix, what=f"log-probs of {model_name}", label=lambda i: repr(pairs[i][0]),
                       drop=drop_nonfinite, fix="The model's logits are NaN/inf (broken weights, or "
                       "an overflow in this dtype); check the checkpoint or try --dtype float32.")
    dropped = [pid for (pid, _), ok in zip(pairs, keep, strict=True) if not ok]
    if len(dropped) == len(pairs):
        raise ScoreError(f"log-probs of {model_name} are non-finite for every prompt; nothing "
                         "is left to store. Check the checkpoint or try --dtype float32.")
    if dropped:
        pairs, ids = ([x for x, ok in zip(seq, keep, strict=True) if ok] for seq in (pairs, ids))
        matrix = matrix[keep]
    meta: dict[str, Any] = {
        "nonfinite_prompts_dropped": dropped,
        "model_kind": kind,
        "logits_rows": rows,
        "padded_rows_excluded": rows - vocab_size,
        "batch_size": batch_size,
        "input_lengths": [len(s) for s in ids],
    }
    if kind == "instruct":
        source = instruct_template(tokenizer, chat_template, model=repr(model_name))
        meta["template_hash"] = template_hash(source)
        meta["date_string"] = (date_string or DEFAULT_DATE_STRING) if "date_string" in source \
            else None
    else:
        meta["pretrained_template"] = template
        meta["bos_token_id"] = getattr(tokenizer, "bos_token_id", None)
    return LogprobRun(model=model_name, prompt_ids=[p for p, _ in pairs],
                      token_ids=np.arange(vocab_size), tokens=tokens,
                      normalized=[paper_normalize(t) for t in tokens], logprobs=matrix, meta=meta)


def run_logprobs(
    model: str | Path,
    *,
    kind: Kind,
    prompts: Any = "paper-54",
    out_dir: str | Path | None = None,
    **options: Any,
) -> LogprobRun:
    """Load a model, compute its log-prob run and (with ``out_dir``) store it with its manifest.

    ``options``: fields of :class:`~rmvalues.runs.options.LogprobOptions` (dtype, device,
    revision, gguf_file, template, chat_template, date_string, batch_size, name, ...).
    ``device_map="auto"`` shards a model too large for one GPU over the node's GPUs.
    """
    from rmvalues.models.lm import load_causal_lm
    from rmvalues.models.tokenizers import decoded_vocabulary, vocabulary_table
    from rmvalues.runs.options import LogprobOptions

    o = LogprobOptions(**LogprobOptions.pick(options))
    lm = load_causal_lm(model, **o.load_options(), require_chat_template=kind == "instruct")
    prompt_set = prompts if isinstance(prompts, str) else getattr(prompts, "name", None)
    tokens = decoded_vocabulary(lm.tokenizer)
    run = compute_logprobs(lm.model, lm.tokenizer, prompts, kind=kind, model_name=lm.name,
                           template=o.template, date_string=o.date_string,
                           batch_size=o.batch_size, tokens=tokens,
                           drop_nonfinite=o.drop_nonfinite)
    run.meta.update({"load": lm.info, "prompt_set": prompt_set})
    if out_dir is not None:
        save_run(run, out_dir, vocabulary=vocabulary_table(lm.tokenizer, tokens))
    return run
