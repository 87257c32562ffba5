"""Tokenizers: load any Hugging Face tokenizer, the bundled real test tokenizers, and vocabularies.

``load_tokenizer`` takes a hub id or a local folder (a local folder never touches the network) and
can attach a chat template from a file or text. ``bundled_tokenizer`` builds the real Llama-3,
Gemma-2 and Qwen tokenizers from the fetched test assets with their official chat templates, so
tests and demos run on the exact vocabularies the paper's reward models use, without the model hub.
``decoded_vocabulary`` / ``vocabulary_table`` turn a tokenizer into the token list that exhaustive
token search and lexicon matching work over.

transformers is imported lazily: importing this module is cheap.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rmvalues.errors import ModelError, TemplateError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from transformers import PreTrainedTokenizerBase

BundledName = Literal["llama3", "llama3.2", "gemma2", "qwen"]

# A hub id is "name" or "owner/name"; anything else that is not an existing folder is a bad path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
# Bump when a builder below changes, so stale built folders in the cache are not reused.
_BUILD_VERSION = "1"


def is_hub_id(model: str | Path) -> bool:
    """Whether ``model`` (not an existing folder) can name a hub repo: a str of the hub id's shape
    that is no existing file. Shared by every loader, so all accept and refuse the same names."""
    return (not isinstance(model, Path) and _HUB_ID.match(str(model)) is not None
            and not Path(model).expanduser().exists())


def read_chat_template(chat_template: str | Path) -> str:
    """Template text from a file path or from the text itself (a str with ``{{``/``{%`` is text)."""
    if isinstance(chat_template, Path) or ("{{" not in chat_template and "{%" not in chat_template):
        path = Path(chat_template).expanduser()
        if not path.is_file():
            raise TemplateError(
                f"chat template {str(chat_template)[:80]!r} is neither an existing file nor Jinja "
                "text; pass the path of a .jinja file or the template text itself."
            )
        return path.read_text("utf-8")
    return chat_template


def load_tokenizer(
    model: str | Path,
    *,
    revision: str | None = None,
    chat_template: str | Path | None = None,
    trust_remote_code: bool = False,
    local_files_only: bool = False,
    gguf_file: str | None = None,
) -> PreTrainedTokenizerBase:
    """Load the tokenizer of a hub id or local folder; optionally attach/override its chat template.

    ``trust_remote_code`` is passed through only as given: custom tokenizer code never runs unasked.
    ``local_files_only`` forbids the network for hub ids (only the local HF cache is used);
    ``gguf_file`` reads the tokenizer embedded in that GGUF file of the folder or repo; for a
    folder, from the GGUF's de-quantised cache folder (parsing GGUF metadata takes seconds to a
    minute, so it happens once per file, not on every load).
    """
    from transformers import AutoTokenizer

    template = read_chat_template(chat_template) if chat_template is not None else None
    path = Path(model).expanduser()
    if path.is_dir() and gguf_file:
        from rmvalues.models.gguf_cache import dequantised_folder

        path, gguf_file = dequantised_folder(path, gguf_file), None
    if path.is_dir():
        source, local = str(path), True
    elif not is_hub_id(model):
        problem = "is a file, not a model folder" if path.exists() else "no such folder"
        raise ModelError(
            f"tokenizer {str(model)!r}: {problem}. Pass an existing local model folder or a "
            "Hugging Face hub id such as 'meta-llama/Llama-3.1-8B-Instruct'."
        )
    else:
        source, local = str(model), local_files_only
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, revision=revision, trust_remote_code=trust_remote_code, local_files_only=local,
            **extra,
        )
    except Exception as exc:  # OSError, ValueError, and the tokenizers library's bare Exception
        where = "the folder" if path.is_dir() else "the Hugging Face hub or its local cache"
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ModelError(
            f"could not load the tokenizer of {source!r} from {where}: {first} "
            "Check the id/revision and network access (or download it and pass the local folder); "
            "for a model with custom code pass trust_remote_code=True if you trust it."
        ) from exc
    if template is not None:
        tokenizer.chat_template = template
    return tokenizer


# --- bundled real test tokenizers -----------------------------------------------------------------


@dataclass(frozen=True)
class _Bundled:
    asset: str
    template: str
    build: Callable[[Path, Path], None] | None = None  # (asset dir, new folder) -> None


def _build_llama3(asset_dir: Path, out: Path) -> None:
    """Llama-3 tokenizer.json as the real Llama-3.1/3.2 ships it: BOS added by the post-processor.

    The asset's tokenizer.json has only the ByteLevel post-processor; the official one adds
    ``<|begin_of_text|>`` through a TemplateProcessing step, and ``tokenizer_config.json`` names
    bos ``<|begin_of_text|>`` and eos ``<|eot_id|>`` (the instruct models' end of turn).
    """
    spec = json.loads((asset_dir / "tokenizer.json").read_text("utf-8"))
    bos = "<|begin_of_text|>"
    bos_id = next(t["id"] for t in spec["added_tokens"] if t["content"] == bos)

    def special(type_id: int) -> dict:
        return {"SpecialToken": {"id": bos, "type_id": type_id}}

    spec["post_processor"] = {
        "type": "Sequence",
        "processors": [
            spec["post_processor"],
            {
                "type": "TemplateProcessing",
                "single": [special(0), {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [special(0), {"Sequence": {"id": "A", "type_id": 0}},
                         special(1), {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}},
            },
        ],
    }
    (out / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), "utf-8")
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos,
        "eos_token": "<|eot_id|>",
        # The official config says true, but transformers ignores clean-up for BPE (with a warning).
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 131072,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=1), "utf-8")


def _build_gemma2(asset_dir: Path, out: Path) -> None:
    """Gemma-2 SentencePiece model in a folder AutoTokenizer can load.

    The direct ``GemmaTokenizerFast(vocab_file=...)`` constructor silently returns an empty
    tokenizer in transformers 5; loading a folder with ``tokenizer.model`` and this config converts
    the SentencePiece model properly.
    """
    shutil.copyfile(asset_dir / "tokenizer.model", out / "tokenizer.model")
    config = {
        "tokenizer_class": "GemmaTokenizer",
        "bos_token": "<bos>",
        "eos_token": "<eos>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 8192,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=1), "utf-8")


BUNDLED: dict[str, _Bundled] = {
    "llama3": _Bundled("llama3-tokenizer", "meta-llama-Llama-3.1-8B-Instruct.jinja", _build_llama3),
    "llama3.2": _Bundled("llama3-tokenizer", "meta-llama-Llama-3.2-3B-Instruct.jinja",
                         _build_llama3),
    "gemma2": _Bundled("gemma2-tokenizer", "google-gemma-2-2b-it.jinja", _build_gemma2),
    "qwen": _Bundled("qwen-tokenizer", "Qwen-Qwen2.5-7B-Instruct.jinja"),
}
TEMPLATE_ASSET = "chat-templates"


def _built_dir(bundle: _Bundled) -> Path:
    """The loadable folder for a bundled tokenizer, built once into the cache (atomically)."""
    from rmvalues.assets import asset_path, get_asset
    from rmvalues.fetch import cache_dir
    from rmvalues.io import cached_folder, sha256_bytes

    asset_dir = asset_path(bundle.asset)
    if bundle.build is None:
        return asset_dir
    digest = sha256_bytes("".join(sorted(get_asset(bundle.asset).outputs.values())).encode())[:12]
    target = cache_dir("tokenizers") / f"{bundle.asset}-{digest}-v{_BUILD_VERSION}"
    build = bundle.build
    return cached_folder(target, lambda tmp: build(asset_dir, tmp))


_LOADED: dict[str, PreTrainedTokenizerBase] = {}


def bundled_tokenizer(name: BundledName) -> PreTrainedTokenizerBase:
    """A real test tokenizer from the fetched assets, with its official chat template attached.

    ``llama3`` / ``llama3.2``: the Llama-3 vocabulary with the Llama-3.1-8B / Llama-3.2-3B Instruct
    templates; ``gemma2``: Gemma-2 with the gemma-2-2b-it template; ``qwen``: Qwen2 vocabulary with
    the Qwen2.5 Instruct template. Memoised per process: treat the returned object as read-only.
    """
    from rmvalues.assets import asset_path

    if name not in BUNDLED:
        raise ModelError(
            f"unknown bundled tokenizer {name!r}; choose one of {', '.join(BUNDLED)}."
        )
    if name not in _LOADED:
        bundle = BUNDLED[name]
        template = asset_path(TEMPLATE_ASSET, bundle.template)
        _LOADED[name] = load_tokenizer(_built_dir(bundle), chat_template=template)
    return _LOADED[name]


def bundled_sources(name: BundledName) -> dict[str, str]:
    """Provenance of a bundled tokenizer: ``{asset file: sha256}`` for its files and template."""
    from rmvalues.assets import get_asset

    bundle = BUNDLED[name]
    out = {f"{bundle.asset}/{dest}": sha for dest, sha in get_asset(bundle.asset).outputs.items()}
    template_sha = get_asset(TEMPLATE_ASSET).outputs[bundle.template]
    out[f"{TEMPLATE_ASSET}/{bundle.template}"] = template_sha
    return out


# --- vocabularies ---------------------------------------------------------------------------------


def _vocab_size(tokenizer: PreTrainedTokenizerBase) -> int:
    """Number of token ids, checking that ids run 0..n-1 without holes (index = token id)."""
    n = len(tokenizer)
    top = max(tokenizer.get_vocab().values()) + 1
    if top != n:
        raise ModelError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has {n} tokens but ids up to "
            f"{top - 1}; a vocabulary with holes in its ids is not supported."
        )
    return n


def reference_decoded_vocabulary(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """Obviously-correct slow path: ``tokenizer.decode([i])`` for every id."""
    return [tokenizer.decode([i]) for i in range(_vocab_size(tokenizer))]


def decoded_vocabulary(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """Every token id decoded on its own (specials included); index = token id.

    Equals :func:`reference_decoded_vocabulary`; uses the Rust backend's batch decode when
    transformers adds no post-processing on top of it.
    """
    n = _vocab_size(tokenizer)
    ids = [[i] for i in range(n)]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and not getattr(tokenizer, "clean_up_tokenization_spaces", False):
        return backend.decode_batch(ids, skip_special_tokens=False)
    return tokenizer.batch_decode(ids, skip_special_tokens=False)


def vocabulary_table(tokenizer: PreTrainedTokenizerBase,
                     decoded: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per token id: ``token_id, piece, decoded, is_special, is_added, normalized``.

    ``piece`` is the raw vocabulary string (e.g. ``Ġgood``, ``▁good``); ``decoded`` the text it
    stands for; ``normalized`` its paper-normalised form (the key lexicon terms are matched on).
    ``decoded``: this tokenizer's :func:`decoded_vocabulary` when the caller already has it.
    """
    import pandas as pd

    from rmvalues.lexicons import paper_normalize

    decoded = list(decoded) if decoded is not None else decoded_vocabulary(tokenizer)
    n = len(decoded)
    added = tokenizer.added_tokens_decoder
    special_ids = set(tokenizer.all_special_ids) | {i for i, t in added.items() if t.special}
    table = pd.DataFrame(
        {
            "token_id": pd.Series(range(n), dtype="int64"),
            "piece": tokenizer.convert_ids_to_tokens(list(range(n))),
            "decoded": decoded,
            "is_special": [i in special_ids for i in range(n)],
            "is_added": [i in added for i in range(n)],
        }
    )
    table["normalized"] = [paper_normalize(s) for s in decoded]
    return table

