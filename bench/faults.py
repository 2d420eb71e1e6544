"""Fault injection: the faults of a real cluster, each injected into a real search on this machine.

Every fault of docs/faults.md, on loopback only, each against `python -m raysearch.tune` run as a user runs it:

- dead_marker:     a `ray start --head` cluster killed (SIGKILL to its processes, no `ray stop`), then a search
                   without --address: the marker it left names a dead address
- dead_address:    the same dead address given with --address
- cluster_dies:    the `ray start` cluster killed under a running search attached to it; then --resume on a
                   private local Ray (--address local)
- sigterm:         SIGTERM to a running search's driver; then --resume
- job_stop:        `ray job stop` of a search submitted with `ray job submit`; then --resume
- storage_full:    the storage (a tmpfs of its own) filled up mid-search; space freed; then --resume
- storage_readonly: the storage remounted read-only mid-search; made writable again; then --resume
- corrupt_state:   Tune's state, Optuna's, the tuner's and raysearch's record truncated in turn: --resume and analyze
- two_drivers:     a second driver on a running experiment (same --name; and --resume)
- actor_killed:    SIGKILL of a trial's process mid-epoch (as the OOM killer does)

Per fault it prints: seconds until the user was told (the fault's line in the command's output), exit status,
finished trials before the fault and after the resume, whether the resume completed, and files overwritten
(a file that existed after the fault whose old bytes are not the start of its new ones; Tune's own state
files, which it replaces whole by design, and best_config.yaml aside). The last line is one flat JSON object.

Every Ray here is this script's own: `ray start` on free ports, each process's RAY_TMPDIR and HOME (Ray's
token) under a directory of its own, killed by pid at the end. Storage faults need a tmpfs mount (root);
where mounting fails they are reported as skipped.

    flock /tmp/raysearch-ray.lock python bench/faults.py [--only sigterm cluster_dies ...] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as `python bench/faults.py`

from bench.fault_sandbox import PYTHON, RAY, REPO, Cluster, Run, Sandbox  # noqa: E402
from raysearch.study import STUDY_FILE  # noqa: E402
FAULTS = ("dead_marker", "dead_address", "cluster_dies", "sigterm", "job_stop", "storage_full", "storage_readonly",
          "corrupt_state", "two_drivers", "actor_killed")
MAX_EPOCHS = 3
SAMPLES = 3
# Tune's files that it replaces whole by design (and raysearch's best_config.yaml): not "overwritten".
REPLACED_WHOLE = re.compile(r"(^|/)(experiment_state-.*\.json|searcher-state-.*\.pkl|search_gen_state-.*\.json|"
                            r"tuner\.pkl|best_config\.yaml|\.raysearch-[^/]*|\.validate_storage_marker)$")


# ---------------------------------------------------------------- a search, run as a user runs it


def tune_command(space: Path, storage: Path, name: str, *extra: str, samples: int = SAMPLES) -> list[str]:
    return [PYTHON, "-m", "raysearch.tune", str(space), "--smoke-test", "--num-samples", str(samples),
            "--max-epochs", str(MAX_EPOCHS), "--set", "train.steps_per_epoch=3", "--storage", str(storage),
            "--name", name, *extra]


def resume_command(space: Path, storage: Path, name: str, *extra: str) -> list[str]:
    return [PYTHON, "-m", "raysearch.tune", str(space), "--resume", "--storage", str(storage), "--name", name, *extra]


def fifo_space(directory: Path) -> Path:
    """The l2 space without ASHA: every trial runs to max_epochs, so 'finished' is plain to count."""
    values = yaml.safe_load((REPO / "search_spaces" / "l2.yaml").read_text())
    values.setdefault("tune", {})["scheduler"] = "none"
    path = directory / "l2_fifo.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


# ---------------------------------------------------------------- what an experiment holds


def trial_dirs(experiment: Path) -> list[Path]:
    return sorted(p for p in experiment.iterdir() if p.is_dir() and (p / "params.json").exists()) \
        if experiment.exists() else []


def epochs_reported(trial: Path) -> list[int]:
    lines = (trial / "result.json").read_text().splitlines() if (trial / "result.json").exists() else []
    epochs = []
    for line in lines:
        try:
            epochs.append(int(json.loads(line)["epoch"]))
        except (ValueError, KeyError, TypeError):
            pass
    return epochs


def finished(experiment: Path) -> set[str]:
    """Trials whose results (in the storage) hold their last epoch."""
    return {t.name for t in trial_dirs(experiment) if MAX_EPOCHS in epochs_reported(t)}


def snapshot(experiment: Path) -> dict[str, bytes]:
    """Every file of the experiment, by path relative to it, with its bytes (experiments here are small)."""
    return {str(p.relative_to(experiment)): p.read_bytes() for p in experiment.rglob("*") if p.is_file()}


def recorded_checkpoints(before: dict[str, bytes]) -> set[str]:
    """The checkpoint directories the experiment's results name (trial/checkpoint_NNNNNN): those Tune recorded."""
    named = set()
    for relative, data in before.items():
        if relative.endswith("/result.json"):
            trial = relative.rsplit("/", 1)[0]
            for line in data.decode(errors="replace").splitlines():
                try:
                    name = json.loads(line).get("checkpoint_dir_name")
                except ValueError:
                    continue
                if name:
                    named.add(f"{trial}/{name}")
    return named


def overwritten(before: dict[str, bytes], experiment: Path) -> tuple[list[str], list[str], list[str]]:
    """(files of `before` whose old bytes are not the start of their bytes now, checkpoints replaced that no
    result named, journals whose cut-short last record was dropped). Appending is fine, and so is deleting an
    old checkpoint (Tune's rotation); Tune's whole-replaced state files aside. A checkpoint a trial saved but
    whose result never reached the driver (its search stopped first) was never any trial's latest: the resumed
    trial trains that epoch again and saves it under the same name; it is counted apart. So is the study's
    journal when every whole record it held is still its start and only an unterminated last record (a write
    the fault cut short, which Optuna never read) is gone: the resume's one repair (saved_state)."""
    recorded = recorded_checkpoints(before)
    changed, orphans, cut = [], [], []
    for relative, old in before.items():
        path = experiment / relative
        if REPLACED_WHOLE.search(relative) or not path.is_file():
            continue
        now = path.read_bytes()
        if now.startswith(old):
            continue
        in_checkpoint = re.match(r"(.*/checkpoint_\d+)/", relative)
        whole_records = old[:old.rfind(b"\n") + 1]
        if in_checkpoint and in_checkpoint.group(1) not in recorded:
            orphans.append(relative)
        elif relative.endswith(STUDY_FILE) and len(whole_records) < len(old) and now.startswith(whole_records):
            cut.append(f"{relative} ({len(old) - len(whole_records)} bytes)")
        else:
            changed.append(relative)
    return changed, orphans, cut


def whole_state(experiment: Path) -> bool:
    """Tune's saved state resumable (every JSON and pickle complete) and every checkpoint results name loads."""
    from raysearch.checkpoint import load_checkpoint
    from raysearch.errors import RaysearchError
    from raysearch.saved_state import check_resumable
    from raysearch.storage import Storage

    try:
        check_resumable(Storage(str(experiment)))
        for trial in trial_dirs(experiment):
            for line in (trial / "result.json").read_text().splitlines():
                name = json.loads(line).get("checkpoint_dir_name")
                if name and (trial / name).exists():
                    load_checkpoint(trial / name)
    except (RaysearchError, ValueError) as err:
        print(f"  state not whole: {err}", flush=True)
        return False
    return True


@dataclass
class Figures:
    """One fault's figures (None: not measured, e.g. no resume for a refused start)."""

    told_s: float | None = None
    exit_code: int | None = None
    finished_before: int | None = None
    finished_after: int | None = None
    resume_completed: bool | None = None
    overwritten: int | None = None
    note: str = ""

    def line(self, name: str) -> str:
        told = "-" if self.told_s is None else f"{self.told_s:.1f} s"
        resume = "-" if self.resume_completed is None else ("yes" if self.resume_completed else "NO")
        return (f"{name:17s} told {told:>8s}  exit {self.exit_code}  finished {self.finished_before} -> "
                f"{self.finished_after}  resume completed {resume}  overwritten {self.overwritten}"
                + (f"  ({self.note})" if self.note else ""))


def resume_and_count(sandbox: Sandbox, space: Path, storage: Path, name: str, figures: Figures,
                     before: dict[str, bytes], finished_before: set[str], *extra: str, samples: int = SAMPLES) -> None:
    """--resume the experiment; fill in the figures after it: finished trials, completion, overwritten files."""
    experiment = storage / name
    resumed = Run.start(sandbox, f"{name}-resume", resume_command(space, storage, name, *extra))
    code = resumed.wait(timeout=600)
    resumed.stop()
    after = finished(experiment)
    figures.finished_after = len(after)
    figures.resume_completed = code == 0 and len(after) == samples and not (finished_before - after)
    changed, orphans, cut = overwritten(before, experiment)
    figures.overwritten = len(changed)
    if changed:
        figures.note += f"; overwritten: {', '.join(changed[:5])}"
    if cut:
        figures.note += f"; a record the fault cut short dropped from {', '.join(cut)}, every whole one kept"
    if orphans:
        figures.note += f"; {len(orphans)} unrecorded checkpoint(s) saved again: {', '.join(orphans[:3])}"
    if not figures.resume_completed:
        figures.note += f" resume exit {code}: {resumed.err.read_text(errors='replace')[-400:]!r}"


def wait_for_progress(run: Run, experiment: Path, timeout: float = 300) -> bool:
    """Until one trial has finished and another has reported an epoch (a fault then meets both kinds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.process.poll() is not None:
            return False
        done = finished(experiment)
        running = [t for t in trial_dirs(experiment) if t.name not in done and epochs_reported(t)]
        if done and running:
            return True
        time.sleep(0.3)
    return False


# ---------------------------------------------------------------- the faults


def dead_marker_and_address(sandbox: Sandbox, space: Path) -> tuple[Figures, Figures]:
    cluster = Cluster(sandbox)
    cluster.start()
    cluster.kill()
    marker = sandbox.root / "ray" / "ray_current_cluster"
    assert marker.read_text().strip().endswith(f":{cluster.gcs}"), "the killed cluster left no marker"
    storage = sandbox.root / "runs"
    # No --address: the stale marker is passed over for a private local Ray.
    run = Run.start(sandbox, "dead_marker", tune_command(space, storage, "marker", "--num-samples", "1"))
    marker_figures = Figures(told_s=run.wait_for_text(r"note: no Ray cluster answers at", run.started, 120))
    marker_figures.exit_code = run.wait(timeout=600)
    run.stop()
    marker_figures.finished_after = len(finished(storage / "marker"))
    marker_figures.note = "search ran on a private local Ray" if marker_figures.exit_code == 0 else "search failed"
    # With --address: refused, naming it.
    run = Run.start(sandbox, "dead_address", tune_command(space, storage, "address", "--address", cluster.address))
    address_figures = Figures(told_s=run.wait_for_text(rf"error: --address: no Ray cluster answers at {cluster.address}",
                                                       run.started, 120))
    address_figures.exit_code = run.wait(timeout=120)
    run.stop()
    address_figures.note = "one line" if len(run.err.read_text().strip().splitlines()) == 1 else "MORE than one line"
    return marker_figures, address_figures


def cluster_dies(sandbox: Sandbox, space: Path) -> Figures:
    cluster = Cluster(sandbox)
    cluster.start()
    storage, name = sandbox.root / "runs", "dies"
    run = Run.start(sandbox, name, tune_command(space, storage, name, "--address", cluster.address))
    if not wait_for_progress(run, storage / name):
        run.stop()
        return Figures(note=f"the search never got going: {run.err.read_text()[-300:]!r}")
    injected = time.monotonic()
    cluster.kill()
    figures = Figures(told_s=run.wait_for_text(r"error: the Ray cluster at .* stopped answering", injected, 120))
    figures.exit_code = run.wait(timeout=120)
    run.stop()
    done = finished(storage / name)
    figures.finished_before = len(done)
    before = snapshot(storage / name)
    resume_and_count(sandbox, space, storage, name, figures, before, done, "--address", "local")
    return figures


def sigterm_and_second_driver(sandbox: Sandbox, space: Path) -> tuple[Figures, Figures]:
    """SIGTERM to a running search; before it, a second driver on the same experiment (refused)."""
    # More trials than elsewhere: the search must outlast the two refused drivers (a few seconds each).
    storage, name, samples = sandbox.root / "runs", "term", 3 * SAMPLES
    run = Run.start(sandbox, name, tune_command(space, storage, name, "--address", "local", samples=samples))
    if not wait_for_progress(run, storage / name):
        run.stop()
        failed = Figures(note=f"the search never got going: {run.err.read_text()[-300:]!r}")
        return failed, failed
    second = two_drivers(sandbox, space, storage, name, run)
    injected = time.monotonic()
    os.kill(run.process.pid, signal.SIGTERM)
    figures = Figures(told_s=run.wait_for_text(r"SIGTERM: stopping the search", injected, 60))
    figures.exit_code = run.wait(timeout=120)
    exited_s = time.monotonic() - injected
    run.stop()
    figures.note = f"exited {exited_s:.1f} s after SIGTERM"
    if "--resume --name term" not in run.text():
        figures.note += "; NO resume command printed"
    done = finished(storage / name)
    figures.finished_before = len(done)
    before = snapshot(storage / name)
    resume_and_count(sandbox, space, storage, name, figures, before, done, "--address", "local", samples=samples)
    return figures, second


def two_drivers(sandbox: Sandbox, space: Path, storage: Path, name: str, first: Run) -> Figures:
    """A second driver, twice (same --name; --resume), while `first` runs: each refused in one line."""
    figures = Figures()
    epochs_before = sum(len(epochs_reported(t)) for t in trial_dirs(storage / name))
    codes, lines = [], []
    for args in (tune_command(space, storage, name, "--address", "local"),
                 resume_command(space, storage, name, "--address", "local")):
        second = Run.start(sandbox, f"{name}-second", args)
        told = second.wait_for_text(r"error: .*(is running this experiment|already holds a search)", second.started, 60)
        figures.told_s = max(figures.told_s or 0, told if told is not None else 999)
        codes.append(second.wait(timeout=60))
        second.stop()
        lines.append(len(second.err.read_text().strip().splitlines()))
        if first.process.poll() is not None:
            figures.note = "the first driver had ENDED before this refusal: not measured; "
            break
    figures.exit_code = max(code if code is not None else 999 for code in codes)
    # The first goes on: it reports further epochs after the refusals.
    deadline = time.monotonic() + 120
    while sum(len(epochs_reported(t)) for t in trial_dirs(storage / name)) <= epochs_before:
        if time.monotonic() > deadline or first.process.poll() is not None:
            figures.note += "the first driver did NOT go on"
            break
        time.sleep(0.3)
    else:
        figures.note += "the first driver went on"
    figures.note += f"; refusals: exit {codes}, {lines} stderr line(s)"
    return figures


def job_stop(sandbox: Sandbox, space: Path) -> Figures:
    cluster = Cluster(sandbox)
    cluster.start()
    storage, name = sandbox.root / "runs", "job"
    dashboard = f"http://127.0.0.1:{cluster.dashboard}"
    deadline = time.monotonic() + 90
    while True:  # the dashboard's port answers before its job agent does ("No available agent to submit job")
        submitted = subprocess.run(
            [RAY, "job", "submit", "--no-wait", "--address", dashboard, "--", *tune_command(space, storage, name)],
            cwd=REPO, env=sandbox.env, capture_output=True, text=True, timeout=120)
        if "No available agent" not in submitted.stdout + submitted.stderr or time.monotonic() > deadline:
            break
        time.sleep(2)
    match = re.search(r"(raysubmit_\w+)", submitted.stdout + submitted.stderr)
    if not match:
        cluster.kill()
        return Figures(note=f"submit failed: {(submitted.stdout + submitted.stderr)[-300:]!r}")
    job = match.group(1)
    deadline = time.monotonic() + 300
    while not finished(storage / name) and time.monotonic() < deadline:
        time.sleep(0.5)
    injected = time.monotonic()
    subprocess.run([RAY, "job", "stop", "--address", dashboard, job], env=sandbox.env, capture_output=True,
                   timeout=120)
    stopped_s = time.monotonic() - injected
    logs = subprocess.run([RAY, "job", "logs", "--address", dashboard, job], env=sandbox.env, capture_output=True,
                          text=True, timeout=60).stdout
    status = subprocess.run([RAY, "job", "status", "--address", dashboard, job], env=sandbox.env,
                            capture_output=True, text=True, timeout=60)
    figures = Figures(told_s=stopped_s if "SIGTERM: stopping the search" in logs else None)
    (sandbox.root / "job.log").write_text(logs)
    (sandbox.root / "job-status.txt").write_text(status.stdout + status.stderr)
    state = re.search(r"(?i)\b(pending|running|stopped|succeeded|failed)\b", status.stdout + status.stderr)
    figures.note = (f"`ray job stop` returned after {stopped_s:.1f} s; job status {state.group(1) if state else '?'}; "
                    f"{'resume command in the job log' if '--resume' in logs else 'NO resume command in the job log'}; "
                    f"{'the final table too' if 'ranked by' in logs else 'no final table (killed within the stop grace)'}")
    cluster.kill()
    done = finished(storage / name)
    figures.finished_before = len(done)
    before = snapshot(storage / name)
    resume_and_count(sandbox, space, storage, name, figures, before, done, "--address", "local")
    return figures


def mount_tmpfs(directory: Path, size: str) -> str | None:
    """Mount a tmpfs of `size` at `directory`; None, or why it cannot be done here."""
    directory.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
                          capture_output=True, text=True)
    return None if done.returncode == 0 else (done.stderr.strip() or "mount failed")


def fill(mount: Path) -> None:
    """Take every free byte of the filesystem at `mount` (fallocate takes all it asks for or nothing: ask for
    what is free, then write zeros until the disk refuses)."""
    stats = os.statvfs(mount)
    subprocess.run(["fallocate", "-l", str(stats.f_bavail * stats.f_frsize), str(mount / "filler")],
                   capture_output=True)
    try:
        with open(mount / "filler-rest", "wb", buffering=0) as rest:
            while True:
                rest.write(b"\0" * 65536)
    except OSError:
        pass  # full


def storage_fault(sandbox: Sandbox, space: Path, kind: str) -> Figures:
    """The storage, a tmpfs of its own, filled up (`full`) or remounted read-only (`readonly`) mid-search."""
    mount = sandbox.root / f"mnt-{kind}"
    why = mount_tmpfs(mount, "256m")
    if why is not None:
        return Figures(note=f"skipped: cannot mount a tmpfs here ({why})")
    try:
        name = kind
        run = Run.start(sandbox, f"storage_{kind}", tune_command(space, mount, name, "--address", "local"))
        if not wait_for_progress(run, mount / name):
            run.stop()
            return Figures(note=f"the search never got going: {run.err.read_text()[-300:]!r}")
        injected = time.monotonic()
        if kind == "full":
            fill(mount)
        else:
            # A read-only bind mount over the storage: every file opened from now on is refused (EROFS), as
            # on a filesystem remounted read-only; (a tmpfs itself will not remount read-only while the trials
            # hold files open on it).
            subprocess.run(["mount", "--bind", str(mount), str(mount)], check=True)
            subprocess.run(["mount", "-o", "remount,bind,ro", str(mount)], check=True)
        figures = Figures(told_s=run.wait_for_text(r"error: storage failed at", injected, 120))
        figures.exit_code = run.wait(timeout=120)
        run.stop()
        if kind == "full":
            for filler in mount.glob("filler*"):
                filler.unlink()
        else:
            subprocess.run(["umount", str(mount)], check=True)  # the read-only layer: writable again
        experiment = mount / name
        figures.note = "state whole after the fault" if whole_state(experiment) else "state NOT whole after the fault"
        done = finished(experiment)
        figures.finished_before = len(done)
        before = snapshot(experiment)
        resume_and_count(sandbox, space, mount, name, figures, before, done, "--address", "local")
        return figures
    finally:
        while subprocess.run(["umount", "-l", str(mount)], capture_output=True).returncode == 0:
            pass  # every layer: the read-only bind and the tmpfs


def corrupt_state(sandbox: Sandbox, space: Path, source: Path) -> Figures:
    """Damage each file a resume reads, in a copy of a real experiment (Tune's and raysearch's files cut in
    half; a record in the middle of Optuna's journal garbled): --resume and analyze each refuse in one line
    naming the file, and change nothing."""
    figures = Figures(exit_code=0, overwritten=0)
    told, refused, named = [], 0, 0
    cases = ["experiment_state-*.json", "searcher-state-*.pkl", "search_gen_state-*.json", "tuner.pkl",
             "raysearch_experiment.yaml", "optuna.journal"]
    for number, pattern in enumerate(cases):
        # The copy keeps the experiment's name: its study in optuna.journal is named after it, and a resume
        # under another name would be refused for that (the study's name), not for the damage.
        storage, name = sandbox.root / f"corrupt{number}", source.name
        experiment = storage / name
        shutil.copytree(source, experiment)
        target = sorted(experiment.glob(pattern))[-1]
        data = target.read_bytes()
        if pattern == "optuna.journal":  # a journal cut short is only missing its last records: garble one
            middle = data.index(b"\n", len(data) // 2) - 10
            target.write_bytes(data[:middle] + b"#" * 5 + data[middle + 5:])
        else:
            target.write_bytes(data[: len(data) // 2])
        before = snapshot(experiment)
        for command in (resume_command(space, storage, name, "--address", "local"),
                        [PYTHON, "-m", "raysearch.analyze", str(experiment)]):
            if "analyze" in command[2] and pattern not in ("experiment_state-*.json", "raysearch_experiment.yaml"):
                continue  # analyze reads neither Optuna's state nor the tuner
            run = Run.start(sandbox, f"corrupt{number}", command)
            code = run.wait(timeout=120)
            told.append(time.monotonic() - run.started)
            lines = [line for line in run.err.read_text().splitlines() if line.strip()]
            refused += code == 2 and len(lines) == 1
            named += bool(lines) and target.name in lines[-1]
            figures.exit_code = max(figures.exit_code, code if code is not None else 999)
            figures.overwritten += sum(1 for rel, old in before.items()
                                       if not (experiment / rel).is_file() or (experiment / rel).read_bytes() != old)
    figures.told_s = max(told)
    figures.note = f"{refused} of {len(told)} refused in one line, {named} naming the file"
    return figures


def actor_killed(sandbox: Sandbox, space: Path) -> Figures:
    storage, name = sandbox.root / "runs", "oom"
    run = Run.start(sandbox, name, tune_command(space, storage, name, "--address", "local", "--max-epochs", "4"))
    experiment = storage / name
    deadline = time.monotonic() + 300
    victim = None
    while victim is None and time.monotonic() < deadline and run.process.poll() is None:
        for trial in trial_dirs(experiment):
            lines = (trial / "result.json").read_text().splitlines() if (trial / "result.json").exists() else []
            if len(lines) == 1:  # after its first epoch, in its second: kill it mid-epoch
                victim = (trial.name, int(json.loads(lines[0])["pid"]))
                break
        time.sleep(0.1)
    if victim is None:
        run.stop()
        return Figures(note="no trial to kill")
    injected = time.monotonic()
    os.kill(victim[1], signal.SIGKILL)
    figures = Figures(told_s=run.wait_for_text(r"Trial task failed for trial|trial failure\(s\)", injected, 300))
    figures.exit_code = run.wait(timeout=600)
    run.stop()
    table = run.out.read_text(errors="replace")
    row = next((line for line in table.splitlines() if re.match(rf"\d+\s+{victim[0]}\s", line)), "")
    epochs = epochs_reported(experiment / victim[0])
    figures.finished_after = len({t.name for t in trial_dirs(experiment) if 4 in epochs_reported(t)})
    figures.resume_completed = figures.exit_code == 0 and row.split()[-1:] == ["finished"]
    figures.note = (f"killed trial's row: failures {row.split()[-3] if row else '?'}, status "
                    f"{row.split()[-1] if row else '?'}; its epochs {epochs}")
    return figures


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=FAULTS, help="run these faults only")
    parser.add_argument("--keep", action="store_true", help="keep the sandbox directory (its path is printed)")
    args = parser.parse_args()
    wanted = set(args.only or FAULTS)
    # Ray's socket paths must stay short: a sandbox directly under /tmp.
    sandbox = Sandbox(Path(tempfile.mkdtemp(prefix="rsf-", dir="/tmp")))
    space = fifo_space(sandbox.root)
    sandbox.setup(space)
    results: dict[str, Figures] = {}
    try:
        if wanted & {"dead_marker", "dead_address"}:
            results["dead_marker"], results["dead_address"] = dead_marker_and_address(sandbox, space)
        if "cluster_dies" in wanted:
            results["cluster_dies"] = cluster_dies(sandbox, space)
        if wanted & {"sigterm", "two_drivers", "corrupt_state"}:
            results["sigterm"], results["two_drivers"] = sigterm_and_second_driver(sandbox, space)
        if "corrupt_state" in wanted:
            results["corrupt_state"] = corrupt_state(sandbox, space, sandbox.root / "runs" / "term")
        if "job_stop" in wanted:
            results["job_stop"] = job_stop(sandbox, space)
        for kind in ("full", "readonly"):
            if f"storage_{kind}" in wanted:
                results[f"storage_{kind}"] = storage_fault(sandbox, space, kind)
        if "actor_killed" in wanted:
            results["actor_killed"] = actor_killed(sandbox, space)
    finally:
        sandbox.cleanup()
    for name, figures in results.items():
        print(figures.line(name), flush=True)
    flat: dict[str, float | int | str | None] = {}
    for name, figures in results.items():
        flat[f"{name}_told_s"] = None if figures.told_s is None else round(figures.told_s, 1)
        flat[f"{name}_exit"] = figures.exit_code
        flat[f"{name}_finished_before"] = figures.finished_before
        flat[f"{name}_finished_after"] = figures.finished_after
        flat[f"{name}_resume_completed"] = None if figures.resume_completed is None else int(figures.resume_completed)
        flat[f"{name}_overwritten"] = figures.overwritten
    told = [f.told_s for f in results.values() if f.told_s is not None]
    flat["max_told_s"] = round(max(told), 1) if told else None
    flat["finished_lost"] = sum(max(0, (f.finished_before or 0) - (f.finished_after or 0)) for f in results.values()
                                if f.finished_after is not None)
    flat["overwritten_total"] = sum(f.overwritten or 0 for f in results.values())
    resumes = [f.resume_completed for f in results.values() if f.resume_completed is not None]
    flat["resumes_completed"] = sum(resumes)
    flat["resumes"] = len(resumes)
    if args.keep:
        print(f"sandbox kept: {sandbox.root}", flush=True)
    else:
        shutil.rmtree(sandbox.root, ignore_errors=True)
    print(json.dumps(flat), flush=True)


if __name__ == "__main__":
    main()
