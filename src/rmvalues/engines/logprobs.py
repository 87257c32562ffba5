"""Full-vocabulary next-token log-probabilities of a causal LM for each prompt (paper §4).

For every prompt: one forward pass, the last position's logits in fp32, ``log_softmax`` over the
tokenizer's vocabulary (the normaliser summed in float64). Logit rows beyond the tokenizer's vocabulary (embedding matrices padded to a
multiple of 64/128) are dropped before the softmax, so they take no probability mass.

Prompts are built per ``kind``: ``instruct`` renders ``[user: prompt]`` with the chat template and the
generation prompt (Llama-3's "Today Date" pinned and recorded); ``pretrained`` is BOS + the raw
prompt (the paper) or a text template such as FAccT's ``"User: {prompt}\\nAssistant:"``.

Prompts of equal token length are batched together (bucketing, no padding); tests hold the batched
fast path equal to :func:`reference_logprobs`, a manual softmax of one unbatched forward.

A :class:`LogprobRun` holds one model's results as a (prompts × vocabulary) matrix; on disk it is the
long results table (:data:`~rmvalues.store.schema.SCORE_SCHEMA`, ``candidate_kind="token"``,
``score`` = log-prob) plus a manifest and the tokenizer's vocabulary table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from rmvalues.errors import InputError, ScoreError, StoreError, TemplateError
from rmvalues.finite import finite_rows

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Kind = Literal["pretrained", "instruct"]
KINDS: tuple[str, ...] = ("pretrained", "instruct")
#: The FAccT 2025 paper's template for pretrained models.
FACCT_TEMPLATE = "User: {prompt}\nAssistant:"
RESULTS_FILE = "logprobs.parquet"
VOCAB_FILE = "vocabulary.parquet"
MANIFEST_KIND = "lm-logprobs"


# --- the run container ------------------------------------------------------------------------------


@dataclass
class LogprobRun:
    """One model's next-token log-probs: ``logprobs[i, j]`` for prompt ``prompt_ids[i]`` and token
    ``token_ids[j]`` (decoded ``tokens[j]``, normalised ``normalized[j]``)."""

    model: str
    prompt_ids: list[str]
    token_ids: np.ndarray
    tokens: list[str]
    normalized: list[str]
    logprobs: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.token_ids = np.asarray(self.token_ids, dtype=np.int64)
        self.logprobs = np.asarray(self.logprobs, dtype=np.float32)
        n_p, n_v = len(self.prompt_ids), len(self.token_ids)
        if self.logprobs.shape != (n_p, n_v) or len(self.tokens) != n_v \
                or len(self.normalized) != n_v:
            raise StoreError(
                f"log-prob run {self.model!r} is inconsistent: matrix {self.logprobs.shape}, "
                f"{n_p} prompts, {n_v} token ids, {len(self.tokens)} tokens"
            )
        if len(set(self.prompt_ids)) != n_p:
            raise StoreError(f"log-prob run {self.model!r} repeats a prompt id")

    def matrix(self, prompt_ids: Iterable[str] | None = None) -> np.ndarray:
        """Rows of the log-prob matrix for ``prompt_ids`` (all, in order, by default)."""
        if prompt_ids is None:
            return self.logprobs
        index = {p: i for i, p in enumerate(self.prompt_ids)}
        wanted = list(prompt_ids)
        missing = [p for p in wanted if p not in index]
        if missing:
            raise InputError(
                f"run {self.model!r} has no log-probs for prompt(s) {missing[:5]}; it covers "
                f"{len(self.prompt_ids)} prompts ({', '.join(self.prompt_ids[:3])}, …). Re-run "
                "`rmvalues logprobs` with a prompt set containing them."
            )
        return self.logprobs[[index[p] for p in wanted]]

    def to_frame(self) -> pd.DataFrame:
        """The long results table (one row per prompt × token), ``SCORE_COLUMNS`` order."""
        return self.to_arrow().to_pandas()

    def to_arrow(self):
        """The long results table as a pyarrow Table with exactly ``SCORE_SCHEMA``.

        Strings are built once per vocabulary and repeated through dictionary indices, so a run of
        54 prompts × 262k tokens converts without millions of Python strings.
        """
        import pyarrow as pa

        from rmvalues.store.schema import SCORE_SCHEMA

        n_p, n_v = self.logprobs.shape

        def repeat(values: Sequence[str], index: np.ndarray):
            return pa.DictionaryArray.from_arrays(pa.array(index), pa.array(list(values),
                                                                           pa.string())) \
                .cast(pa.string())

        zeros = np.zeros(n_p * n_v, np.int32)
        by_token = np.tile(np.arange(n_v, dtype=np.int32), n_p)
        columns = [
            repeat([self.model], zeros),
            repeat(self.prompt_ids, np.repeat(np.arange(n_p, dtype=np.int32), n_v)),
            repeat(["token"], zeros),
            pa.array(np.tile(self.token_ids, n_p), pa.int64()),
            repeat(self.tokens, by_token),
            repeat(self.normalized, by_token),
            pa.array(self.logprobs.ravel(), pa.float32()),
        ]
        return pa.Table.from_arrays(columns, schema=SCORE_SCHEMA)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, model: str | None = None) -> LogprobRun:
        """Rebuild a run from a long log-prob table of one model (every prompt, same token ids)."""
        import pandas as pd

        needed = {"model", "prompt_id", "token_id", "candidate", "score"}
        missing = needed - set(frame.columns)
        if missing:
            raise StoreError(f"log-prob table lacks column(s) {sorted(missing)}")
        if "candidate_kind" in frame.columns and (frame["candidate_kind"] != "token").any():
            raise StoreError("log-prob table has non-token rows; implicit rewards need token runs")
        models = pd.unique(frame["model"])
        if model is None:
            if len(models) != 1:
                raise InputError(
                    f"log-prob table holds {len(models)} models ({', '.join(map(str, models[:4]))}); "
                    "pass model=... to pick one."
                )
            model = str(models[0])
        elif len(models) != 1 or models[0] != model:
            frame = frame[frame["model"] == model]
            if frame.empty:
                raise InputError(f"model {model!r} is not in the log-prob table")
        p_codes, prompts = pd.factorize(frame["prompt_id"], sort=False)
        tids = frame["token_id"].to_numpy(dtype=np.int64)
        vocab, t_codes = np.unique(tids, return_inverse=True)
        counts = np.bincount(p_codes, minlength=len(prompts))
        if (counts != len(vocab)).any() or len(frame) != len(prompts) * len(vocab):
            bad = [str(prompts[i]) for i in np.flatnonzero(counts != len(vocab))[:5]]
            raise StoreError(
                f"log-prob run {model!r} is incomplete: prompt(s) {bad} do not have one row for each "
                f"of the {len(vocab)} token ids; re-run `rmvalues logprobs` for this model."
            )
        matrix = np.full((len(prompts), len(vocab)), np.nan, np.float32)
        matrix[p_codes, t_codes] = frame["score"].to_numpy(dtype=np.float32)
        first = np.zeros(len(vocab), np.int64)
        first[t_codes[::-1]] = np.arange(len(frame))[::-1]
        cand = frame["candidate"].to_numpy(dtype=object)[first]
        if "normalized" in frame.columns:
            norm = frame["normalized"].to_numpy(dtype=object)[first]
        else:
            from rmvalues.lexicons import paper_normalize

            norm = [paper_normalize(c) for c in cand]
        return cls(model=model, prompt_ids=[str(p) for p in prompts], token_ids=vocab,
                   tokens=[str(c) for c in cand], normalized=[str(c) for c in norm],
                   logprobs=matrix)


def save_run(run: LogprobRun, out_dir: str | Path, *, vocabulary: pd.DataFrame | None = None,
             **manifest_fields: Any) -> Path:
    """Write ``out_dir/logprobs.parquet`` (+ manifest) and ``out_dir/vocabulary.parquet``."""
    import pyarrow.parquet as pq

    from rmvalues.io import staged_folder
    from rmvalues.store.manifest import build_manifest, manifest_path, write_manifest

    fields = {"model": run.model, "prompt_ids": run.prompt_ids, "n_tokens": len(run.token_ids),
              **run.meta, **manifest_fields}
    with staged_folder(out_dir, MANIFEST_KIND) as stage:
        if vocabulary is not None:
            vocabulary.to_parquet(stage / VOCAB_FILE, index=False)
        pq.write_table(run.to_arrow(), stage / RESULTS_FILE)
        write_manifest(manifest_path(stage / RESULTS_FILE), build_manifest(MANIFEST_KIND, **fields))
    return Path(out_dir) / RESULTS_FILE


def load_run(path: str | Path, *, model: str | None = None) -> LogprobRun:
    """Read a stored log-prob run: its directory or its ``logprobs.parquet`` file."""
    import pyarrow.parquet as pq

    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise StoreError(
            f"no log-prob run at {path}; pass a directory written by `rmvalues logprobs --out DIR` "
            "(it holds logprobs.parquet)."
        )
    try:
        table = pq.read_table(path, read_dictionary=["model", "prompt_id", "candidate_kind",
                                                     "candidate", "normalized"])
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise StoreError(f"cannot read log-prob run {path}: {exc}") from exc
    run = LogprobRun.from_frame(table.to_pandas(), model=model)
    from rmvalues.store.manifest import manifest_path, read_manifest

    mpath = manifest_path(path)
    if mpath.exists():
        run.meta = dict(read_manifest(mpath).fields)
        run.meta.pop("prompt_ids", None)
    return run


# --- prompts ----------------------------------------------------------------------------------------


def resolve_prompts(prompts: Any) -> list[tuple[str, str]]:
    """``[(prompt_id, text)]`` from a prompt-set name, a PromptSet, a mapping or (id, text) pairs."""
    if isinstance(prompts, str):
        from rmvalues.prompts import load_prompt_set

        prompts = load_prompt_set(prompts)
    if getattr(prompts, "systems", None):
        raise InputError(f"prompt set {prompts.name!r} has system prompts, which LM log-probs do not "
                         "render yet; use a set without system prompts.")
    if hasattr(prompts, "prompts"):
        prompts = prompts.prompts
    if isinstance(prompts, Mapping):
        pairs = [(str(k), str(v)) for k, v in prompts.items()]
    else:
        pairs = []
        for item in prompts:
            if hasattr(item, "id") and hasattr(item, "text"):
                pairs.append((str(item.id), str(item.text)))
            else:
                pid, text = item
                pairs.append((str(pid), str(text)))
    if not pairs:
        raise InputError("no prompts given; pass a prompt set such as 'paper-54'")
    ids = [p for p, _ in pairs]
    if len(set(ids)) != len(ids):
        raise InputError("prompt ids repeat; every prompt needs a unique id")
    return pairs


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

    pairs = resolve_prompts(prompts)
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
    gguf_file: str | None = None,
    revision: str | None = None,
    dtype: str = "float32",
    device: str = "cpu",
    template: str | None = None,
    chat_template: str | Path | None = None,
    date_string: str | None = None,
    batch_size: int = 8,
    trust_remote_code: bool = False,
    name: str | None = None,
    drop_nonfinite: bool = False,
    device_map: str | None = None,
) -> LogprobRun:
    """Load a model, compute its log-prob run and (with ``out_dir``) store it with its manifest.

    ``device_map="auto"`` shards a model too large for one GPU over the node's GPUs.
    """
    from rmvalues.models.lm import load_causal_lm
    from rmvalues.models.tokenizers import decoded_vocabulary, vocabulary_table

    lm = load_causal_lm(model, revision=revision, gguf_file=gguf_file, dtype=dtype, device=device,
                        trust_remote_code=trust_remote_code, chat_template=chat_template, name=name,
                        require_chat_template=kind == "instruct", device_map=device_map)
    prompt_set = prompts if isinstance(prompts, str) else getattr(prompts, "name", None)
    tokens = decoded_vocabulary(lm.tokenizer)
    run = compute_logprobs(lm.model, lm.tokenizer, prompts, kind=kind, model_name=lm.name,
                           template=template, date_string=date_string, batch_size=batch_size,
                           tokens=tokens, drop_nonfinite=drop_nonfinite)
    run.meta.update({"load": lm.info, "prompt_set": prompt_set})
    if out_dir is not None:
        save_run(run, out_dir, vocabulary=vocabulary_table(lm.tokenizer, tokens))
    return run
