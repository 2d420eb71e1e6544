"""The fast step (issue 9): compiled training for every objective, fused divergence checks, honest counting."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.throughput import images_trained, raysearch_epoch
from raysearch import losses
from raysearch.config import load_config
from raysearch.errors import ConfigError
from raysearch.loop import Runtime, Trial, run_trial, train_epoch
from raysearch.loop.epoch import EpochLog, non_finite_weights
from tests.conftest import SMALL_DATA

SMALL_NETS = ["generator.base_width=8", "generator.max_width=16", "critic.base_width=8", "critic.max_width=16"]


def small(space, *extra):
    return load_config(space, SMALL_DATA + SMALL_NETS + list(extra))


# Inductor compiles C++ kernels on CPU: minutes on 2 cores (its on-disk cache
# makes the objectives after the first cheaper).
@pytest.mark.slow
@pytest.mark.parametrize("objective", ["l2", "gan", "nsgan", "wgan", "hinge"])
def test_compiled_training_runs_one_epoch_for_every_objective(objective):
    space = "l2" if objective == "l2" else "wgan"
    extra = [] if objective in ("l2", "wgan") else [f"objective.name={objective}"]
    cfg = small(space, "train.compile=true", "train.epochs=1", "train.steps_per_epoch=2", "train.critic_steps=1",
                "train.preview_images=0", *extra)
    last = run_trial(cfg, lambda metrics, checkpoint: None)
    assert last["diverged"] == 0 and last["epoch"] == 1
    assert math.isfinite(last["generator/loss"]) and math.isfinite(last["val/mse"])
    if objective != "l2":
        assert math.isfinite(last["critic/loss"])


def test_compile_with_wgan_gp_is_rejected_in_one_line():
    with pytest.raises(ConfigError, match="train.compile=true cannot be used with objective.name=wgan-gp") as err:
        small("wgan_gp", "train.compile=true")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("batches_held, steps_per_epoch, cycle, expected", [
    (31, 0, 1, 31),     # the whole data: 2,000 images at batch 64 hold 31 batches
    (31, 120, 1, 31),   # the case: 120 asked for, 31 held, 31 trained
    (31, 24, 1, 24),    # fewer asked than held
    (31, 4, 6, 24),     # n_critic 5: a step is a cycle of 6 batches
    (31, 20, 6, 31),    # 120 batches asked in cycles, 31 held
])
def test_throughput_bench_counts_the_batches_the_data_holds(batches_held, steps_per_epoch, cycle, expected):
    assert images_trained(batches_held, steps_per_epoch, cycle, batch_size=64) == expected * 64


def test_throughput_bench_counts_what_train_epoch_trained():
    # 96 training images at batch 16 hold 6 batches: 20 steps asked, 6 batches trained.
    cfg = small("l2", "data.synthetic_train=96", "train.batch_size=16", "train.preview_images=0",
                "train.steps_per_epoch=20")
    trial = Trial(cfg, Runtime())
    images, _ = raysearch_epoch(trial, 0)
    assert images == 6 * 16 == images_trained(6, 20, 1, 16)
    logs, _ = train_epoch(trial)
    assert logs["train/images_per_s"] * logs["train/epoch_s"] == pytest.approx(images)


def test_packing_bench_data_holds_the_steps_it_times():
    from bench.packing import images_for_steps

    # wgan with 5 critic steps: a step is 6 batches, so 30 steps at batch 64 need 30 x 6 x 64 images.
    assert images_for_steps(load_config("wgan", ["train.critic_steps=5", "train.batch_size=64"]), 30) == 11520
    assert images_for_steps(load_config("l2", ["train.batch_size=16"]), 8) == 128


def test_a_trial_run_without_ray_trains_on_the_device_the_config_names(monkeypatch):
    from raysearch.loop import local_runtime

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert local_runtime(small("l2", "train.device=auto")).device == torch.device("cpu")
    assert local_runtime(small("l2", "train.device=cpu")).device == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"train.device=cuda: torch sees no GPU"):
        local_runtime(small("l2", "train.device=cuda"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert local_runtime(small("l2", "train.device=auto")).device == torch.device("cuda")


def test_epoch_batches_are_on_the_device_and_cover_the_data_once():
    cfg = small("l2", "data.synthetic_train=100", "train.batch_size=16", "train.preview_images=0")
    trial = Trial(cfg, Runtime())
    batches = trial.data.epoch_batches(0)
    assert [len(b) for b in batches] == [16] * 6  # full batches only
    seen = torch.cat(batches)
    assert len(set(seen.tolist())) == 96 and all(b.device == trial.device for b in batches)


def test_epoch_log_names_the_phase_that_went_non_finite_first():
    log = EpochLog()
    finite = torch.tensor(1.0)
    for batch in range(6):
        log.add(batch, {"critic/loss": finite if batch < 4 else torch.tensor(math.inf), "critic/real_score": finite})
        log.add(batch, {"generator/loss": finite if batch < 2 else torch.tensor(math.nan)})
        if batch == 3:
            assert log.diverged_phase() == "generator"  # a check part-way sees the generator's batch 2
    assert log.diverged_phase() == "generator"  # still the earliest, after the critic's batch 4 went bad too
    assert log.first_bad == {"generator": 2, "critic": 4}
    clean = EpochLog()
    clean.add(0, {"critic/loss": finite, "critic_gp/penalty": finite})
    assert clean.diverged_phase() is None
    clean.add(1, {"critic/loss": finite, "critic_gp/penalty": torch.tensor(math.inf)})
    assert clean.diverged_phase() == "critic_gp"


def test_epoch_log_means_every_key_over_its_own_entries():
    log = EpochLog()
    log.add(0, {"critic/loss": torch.tensor(1.0)})
    log.add(1, {"critic/loss": torch.tensor(3.0), "generator/loss": torch.tensor(5.0)})
    assert log.means() == {"critic/loss": 2.0, "generator/loss": 5.0}


@pytest.mark.parametrize("network", ["generator", "critic"])
def test_non_finite_weight_check_names_the_network(network):
    trial = Trial(small("wgan", "train.preview_images=0"), Runtime())
    assert non_finite_weights(trial) is None
    with torch.no_grad():
        parameters = list(getattr(trial.networks, network).parameters())
        parameters[len(parameters) // 2].view(-1)[3] = math.nan
    assert non_finite_weights(trial) == network


def test_clip_weights_clamps_every_critic_parameter():
    critic = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
    with torch.no_grad():
        for parameter in critic.parameters():
            parameter.uniform_(-3, 3)
    losses.clip_weights(critic, 0.01)
    assert all(p.abs().max() <= 0.01 for p in critic.parameters())
    assert any(p.abs().max() == 0.01 for p in critic.parameters())


# ---------------------------------------------------------------- packing trials onto a GPU


def _settings(**resources):
    from raysearch.spaces import Resources, TuneSettings

    return TuneSettings(resources=Resources(**resources))


def test_trials_are_packed_per_gpu_unless_the_space_sets_gpu_fraction(monkeypatch):
    from raysearch import runtime as tune

    monkeypatch.setattr(tune, "free_gpu_memory", lambda: None)
    assert tune.trial_resources(_settings(), use_gpu=True) == {"CPU": 1.0, "GPU": 1 / tune.PACKED_TRIALS_PER_GPU}
    assert tune.trial_resources(_settings(gpu_fraction=0.5), use_gpu=True) == {"CPU": 1.0, "GPU": 0.5}
    assert tune.trial_resources(_settings(), use_gpu=False) == {"CPU": 1.0}


def test_packing_fits_the_free_gpu_memory(monkeypatch):
    from raysearch import runtime as tune

    monkeypatch.setattr(tune, "free_gpu_memory", lambda: 3 * tune.TRIAL_GPU_MEMORY_BYTES + 1)
    assert tune.gpu_fraction(_settings()) == pytest.approx(1 / 3)
    monkeypatch.setattr(tune, "free_gpu_memory", lambda: tune.TRIAL_GPU_MEMORY_BYTES // 2)
    assert tune.gpu_fraction(_settings()) == 1.0  # one trial per GPU at least


def test_concurrency_fills_the_gpu_with_packed_trials(monkeypatch):
    import ray

    from raysearch import runtime as tune

    monkeypatch.setattr(tune, "free_gpu_memory", lambda: None)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 16.0, "GPU": 1.0})
    assert tune.concurrency(_settings(), use_gpu=True) == tune.PACKED_TRIALS_PER_GPU
    assert tune.concurrency(_settings(gpu_fraction=0.25), use_gpu=True) == 4
    assert tune.concurrency(_settings(cpus=4), use_gpu=True) == 4  # CPUs bound it first


@pytest.mark.parametrize("margin", [0, 2])
def test_rank_stability_bench_scores_the_hole_of_generated_centers(margin):
    # A generator's output is the 32 + 2m center, not a 64x64 image: the bench scores its central 32x32.
    from bench.rank_stability import half_rho
    from models.geometry import crop_center

    images = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    perfect = crop_center(images, margin)
    outputs = [("perfect", perfect, images, 0), ("mirrored", perfect.flip(-1), images, 0),
               ("black", torch.zeros_like(perfect), images, 0)]
    squared_error = lambda fake, real, seed: ((fake - real) ** 2).mean()  # noqa: E731
    assert half_rho(outputs, 2, squared_error) == pytest.approx(1.0)


@pytest.mark.parametrize("script", sorted(p.name for p in (Path(__file__).resolve().parent.parent / "bench").glob("*.py")
                                          if p.name != "__init__.py"))
def test_every_bench_runs_as_the_readme_writes_it(script):
    # `python bench/NAME.py` puts bench/, not the repository root, on sys.path: imports must still resolve.
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, f"bench/{script}", "--help"], cwd=root, capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout
