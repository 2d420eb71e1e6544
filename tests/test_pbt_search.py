"""Population Based Training on a real local Ray: a `wgan_pbt` search whose bottom member copies a top one,
killed and resumed; the table and TensorBoard that show the copies, the winner's schedule replayed by
raysearch.train, analyze --lineage; and a PBT search on the two-node test cluster."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

from raysearch.lineage import POPULATION_LOG, copies, read_population_log, schedule_of
from raysearch.rows import STATUSES
from raysearch.summaries import BASELINE_RUN_PREFIX

pytestmark = [pytest.mark.slow, pytest.mark.ray]  # Ray: one at a time (conftest)

REPO = Path(__file__).resolve().parent.parent
MUTATED = ("optim.generator_lr", "optim.critic_lr", "train.critic_steps", "objective.clip", "objective.adv_weight",
           "objective.instance_noise")
# Narrow networks: a smoke-test trial epoch in about a second on this CPU.
NARROW = ["--set", "generator.base_width=8", "--set", "generator.max_width=32", "--set", "critic.base_width=8",
          "--set", "critic.max_width=32"]


def tune_command(args, storage):
    """`python -m raysearch.tune` on a private local Ray, in its own session (a test can kill its whole group)."""
    command = [sys.executable, "-m", "raysearch.tune", *args, "--address", "local", "--storage", str(storage)]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def finish(process, timeout: float) -> tuple[str, str]:
    """The output of a search started by tune_command; one still running after `timeout` is killed with its Ray,
    and the test fails with the end of what it printed (where it stood is the whole diagnosis)."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"still running after {timeout} s\n--- stdout\n{out[-4000:]}\n--- stderr\n{err[-4000:]}")


def population(experiment: Path) -> dict:
    return read_population_log((experiment / POPULATION_LOG).read_text()) if (experiment / POPULATION_LOG).exists() \
        else {}


def test_a_pbt_search_killed_after_a_copy_resumes_then_shows_and_replays_its_winners_schedule(tmp_path):
    # One search for all of it (each costs a Ray start and the trials): 3 members x 3 epochs, perturbed after
    # every epoch (the bottom third copies the top third); the driver is killed once a member has copied
    # another, and resumed. The finished experiment must then show every copy (table, TensorBoard, analyze
    # --lineage), and best_config.yaml must replay the winner's schedule.
    args = ["wgan_pbt", "--smoke-test", "--max-epochs", "3", "--name", "killed", *NARROW]
    experiment = tmp_path / "killed"
    process = tune_command(args, tmp_path)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        histories = population(experiment)
        if any(copies(trial, history) for trial, history in histories.items()):
            break
        time.sleep(0.5)
    else:
        pytest.fail("no member copied another in time")
    os.killpg(process.pid, signal.SIGKILL)  # the driver and the local Ray it started
    process.wait()
    logged_before = (experiment / POPULATION_LOG).read_text()

    resumed = tune_command(["wgan_pbt", "--resume", "--name", "killed"], tmp_path)
    out, err = finish(resumed, timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    assert (experiment / POPULATION_LOG).read_text().startswith(logged_before)  # nothing written is lost
    for trial_dir in (p for p in experiment.iterdir() if (p / "error.txt").exists()):
        pytest.fail(f"{trial_dir.name} failed: {(trial_dir / 'error.txt').read_text()[-2000:]}")
    histories = population(experiment)
    assert len(histories) == 3
    assert all(max(r["epoch"] for r in history) == 3 for history in histories.values()), histories
    table = out[out.index("ranked by val/swd"):]
    statuses = [next(t for t in line.split() if t in STATUSES) for line in table.splitlines()
                if line[:2] in ("1 ", "2 ", "3 ")]
    assert len(statuses) == 3 and set(statuses) == {"finished"}, out[-3000:]

    # Every copy: a donor of the population, at an interval before the last epoch, every explored value inside
    # its range, and the copier's next report says whom it copied.
    found = [c for trial, history in histories.items() for c in copies(trial, history)]
    assert found, histories
    space = yaml.safe_load((REPO / "search_spaces" / "wgan_pbt.yaml").read_text())["search"]
    for copy in found:
        assert copy.epoch in (1, 2) and copy.donor in histories and copy.donor != copy.trial
        for key, value in copy.values.items():
            (kind, (low, high)), = space[key].items()
            assert low <= value <= high, (key, value)
        assert any(r["epoch"] == copy.epoch + 1 and "pbt/copied_from" in r for r in histories[copy.trial]), copy
        # The table marks the copy.
        assert f"{copy.donor}@{copy.epoch}" in table, (copy, table)
    assert "copied (donor@epoch)" in table

    # TensorBoard: every trial's mutated values as scalars over its epochs, the copied one from the copy on.
    board = EventMultiplexer()
    board.AddRunsFromDirectory(str(experiment / "tensorboard"))
    board.Reload()
    trial_runs = [run for run in board.Runs() if run != "." and not run.startswith(BASELINE_RUN_PREFIX)]
    assert sorted(trial_runs) == sorted(histories)
    for run in trial_runs:
        for key in MUTATED:
            assert f"schedule/{key}" in board.Runs()[run]["scalars"], (run, key)
    last = max(found, key=lambda c: c.epoch)
    at_copy = [s for s in board.Scalars(last.trial, "schedule/optim.generator_lr") if s.step == last.epoch + 1]
    assert at_copy and at_copy[-1].value == pytest.approx(last.values["optim.generator_lr"], rel=1e-6)

    # best_config.yaml holds the winner's starting config and schedule; raysearch.train replays it.
    best = yaml.safe_load((experiment / "best_config.yaml").read_text())
    assert json.loads(json.dumps(best["schedule"]))  # plain YAML: epochs -> values
    winner = re.search(r"[Tt]rial (\S+) \(", best["description"]).group(1)
    schedule = schedule_of(winner, histories)
    assert {int(k): v for k, v in best["schedule"].items()} == schedule.to_yaml()
    assert set(best["schedule"][0]) == set(MUTATED)  # the lineage reaches back to epoch 1 through its copies
    for key, value in best["schedule"][0].items():
        section, name = key.split(".")
        assert best["base"][section][name] == pytest.approx(value), key
    logdir = tmp_path / "replay"
    train = subprocess.run(
        [sys.executable, "-m", "raysearch.train", "--config", str(experiment / "best_config.yaml"), "--logdir",
         str(logdir), "--set", "data.synthetic_train=192", "--set", "data.synthetic_val=32", "--set",
         "data.val_images=32", "--set", "train.steps_per_epoch=2", *NARROW],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr[-3000:]
    assert "replaying the schedule" in train.stderr
    replayed = EventMultiplexer()
    replayed.AddRunsFromDirectory(str(logdir))
    replayed.Reload()
    values = replayed.Scalars(".", "schedule/optim.generator_lr")
    expected = [schedule.values_at(step.step - 1)["optim.generator_lr"] for step in values]
    assert [v.value for v in values] == pytest.approx(expected, rel=1e-6)

    # analyze --lineage: who copied whom, the winner's schedule, and a picture.
    picture = tmp_path / "lineage.png"
    analyze = subprocess.run([sys.executable, "-m", "raysearch.analyze", str(experiment), "--lineage", str(picture)],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    assert analyze.returncode == 0, analyze.stderr[-3000:]
    for copy in found:
        assert f"  {copy.trial} <- {copy.donor} @ epoch {copy.epoch}" in analyze.stdout, analyze.stdout
    assert f"The winner {winner}'s weights:" in analyze.stdout and picture.stat().st_size > 0


def test_a_pbt_search_on_the_two_node_test_cluster(tmp_path):
    # A head without CPUs and two 1-CPU nodes: the members train on either node, and a copy restores a donor's
    # checkpoint written from the other node (the experiment's storage is the one both see).
    import dataclasses

    import ray
    from ray.cluster_utils import Cluster

    from raysearch.constants import SMOKE_OVERRIDES
    from raysearch.spaces import load_space
    from raysearch.tune import run_search

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(2):
        cluster.add_node(num_cpus=1)  # from the main thread
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    try:
        overrides = SMOKE_OVERRIDES + [arg for arg in NARROW if arg != "--set"]
        space = load_space("wgan_pbt", overrides)
        settings = dataclasses.replace(space.tune, num_samples=2, max_epochs=3, max_concurrent=2, max_failures=0,
                                       pbt=dataclasses.replace(space.tune.pbt, interval=1, quantile=0.5))
        results = run_search(space, settings, overrides, str(tmp_path), "cluster", resume=False)
        assert [r.error for r in results if r.error] == []
        histories = population(tmp_path / "cluster")
        found = [c for trial, history in histories.items() for c in copies(trial, history)]
        assert found, histories  # with a population of 2, the worse copies the better at epochs 1 and 2
        assert all(max(r["epoch"] for r in history) == 3 for history in histories.values())
    finally:
        ray.shutdown()
        cluster.shutdown()
