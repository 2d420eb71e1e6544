"""bench/generalisation.py: a checkpoint's gain over the best fill on the photos it trained on and on unseen ones."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.generalisation import main, training_sample
from raysearch.checkpoint import load_checkpoint, save_checkpoint
from raysearch.config import build_config, load_config
from raysearch.baselines import baselines_for, score_fills
from raysearch.data.prepare import prepare_photos
from raysearch.loop import run_trial
from tests.conftest import validated_by_the_loop
from tests.photos import smooth_photo

PHOTOS = 20
SMALL_NETS = ["generator.base_width=8", "generator.max_width=32"]


def _train(data: Path, root: Path) -> Path:
    """A real checkpoint of the l2 space's base (weight average included) after a few steps on `data`."""
    cfg = load_config("l2", [f"data.path={data}", "data.val_images=0", "train.epochs=1", "train.steps_per_epoch=3",
                             "train.batch_size=8", "train.preview_images=0", *SMALL_NETS])

    def keep(metrics, directory):
        if directory is not None:
            save_checkpoint(load_checkpoint(directory), root)

    run_trial(cfg, keep)
    return root


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory) -> Path:
    """A checkpoint trained on a dataset whose val split holds exactly its train images (whole square photos)."""
    root = tmp_path_factory.mktemp("generalisation")
    rng = np.random.default_rng(3)
    photos = [smooth_photo(rng) for _ in range(PHOTOS)]
    for split in ("train", "val"):
        (root / "raw" / split).mkdir(parents=True)
        for i, photo in enumerate(photos):
            Image.fromarray(photo).save(root / "raw" / split / f"{i:02d}.png")
    # min_crop 1 on square photos: each crop is the whole photo, so the two splits are the same images
    prepare_photos(root / "raw", root / "data", min_crop=1.0, workers=1, log=lambda _: None)
    return _train(root / "data", root / "checkpoint")


def _run(capsys, *argv) -> tuple[int, dict]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1]) if code == 0 else {}


def test_the_training_sample_is_distinct_sorted_and_repeatable():
    sample = training_sample(50, 1000)
    assert len(set(sample.tolist())) == 50 and list(sample) == sorted(sample) and sample.max() < 1000
    assert np.array_equal(sample, training_sample(50, 1000))
    # spread over the whole set: a prepared split lists each photo's crops together
    assert sample.min() < 100 and sample.max() > 900
    assert np.array_equal(training_sample(0, 7), np.arange(7)) and np.array_equal(training_sample(9, 7), np.arange(7))


def test_the_val_side_is_the_trials_own_validation_and_the_cached_fills(mirrored, capsys):
    code, figures = _run(capsys, mirrored, "--train-images", 8)
    assert code == 0 and figures["train_images"] == 8 and figures["val_images"] == PHOTOS
    state = load_checkpoint(mirrored)
    validated, _ = validated_by_the_loop(state)
    assert figures["val_model"] == pytest.approx(validated["val/psnr"], abs=1e-4)
    fills = baselines_for(build_config(state["config"]).data, state["config"]["train"]["seed"])
    best = max(fills, key=lambda name: fills[name]["val/psnr"])
    assert figures["val_best_fill"] == best
    assert figures["val_best_fill_value"] == pytest.approx(fills[best]["val/psnr"], abs=1e-4)
    assert figures["val_gain"] == pytest.approx(figures["val_model"] - figures["val_best_fill_value"])
    # the train side scores the sampled training images, read here straight from the prepared arrays
    train = np.load(Path(state["config"]["data"]["path"]) / "train_images.npy")[training_sample(8, PHOTOS)]
    sampled = score_fills(train, state["config"]["train"]["seed"])
    assert figures["train_best_fill_value"] == pytest.approx(max(f["val/psnr"] for f in sampled.values()), abs=1e-4)
    assert abs(figures["train_model"] - figures["val_model"]) > 1e-3  # 8 of the photos, not all 20
    assert figures["generalisation_gap"] == pytest.approx(figures["train_gain"] - figures["val_gain"])


def test_training_images_scored_like_validation_ones_show_no_gap(mirrored, capsys):
    """Train and val hold the same photos here: scoring all of them both ways must agree exactly."""
    code, figures = _run(capsys, mirrored, "--train-images", 0)
    assert code == 0 and figures["train_images"] == figures["val_images"] == PHOTOS
    assert figures["train_model"] == pytest.approx(figures["val_model"], abs=1e-4)
    assert figures["train_best_fill_value"] == pytest.approx(figures["val_best_fill_value"], abs=1e-4)
    assert figures["generalisation_gap"] == pytest.approx(0.0, abs=1e-4)


def test_a_moved_dataset_is_found_with_data_and_a_bad_checkpoint_is_one_line(mirrored, tmp_path, capsys):
    state = load_checkpoint(mirrored)
    state["config"]["data"]["path"] = str(tmp_path / "gone")
    moved = tmp_path / "moved"
    save_checkpoint(state, moved)
    assert main([str(moved), "--train-images", "4"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "gone" in error and "\n" not in error
    original = load_checkpoint(mirrored)["config"]["data"]["path"]
    code, figures = _run(capsys, moved, "--train-images", 4, "--data", original)
    assert code == 0 and figures["val_images"] == PHOTOS
    assert main([str(tmp_path / "nothing")]) == 2
    assert "not a raysearch checkpoint" in capsys.readouterr().err


def test_the_generator_scored_is_the_weight_average(mirrored, tmp_path, capsys):
    """Replacing the average's weights by noise changes the figures: the bench scores what validation scores.
    (Its batch-norm statistics are left alone: a checkpoint saves the trained network's there, and a negative
    running variance would only make every figure NaN.)"""
    state = load_checkpoint(mirrored)
    _, before = _run(capsys, mirrored, "--train-images", 4)
    torch.manual_seed(0)
    network = state["generator_average"]["network"]
    state["generator_average"]["network"] = {
        name: value + 0.5 * torch.randn_like(value) if name.endswith(("weight", "bias")) else value
        for name, value in network.items()
    }
    save_checkpoint(state, tmp_path / "noisy")
    _, after = _run(capsys, tmp_path / "noisy", "--train-images", 4)
    assert after["val_model"] < before["val_model"] - 0.5 and after["train_model"] < before["train_model"] - 0.5
