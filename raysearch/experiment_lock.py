"""One driver per experiment: the running search holds its experiment's lock; a second one is refused.

Two drivers on one experiment (the same --storage and --name twice, or two
`--resume`s) would both write Tune's state, the searcher's and the trials'
files, and each would resume the other's running trials. The first driver
holds the lock for as long as it runs; the second gets one line naming the
holder and exits before Ray starts. A lock can never outlive its driver for
long, so a resume after a crash is never blocked for good:

- **A directory** (the local disk, a shared filesystem, `file://`):
  `flock` on `<experiment>/.raysearch-driver.lock`. The kernel (or the NFS
  server) releases it when the process ends, however it ends (SIGKILL, OOM,
  a lost machine's lease), so a dead driver's lock is never in the way. The
  file stays, holding the last holder's host and pid for the message; it is
  never deleted (a deleted lock file would let a third driver lock a new
  file while the second still holds the old one).
- **An object store** (`s3://`, `gs://`, ...) has no lock a process loses when
  it dies, and pyarrow writes no object only-if-absent. There the driver
  keeps a lease, `<experiment>/.raysearch-driver.lease` (host, pid, time),
  renewed every LEASE_RENEW_S; a second driver is refused while the lease is
  fresh, and a lease not renewed for LEASE_EXPIRES_S belongs to a dead driver
  (one on this host whose pid is gone is stale at once). Best effort: two
  drivers started within the same second could both pass; the driver deletes
  its lease when it ends.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from raysearch.errors import RaysearchError, first_line
from raysearch.storage import Storage

LOCK_FILE = ".raysearch-driver.lock"
LEASE_FILE = ".raysearch-driver.lease"
LEASE_RENEW_S = 20.0
LEASE_EXPIRES_S = 90.0  # several missed renewals: a slow object store does not lose a live driver its lease


class ExperimentLocked(RaysearchError):
    """Another driver is running this experiment, or its lock cannot be taken."""


def holder_record() -> dict[str, object]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}


def describe(holder: dict[str, object] | None) -> str:
    if not holder:
        return "another driver"
    return f"the driver with pid {holder.get('pid')} on {holder.get('host')} (since {holder.get('since')})"


@contextmanager
def hold(location: str) -> Iterator[None]:
    """Hold the experiment at `location` (a directory or storage URI) for this process while the block runs;
    ExperimentLocked when another live driver holds it."""
    storage = Storage(location)
    local = storage.local_path("") if storage.is_local else None
    if storage.is_local and local is None:  # file:// URI: a directory all the same
        local = Path(storage.root)
    if local is not None:
        with hold_flock(local, location):
            yield
    else:
        with hold_lease(storage, location):
            yield


@contextmanager
def hold_flock(directory: Path, location: str) -> Iterator[None]:
    """A directory's experiment: the kernel's flock on its lock file (see the module's docstring)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = open(directory / LOCK_FILE, "a+")
    except OSError as err:
        raise ExperimentLocked(f"{location}: cannot create the experiment's lock file {directory / LOCK_FILE} "
                               f"({first_line(err)})") from None
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise ExperimentLocked(_refusal(location, _parse(handle.read()))) from None
        except OSError as err:  # a filesystem without locks (some network mounts)
            raise ExperimentLocked(f"{location}: cannot lock the experiment ({first_line(err)}); is a second "
                                   "driver running? allowed: storage on a filesystem with flock, or a URI") from None
        try:  # who holds it, for the next driver's message; the lock is what counts, not this text
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(holder_record()) + "\n")
            handle.flush()
        except OSError:
            pass  # a full disk: the lock holds all the same
        yield
    finally:
        handle.close()  # releases the flock; the file stays (see the module's docstring)


@contextmanager
def hold_lease(storage: Storage, location: str) -> Iterator[None]:
    """An object store's experiment: a lease renewed while the block runs (see the module's docstring)."""
    holder = _parse(storage.read_text(LEASE_FILE) or "")
    if holder and _lease_alive(holder):
        raise ExperimentLocked(_refusal(location, holder, expires=True))
    mine = holder_record()

    def renew() -> None:
        storage.write_text(LEASE_FILE, json.dumps({**mine, "renewed": time.time()}) + "\n")

    try:
        renew()
    except OSError as err:
        raise ExperimentLocked(f"{location}: cannot write the experiment's lease {LEASE_FILE} ({first_line(err)})") \
            from None
    stop = threading.Event()

    def keep_renewing() -> None:
        while not stop.wait(LEASE_RENEW_S):
            try:
                renew()
            except OSError:
                pass  # a storage hiccup: the next renewal (or the lease's expiry) settles it

    thread = threading.Thread(target=keep_renewing, name="raysearch-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        try:
            if _parse(storage.read_text(LEASE_FILE) or "").get("pid") == mine["pid"]:
                storage.delete(LEASE_FILE)
        except OSError:
            pass  # it expires by itself


def _lease_alive(holder: dict[str, object]) -> bool:
    renewed = holder.get("renewed")
    if not isinstance(renewed, (int, float)) or time.time() - renewed > LEASE_EXPIRES_S:
        return False
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        return _pid_alive(holder["pid"])
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def _refusal(location: str, holder: dict[str, object], expires: bool = False) -> str:
    tail = (f"; a lease not renewed for {LEASE_EXPIRES_S:g} s is taken as a dead driver's" if expires else "")
    return (f"{location}: {describe(holder)} is running this experiment; one driver at a time (wait for it to end, "
            f"or stop it: Ctrl-C or kill -TERM {holder.get('pid', 'PID')} saves its state, then --resume){tail}")


def _parse(text: str) -> dict[str, object]:
    try:
        value = json.loads(text.strip() or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
