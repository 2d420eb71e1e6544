"""The benches, where their honesty is at stake: what they count as trained, and what they score."""

import pytest
import torch

from bench.throughput import images_trained, raysearch_epoch
from raysearch.config import load_config
from raysearch.loop import Worker, Trial, train_epoch
from tests.conftest import SMALL_DATA

SMALL_NETS = ["generator.base_width=8", "generator.max_width=16", "critic.base_width=8", "critic.max_width=16"]


def small(space, *extra):
    return load_config(space, SMALL_DATA + SMALL_NETS + list(extra))


@pytest.mark.parametrize("batches_held, steps_per_epoch, cycle, expected", [
    (31, 0, 1, 31),     # the whole data: 2,000 images at batch 64 hold 31 batches
    (31, 120, 1, 31),   # the case seen: 120 asked for, 31 held, 31 trained
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
    trial = Trial(cfg, Worker())
    images, _ = raysearch_epoch(trial, 0)
    assert images == 6 * 16 == images_trained(6, 20, 1, 16)
    logs, _ = train_epoch(trial)
    assert logs["train/images_per_s"] * logs["train/epoch_s"] == pytest.approx(images)


def test_packing_bench_data_holds_the_steps_it_times():
    from bench.packing import images_for_steps

    # wgan with 5 critic steps: a step is 6 batches, so 30 steps at batch 64 need 30 x 6 x 64 images.
    assert images_for_steps(load_config("wgan", ["train.critic_steps=5", "train.batch_size=64"]), 30) == 11520
    assert images_for_steps(load_config("l2", ["train.batch_size=16"]), 8) == 128


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
