"""Load a reward model as backbone + score head, from a hub id or a local folder; and the loader
steps every other model load shares (causal LMs, training bases, plan probes, vLLM's config).

The engine runs the backbone itself (to cache the prompt prefix) and applies our own head to the
final hidden state, so a checkpoint is split in two: the transformer body is loaded with
``AutoModel`` (the model type's base class, never remote code unless asked), and the head's tensors
are read from the safetensors files by the key prefixes the head class declares. Hub ids are first
resolved to a local snapshot (pinned revision, recorded sha), so hub and local models share one code
path. Weights load from safetensors only (pickled ``.bin`` checkpoints are refused) or, for the small
bundled test models, from GGUF; a model's own Python code runs only when ``trust_remote_code=True``
is passed.

The steps, each used by every loader: :func:`resolve_model` (files, pinned commit, device, dtype,
name: a :class:`ModelSource`), :func:`load_config` and :func:`load_weights` (one
``from_pretrained`` for bodies, causal LMs and training bases alike), and a
:class:`~rmvalues.models.provenance.ModelProvenance` record. One dtype vocabulary:
:func:`torch_dtype`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import ModelError
from rmvalues.models.provenance import ModelProvenance
from rmvalues.models.registry import ModelSpec, find_model
from rmvalues.models.tokenizers import is_hub_id

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from rmvalues.models.heads.base import RewardHead

DEFAULT_HEAD = "sequence_classification"
# Files a reward model needs: config, safetensors weights, tokenizer files, chat templates.
_SNAPSHOT_PATTERNS = ["*.json", "*.safetensors", "tokenizer.model", "*.txt", "*.jinja", "*.tiktoken"]
#: The dtype vocabulary of every loader (reward models, LMs, training bases): name or alias -> name.
DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16", "half": "float16"}


def dtype_name(dtype: str) -> str:
    """The canonical name (float32, bfloat16, float16) of a dtype name or alias."""
    if dtype not in DTYPES:
        raise ModelError(f"unknown dtype {dtype!r}; use auto or one of float32, bfloat16, float16 "
                         "(aliases fp32, bf16, fp16, half)")
    return DTYPES[dtype]


def torch_dtype(dtype: str | torch.dtype | None, *, device: str, spec: ModelSpec | None = None,
                published: str | None = None) -> torch.dtype:
    """The dtype vocabulary of every loader: a name or alias of :data:`DTYPES`, or ``"auto"``/None.

    ``"auto"`` (the default) is fp32 on CPU, and on accelerators the checkpoint's own
    (``published``: its config's torch_dtype) where the device supports it, else the registry's.
    """
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device == "cpu":
            name = "float32"
        else:
            choices = [DTYPES.get(str(published)), DTYPES.get(spec.dtype) if spec else None,
                       "bfloat16", "float16"]
            name = next(c for c in choices if c is not None and _supported(c, device))
    else:
        name = dtype
    return getattr(torch, dtype_name(name))


def _supported(name: str, device: str) -> bool:
    """Whether ``device`` computes in dtype ``name`` (bfloat16 needs Ampere or newer on CUDA)."""
    import torch

    if name == "bfloat16" and device.startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return True


def checkpoint_dtype(local_dir: Path) -> str | None:
    """The dtype a checkpoint's ``config.json`` declares (``torch_dtype`` / ``dtype``), if any."""
    import json

    try:
        config = json.loads((Path(local_dir) / "config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    value = config.get("torch_dtype") or config.get("dtype")
    return value if isinstance(value, str) else None


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def placement_device(device: str | None, device_map: str | None = None) -> str:
    """The device inputs go to: ``device``, else cuda when present (``device_map`` spreads the rest)."""
    from rmvalues.models.validate import check_device

    if device_map is not None and device is not None:
        raise ModelError(f"give either --device ({device}) or device_map={device_map!r}, not both")
    return check_device(device) or default_device()


@dataclass
class RewardModel:
    """A loaded reward model: backbone (returns hidden states), our head, tokenizer, provenance.

    ``revision`` is the hub revision asked for, ``commit`` the snapshot's sha (see
    :class:`~rmvalues.models.provenance.ModelProvenance` for how manifests spell them).
    """

    name: str
    source: str
    backbone: nn.Module
    head: RewardHead
    tokenizer: PreTrainedTokenizerBase
    revision: str | None = None
    commit: str | None = None
    fingerprint: str | None = None
    spec: ModelSpec | None = None
    trust_remote_code: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.backbone.parameters()).dtype

    @property
    def attn_implementation(self) -> str:
        return attn_implementation_name(self.backbone.config)

    def provenance(self) -> dict[str, Any]:
        """Everything about the model that a manifest records and a shard key hashes."""
        return self.record().rm_fields()

    def record(self) -> ModelProvenance:
        """The model's provenance record (:mod:`rmvalues.models.provenance`)."""
        return ModelProvenance(
            name=self.name, source=self.source, revision=self.revision, commit=self.commit,
            dtype=dtype_str(self.dtype), device=str(self.device),
            attn_implementation=self.attn_implementation, weights_fingerprint=self.fingerprint,
            trust_remote_code=self.trust_remote_code, head=self.head.head_type, extra=self.extra)


def attn_implementation_name(config: Any) -> str:
    """The attention implementation transformers resolved for a body built from ``config``."""
    return str(getattr(config, "_attn_implementation", None) or "eager")


def dtype_str(dtype: torch.dtype) -> str:
    """A torch dtype as manifests write it (``float32``, not ``torch.float32``)."""
    return str(dtype).removeprefix("torch.")


def resolve_source(
    model: str | Path, revision: str | None, spec: ModelSpec | None, *,
    gguf_file: str | None = None, local_files_only: bool = False, trust_remote_code: bool = False,
) -> tuple[Path, str | None]:
    """Local folder holding the model (a hub snapshot for hub ids) and the resolved commit sha.

    Public so that training resolves a base model to the same files and sha that scoring reads.
    A hub snapshot holds config, safetensors, tokenizer and template files, plus ``gguf_file``
    when one is named (never every quantisation a GGUF repository offers) and the repository's
    Python files only when its code is trusted.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        if revision is not None:
            raise ModelError(f"--revision {revision} applies to hub ids, not to the folder {path}")
        return path, None
    text = str(model)
    if spec is not None:
        text, revision = spec.hub_id, revision or spec.revision
    elif not is_hub_id(model):
        raise ModelError(
            f"model {text!r}: no such directory. Pass an existing model folder, a Hugging Face hub "
            "id (owner/name) or a registry key (see `rmvalues/models/registry.toml`)."
        )
    try:
        from huggingface_hub import snapshot_download

        patterns = (_SNAPSHOT_PATTERNS + ([gguf_file] if gguf_file else [])
                    + (["*.py"] if trust_remote_code else []))
        local = Path(snapshot_download(text, revision=revision, allow_patterns=patterns,
                                       local_files_only=local_files_only))
    except Exception as exc:  # RepositoryNotFound, RevisionNotFound, offline, HTTP errors
        raise ModelError(
            f"model {text!r}{f' at revision {revision}' if revision else ''} could not be fetched "
            f"from the Hugging Face hub: {type(exc).__name__}: {_first_line(exc)}. "
            "Check the id and revision, log in for gated models, or pass a local folder."
        ) from exc
    # Snapshots live in .../snapshots/<commit sha>/: that is the resolved revision.
    return local, local.name if re.fullmatch(r"[0-9a-f]{40}", local.name) else revision


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].rstrip(". ") if lines else type(exc).__name__


def weight_files(local_dir: Path) -> list[Path]:
    """The folder's safetensors files; pickled-only checkpoints are refused with the fix.

    Public so that training refuses the same checkpoints with the same message.
    """
    files = sorted(local_dir.glob("*.safetensors"))
    if not files:
        pickles = sorted(p.name for p in local_dir.glob("*.bin")) + sorted(
            p.name for p in local_dir.glob("*.pt*"))
        hint = (f" It has pickled weights ({', '.join(pickles[:3])}), which are refused because "
                "loading them can run arbitrary code; convert them to safetensors."
                if pickles else "")
        raise ModelError(f"model folder {local_dir} has no .safetensors weights.{hint}")
    from rmvalues.models.validate import check_safetensors

    check_safetensors(files)
    return files


def fingerprint_files(files: Iterable[Path]) -> str:
    """Cheap identity of weight files (name, size, mtime): re-hashing 50 GB per run is not an option."""
    from rmvalues.store.manifest import stable_hash

    return stable_hash([(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files])


def read_head_tensors(files: Iterable[Path], prefixes: Iterable[str]) -> dict[str, torch.Tensor]:
    """The checkpoint tensors whose key starts with one of ``prefixes``, by their real names."""
    from safetensors import safe_open

    prefixes = tuple(prefixes)
    out: dict[str, torch.Tensor] = {}
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a Mapping
                if key.startswith(prefixes):
                    out[key] = handle.get_tensor(key)
    return out


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report: the head's keys are 'unexpected' for the body by design.

    Public so that training's loads of the same checkpoints are as quiet as scoring's.
    """
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_config(local_dir: Path, *, trust_remote_code: bool = False, **overrides: Any) -> Any:
    """The checkpoint's ``AutoConfig`` (``overrides``: config fields such as ``num_labels``).

    An unreadable ``config.json`` gets its own fix; a config that needs the model's own code is
    refused unless ``trust_remote_code`` (the hint says so only when the config asks for it).
    """
    from transformers import AutoConfig

    from rmvalues.models.validate import check_config_json

    check_config_json(local_dir)
    try:
        return AutoConfig.from_pretrained(str(local_dir), trust_remote_code=trust_remote_code,
                                          **overrides)
    except (ValueError, KeyError, OSError) as exc:
        from rmvalues.models.checkpoints import config_hint

        raise ModelError(
            f"cannot read the config of {local_dir}: {_first_line(exc)}. {config_hint(local_dir)}"
        ) from exc


def load_weights(
    auto_class: Any,
    source: ModelSource,
    *,
    what: str = "the model",
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
    gguf_file: str | None = None,
    device_map: Any = None,
    new_weights: tuple[str, ...] = (),
    **config_overrides: Any,
) -> nn.Module:
    """``auto_class.from_pretrained`` of ``source`` (safetensors only), in eval mode (on the CPU
    unless ``device_map``).

    The one weight load of every loader: reward-model bodies (``AutoModel``), causal LMs and
    training bases. A GGUF file is de-quantised once into the cache and read from there as
    safetensors. Every weight must come from the checkpoint, except those starting with one of
    ``new_weights`` (a training base's new score head): a randomly initialised body is an error.
    ``device_map`` lets accelerate spread the layers over the node's GPUs (27B-70B).
    """
    local_dir = source.local_dir
    if gguf_file:  # de-quantised once, then read from the cache as safetensors
        from rmvalues.models.gguf_cache import dequantised_folder

        local_dir = dequantised_folder(local_dir, gguf_file)
    config = load_config(local_dir, trust_remote_code=trust_remote_code, **config_overrides)
    kwargs: dict[str, Any] = {"config": config, "dtype": source.dtype, "use_safetensors": True,
                              "trust_remote_code": trust_remote_code, "output_loading_info": True}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        with quiet_transformers():
            model, info = auto_class.from_pretrained(str(local_dir), **kwargs)
    except (ValueError, KeyError, OSError, ImportError) as exc:
        raise ModelError(f"cannot load {what} of {local_dir}: {_first_line(exc)}") from exc
    missing = [k for k in info.get("missing_keys", []) if not k.startswith(new_weights)]
    if missing:
        raise ModelError(
            f"the checkpoint in {local_dir} lacks {len(missing)} weight(s) of {what} (e.g. "
            f"{missing[0]!r}); they would be randomly initialised. Is it a complete model?"
        )
    return model.eval()


@dataclass
class ModelSource:
    """A model resolved before any weights load: files, snapshot, device and dtype, display name.

    The first step of every loader (:func:`load_reward_model`, :func:`probe_reward_model`,
    :func:`~rmvalues.models.lm.load_causal_lm`, the training bases), so their provenance cannot
    drift. ``revision`` is the revision asked for (or the registry's pin), ``commit`` the sha of the
    hub snapshot read (``None`` for local folders).
    """

    spec: ModelSpec | None
    local_dir: Path
    revision: str | None
    commit: str | None
    files: list[Path]
    device: str
    dtype: torch.dtype
    name: str

    @property
    def fingerprint(self) -> str | None:
        """Identity of local weights; a hub snapshot is identified by its commit instead."""
        return None if self.commit or self.revision else fingerprint_files(self.files)

    def record(self, *, source: str, config: Any, **fields: Any) -> ModelProvenance:
        """The provenance record of this model as built from ``config`` (a loaded or meta body);
        ``fields``: the record's other fields (head, trust_remote_code, ...) or overrides."""
        base: dict[str, Any] = {
            "name": self.name, "source": source, "revision": self.revision, "commit": self.commit,
            "dtype": dtype_str(self.dtype), "device": self.device,
            "attn_implementation": attn_implementation_name(config),
            "weights_fingerprint": self.fingerprint}
        return ModelProvenance(**{**base, **fields})


def resolve_model(model: str | Path, *, revision: str | None = None,
                  dtype: str | torch.dtype | None = None, device: str | None = None,
                  device_map: Any = None, gguf_file: str | None = None,
                  name: str | None = None, registry: bool = True,
                  local_files_only: bool = False, trust_remote_code: bool = False) -> ModelSource:
    """Resolve ``model`` (registry key, hub id or folder) to its files, device, dtype and name.

    ``registry=False`` skips the reward-model registry (causal LMs have their own, resolved by
    the caller). Weight files are safetensors (pickles refused) or the named GGUF file.
    """
    spec = find_model(str(model)) if registry else None
    local_dir, resolved = resolve_source(model, revision, spec, gguf_file=gguf_file,
                                         local_files_only=local_files_only,
                                         trust_remote_code=trust_remote_code)
    if gguf_file is not None and not (local_dir / gguf_file).is_file():
        raise ModelError(f"GGUF file {gguf_file!r} is not in {local_dir}; pass the file's name "
                         "inside the model folder with --gguf-file.")
    device = placement_device(device, device_map)
    resolved_dtype = torch_dtype(dtype, device=device, spec=spec,
                                 published=checkpoint_dtype(local_dir))
    asked = None if Path(model).expanduser().is_dir() else revision or (
        spec.revision if spec else None)
    commit = resolved if resolved and re.fullmatch(r"[0-9a-f]{40}", resolved) else None
    return ModelSource(
        spec=spec, local_dir=local_dir, revision=asked, commit=commit,
        files=[local_dir / gguf_file] if gguf_file else weight_files(local_dir),
        device=device, dtype=resolved_dtype,
        name=name or (spec.key if spec else display_name(model, local_dir)))


@dataclass
class ProbedModel:
    """What planning needs of a reward model without its weights: name, tokenizer, head, provenance."""

    name: str
    tokenizer: Any
    head: Any
    _record: ModelProvenance

    def provenance(self) -> dict[str, Any]:
        return self._record.rm_fields()

    def record(self) -> ModelProvenance:
        return self._record


def probe_reward_model(model: str | Path, *, revision: str | None = None,
                       dtype: str | None = None, attn_implementation: str | None = None,
                       device: str | None = None, device_map: str | None = None,
                       chat_template: str | Path | None = None,
                       trust_remote_code: bool = False) -> ProbedModel:
    """The model's provenance as :func:`load_reward_model` would record it, without loading weights.

    The same steps as a load (:func:`resolve_model`, :func:`load_config`, the head class, the
    tokenizer), but the body is built on the ``meta`` device only to learn the attention
    implementation transformers resolves. Held equal to a real load by the tests.
    """
    import torch
    from transformers import AutoModel

    from rmvalues.models.heads import head_class
    from rmvalues.models.tokenizers import load_tokenizer

    source = resolve_model(model, revision=revision, dtype=dtype, device=device,
                           device_map=device_map, trust_remote_code=trust_remote_code)
    config = load_config(source.local_dir, trust_remote_code=trust_remote_code)
    kwargs: dict[str, Any] = {"dtype": source.dtype, "trust_remote_code": trust_remote_code}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    with torch.device("meta"):
        body = AutoModel.from_config(config, **kwargs)
    head = head_class(source.spec.head if source.spec else DEFAULT_HEAD)
    tokenizer = load_tokenizer(source.local_dir, chat_template=chat_template,
                               trust_remote_code=trust_remote_code)
    record = source.record(source=str(model), config=body.config, head=head.head_type,
                           trust_remote_code=trust_remote_code)
    return ProbedModel(name=source.name, tokenizer=tokenizer, head=head, _record=record)


def load_reward_model(
    model: str | Path,
    *,
    revision: str | None = None,
    dtype: str | torch.dtype | None = None,
    attn_implementation: str | None = None,
    device: str | None = None,
    head: str | RewardHead | None = None,
    chat_template: str | Path | None = None,
    trust_remote_code: bool = False,
    tokenizer: PreTrainedTokenizerBase | None = None,
    gguf_file: str | None = None,
    name: str | None = None,
    device_map: str | None = None,
) -> RewardModel:
    """Load ``model`` (registry key, hub id or folder) as backbone + head + tokenizer.

    ``head``: a registry head-type name, or a ready head instance (e.g. a seeded head on an LM
    backbone); default: the registry's head for known models, else sequence classification with
    one label. ``chat_template`` overrides or supplies the tokenizer's template. ``gguf_file``
    loads a GGUF backbone from the folder (dequantised; only the bundled small test models).
    ``device_map="auto"`` shards the body over the node's GPUs; the head sits with the last layer.
    """
    from transformers import AutoModel

    source = resolve_model(model, revision=revision, dtype=dtype, device=device,
                           device_map=device_map, gguf_file=gguf_file, name=name,
                           trust_remote_code=trust_remote_code)
    spec, local_dir, files, device = source.spec, source.local_dir, source.files, source.device
    backbone = load_weights(AutoModel, source, what="the backbone",
                            attn_implementation=attn_implementation,
                            trust_remote_code=trust_remote_code, gguf_file=gguf_file,
                            device_map=device_map)
    if head is None or isinstance(head, str):
        from rmvalues.models.heads import head_class

        cls = head_class(head or (spec.head if spec else DEFAULT_HEAD))
        tensors = {} if gguf_file else read_head_tensors(files, cls.state_dict_prefixes)
        config = backbone.config
        if spec is not None and spec.head_config:  # head parameters the registry states
            config = {**backbone.config.to_dict(), **spec.head_config}
        head_module = cls.from_checkpoint(config, tensors)
    else:
        head_module = head
    if tokenizer is None:
        from rmvalues.models.tokenizers import load_tokenizer

        tokenizer = load_tokenizer(local_dir, chat_template=chat_template,
                                   trust_remote_code=trust_remote_code, gguf_file=gguf_file)
    elif chat_template is not None:
        from rmvalues.models.chat import template_source

        tokenizer.chat_template = template_source(tokenizer, chat_template)
    if device_map is None:
        backbone.to(device)
    else:  # the final hidden state comes out where the last layer lives
        device = next(reversed(list(backbone.parameters()))).device
    head_module.to(device).eval()
    return RewardModel(
        name=source.name,
        source=str(model),
        backbone=backbone,
        head=head_module,
        tokenizer=tokenizer,
        revision=source.revision,
        commit=source.commit,
        fingerprint=source.fingerprint,
        spec=spec,
        trust_remote_code=trust_remote_code,
    )


def display_name(model: str | Path, local_dir: Path) -> str:
    """The name of an unregistered model: its folder's name, or the hub id as given."""
    return local_dir.name if Path(model).expanduser().is_dir() else str(model)


def save_reward_model(
    directory: str | Path, backbone: nn.Module, head_state: Mapping[str, torch.Tensor],
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> Path:
    """Write backbone + head tensors as one safetensors checkpoint laid out like a real RM's.

    Body keys get the ``model.`` prefix of ``*ForSequenceClassification`` checkpoints; head keys keep
    their real names. Used by tests and by anyone assembling an RM from parts.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    backbone.config.save_pretrained(directory)
    state = {f"model.{k}": v.detach().contiguous() for k, v in backbone.state_dict().items()}
    state.update({k: v.detach().contiguous() for k, v in head_state.items()})
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory
