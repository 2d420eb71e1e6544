"""Classical baselines: mean and harmonic fills checked against fills written here (numpy, scipy), OpenCV's
fills present and sane, the cache, and the `baselines` command."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
import torch
from PIL import Image

from raysearch import metrics
from raysearch.config import DataConfig
from raysearch import baselines as baselines_module
from raysearch.data.__main__ import main
from raysearch.baselines import BASELINE_NAMES, baselines_for, best_baseline
from raysearch.data.prepare import prepare_photos
from raysearch.data.prepared import PreparedDataset
from tests.photos import smooth_photo

LO, HI = 16, 48  # the hole, written out here rather than imported
METRIC_KEYS = {"val/mse", "val/psnr", "val/ssim", "val/seam", "val/swd", "val/swd_band"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("baselines")
    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("val", 12)):
        (root / "raw" / split).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(smooth_photo(rng)).save(root / "raw" / split / f"{i:02d}.png")
    prepare_photos(root / "raw", root / "prepared", workers=1, log=lambda _: None)
    return root / "prepared"


def _mean_fill(image: np.ndarray) -> np.ndarray:
    """[64, 64, 3] float: the hole set to the mean of the one-pixel ring around it, per channel."""
    ring = np.concatenate([image[LO - 1, LO:HI], image[HI, LO:HI], image[LO:HI, LO - 1], image[LO:HI, HI]])
    filled = image.copy()
    filled[LO:HI, LO:HI] = ring.mean(axis=0)
    return filled


def _harmonic_fill(image: np.ndarray) -> np.ndarray:
    """[64, 64, 3] float: Laplace's equation in the hole, the pixels around it as the boundary (sparse solve)."""
    inside = [(r, c) for r in range(LO, HI) for c in range(LO, HI)]
    number = {pixel: i for i, pixel in enumerate(inside)}
    matrix = scipy.sparse.lil_matrix((len(inside), len(inside)))
    for i, (r, c) in enumerate(inside):
        matrix[i, i] = 4.0
        for neighbour in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if neighbour in number:
                matrix[i, number[neighbour]] = -1.0
    matrix = matrix.tocsr()
    filled = image.copy()
    for channel in range(3):
        rhs = np.zeros(len(inside))
        for i, (r, c) in enumerate(inside):
            for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                if (nr, nc) not in number:
                    rhs[i] += image[nr, nc, channel]
        filled[LO:HI, LO:HI, channel] = scipy.sparse.linalg.spsolve(matrix, rhs).reshape(HI - LO, HI - LO)
    return filled


def _expected(images_uint8: np.ndarray, fill, seed: int) -> dict[str, float]:
    """The figures of `fill`, the fill and mse/psnr computed here; ssim/seam/swd through raysearch.metrics."""
    real = images_uint8.astype(np.float64) / 255.0
    filled = np.stack([fill(image) for image in real])
    fake_center, real_center = filled[:, LO:HI, LO:HI], real[:, LO:HI, LO:HI]
    per_image = ((fake_center - real_center) ** 2).reshape(len(real), -1).mean(axis=1)
    to_torch = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float()  # noqa: E731
    others = metrics.compute_all(to_torch(fake_center), to_torch(real_center), to_torch(real), seed=seed)
    return {"val/mse": per_image.mean(), "val/psnr": float(np.mean(-10 * np.log10(per_image))),
            "val/ssim": others["ssim"], "val/seam": others["seam"], "val/swd": others["swd"],
            "val/swd_band": others["swd_band"]}


def test_mean_and_harmonic_figures_match_an_independent_computation(dataset: Path) -> None:
    figures = baselines_for(DataConfig(path=str(dataset), val_images=10), seed=3)
    images = np.asarray(PreparedDataset(dataset).images("val")[:10])
    for name, fill in (("mean", _mean_fill), ("harmonic", _harmonic_fill)):
        expected = _expected(images, fill, seed=3)
        assert set(figures[name]) == METRIC_KEYS
        for key, value in expected.items():
            assert figures[name][key] == pytest.approx(value, rel=2e-4, abs=2e-4), (name, key)
    assert figures["harmonic"]["val/psnr"] > figures["mean"]["val/psnr"] + 1.0  # smooth images


def test_opencv_fills_are_present_and_sane(dataset: Path) -> None:
    figures = baselines_for(DataConfig(path=str(dataset), val_images=10), seed=3)
    assert tuple(figures) == BASELINE_NAMES
    for name in ("telea", "navier_stokes"):
        row = figures[name]
        assert set(row) == METRIC_KEYS and all(math.isfinite(v) for v in row.values())
        assert 0 < row["val/mse"] < figures["mean"]["val/mse"]  # they continue the border: better than flat
        assert row["val/psnr"] > figures["mean"]["val/psnr"] and -1 <= row["val/ssim"] <= 1
    assert figures["telea"] != figures["navier_stokes"]
    # The hole is actually filled: scoring the real image as the "fill" would give ~100 dB.
    assert max(row["val/psnr"] for row in figures.values()) < 60


def test_cache_is_hit_then_invalidated_when_the_key_changes(dataset: Path, monkeypatch) -> None:
    calls = []
    real_score = baselines_module.score_fills

    def counted(images, seed):
        calls.append((len(images), seed))
        return real_score(images, seed)

    monkeypatch.setattr(baselines_module, "score_fills", counted)
    data = DataConfig(path=str(dataset), val_images=4)
    first = baselines_for(data, seed=5)
    assert calls == [(4, 5)] and (dataset / "baselines.json").is_file()
    assert baselines_for(data, seed=5) == first and len(calls) == 1  # a hit: nothing recomputed
    baselines_for(data, seed=6)
    baselines_for(DataConfig(path=str(dataset), val_images=0), seed=5)  # 0 = all 12
    assert calls[1:] == [(4, 6), (12, 5)]
    settings = baselines_module.metric_settings()
    changed = {**settings, "swd": {**settings["swd"], "projections": settings["swd"]["projections"] + 1}}
    monkeypatch.setattr(baselines_module, "metric_settings", lambda: changed)
    baselines_for(data, seed=5)
    assert calls[-1] == (4, 5) and len(calls) == 4
    # Every entry is kept: the earlier keys still hit.
    monkeypatch.setattr(baselines_module, "metric_settings", lambda: settings)
    baselines_for(data, seed=6)
    assert len(calls) == 4


def test_metric_settings_are_read_from_the_metrics_module(monkeypatch) -> None:
    before = baselines_module.metric_settings()
    assert before["swd"]["projections"] > 0 and before["swd"]["patch"] > 0
    monkeypatch.setattr(metrics, "SSIM_WINDOW", metrics.SSIM_WINDOW + 2)
    assert baselines_module.metric_settings() != before


def test_best_baseline() -> None:
    table = {"mean": {"val/psnr": 15.0, "val/swd": 400.0}, "harmonic": {"val/psnr": 17.0, "val/swd": 250.0},
             "telea": {"val/psnr": 16.5, "val/swd": 60.0}}
    assert best_baseline(table, "val/psnr", "max") == ("harmonic", 17.0)
    assert best_baseline(table, "val/swd", "min") == ("telea", 60.0)
    with pytest.raises(Exception, match="val/fid"):
        best_baseline(table, "val/fid", "min")


def test_cli_prints_a_table_then_one_json_line(dataset: Path, capsys) -> None:
    assert main(["baselines", str(dataset), "--val-images", "4", "--seed", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].split()[0] == "fill" and any(line.startswith("harmonic") for line in lines[:-1])
    last = json.loads(lines[-1])
    assert set(last) == set(BASELINE_NAMES) and all(set(row) == METRIC_KEYS for row in last.values())
    assert last == baselines_for(DataConfig(path=str(dataset), val_images=4), seed=5)


@pytest.mark.parametrize("data", ["/nonexistent/dataset", "nosuch://bucket/x"])
def test_cli_bad_data_is_one_line(data: str, capsys) -> None:
    assert main(["baselines", data]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith(f"error: DATA {data}: ") and captured.out == ""


def test_cli_bad_val_images_is_one_line(dataset: Path, capsys) -> None:
    assert main(["baselines", str(dataset), "--val-images", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "val_images" in err
