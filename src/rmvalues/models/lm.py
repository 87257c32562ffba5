"""Causal language models: load a hub id or a local folder (or a GGUF file) for next-token log-probs.

Loaded by the same steps as reward models (:mod:`rmvalues.models.loading`): one source resolution
(hub snapshot at a pinned commit, or a local folder), safetensors only or a GGUF file, never
pickles; custom model code only with ``trust_remote_code=True``; one dtype vocabulary
(:func:`~rmvalues.models.loading.torch_dtype`) and one provenance record
(:class:`~rmvalues.models.provenance.ModelProvenance`, written as a log-prob run's ``load`` entry).
torch and transformers are imported lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import ModelError, TemplateError
from rmvalues.models.provenance import ModelProvenance
from rmvalues.models.tokenizers import is_hub_id, load_tokenizer

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class LoadedLM:
    """A causal LM, its tokenizer, and its provenance record."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    record: ModelProvenance

    @property
    def info(self) -> dict[str, Any]:
        """The provenance a log-prob manifest records (its ``load`` entry)."""
        return self.record.lm_fields()


def model_name(model: str | Path, gguf_file: str | None = None) -> str:
    """A short key for a model: the hub id, or the folder (and GGUF file) name."""
    path = Path(model).expanduser()
    if path.is_dir():
        return Path(gguf_file).stem if gguf_file else path.name
    return str(model)


def load_causal_lm(
    model: str | Path,
    *,
    revision: str | None = None,
    gguf_file: str | None = None,
    dtype: str | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
    local_files_only: bool = False,
    chat_template: str | Path | None = None,
    name: str | None = None,
    require_chat_template: bool = False,
    device_map: Any = None,
) -> LoadedLM:
    """Load a causal LM and its tokenizer from a hub id or a local folder, in eval mode.

    ``dtype``/``device`` default to :class:`~rmvalues.runs.options.LogprobOptions`' (float32 on
    the CPU). ``gguf_file`` names a GGUF file inside the folder (de-quantised once, cached, then
    cast to ``dtype``); otherwise only safetensors weights are accepted. ``chat_template`` (a
    .jinja path or text) attaches or overrides the tokenizer's template; ``require_chat_template``
    fails right after the tokenizer loads (before the weights) when there is none. ``device_map``
    (e.g. ``"auto"``) lets accelerate shard the layers over the node's GPUs (70B models) instead of
    moving it to ``device``.
    """
    from transformers import AutoModelForCausalLM

    from rmvalues.models.gguf_cache import gguf_sha256
    from rmvalues.models.loading import load_weights, resolve_model
    from rmvalues.models.validate import check_config_json
    from rmvalues.runs.options import LogprobOptions

    defaults = LogprobOptions().load_options()  # the one place log-prob defaults live
    dtype, device = dtype or defaults["dtype"], device or defaults["device"]
    path = Path(model).expanduser()
    local = path.is_dir()
    if not local and not is_hub_id(model):
        raise ModelError(
            f"model {str(model)!r}: no such folder. Pass an existing local model folder or a Hugging "
            "Face hub id such as 'meta-llama/Llama-3.2-3B'."
        )
    source = resolve_model(model, revision=revision, dtype=dtype,
                           device=device if device_map is None else None, device_map=device_map,
                           gguf_file=gguf_file, name=name or model_name(model, gguf_file),
                           registry=False, local_files_only=local_files_only,
                           trust_remote_code=trust_remote_code)
    if gguf_file is None:
        check_config_json(source.local_dir)
    tokenizer = load_tokenizer(source.local_dir, chat_template=chat_template,
                               trust_remote_code=trust_remote_code, gguf_file=gguf_file)
    if require_chat_template and not getattr(tokenizer, "chat_template", None):
        raise TemplateError(
            f"{str(path) if local else str(model)!r} has no chat template, so it cannot be run as "
            "--kind instruct; pass --chat-template (a .jinja file or the template text) naming the "
            "template it was tuned with, or use --kind pretrained."
        )
    lm = load_weights(AutoModelForCausalLM, source, what="the causal LM",
                      trust_remote_code=trust_remote_code, gguf_file=gguf_file,
                      device_map=device_map)
    extra: dict[str, Any] = {}
    if device_map is None:
        lm.to(device)
    else:
        extra["hf_device_map"] = {k: str(v) for k, v in getattr(lm, "hf_device_map", {}).items()}
    head = lm.get_output_embeddings()
    extra.update({"architecture": type(lm).__name__,
                  "logits_rows": int(head.weight.shape[0]) if head is not None else None,
                  "tokenizer_size": len(tokenizer)})
    record = source.record(
        source=str(path) if local else str(model), config=lm.config,
        trust_remote_code=trust_remote_code, device=device, device_map=device_map,
        gguf_file=gguf_file,
        gguf_sha256=gguf_sha256(path, gguf_file) if local and gguf_file else None, extra=extra)
    return LoadedLM(model=lm, tokenizer=tokenizer, name=source.name, record=record)
