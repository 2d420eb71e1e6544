"""bench/linear_fill.py, where its honesty is at stake: an untrained operator is the harmonic fill, the figures it
prints are the fills' own, and its oracles peek at exactly what they say."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.linear_fill import band_mask, linear_fill, main, oracle_fills, unit_images
from models.fills import harmonic_fill
from models.geometry import hole_of
from raysearch.config import DataConfig
from raysearch.baselines import baselines_for
from raysearch.data.prepare import prepare_photos
from tests.photos import smooth_photo


def _photos(count: int, seed: int) -> np.ndarray:
    """uint8 [N, 64, 64, 3]: smooth colour fields, which the harmonic fill does not continue exactly."""
    rng = np.random.default_rng(seed)
    return np.stack([smooth_photo(rng)[:64, :64] for _ in range(count)])


def _hole_mse(filled_center: torch.Tensor, images: torch.Tensor) -> float:
    return float((filled_center - hole_of(images)).square().mean())


def test_a_zero_operator_is_the_harmonic_fill() -> None:
    images = unit_images(_photos(3, seed=1))
    mask = band_mask(4)
    zero = torch.zeros(int(mask.sum()) + 1, 32 * 32, dtype=torch.float64)
    assert torch.allclose(linear_fill(images, zero, mask), hole_of(harmonic_fill(images)).clamp(0, 1))


def test_the_bench_prints_the_fills_then_one_json_line(tmp_path: Path, monkeypatch, capsys) -> None:
    for split, count, seed in (("train", 24, 4), ("val", 8, 5)):
        (tmp_path / "raw" / split).mkdir(parents=True)
        for i, photo in enumerate(_photos(count, seed)):
            Image.fromarray(photo).save(tmp_path / "raw" / split / f"{i:02d}.png")
    prepare_photos(tmp_path / "raw", tmp_path / "data", workers=1, log=lambda _: None)
    monkeypatch.setattr(sys, "argv", ["linear_fill.py", str(tmp_path / "data"), "--band", "2", "--ridge", "1e-2"])
    main()
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("linear (fitted)") for line in lines)
    summary = json.loads(lines[-1])
    harmonic = baselines_for(DataConfig(path=str(tmp_path / "data")), 0)["harmonic"]
    assert summary["harmonic_psnr"] == pytest.approx(harmonic["val/psnr"], abs=1e-4)
    assert summary["linear_psnr"] > summary["harmonic_psnr"]
    assert summary["train_images"] == 24 and summary["band"] == 2
    assert summary["oracle_2x2_psnr"] > summary["harmonic_psnr"]


def test_the_oracles_use_the_truth_as_they_say() -> None:
    images = unit_images(_photos(3, seed=6))
    truth = hole_of(images)
    oracles = oracle_fills(images)
    # The mean shift makes each image's and channel's mean the true one.
    assert torch.allclose(oracles["oracle: true mean"].mean(dim=(-2, -1)), truth.mean(dim=(-2, -1)))
    # The first ring is the truth; inside it, the discrete Laplace equation holds.
    ring = oracles["oracle: true ring"]
    assert torch.equal(ring[..., 0, :], truth[..., 0, :]) and torch.equal(ring[..., :, -1], truth[..., :, -1])
    inside = ring[..., 1:-1, 1:-1]
    neighbours = (ring[..., :-2, 1:-1] + ring[..., 2:, 1:-1] + ring[..., 1:-1, :-2] + ring[..., 1:-1, 2:]) / 4
    assert (inside - neighbours).abs().max() < 1e-3
    # A ramp is its own harmonic fill: no oracle has anything to add.
    ramp = torch.linspace(0.2, 0.8, 64, dtype=torch.float64).expand(1, 3, 64, 64).clone()
    for center in oracle_fills(ramp).values():
        assert torch.allclose(center, hole_of(ramp), atol=1e-6)
