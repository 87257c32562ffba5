"""One model loader (issue 11, step 3): reward models, causal LMs, plan probes and training bases
resolve sources, refuse pickles and remote code, name dtypes and record provenance the same way."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from _train_models import tiny_base_dir
from rmvalues.errors import ModelError
from rmvalues.models.lm import load_causal_lm
from rmvalues.models.loading import load_reward_model, probe_reward_model, torch_dtype

#: Provenance fields both kinds of model have (a head type is a reward model's only).
SHARED = ("name", "source", "revision", "commit", "dtype", "device", "attn_implementation",
          "weights_fingerprint", "trust_remote_code")


def _head(folder):
    from rmvalues.models.heads.sequence_classification import SequenceClassificationHead

    hidden = json.loads((folder / "config.json").read_text())["hidden_size"]
    return SequenceClassificationHead(torch.ones(1, hidden))


def _loaders(folder, **kwargs):
    """The loaded (or probed) model of every loader, and its provenance record."""
    lm = load_causal_lm(folder, **kwargs)
    rm = load_reward_model(folder, head=_head(folder), **kwargs)
    probe = probe_reward_model(folder, **kwargs)
    return {"lm": (lm.model, lm.record), "rm": (rm.backbone, rm.record()),
            "probe": (None, probe.record())}


@pytest.mark.parametrize("name", ["fp32", "bf16", "half", "auto"])
def test_dtype_names_mean_the_same_for_every_loader(name):
    want = torch_dtype(name, device="cpu")
    for kind, (model, record) in _loaders(tiny_base_dir(), dtype=name, device="cpu").items():
        assert record.dtype == str(want).removeprefix("torch."), kind
        if model is not None:
            assert next(model.parameters()).dtype == want, kind
    # "auto" is one rule, not transformers' choice for LMs: fp32 on CPU even for a bf16 checkpoint
    assert torch_dtype("auto", device="cpu", published="bfloat16") == torch.float32


def test_an_unknown_dtype_is_refused_alike():
    for load in (load_causal_lm, load_reward_model, probe_reward_model):
        with pytest.raises(ModelError, match="unknown dtype 'fp8'; use auto or one of float32"):
            load(tiny_base_dir(), dtype="fp8", device="cpu")


def test_lm_and_rm_from_one_folder_record_the_same_provenance():
    records = {kind: record for kind, (_, record) in
               _loaders(tiny_base_dir(), dtype="float32", device="cpu").items()}
    shared = {kind: {f: getattr(r, f) for f in SHARED} for kind, r in records.items()}
    assert shared["lm"] == shared["rm"] == shared["probe"]
    assert shared["lm"]["weights_fingerprint"]  # a local folder is identified by its files
    assert records["lm"].revision is records["lm"].commit is None
    # each output keeps its keys: the LM's manifest entry and the RM's shard-key fields
    lm_fields, rm_fields = records["lm"].lm_fields(), records["rm"].rm_fields()
    assert list(lm_fields)[:5] == ["source", "revision", "dtype", "device", "trust_remote_code"]
    assert lm_fields["commit"] is None and "weights_fingerprint" not in lm_fields
    assert rm_fields["revision"] is None and rm_fields["head"] == "sequence_classification"


def test_a_hub_snapshot_is_pinned_alike(monkeypatch, tmp_path):
    """A hub id resolves to one snapshot for both loaders: the LM records the revision asked for
    and the commit, the RM the commit as ``revision`` (its shard keys' spelling)."""
    import huggingface_hub

    sha = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "models--owner--tiny" / "snapshots" / sha
    shutil.copytree(tiny_base_dir(), snapshot)
    asked = []

    def fake_download(repo, *, revision, allow_patterns, local_files_only=False):
        asked.append((repo, revision, tuple(allow_patterns)))
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    lm = load_causal_lm("owner/tiny", revision="main", device="cpu")
    rm = load_reward_model("owner/tiny", revision="main", head=_head(snapshot), device="cpu")
    assert asked[0] == asked[1] and asked[0][:2] == ("owner/tiny", "main")
    assert "*.safetensors" in asked[0][2] and not {"*.bin", "*.py", "*.pt"} & set(asked[0][2])
    assert {f: getattr(lm.record, f) for f in SHARED} == {f: getattr(rm.record(), f) for f in SHARED}
    assert (lm.info["revision"], lm.info["commit"]) == ("main", sha)
    assert rm.provenance()["revision"] == sha and rm.provenance()["weights_fingerprint"] is None
    # a named GGUF file is fetched, never every quantisation of the repository
    with pytest.raises(ModelError, match="GGUF file 'm.Q4.gguf' is not in"):
        load_causal_lm("owner/tiny", gguf_file="m.Q4.gguf")
    assert "m.Q4.gguf" in asked[-1][2] and "*.gguf" not in asked[-1][2]


def _pickled(tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_base_dir(), folder)
    for file in folder.glob("*.safetensors"):
        file.unlink()
    (folder / "pytorch_model.bin").write_bytes(b"never unpickled")
    return folder


def test_every_loader_refuses_pickles_without_reading_them(tmp_path, monkeypatch):
    from rmvalues.training.trainer import BaseModel, load_base, load_base_lm

    def no_unpickling(*args, **kwargs):
        raise AssertionError("a pickled checkpoint was opened")

    monkeypatch.setattr(torch, "load", no_unpickling)
    folder = _pickled(tmp_path)
    loads = {"lm": lambda: load_causal_lm(folder), "rm": lambda: load_reward_model(folder),
             "probe": lambda: probe_reward_model(folder),
             "training base": lambda: load_base(BaseModel(str(folder))),
             "GRM base": lambda: load_base_lm(BaseModel(str(folder)), dtype="float32")}
    for kind, load in loads.items():
        with pytest.raises(ModelError, match=r"pickled weights \(pytorch_model.bin\), which are "
                                             "refused") as caught:
            load()
        assert "convert them to safetensors" in str(caught.value), kind


def _custom_code_folder(tmp_path, marker):
    """A model whose config needs its own Python code, which writes ``marker`` when it runs."""
    folder = tmp_path / "custom"
    shutil.copytree(tiny_base_dir(), folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="rmv_custom", auto_map={
        "AutoConfig": "configuration_custom.CustomConfig",
        "AutoModel": "configuration_custom.CustomModel",
        "AutoModelForCausalLM": "configuration_custom.CustomModel"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "configuration_custom.py").write_text(
        "from pathlib import Path\n"
        "from transformers import LlamaConfig, LlamaForCausalLM\n"
        f"Path({str(marker)!r}).write_text('ran')\n"
        "class CustomConfig(LlamaConfig):\n    model_type = 'rmv_custom'\n"
        "class CustomModel(LlamaForCausalLM):\n    config_class = CustomConfig\n")
    return folder


def test_remote_code_runs_only_when_trusted(tmp_path, monkeypatch):
    import transformers.dynamic_module_utils as dynamic

    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    marker = tmp_path / "code-ran"
    folder = _custom_code_folder(tmp_path, marker)
    for load in (load_causal_lm, load_reward_model, probe_reward_model):
        with pytest.raises(ModelError, match="trust-remote-code"):
            load(folder, device="cpu")
        assert not marker.exists(), load.__name__
    # the same folder does run its code when asked to: the refusal above is the loader's doing
    lm = load_causal_lm(folder, device="cpu", trust_remote_code=True)
    assert marker.exists() and type(lm.model).__name__ == "CustomModel"
    assert lm.info["trust_remote_code"] is True


def test_logprob_defaults_live_in_the_options():
    from rmvalues.models.lm_registry import resolve_lm_options
    from rmvalues.runs.options import LogprobOptions, ScoreOptions

    lm = load_causal_lm(tiny_base_dir())
    want = LogprobOptions().load_options()
    assert (lm.info["dtype"], lm.info["device"]) == (want["dtype"], want["device"])
    assert resolve_lm_options(str(tiny_base_dir()), "pretrained", None)[2] == want["dtype"]
    # score leaves both to the loader's "auto" rules (documented in runs/options.py)
    assert ScoreOptions().load_options()["dtype"] is None
    assert ScoreOptions().load_options()["device"] is None
