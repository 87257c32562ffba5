"""What keys a run's shards and what its manifests record: the resume contract of every scoring run.

A shard's key hashes everything that affects its numbers (:func:`shard_config` plus the prompt and
its conversation), so ``rmvalues score``, every executor and any re-run find each other's shards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from rmvalues.engines.candidates import CandidateSet
    from rmvalues.models.chat import ChatSplit
    from rmvalues.models.loading import RewardModel
    from rmvalues.runs.spec import RunContext
    from rmvalues.store.manifest import RunManifest

#: Bump when a change to the engine changes the numbers it produces (invalidates stored shards).
#:
#: Not bumped for issue 21's full-layer prefix cache (d9a8728), on purpose. Before it, a model with
#: sliding-window layers (Gemma-2: a 4096-token window) prefilled into sliding-window cache layers,
#: which drop the keys the attention mask excludes anyway: the same attention, summed over fewer
#: terms in another order. Stored shards differ from today's only by that rounding (measured: at
#: most 0.08 x the scores' std in bf16, 0.0065 in fp16, half of --verify's default tolerance;
#: tests/test_engine_low_precision.py re-measures it), and only when prompt + response outrun the
#: window, which no paper prompt set with token or word candidates does. A bump would make every
#: stored shard of every model (sliding window or not) be recomputed, and would change every
#: resume key the golden runs pin (tests/golden/score_runs.json).
ENGINE_VERSION = 1
#: Bump when paper mode's numbers change (v2: per-model dtype, head dtype, pad pooling, URM logit).
PAPER_MODE_VERSION = 2


def shard_config(rm: RewardModel, candidates: CandidateSet, *,
                 paper_compatible: bool = False) -> dict[str, Any]:
    """What every shard key of one model's run hashes besides the prompt (model, libraries, candidates).

    A unit scoring a slice of the candidates passes that slice, so its key differs from the whole
    prompt's, while the whole set gives exactly the one-shard-per-prompt key.
    """
    from rmvalues.store.manifest import library_versions

    versions = library_versions()
    return {
        "engine_version": ENGINE_VERSION,
        "provenance": rm.provenance(),
        "libraries": {k: versions.get(k) for k in ("torch", "transformers", "tokenizers")},
        "candidates": candidates.content_hash(),
        "paper_compatible": paper_compatible and PAPER_MODE_VERSION,
    }


def shard_key(config: Mapping[str, Any], prompt_text: str, split: ChatSplit) -> str:
    """The key of one prompt's shard: :func:`shard_config` plus the prompt and its conversation."""
    from rmvalues.models.chat import conversation_kwargs
    from rmvalues.store.manifest import stable_hash

    # Everything that affects this prompt's numbers; batch size and engine path are left out on
    # purpose (tests hold them equal), so an OOM-halved run still resumes.
    return stable_hash({**config, "prompt": prompt_text, **conversation_kwargs(split)})


def shard_manifest(config: Mapping[str, Any], prompt_id: str, prompt_text: str, key: str,
                   split: ChatSplit, **extra: Any) -> RunManifest:
    """The manifest written beside one shard."""
    from rmvalues.models.chat import conversation_kwargs
    from rmvalues.store.manifest import build_manifest

    return build_manifest("rm-scores-shard", prompt_id=prompt_id, prompt=prompt_text,
                          shard_key=key, **config, **conversation_kwargs(split), **extra)


def run_fields(prompt_set: str, prompts: Sequence[tuple[str, str]], candidates: CandidateSet,
               splits: Mapping[str, ChatSplit]) -> dict[str, Any]:
    """The prompt, candidate and conversation fields of a run's manifest.

    The conversation fields are a shard's (:func:`~rmvalues.models.chat.conversation_kwargs`), with
    ``prefix_ids`` per prompt.
    """
    from rmvalues.models.chat import conversation_kwargs

    return {
        "prompt_set": prompt_set,
        "prompt_ids": [pid for pid, _ in prompts],
        "prompt_texts": dict(prompts),  # a custom set is shown in reports from here
        "candidates": {"kind": candidates.kind, "source": candidates.source,
                       "count": len(candidates), "hash": candidates.content_hash()},
        **conversation_kwargs(next(iter(splits.values()))),
        "prefix_ids": {pid: list(s.prefix_ids) for pid, s in splits.items()},
    }


def run_manifest_fields(context: RunContext) -> dict[str, Any]:
    """The fields every run's table manifest opens with: model provenance, engine, how the score
    was read, prompts, candidates, the prompt file.

    One builder for ``rmvalues score`` and the executors' merge, so both tables record the same
    fields. The score fields come from the model as the scorer ran it
    (:func:`~rmvalues.engines.paper_compat.score_fields`), or, where the merge holds only a
    planning probe (a remote executor's coordinator), from the probe
    (:func:`~rmvalues.engines.paper_compat.planned_score_fields`). Callers append their own
    fields after these.
    """
    from rmvalues.engines.paper_compat import planned_score_fields, score_fields

    spec, rm = context.spec, context.rm
    scoring = (planned_score_fields(rm, spec) if isinstance(rm.head, type)  # a probe's head class
               else score_fields(rm, spec.paper_compatible))
    return {**rm.provenance(), "engine": context.engine_name,
            "engine_version": ENGINE_VERSION, **scoring,
            **run_fields(spec.prompt_set, spec.prompts, context.candidates, context.splits),
            "prompt_file": spec.prompt_file}
