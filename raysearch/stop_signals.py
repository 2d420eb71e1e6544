"""SIGTERM stops a search as Ctrl-C does: Tune saves the experiment's state, the command prints how to resume.

SIGTERM is what asks a process to end everywhere a search runs unattended:
`ray job stop` (to the job's processes, then SIGKILL after
RAY_JOB_STOP_WAIT_TIME_S, 3 s by default), Slurm's `scancel`, Kubernetes
(30 s before SIGKILL) and systemd. Tune stops cleanly on SIGINT (and SIGUSR1)
only: its handler ends the trial loop, saves the experiment's state once more
and returns the results so far; Python's default for SIGTERM ends the
process at once. While a search runs, SIGTERM is therefore handed to
whatever handles SIGINT at that moment (Tune's handler during `Tuner.fit`,
Python's KeyboardInterrupt before it), after one line that says what is
happening and how to resume, written before anything else in case a SIGKILL
follows.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def say(line: str) -> None:
    """Write a line to stderr from a signal handler: unbuffered, so it cannot re-enter a print it interrupted."""
    try:
        os.write(2, (line.rstrip("\n") + "\n").encode())
    except OSError:
        pass


@contextmanager
def sigterm_as_ctrl_c(notice: Callable[[], str]) -> Iterator[list[int]]:
    """While the block runs, SIGTERM writes `notice()` to stderr and then acts as SIGINT. Yields a list that
    holds the signal's number once one came (for the command's exit line). A no-op outside the main thread,
    where Python cannot set handlers."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def on_sigterm(signum: int, frame) -> None:
        received.append(signum)
        say(notice())
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)  # Tune's: ends the loop, saves the state; or Python's: KeyboardInterrupt
        else:
            raise KeyboardInterrupt  # SIGINT ignored (a background job): stop all the same

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)
