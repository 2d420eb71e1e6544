"""Pickles as Tune keeps them (tuner.pkl, a searcher's saved state), read back in the tests through an unpickler
that resolves only the names such a pickle holds: this project's, Ray's, Optuna's and numpy's, and the plain
builtin types. The standard library's `os`, `subprocess`, `builtins.eval` and the like are refused."""

from __future__ import annotations

import io
import pickle
from typing import Any

KNOWN_PACKAGES = {"raysearch", "ray", "optuna", "numpy", "collections", "copyreg", "datetime", "enum", "_codecs"}
PLAIN_BUILTINS = {"object", "dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int",
                  "float", "bool", "complex", "slice", "range"}


class KnownClassesUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, also: frozenset[str]) -> None:
        super().__init__(io.BytesIO(data))
        self.also = also  # modules of the test itself (e.g. a define-by-run space it handed the searcher)

    def find_class(self, module: str, name: str) -> Any:
        known = (module.split(".")[0] in KNOWN_PACKAGES or module in self.also
                 or (module == "builtins" and name in PLAIN_BUILTINS))
        if not known:
            raise pickle.UnpicklingError(f"{module}.{name} is not what a Tune pickle of this project holds")
        return super().find_class(module, name)


def unpickle(data: bytes, *also: str) -> Any:
    """`data` read back, resolving names only from the known packages and the modules `also`."""
    return KnownClassesUnpickler(data, frozenset(also)).load()


def round_trip(value: Any, *also: str) -> Any:
    """`value` as a resumed search gets it back from the experiment's pickle."""
    return unpickle(pickle.dumps(value), *also)
