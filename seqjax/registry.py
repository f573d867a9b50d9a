"""A name -> entry table with a lazy loader and one-line errors for unknown names."""

from __future__ import annotations

import importlib
from typing import Generic, TypeVar

from seqjax.errors import check_choice

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries registered by name; ``loader`` names a module whose import registers the built-ins."""

    def __init__(self, kind: str, loader: str):
        self.kind = kind
        self.loader = loader
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry

    def names(self) -> list[str]:
        importlib.import_module(self.loader)
        return sorted(self._entries)

    def get(self, name: str) -> T:
        check_choice(self.kind, name, self.names())
        return self._entries[name]
