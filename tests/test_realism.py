"""The `realism` space's base beats OpenCV on real photos it never saw, on both axes (docs/quality.md).

`trained/realism` is that base trained 20 epochs on the BSDS500 train photos' crops (made by the
commands in docs/quality.md, exported with `raysearch.inpaint --export`). Here it fills the center
crops of BSDS500 val photos (../shared/photos; skipped in a lone clone), and must be more faithful than Telea's and the
Navier-Stokes fill (PSNR) and taken for real more often by the judge (its held-out AUC, the same
seeds for every fill, as raysearch.judge pairs them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.geometry import hole_of
from raysearch.baselines import filled_images
from raysearch.checkpoint import load_checkpoint
from raysearch.config import load_config
from raysearch.data import to_float_images
from raysearch.evaluate import score_centers
from raysearch.fill import trained_generator
from raysearch.inpaint import fill_photos, load_photo
from raysearch.judge import judge, paired_difference
from tests.photos import bsds_photos

MODEL = Path(__file__).resolve().parents[1] / "trained" / "realism"
PHOTO_COUNT = 64  # one center crop each: few enough to stay quick, enough for the judge's photo-disjoint folds
JUDGE_SEEDS = 4
OPENCV_FILLS = ("telea", "navier_stokes")
# The sections that make the model what it is; data (path, sizes) and the epoch count differ by design.
MODEL_SECTIONS = ("generator", "critic", "objective", "optim")


@pytest.fixture(scope="module")
def shipped():
    state = load_checkpoint(MODEL)
    return state, *trained_generator(state, str(MODEL))


def test_the_shipped_model_is_the_realism_space_s_base(shipped) -> None:
    state, cfg, _ = shipped
    base = load_config("realism")
    for section in MODEL_SECTIONS:
        assert getattr(cfg, section) == getattr(base, section), (
            f"{section}: trained/realism was trained with another config than search_spaces/realism.yaml's base; "
            "retrain it (docs/quality.md)")
    assert state["epoch"] == base.train.epochs == 20


@pytest.mark.slow
def test_the_realism_base_beats_telea_and_navier_stokes_on_psnr_and_the_judge(shipped) -> None:
    _, cfg, generator = shipped
    paths = bsds_photos("val", PHOTO_COUNT)
    photos = np.stack([load_photo(path) for path in paths])
    real = to_float_images(torch.from_numpy(photos))
    each_photo = np.arange(PHOTO_COUNT)
    fills = {"model": fill_photos(generator, cfg, photos, torch.device("cpu"), 64, log=lambda line: None),
             **{name: filled_images(photos, name) for name in OPENCV_FILLS}}
    psnr = {name: score_centers(hole_of(filled), real, seed=0)["val/psnr"] for name, filled in fills.items()}
    verdicts = {name: judge(real, filled, each_photo, seeds=JUDGE_SEEDS) for name, filled in fills.items()}
    for opencv in OPENCV_FILLS:
        assert psnr["model"] > psnr[opencv], psnr
        taken_for_real_more = paired_difference(verdicts["model"], verdicts[opencv], "auc")
        assert taken_for_real_more.mean < 0, (opencv, taken_for_real_more, verdicts)
