"""What a search says when a fault stops it: one line each, with what happened, what is kept, and the
command that continues it (docs/faults.md lists every fault and what to do).

The search command (tune.py) decides when; this module only words the lines
and finds, in whatever Ray raises, the storage error underneath.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
from dataclasses import dataclass

from raysearch.cluster_health import Lost
from raysearch.stop_signals import say
from raysearch.storage_health import StorageFault

# After a fault, how long Tune may take to stop as on Ctrl-C (end its loop, save what the storage still takes,
# stop its trials) before the process ends anyway: inside Kubernetes' 30 s, and Ray's own 60 s on a lost GCS.
STOP_GRACE_S = 25.0

# The storage errors a search can meet mid-way: the disk or quota full, the permission or the mount lost.
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO, errno.ENOTDIR,
                  errno.ESTALE, errno.ENOTCONN, errno.ETIMEDOUT, errno.EHOSTUNREACH}


@dataclass(frozen=True)
class StorageFailure:
    """A storage error: the path it names (None when the error names none) and its message."""

    path: str | None
    message: str


def storage_failure(error: BaseException) -> StorageFailure | None:
    """The storage error in `error`'s chain of causes (Tune wraps what its callbacks and trials raise), or None
    when the chain holds none: then the error is not a storage fault and keeps its traceback."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and (current.errno in STORAGE_ERRNOS or _arrow_io_error(current)):
            path = current.filename if isinstance(current.filename, str) else None
            message = current.strerror or " ".join(str(current).split())
            return StorageFailure(path, message)
        current = current.__cause__ or current.__context__
    return None


def _arrow_io_error(error: OSError) -> bool:
    """pyarrow raises OSError without an errno for a remote store that fails (e.g. `When uploading part ...`)."""
    return error.errno is None and type(error).__module__.startswith("pyarrow")


def storage_line(where: str, message: str, experiment_path: str, resume: str) -> str:
    return (f"storage failed at {where}: {message}; the search stopped. Finished trials, their results and every "
            f"checkpoint saved whole are kept in {experiment_path} (a checkpoint becomes a trial's latest only once "
            f"it is whole); once the storage takes writes again, continue with: {resume}")


def stop_on_storage_fault(fault: StorageFault, experiment_path: str, resume: str, code: int) -> None:
    """Say that the storage failed and stop the search as Ctrl-C does (called from the storage watch's thread):
    Tune ends its loop at its next step and returns what it has; if it has not within STOP_GRACE_S (a
    storage that hangs can hold its last save), the process ends with `code`."""
    say(f"error: {storage_line(fault.location, fault.message, experiment_path, resume)}")
    os.kill(os.getpid(), signal.SIGINT)  # Tune's handler during the search; KeyboardInterrupt before it
    exit_later(code, STOP_GRACE_S, f"the search did not stop within {STOP_GRACE_S:g} s of the storage fault; "
                                   f"ending it now. Continue with: {resume}")


def exit_later(code: int, after_s: float, line: str) -> None:
    """End the process with `code` after `after_s` unless it has ended by then (a daemon thread dies with it)."""

    def end() -> None:
        say(f"error: {line}")
        _flush_and_exit(code)

    timer = threading.Timer(after_s, end)
    timer.daemon = True
    timer.start()


def _flush_and_exit(code: int) -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError, RuntimeError):
        pass  # stdout gone or in use: the lines went to stderr unbuffered
    os._exit(code)


def sigterm_notice(resume: str) -> str:
    return (f"SIGTERM: stopping the search as Ctrl-C does (Tune saves the experiment's state); continue it "
            f"with: {resume}")


def interrupted_before_tune(experiment_path: str, resume: str | None) -> str:
    """Stopped before Tune's loop ran: continue with `resume` where Tune had saved the experiment, else anew."""
    if resume is not None:
        return f"stopped before the search went on; {experiment_path} is as it was; continue it with: {resume}"
    return (f"stopped before the search began (Tune had saved nothing of {experiment_path}); start it again "
            "without --resume")


def exit_on_lost_cluster(lost: Lost, experiment_path: str, resume: str, code: int) -> None:
    """Say that the cluster is gone and end this process now (called from the cluster watch's thread).

    Ray would end it by itself 60 s after losing the GCS, without a word; the search's own thread may be
    blocked inside Ray, so nothing but an exit from here is bounded. What Tune last saved (it saves the
    experiment's state every few seconds and at every checkpoint) is what --resume continues from, as after
    a killed driver.
    """
    say(f"error: the Ray cluster at {lost.address} stopped answering ({lost.reason} for {lost.silent_s:.0f} s): "
        f"the search stopped. Finished trials, results and checkpoints are kept in {experiment_path}; once a "
        f"cluster runs again continue with: {resume} (add --address local for a private Ray on this machine)")
    _flush_and_exit(code)
