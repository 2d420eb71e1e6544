"""The one way generated centers are scored: against the true centers of the same images, with every metric.

Validation, the classical fills' baselines, rank stability, `analyze` and the
benches all call `score_centers`, so a figure means the same wherever it is read.
Images are float [N, 3, 64, 64] in [-1, 1] (`raysearch.data.to_float_images`);
the metrics take [0, 1].
"""

from __future__ import annotations

import torch
from torch import Tensor

from models.geometry import hole_of
from raysearch import metrics
from raysearch.data.dataset import as_unit

# The prefix of a validation metric's reported name, e.g. val/psnr.
PREFIX = "val/"


def reported_metrics() -> dict[str, metrics.Metric]:
    """Every registered metric under the name a trial reports it ("val/psnr"), with its facts (direction, the
    value a diverged trial reports): what spaces, the loop and the classical fills read, never copy."""
    return {f"{PREFIX}{name}": metrics.metric_info(name) for name in metrics.list_metrics()}


@torch.no_grad()
def score_centers(generated: Tensor, images: Tensor, seed: int) -> dict[str, float]:
    """{"val/<metric>": value} of `generated` centers ([-1, 1]; 32x32, or 32 + 2m with a context margin m,
    whose central 32x32 is scored) filling the holes of `images`; `seed` fixes SWD's random projections."""
    values = metrics.compute_all(as_unit(generated.float()), as_unit(hole_of(images)), as_unit(images), seed=seed)
    return {f"{PREFIX}{name}": float(value) for name, value in values.items()}
