"""cluster.yaml and cluster-local.yaml: Ray's launcher validation, the project's rules, and `ray up` on loopback."""

from __future__ import annotations

import copy
import getpass
import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import ray
import yaml

from raysearch import cluster_config
from raysearch.cluster_config import (
    AUTH_MODE,
    TOKEN_PATH,
    check_cluster_file,
    check_ray_version,
    load_cluster_yaml,
    project_ray_requirement,
    validate_with_ray,
)
from raysearch.errors import ConfigError
from tests.conftest import free_ports, listening, tail

REPO = Path(__file__).resolve().parents[1]
AWS = REPO / "cluster.yaml"
LOCAL = REPO / "cluster-local.yaml"


@pytest.fixture(autouse=True)
def launching_home(tmp_path_factory, monkeypatch):
    """The launching machine's home, holding the token `ray get-auth-token --generate` writes (the shipped files
    mount it onto every node): a fresh one per test, never this machine's own ~/.ray."""
    home = tmp_path_factory.mktemp("home")
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    monkeypatch.setenv("HOME", str(home))
    return home


def shipped(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def write(tmp_path: Path, config: dict, name: str = "cluster.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def replace_in_commands(config: dict, old: str, new: str) -> dict:
    config = copy.deepcopy(config)
    for key in cluster_config.COMMAND_KEYS:
        if key in config:
            config[key] = [command.replace(old, new) for command in config[key]]
    return config


def rejected(tmp_path: Path, config: dict, *fragments: str) -> str:
    """check_cluster_file fails with one line naming the file and every fragment."""
    path = write(tmp_path, config)
    with pytest.raises(ConfigError) as info:
        check_cluster_file(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:"), message
    for fragment in fragments:
        assert fragment in message, message
    return message


# ---------------------------------------------------------------- the shipped files


@pytest.mark.parametrize("path", [AWS, LOCAL], ids=["cluster.yaml", "cluster-local.yaml"])
def test_shipped_file_passes_rays_validation_and_project_checks(path):
    prepared = check_cluster_file(path)
    assert check_ray_version(prepared, path) == ray.__version__  # the version the project is tested with
    assert project_ray_requirement().specifier.contains(ray.__version__)


def test_aws_file_shape():
    config = shipped(AWS)
    workers = [t for name, t in config["available_node_types"].items() if name != config["head_node_type"]]
    assert workers and all(t["min_workers"] == 0 for t in workers)
    assert config["file_mounts"] == {"~/raysearch": ".", TOKEN_PATH: TOKEN_PATH}
    assert any("pip install -q -e ~/raysearch" in c for c in config["head_setup_commands"])
    assert any("pip install -q -e ~/raysearch" in c for c in config["worker_setup_commands"])
    assert config["provider"]["security_group"]["IpPermissions"] == []
    assert cluster_config.storage_setting(validate_with_ray(config, AWS))[1].startswith("s3://")


def test_cli_ok_and_error(tmp_path, capsys):
    assert cluster_config.main([str(AWS), str(LOCAL)]) == 0
    out = capsys.readouterr().out
    assert f"{AWS}: OK" in out and f"{LOCAL}: OK" in out
    bad = write(tmp_path, replace_in_commands(shipped(AWS), "==2.60.0", "==2.59.0"))
    assert cluster_config.main([str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {bad}:") and "2.59.0" in err[0]


def test_cli_subprocess_exit_status(tmp_path):
    bad = tmp_path / "missing.yaml"
    run = subprocess.run([sys.executable, "-m", "raysearch.cluster_config", str(bad)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip() == f"error: {bad}: cannot read the cluster config (No such file or directory)"


# ---------------------------------------------------------------- Ray version


def test_wrong_ray_version(tmp_path):
    rejected(tmp_path, replace_in_commands(shipped(AWS), "==2.60.0", "==2.59.0"),
             "setup_commands[0]", "Ray 2.59.0", "pyproject.toml", ">=2.60")


def test_ray_not_pinned_exactly(tmp_path):
    rejected(tmp_path, replace_in_commands(shipped(LOCAL), "==2.60.0", ">=2.60"), "setup_commands[1]",
             "not an exact pin", "ray[default,train,tune]==X.Y.Z with X.Y.Z in")


def test_ray_without_the_projects_extras(tmp_path):
    rejected(tmp_path, replace_in_commands(shipped(AWS), "ray[default,tune,train]==2.60.0", "ray==2.60.0"),
             "lacks the extras", "'default'")


def test_ray_not_installed_by_setup(tmp_path):
    config = shipped(LOCAL)
    config["setup_commands"] = [c for c in config["setup_commands"] if "ray[" not in c]
    rejected(tmp_path, config, "setup_commands:", "no command installs Ray")


def test_docker_image_of_another_ray(tmp_path):
    config = shipped(AWS)
    config["docker"]["worker_image"] = "rayproject/ray:2.59.0-py311-gpu"
    rejected(tmp_path, config, "docker.worker_image", "rayproject/ray:2.59.0-py311-gpu")
    config["docker"]["worker_image"] = "rayproject/ray:latest-gpu"
    rejected(tmp_path, config, "docker.worker_image", "latest-gpu")


# ---------------------------------------------------------------- storage


@pytest.mark.parametrize("value, fragment", [
    ("/home/ubuntu/runs", "path on the head node (provider.type aws)"),
    ("runs/tune", "relative or home path"),
    ("~/runs", "relative or home path"),
    ("file:///tmp/runs", "is not storage every node reaches"),
])
def test_head_local_storage_on_aws(tmp_path, value, fragment):
    config = replace_in_commands(shipped(AWS), "s3://YOUR-BUCKET/raysearch", value)
    rejected(tmp_path, config, "setup_commands[1]", fragment, "s3://")


def test_storage_missing(tmp_path):
    config = shipped(AWS)
    config["setup_commands"] = [c for c in config["setup_commands"] if "RAYSEARCH_STORAGE" not in c]
    rejected(tmp_path, config, "setup_commands:", "no `RAYSEARCH_STORAGE=...`", "head-local")


def test_storage_set_twice_differently(tmp_path):
    config = shipped(AWS)
    config["head_setup_commands"].append("export RAYSEARCH_STORAGE=gs://other/raysearch")
    rejected(tmp_path, config, "different values", "gs://other/raysearch", "s3://YOUR-BUCKET/raysearch")


@pytest.mark.parametrize("uri", ["gs://bucket/x", "abfs://container@account.dfs.core.windows.net/x", "s3://b"])
def test_cloud_storage_uris_pass(tmp_path, uri):
    check_cluster_file(write(tmp_path, replace_in_commands(shipped(AWS), "s3://YOUR-BUCKET/raysearch", uri)))


def test_local_storage_must_be_on_the_declared_shared_filesystem(tmp_path):
    config = shipped(LOCAL)
    rejected(tmp_path, replace_in_commands(config, "RAYSEARCH_STORAGE=/mnt/shared/raysearch",
                                           "RAYSEARCH_STORAGE=/home/lab/runs"),
             "not under the shared filesystem", "RAYSEARCH_SHARED_FS=/mnt/shared")
    rejected(tmp_path, replace_in_commands(config, "RAYSEARCH_SHARED_FS=/mnt/shared ", ""),
             "no `RAYSEARCH_SHARED_FS=<mount point>`")
    rejected(tmp_path, replace_in_commands(config, "RAYSEARCH_STORAGE=/mnt/shared/raysearch",
                                           "RAYSEARCH_STORAGE=/mnt/sharedother/raysearch"),
             "not under the shared filesystem")
    check_cluster_file(write(tmp_path, replace_in_commands(config, "/mnt/shared", "/nfs/lab")))


# ---------------------------------------------------------------- token authentication


@pytest.mark.parametrize("path, key", [(AWS, "head_start_ray_commands"), (AWS, "worker_start_ray_commands"),
                                       (LOCAL, "head_start_ray_commands"), (LOCAL, "worker_start_ray_commands")])
def test_a_ray_start_without_token_auth_is_refused(tmp_path, path, key):
    config = shipped(path)
    config[key] = [c.replace(f"{AUTH_MODE} ", "") for c in config[key]]
    rejected(tmp_path, config, key, "RAY_AUTH_MODE=token")


@pytest.mark.parametrize("path", [AWS, LOCAL], ids=["aws", "local"])
def test_the_token_must_travel_to_every_node(tmp_path, path):
    config = shipped(path)
    del config["file_mounts"][TOKEN_PATH]
    rejected(tmp_path, config, "file_mounts", TOKEN_PATH, "ray get-auth-token --generate")


def test_a_token_that_was_never_generated_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "fresh-home"))  # `~` of the launching machine: no token there yet
    rejected(tmp_path, shipped(AWS), f"file_mounts.{TOKEN_PATH}", "does not exist", "ray get-auth-token --generate")


# ---------------------------------------------------------------- network


def test_dashboard_port_open_in_security_group(tmp_path):
    config = shipped(AWS)
    config["provider"]["security_group"]["IpPermissions"] = [
        {"IpProtocol": "tcp", "FromPort": 8265, "ToPort": 8265, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    rejected(tmp_path, config, "provider.security_group.IpPermissions[0]", "8265", "TCP port 22 only",
             "ray dashboard")


def test_ssh_rule_passes(tmp_path):
    config = shipped(AWS)
    config["provider"]["security_group"]["IpPermissions"] = [
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "203.0.113.0/24"}]}]
    check_cluster_file(write(tmp_path, config))


def test_unverifiable_security_groups(tmp_path):
    config = shipped(AWS)
    config["available_node_types"]["gpu_worker"]["node_config"]["SecurityGroupIds"] = ["sg-0123"]
    rejected(tmp_path, config, "available_node_types.gpu_worker.node_config", "sg-0123")


@pytest.mark.parametrize("path", [AWS, LOCAL], ids=["aws", "local"])
def test_dashboard_on_all_interfaces(tmp_path, path):
    config = shipped(path)
    config["head_start_ray_commands"][-1] += " --dashboard-host=0.0.0.0"
    rejected(tmp_path, config, "head_start_ray_commands[1]", "--dashboard-host=0.0.0.0", "localhost")


def test_aws_default_start_commands_expose_the_dashboard(tmp_path):
    """Ray's AWS defaults start the head with --dashboard-host=0.0.0.0: leaving the commands out is caught."""
    config = shipped(AWS)
    del config["head_start_ray_commands"]
    rejected(tmp_path, config, "--dashboard-host=0.0.0.0")


# ---------------------------------------------------------------- Ray's own schema and launcher checks


def test_schema_unknown_key(tmp_path):
    config = shipped(AWS)
    config["max_worker"] = 3
    rejected(tmp_path, config, "unknown key max_worker", "max_workers", "schema")


def test_schema_has_no_ssh_port(tmp_path):
    """Ray's launcher always ssh-es to port 22 (hence the proxy command in the loopback test below)."""
    config = shipped(LOCAL)
    config["auth"]["ssh_port"] = 2222
    rejected(tmp_path, config, "auth: unknown key ssh_port", "ssh_proxy_command")


def test_schema_wrong_type(tmp_path):
    config = shipped(LOCAL)
    config["auth"]["ssh_user"] = 42
    rejected(tmp_path, config, "auth.ssh_user", "42", "schema")


def test_schema_unquoted_colon_in_a_command(tmp_path):
    """`- echo head: starting` unquoted in YAML is a mapping, not a command: Ray's schema says so."""
    start = "head_start_ray_commands:\n  - ~/raysearch-venv/bin/ray stop\n"
    assert start in LOCAL.read_text()
    text = LOCAL.read_text().replace(start, start + "  - echo head: starting\n")
    path = tmp_path / "cluster-local.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"head_start_ray_commands\[1\]: .* is not of type string"):
        check_cluster_file(path)


def test_schema_missing_provider(tmp_path):
    config = shipped(AWS)
    del config["provider"]
    rejected(tmp_path, config, "'provider' is a required property")


def test_launcher_rejects_unknown_head_type(tmp_path):
    config = shipped(AWS)
    config["head_node_type"] = "nope"
    rejected(tmp_path, config, "Ray's cluster launcher rejects", "head_node_type")


def test_local_provider_rejects_node_types(tmp_path):
    config = shipped(LOCAL)
    config["available_node_types"] = {"x": {"resources": {}, "node_config": {}}}
    rejected(tmp_path, config, "available_node_types: not allowed with provider.type local")


def test_local_provider_needs_ips(tmp_path):
    config = shipped(LOCAL)
    del config["provider"]["worker_ips"]
    rejected(tmp_path, config, "provider.worker_ips: required")


def test_not_yaml_and_not_a_mapping(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("cluster_name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+ column \d+ not valid YAML"):
        load_cluster_yaml(path)
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_cluster_yaml(path)


# ---------------------------------------------------------------- `ray up` on loopback (slow)

SSHD = "/usr/sbin/sshd"
RELAY = '''\
"""ssh ProxyCommand: connect stdin/stdout to HOST:PORT (Ray's launcher always ssh-es to port 22)."""
import os, socket, sys, threading
conn = socket.create_connection((sys.argv[1], int(sys.argv[2])))
def upstream():
    while data := os.read(0, 65536):
        conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)
threading.Thread(target=upstream, daemon=True).start()
while data := conn.recv(65536):
    os.write(1, data)
'''


def _ensure_ssh_tools() -> None:
    """openssh-server and rsync (CI installs them in .ci/run; install here if missing, else skip)."""
    missing = [tool for tool in (SSHD, "ssh", "ssh-keygen", "rsync") if not shutil.which(tool)]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"`ray up` on loopback needs openssh-server and rsync (missing: {', '.join(missing)})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-qq", "openssh-server", "rsync"]
    if subprocess.run(install, env=env, capture_output=True, timeout=300).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=300)
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            pytest.skip(f"cannot install openssh-server and rsync: {result.stderr.strip()[-300:]}")


def _pid_namespaces_work() -> bool:
    """`ray down` runs `ray stop`, which stops every Ray process it can see: run the head in its own PID namespace."""
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "true"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


def _ray_processes(marker: str | None = None) -> list[int]:
    """Pids of Ray daemons on this machine (those whose command line contains `marker`, if given)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(name in cmdline for name in ("raylet", "gcs_server", "ray::", "default_worker.py")):
            if marker is None or marker in cmdline:
                pids.append(int(entry.name))
    return pids


class LoopbackSSHD:
    """An sshd on 127.0.0.1:<free port> with generated host and client keys, a private HOME and Ray's PATH.

    Ray's launcher cannot be told an ssh port, so its `auth.ssh_proxy_command`
    carries the connection to this port. The sshd sets HOME to a directory of
    the test (the launcher writes ~/ray_bootstrap_config.yaml, ~/raysearch and
    the key there, not into root's home) and puts this Python's bin directory
    first on PATH (login shells reset PATH from /etc/profile; the HOME's
    .bashrc puts it back, so the bare `ray stop` of `ray down` is this Ray).
    Where PID namespaces work, sshd runs as PID 1 of its own namespace: `ray
    stop` over ssh then sees only the cluster's processes, and stopping sshd
    ends every process started through it.
    """

    def __init__(self, root: Path, env_for_sessions: dict[str, str]):
        self.root = root
        self.port = free_ports(1)[0]
        self.home = root / "home"
        self.home.mkdir()
        self.bindir = str(Path(sys.executable).parent)
        self.key = root / "client_key"
        self.relay = root / "relay.py"
        self.relay.write_text(RELAY)
        self.log = root / "sshd.log"
        self.isolated = _pid_namespaces_work()
        self.process: subprocess.Popen | None = None
        for name in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)],
                           check=True, capture_output=True, timeout=60)
        shutil.copy(root / "client_key.pub", root / "authorized_keys")
        (self.home / ".bashrc").write_text(f"export PATH={self.bindir}:$PATH\n")
        env = " ".join(f"{k}={v}" for k, v in {"HOME": self.home, "PATH": f"{self.bindir}:/usr/local/bin:/usr/bin:/bin",
                                                **env_for_sessions}.items())
        (root / "sshd_config").write_text(f"""\
ListenAddress 127.0.0.1:{self.port}
HostKey {root / 'host_key'}
PidFile {root / 'sshd.pid'}
AuthorizedKeysFile {root / 'authorized_keys'}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
SetEnv {env}
""")

    @property
    def proxy_command(self) -> str:
        return f"{sys.executable} {self.relay} %h {self.port}"

    def start(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)  # sshd's privilege-separation dir
        command = [SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")]
        if self.isolated:
            command = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"] + command
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while not listening(self.port):
            if self.process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"sshd did not start: {tail(self.log)}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop sshd (in a namespace: its PID 1, which takes every process of the namespace with it)."""
        if self.process is None or self.process.poll() is not None:
            return
        target = self.process.pid
        if self.isolated:  # unshare ignores SIGTERM; its forked child is the namespace's sshd
            children = Path(f"/proc/{target}/task/{target}/children")
            found = children.read_text().split() if children.exists() else []
            target = int(found[0]) if found else target
        os.kill(target, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()  # --kill-child: the namespace goes with it
            self.process.wait(timeout=20)


def _space_with_ddp_trials(directory: Path) -> Path:
    """The l2 space with each trial trained by two DDP workers of 1 CPU."""
    values = yaml.safe_load((REPO / "search_spaces" / "l2.yaml").read_text())
    values.setdefault("tune", {}).setdefault("resources", {})["workers"] = 2
    path = directory / "l2_ddp.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def _loopback_config(sshd: LoopbackSSHD, cluster_name: str, ports: dict[str, int], temp_dir: Path) -> dict:
    """cluster-local.yaml pointed at 127.0.0.1: same file mounts, resources and start command, this Python's Ray."""
    config = shipped(LOCAL)
    config["cluster_name"] = cluster_name
    config["provider"].update(head_ip="127.0.0.1", worker_ips=[])
    config["auth"] = {"ssh_user": getpass.getuser(), "ssh_private_key": str(sshd.key),
                      "ssh_proxy_command": sshd.proxy_command}
    # The project is installed in this Python already: check instead of reinstalling the world.
    config["setup_commands"] = [
        "test -f ~/raysearch/pyproject.toml",
        f"{sys.executable} -c 'import raysearch, ray; print(\"raysearch on Ray\", ray.__version__)'",
    ]
    venv = "~/raysearch-venv/bin/"
    start = config["head_start_ray_commands"]
    assert start[0] == f"{venv}ray stop" and f"{venv}ray start --head --port=6379" in start[1], start
    isolation = " ".join([
        f"--port={ports['gcs']}", f"--dashboard-port={ports['dashboard']}",
        f"--ray-client-server-port={ports['client']}", f"--dashboard-agent-listen-port={ports['agent']}",
        f"--dashboard-agent-grpc-port={ports['agent_grpc']}", f"--runtime-env-agent-port={ports['runtime_env']}",
        f"--metrics-export-port={ports['metrics']}", f"--temp-dir={temp_dir}", "--disable-usage-stats",
    ])
    config["head_start_ray_commands"] = [c.replace(venv, sshd.bindir + "/").replace("--port=6379", isolation)
                                         for c in start]
    config["worker_start_ray_commands"] = []
    return config


@pytest.mark.slow
@pytest.mark.ray  # Ray: one at a time (conftest)
def test_ray_up_loopback_with_token_auth_runs_a_smoke_search_as_a_job(dataset_cache):
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("`ray up` on loopback starts an sshd: needs Linux and root")
    _ensure_ssh_tools()
    # A short root: Ray's Unix sockets live under --temp-dir and their paths are limited to ~107 bytes.
    root = Path(tempfile.mkdtemp(prefix="rs-up-", dir="/tmp"))
    cluster_name = f"raysearch-up-{root.name}"
    ray_temp = root / "ray"
    storage = root / "storage"
    launcher_env = dict(os.environ, RAY_TMPDIR=str(root / "launcher"), TMPDIR=str(root / "launcher"),
                        RAY_USAGE_STATS_ENABLED="0")
    (root / "launcher").mkdir()
    sshd = LoopbackSSHD(root, {"RAY_TMPDIR": str(root / "head"), "RAYSEARCH_CACHE": str(dataset_cache),
                               "RAY_USAGE_STATS_ENABLED": "0"})
    if not sshd.isolated and _ray_processes():
        pytest.skip("no PID namespaces here, and other Ray processes run: `ray down` (its `ray stop`) would stop them")
    ports = dict(zip(["gcs", "dashboard", "client", "agent", "agent_grpc", "runtime_env", "metrics"], free_ports(7)))
    config_path = root / "cluster-loopback.yaml"
    config_path.write_text(yaml.safe_dump(_loopback_config(sshd, cluster_name, ports, ray_temp), sort_keys=False))
    validate_with_ray(load_cluster_yaml(config_path), config_path)
    ray_cli = str(Path(sys.executable).parent / "ray")
    timings: dict[str, float] = {}

    def launcher(*args: str, timeout: int) -> subprocess.CompletedProcess:
        started = time.time()
        log = root / f"ray-{args[0]}.log"
        with open(log, "w") as out:
            result = subprocess.run([ray_cli, *args, str(config_path)], cwd=REPO, env=launcher_env, stdout=out,
                                    stderr=subprocess.STDOUT, timeout=timeout)
        timings[f"ray {args[0]}"] = time.time() - started
        assert result.returncode == 0, f"`ray {' '.join(args)}` failed:\n{tail(log)}\nsshd:\n{tail(sshd.log, 20)}"
        return result

    try:
        sshd.start()
        launcher("up", "-y", "--no-config-cache", timeout=240)
        address = f"127.0.0.1:{ports['gcs']}"
        assert (sshd.home / "raysearch" / "pyproject.toml").is_file()  # file_mounts synced the repository
        assert (sshd.home / "ray_bootstrap_config.yaml").is_file()  # into the sshd's HOME, not root's

        # Token authentication is on: a client without the token is refused, one with it runs a task.
        authed_env = dict(launcher_env, RAY_AUTH_MODE="token")
        dashboard = f"http://127.0.0.1:{ports['dashboard']}"
        refused = subprocess.run([ray_cli, "job", "list", "--address", dashboard], capture_output=True, text=True,
                                 timeout=60, env={k: v for k, v in launcher_env.items() if k != "RAY_AUTH_MODE"})
        assert refused.returncode != 0 and "authentication" in (refused.stdout + refused.stderr).lower()
        probe = subprocess.run([sys.executable, "-c", f"""
import ray
ray.init(address="{address}")
print("task ran in", ray.get(ray.remote(lambda: __import__("raysearch").__name__).remote()))
"""], capture_output=True, text=True, timeout=120, env=authed_env)
        assert probe.returncode == 0, probe.stdout + probe.stderr
        assert "task ran in raysearch" in probe.stdout

        # Then the search as the README submits it: `ray job submit` from this machine, with its token. Its
        # trial trains with DDP on two 1-CPU workers: on a head of 2 CPUs and no custom resource it finishes
        # only if no trial actor holds a CPU its workers wait for.
        started = time.time()
        log = root / "job.log"
        with open(log, "w") as out:
            search = subprocess.run(
                [ray_cli, "job", "submit", "--address", dashboard, "--working-dir", ".", "--",
                 "python", "-m", "raysearch.tune", str(_space_with_ddp_trials(root)), "--smoke-test",
                 "--num-samples", "1", "--storage", str(storage)],
                cwd=REPO, env=authed_env, stdout=out, stderr=subprocess.STDOUT, timeout=420)
        timings["smoke search (job)"] = time.time() - started
        assert search.returncode == 0, f"the smoke search failed as a job:\n{tail(log)}"
        assert "ranked by val/psnr" in log.read_text(), tail(log)
        experiments = [p for p in storage.glob("l2_ddp-*") if p.is_dir()]
        assert len(experiments) == 1, list(storage.iterdir())
        assert list(experiments[0].glob("l2_ddp_*")), list(experiments[0].iterdir())  # trial directories

        launcher("down", "-y", timeout=180)
        deadline = time.time() + 30
        while listening(ports["gcs"]) and time.time() < deadline:
            time.sleep(0.5)
        assert not listening(ports["gcs"]), "the head's GCS still listens after `ray down`"
    finally:
        if listening(ports["gcs"]):  # a failure above: take the cluster down anyway
            subprocess.run([ray_cli, "down", "-y", str(config_path)], cwd=REPO, env=launcher_env,
                           capture_output=True, timeout=180)
        sshd.stop()
        for pid in _ray_processes(marker=str(root)):  # only what this test started (under its temp dir)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        control = Path("/tmp") / ("ray_ssh_" + hashlib.sha256(getpass.getuser().encode()).hexdigest()[:10])
        shutil.rmtree(control / hashlib.sha256(cluster_name.encode()).hexdigest()[:10], ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    print("timings:", {k: round(v, 1) for k, v in timings.items()})
