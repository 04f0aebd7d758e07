"""One registry shape for every extension point (chunkers, embedders, indexes, judges, metrics...).

``Registry.register("name")`` decorates a factory; ``get("name")`` returns it or raises
:class:`~lab.errors.RegistryError` listing what exists. Plugins add entries without forking
through the entry-point group ``lab.<kind>`` (for example ``lab.chunkers``), loaded lazily on the
first lookup that misses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from lab.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named mapping of factories with loud lookups.

    Parameters
    ----------
    kind:
        Plural noun used in messages and in the entry-point group ``lab.<kind>``.
    """

    def __init__(self, kind: str, item: str | None = None) -> None:
        self.kind = kind
        #: what one entry is called in messages ("chunker"); naive singular of ``kind`` by default
        self.item = item or (kind[:-1] if kind.endswith("s") else kind)
        self._entries: dict[str, T] = {}
        self._plugins_loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; a second registration of a name fails."""

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name``."""
        if name in self._entries and self._entries[name] is not obj:
            raise RegistryError(f"{self.kind}: {name!r} is already registered")
        self._entries[name] = obj

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=f"lab.{self.kind}"):
            if ep.name not in self._entries:
                self._entries[ep.name] = ep.load()

    def get(self, name: str) -> T:
        """Return the entry called ``name``.

        Raises
        ------
        RegistryError
            When no such entry exists; the message lists the available names.
        """
        if name not in self._entries:
            self._load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            available = ", ".join(sorted(self._entries)) or "(none)"
            raise RegistryError(f"Unknown {self.item} {name!r}. Available: {available}") from None

    def names(self) -> list[str]:
        """Sorted names of all entries, plugins included."""
        self._load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
