"""raysearch.runtime: one train function under TorchTrainer (local mode in the trial's actor, DDP on Train's
workers), trials that leave nothing behind in a reused actor, Tune's own resources on any cluster. (That only
Ray's public API is used is tests/test_structure.py's.)"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from raysearch import runtime
from raysearch.config import load_config
from raysearch.spaces import Resources, TuneSettings, load_space
from tests.conftest import SMALL_DATA

REPO = Path(__file__).resolve().parent.parent
SMALL_NETS = ["generator.base_width=8", "generator.max_width=16", "critic.base_width=8", "critic.max_width=16"]


# ---------------------------------------------------------------- one train function, two ways to run it


def test_one_worker_trains_in_local_mode_and_several_on_train_workers_through_one_function():
    one = runtime.make_trainer(load_config("l2", ["train.workers=1"]), "tune", logdir="x", run_name="t",
                               storage_path="/tmp/unused")
    two = runtime.make_trainer(load_config("l2", ["train.workers=2"]), "train", logdir="x", run_name="t",
                               storage_path="/tmp/unused")
    assert one.scaling_config.num_workers == 0  # Train's local mode: this process, no worker actors
    assert two.scaling_config.num_workers == 2
    assert one.train_loop_per_worker is two.train_loop_per_worker is runtime.train_function


def _settings(**resources) -> TuneSettings:
    return TuneSettings(resources=Resources(**resources))


def test_a_one_process_trials_actor_holds_its_share_and_a_ddp_trials_actor_holds_no_cpu():
    assert runtime.actor_resources(_settings(cpus=2), use_gpu=False) == {"CPU": 2}
    assert runtime.actor_resources(_settings(cpus=1, gpu_fraction=0.25), use_gpu=True) == {"CPU": 1, "GPU": 0.25}
    ddp = runtime.actor_resources(_settings(cpus=1, workers=2), use_gpu=True)
    assert ddp["CPU"] == 0 and "GPU" not in ddp and ddp["memory"] > 0


@pytest.mark.parametrize("cpus, workers, total", [(1, 1, 2), (1, 2, 2), (0.5, 2, 2), (2, 1, 3), (1, 3, 8), (4, 2, 8)])
def test_concurrent_trials_never_hold_more_cpus_than_the_cluster_has(monkeypatch, cpus, workers, total):
    # A deadlock is trial actors holding the CPUs their Train workers wait for: whatever runs at once must fit.
    import ray

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": float(total)})
    settings = _settings(cpus=cpus, workers=workers)
    running = runtime.concurrency(settings, use_gpu=False)
    worker_cpus = 0 if workers == 1 else workers * cpus  # a one-process trial's workers are its actor
    per_trial = runtime.actor_resources(settings, use_gpu=False)["CPU"] + worker_cpus
    assert running >= 1 and running * per_trial <= total


def test_a_trial_uses_its_cpu_share_and_a_standalone_run_the_machines_cores():
    assert [runtime.threads_for(c) for c in (0.25, 1, 1.5, 2, 8)] == [1, 1, 1, 2, 8]
    assert runtime.available_cores() == len(os.sched_getaffinity(0))


def test_trials_are_packed_per_gpu_unless_the_space_sets_gpu_fraction(monkeypatch):
    monkeypatch.setattr(runtime, "free_gpu_memory", lambda: None)
    assert runtime.trial_resources(_settings(), use_gpu=True) == {"CPU": 1.0, "GPU": 1 / runtime.PACKED_TRIALS_PER_GPU}
    assert runtime.trial_resources(_settings(gpu_fraction=0.5), use_gpu=True) == {"CPU": 1.0, "GPU": 0.5}
    assert runtime.trial_resources(_settings(), use_gpu=False) == {"CPU": 1.0}


def test_packing_fits_the_free_gpu_memory(monkeypatch):
    monkeypatch.setattr(runtime, "free_gpu_memory", lambda: 3 * runtime.TRIAL_GPU_MEMORY_BYTES + 1)
    assert runtime.gpu_fraction(_settings()) == pytest.approx(1 / 3)
    monkeypatch.setattr(runtime, "free_gpu_memory", lambda: runtime.TRIAL_GPU_MEMORY_BYTES // 2)
    assert runtime.gpu_fraction(_settings()) == 1.0  # one trial per GPU at least


def test_concurrency_fills_the_gpu_with_packed_trials(monkeypatch):
    import ray

    monkeypatch.setattr(runtime, "free_gpu_memory", lambda: None)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 16.0, "GPU": 1.0})
    assert runtime.concurrency(_settings(), use_gpu=True) == runtime.PACKED_TRIALS_PER_GPU
    assert runtime.concurrency(_settings(gpu_fraction=0.25), use_gpu=True) == 4
    assert runtime.concurrency(_settings(cpus=4), use_gpu=True) == 4  # CPUs bound it first


# ---------------------------------------------------------------- nothing leaks between trials in one process

LEAK_SCRIPT = """
import gc, json, sys
import numpy, torch
from raysearch import runtime
from raysearch.config import load_config
from models import ConditionedGenerator

base = {base!r}
runs = {{
    "A": load_config("l2", base + ["train.ema_decay=0.9", "data.augment=dihedral"]),
    "B": load_config("wgan", base + ["train.seed=7", "train.critic_steps=2", "optim.generator_lr=0.003"]),
}}
last = None
for index, step in enumerate(sys.argv[2:]):
    if step == "pollute":  # what another trial, or a library it called, may leave in the process
        torch.manual_seed(12345); torch.rand(1000); numpy.random.seed(3)
        torch.set_grad_enabled(False)
        torch.set_num_threads(1)
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.deterministic = True
        continue
    last = runtime.train_run(runs[step], __import__("pathlib").Path(sys.argv[1]) / f"{{index}}-{{step}}")
gc.collect()
alive = sum(isinstance(o, ConditionedGenerator) for o in gc.get_objects())
print(json.dumps({{"metrics": last, "generators_alive": alive, "threads": torch.get_num_threads()}}))
"""


def _runs_in_one_process(tmp_path: Path, name: str, *steps: str) -> dict:
    base = SMALL_DATA + SMALL_NETS + ["train.epochs=2", "train.steps_per_epoch=3", "train.preview_images=0"]
    done = subprocess.run([sys.executable, "-c", LEAK_SCRIPT.format(base=base), str(tmp_path / name), *steps],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_trial_scores_the_same_first_in_a_fresh_process_or_after_other_trials(tmp_path):
    fresh = _runs_in_one_process(tmp_path, "fresh", "A")
    after = _runs_in_one_process(tmp_path, "after", "B", "pollute", "A")
    for key in ("val/psnr", "val/swd", "val/ssim", "val/mse"):
        assert after["metrics"][key] == fresh["metrics"][key], key  # exactly: same state, same arithmetic
    # Nothing of the trials outlives them (their networks would pin their optimiser states and data too).
    assert after["generators_alive"] == fresh["generators_alive"] == 0
    assert after["threads"] == 1  # the process's own setting is given back after each trial


@pytest.mark.slow
@pytest.mark.ray  # Ray: one at a time (conftest)
def test_a_trial_in_a_reused_tune_actor_scores_as_it_does_first(tmp_path):
    # The real path: three trials one after another in one Tune actor; the first and the last have the same
    # config. The scheduler stops the second after its first epoch: a trial stopped part-way ends at its
    # report, so the same process trains the next trial.
    import ray
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler

    class StopTheSecondTrialAfterOneEpoch(FIFOScheduler):
        def on_trial_result(self, tune_controller, trial, result):
            second = trial.config["optim.generator_lr"] == 3e-3
            return TrialScheduler.STOP if second else TrialScheduler.CONTINUE

    overrides = SMALL_DATA + ["generator.max_width=32", "train.steps_per_epoch=3", "train.preview_images=0",
                              "train.ema_decay=0.9"]
    space = load_space("l2", overrides)
    settings = dataclasses.replace(space.tune, num_samples=1, max_epochs=2, max_concurrent=1, max_failures=0)
    runtime.start_ray("local", log_to_driver=False)
    try:
        trainable = runtime.build_trainable(str(space.path), overrides, settings, f"{tmp_path}/reuse", use_gpu=False)
        results = tune.Tuner(
            trainable,
            param_space={"optim.generator_lr": tune.grid_search([1e-3, 3e-3, 1e-3])},
            tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=1,
                                        scheduler=StopTheSecondTrialAfterOneEpoch()),
            run_config=tune.RunConfig(name="reuse", storage_path=str(tmp_path), verbose=0),
        ).fit()
    finally:
        ray.shutdown()
    assert [r.error for r in results if r.error] == []
    ordered = sorted(results, key=lambda r: r.metrics["trial_id"])
    first, other, again = (r.metrics for r in ordered)
    assert first["pid"] == other["pid"] == again["pid"]  # one actor process ran all three
    assert (first["epoch"], other["epoch"], again["epoch"]) == (2, 1, 2)
    # The stopped trial ended at the report the scheduler stopped it at: one result, one checkpoint.
    stopped = Path(ordered[1].path)
    assert [json.loads(line)["epoch"] for line in (stopped / "result.json").read_text().splitlines()] == [1]
    assert len(list(stopped.glob("checkpoint_*"))) == 1
    assert other["val/psnr"] != first["val/psnr"]
    for key in ("val/psnr", "val/swd", "generator/loss"):
        assert again[key] == first[key], key
    assert first["train/threads"] == again["train/threads"] == runtime.threads_for(settings.resources.cpus)


# (A search on a `ray start` cluster with token authentication, its trial on DDP workers that need all of
# the cluster's CPUs: test_cluster_config's loopback `ray up` test submits it as a job.)
