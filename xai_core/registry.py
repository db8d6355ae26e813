"""One registry per plugin kind (explainers, metrics).

CLI choices, config validation and page widgets are all built from a registry, so a name is
typed exactly once: as the ``name`` class attribute of the plugin. Registering two classes
under one name fails at import time.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Generic, Iterator, TypeVar

from .errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a plugin ``name`` to its class; fills itself by importing a package's modules."""

    def __init__(self, kind: str, package: str):
        self.kind = kind
        self._package = package
        self._classes: dict[str, type[T]] = {}
        self._loaded = False

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator. Fails if the name is already taken by another class."""
        name = getattr(cls, "name", None)
        if not name or not isinstance(name, str):
            raise RegistryError(f"{self.kind} class {cls.__qualname__} has no string `name` attribute")
        other = self._classes.get(name)
        if other is not None and other is not cls:
            raise RegistryError(
                f"duplicate {self.kind} name {name!r}: {other.__module__}.{other.__qualname__} "
                f"and {cls.__module__}.{cls.__qualname__}; rename one of them"
            )
        self._classes[name] = cls
        return cls

    def _load(self) -> None:
        # Import every module of the package once, so that adding a file adds a plugin.
        if self._loaded:
            return
        self._loaded = True
        pkg = importlib.import_module(self._package)
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
            if not info.name.startswith("_") and info.name != "base":
                importlib.import_module(f"{self._package}.{info.name}")

    def get(self, name: str) -> type[T]:
        self._load()
        try:
            return self._classes[name]
        except KeyError:
            raise RegistryError(
                f"unknown {self.kind} {name!r}; expected one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._classes)

    def __iter__(self) -> Iterator[type[T]]:
        self._load()
        return iter([self._classes[n] for n in sorted(self._classes)])

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._classes

    def __len__(self) -> int:
        self._load()
        return len(self._classes)
