"""De-quantised GGUF models, cached: the bundled small models are stored quantised (GGUF), and
transformers parses the GGUF metadata (seconds to a minute on a busy machine) and de-quantises the
weights on every load, separately for the config, the tokenizer and the weights. The first load
writes a complete model folder (``config.json``, the tokenizer files with the chat template, float32
safetensors) under the cache; every later load of the config, tokenizer or weights reads that.

The cache key is the GGUF file's name, size and modification time plus the transformers version
and the folder's layout, so a replaced file or a different converter never reuses a stale copy.
The folder is built under a temporary name and renamed when complete
(:func:`rmvalues.io.cached_folder`): a killed first load leaves nothing usable. Provenance still
names the GGUF file and its sha256 (:func:`gguf_sha256`, recorded once in the folder).
"""

from __future__ import annotations

import json
from pathlib import Path

from rmvalues.errors import ModelError

COMPLETE = "dequantised.done"
SOURCE = "gguf-source.json"  # the GGUF file the folder was made from, and its sha256
# Bump when the folder's contents change (2: tokenizer files and the GGUF's sha256 added).
LAYOUT = 2


def cache_key(gguf: Path) -> str:
    import transformers

    from rmvalues.store.manifest import stable_hash

    stat = gguf.stat()
    return f"{gguf.stem}-" + stable_hash({"name": gguf.name, "size": stat.st_size,
                                         "mtime_ns": stat.st_mtime_ns, "layout": LAYOUT,
                                         "transformers": transformers.__version__}, length=12)


def dequantised_folder(local_dir: Path, gguf_file: str) -> Path:
    """A complete model folder for ``gguf_file`` (config, tokenizer, safetensors), made once."""
    from rmvalues.fetch import cache_dir
    from rmvalues.io import cached_folder

    gguf = Path(local_dir) / gguf_file
    if not gguf.is_file():
        raise ModelError(f"no GGUF file {gguf_file!r} in {local_dir}.")
    return cached_folder(cache_dir("gguf") / cache_key(gguf),
                         lambda tmp: _write_folder(gguf, tmp), marker=COMPLETE)


def gguf_sha256(local_dir: Path, gguf_file: str) -> str:
    """The GGUF file's sha256 as provenance records it, hashed once when its folder was made."""
    folder = dequantised_folder(local_dir, gguf_file)
    return str(json.loads((folder / SOURCE).read_text("utf-8"))["sha256"])


def _write_folder(gguf: Path, out: Path) -> None:
    """De-quantise ``gguf`` into ``out``: the causal LM's config and weights, and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rmvalues.io import sha256_file
    from rmvalues.models.loading import quiet_transformers
    from rmvalues.training.trainer import clear_gguf_quantization

    local_dir, name = str(gguf.parent), gguf.name
    try:
        with quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(local_dir, gguf_file=name,
                                                         dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(local_dir, gguf_file=name)
    except (ValueError, KeyError, OSError, ImportError) as exc:
        raise ModelError(f"cannot de-quantise {gguf}: {str(exc).strip().splitlines()[0]}") from exc
    clear_gguf_quantization(model)
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    source = {"gguf": str(gguf), "sha256": sha256_file(gguf)}
    (out / SOURCE).write_text(json.dumps(source, indent=1) + "\n", "utf-8")
