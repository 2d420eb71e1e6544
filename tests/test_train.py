"""`python -m raysearch.train`: one trial through Ray Train on a local Ray, and its errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from raysearch.train import main
from tests.conftest import SMALL_DATA

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.ray  # Ray: one at a time (conftest)
def test_one_trial_with_two_ddp_workers_prints_json_and_writes_tensorboard(tmp_path):
    overrides = [arg for item in SMALL_DATA for arg in ("--set", item)]
    command = [sys.executable, "-m", "raysearch.train", "wgan", "--epochs", "2", "--workers", "2",
               "--logdir", str(tmp_path / "run"), *overrides, "--set", "train.critic_steps=1",
               "--set", "generator.base_width=8", "--set", "critic.base_width=8", "--address", "local"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    final = json.loads(done.stdout.strip().splitlines()[-1])
    assert final["epoch"] == 2 and final["diverged"] == 0
    assert set(final) >= {"val/mse", "val/psnr", "val/ssim", "val/seam", "val/swd"}
    # How far the result is from the best classical fill of the same validation images.
    from raysearch.config import load_config
    from raysearch.baselines import BASELINE_NAMES, baselines_for, best_baseline

    cfg = load_config("wgan", SMALL_DATA)
    fill, psnr = best_baseline(baselines_for(cfg.data, cfg.train.seed), "val/psnr", "max")
    assert final["best_fill"] == fill and final["best_fill/val/psnr"] == pytest.approx(psnr)
    assert final["val/psnr_over_best_fill"] == pytest.approx(final["val/psnr"] - psnr)
    side = "above" if final["val/psnr"] >= psnr else "below"
    assert f"dB {side} the best classical fill ({fill} {psnr:.2f} dB)" in done.stderr
    for name in BASELINE_NAMES:  # reference runs beside the run's own events
        reference = EventAccumulator(str(tmp_path / "run" / f"baseline_{name}"))
        reference.Reload()
        assert [s.step for s in reference.Scalars("val/psnr")] == [1, 2], name
    assert "world_rank=1" in done.stderr, "two Ray Train workers"
    assert sorted(p.name for p in (tmp_path / "run" / "train").glob("epoch_*")) == ["epoch_0001", "epoch_0002"]
    events = EventAccumulator(str(tmp_path / "run"))
    events.Reload()
    assert [s.step for s in events.Scalars("val/psnr")] == [1, 2]


def test_bad_flags_are_one_clear_error(capsys):
    assert main(["wgan", "--set", "train.epochs=0", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.epochs" in err[0] and ">= 1" in err[0]


def test_dry_run_prints_the_resolved_config(capsys):
    assert main(["wgan", "--epochs", "3", "--dry-run"]) == 0
    assert "epochs: 3" in capsys.readouterr().out


def test_a_baselines_failure_is_one_line_before_ray(tmp_path, monkeypatch, capsys):
    from raysearch import runtime
    from raysearch import baselines
    from raysearch.errors import DataError

    def broken(data, seed):
        raise DataError("DATA: has no val split to score the classical fills on")

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray started before the classical fills were computed")

    monkeypatch.setattr(baselines, "baselines_for", broken)
    monkeypatch.setattr(runtime, "start_ray", no_ray)
    assert main(["l2", "--logdir", str(tmp_path / "run"), "--address", "local"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: DATA: has no val split to score the classical fills on"]
