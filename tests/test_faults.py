"""Faults a cluster really has, the fast ones: a dead cluster address, a second driver, a damaged
experiment, storage that fails mid-write, SIGTERM, and what the final table says. None of these starts Ray
(a real search refused to a second driver, stopped and resumed is test_tune's); bench/faults.py injects the
long faults (a cluster dying under a search, a full or read-only disk, `ray job stop`, a trial's process
killed) into real searches."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

import raysearch.runtime as runtime
from raysearch import analyze, cluster_health, experiment_lock, faults, storage_health, tune
from raysearch.constants import EXPERIMENT_FILE
from raysearch.report import trial_failures, write_report
from raysearch.saved_state import DamagedExperiment, check_resumable
from raysearch.spaces import load_space
from raysearch.storage import Storage
from tests.conftest import free_ports

REPO = Path(__file__).resolve().parent.parent


class RayWouldStart(Exception):
    """Raised where Ray would start: the command got past every check."""


# What the first command of a session says while it makes the smoke test's dataset (once per test session).
DATASET_NOTES = ("generating the synthetic dataset", "prepared ")


def one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip() and not line.startswith(DATASET_NOTES)]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and "Traceback" not in lines[0]
    return lines[0]


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# ---------------------------------------------------------------- a cluster address nothing answers at


@pytest.fixture
def ray_env(tmp_path, monkeypatch):
    """Ray's environment as this test sets it: no RAY_ADDRESS, the marker file under a RAY_TMPDIR of its own,
    and ray.init replaced by a recorder (nothing starts)."""
    import ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "raytmp"))
    calls = []

    def init(address=None, **kwargs):
        calls.append(address)
        raise RayWouldStart(address)

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    return SimpleNamespace(calls=calls, marker=tmp_path / "raytmp" / "ray" / "ray_current_cluster")


def test_an_address_nothing_answers_at_is_refused_in_seconds_naming_it(tmp_path, capsys):
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    code = tune.main(["l2", "--smoke-test", "--address", address, "--storage", str(tmp_path)])
    line = one_error_line(capsys)
    assert code == 2 and f"--address: no Ray cluster answers at {address}" in line and "--address local" in line


def test_a_dead_clusters_marker_is_passed_over_for_a_private_ray_with_one_line(ray_env, capsys):
    (port,) = free_ports(1)  # what a killed `ray start` cluster leaves: its address, nothing listening
    ray_env.marker.parent.mkdir(parents=True)
    ray_env.marker.write_text(f"127.0.0.1:{port}")
    with pytest.raises(RayWouldStart):
        runtime.start_ray(None)
    assert ray_env.calls == ["local"]
    note = capsys.readouterr().err
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in note and str(ray_env.marker) in note


def test_a_live_clusters_marker_is_attached_to_as_ray_finds_it(ray_env):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        ray_env.marker.parent.mkdir(parents=True)
        ray_env.marker.write_text(f"127.0.0.1:{server.getsockname()[1]}")
        with pytest.raises(RayWouldStart):
            runtime.start_ray(None)
    assert ray_env.calls == ["auto"]  # Ray's own lookup, which also enables the cluster's token authentication


def test_no_marker_leaves_the_lookup_to_ray(ray_env):
    with pytest.raises(RayWouldStart):
        runtime.start_ray(None)
    assert ray_env.calls == ["auto"]


def test_a_dead_ray_address_variable_is_refused_naming_it(ray_env, monkeypatch):
    (port,) = free_ports(1)
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    with pytest.raises(cluster_health.ClusterError, match=f"RAY_ADDRESS=127.0.0.1:{port}: no Ray cluster answers"):
        runtime.start_ray(None)
    assert ray_env.calls == []


def test_the_cluster_watch_calls_back_once_its_address_stops_answering():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    address = f"127.0.0.1:{server.getsockname()[1]}"
    lost = []
    with cluster_health.watch(address, lost.append, every_s=0.05, lost_after_s=0.3):
        time.sleep(1.0)
        assert lost == []  # a cluster that answers is never called lost
        server.close()
        deadline = time.monotonic() + 10
        while not lost and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(lost) == 1 and lost[0].address == address and lost[0].reason == "connection refused"


# ---------------------------------------------------------------- one driver per experiment


def hold_in_another_process(location: Path) -> subprocess.Popen:
    """A process holding the experiment's lock, as a running driver does."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom raysearch.experiment_lock import hold\n"
         "with hold(sys.argv[1]):\n    print('held', flush=True)\n    sys.stdin.read()\n", str(location)],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # holds until killed or stdin closes
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_driver_is_refused_in_one_line_and_a_dead_drivers_lock_is_no_obstacle(tmp_path, capsys,
                                                                                       monkeypatch):
    monkeypatch.setattr(runtime, "start_ray", lambda *a, **k: (_ for _ in ()).throw(RayWouldStart()))
    experiment = tmp_path / "exp"
    holder = hold_in_another_process(experiment)
    try:
        before = snapshot(experiment)
        code = tune.main(["l2", "--smoke-test", "--name", "exp", "--storage", str(tmp_path)])
        line = one_error_line(capsys)
        assert code == 2 and f"pid {holder.pid}" in line and "is running this experiment" in line
        assert snapshot(experiment) == before  # the first driver's experiment: untouched
    finally:
        holder.kill()  # SIGKILL: no chance to release anything; the kernel drops its flock
        holder.wait()
    with pytest.raises(RayWouldStart):  # a resume after a crash is never blocked by the dead driver's lock
        tune.main(["l2", "--smoke-test", "--name", "exp", "--storage", str(tmp_path)])


def test_an_object_stores_lease_refuses_a_live_driver_and_expires_with_a_dead_one(tmp_path, monkeypatch):
    storage = Storage(str(tmp_path))
    lease = tmp_path / experiment_lock.LEASE_FILE

    def leased(**holder):
        lease.write_text(json.dumps({"host": "other-host", "pid": 1, "since": "then", "renewed": time.time(),
                                     **holder}))

    leased()
    with pytest.raises(experiment_lock.ExperimentLocked, match="pid 1 on other-host"):
        with experiment_lock.hold_lease(storage, "s3://bucket/exp"):
            pass
    leased(renewed=time.time() - experiment_lock.LEASE_EXPIRES_S - 1)  # a driver gone quiet: taken over
    with experiment_lock.hold_lease(storage, "s3://bucket/exp"):
        assert json.loads(lease.read_text())["pid"] == os.getpid()
    assert not lease.exists()  # given back at the end
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leased(host=socket.gethostname(), pid=int(dead.stdout))  # this host, its process gone: stale at once
    with experiment_lock.hold_lease(storage, "s3://bucket/exp"):
        pass


def test_a_new_search_never_starts_over_an_experiment_that_holds_one(tmp_path, capsys):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "tuner.pkl").write_bytes(pickle.dumps({}))
    assert tune.main(["l2", "--smoke-test", "--name", "exp", "--storage", str(tmp_path)]) == 2
    assert "--resume --name exp" in one_error_line(capsys)


# ---------------------------------------------------------------- a damaged experiment


@pytest.fixture
def resumable(tmp_path):
    """An experiment directory with every file --resume reads (Tune's as pickles of plain data: they are
    checked, never unpickled here)."""
    experiment = tmp_path / "exp"
    space = load_space("l2")
    tune.remember_experiment(str(experiment), space, [], space.tune)
    (experiment / "tuner.pkl").write_bytes(pickle.dumps({"tuner": list(range(500))}))
    (experiment / "experiment_state-2026-01-01_00-00-00.json").write_text(
        json.dumps({"trial_data": [["x" * 50, "y" * 50]] * 20, "runner_data": {}, "stats": {}}))
    (experiment / "searcher-state-2026-01-01_00-00-00.pkl").write_bytes(pickle.dumps({"study": list(range(500))}))
    (experiment / "search_gen_state-2026-01-01_00-00-00.json").write_bytes(pickle.dumps({"counter": 3}))
    return experiment


@pytest.mark.parametrize("name", ["experiment_state-2026-01-01_00-00-00.json", "searcher-state-2026-01-01_00-00-00.pkl",
                                  "search_gen_state-2026-01-01_00-00-00.json", "tuner.pkl", EXPERIMENT_FILE])
def test_resume_of_a_truncated_experiment_is_one_line_naming_the_file_and_changes_nothing(resumable, capsys,
                                                                                         monkeypatch, name):
    monkeypatch.setattr(runtime, "start_ray", lambda *a, **k: (_ for _ in ()).throw(RayWouldStart()))
    argv = ["l2", "--resume", "--name", "exp", "--storage", str(resumable.parent)]
    check_resumable(Storage(str(resumable)))  # whole: resumable
    target = resumable / name
    data = target.read_bytes()
    cut = len(data) // 2 + 1
    while data[cut - 1:cut] == b"\n":  # mid-line: a record cut exactly at a line's end is not told (docs/faults.md)
        cut += 1
    target.write_bytes(data[:cut])
    before = snapshot(resumable)
    assert tune.main(argv) == 2
    line = one_error_line(capsys)
    assert name in line and "truncated" in line
    assert snapshot(resumable) == before


def test_analyze_of_a_truncated_tune_state_is_one_line_naming_the_file(resumable, capsys):
    state = resumable / "experiment_state-2026-01-01_00-00-00.json"
    state.write_text(state.read_text()[:100])
    before = snapshot(resumable)
    assert analyze.main([str(resumable)]) == 2
    line = one_error_line(capsys)
    assert state.name in line and "truncated" in line and "another Ray version" not in line
    assert snapshot(resumable) == before


def test_a_damaged_study_journal_is_refused_and_a_record_cut_short_is_dropped_before_a_resume(resumable, capsys,
                                                                                              monkeypatch):
    from raysearch.saved_state import check_journal, drop_partial_record
    from raysearch.study import STUDY_FILE

    monkeypatch.setattr(runtime, "start_ray", lambda *a, **k: (_ for _ in ()).throw(RayWouldStart()))
    journal = resumable / STUDY_FILE
    records = [json.dumps({"op_code": 0, "worker_id": "w", "study_name": "exp"}), json.dumps({"op_code": 4})]
    journal.write_text(records[0] + "\n" + records[1][:7] + "\n" + records[1] + "\n")  # a cut record, then more
    before = snapshot(resumable)
    assert tune.main(["l2", "--resume", "--name", "exp", "--storage", str(resumable.parent)]) == 2
    line = one_error_line(capsys)
    assert STUDY_FILE in line and "line 2" in line
    assert snapshot(resumable) == before
    # Cut short as the last record (a full disk mid-append): Optuna skips it; it is dropped before more follow.
    journal.write_text(records[0] + "\n" + records[1][:7])
    check_journal(journal)
    assert drop_partial_record(journal) == 7 and journal.read_text() == records[0] + "\n"
    assert drop_partial_record(journal) == 0


def test_an_experiment_tune_saved_nothing_of_is_not_resumed(resumable):
    (resumable / "tuner.pkl").unlink()
    with pytest.raises(DamagedExperiment, match="without --resume"):
        check_resumable(Storage(str(resumable)))


# ---------------------------------------------------------------- storage that fails mid-write


# A write that fails partway, as on a full disk, for any user: a file-size limit (EFBIG past it).
FAILING_WRITES = """
import json, os, resource, signal, sys
import pyarrow.fs as pafs
from raysearch.atomic_fs import tune_storage
from raysearch.storage import Storage
root = sys.argv[1]
old = b"whole " * 100
for name in ("atomic.bin", "plain.bin", "record.yaml"):
    open(os.path.join(root, name), "wb").write(old)
big = os.path.join(root, "..", "big.bin")
open(big, "wb").write(os.urandom(1 << 20))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 10, resource.RLIM_INFINITY))
raised = {}
path, fs = tune_storage(root)
for name, filesystem in (("atomic.bin", fs), ("plain.bin", pafs.LocalFileSystem())):
    try:
        pafs.copy_files(big, os.path.join(path, name), destination_filesystem=filesystem)
    except OSError as err:
        raised[name] = err.errno
try:
    Storage(root).write_text("record.yaml", "x" * (1 << 20))
except OSError as err:
    raised["record.yaml"] = err.errno
kept = {name: open(os.path.join(root, name), "rb").read() == old for name in ("atomic.bin", "plain.bin", "record.yaml")}
print(json.dumps({"raised": raised, "kept": kept, "files": sorted(os.listdir(root))}))
"""


def test_a_write_that_fails_midway_leaves_the_previous_file_whole(tmp_path):
    root = tmp_path / "storage"
    root.mkdir()
    done = subprocess.run([sys.executable, "-c", FAILING_WRITES, str(root)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(report["raised"]) == {"atomic.bin", "plain.bin", "record.yaml"}  # every write did fail
    # pyarrow's own LocalFileSystem leaves the truncated file in place of the whole one: what Tune did.
    assert report["kept"] == {"atomic.bin": True, "plain.bin": False, "record.yaml": True}
    assert report["files"] == ["atomic.bin", "plain.bin", "record.yaml"]  # no temporary file left behind


def test_the_storage_watch_calls_back_when_the_experiment_stops_taking_writes(tmp_path):
    experiment = tmp_path / "exp"
    experiment.mkdir()
    seen = []
    with storage_health.watch(str(experiment), seen.append, every_s=0.05):
        time.sleep(0.5)
        assert seen == []
        # The experiment's directory gone from under the search (a mount lost), a file in its place: root
        # ignores permission bits, not this.
        experiment.rename(tmp_path / "moved")
        experiment.write_text("not a directory")
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(seen) == 1 and seen[0].location == str(experiment) and "File exists" in seen[0].message


def test_the_storage_watch_calls_back_when_a_write_hangs(tmp_path):
    # A storage that stops answering: the probe's write opens a named pipe nobody reads, and blocks there.
    experiment = tmp_path / "exp"
    experiment.mkdir()
    pipe = experiment / f".{storage_health.PROBE_FILE}.partial"  # where Storage writes before renaming
    os.mkfifo(pipe)
    seen = []
    try:
        with storage_health.watch(str(experiment), seen.append, every_s=0.05, hangs_after_s=0.5):
            deadline = time.monotonic() + 10
            while not seen and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)  # let the blocked write go, and end its thread
        time.sleep(0.2)
        os.close(reader)
    assert len(seen) == 1 and "did not return within 0.5 s" in seen[0].message


def test_a_storage_error_is_found_under_what_tune_raises_and_nothing_else_is():
    from ray.tune import TuneError

    try:
        try:
            raise OSError(28, "No space left on device", "/runs/exp/l2_1/result.json")
        except OSError as cause:
            raise TuneError("The Ray Tune run failed.") from cause
    except TuneError as err:
        found = faults.storage_failure(err)
    assert found == faults.StorageFailure("/runs/exp/l2_1/result.json", "No space left on device")
    assert faults.storage_failure(ValueError("a bug")) is None
    assert faults.storage_failure(FileNotFoundError(2, "missing", "x")) is None  # not a storage fault


# ---------------------------------------------------------------- SIGTERM


SIGTERM_SCRIPT = """
import os, signal, sys
from raysearch.stop_signals import sigterm_as_ctrl_c
seen = []
signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))  # Tune's handler during a search
with sigterm_as_ctrl_c(lambda: "continue with: python -m raysearch.tune l2 --resume --name x") as received:
    os.kill(os.getpid(), signal.SIGTERM)  # Python runs the handler right after this call returns
print(seen == [signal.SIGINT], received == [signal.SIGTERM], signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
"""


def test_sigterm_does_what_ctrl_c_does_after_one_line_with_the_resume_command():
    done = subprocess.run([sys.executable, "-c", SIGTERM_SCRIPT], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "True"]  # SIGINT's handler ran; SIGTERM's given back after
    assert done.stderr.strip() == "continue with: python -m raysearch.tune l2 --resume --name x"


# ---------------------------------------------------------------- what the final table says


def _result(name, epochs, *, error=None):
    history = [{"epoch": e, "val/psnr": 14.0 + e} for e in range(1, epochs + 1)]
    return SimpleNamespace(path=f"/x/{name}", config={"optim.generator_lr": 1e-3}, error=error,
                           metrics={**history[-1], "done": error is None, "score/val/psnr": 14.0 + epochs},
                           metrics_dataframe=pd.DataFrame(history))


def test_the_table_counts_each_trials_failures_and_the_report_says_how_to_go_on(tmp_path, monkeypatch):
    from raysearch import report

    monkeypatch.setattr(report, "baselines_of", lambda config: {})
    space = load_space("l2")
    settings = space.tune
    for name, failures in (("l2_a", 2), ("l2_b", 0), ("l2_c", 3)):
        (tmp_path / name).mkdir()
        if failures:
            (tmp_path / name / "error.txt").write_text("".join(
                f"Failure # {i} (occurred at now)\nray::ImplicitFunc.train()\nOSError: [Errno 28] No space\n"
                for i in range(1, failures + 1)))
    assert trial_failures(str(tmp_path), ["l2_a", "l2_b", "l2_c"]) == {"l2_a": 2, "l2_c": 3}
    error = RuntimeError("ray::ImplicitFunc.train() (pid=1, ip=x)\n  File ...\nOSError: [Errno 28] No space left")
    results = [_result("l2_a", settings.max_epochs), _result("l2_b", settings.max_epochs), _result("l2_c", 1, error=error)]
    out = __import__("io").StringIO()
    write_report(results, space, settings, str(tmp_path), out=out)
    text = out.getvalue()
    header = next(line for line in text.splitlines() if line.startswith("rank"))
    assert header.split()[-3:] == ["failures", "epochs", "status"]
    row = next(line for line in text.splitlines() if line.split()[1:2] == ["l2_a"])
    assert row.split()[-3:] == ["2", str(settings.max_epochs), "finished"]
    assert "l2_a (2x)" in text  # restarted from its checkpoint, and said so
    assert "Trial l2_c ended in error: OSError: [Errno 28] No space left" in text
    assert f"1 ended in error, retried from their last checkpoint; {settings.num_samples - 3} not started" in text
    assert "--resume --name" in text


# (A real search refused to a second driver, then stopped by SIGTERM and resumed: test_tune's
# test_a_stopped_search_resumes_with_its_printed_command_and_ends_with_the_whole_report.)


# ---------------------------------------------------------------- the harness counts what it claims


def test_the_fault_harness_counts_a_rewritten_file_and_nothing_tune_may_do(tmp_path):
    from bench.faults import overwritten

    trial = tmp_path / "l2_a"
    (trial / "checkpoint_000000").mkdir(parents=True)
    (trial / "checkpoint_000001").mkdir()
    (trial / "result.json").write_text(json.dumps({"epoch": 1, "checkpoint_dir_name": "checkpoint_000000"}) + "\n")
    (trial / "checkpoint_000000" / "state.pt").write_bytes(b"epoch 1")
    (trial / "checkpoint_000001" / "state.pt").write_bytes(b"epoch 2, its result never recorded")
    (tmp_path / "experiment_state-1.json").write_text("{}")
    before = snapshot(tmp_path)
    (trial / "result.json").write_text((trial / "result.json").read_text() + '{"epoch": 2}\n')  # appended: fine
    (tmp_path / "experiment_state-1.json").write_text('{"trial_data": []}')  # Tune replaces its state whole
    (trial / "checkpoint_000001" / "state.pt").write_bytes(b"epoch 2 trained again")  # never the latest
    assert overwritten(before, tmp_path) == ([], ["l2_a/checkpoint_000001/state.pt"], [])
    (trial / "checkpoint_000000" / "state.pt").write_bytes(b"rewritten")  # a recorded checkpoint changed
    (trial / "result.json").write_text('{"epoch": 9}\n')  # results lost
    assert sorted(overwritten(before, tmp_path)[0]) == ["l2_a/checkpoint_000000/state.pt", "l2_a/result.json"]

    # The study's journal: its cut-short last record dropped by the resume is counted apart; a whole record
    # lost is overwritten.
    (tmp_path / "optuna.journal").write_bytes(b'{"op_code": 0}\n{"op_code": 5, "trial')
    before = snapshot(tmp_path)
    (tmp_path / "optuna.journal").write_bytes(b'{"op_code": 0}\n{"op_code": 4}\n')
    assert overwritten(before, tmp_path)[2] == ["optuna.journal (21 bytes)"]
    (tmp_path / "optuna.journal").write_bytes(b'{"op_code": 4}\n')
    assert "optuna.journal" in overwritten(before, tmp_path)[0]
