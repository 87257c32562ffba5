"""The known-LM registry of paper §4: a data file (``lm_registry.toml``) read by one loader.

``rmvalues logprobs --model KEY`` resolves a key (or hub id) here to its hub id, kind and dtype;
``lm-values`` and ``implicit --pairs`` read family and kind from it to pair the runs. Adding an LM
is a data change.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict

from rmvalues.models.registry import lookup, read_specs, require


class LMSpec(BaseModel):
    """One known language model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    hub_id: str
    display_name: str
    kind: Literal["pretrained", "instruct"]
    family: str
    version: str
    size_b: float
    dtype: str = "bfloat16"
    revision: str | None = None
    paper: bool = True
    released: bool = True
    shard: bool = False
    template_notes: str = ""

    @property
    def released_filename(self) -> str:
        """The authors' file name for this model's log-prob CSV (``org/name`` -> ``org--name.csv``)."""
        return self.hub_id.replace("/", "--") + ".csv"


@cache
def known_lms() -> dict[str, LMSpec]:
    """All LM registry entries by key, in file order."""
    return read_specs("lm_registry.toml", "lms", LMSpec)


def find_lm(name: str) -> LMSpec | None:
    """Look an LM up by key, hub id or released file stem (case-insensitive); None if unknown."""
    return lookup(known_lms().values(), name.lower().removesuffix(".csv"), lambda spec: (
        spec.key, spec.hub_id, spec.released_filename.removesuffix(".csv")))


def get_lm(name: str) -> LMSpec:
    """The registry entry of ``name``; :class:`ModelError` naming the known LMs if unknown."""
    return require(find_lm(name), name, "LM registry", known_lms(),
                   "Pass a hub id or local folder with --kind, or add it to "
                   "rmvalues/models/lm_registry.toml.")


def paper_lms() -> list[LMSpec]:
    """The authors' twelve LMs (their ``config/models.yaml``), in their order."""
    return [s for s in known_lms().values() if s.paper]


def resolve_lm_options(model: str, kind: str | None, dtype: str | None
                       ) -> tuple[str, str, str, LMSpec | None]:
    """``(model source, kind, dtype, spec)`` for ``logprobs``: a registry key fills what is unset.

    A local folder or unknown hub id needs ``kind``; its dtype then defaults to
    :attr:`LogprobOptions.DEFAULT_DTYPE <rmvalues.runs.options.LogprobOptions.DEFAULT_DTYPE>`.
    """
    from pathlib import Path

    from rmvalues.errors import InputError

    spec = None if Path(model).expanduser().is_dir() else find_lm(model)
    if spec is None:
        if kind is None:
            raise InputError(
                f"--kind is needed for {model!r} (not in the LM registry): 'pretrained' or "
                f"'instruct'. Registry keys: {', '.join(known_lms())}."
            )
        from rmvalues.runs.options import LogprobOptions

        return model, kind, dtype or LogprobOptions.DEFAULT_DTYPE, None
    if kind is not None and kind != spec.kind:
        raise InputError(f"--kind {kind} contradicts the registry: {spec.key} is {spec.kind}; "
                         "drop --kind or pass the hub id of the model you mean.")
    return spec.hub_id, spec.kind, dtype or spec.dtype, spec
