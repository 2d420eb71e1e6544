"""The generator on the fixed validation subset, or on any images, scored the one way (`raysearch.evaluate`);
and a checkpoint's networks rebuilt for evaluation."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from models.geometry import mask_context
from raysearch.checkpoint import check_state
from raysearch.config import build_config
from raysearch.errors import CheckpointError, ConfigError
from raysearch.evaluate import score_centers
from raysearch.loop.phases import autocast, generate
from raysearch.loop.trial import Runtime, Trial


@torch.no_grad()
def fill_centers(trial: Trial, images: Tensor, tokens: Tensor, noise: Tensor | None) -> Tensor:
    """The centers (float, [-1, 1]) the evaluated generator (its weight average where the run keeps one)
    fills into `images` (float, [-1, 1]), in the trial's batches."""
    trial.networks.generator.eval()
    generator = trial.networks.evaluated_generator()
    centers = []
    size = trial.cfg.train.batch_size
    for start in range(0, len(images), size):
        batch_noise = noise[start : start + size] if noise is not None else None
        with autocast(trial.cfg, trial.device):
            center, _ = generate(trial.cfg, generator, mask_context(images[start : start + size]),
                                 tokens[start : start + size], batch_noise)
        centers.append(center.float())
    return torch.cat(centers)


def evaluate(trial: Trial, images: Tensor, tokens: Tensor, noise: Tensor | None) -> tuple[dict[str, float], Tensor]:
    """Validation's metrics and centers on any images (e.g. training images, to see what a run memorised)."""
    generated = fill_centers(trial, images, tokens, noise)
    return score_centers(generated, images, seed=trial.cfg.train.seed), generated


def validate(trial: Trial) -> tuple[dict[str, float], Tensor]:
    """The metrics on the fixed validation subset, and the generated centers (in [-1, 1])."""
    data = trial.data
    return evaluate(trial, data.val_images, data.val_tokens, data.val_noise)


def checkpoint_trial(state: dict[str, Any], where: str = "checkpoint", device: torch.device | None = None) -> Trial:
    """A Trial on `device` (the CPU by default) holding a checkpoint's networks (and the generator's weight
    average, which is what validation runs when the config keeps one), not compiled, ready to `validate`.

    `where` names the checkpoint in errors: a checkpoint that reads but does not fit its own config
    (missing entries, tensor shapes) is one CheckpointError line.
    """
    check_state(state, where)
    try:
        cfg = build_config(state["config"], source=f"{where}: its config")
    except ConfigError as err:
        raise CheckpointError(str(err)) from None
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, compile=False))
    trial = Trial(cfg, Runtime(device=device or torch.device("cpu")))
    trial.load_weights(state, where)
    return trial
