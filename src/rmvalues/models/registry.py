"""The known-model registry: a data file (``registry.toml``) read by one loader.

Adding a reward model is a data change. Any field the registry lacks is resolved at load time
(e.g. the revision sha) and recorded in the run's manifest.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable
from functools import cache
from importlib.resources import files
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from rmvalues.errors import ModelError

S = TypeVar("S", bound=BaseModel)


def read_specs(filename: str, table: str, spec: type[S]) -> dict[str, S]:
    """The entries of one of this package's registry data files, by key, in file order."""
    data = tomllib.loads(files("rmvalues.models").joinpath(filename).read_text("utf-8"))
    return {key: spec(key=key, **fields) for key, fields in data[table].items()}


def lookup(specs: Iterable[S], name: str, names: Callable[[S], Iterable[str]]) -> S | None:
    """The first spec one of whose ``names`` is ``name`` (case-insensitive); ``None`` if none is."""
    lowered = name.lower()
    for spec in specs:
        if lowered in (n.lower() for n in names(spec)):
            return spec
    return None


def require(spec: S | None, name: str, registry: str, known: Iterable[str], fix: str) -> S:
    """``spec``, or :class:`ModelError` saying that ``name`` is not in ``registry`` (naming the
    ``known`` keys) and how to go on."""
    if spec is None:
        raise ModelError(f"{name!r} is not in the {registry}; known: {', '.join(known)}. {fix}")
    return spec


class ModelSpec(BaseModel):
    """One known reward model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    hub_id: str
    revision: str | None = None
    base_family: str
    base_version: str
    size_b: float
    dtype: str = "bfloat16"
    head: str = "sequence_classification"
    batch_size: int = 64
    released_scores: str | None = None
    paper_dtype: str | None = None
    paper_score: str | None = None
    head_verified: bool = True
    head_config: dict[str, Any] = {}


@cache
def known_models() -> dict[str, ModelSpec]:
    """All registry entries by key, in file order."""
    return read_specs("registry.toml", "models", ModelSpec)


def find_model(name: str) -> ModelSpec | None:
    """Look a model up by registry key or hub id (case-insensitive); ``None`` if unknown."""
    return lookup(known_models().values(), name, lambda spec: (spec.key, spec.hub_id))


def get_model(name: str) -> ModelSpec:
    """The registry entry of ``name``; :class:`ModelError` naming the known models if unknown."""
    return require(find_model(name), name, "model registry", known_models(),
                   "Pass a hub id or local directory to load it with the generic loader, or add it "
                   "to rmvalues/models/registry.toml.")
