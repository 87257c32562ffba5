"""One small registry of named things (heads, metrics, scorers, executors, CLI commands, the
packages' lazy re-exports).

An entry is the object itself or a lazy ``"module:attribute"`` reference, imported on first use,
so registering a GPU-only backend costs nothing where it is never used. A bad name raises the
registry's error listing the known names (in the style of lm-evaluation-harness' registries).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from rmvalues.errors import InputError, RmvaluesError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> objects, in registration order."""

    def __init__(self, kind: str, *, error: type[RmvaluesError] = InputError, hint: str = "") -> None:
        self.kind = kind
        self.error = error
        self.hint = hint
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, obj: T | str | None = None) -> Any:
        """Register ``obj`` (or a ``"module:attr"`` string) under ``name``; without ``obj``, a decorator."""
        if obj is None:
            def decorate(target: T) -> T:
                self.register(name, target)
                return target
            return decorate
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = obj
        return obj

    def check(self, name: Any) -> str:
        """``name`` if registered, else the registry's error naming the known names."""
        if name not in self._entries:
            known = ", ".join(self._entries)
            raise self.error(f"unknown {self.kind} {name!r}; use one of {known}" +
                             (f". {self.hint}" if self.hint else ""))
        return str(name)

    def get(self, name: str) -> T:
        entry = self._entries[self.check(name)]
        if isinstance(entry, str):  # looked up each time, so a patched module attribute is seen
            import importlib

            module, _, attr = entry.partition(":")
            return getattr(importlib.import_module(module), attr)
        return entry

    def module_getattr(self, module: str) -> Callable[[str], Any]:
        """A module ``__getattr__`` serving this registry's names (lazy re-exports of a package);
        any other name is the usual :class:`AttributeError`."""

        def __getattr__(name: str) -> Any:
            if name in self._entries:
                return self.get(name)
            raise AttributeError(f"module {module!r} has no attribute {name!r}")

        return __getattr__

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        for name in self._entries:
            yield name, self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
