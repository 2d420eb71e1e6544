"""Does the search's storage still take writes: a small probe file written every few seconds while a search runs.

Ray Tune does not stop a search whose storage fails. Its driver logs each
failed copy of the experiment's state and goes on; each trial that cannot
save a checkpoint fails, is restarted from its last one, fails again, and
ends in error; the searcher then proposes the next trial, which fails in turn
(measured: a full disk turned a 4-trial search into 12 failures and 4 errored
trials in 80 s, each retry first training an epoch). The watch here writes
`.raysearch-storage-probe` into the experiment every few seconds through
the same storage layer, and calls back once when a write fails (a full disk
or quota, a permission or mount lost, a read-only filesystem) or hangs (a
storage URI that stopped answering), so the search can stop at once, as
Ctrl-C stops it, with one line naming the storage and its error.

A write of a few bytes succeeds on a disk with a few bytes left: a disk that
fills up slowly can still fail a trial's larger checkpoint first. That trial
then fails and restarts from its last checkpoint as Tune allows; its error and
the resume command are in the search's final report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from raysearch.errors import first_line
from raysearch.storage import Storage

PROBE_FILE = ".raysearch-storage-probe"
PROBE_EVERY_S = 5.0  # a directory: a write costs nothing
PROBE_URI_EVERY_S = 30.0  # an object store: a request (and its price) every 30 s, a fault told within a minute
# A probe write that has not returned after this long: the storage stopped answering (a local write takes
# milliseconds, an object store's small PUT well under a second).
PROBE_HANGS_AFTER_S = 30.0


@dataclass(frozen=True)
class StorageFault:
    """The storage location that failed a probe write, and why."""

    location: str
    message: str


def probe(storage: Storage) -> str | None:
    """Write the probe file once (whole, as every raysearch write); the error's first line, or None."""
    try:
        storage.write_text(PROBE_FILE, f"{time.time():.3f}\n")
    except OSError as err:
        return first_line(err)
    return None


@contextmanager
def watch(location: str, on_fault: Callable[[StorageFault], None], *, every_s: float | None = None,
          hangs_after_s: float = PROBE_HANGS_AFTER_S) -> Iterator[None]:
    """Probe `location` from a daemon thread while the block runs (every `every_s`; by default PROBE_EVERY_S, or
    PROBE_URI_EVERY_S for an object store); call `on_fault` once (from that thread) at the first write that
    fails or hangs. The probe file is removed at the end unless the storage failed."""
    storage = Storage(location)
    if every_s is None:
        every_s = PROBE_EVERY_S if storage.is_local else PROBE_URI_EVERY_S
    stop = threading.Event()

    def probe_in_thread() -> str | None:
        outcome: list[str | None] = []
        worker = threading.Thread(target=lambda: outcome.append(probe(storage)), name="raysearch-storage-probe",
                                  daemon=True)
        worker.start()
        worker.join(hangs_after_s)
        if not outcome:
            return f"a write of a few bytes did not return within {hangs_after_s:g} s"
        return outcome[0]

    faulted = threading.Event()

    def run() -> None:
        while not stop.wait(every_s):
            failure = probe_in_thread()
            if failure is not None and not stop.is_set():
                faulted.set()
                on_fault(StorageFault(storage.location, failure))
                return

    thread = threading.Thread(target=run, name="raysearch-storage-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        if not faulted.is_set():  # a failed storage may not answer a delete either: the file (a few bytes) stays
            try:
                storage.delete(PROBE_FILE)
            except OSError:
                pass
