"""Validation every epoch: the trial's generator (its weight average where the run keeps one) on the fixed
validation subset, filled the one way (`raysearch.fill`) and scored the one way (`raysearch.evaluate`)."""

from __future__ import annotations

from torch import Tensor

from raysearch.evaluate import score_centers
from raysearch.fill import generator_outputs
from raysearch.loop.trial import Trial


def validate(trial: Trial) -> tuple[dict[str, float], Tensor]:
    """The metrics on the fixed validation subset, and the generator's outputs there (float [-1, 1], 32 + 2m)."""
    data = trial.data
    outputs = generator_outputs(trial.networks.evaluated_generator(), trial.cfg, data.val_images, data.val_tokens,
                                data.val_noise)
    return score_centers(outputs, data.val_images, seed=trial.cfg.train.seed), outputs
