"""GPU exhaustive-token-search throughput at real model sizes: Llama-3.1-8B and Gemma-2-27B RMs.

NOT YET MEASURED: no GPU was lent while this was written, so no GPU number exists yet. Take them on
a GPU box from the repository root with ``benchmarks/gpu_ets.sh`` (needs torch + transformers, the
bundled tokenizer assets under ``$RMVALUES_CACHE/assets``; nothing is downloaded).

Each model is a random-init backbone with the exact public ``config.json`` architecture (written
out below), built directly in bf16 on the device with initialisation skipped (then filled with
N(0, 0.02) on the device), plus a seeded one-label score head (a ``*ForSequenceClassification`` RM
such as Skywork-Reward-Llama-3.1-8B / -Gemma-2-27B), with the real tokenizer and chat template.
One prompt, random vocabulary candidates:

- engine: rmvalues' prefix-cached :class:`~rmvalues.engines.score.Engine` (each variant its
  signature offers: ``attention="shared"`` and ``"expand"`` where it has that keyword, else the
  default), and
- paper: decode token -> ``apply_chat_template`` -> re-tokenise -> right-padded batches of 64
  (``ets_throughput.paper_approach``).

Reported per model (JSON at ``--out``, default ``$OUT/gpu_ets.json`` when ``$OUT`` is set):
candidates/s of each, the ratio, the % of the dense bf16 compute bound (FLOPs per token
= 2 x non-embedding parameters + 4 x layers x attention width x context, against the GPU's peak:
989 TFLOP/s for H100 SXM / H200, or ``--peak-tflops``), peak memory
(``torch.cuda.max_memory_allocated``), max |engine - id-exact reference| on a few candidates, and
the projected time of the full-vocabulary run (vocabulary x 54 prompts) against the 20-minute goal
for the 8B. With ``--layers N`` a model is cut to its first N layers and the projection is scaled
by full layers / N (time is linear in layers at these lengths; the JSON says so). ``--tiny`` is a
CPU smoke mode (hidden 64, 2 layers, the real vocabularies): it checks the plumbing, its numbers
mean nothing.

    python benchmarks/gpu_ets.py [--models llama-3.1-8b,gemma-2-27b] [--out FILE]
        [--engine-candidates N] [--paper-candidates N] [--layers N] [--peak-tflops T]
    python benchmarks/gpu_ets.py --device cpu --tiny --out /tmp/gpu_ets.json   # smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import inspect
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ets_throughput import PROMPT, paper_approach, timed

#: meta-llama/Llama-3.1-8B(-Instruct) config.json, architecture fields.
LLAMA_3_1_8B: dict[str, Any] = {
    "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 128000,
    "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
    "intermediate_size": 14336, "max_position_embeddings": 131072, "mlp_bias": False,
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": False, "vocab_size": 128256,
}
#: google/gemma-2-27b(-it) config.json, architecture fields.
GEMMA_2_27B: dict[str, Any] = {
    "attention_bias": False, "attention_dropout": 0.0, "attn_logit_softcapping": 50.0,
    "bos_token_id": 2, "eos_token_id": 1, "final_logit_softcapping": 30.0, "head_dim": 128,
    "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh",
    "hidden_size": 4608, "initializer_range": 0.02, "intermediate_size": 36864,
    "max_position_embeddings": 8192, "num_attention_heads": 32, "num_hidden_layers": 46,
    "num_key_value_heads": 16, "pad_token_id": 0, "query_pre_attn_scalar": 144,
    "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "sliding_window": 4096, "vocab_size": 256000,
}
#: name -> (config class, config, bundled tokenizer, RMSNorm weight init: Llama multiplies by w,
#: Gemma by 1 + w, so both start as the identity).
MODELS: dict[str, tuple[str, dict[str, Any], str, float]] = {
    "llama-3.1-8b": ("LlamaConfig", LLAMA_3_1_8B, "llama3", 1.0),
    "gemma-2-27b": ("Gemma2Config", GEMMA_2_27B, "gemma2", 0.0),
}
#: --tiny: every width cut down, the real vocabulary kept (real token ids stay valid).
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16}
#: Dense bf16 tensor-core peak (TFLOP/s, no sparsity) by device-name substring, first match wins.
PEAK_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0), ("A100", 312.0))
FULL_RUN_PROMPTS = 54
GOAL_MINUTES = {"llama-3.1-8b": 20.0}


def device_peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override is not None:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_TFLOPS if key in name), None)


@contextlib.contextmanager
def _skip_init():
    """transformers' ``no_init_weights`` (v5: ``transformers.initialization``; v4: modeling_utils)."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:
        try:
            from transformers.modeling_utils import no_init_weights
        except ImportError:
            no_init_weights = contextlib.nullcontext
    with no_init_weights():
        yield


def build_rm(name: str, device: torch.device, *, layers: int | None, tiny: bool, seed: int = 0):
    """The random-init RM of ``name`` in bf16 on ``device`` (cut to ``layers``), and its config."""
    import transformers

    from rmvalues.models.heads.sequence_classification import SequenceClassificationHead
    from rmvalues.models.loading import RewardModel
    from rmvalues.models.tokenizers import bundled_tokenizer

    config_class, values, tokenizer_name, norm_init = MODELS[name]
    # A deep copy: transformers writes into the nested rope dict it is given.
    values = {**copy.deepcopy(values), **(TINY if tiny else {})}
    if layers is not None:
        values["num_hidden_layers"] = min(layers, values["num_hidden_layers"])
    config = getattr(transformers, config_class)(**copy.deepcopy(values))
    model_class = getattr(transformers, config_class.replace("Config", "Model"))
    generator = torch.Generator(device=device).manual_seed(seed)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with _skip_init(), device:
            backbone = model_class(config)
    finally:
        torch.set_default_dtype(default)
    with torch.no_grad():
        for param_name, param in backbone.named_parameters():
            if param.ndim >= 2:
                param.normal_(0.0, values["initializer_range"], generator=generator)
            elif "norm" in param_name:
                param.fill_(norm_init)
            else:
                param.zero_()
    backbone.eval()
    head = SequenceClassificationHead.seeded(config.hidden_size, seed=seed).to(device)
    tok = bundled_tokenizer(tokenizer_name)
    rm = RewardModel(name=f"bench-{name}", source="random-init", backbone=backbone, head=head,
                     tokenizer=tok)
    return rm, values


def flops_per_token(rm, values: dict[str, Any], context: float) -> float:
    """2 x non-embedding parameters + 4 x layers x (heads x head_dim) x attended keys."""
    params = sum(p.numel() for n, p in rm.backbone.named_parameters() if "embed_tokens" not in n)
    head_dim = values.get("head_dim") or values["hidden_size"] // values["num_attention_heads"]
    width = values["num_attention_heads"] * head_dim
    return 2.0 * params + 4.0 * values["num_hidden_layers"] * width * context


def engine_variants(batch_size: int, max_batch_tokens: int | None) -> dict[str, dict[str, Any]]:
    """Engine keyword sets to measure: only keywords the installed Engine accepts (the
    shared-prefix attention and token budget arrive with issue #15's engine rewrite)."""
    from rmvalues.engines.score import Engine

    params = inspect.signature(Engine).parameters
    kwargs: dict[str, Any] = {"batch_size": batch_size}
    if "max_batch_tokens" in params and max_batch_tokens:
        kwargs["max_batch_tokens"] = max_batch_tokens
    if "attention" in params:
        return {f"engine-{a}": {**kwargs, "attention": a} for a in ("shared", "expand")}
    return {"engine": kwargs}


def _memory_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _memory_peak_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**30


def measure(name: str, args: argparse.Namespace, device: torch.device,
            peak: float | None) -> dict[str, Any]:
    from rmvalues.engines.candidates import vocabulary_candidates
    from rmvalues.engines.reference import reference_score
    from rmvalues.engines.score import Engine
    from rmvalues.models.chat import split_chat

    full_layers = MODELS[name][1]["num_hidden_layers"] if not args.tiny else TINY[
        "num_hidden_layers"]
    _memory_reset(device)
    (rm, values), init_s = timed(lambda: build_rm(name, device, layers=args.layers,
                                                  tiny=args.tiny))
    weights_gib = _memory_peak_gib(device)
    layers = values["num_hidden_layers"]
    tok = rm.tokenizer
    split = split_chat(tok, PROMPT)
    rng = np.random.default_rng(0)
    n = max(args.engine_candidates, args.paper_candidates, args.check)
    ids = rng.choice(len(tok), size=min(n, len(tok)), replace=False).tolist()
    candidates = vocabulary_candidates(tok, ids)
    prefix, continuation = len(split.prefix_ids), 1 + len(split.suffix_ids)
    # FLOPs per candidate, summed over the tokens it runs: the engine's continuation tokens attend
    # to the cached prefix and the continuation before them; the paper runs the whole conversation
    # (prefix + continuation + its double BOS, padding not counted), causal from position 0.
    engine_flops = sum(flops_per_token(rm, values, prefix + i + 1) for i in range(continuation))
    paper_tokens = prefix + continuation + 1
    paper_flops = sum(flops_per_token(rm, values, i + 1) for i in range(paper_tokens))
    result: dict[str, Any] = {
        "config": values, "layers_measured": layers, "layers_full": full_layers,
        "params_measured": sum(p.numel() for p in rm.backbone.parameters()),
        "init_seconds": init_s, "weights_gib": weights_gib,
        "prefix_tokens": prefix, "continuation_tokens": continuation,
        "flops_per_candidate": {"engine": engine_flops, "paper": paper_flops},
    }

    def record(label: str, count: int, batch: int, fn) -> np.ndarray:
        part = candidates.subset(range(count))
        warmup = min(args.warmup or batch, count)  # one full batch: kernels, allocator
        fn(candidates.subset(range(warmup)))
        _memory_reset(device)
        scores, seconds = timed(lambda: fn(part))
        rate = count / seconds
        flops = engine_flops if label.startswith("engine") else paper_flops
        result[label] = {
            "candidates": count, "seconds": seconds, "candidates_per_s": rate,
            "tflops": rate * flops / 1e12,
            "pct_of_peak": None if peak is None else 100.0 * rate * flops / (peak * 1e12),
            "bound_candidates_per_s": None if peak is None else peak * 1e12 / flops,
            "peak_memory_gib": _memory_peak_gib(device),
            "scores_finite": bool(np.isfinite(scores).all()),
        }
        print(f"{name} {label}: {rate:,.0f} candidates/s ({seconds:.2f} s for {count:,})",
              flush=True)
        return scores

    variants = engine_variants(args.engine_batch_size, args.max_batch_tokens)
    engine_scores = {}
    for label, kwargs in variants.items():
        engine = Engine(rm, **kwargs)
        engine_scores[label] = record(label, args.engine_candidates, args.engine_batch_size,
                                      lambda part, e=engine: e.score_prompt(split, part))
        result[label]["engine_kwargs"] = kwargs
    record("paper", args.paper_candidates, args.paper_batch_size,
           lambda part: paper_approach(rm, split, part, args.paper_batch_size))
    primary = next(iter(variants))
    check = list(range(min(args.check, args.engine_candidates)))
    conversations = [split.token_ids(candidates.token_ids[i]) for i in check]
    reference = reference_score(rm, conversations)
    result["max_abs_vs_reference"] = {
        label: float(np.abs(scores[check] - reference).max())
        for label, scores in engine_scores.items()}
    result["primary_engine"] = primary
    result["ratio_engine_over_paper"] = (result[primary]["candidates_per_s"]
                                         / result["paper"]["candidates_per_s"])
    scale = full_layers / layers
    total = len(tok) * FULL_RUN_PROMPTS
    engine_minutes = total / result[primary]["candidates_per_s"] * scale / 60
    goal = None if args.tiny else GOAL_MINUTES.get(name)
    result["projection"] = {
        "candidates": total, "prompts": FULL_RUN_PROMPTS, "vocabulary": len(tok),
        "layer_scale": scale,
        "note": ("time scaled by full layers / measured layers" if scale != 1 else
                 "all layers measured") + ("; --tiny: plumbing check only, not a projection"
                                           if args.tiny else ""),
        "engine_minutes": engine_minutes,
        "paper_minutes": total / result["paper"]["candidates_per_s"] * scale / 60,
        "goal_minutes": goal, "meets_goal": None if goal is None else engine_minutes <= goal,
        # at 100% of the peak: what no implementation of either approach can beat
        "bound_engine_minutes": None if peak is None else total * engine_flops * scale / (
            peak * 1e12) / 60,
        "bound_paper_minutes": None if peak is None else total * paper_flops * scale / (
            peak * 1e12) / 60,
    }
    print(f"{name}: ratio engine/paper {result['ratio_engine_over_paper']:.1f}x; full run "
          f"{total:,} candidates: {engine_minutes:.1f} min (engine)", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke mode (see the docstring)")
    parser.add_argument("--layers", type=int, default=None, help="measure the first N layers")
    parser.add_argument("--engine-candidates", type=int, default=16384)
    parser.add_argument("--paper-candidates", type=int, default=1024)
    parser.add_argument("--check", type=int, default=32, help="candidates checked vs reference")
    parser.add_argument("--warmup", type=int, default=None,
                        help="candidates run before timing (default: one batch)")
    parser.add_argument("--engine-batch-size", type=int, default=512)
    parser.add_argument("--max-batch-tokens", type=int, default=None,
                        help="engine token budget, where the Engine accepts one")
    parser.add_argument("--paper-batch-size", type=int, default=64)
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="dense bf16 peak of the device (default: known GPUs by name)")
    parser.add_argument("--out", default=None,
                        help="JSON result (default: $OUT/gpu_ets.json when $OUT is set)")
    args = parser.parse_args()
    out = args.out or (str(Path(os.environ["OUT"]) / "gpu_ets.json") if "OUT" in os.environ
                       else None)
    device = torch.device(args.device)
    peak = device_peak_tflops(device, args.peak_tflops)
    import transformers

    report: dict[str, Any] = {
        "measured": True, "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else platform.processor() or "cpu"),
        "peak_bf16_tflops": peak, "tiny": args.tiny, "prompt": PROMPT,
        "torch": torch.__version__, "transformers": transformers.__version__,
        "args": vars(args), "models": {},
    }
    start = time.perf_counter()
    for name in args.models.split(","):
        report["models"][name] = measure(name, args, device, peak)
        gc.collect()  # the model went with measure's frame: free its memory for the next one
        if device.type == "cuda":
            torch.cuda.empty_cache()
        report["seconds_total"] = time.perf_counter() - start
        if out:  # after every model, so a run cut short by its timeout keeps what it measured
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            Path(out).write_text(json.dumps(report, indent=1, default=str))
            print(f"wrote {out}", flush=True)


if __name__ == "__main__":
    main()
