"""Is a Ray cluster there: a bounded probe before attaching to it, and a watch while a search runs on it.

Ray itself waits for a cluster that is gone: `ray.init(address="auto")` on a
machine whose last `ray start` cluster was killed (not stopped with `ray stop`)
reads the address that cluster left in Ray's marker file and retries "Failed to
connect to GCS" every 30 s, for ever; a driver whose cluster dies under it
hangs for 60 s (`gcs_rpc_server_reconnect_timeout_s`) and is then ended by Ray
without a word of what to do. Both are answered here with public means only: a
TCP connect, with a timeout, to the GCS port the address names (the port
`ray start --head --port` listens on).

Where `address="auto"` looks, as `ray.init`'s documentation says: `RAY_ADDRESS`,
then the address in `/tmp/ray/ray_current_cluster` (under `RAY_TMPDIR`, else
`TMPDIR`, else `/tmp`), which `ray start` writes and `ray stop` removes. Ray has
no public function that returns it, so the file itself is read.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from raysearch.errors import RaysearchError

# A GCS on a live machine accepts a TCP connection in milliseconds (refuses it at once when nothing listens);
# seconds cover a slow network to a remote head without letting a dead address hold the command.
PROBE_TIMEOUT_S = 3.0
# While a search runs: a probe every few seconds, and the cluster counts as lost after this long without an
# answer, well inside Ray's own 60 s before it ends the driver (and inside Kubernetes' 30 s grace, too).
WATCH_EVERY_S = 2.0
LOST_AFTER_S = 10.0

MARKER_NAME = "ray_current_cluster"


class ClusterError(RaysearchError):
    """No Ray cluster answers at the address a command was told, or found, to attach to."""


@dataclass(frozen=True)
class Target:
    """An address a command would attach to, and where it came from (shown to the user)."""

    address: str
    source: str  # "--address", "RAY_ADDRESS", or the marker file's path


def marker_file() -> Path:
    """Ray's record of the last cluster `ray start` started on this machine (documented for `ray.init`)."""
    if os.environ.get("RAY_TMPDIR"):
        base = os.environ["RAY_TMPDIR"]
    elif os.environ.get("TMPDIR"):
        base = os.environ["TMPDIR"]
    else:
        base = "/tmp"
    return Path(base) / "ray" / MARKER_NAME


def default_target() -> Target | None:
    """What `ray.init(address="auto")` attaches to, where that is a recorded address: RAY_ADDRESS, else the
    marker file's; None when neither names one (Ray then looks for running raylets, or a local Ray starts)."""
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if env and env != "auto":
        return Target(env, "RAY_ADDRESS")
    marker = marker_file()
    try:
        recorded = marker.read_text().strip()
    except OSError:  # no marker (no `ray start` here, or `ray stop` ran), or unreadable: nothing recorded
        return None
    return Target(recorded, str(marker)) if recorded else None


def host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of `host:port`, `[v6]:port` or `ray://host:port`; None for what names no TCP endpoint."""
    rest = address.strip()
    if rest.startswith("ray://"):
        rest = rest[len("ray://"):]
    if "://" in rest or rest in ("", "local", "auto"):
        return None
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def unanswered(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Why nothing answers at `address` (e.g. 'connection refused'), or None when something accepts a TCP
    connection there (or the address names no TCP endpoint to probe)."""
    endpoint = host_port(address)
    if endpoint is None:
        return None
    try:
        with socket.create_connection(endpoint, timeout=timeout_s):
            return None
    except socket.timeout:
        return f"no answer within {timeout_s:g} s"
    except socket.gaierror as err:
        return f"host not found ({err.strerror})"
    except OSError as err:
        return (err.strerror or type(err).__name__).lower()


def check_explicit(target: Target) -> None:
    """ClusterError naming the address when nothing answers at an address the user gave."""
    reason = unanswered(target.address)
    if reason is not None:
        given = "--address" if target.source == "--address" else f"{target.source}={target.address}"
        raise ClusterError(f"{given}: no Ray cluster answers at {target.address} ({reason}); start one there "
                           "(`ray start --head`), give the address of a running one, or use --address local for "
                           "a private Ray on this machine")


# ---------------------------------------------------------------- while a search runs


@dataclass(frozen=True)
class Lost:
    """What the watch saw: the address that stopped answering, why, and for how long."""

    address: str
    reason: str
    silent_s: float


@contextmanager
def watch(address: str | None, on_lost: Callable[[Lost], None], *, every_s: float = WATCH_EVERY_S,
          lost_after_s: float = LOST_AFTER_S) -> Iterator[None]:
    """Probe `address` from a daemon thread while the block runs; call `on_lost` once (from that thread) when it
    has not answered for `lost_after_s`.

    A thread, because the search's own thread may be blocked inside Ray, waiting on the dead cluster, where no
    Python code (not even a signal handler) runs until Ray gives up.
    """
    if address is None or host_port(address) is None:
        yield
        return
    stop = threading.Event()

    def run() -> None:
        silent_since: float | None = None
        while not stop.wait(every_s):
            reason = unanswered(address, timeout_s=min(PROBE_TIMEOUT_S, every_s))
            if reason is None:
                silent_since = None
                continue
            now = time.monotonic()
            silent_since = now if silent_since is None else silent_since
            if now - silent_since >= lost_after_s and not stop.is_set():
                on_lost(Lost(address, reason, now - silent_since))
                return

    thread = threading.Thread(target=run, name="raysearch-cluster-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
