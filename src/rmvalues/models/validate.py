"""Checks of a model's inputs before anything heavy runs: device, weight files, config, lengths.

Each turns what would otherwise surface as a library traceback (torch's device parser, safetensors'
header reader, a JSON decoder deep in transformers) or as silently wrong numbers (a conversation
longer than the model's positions) into one :class:`~rmvalues.errors.ModelError` / InputError that
names the input and the fix. Shared by the reward-model and the causal-LM loaders and the engines.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from rmvalues.errors import InputError, ModelError

DEVICE_HINT = "use cpu, cuda, cuda:N or mps"


def check_device(device: str | None) -> str | None:
    """``device`` if torch can place tensors there; :class:`ModelError` naming the fix if not."""
    if device is None:
        return None
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ModelError(f"--device {device!r} is not a device torch knows; {DEVICE_HINT}.") from None
    if parsed.type == "cuda":
        if torch.version.cuda is None and not torch.cuda.is_available():
            raise ModelError(
                f"--device {device}: this torch build has no CUDA support (torch "
                f"{torch.__version__}); use --device cpu, or install a CUDA build of torch.")
        if not torch.cuda.is_available():
            raise ModelError(f"--device {device}: no CUDA GPU is visible; use --device cpu "
                             "(or check CUDA_VISIBLE_DEVICES and the driver).")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ModelError(f"--device {device}: only {torch.cuda.device_count()} CUDA GPU(s) "
                             f"are visible (cuda:0 to cuda:{torch.cuda.device_count() - 1}).")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ModelError(f"--device {device}: MPS is not available here; use --device cpu.")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise ModelError(f"--device {device!r} is not supported; {DEVICE_HINT}.")
    return device


def safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete safetensors file (header and data sizes), or ``None``.

    Reads the 8-byte header length and the JSON header only, so it costs nothing on 50 GB weights.
    """
    size = path.stat().st_size
    if size < 8:
        return f"{size} bytes, shorter than the 8-byte header length"
    with open(path, "rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        if length > size - 8:
            return f"its header claims {length:,} bytes but the file has {size:,}"
        try:
            header = json.loads(fh.read(length))
        except (UnicodeDecodeError, ValueError):
            return "its header is not valid JSON"
    if not isinstance(header, dict):
        return "its header is not a JSON object"
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"),
                  default=0)
    except (KeyError, TypeError, ValueError, IndexError):
        return "its header lacks tensor offsets"
    if 8 + length + end != size:
        return f"its tensors need {8 + length + end:,} bytes but the file has {size:,}"
    return None


def check_safetensors(files: Iterable[Path]) -> None:
    """Refuse truncated or corrupt safetensors files before a loader trips over them."""
    for file in files:
        problem = safetensors_problem(Path(file))
        if problem is not None:
            raise ModelError(
                f"weights file {file} is truncated or corrupt ({problem}); download or copy it "
                "again (compare its size and sha256 with the source).")


def check_config_json(folder: Path) -> None:
    """Refuse an unreadable ``config.json`` with its own fix (remote code would not help)."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        return  # the loader says what is missing (or a GGUF file carries the config)
    try:
        config = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{path} is not valid JSON ({exc}); repair it or download the model "
                         "again.") from None
    if not isinstance(config, dict):
        raise ModelError(f"{path} is not a JSON object; repair it or download the model again.")
    if "model_type" not in config and "auto_map" not in config:
        raise ModelError(f"{path} has no 'model_type'; it is not a transformers model config. "
                         "Repair it or download the model again.")


def context_limit(config: Any) -> int | None:
    """The longest sequence the model has positions for (``max_position_embeddings``), if it says."""
    if config is None:
        return None
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    limit = getattr(text, "max_position_embeddings", None)
    return int(limit) if isinstance(limit, int) and limit > 0 else None


def fit_context(
    sequences: Sequence[Sequence[int]],
    *,
    limit: int | None,
    fixed: int,
    keep_tail: int = 0,
    truncate: bool = False,
    label: Callable[[int], str],
    model: str,
) -> tuple[list[list[int]], int]:
    """``sequences`` (each preceded by ``fixed`` tokens) checked against the model's ``limit``.

    Too long: refused with the limit in the message, or with ``truncate`` cut in the middle (the
    last ``keep_tail`` tokens, the conversation's suffix, kept). Returns the sequences and how many
    were truncated.
    """
    seqs = [list(s) for s in sequences]
    if limit is None:
        return seqs, 0
    room = limit - fixed
    long = [i for i, s in enumerate(seqs) if len(s) > room]
    if not long:
        return seqs, 0
    if not truncate or room <= keep_tail:
        worst = max(long, key=lambda i: len(seqs[i]))
        raise InputError(
            f"{len(long)} candidate(s) do not fit {model}'s context of {limit:,} tokens "
            f"(max_position_embeddings); the longest, {label(worst)}, needs "
            f"{fixed + len(seqs[worst]):,}. Shorten them, or pass --truncate-candidates to cut "
            f"each to {max(room - keep_tail, 0):,} tokens.")
    for i in long:
        tail = seqs[i][len(seqs[i]) - keep_tail:] if keep_tail else []
        seqs[i] = seqs[i][:room - keep_tail] + tail
    return seqs, len(long)
