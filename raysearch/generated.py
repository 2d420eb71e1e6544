"""A checkpoint's generator filling the hole of a dataset's validation images: what the judge scores.

The loop's own validation path (`raysearch.loop.validate`): the same output activation, batches, generator
noise and weight average as the trial measured every epoch; only the dataset, and how many of its
validation images, may differ from the run's (e.g. a dataset that has moved since, or all 400 val
crops instead of the run's first 200).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.geometry import HOLE_SIZE, IMAGE_SIZE, paste_center
from raysearch.checkpoint import load_checkpoint
from raysearch.config import ExperimentConfig
from raysearch.errors import DataError
from raysearch.loop import checkpoint_trial, open_dataset, set_realism_alpha, validate


@dataclass(frozen=True)
class CheckpointFills:
    """A checkpoint's fills of a dataset's validation images, with what the judge needs beside them."""

    images: np.ndarray  # uint8 [N, 64, 64, 3]: the validation images (for the classical fills)
    filled: torch.Tensor  # float32 [N, 3, 64, 64] in [-1, 1]: the images with the generated 32x32 center
    photos: np.ndarray  # int64 [N]: the photo each image was cut from
    config: ExperimentConfig  # the run's config, with the dataset and subset used here
    epoch: int  # epochs the checkpoint had trained


def checkpoint_fills(directory: str | Path, *, data: str | None = None, val_images: int = 0,
                     alpha: float | None = None) -> CheckpointFills:
    """The generator of the checkpoint in `directory` (holding state.pt) on the first `val_images` validation
    images (0 = all) of `data` (a dataset directory or URI; None = the one the run trained on); a
    `realism_residual` generator at trade-off `alpha` (None: its own, 1).

    Bad input is one CheckpointError or DataError line naming the path.
    """
    where = str(Path(directory) / "state.pt")
    state = load_checkpoint(Path(directory))
    config = dict(state.get("config") or {})
    data_section = dict(config.get("data") or {})
    data_section.update(val_images=val_images, **({"path": data} if data is not None else {}))
    config["data"] = data_section
    config["train"] = {**dict(config.get("train") or {}), "device": "cpu"}  # scored here, on the CPU
    trial = checkpoint_trial({**state, "config": config}, where)  # checked before any data is read
    if alpha is not None:
        set_realism_alpha(trial, alpha, where)
    prepared, _ = open_dataset(trial.cfg.data)
    if prepared.image_size != IMAGE_SIZE:
        raise DataError(f"{prepared.path}: holds {prepared.image_size}x{prepared.image_size} images; "
                        f"the generators fill {IMAGE_SIZE}x{IMAGE_SIZE} ones")
    _, centers = validate(trial)
    margin = (centers.shape[-1] - HOLE_SIZE) // 2  # a context margin's overlap is not scored, as in metrics
    center = centers[..., margin:margin + HOLE_SIZE, margin:margin + HOLE_SIZE]
    images = trial.data.val_images
    count = len(images)
    return CheckpointFills(
        images=np.array(prepared.images("val")[:count]),
        filled=paste_center(images, center.to(images.dtype)),
        photos=np.asarray(prepared.image_ids("val")[:count], dtype=np.int64),
        config=trial.cfg,
        epoch=int(state["epoch"]),
    )
