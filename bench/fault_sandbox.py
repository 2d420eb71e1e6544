"""What bench/faults.py runs its faults in: free loopback ports, `ray start` clusters, commands with their
output in files, all inside one directory of its own (HOME for Ray's token, RAY_TMPDIR for Ray's sessions
and marker), and every process it started found and killed by pid (never another's Ray)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
RAY = str(Path(sys.executable).parent / "ray")


def free_ports(count: int) -> list[int]:
    """`count` TCP ports free on 127.0.0.1 right now (for a Ray or an sshd a test or the harness starts)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def listening(port: int) -> bool:
    """Something accepts connections on 127.0.0.1:`port`."""
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def processes_under(root: Path) -> list[int]:
    """Pids of this machine's processes whose command line names `root` (Ray's, started by this script)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(root) in command:
            found.append(int(entry))
    return found


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (by parent pid), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass
class Sandbox:
    """A directory of this script's own: HOME (Ray's token), RAY_TMPDIR (Ray's sessions and marker), storage."""

    root: Path

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ, HOME=str(self.root / "home"), RAY_TMPDIR=str(self.root), RAY_USAGE_STATS_ENABLED="0",
                   RAY_AUTH_MODE="token", PYTHONUNBUFFERED="1")
        env.pop("RAY_ADDRESS", None)
        return env

    def setup(self, space: Path) -> None:
        """The token every Ray here uses, and the smoke test's dataset and classical fills made once, so a
        fault's time to the user is not the first search's dataset generation."""
        (self.root / "home").mkdir(parents=True, exist_ok=True)
        subprocess.run([RAY, "get-auth-token", "--generate"], env=self.env, check=True, capture_output=True,
                       timeout=60)
        subprocess.run([PYTHON, "-c", "import sys; from raysearch.baselines import baselines_of; "
                        "from raysearch.constants import SMOKE_OVERRIDES; from raysearch.spaces import load_space; "
                        "baselines_of(load_space(sys.argv[1], SMOKE_OVERRIDES).config)", str(space)],
                       cwd=REPO, env=self.env, check=True, capture_output=True, timeout=600)

    def cleanup(self) -> None:
        for _ in range(2):
            kill_pids(processes_under(self.root))
            time.sleep(1)


@dataclass
class Cluster:
    """A `ray start --head --block` cluster on free ports, its marker under the sandbox's RAY_TMPDIR."""

    sandbox: Sandbox
    gcs: int = 0
    dashboard: int = 0
    process: subprocess.Popen | None = None

    def start(self) -> None:
        self.gcs, self.dashboard, client, agent, agent_grpc, runtime_env, metrics = free_ports(7)
        log = open(self.sandbox.root / f"head-{self.gcs}.log", "w")
        self.process = subprocess.Popen(
            [RAY, "start", "--head", "--num-cpus", "2", "--num-gpus", "0", f"--port={self.gcs}",
             f"--dashboard-port={self.dashboard}", f"--ray-client-server-port={client}",
             f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
             f"--runtime-env-agent-port={runtime_env}", f"--metrics-export-port={metrics}",
             "--disable-usage-stats", "--block"],
            env=self.sandbox.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while not (listening(self.gcs) and listening(self.dashboard)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start failed: see {log.name}")
            time.sleep(0.5)
        time.sleep(3)  # the dashboard's job API comes up just after its port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs}"

    def kill(self) -> None:
        """SIGKILL to every process of the cluster (as a crash, an OOM kill or a lost VM): no `ray stop`."""
        kill_pids(descendants(self.process.pid))
        self.process.wait(timeout=30)


@dataclass
class Run:
    """One `python -m raysearch.tune` (or any command), its output in files, its time of start."""

    name: str
    process: subprocess.Popen
    out: Path
    err: Path
    started: float

    @classmethod
    def start(cls, sandbox: Sandbox, name: str, args: list[str], env: dict[str, str] | None = None) -> "Run":
        out, err = sandbox.root / f"{name}.out", sandbox.root / f"{name}.err"
        process = subprocess.Popen(args, cwd=REPO, env=env or sandbox.env, stdout=open(out, "w"),
                                   stderr=open(err, "w"), start_new_session=True)
        return cls(name, process, out, err, time.monotonic())

    def text(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def wait_for_text(self, pattern: str, since: float, timeout: float) -> float | None:
        """Seconds from `since` until `pattern` is in the output (None: not within `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.text()):
                return time.monotonic() - since
            if self.process.poll() is not None:
                return time.monotonic() - since if re.search(pattern, self.text()) else None
            time.sleep(0.2)
        return None

    def wait(self, timeout: float) -> int | None:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.process.poll() is None:
            kill_pids(descendants(self.process.pid))
            self.process.wait(timeout=30)
