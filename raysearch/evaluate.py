"""The one way generated centers are scored: against the true centers of the same images, with every metric.

Validation, the classical fills' baselines, rank stability, `analyze` and the
benches all call `score_centers`, so a figure means the same wherever it is read.
Images are float [N, 3, 64, 64] in [-1, 1] (`raysearch.data.to_float_images`);
the metrics take [0, 1].
"""

from __future__ import annotations

import torch
from torch import Tensor

from models.geometry import crop_center
from raysearch import metrics

# The prefix of a validation metric's reported name, e.g. val/psnr.
PREFIX = "val/"


def as_unit(images: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1], the range the metrics take."""
    return (images + 1) / 2


@torch.no_grad()
def score_centers(generated: Tensor, images: Tensor, seed: int) -> dict[str, float]:
    """{"val/<metric>": value} of `generated` centers ([-1, 1]; 32x32, or 32 + 2m with a context margin m,
    whose central 32x32 is scored) filling the holes of `images`; `seed` fixes SWD's random projections."""
    values = metrics.compute_all(as_unit(generated.float()), as_unit(crop_center(images, 0)), as_unit(images),
                                 seed=seed)
    return {f"{PREFIX}{name}": float(value) for name, value in values.items()}
