"""Optional vLLM backend for plain sequence-classification reward models.

vLLM runs the model as a pooling model (``runner="pooling"``, ``classify`` with LAST-token pooling,
the activation off so raw scores come back, prefix caching on so each prompt's shared prefix is
computed once). It takes the same conversation token ids as our engine (prefix + response + suffix,
never re-tokenised), so its shards have the same rows; its key records ``backend = vllm`` so they
never mix with the engine's. :func:`verify_against_engine` re-scores a sample with our engine.

Refused: heads other than ``sequence_classification`` (ArmoRM, QRM, GRM, URM need our head classes),
models with more than one label, GGUF weights. vLLM is imported lazily; without it (no CUDA here)
the backend says so. Only configuration and refusals are tested here; the plumbing is tested with a
stand-in for ``vllm.LLM`` that scores through our reference path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rmvalues.errors import InputError, ModelError, ScoreError

if TYPE_CHECKING:  # pragma: no cover
    from rmvalues.runs.spec import RunSpec

SUPPORTED_HEADS = ("sequence_classification",)
INSTALL_HINT = ("vLLM is not installed here; it needs a CUDA machine: `pip install vllm`, or drop "
                "the vllm backend to score with rmvalues' own engine")


@dataclass(frozen=True)
class VllmOptions:
    """vLLM engine settings (the ``[vllm]`` options of a run)."""

    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    seed: int = 0


def vllm_options(options: dict[str, Any] | None) -> VllmOptions:
    """:class:`VllmOptions` from a mapping; :class:`InputError` naming an unknown option."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(VllmOptions)}
    unknown = sorted(set(options or {}) - known)
    if unknown:
        raise InputError(f"unknown vLLM option(s) {unknown}; use {', '.join(sorted(known))}")
    return VllmOptions(**(options or {}))


def check_supported(head_type: str, config: Any = None, *, gguf: bool = False) -> None:
    """Refuse what vLLM cannot score the way our engine does (:class:`ModelError` naming the fix)."""
    if head_type not in SUPPORTED_HEADS:
        raise ModelError(
            f"the vLLM backend runs only plain sequence-classification reward models; the "
            f"{head_type!r} head needs rmvalues' own head class. Score this model with the "
            "built-in engine (drop the vllm backend).")
    labels = getattr(config, "num_labels", 1) if config is not None else 1
    if labels != 1:
        raise ModelError(f"the vLLM backend expects one reward per sequence; this model has "
                         f"num_labels = {labels}. Use the built-in engine.")
    if gguf:
        raise ModelError("the vLLM backend does not load GGUF test models; use the built-in engine")


def llm_kwargs(model_dir: str, *, dtype: str | None, revision: str | None = None,
               trust_remote_code: bool = False, options: VllmOptions | None = None) -> dict:
    """Keyword arguments of ``vllm.LLM`` (the pooler settings as a plain dict under ``pooler``)."""
    options = options or VllmOptions()
    kwargs: dict[str, Any] = {
        "model": model_dir,
        "runner": "pooling",
        "convert": "classify",
        "enable_prefix_caching": True,
        "dtype": dtype or "auto",
        "tensor_parallel_size": options.tensor_parallel_size,
        "gpu_memory_utilization": options.gpu_memory_utilization,
        "trust_remote_code": trust_remote_code,
        "seed": options.seed,
        # Last token, raw score: what our engine reads (no sigmoid/softmax on a 1-label head).
        "pooler": {"pooling_type": "LAST", "use_activation": False},
    }
    if revision:
        kwargs["revision"] = revision
    if options.max_model_len:
        kwargs["max_model_len"] = options.max_model_len
    if options.max_num_seqs:
        kwargs["max_num_seqs"] = options.max_num_seqs
    return kwargs


def build_llm(kwargs: dict[str, Any]):
    """A ``vllm.LLM`` from :func:`llm_kwargs`, across vLLM's renamings of the pooler settings."""
    try:
        import vllm
        from vllm.config import PoolerConfig
    except ImportError:
        raise ModelError(INSTALL_HINT) from None
    import dataclasses
    import inspect

    kwargs = dict(kwargs)
    pooler = dict(kwargs.pop("pooler"))
    fields = ({f.name for f in dataclasses.fields(PoolerConfig)} if dataclasses.is_dataclass(
        PoolerConfig) else set(inspect.signature(PoolerConfig).parameters))
    if "use_activation" not in fields and "activation" in fields:  # vLLM <= 0.11
        pooler["activation"] = pooler.pop("use_activation")
    engine_fields = set(inspect.signature(vllm.EngineArgs).parameters)
    name = "pooler_config" if "pooler_config" in engine_fields else "override_pooler_config"
    kwargs[name] = PoolerConfig(**pooler)
    return vllm.LLM(**kwargs)


class VllmEngine:
    """Scores conversations with vLLM; the same ``score_prompt``/``score_conversations`` as Engine."""

    mode = "vllm"
    #: vLLM never cuts candidates (``truncate_candidates`` is the engine's alone).
    truncated = 0

    def __init__(self, rm: Any, llm: Any) -> None:
        head_type = getattr(rm.head, "head_type", "?")
        check_supported(head_type)
        self.rm = rm
        self.llm = llm

    def score_conversations(self, conversations: Sequence[Sequence[int]],
                            on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        prompts = [{"prompt_token_ids": list(ids)} for ids in conversations]
        outputs = self.llm.classify(prompts, use_tqdm=False)
        if len(outputs) != len(prompts):
            raise ScoreError(f"vLLM returned {len(outputs)} results for {len(prompts)} inputs")
        scores = np.empty(len(outputs), dtype=np.float32)
        for i, out in enumerate(outputs):
            values = list(out.outputs.probs)
            if len(values) != 1:
                raise ScoreError(f"vLLM returned {len(values)} values per sequence; expected one")
            scores[i] = values[0]
        if on_batch is not None:
            on_batch(len(scores))
        return scores

    def score_prompt(self, split: Any, candidates: Any,
                     on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        from rmvalues.engines.score import conversation_ids

        return self.score_conversations(conversation_ids(self.rm, split, candidates), on_batch)


def make_vllm_engine(spec: RunSpec, rm: Any, options: VllmOptions | None = None,
                     llm: Any = None) -> VllmEngine:
    """Refuse unsupported models, then build vLLM (or use ``llm``) for ``spec``'s model."""
    from rmvalues.models import loading
    from rmvalues.models.registry import find_model

    check_supported(getattr(rm.head, "head_type", "?"))
    if llm is None:
        local_dir, _ = loading.resolve_source(spec.model, spec.revision, find_model(spec.model),
                                              trust_remote_code=spec.trust_remote_code)
        config = loading.load_config(local_dir, trust_remote_code=spec.trust_remote_code)
        check_supported(rm.head.head_type, config)
        llm = build_llm(llm_kwargs(str(local_dir), dtype=spec.dtype, revision=None,
                                   trust_remote_code=spec.trust_remote_code,
                                   options=options or vllm_options(spec.vllm)))
    return VllmEngine(rm, llm)


def verify_against_engine(vllm_scores: Sequence[float], engine_scores: Sequence[float], *,
                          tolerance: float) -> float:
    """Max |vLLM - engine| over the same candidates; :class:`ScoreError` beyond ``tolerance``."""
    a = np.asarray(vllm_scores, dtype=np.float64)
    b = np.asarray(engine_scores, dtype=np.float64)
    if a.shape != b.shape:
        raise ScoreError(f"cannot compare {a.shape[0]} vLLM scores with {b.shape[0]} engine scores")
    delta = float(np.max(np.abs(a - b))) if a.size else 0.0
    if not delta <= tolerance:
        worst = int(np.argmax(np.abs(a - b)))
        raise ScoreError(
            f"vLLM disagrees with rmvalues' engine: max |Δ| = {delta:.3g} > {tolerance:g} (item "
            f"{worst}: vLLM {a[worst]:.6g}, engine {b[worst]:.6g}). Check the dtype, the pooling "
            "(LAST token, activation off) and that the head is a plain one-label classifier.")
    return delta


class VllmScorer:
    """The ``vllm`` backend of :data:`rmvalues.runs.scorers.SCORERS`: vLLM loads its own weights."""

    @staticmethod
    def model(spec: RunSpec, device: str | None = None) -> Any:
        from rmvalues.runs.spec import probe_model

        return probe_model(spec)

    @staticmethod
    def build(spec: RunSpec, rm: Any, llm: Any = None) -> VllmEngine:
        return make_vllm_engine(spec, rm, llm=llm)
