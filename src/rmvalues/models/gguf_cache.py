"""De-quantised GGUF models, cached: the bundled small models are stored quantised (GGUF), and
transformers de-quantises them on every load (seconds, each command, each sweep). The first load
writes the de-quantised causal LM (float32 safetensors) under the cache; later loads read that.

The cache key is the GGUF file's name, size and modification time plus the transformers version,
so a replaced file or a different de-quantiser never reuses a stale copy. The folder is written
under a temporary name and renamed when complete: a killed first load leaves nothing usable.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rmvalues.errors import ModelError

COMPLETE = "dequantised.done"


def cache_key(gguf: Path) -> str:
    import transformers

    from rmvalues.store.manifest import stable_hash

    stat = gguf.stat()
    return f"{gguf.stem}-" + stable_hash({"name": gguf.name, "size": stat.st_size,
                                         "mtime_ns": stat.st_mtime_ns,
                                         "transformers": transformers.__version__}, length=12)


def dequantised_folder(local_dir: Path, gguf_file: str) -> Path:
    """A folder holding ``gguf_file`` de-quantised (``config.json`` + safetensors), made once."""
    from rmvalues.fetch import cache_dir

    gguf = Path(local_dir) / gguf_file
    if not gguf.is_file():
        raise ModelError(f"no GGUF file {gguf_file!r} in {local_dir}.")
    target = cache_dir("gguf") / cache_key(gguf)
    if (target / COMPLETE).is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM

    from rmvalues.models.loading import quiet_transformers
    from rmvalues.training.trainer import clear_gguf_quantization

    try:
        with quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(str(local_dir), gguf_file=gguf_file,
                                                         dtype=torch.float32)
    except (ValueError, KeyError, OSError, ImportError) as exc:
        raise ModelError(f"cannot de-quantise {gguf}: {str(exc).strip().splitlines()[0]}") from exc
    clear_gguf_quantization(model)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(str(partial), safe_serialization=True)
    (partial / COMPLETE).write_text(str(gguf) + "\n", "utf-8")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target
