"""Name -> class registries, so a config names a network and a variant is one class + one line."""

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Registry:
    """A named set of classes of one kind (generator, critic, caption encoder)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, type] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def add(cls: type[T]) -> type[T]:
            if name in self._classes:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._classes[name] = cls
            return cls

        return add

    def get(self, name: str) -> type:
        try:
            return self._classes[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._classes)


GENERATORS = Registry("generator")
CRITICS = Registry("critic")
CAPTION_ENCODERS = Registry("caption encoder")
