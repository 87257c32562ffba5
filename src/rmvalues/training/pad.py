"""Pad-token policy: the pad token never equals EOS.

A sequence-classification model pools at the last token that is not the pad token. When pad = EOS
(the usual fallback for Llama-style tokenizers) every conversation that ends in EOS is pooled at the
wrong position. As the paper's reference training code did, a dedicated pad token is added and the
embeddings resized; the new rows are set to the mean of the old ones (deterministic, so a checkpoint
is rebuilt exactly from the base model plus this record, which every checkpoint manifest holds).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rmvalues.errors import ModelError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn
    from transformers import PreTrainedTokenizerBase


def _eos_ids(tokenizer: PreTrainedTokenizerBase, model: nn.Module | None) -> set[int]:
    ids = {tokenizer.eos_token_id}
    if model is not None:
        eos = getattr(model.config, "eos_token_id", None)
        ids.update(eos if isinstance(eos, (list, tuple)) else [eos])
    return {i for i in ids if i is not None}


def needs_pad_token(tokenizer: PreTrainedTokenizerBase, model: nn.Module | None = None) -> bool:
    """True when the tokenizer has no pad token or its pad token is an EOS token."""
    pad = tokenizer.pad_token_id
    return pad is None or pad in _eos_ids(tokenizer, model)


def apply_pad_policy(
    tokenizer: PreTrainedTokenizerBase, model: nn.Module, pad_token: str = "<|pad|>",
    record: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Give ``tokenizer`` a pad token that is not EOS and make ``model`` agree; return the record.

    With ``record`` (from a checkpoint manifest) the same change is replayed on a fresh base model
    and checked to land on the same ids, so saved adapters fit the rebuilt model.
    """
    import torch

    embeddings = model.get_input_embeddings()
    old_rows = int(embeddings.weight.shape[0])
    if record is not None:
        pad_token = record["pad_token"]
    added = False
    if record is not None and record.get("added") or record is None and needs_pad_token(tokenizer, model):
        if pad_token not in tokenizer.get_vocab():
            tokenizer.add_special_tokens({"pad_token": pad_token})
            added = True
        else:
            tokenizer.pad_token = pad_token
    pad_id = tokenizer.pad_token_id
    if pad_id is None or pad_id in _eos_ids(tokenizer, model):
        raise ModelError(f"pad token {pad_token!r} resolves to an EOS id ({pad_id}); pick another "
                         "pad token (TrainConfig.pad_token).")
    new_rows = max(old_rows, len(tokenizer))
    if new_rows > old_rows:
        model.resize_token_embeddings(new_rows, mean_resizing=False)
        with torch.no_grad():
            weight = model.get_input_embeddings().weight
            weight[old_rows:] = weight[:old_rows].mean(dim=0, keepdim=True)
            out = model.get_output_embeddings()
            if out is not None and out.weight.shape[0] == new_rows and out.weight is not weight:
                out.weight[old_rows:] = out.weight[:old_rows].mean(dim=0, keepdim=True)
    model.config.pad_token_id = pad_id
    text_config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else None
    if text_config is not None:
        text_config.pad_token_id = pad_id
    result = {"pad_token": tokenizer.pad_token, "pad_token_id": int(pad_id),
              "added": bool(added or (record or {}).get("added")), "vocab_rows_before": old_rows,
              "vocab_rows_after": int(model.get_input_embeddings().weight.shape[0]),
              "new_rows_init": "mean of the existing rows"}
    if record is not None:
        for key in ("pad_token_id", "vocab_rows_after"):
            if record.get(key) != result[key]:
                raise ModelError(
                    f"replaying the pad-token policy gave {key} = {result[key]} but the checkpoint "
                    f"recorded {record.get(key)}; the base model or tokenizer differs from the one "
                    "the checkpoint was trained on.")
    return result
