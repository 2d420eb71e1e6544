"""On real photos, the shipped `l2` base config learns a fill better than the classical ones.

A few BSDS500 photos (../shared/photos/bsds500 beside the clone) are prepared as the
README says (`prepare --images`, random square crops), the l2 space's base config
trains a short budget on the train photos, and its validation PSNR on photos it never
saw must beat the best classical fill of the same validation images.
"""

import shutil
from pathlib import Path

import pytest
import torch

from raysearch.config import load_config
from raysearch.baselines import baselines_for, best_baseline
from raysearch.data.prepare import prepare_photos
from raysearch.loop import run_trial
from tests.photos import bsds_photos, skip_without_bsds

pytestmark = skip_without_bsds  # every test here trains on the BSDS500 photos

TRAIN_PHOTOS, VAL_PHOTOS = 24, 8


@pytest.fixture(scope="module")
def few_photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bsds-few")
    for split, count in (("train", TRAIN_PHOTOS), ("val", VAL_PHOTOS)):
        (root / "photos" / split).mkdir(parents=True)
        for photo in bsds_photos(split, count):
            shutil.copy(photo, root / "photos" / split / photo.name)
    out = root / "prepared"
    prepare_photos(root / "photos", out, crops=8, val_crops=4, workers=1, log=lambda _: None)
    return out


@pytest.mark.slow
def test_l2_beats_the_best_classical_fill_on_unseen_real_photos(few_photos: Path):
    torch.set_num_threads(2)
    cfg = load_config("l2", [f"data.path={few_photos}", "data.val_images=0", "train.epochs=6",
                             "train.preview_images=0"])
    history = []
    run_trial(cfg, lambda metrics, checkpoint: history.append(metrics))
    fill, best = best_baseline(baselines_for(cfg.data, cfg.train.seed), "val/psnr", "max")
    final = history[-1]["val/psnr"]
    print(f"l2 {final:.3f} dB against {fill} {best:.3f} dB")
    assert final > best, f"l2 reached {final:.3f} dB, below the {fill} fill's {best:.3f} dB"
