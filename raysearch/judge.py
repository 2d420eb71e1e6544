"""The realism judge: a classifier two-sample test between real and filled windows.

A fresh small CNN learns, for a fixed and modest budget, to tell windows of real photos (the
32x32 hole and an 8-pixel ring of its context, 48x48) from windows whose hole a method filled;
its held-out AUC and log-loss say how easily the fill is told apart: AUC 0.5 and log-loss ln 2
= 0.693 when it cannot be, AUC 1 and log-loss 0 when it always is. No pretrained weights.

Why it is built this way (docs/quality.md has the measurements):

- Disjoint photos. For each seed the photos (not crops: a prepared photo has several
  overlapping crops) are dealt into four groups: real windows to train on, filled windows to
  train on, real windows to test on, filled windows to test on; a second classifier swaps the
  train and test halves, and the seed's figure is the mean of the two. A photo is never on both
  the real and the filled side, and never both trained and tested on: otherwise the classifier
  could tell photos apart, not fills (the real centers against themselves would not score 0.5).
- It grades instead of saturating. At full strength (three conv stages with batch norm, 30
  epochs) every fill scored AUC 1.00; the budget here (BUDGET: 120 Adam steps of 32 windows,
  4x4 stride-2 convolutions of 16, 32 and 64 channels, no normalisation layer) was picked on the
  controls (raysearch/control_fills.py, bench/judge_controls.py) so that the real centers score ~0.5,
  the mean fill ~1.0 and the classical fills spread in between, with a per-seed spread well
  below the gaps between Telea, the harmonic fill and a pasted context patch.
- Low variance for its size. Each window is standardised by its own ring (subtract the ring's
  mean colour, divide by its contrast) so that the classifier spends its few steps on the hole
  rather than on brightness; it outputs a 6x6 map of logits, each trained on the window's label
  (a patch critic: many samples per window), and scores a window by the mean logit over the map
  and the 8 flips and quarter turns of the window.
- Paired seeds. Seed s deals the same photos and initialises the same network for every method,
  so two methods judged with the same seeds can be compared seed by seed (`paired_difference`),
  whose spread is smaller than either method's.

Cost: 2.1-2.5 s of one CPU core per seed and method at 400 windows (10 seeds: 21-25 s, measured on this
project's 2-core machine); too slow for every epoch, which keeps its cheap metrics (`val/swd_band` agrees
with the judge best of them, docs/quality.md).

Calling it (analyze, bench/quality.py, the command below):

    from raysearch.judge import judge, paired_difference
    result = judge(real, filled, photos, seeds=10)  # float [N, 3, 64, 64] in [-1, 1] twice, int [N]
    result.auc.mean, result.auc.std, result.auc.low, result.auc.high, result.to_json()
    paired_difference(result, other_result, "auc")  # same seeds: the per-seed differences' spread

`real` are the images and `filled` the same images with the hole filled by the method (only the
hole is looked at, with its ring); `photos` says which photo each image was cut from
(`PreparedDataset.image_ids(split)`). For trials and the classical fills together (analyze's top trials,
bench/quality.py's models), with the same seeds so that every pair compares seed by seed:

    from raysearch.fill import checkpoint_fills
    fills = checkpoint_fills(checkpoint_dir, data=None, val_images=0)  # the run's dataset, all val images
    results = judge_beside_fills(fills.images, fills.photos, {"trial": fills.filled}, seeds=10)
    print(format_table(results))  # rows: real, mean, harmonic, telea, navier_stokes, trial

(several trials: one `checkpoint_fills` each, all in the one `methods` dict; they must use the same
validation images). On a checkpoint, from the shell:

    python -m raysearch.judge CHECKPOINT_DIR [--data DIR] [--seeds N]

judges the checkpoint's fills of the validation images beside the real centers and the classical
fills, with the same seeds: one table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.geometry import HOLE_SIZE, IMAGE_SIZE, hole_slice
from raysearch import cli
from raysearch.baselines import BASELINE_NAMES, filled_images
from raysearch.data.dataset import to_float_images
from raysearch.errors import DataError, RaysearchError
from raysearch.fill import checkpoint_fills

DEFAULT_SEEDS = 10
MIN_PHOTOS = 4  # one per group: real/filled x train/test
# Floor of the ring's contrast in the window standardisation (in [-1, 1] units): a flat ring
# (sky) is not blown up into noise.
CONTRAST_FLOOR = 0.05
DIHEDRAL = 8  # flips and quarter turns of a square window: the hole is centred, so all are windows too

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (beyond: the normal's 1.96).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


@dataclass(frozen=True)
class Budget:
    """What one classifier may spend: fixed, so that figures compare across methods and runs."""

    ring: int = 8  # context pixels around the hole in a window (48x48 at 8)
    steps: int = 120  # Adam steps
    batch: int = 32  # windows per step
    width: int = 16  # channels of the first of three conv stages (then 2x, 4x)
    lr: float = 2e-3

    def __post_init__(self) -> None:
        side = HOLE_SIZE + 2 * self.ring
        if not 0 <= self.ring <= (IMAGE_SIZE - HOLE_SIZE) // 2 or side % 8:
            raise ValueError(f"judge budget: ring must be in 0..{(IMAGE_SIZE - HOLE_SIZE) // 2} with a window side "
                             f"divisible by 8, got {self.ring}")
        if self.steps < 1 or self.batch < 1 or self.width < 1 or not self.lr > 0:
            raise ValueError(f"judge budget: steps, batch, width and lr must be positive, got {self}")


BUDGET = Budget()


@dataclass(frozen=True)
class Spread:
    """A figure over seeds: mean, per-seed standard deviation, the 95% t-interval of the mean, each seed's value."""

    mean: float
    std: float
    low: float
    high: float
    values: tuple[float, ...]

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        array = np.asarray(values, dtype=np.float64)
        mean = float(array.mean())
        std = float(array.std(ddof=1)) if len(array) > 1 else float("nan")
        half = _T975[min(len(array) - 1, len(_T975)) - 1] * std / math.sqrt(len(array)) if len(array) > 1 else math.nan
        return cls(mean, std, mean - half, mean + half, tuple(float(v) for v in array))

    def describe(self, digits: int = 3) -> str:
        return f"{self.mean:.{digits}f} ±{self.std:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


@dataclass(frozen=True)
class JudgeResult:
    """The judge's figures over seeds: AUC (0.5 = indistinguishable from real, 1 = always told apart) and
    balanced log-loss (ln 2 = 0.693 indistinguishable, 0 = told apart with certainty)."""

    auc: Spread
    log_loss: Spread
    seeds: int
    photos: int  # distinct photos the windows came from
    windows: int  # images (windows) per side before the split
    budget: Budget
    seconds: float  # wall-clock
    cpu_seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"auc": asdict(self.auc), "log_loss": asdict(self.log_loss), "seeds": self.seeds,
                "photos": self.photos, "windows": self.windows, "budget": asdict(self.budget),
                "seconds": round(self.seconds, 2), "cpu_seconds": round(self.cpu_seconds, 2)}


# ----------------------------------------------------------------------------- windows


def windows(images: torch.Tensor, ring: int = BUDGET.ring) -> torch.Tensor:
    """[N, C, 32 + 2 ring, 32 + 2 ring]: the hole and `ring` pixels of context around it, of 64x64 images."""
    if images.dim() != 4 or images.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"judge: expected [N, C, {IMAGE_SIZE}, {IMAGE_SIZE}] images, got {list(images.shape)}")
    region = hole_slice(ring)
    return images[..., region, region]


def standardise_by_ring(window: torch.Tensor, ring: int) -> torch.Tensor:
    """Windows minus their ring's mean colour, over the ring's contrast (floored): the same map for a real
    window and a filled one of the same image, since both have the same ring."""
    side = window.shape[-1]
    outside = torch.ones(side, side, dtype=torch.bool)
    outside[ring:side - ring, ring:side - ring] = False
    ring_pixels = window[..., outside]  # [N, C, P]
    mean = ring_pixels.mean(dim=-1)[..., None, None]
    contrast = ring_pixels.std(dim=(-2, -1))[:, None, None, None]
    return (window - mean) / (contrast + CONTRAST_FLOOR)


def dihedral(window: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th of the 8 flips and quarter turns of square windows."""
    turned = window.flip(-1) if k >= 4 else window
    return torch.rot90(turned, k % 4, dims=(-2, -1))


# ----------------------------------------------------------------------------- the classifier


def classifier(width: int) -> nn.Module:
    """Three 4x4 stride-2 conv stages (width, 2 width, 4 width), leaky ReLU, a 1x1 conv to a logit map.

    No normalisation layer: with batch norm the classifier separates every fill perfectly (docs/quality.md).
    At 48x48 the map is 6x6 and each logit sees 22x22 pixels: a patch critic.
    """
    return nn.Sequential(
        nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(2 * width, 4 * width, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(4 * width, 1, 1),
    )


def roc_auc(filled_scores: torch.Tensor, real_scores: torch.Tensor) -> float:
    """P(a filled window scores above a real one), ties counting half (the Mann-Whitney AUC)."""
    difference = filled_scores[:, None] - real_scores[None, :]
    return float((difference > 0).double().mean() + 0.5 * (difference == 0).double().mean())


def balanced_log_loss(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Binary cross-entropy averaged within each class, then over the two: ln 2 at chance whatever the counts."""
    losses = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    return float((losses[labels == 1].mean() + losses[labels == 0].mean()) / 2)


def fit_and_test(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, test_labels: torch.Tensor,
                 *, seed: int, budget: Budget) -> tuple[float, float]:
    """(AUC, balanced log-loss) on `test` of a fresh classifier trained on `train` for `budget` (labels: 1 = filled)."""
    with torch.random.fork_rng(devices=[]):  # the seed decides the initialisation; the caller's RNG is untouched
        torch.manual_seed(seed)
        net = classifier(budget.width)
    optimiser = torch.optim.Adam(net.parameters(), lr=budget.lr)
    draws = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(budget.steps):
        index = torch.randint(0, len(train), (budget.batch,), generator=draws)
        turn = int(torch.randint(0, DIHEDRAL, (1,), generator=draws))
        logits = net(dihedral(train[index], turn))
        # Every position of the map learns the window's label: a patch critic, many samples per window.
        loss = F.binary_cross_entropy_with_logits(logits, train_labels[index].view(-1, 1, 1, 1).expand_as(logits))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    net.eval()
    with torch.no_grad():
        scores = torch.stack([net(dihedral(test, k)).flatten(1).mean(dim=1) for k in range(DIHEDRAL)]).mean(dim=0)
    return roc_auc(scores[test_labels == 1], scores[test_labels == 0]), balanced_log_loss(scores, test_labels)


# ----------------------------------------------------------------------------- the test


def photo_groups(photos: torch.Tensor, seed: int) -> list[torch.Tensor]:
    """Four boolean masks over the images, [real train, filled train, real test, filled test]: the distinct
    photos dealt at random (seeded) into four near-equal groups, so every crop of a photo is in one group."""
    distinct = torch.unique(photos)
    order = distinct[torch.randperm(len(distinct), generator=torch.Generator().manual_seed(seed))]
    return [torch.isin(photos, group) for group in torch.tensor_split(order, 4)]


def judge(real: torch.Tensor, filled: torch.Tensor, photos: torch.Tensor | np.ndarray, *,
          seeds: int = DEFAULT_SEEDS, budget: Budget = BUDGET) -> JudgeResult:
    """The classifier two-sample test of `filled` (a method's fills) against `real` (the same images), over seeds.

    `real`, `filled`: float [N, 3, 64, 64] in [-1, 1], image i of both the same crop (only the hole and its
    ring are looked at); `photos`: int [N], the photo each crop was cut from. Seeds 0..seeds-1; the same seed
    deals the same photos and initialises the same networks for any method (see `paired_difference`).
    """
    photos = torch.as_tensor(np.asarray(photos)).long()
    if real.shape != filled.shape or real.dim() != 4 or len(photos) != len(real) or photos.dim() != 1:
        raise ValueError(f"judge: expected real and filled [N, 3, {IMAGE_SIZE}, {IMAGE_SIZE}] and photos [N], got "
                         f"{list(real.shape)}, {list(filled.shape)} and {list(photos.shape)}")
    distinct = len(torch.unique(photos))
    if distinct < MIN_PHOTOS:
        raise ValueError(f"judge: the images come from {distinct} photos; at least {MIN_PHOTOS} are needed "
                         "(real and filled windows, trained and tested on, all from different photos)")
    if seeds < 2:
        raise ValueError(f"judge: seeds must be >= 2 to give a spread, got {seeds}")
    start, start_cpu = time.perf_counter(), time.process_time()
    real_windows = standardise_by_ring(windows(real.float(), budget.ring), budget.ring)
    filled_windows = standardise_by_ring(windows(filled.float(), budget.ring), budget.ring)
    aucs, log_losses = [], []
    for seed in range(seeds):
        groups = photo_groups(photos, seed)
        folds = []
        for fold, (real_train, filled_train, real_test, filled_test) in enumerate(
            ((groups[0], groups[1], groups[2], groups[3]), (groups[2], groups[3], groups[0], groups[1]))
        ):
            train, train_labels = _labelled(real_windows[real_train], filled_windows[filled_train])
            test, test_labels = _labelled(real_windows[real_test], filled_windows[filled_test])
            folds.append(fit_and_test(train, train_labels, test, test_labels, seed=2 * seed + fold, budget=budget))
        aucs.append(sum(auc for auc, _ in folds) / len(folds))
        log_losses.append(sum(loss for _, loss in folds) / len(folds))
    return JudgeResult(Spread.of(aucs), Spread.of(log_losses), seeds, distinct, len(real), budget,
                       time.perf_counter() - start, time.process_time() - start_cpu)


def _labelled(real: torch.Tensor, filled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.cat([torch.zeros(len(real)), torch.ones(len(filled))])
    return torch.cat([real, filled]), labels


def paired_difference(a: JudgeResult, b: JudgeResult, figure: str = "auc") -> Spread:
    """`a` minus `b` seed by seed on "auc" or "log_loss": both judged with the same seeds on the same images,
    so the photo deal and the networks' initialisation cancel out of the difference."""
    if figure not in ("auc", "log_loss"):
        raise ValueError(f"paired_difference: figure must be 'auc' or 'log_loss', got {figure!r}")
    if a.seeds != b.seeds or a.budget != b.budget or a.windows != b.windows:
        raise ValueError("paired_difference: the two results were judged with other seeds, budgets or images")
    first, second = getattr(a, figure).values, getattr(b, figure).values
    return Spread.of([x - y for x, y in zip(first, second)])


# ----------------------------------------------------------------------------- beside the classical fills


REAL = "real"  # the row of the real centers themselves: the judge's null, ~0.5 when it works


def judge_beside_fills(images: np.ndarray, photos: np.ndarray, methods: dict[str, torch.Tensor], *,
                       seeds: int = DEFAULT_SEEDS, budget: Budget = BUDGET,
                       log=lambda line: None) -> dict[str, JudgeResult]:
    """{name: JudgeResult} for the real centers, the classical fills and each of `methods`, all with the same seeds.

    `images`: uint8 [N, 64, 64, 3], the real images; `methods`: {name: float [N, 3, 64, 64] in [-1, 1]}, each
    the same images filled by that method (e.g. a checkpoint's, `raysearch.fill.checkpoint_fills`).
    `log(line)` hears of each row as it is done (the whole takes a while).
    """
    real = to_float_images(torch.from_numpy(np.array(images)))
    candidates = {REAL: real, **{name: filled_images(images, name) for name in BASELINE_NAMES}, **methods}
    results = {}
    for name, filled in candidates.items():
        results[name] = judge(real, filled, photos, seeds=seeds, budget=budget)
        log(f"judged {name}: AUC {results[name].auc.describe()} ({results[name].cpu_seconds:.0f} s CPU)")
    return results


def format_table(results: dict[str, JudgeResult]) -> str:
    """One row per method: AUC and log-loss as mean ±std [95% interval of the mean] over seeds."""
    lines = [f"{'method':<22}{'AUC (0.5 = real)':>32}{'log-loss (0.693 = real)':>34}"]
    for name, result in results.items():
        lines.append(f"{name:<22}{result.auc.describe():>32}{result.log_loss.describe():>34}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the command


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.ArgumentParser(
        prog="python -m raysearch.judge",
        description="Judge a checkpoint's fills of the validation images beside the real centers and the "
                    "classical fills (classifier two-sample test; see raysearch/judge.py). One table, then "
                    "one JSON object as the last line.",
    )
    parser.add_argument("checkpoint", type=Path, help="a checkpoint directory (holding state.pt)")
    parser.add_argument("--data", help="the dataset (directory or URI); default: the one the run trained on")
    parser.add_argument("--seeds", type=cli.judge_seeds, default=DEFAULT_SEEDS,
                        help=f"seeds per method, >= 2 (default {DEFAULT_SEEDS}; ~2.5 s of CPU each)")
    parser.add_argument("--val-images", type=int, default=0, help="judge the first N val images (default 0 = all)")
    parser.add_argument("--alpha", type=cli.realism_alpha, help=cli.ALPHA_HELP)
    args = parser.parse_args(argv)
    if args.val_images < 0:
        parser.error(f"--val-images: must be >= 0 (0 = all), got {args.val_images}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        fills = checkpoint_fills(args.checkpoint, data=args.data, val_images=args.val_images, alpha=args.alpha)
        photos = len(np.unique(fills.photos))
        if photos < MIN_PHOTOS:
            raise DataError(f"{fills.config.data.path or 'the synthetic dataset'}: its {len(fills.photos)} validation "
                            f"images come from {photos} photos; the judge needs at least {MIN_PHOTOS} (real and filled "
                            "windows, trained and tested on, all from different photos)")
    except RaysearchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    name = f"checkpoint (epoch {fills.epoch})"
    print(f"judging {args.checkpoint} on {len(fills.photos)} val images of {photos} photos, {args.seeds} seeds",
          file=sys.stderr)
    results = judge_beside_fills(fills.images, fills.photos, {name: fills.filled}, seeds=args.seeds, budget=BUDGET,
                                 log=lambda line: print(line, file=sys.stderr))
    print(format_table(results))
    paired = {other: paired_difference(results[name], results[other]) for other in results if other != name}
    print(f"\n{name} minus each, AUC seed by seed (negative: the checkpoint's fills are harder to tell from real):")
    for other, spread in paired.items():
        print(f"  - {other:<20}{spread.describe():>32}")
    print(json.dumps({
        "checkpoint": str(args.checkpoint), "epoch": fills.epoch, "data": fills.config.data.path,
        "images": len(fills.photos), "photos": photos, "seeds": args.seeds,
        "judge": {key: result.to_json() for key, result in results.items()},
        "paired_auc": {other: asdict(spread) for other, spread in paired.items()},
    }, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
