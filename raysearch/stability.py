"""Can the search's metric be trusted to rank trials? Score each trial on two disjoint halves of its validation set.

If the ranking of a search's trials by a metric on one half of the validation
subset agrees with the ranking on the other half (Spearman rho near 1), the
metric ranks generators, not the noise of which images were drawn. The project
asks for rho >= 0.9; `data.val_images` and the SWD settings in metrics.py are
chosen by this measurement (docs/benchmarks.md).

- `half_scores(state)`: a checkpoint's generator filling its validation subset
  as its own validation did (`raysearch.fill.validation_fills`: same subset,
  noise, batches), scored with every metric (`raysearch.evaluate`) on the first
  and on the second half of the subset.
- `experiment_rank_stability(location)`: that for the latest kept checkpoint
  of every trial of a finished experiment that trained without diverging, and
  Spearman's rho between the halves for a metric. Used by bench/quality.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from raysearch.checkpoint import load_checkpoint
from raysearch.evaluate import score_centers
from raysearch.experiment import Experiment, open_experiment
from raysearch.fill import validation_fills


@dataclass(frozen=True)
class HalfScores:
    first: dict[str, float]  # val/<metric> on the first half of the validation subset
    second: dict[str, float]  # ... on the second half
    images: int  # images in each half


def half_scores(state: dict[str, Any]) -> HalfScores:
    """Every validation metric of a checkpoint's generator on each half of its validation subset."""
    fills = validation_fills(state)
    images = fills.real
    half = len(images) // 2
    if half < 1:
        raise ValueError(f"the validation subset has {len(images)} image(s): cannot split it in two")
    first, second = (score_centers(fills.outputs[part], images[part], seed=fills.config.train.seed)
                     for part in (slice(0, half), slice(half, 2 * half)))
    return HalfScores(first, second, half)


def spearman(first: list[float], second: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); nan for fewer than 2 values or a constant side."""
    if len(first) != len(second):
        raise ValueError(f"spearman: {len(first)} values against {len(second)}")
    if len(first) < 2:
        return float("nan")
    a, b = _ranks(first), _ranks(second)
    a, b = a - a.mean(), b - b.mean()
    denominator = (a.norm() * b.norm()).item()
    return float((a @ b).item() / denominator) if denominator > 0 else float("nan")


def _ranks(values: list[float]) -> torch.Tensor:
    data = torch.tensor(values, dtype=torch.float64)
    order = data.argsort()
    ranks = torch.empty_like(data)
    ranks[order] = torch.arange(len(values), dtype=torch.float64)
    for value in data.unique():  # ties share their average rank
        tied = data == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def experiment_rank_stability(location: str | Experiment, metric: str | None = None,
                               also: tuple[str, ...] = ("val/psnr",)) -> dict[str, Any]:
    """Half scores of every trained, non-diverged trial of an experiment, and Spearman's rho per metric.

    `metric` defaults to the experiment's own; `also` names more metrics to
    rank by (each generator is run once for all). `location` is the experiment's
    directory or URI, or the Experiment already opened. The latest kept checkpoint of
    each trial stands for it (what the trial ended with). Returns
    {"metric", "trials": {name: {"first", "second", "epoch"}}, "images_per_half",
    "rho" (of `metric`), "rhos": {metric: rho for `metric` and `also`}}.
    """
    experiment = open_experiment(location) if isinstance(location, str) else location
    metric = metric or experiment.metric
    ranked_by = list(dict.fromkeys((metric, *also)))
    halves: dict[str, tuple[HalfScores, int]] = {}
    for trial in experiment.trials:
        if trial.status == "diverged" or not trial.checkpoints:
            continue
        epoch = trial.checkpoints[-1]
        with experiment.storage.local_dir(trial.checkpoint_dir(epoch)) as local:
            halves[trial.name] = (half_scores(load_checkpoint(local)), epoch)
    rhos = {name: spearman([h.first[name] for h, _ in halves.values()], [h.second[name] for h, _ in halves.values()])
            for name in ranked_by}
    trials = {name: {"first": h.first[metric], "second": h.second[metric], "epoch": epoch}
              for name, (h, epoch) in halves.items()}
    images = next(iter(halves.values()))[0].images if halves else 0
    return {"metric": metric, "trials": trials, "images_per_half": images, "rho": rhos[metric], "rhos": rhos}
