"""A checkpoint's generator filling the hole of a dataset's validation images: what the judge scores.

The loop's own validation path (`Trial.validate`): the same output activation, batches, generator
noise and weight average as the trial measured every epoch; only the dataset, and how many of its
validation images, may differ from the run's (e.g. a dataset that has moved since, or all 400 val
crops instead of the run's first 200).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.geometry import HOLE_SIZE, IMAGE_SIZE, paste_center
from raysearch.checkpoint import check_state, load_checkpoint, load_part
from raysearch.config import ExperimentConfig, build_config
from raysearch.errors import CheckpointError, ConfigError, DataError
from raysearch.train import Runtime, Trial, open_dataset


@dataclass(frozen=True)
class CheckpointFills:
    """A checkpoint's fills of a dataset's validation images, with what the judge needs beside them."""

    images: np.ndarray  # uint8 [N, 64, 64, 3]: the validation images (for the classical fills)
    filled: torch.Tensor  # float32 [N, 3, 64, 64] in [-1, 1]: the images with the generated 32x32 center
    photos: np.ndarray  # int64 [N]: the photo each image was cut from
    config: ExperimentConfig  # the run's config, with the dataset and subset used here
    epoch: int  # epochs the checkpoint had trained


def checkpoint_fills(directory: str | Path, *, data: str | None = None, val_images: int = 0) -> CheckpointFills:
    """The generator of the checkpoint in `directory` (holding state.pt) on the first `val_images` validation
    images (0 = all) of `data` (a dataset directory or URI; None = the one the run trained on).

    Bad input is one CheckpointError or DataError line naming the path.
    """
    where = str(directory)
    state = load_checkpoint(Path(directory))
    check_state(state, where)
    try:
        cfg = build_config(state["config"], source=f"{where}: its config")
        cfg = dataclasses.replace(
            cfg,
            data=dataclasses.replace(cfg.data, path=cfg.data.path if data is None else data, val_images=val_images),
            # Scored here on the CPU, uncompiled: the weights do not depend on either.
            train=dataclasses.replace(cfg.train, compile=False, device="cpu"),
        )
    except (ConfigError, ValueError) as err:  # the dataclasses' own checks raise ValueError
        raise CheckpointError(f"{where}: {err}") from None
    prepared, _ = open_dataset(cfg.data)
    if prepared.image_size != IMAGE_SIZE:
        raise DataError(f"{prepared.path}: holds {prepared.image_size}x{prepared.image_size} images; "
                        f"the generators fill {IMAGE_SIZE}x{IMAGE_SIZE} ones")
    trial = Trial(cfg, Runtime())  # device cpu; models neither wrapped nor compiled
    load_part(trial.generator, state["generator"], "generator", where)
    if trial.generator_average is not None:
        load_part(trial.generator_average, state["generator_average"], "generator average", where)
    _, centers = trial.validate()
    margin = (centers.shape[-1] - HOLE_SIZE) // 2  # a context margin's overlap is not scored, as in metrics
    center = centers[..., margin:margin + HOLE_SIZE, margin:margin + HOLE_SIZE]
    count = len(trial.val_images)
    return CheckpointFills(
        images=np.array(prepared.images("val")[:count]),
        filled=paste_center(trial.val_images, center.to(trial.val_images.dtype)),
        photos=np.asarray(prepared.image_ids("val")[:count], dtype=np.int64),
        config=cfg,
        epoch=int(state["epoch"]),
    )
