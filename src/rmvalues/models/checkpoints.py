"""Every kind of "my reward model" as one model reference: a registry key, hub id or folder (as
:func:`~rmvalues.models.loading.load_reward_model` reads them), a ``rmvalues train`` run folder
(its last checkpoint), one ``checkpoint-N`` folder (LoRA adapter + score head merged in memory on
the base model), or ``asset:NAME`` for a bundled small model (its GGUF file found in the asset).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import InputError, ModelError

if TYPE_CHECKING:
    from rmvalues.models.loading import RewardModel

ASSET_PREFIX = "asset:"


@dataclass(frozen=True)
class ModelRef:
    """A resolved reference: ``kind`` is ``model`` (a loadable folder/hub id/key), ``asset``,
    ``run`` (a training run's checkpoint ``step``) or ``checkpoint``."""

    kind: str
    source: str
    gguf_file: str | None = None
    train_dir: Path | None = None
    step: int | None = None

    @property
    def name(self) -> str:
        """The model's name in results tables (a checkpoint keeps its run and step)."""
        if self.train_dir is not None:
            return f"{self.train_dir.name}/checkpoint-{self.step}"
        if self.kind == "asset":
            return self.source[len(ASSET_PREFIX):]
        return self.source


def asset_model(name: str, gguf_file: str | None = None) -> tuple[Path, str]:
    """Folder and GGUF file name of a bundled model asset (``asset:smollm2-135m-instruct``)."""
    from rmvalues.assets import asset_path, registry

    if name not in registry():
        models = [n for n, a in registry().items() if any(d.endswith(".gguf") for d in a.outputs)]
        raise InputError(f"no bundled asset {name!r}; the bundled models are {models} "
                         "(see `rmvalues assets list`).")
    folder = asset_path(name)
    if gguf_file is None:
        found = sorted(p.name for p in folder.glob("*.gguf"))
        if len(found) != 1:
            raise InputError(f"asset {name!r} holds {found or 'no'} .gguf file(s); it is not a bundled "
                             "model (pass --gguf-file to pick one).")
        gguf_file = found[0]
    return folder, gguf_file


def bundled_model(name: str) -> bool:
    """Whether ``name`` is a bundled model asset (one holding a GGUF file) and no registry key."""
    from rmvalues.assets import registry
    from rmvalues.models.registry import find_model

    asset = registry().get(name)
    return (asset is not None and any(d.endswith(".gguf") for d in asset.outputs)
            and find_model(name) is None)


def local_base(base: str, gguf_file: str | None = None) -> tuple[str, str | None]:
    """A training base as (folder, GGUF file): ``asset:NAME`` or a bundled model's name become
    the asset's folder and GGUF file; a folder holding one .gguf and no config gets that file."""
    ref = resolve_model_ref(base, gguf_file)
    if ref.kind == "asset":
        folder, gguf = asset_model(ref.source[len(ASSET_PREFIX):], ref.gguf_file)
        return str(folder), gguf
    return base, ref.gguf_file


def resolve_model_ref(model: str | Path, gguf_file: str | None = None) -> ModelRef:
    """What ``model`` names (see the module docstring); nothing is loaded."""
    text = str(model)
    if text.startswith(ASSET_PREFIX):
        _, gguf = asset_model(text[len(ASSET_PREFIX):], gguf_file)
        return ModelRef("asset", text, gguf_file=gguf)
    path = Path(text).expanduser()
    if not path.is_dir():
        if bundled_model(text):  # a bundled model's bare name: never a hub id (no owner/)
            return resolve_model_ref(ASSET_PREFIX + text, gguf_file)
        return ModelRef("model", text, gguf_file=gguf_file)
    has_config = (path / "config.json").is_file()
    adapter = (path / "adapter_config.json").is_file()
    if adapter or not has_config:  # maybe a training run or checkpoint: only then read its layout
        from rmvalues.training.trainer import _CHECKPOINT, MANIFEST_NAME, checkpoint_dirs

        match = _CHECKPOINT.match(path.name)
        if match and adapter:
            if not (path / MANIFEST_NAME).is_file():
                raise InputError(f"{path} is an incomplete training checkpoint (no {MANIFEST_NAME}); "
                                 "pass a complete one or resume the training run.")
            return ModelRef("checkpoint", text, train_dir=path.parent, step=int(match.group(1)))
        steps = checkpoint_dirs(path)
        if steps and not has_config:
            return ModelRef("run", text, train_dir=path, step=max(steps))
    if gguf_file is None and not has_config:
        found = sorted(p.name for p in path.glob("*.gguf"))
        if len(found) == 1:
            gguf_file = found[0]
    return ModelRef("model", text, gguf_file=gguf_file)


def load_model_ref(model: str | Path | ModelRef, *, gguf_file: str | None = None,
                   device: str | None = None, dtype: str | None = None, **kwargs: Any) -> RewardModel:
    """Load any model reference as a :class:`RewardModel` (checkpoints merged in memory)."""
    from rmvalues.models.loading import load_reward_model

    ref = model if isinstance(model, ModelRef) else resolve_model_ref(model, gguf_file)
    if ref.train_dir is not None:
        from rmvalues.training.sweep import CheckpointModels

        unsupported = {k: v for k, v in kwargs.items() if v not in (None, False)}
        if unsupported:
            raise InputError(f"{ref.source} is a training checkpoint: {sorted(unsupported)} do not "
                             "apply (its base model, template and head come from the run).")
        return CheckpointModels(ref.train_dir, device=device, dtype=dtype,
                                name=ref.name).reward_model(int(ref.step or 0))
    if ref.kind == "asset":
        folder, gguf = asset_model(ref.source[len(ASSET_PREFIX):], ref.gguf_file)
        return load_reward_model(folder, gguf_file=gguf, device=device, dtype=dtype,
                                 name=ref.name, **kwargs)
    return load_reward_model(ref.source, gguf_file=ref.gguf_file, device=device, dtype=dtype, **kwargs)


def config_hint(local_dir: Path) -> str:
    """The fix for a folder whose config cannot be read: only suggest trusting remote code when the
    config asks for it (``auto_map``); say so when the folder is a LoRA adapter or training run."""
    import json

    if (local_dir / "adapter_config.json").is_file():
        return ("it is a LoRA adapter, not a full model: pass the training checkpoint to rmvalues "
                "as it is (--model RUN or RUN/checkpoint-N merges it in memory), or write a plain "
                "model folder with `rmvalues merge-checkpoint`.")
    config = local_dir / "config.json"
    if not config.is_file():
        gguf = sorted(p.name for p in local_dir.glob("*.gguf"))
        if gguf:
            return f"the folder holds GGUF weights: pass --gguf-file {gguf[0]}."
        return "the folder has no config.json: is it a model folder?"
    try:
        custom = "auto_map" in json.loads(config.read_text("utf-8"))
    except (OSError, ValueError):
        return "its config.json is unreadable."
    if custom:
        return "the model needs its own code: if you trust it, pass --trust-remote-code."
    return "check that transformers supports this architecture (upgrade it if needed)."


def merge_checkpoint_ref(model: str | Path, out: str | Path, *, dtype: str | None = None) -> Path:
    """``rmvalues merge-checkpoint``: a run folder (its last checkpoint) or a checkpoint folder as a
    plain reward-model folder."""
    from rmvalues.training.sweep import merge_checkpoint

    ref = resolve_model_ref(model)
    if ref.train_dir is None:
        raise ModelError(f"{model} is not a training run or checkpoint folder (checkpoint-N with an "
                         "adapter and manifest.json); nothing to merge.")
    return merge_checkpoint(ref.train_dir / f"checkpoint-{ref.step}", out, dtype=dtype)
