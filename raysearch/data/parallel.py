"""Map a function over tasks in order, on a process pool when it is worth it."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from raysearch.errors import DataError

T = TypeVar("T")
R = TypeVar("R")

# Below this many tasks a pool costs more to start than it saves.
MIN_PARALLEL_TASKS = 64

Mapper = Callable[[Callable[[Any], Any], Sequence[Any]], Iterator[Any]]


def resolve_workers(workers: int | None) -> int:
    if workers is None:
        return os.cpu_count() or 1
    if workers < 1:
        raise DataError(f"--workers: must be >= 1, got {workers}")
    return workers


def _serial(fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
    return map(fn, tasks)


@contextmanager
def ordered_mapper(workers: int, tasks: int) -> Iterator[Mapper]:
    """A `map(fn, tasks)` that yields results in task order; `fn` must be module-level.

    The children are spawned, not forked: this runs inside Ray workers and
    training processes, whose other threads (OpenMP / OpenBLAS pools started
    by torch and numpy, gRPC) may hold locks at fork time, and a forked child
    that needs one of them hangs forever. That hang was seen here: a
    synthetic dataset prepared inside a Ray Train worker stopped in its pool.
    """
    if workers <= 1 or tasks < MIN_PARALLEL_TASKS:
        yield _serial
        return
    processes = min(workers, tasks)
    chunksize = max(1, min(64, tasks // (processes * 4)))
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        yield lambda fn, items: pool.imap(fn, items, chunksize=chunksize)
