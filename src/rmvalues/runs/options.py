"""The options of the commands that run models, declared once per command family.

:class:`ScoreOptions` is shared by ``score``, ``plan``, the executors and their CLI commands;
:class:`LogprobOptions` by ``rmvalues logprobs`` and :func:`~rmvalues.engines.logprobs.run_logprobs`.
Each field carries its help text (as TRL's ``RewardConfig`` does); :mod:`rmvalues.cli._options`
turns the fields into typer options, so a default or a help line lives here only.

The two families default dtype and device differently, on purpose, and both are stated here:
``score`` runs where it can (``device`` None: cuda if present; ``dtype`` None: float32 on CPU,
the checkpoint's published dtype on an accelerator — ``"auto"`` of the loaders' one dtype
vocabulary), while ``logprobs`` stays on ``cpu`` in the LM registry's dtype, else
:attr:`LogprobOptions.DEFAULT_DTYPE` (float32: the log-prob runs are CPU-exact references). The
loaders take their defaults from here (:meth:`LogprobOptions.load_options`).
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

from rmvalues.errors import InputError
from rmvalues.models.chat import DEFAULT_DATE_STRING


def about(help: str, *, cli: bool = True, flag: str | None = None) -> dict[str, Any]:
    """A field's metadata: its help text; ``cli=False`` keeps it off the command line."""
    return {"help": help, "cli": cli, "flag": flag}


class Options:
    """Shared behaviour of the options dataclasses: their names, and checking given keywords."""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))  # type: ignore[arg-type]

    @classmethod
    def pick(cls, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` checked to be fields of this class; an unknown one is an error naming them."""
        unknown = sorted(set(options) - set(cls.names()))
        if unknown:
            raise InputError(f"unknown option(s) {unknown}; use {', '.join(cls.names())}")
        return dict(options)


@dataclass(frozen=True, kw_only=True)
class ScoreOptions(Options):
    """How one reward model scores a run: loading, conversation, engine and units."""

    revision: str | None = field(default=None, metadata=about(
        "Hub revision (branch, tag or sha)."))
    batch_size: int | None = field(default=None, metadata=about(
        "Most candidates per forward batch (default: none on the shared-prefix path, which "
        "batches by --max-batch-tokens; else the registry's, else 64)."))
    max_batch_tokens: int | None = field(default=None, metadata=about(
        "Most tokens per forward batch (default: 1,024 on CPU and 16,384 on GPUs on the "
        "shared-prefix path, where a row is its response + suffix; 32,768 otherwise)."))
    attention: str | None = field(default=None, metadata=about(
        "Prefix path's attention: shared (one prefix K/V for the whole batch) | expand (the "
        "prefix cache per row, the reference). Default: shared in float32, expand in "
        "bf16/fp16, where shared rounds differently from the reference kernel."))
    dtype: str | None = field(default=None, metadata=about(
        "float32 | bfloat16 | float16 (default: float32 on CPU, published dtype on GPU)."))
    attn_implementation: str | None = field(default=None, metadata=about(
        "eager | sdpa | flash_attention_2 (default: transformers' choice)."))
    device: str | None = field(default=None, metadata=about(
        "cpu, cuda, cuda:1, ... (default: cuda if present). Keys depend on it: pass "
        "--device cuda when planning GPU work on a CPU-only login node."))
    device_map: str | None = field(default=None, metadata=about(
        "'auto' shards one large model over the node's GPUs (runs as a plan of units)."))
    date_string: str = field(default=DEFAULT_DATE_STRING, metadata=about(
        '"Today Date" for Llama-3.1/3.2 templates (recorded in the manifest).'))
    chat_template: str | None = field(default=None, metadata=about(
        "Chat template (.jinja file or text) for tokenizers without one."))
    paper_compatible: bool = field(default=False, metadata=about(
        "Decode -> template -> re-tokenise as the published scorer did (double BOS, lossy "
        "round trip).", flag="--paper-compatible"))
    trust_remote_code: bool = field(default=False, metadata=about(
        "Allow the model repository's own Python code to run.", flag="--trust-remote-code"))
    truncate_candidates: bool = field(default=False, metadata=about(
        "Cut candidates longer than the model's context instead of refusing them (counted in "
        "the manifest).", flag="--truncate-candidates"))
    gguf_file: str | None = field(default=None, metadata=about(
        "GGUF weights file inside the --model folder (found automatically for asset:NAME and "
        "folders with one .gguf)."))
    attribute: list[str] | None = field(default=None, metadata=about(
        "Multi-objective heads (ArmoRM, QRM, URM): also score this attribute as its own run "
        "MODEL@ATTRIBUTE (repeatable; 'all' for every one; one backbone pass each)."))
    shard_size: int | None = field(default=None, metadata=about(
        "Candidates per unit (default: one unit per prompt); `score` then runs as a plan of "
        "units."))
    mode: str = field(default="auto", metadata=about(
        "Engine path: auto | prefix | full.", cli=False))
    backend: str = field(default="engine", metadata=about(
        "engine (rmvalues' prefix-cached engine) or vllm (plain sequence-classification "
        "RMs on GPUs; its shards are keyed apart from the engine's).", cli=False))
    vllm: dict[str, Any] | None = field(default=None, metadata=about(
        "VllmOptions fields for backend='vllm'.", cli=False))

    def __post_init__(self) -> None:
        from rmvalues.runs.scorers import SCORERS

        SCORERS.check(self.backend)
        if self.batch_size is not None and self.batch_size < 1:
            raise InputError(f"--batch-size must be at least 1 (got {self.batch_size}); omit it "
                             "for the default")
        if self.max_batch_tokens is not None and self.max_batch_tokens < 1:
            raise InputError(f"--max-batch-tokens must be at least 1 (got "
                             f"{self.max_batch_tokens}); omit it for the default")
        if self.attention is not None:
            from rmvalues.engines.score import ATTENTIONS

            if self.attention not in ATTENTIONS:
                raise InputError(f"unknown --attention {self.attention!r}; use "
                                 f"{' or '.join(ATTENTIONS)}")
        if self.truncate_candidates and self.backend != "engine":
            raise InputError(f"--truncate-candidates needs the engine backend (got "
                             f"{self.backend!r}); shorten the candidates instead")
        if self.gguf_file is not None and self.backend != "engine":
            raise InputError(f"--gguf-file needs the engine backend (got {self.backend!r})")
        if self.vllm is not None:
            from rmvalues.engines.vllm import vllm_options

            vllm_options(self.vllm)  # fail on a bad option now, not on the GPU node
        if self.shard_size is not None and self.shard_size < 1:
            raise InputError(f"shard size must be at least 1 candidate (got {self.shard_size})")
        if self.device_map not in (None, "auto"):
            raise InputError(f"device_map must be 'auto' or unset (got {self.device_map!r})")

    def load_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`rmvalues.models.loading.load_reward_model` (and of
        :func:`~rmvalues.models.checkpoints.load_model_ref`, which also takes ``gguf_file``)."""
        return {"revision": self.revision, "dtype": self.dtype,
                "attn_implementation": self.attn_implementation, "device": self.device,
                "device_map": self.device_map, "chat_template": self.chat_template,
                "trust_remote_code": self.trust_remote_code}


@dataclass(frozen=True, kw_only=True)
class LogprobOptions(Options):
    """How a causal LM's full-vocabulary next-token log-probs are computed and recorded."""

    gguf_file: str | None = field(default=None, metadata=about(
        "GGUF file inside the model folder."))
    revision: str | None = field(default=None, metadata=about(
        "Hub revision (branch, tag or sha)."))
    dtype: str | None = field(default=None, metadata=about(
        "float32 | bfloat16 | float16 | auto (logits are always normalised from fp32; default: the "
        "LM registry's dtype, else float32)."))
    device: str = field(default="cpu", metadata=about("cpu, cuda, cuda:1, ..."))
    device_map: str | None = field(default=None, metadata=about(
        '"auto": shard the model over all GPUs of the node (70B models); replaces --device.'))
    template: str | None = field(default=None, metadata=about(
        'Pretrained only: text template with {prompt}, e.g. "User: {prompt}\\nAssistant:" '
        "(FAccT); default: the raw prompt."))
    chat_template: str | None = field(default=None, metadata=about(
        "Instruct only: chat template (.jinja file or text) for tokenizers without one."))
    date_string: str = field(default=DEFAULT_DATE_STRING, metadata=about(
        '"Today Date" for Llama-3.1/3.2 templates (recorded in the manifest).'))
    batch_size: int = field(default=8, metadata=about(
        "Most prompts per forward pass (prompts of different lengths share one, right-padded)."))
    name: str | None = field(default=None, metadata=about("Model name stored in the table."))
    trust_remote_code: bool = field(default=False, metadata=about(
        "Allow the model repository's own Python code to run.", flag="--trust-remote-code"))
    drop_nonfinite: bool = field(default=False, metadata=about(
        "Leave out prompts whose log-probs are NaN/inf instead of refusing the run (listed in "
        "the manifest).", flag="--drop-nonfinite"))

    #: The dtype when neither --dtype nor the LM registry names one.
    DEFAULT_DTYPE: ClassVar[str] = "float32"

    def load_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`rmvalues.models.lm.load_causal_lm`, defaults filled in."""
        return {"revision": self.revision, "gguf_file": self.gguf_file,
                "dtype": self.dtype or self.DEFAULT_DTYPE, "device": self.device,
                "device_map": self.device_map, "trust_remote_code": self.trust_remote_code,
                "chat_template": self.chat_template, "name": self.name}


def cli_fields(options: type) -> list[tuple[str, Any, Any, str, str | None]]:
    """``(name, type, default, help, flag)`` of every CLI field of an options dataclass."""
    import typing

    hints = typing.get_type_hints(options)
    return [(f.name, hints[f.name], f.default if f.default is not MISSING else None,
             f.metadata["help"], f.metadata.get("flag"))
            for f in fields(options) if f.metadata.get("cli", True)]
