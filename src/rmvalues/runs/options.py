"""The options of a scoring run, declared once: ``score``, ``plan``, the executors and the CLI share them.

Each field carries its help text (as TRL's ``RewardConfig`` does); :mod:`rmvalues.cli._options`
turns the fields into typer options, so a default or a help line lives here only.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from rmvalues.errors import InputError
from rmvalues.models.chat import DEFAULT_DATE_STRING


def about(help: str, *, cli: bool = True, flag: str | None = None) -> dict[str, Any]:
    """A field's metadata: its help text; ``cli=False`` keeps it off the command line."""
    return {"help": help, "cli": cli, "flag": flag}


@dataclass(frozen=True, kw_only=True)
class ScoreOptions:
    """How one reward model scores a run: loading, conversation, engine and units."""

    revision: str | None = field(default=None, metadata=about(
        "Hub revision (branch, tag or sha)."))
    batch_size: int | None = field(default=None, metadata=about(
        "Candidates per forward batch (default: the registry's, else 64)."))
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
        if self.vllm is not None:
            from rmvalues.scale.vllm_backend import vllm_options

            vllm_options(self.vllm)  # fail on a bad option now, not on the GPU node
        if self.shard_size is not None and self.shard_size < 1:
            raise InputError(f"shard size must be at least 1 candidate (got {self.shard_size})")
        if self.device_map not in (None, "auto"):
            raise InputError(f"device_map must be 'auto' or unset (got {self.device_map!r})")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(ScoreOptions))

    @classmethod
    def pick(cls, options: dict[str, Any]) -> dict[str, Any]:
        """The entries of ``options`` that are score options; an unknown one is an error."""
        unknown = sorted(set(options) - set(cls.names()))
        if unknown:
            raise InputError(f"unknown scoring option(s) {unknown}; use {', '.join(cls.names())}")
        return dict(options)

    def options(self) -> dict[str, Any]:
        """This object's score options as keyword arguments (a subclass's own fields left out)."""
        return {name: getattr(self, name) for name in self.names()}

    def load_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`rmvalues.models.loading.load_reward_model`."""
        return {"revision": self.revision, "dtype": self.dtype,
                "attn_implementation": self.attn_implementation, "device": self.device,
                "device_map": self.device_map, "chat_template": self.chat_template,
                "trust_remote_code": self.trust_remote_code}


def cli_fields(options: type) -> list[tuple[str, Any, Any, str, str | None]]:
    """``(name, type, default, help, flag)`` of every CLI field of an options dataclass."""
    import typing

    hints = typing.get_type_hints(options)
    return [(f.name, hints[f.name], f.default if f.default is not MISSING else None,
             f.metadata["help"], f.metadata.get("flag"))
            for f in fields(options) if f.metadata.get("cli", True)]
