"""The realism judge (raysearch/judge.py), its controls (raysearch/control_fills.py), swd_band on them, and its command.

The ranking tests use 300 BSDS500 photos (../shared/photos/bsds500 beside the clone), one centered
64x64 crop each (0.6 s to load), and a small budget (60 steps, width 8: ~0.6 s per seed) at which the
controls order as at the default budget on the prepared val crops (docs/quality.md).
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.geometry import hole_of
from raysearch import judge as judge_module
from raysearch import metrics
from raysearch.checkpoint import load_checkpoint, save_checkpoint
from raysearch.config import load_config
from raysearch.control_fills import CONTROL_NAMES, band_energies, border_matched_noise, control_fill, pasted_context
from raysearch.data.cache import resolve_dataset
from raysearch.data.dataset import as_unit, to_float_images
from raysearch.data.images import load_square
from raysearch.fill import checkpoint_fills
from raysearch.judge import Budget, judge, paired_difference, photo_groups, windows
from raysearch.loop import run_trial
from tests.conftest import SMALL_DATA
from tests.photos import bsds_photos, skip_without_bsds

SMALL = Budget(steps=60, width=8)
TINY = Budget(steps=4, width=2)  # for what does not depend on the classifier learning anything
SEEDS = 4


def random_images(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 64, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """uint8 [300, 64, 64, 3]: the centered square of 300 BSDS500 photos, one per photo."""
    paths = bsds_photos(count=300)
    return np.stack([load_square(path, 64)[0] for path in paths])


@pytest.fixture(scope="module")
def judged(photos) -> dict[str, judge_module.JudgeResult]:
    """The controls a person orders at a glance, judged with the same seeds (~10 s)."""
    real = control_fill(photos, "real")
    ids = np.arange(len(photos))
    return {name: judge(real, control_fill(photos, name), ids, seeds=SEEDS, budget=SMALL)
            for name in ("real", "mean", "telea", "pasted")}


# ----------------------------------------------------------------------------- windows and deals


def test_windows_are_the_hole_and_its_ring():
    images = torch.arange(2 * 3 * 64 * 64, dtype=torch.float32).view(2, 3, 64, 64)
    window = windows(images, ring=8)
    assert window.shape == (2, 3, 48, 48)
    assert torch.equal(window, images[..., 8:56, 8:56])
    assert torch.equal(windows(images, ring=0), hole_of(images))


def test_photo_groups_deal_every_crop_of_a_photo_to_one_group():
    photos = torch.arange(40).repeat_interleave(3)  # 40 photos, 3 crops each, crops of a photo adjacent
    groups = photo_groups(photos, seed=0)
    assert len(groups) == 4 and all(10 * 3 == int(g.sum()) for g in groups)
    assert torch.equal(torch.stack(groups).sum(dim=0), torch.ones(len(photos), dtype=torch.long))  # a partition
    for group in groups:
        inside = set(photos[group].tolist())
        outside = set(photos[~group].tolist())
        assert not inside & outside  # no photo on two sides
    assert [torch.equal(a, b) for a, b in zip(groups, photo_groups(photos, seed=0))] == [True] * 4
    assert not all(torch.equal(a, b) for a, b in zip(groups, photo_groups(photos, seed=1)))


def test_judge_is_deterministic_for_a_seed():
    images = random_images(24, seed=1)
    real = to_float_images(torch.from_numpy(images))
    filled = control_fill(images, "mean")
    photos = np.arange(24) // 2
    first = judge(real, filled, photos, seeds=2, budget=TINY)
    again = judge(real.clone(), filled.clone(), photos, seeds=2, budget=TINY)
    assert first.auc.values == again.auc.values and first.log_loss.values == again.log_loss.values
    assert first.auc.values[0] != first.auc.values[1]  # another seed deals other photos, starts another network
    assert first.seeds == 2 and first.photos == 12 and first.windows == 24


def test_judge_rejects_what_it_cannot_test():
    images = random_images(8, seed=2)
    real = to_float_images(torch.from_numpy(images))
    with pytest.raises(ValueError, match="at least 4"):
        judge(real, real, np.array([0, 0, 1, 1, 2, 2, 2, 2]), budget=TINY)
    with pytest.raises(ValueError, match="photos"):
        judge(real, real[:4], np.arange(8), budget=TINY)
    with pytest.raises(ValueError, match="seeds"):
        judge(real, real, np.arange(8), seeds=1, budget=TINY)
    with pytest.raises(ValueError, match="ring"):
        Budget(ring=9)


def test_paired_difference_is_seed_by_seed():
    a = judge_module.JudgeResult(judge_module.Spread.of([0.9, 0.8, 0.7]), judge_module.Spread.of([0.1, 0.2, 0.3]),
                                 3, 10, 20, SMALL, 1.0, 1.0)
    b = judge_module.JudgeResult(judge_module.Spread.of([0.6, 0.5, 0.4]), judge_module.Spread.of([0.5, 0.5, 0.5]),
                                 3, 10, 20, SMALL, 1.0, 1.0)
    difference = paired_difference(a, b)
    assert difference.values == pytest.approx((0.3, 0.3, 0.3)) and difference.std == pytest.approx(0.0)
    assert paired_difference(a, b, "log_loss").mean == pytest.approx(-0.3)


# ----------------------------------------------------------------------------- the controls


def test_every_control_changes_only_the_hole_and_is_in_range():
    images = random_images(6, seed=3)
    real = to_float_images(torch.from_numpy(images))
    frame = torch.ones(64, 64, dtype=torch.bool)
    frame[16:48, 16:48] = False
    for name in CONTROL_NAMES:
        filled = control_fill(images, name, seed=1)
        assert filled.shape == real.shape and filled.dtype == torch.float32, name
        assert torch.equal(filled[..., frame], real[..., frame]), name
        assert filled.min() >= -1 and filled.max() <= 1, name
        assert torch.equal(filled, control_fill(images, name, seed=1)), name
    with pytest.raises(ValueError, match="allowed: real, mean"):
        control_fill(images, "fid")


def test_pasted_context_is_the_strips_that_flank_the_hole():
    images = torch.rand(2, 3, 64, 64)
    pasted = pasted_context(images)
    assert torch.equal(pasted[0, :, 16:32, 16:48], images[0, :, 0:16, 16:48])  # even: above and below
    assert torch.equal(pasted[0, :, 32:48, 16:48], images[0, :, 48:64, 16:48])
    assert torch.equal(pasted[1, :, 16:48, 16:32], images[1, :, 16:48, 0:16])  # odd: left and right
    assert torch.equal(pasted[1, :, 16:48, 32:48], images[1, :, 16:48, 48:64])


@skip_without_bsds
def test_noise_has_the_band_energy_of_the_context(photos):
    images = photos[:64]
    harmonic = control_fill(images, "harmonic")
    noise = border_matched_noise(harmonic, seed=0)
    hole = (slice(None), slice(None), slice(16, 48), slice(16, 48))
    assert torch.equal(control_fill(images, "harmonic_noise")[hole], (harmonic + noise).clamp(-1, 1)[hole])
    pyramid = metrics.laplacian_pyramid(noise, 4)
    targets = band_energies(harmonic)
    for level, target in zip(pyramid[:3], targets):
        rms = level.square().mean(dim=(2, 3)).sqrt()
        ratio = (rms / target).median()
        assert 0.95 < float(ratio) < 1.05  # the pyramid's bands overlap: matched to a few %


# ----------------------------------------------------------------------------- the controls rank


@pytest.mark.slow
@skip_without_bsds
def test_real_against_real_is_chance(judged):
    real = judged["real"]
    assert real.auc.low < 0.5 < real.auc.high
    assert abs(real.auc.mean - 0.5) < 0.1
    assert abs(real.log_loss.mean - np.log(2)) < 0.05


@pytest.mark.slow
@skip_without_bsds
def test_mean_fill_is_told_apart_more_easily_than_telea_and_the_pasted_patch(judged):
    assert judged["mean"].auc.mean > 0.95
    # Seed by seed, not just on average: the same seed deals the same photos for every fill.
    assert min(paired_difference(judged["mean"], judged["telea"]).values) > 0.05
    assert max(paired_difference(judged["mean"], judged["pasted"], "log_loss").values) < -0.1
    assert judged["telea"].auc.mean > judged["real"].auc.high  # Telea's smear is seen, but not saturated
    assert judged["telea"].auc.mean < 0.93


@pytest.mark.slow
@skip_without_bsds
def test_judge_ranking_is_the_same_on_every_seed(judged):
    for seed in range(SEEDS):
        real, telea, mean = (judged[name].auc.values[seed] for name in ("real", "telea", "mean"))
        assert real < telea < mean, seed


@skip_without_bsds
def test_swd_band_sees_the_missing_detail_that_swd_normalises_away(photos):
    """Against the floor (two disjoint sets of real centers), swd_band puts Telea's smear and a blur much further
    from the real centers than swd does: swd's own-set standardisation removes how much detail a band holds."""
    real = as_unit(hole_of(control_fill(photos, "real")))
    first, second = real[:100], real[100:200]
    blurred = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(first, (1, 1, 1, 1), mode="reflect"), 3, 1)
    telea = as_unit(hole_of(control_fill(photos[:100], "telea")))
    assert metrics.sliced_wasserstein_band(first.clone(), first).item() == pytest.approx(0.0, abs=1e-3)
    floor = metrics.sliced_wasserstein(second, first).item()
    floor_band = metrics.sliced_wasserstein_band(second, first).item()
    for fill in (telea, blurred):
        swd = metrics.sliced_wasserstein(fill, first).item() / floor
        swd_band = metrics.sliced_wasserstein_band(fill, first).item() / floor_band
        assert swd_band > 1.5 * swd and swd_band > 2.0


# ----------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A one-epoch l2 checkpoint on the synthetic data (a few steps)."""
    root = tmp_path_factory.mktemp("judge-checkpoint")
    cfg = load_config("l2", SMALL_DATA + ["generator.base_width=8", "generator.max_width=32", "train.epochs=1",
                                          "train.steps_per_epoch=2"])
    kept = []

    def report(metrics_, directory):
        if directory is not None:
            kept.append(save_checkpoint(load_checkpoint(directory), root / "epoch1"))

    run_trial(cfg, report)
    return kept[-1]


def test_checkpoint_fills_are_what_its_validation_measured(checkpoint):
    fills = checkpoint_fills(checkpoint)
    real = to_float_images(torch.from_numpy(fills.images))
    psnr = metrics.psnr(as_unit(hole_of(fills.filled)), as_unit(hole_of(real))).item()
    assert psnr == pytest.approx(load_checkpoint(checkpoint)["val_history"][-1]["val/psnr"], abs=1e-4)
    frame = torch.ones(64, 64, dtype=torch.bool)
    frame[16:48, 16:48] = False
    assert torch.equal(fills.filled[..., frame], real[..., frame])  # only the hole is the generator's
    assert len(fills.photos) == len(fills.images) == 32 and fills.epoch == 1


def test_command_judges_a_checkpoint_beside_the_classical_fills(checkpoint, monkeypatch, capsys):
    monkeypatch.setattr(judge_module, "BUDGET", TINY)  # what is checked here is the plumbing, not the figures
    assert judge_module.main([str(checkpoint), "--seeds", "2"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(out[-1])
    assert set(figures["judge"]) == {"real", "mean", "harmonic", "telea", "navier_stokes", "checkpoint (epoch 1)"}
    assert figures["images"] == 32 and figures["photos"] == 32 and figures["seeds"] == 2
    assert figures["judge"]["mean"]["budget"]["steps"] == TINY.steps
    assert any(line.startswith("checkpoint (epoch 1)") for line in out)


def test_command_errors_are_one_line(checkpoint, tmp_path, capsys):
    few = resolve_dataset(None, synthetic_train=4, synthetic_val=3)  # a prepared dataset of 3 val photos
    capsys.readouterr()  # its progress lines
    cases = [
        ([str(tmp_path)], f"{tmp_path}: not a raysearch checkpoint"),
        ([str(checkpoint), "--data", str(tmp_path / "nowhere")], str(tmp_path / "nowhere")),
        ([str(checkpoint), "--data", str(few)], "at least 4"),
        ([str(checkpoint), "--seeds", "1"], "--seeds"),
    ]
    for argv, needle in cases:
        assert _exit_code(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and err.startswith("error: ") and needle in err, (argv, err)


def _exit_code(argv: list[str]) -> int:
    try:
        return judge_module.main(argv)
    except SystemExit as exit_:  # argparse's one-line errors exit
        return exit_.code
