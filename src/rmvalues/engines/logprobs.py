"""Full-vocabulary next-token log-probabilities of a causal LM for each prompt (paper §4).

For every prompt: one forward pass, the last position's logits in fp32, ``log_softmax`` over the
tokenizer's vocabulary (the normaliser summed in float64). Logit rows beyond the tokenizer's vocabulary (embedding matrices padded to a
multiple of 64/128) are dropped before the softmax, so they take no probability mass.

Prompts are built per ``kind``: ``instruct`` renders ``[user: prompt]`` with the chat template and the
generation prompt (Llama-3's "Today Date" pinned and recorded); ``pretrained`` is BOS + the raw
prompt (the paper) or a text template such as FAccT's ``"User: {prompt}\\nAssistant:"``.

Prompts of equal token length are batched together (bucketing, no padding); tests hold the batched
fast path equal to :func:`reference_logprobs`, a manual softmax of one unbatched forward.

The result is a :class:`~rmvalues.store.logprob_runs.LogprobRun` (one model's prompts × vocabulary
matrix), stored with :func:`~rmvalues.store.logprob_runs.save_run`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from rmvalues.errors import InputError, ScoreError, TemplateError
from rmvalues.finite import finite_rows
from rmvalues.store.logprob_runs import LogprobRun, save_run

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Kind = Literal["pretrained", "instruct"]
KINDS: tuple[str, ...] = ("pretrained", "instruct")
#: The FAccT 2025 paper's template for pretrained models.
FACCT_TEMPLATE = "User: {prompt}\nAssistant:"


def instruct_template(tokenizer: PreTrainedTokenizerBase, chat_template: str | Path | None, *,
                      model: str = "the model") -> str:
    """The chat template that renders ``--kind instruct`` prompts: the override, else the tokenizer's
    own (its default one when named); :class:`TemplateError` asking for one when there is none."""
    if chat_template is not None:
        from rmvalues.models.tokenizers import read_chat_template

        source = read_chat_template(chat_template)
    else:
        source = getattr(tokenizer, "chat_template", None)
    if isinstance(source, dict):
        source = source.get("default")
    if not source:
        raise TemplateError(
            f"{model} has no chat template, so it cannot be run as --kind instruct; pass "
            "--chat-template (a .jinja file or the template text) naming the template it was "
            "tuned with, or use --kind pretrained."
        )
    return source


def prompt_input_ids(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    kind: Kind,
    template: str | None = None,
    chat_template: str | Path | None = None,
    date_string: str | None = None,
    add_bos: bool = True,
    model: str = "the model",
) -> list[list[int]]:
    """Token ids fed to the model for each prompt.

    ``instruct``: the chat template with the generation prompt (the template's own special tokens,
    nothing added). ``pretrained``: ``template.format(prompt=...)`` (default: the raw prompt), with the
    tokenizer's BOS in front when it has one and ``add_bos``.
    """
    if kind not in KINDS:
        raise InputError(f"unknown kind {kind!r}; choose 'pretrained' or 'instruct'.")
    out: list[list[int]] = []
    if kind == "instruct":
        from rmvalues.models.chat import DEFAULT_DATE_STRING

        source = instruct_template(tokenizer, chat_template, model=model)
        for text in prompts:
            try:
                rendered = tokenizer.apply_chat_template(
                    [{"role": "user", "content": text}], chat_template=source, tokenize=False,
                    add_generation_prompt=True, date_string=date_string or DEFAULT_DATE_STRING)
            except Exception as exc:
                raise TemplateError(f"the chat template of {model} failed to render a user turn: "
                                    f"{exc}; pass a working --chat-template.") from exc
            out.append(list(tokenizer(rendered, add_special_tokens=False)["input_ids"]))
        return out
    if template is not None and "{prompt}" not in template:
        raise InputError(f"pretrained template {template!r} lacks the '{{prompt}}' placeholder")
    bos = getattr(tokenizer, "bos_token_id", None)
    for text in prompts:
        body = template.format(prompt=text) if template is not None else text
        ids = list(tokenizer(body, add_special_tokens=False)["input_ids"])
        if add_bos and bos is not None:
            ids = [bos, *ids]
        out.append(ids)
    return out


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
) -> np.ndarray:
    """Log-probs (n_prompts × vocab_size, fp32) of the next token after each id sequence.

    Prompts are batched by bucketing: only sequences of the same length share a forward pass, so
    there is no padding at all. (Left padding with position ids is equal in exact arithmetic, but on
    CPU it changes fp32 reduction order and moved SmolLM2 log-probs by ~3e-5; same-length buckets
    reproduced the unbatched forward exactly in our CPU tests.) Logits of all positions are computed — asking for the last one
    only switches the output projection to a matrix-vector kernel with its own rounding — and rows
    ≥ ``vocab_size`` (padded embedding rows) are dropped before the ``log_softmax``.
    """
    import torch

    _check_vocab(model, vocab_size)
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    if any(len(s) == 0 for s in input_ids):
        raise InputError("an empty prompt tokenised to no ids; give every prompt some text")
    from rmvalues.engines.score import length_buckets

    # The input embedding's device: with a device_map the layers are spread over several GPUs.
    device = model.get_input_embeddings().weight.device
    out = np.empty((len(input_ids), vocab_size), np.float32)
    with torch.inference_mode():
        for members in length_buckets(input_ids).values():
            for start in range(0, len(members), batch_size):
                chunk = members[start:start + batch_size]
                ids = torch.tensor([list(input_ids[i]) for i in chunk], dtype=torch.long,
                                   device=device)
                logits = model(input_ids=ids, use_cache=False).logits[:, -1, :vocab_size].float()
                # fp32 logits, normalised in float64: an fp32 logsumexp over 10^5 terms is off by
                # ~1e-5, which would shift every log-prob of the prompt by that much.
                out[chunk] = torch.log_softmax(logits.double(), dim=-1).float().cpu().numpy()
    return out


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
