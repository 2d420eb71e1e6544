"""Turn `data.path` into a prepared dataset directory, generating the synthetic one once.

Trials run in separate processes, often several per machine; the synthetic
dataset is built, and a dataset at a storage URI fetched (remote.py), under a
file lock so exactly one of them does it and the others wait, then all read
the same directory.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from filelock import FileLock

from raysearch.data import layout, remote
from raysearch.data.prepare import prepare
from raysearch.data.synthetic import write_synthetic
from raysearch.errors import DataError
from raysearch.storage import is_uri

CACHE_ENV = "RAYSEARCH_CACHE"


def cache_root() -> Path:
    """`$RAYSEARCH_CACHE`, else ~/.cache/raysearch."""
    configured = os.environ.get(CACHE_ENV)
    root = Path(configured).expanduser() if configured else Path.home() / ".cache" / "raysearch"
    return root.resolve()


def synthetic_name(train: int, val: int, seed: int) -> str:
    return f"synthetic-train{train}-val{val}-seed{seed}"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _build_synthetic(target: Path, train: int, val: int, seed: int) -> None:
    """Generate the raw COCO-layout tree next to `target`, prepare it, drop the raw tree."""
    root = target.parent
    for stale in root.glob(f".{target.name}-raw-*"):  # left by a killed run; we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    if target.exists():  # an unfinished earlier attempt: no valid meta.json
        shutil.rmtree(target)
    raw = Path(tempfile.mkdtemp(dir=root, prefix=f".{target.name}-raw-"))
    try:
        _log(f"generating the synthetic dataset ({train} train + {val} val images, seed {seed}) into {target}")
        write_synthetic(raw, train=train, val=val, seed=seed)
        prepare(raw, target, log=_log)
    finally:
        shutil.rmtree(raw, ignore_errors=True)


def resolve_dataset(
    path: str | None, *, synthetic_train: int = 2000, synthetic_val: int = 200, synthetic_seed: int = 0
) -> Path:
    """The local prepared dataset directory for `data.path`.

    None = the cached synthetic dataset; a storage URI (`s3://...`, `file:///...`)
    = the node's cached copy of the dataset pushed there, fetched once per remote
    version; anything else = a local prepared directory.
    """
    if path is None:
        if synthetic_train < 1 or synthetic_val < 1:
            raise DataError(
                f"data.synthetic_train and data.synthetic_val must be >= 1, got {synthetic_train} and {synthetic_val}"
            )
        root = cache_root()
        target = root / synthetic_name(synthetic_train, synthetic_val, synthetic_seed)
        if layout.is_prepared(target):
            return target
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DataError(f"cache directory {root}: cannot be created ({error}); set ${CACHE_ENV}") from None
        with FileLock(str(root / f"{target.name}.lock")):
            if not layout.is_prepared(target):  # another process may have built it while we waited
                _build_synthetic(target, synthetic_train, synthetic_val, synthetic_seed)
        return target
    if is_uri(path):
        return remote.fetch_dataset(path, cache_root(), log=_log)
    local = Path(path).expanduser().resolve()
    layout.read_meta(local)  # DataError naming the path and how to prepare it
    return local
