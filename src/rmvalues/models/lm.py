"""Causal language models: load a hub id or a local folder (or a GGUF file) for next-token log-probs.

Weights load from safetensors only (``use_safetensors=True``) or from a GGUF file, never from
pickles; custom model code runs only when ``trust_remote_code=True`` is passed explicitly.
torch and transformers are imported lazily.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import ModelError, TemplateError
from rmvalues.models.tokenizers import is_hub_id, load_tokenizer

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

@dataclass
class LoadedLM:
    """A causal LM, its tokenizer, and the provenance a manifest records."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    info: dict[str, Any] = field(default_factory=dict)


def _torch_dtype(dtype: str):
    """``"auto"`` (transformers' choice, from the checkpoint) or a name of the loaders' vocabulary."""
    import torch

    from rmvalues.models.loading import dtype_name

    return "auto" if dtype == "auto" else getattr(torch, dtype_name(dtype))


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
    dtype: str = "float32",
    device: str = "cpu",
    trust_remote_code: bool = False,
    local_files_only: bool = False,
    chat_template: str | Path | None = None,
    name: str | None = None,
    require_chat_template: bool = False,
    device_map: str | None = None,
) -> LoadedLM:
    """Load a causal LM and its tokenizer from a hub id or a local folder, in eval mode.

    ``gguf_file`` names a GGUF file inside the folder (transformers dequantises it to ``dtype``);
    otherwise only safetensors weights are accepted. ``chat_template`` (a .jinja path or text)
    attaches or overrides the tokenizer's template; ``require_chat_template`` fails right after the
    tokenizer loads (before the weights) when there is none. ``device_map`` (e.g. ``"auto"``) lets
    accelerate shard the layers over the node's GPUs (70B models) instead of moving it to ``device``.
    """
    from transformers import AutoModelForCausalLM

    from rmvalues.io import sha256_file
    from rmvalues.models.validate import check_config_json, check_device, check_safetensors

    torch_dtype = _torch_dtype(dtype)
    check_device(device)
    path = Path(model).expanduser()
    if path.is_dir():
        source, local = str(path), True
    elif not is_hub_id(model):
        raise ModelError(
            f"model {str(model)!r}: no such folder. Pass an existing local model folder or a Hugging "
            "Face hub id such as 'meta-llama/Llama-3.2-3B'."
        )
    else:
        source, local = str(model), local_files_only
    common: dict[str, Any] = {"revision": revision, "trust_remote_code": trust_remote_code,
                              "local_files_only": local}
    info: dict[str, Any] = {"source": source, "revision": revision,
                            "dtype": str(torch_dtype).removeprefix("torch."),
                            "device": device, "trust_remote_code": trust_remote_code}
    if device_map is not None:
        common["device_map"] = device_map
        info["device_map"] = device_map
    if gguf_file is not None:
        if local and not (path / gguf_file).is_file():
            raise ModelError(f"GGUF file {gguf_file!r} is not in {path}; pass the file's name "
                             "inside the model folder with --gguf-file.")
        common["gguf_file"] = gguf_file
        info["gguf_file"] = gguf_file
        if local:
            info["gguf_sha256"] = sha256_file(path / gguf_file)
    if path.is_dir() and gguf_file is None:
        check_config_json(path)
        check_safetensors(sorted(path.glob("*.safetensors")))
    tokenizer = load_tokenizer(source, revision=revision, chat_template=chat_template,
                               trust_remote_code=trust_remote_code, local_files_only=local,
                               gguf_file=gguf_file)
    if require_chat_template and not getattr(tokenizer, "chat_template", None):
        raise TemplateError(
            f"{source!r} has no chat template, so it cannot be run as --kind instruct; pass "
            "--chat-template (a .jinja file or the template text) naming the template it was "
            "tuned with, or use --kind pretrained."
        )
    try:
        weights = {} if gguf_file is not None else {"use_safetensors": True}
        lm = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, **weights, **common)
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(
            f"could not load causal LM {source!r}: {first}. Check the id, revision and network "
            "access (or pass a local folder); weights must be safetensors or GGUF (--gguf-file); for "
            "a model with custom code pass trust_remote_code=True if you trust it."
        ) from exc
    lm.eval()
    if device_map is None:
        lm.to(device)
    else:
        info["hf_device_map"] = {k: str(v) for k, v in getattr(lm, "hf_device_map", {}).items()}
    info["commit"] = getattr(lm.config, "_commit_hash", None)
    info["architecture"] = type(lm).__name__
    info["logits_rows"] = int(lm.get_output_embeddings().weight.shape[0]) \
        if lm.get_output_embeddings() is not None else None
    info["tokenizer_size"] = len(tokenizer)
    return LoadedLM(model=lm, tokenizer=tokenizer, name=name or model_name(model, gguf_file),
                    info=info)
