"""The scorers a run can use, registered by name: one interface, no backend branches.

A scorer is built from a spec and a model and exposes ``rm`` (the model as it scores, which a
worker then holds), ``truncated`` (candidates cut to the context so far), ``score_prompt(split,
candidates, on_batch)`` and ``score_conversations(ids, on_batch)``. A registration provides ``model(spec,
device)``, what the worker holds (a loaded model, or a weightless probe when the scorer loads its
own weights), and ``build(spec, rm, llm)``, the scorer itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rmvalues.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from rmvalues.runs.spec import RunSpec

SCORERS: Registry[Any] = Registry("backend")


@SCORERS.register("engine")
class TransformersScorer:
    """rmvalues' prefix-cached engine over a transformers model (:class:`~rmvalues.engines.score.Engine`)."""

    @staticmethod
    def model(spec: RunSpec, device: str | None = None) -> Any:
        from rmvalues.models.checkpoints import load_model_ref

        options = spec.load_options()
        if device is not None and options["device_map"] is None:
            options["device"] = device
        # a registry key, hub id or folder, a training run/checkpoint, asset:NAME or a GGUF file
        return load_model_ref(spec.model, gguf_file=spec.gguf_file, **options)

    @staticmethod
    def build(spec: RunSpec, rm: Any, llm: Any = None) -> Any:
        """The engine over ``rm``; in paper mode over the paper's head copy (score definition,
        head dtype) with transformers' pad pooling, as the published scorer ran it."""
        from rmvalues.engines import paper_compat
        from rmvalues.engines.score import Engine

        pool = None
        if spec.paper_compatible:
            rm = paper_compat.paper_model(rm)
            pool = paper_compat.paper_pooling(rm)
        engine = Engine(rm, batch_size=spec.batch_size, row_cap=registry_batch_size(rm),
                        max_batch_tokens=spec.max_batch_tokens, attention=spec.attention,
                        mode="full" if spec.paper_compatible else spec.mode, pool=pool)
        engine.truncate = spec.truncate_candidates
        return engine


def registry_batch_size(rm: Any) -> int | None:
    """The model registry's rows per forward for ``rm`` (``None`` for unregistered models)."""
    spec = getattr(rm, "spec", None)
    return spec.batch_size if spec is not None else None


SCORERS.register("vllm", "rmvalues.engines.vllm:VllmScorer")


def run_model(spec: RunSpec, device: str | None = None) -> Any:
    """What a worker of ``spec`` holds: the model its scorer needs."""
    return SCORERS.get(spec.backend).model(spec, device)


def make_scorer(spec: RunSpec, rm: Any, llm: Any = None) -> Any:
    """The scorer of ``spec``'s backend over ``rm``."""
    return SCORERS.get(spec.backend).build(spec, rm, llm)
