"""How far the best *linear* fill gets: a reference for what a trained generator has learned.

The hole's pixels are predicted as the harmonic fill plus a linear function of the
context pixels within `--band` pixels of the hole (plus a constant), one operator shared
by the three colour channels and fitted in closed form (ridge least squares) on the
training split under the 8 symmetries of the square (the `dihedral` augmentation).
That is the minimum-MSE linear estimator of the hole from that band: the Wiener filter
of the training photos. It is scored on the validation subset exactly as a trial and
the classical fills are (`raysearch.baselines`: same images, metrics and seed).

A generator whose PSNR is not above this one's has learned nothing a linear filter
could not; the part of the gap to a bar that a linear filter cannot close is what
the network's nonlinearity must find.

Beside it, three oracles that peek at the truth (no fill can reach them; they say what a
bar demands): the harmonic fill shifted by the true mean of its error per image and
channel; corrected by the true 2x2 block means of its error, bilinearly upsampled; and the
true first ring of the hole with the harmonic fill inside it.

    python bench/linear_fill.py DATA [--band 8] [--ridge 0.1] [--train-images 0] [--val-images 200]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python bench/linear_fill.py`

from models.fills import harmonic_fill  # noqa: E402
from models.geometry import HOLE_SIZE, IMAGE_SIZE, hole_of, hole_slice  # noqa: E402
from raysearch.config import DataConfig, TrainConfig  # noqa: E402
from raysearch.baselines import baselines_for, validation_subset  # noqa: E402
from raysearch.data.cache import resolve_dataset  # noqa: E402
from raysearch.data.check import check_source  # noqa: E402
from raysearch.evaluate import score_centers  # noqa: E402
from raysearch.data.dataset import as_unit, to_float_images  # noqa: E402
from raysearch.data.prepared import PreparedDataset  # noqa: E402

CHUNK = 256  # training images per accumulation step (x 8 symmetries x 3 channels rows)


def band_mask(band: int) -> torch.Tensor:
    """[64, 64] bool: the context pixels within `band` of the hole (the hole itself excluded)."""
    outer = slice(hole_slice(0).start - band, hole_slice(0).stop + band)
    mask = torch.zeros(IMAGE_SIZE, IMAGE_SIZE, dtype=torch.bool)
    mask[outer, outer] = True
    mask[hole_slice(0), hole_slice(0)] = False
    return mask


def symmetries(images: torch.Tensor) -> torch.Tensor:
    """[N, C, 64, 64] -> [8N, C, 64, 64]: every image under the 8 symmetries of the square."""
    turned = (images, images.transpose(-1, -2))
    return torch.cat([t.flip(dims) if dims else t for t in turned for dims in ((), (-1,), (-2,), (-1, -2))])


def unit_images(uint8_images: np.ndarray) -> torch.Tensor:
    """uint8 [N, 64, 64, 3] -> float64 [N, 3, 64, 64] in [0, 1] (the trial's images, mapped as validation maps them)."""
    return as_unit(to_float_images(torch.from_numpy(np.array(uint8_images))).double())


def features(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[N, 3, 64, 64] -> [3N, band pixels + 1]: each channel's band, and a 1 for the constant."""
    band = images.flatten(0, 1)[:, mask]
    return torch.cat([band, torch.ones(len(band), 1, dtype=band.dtype)], dim=1)


def hole_residual(images: torch.Tensor) -> torch.Tensor:
    """[N, 3, 64, 64] -> [3N, 1024]: the hole's pixels minus their harmonic fill, per channel."""
    residual = hole_of(images - harmonic_fill(images))
    return residual.flatten(0, 1).flatten(1)


def fit(train: np.ndarray, mask: torch.Tensor, ridge: float) -> torch.Tensor:
    """The [band + 1, 1024] operator minimising the squared error on `train` under the 8 symmetries."""
    gram = target = None
    for start in range(0, len(train), CHUNK):
        images = symmetries(unit_images(train[start : start + CHUNK]))
        x, y = features(images, mask), hole_residual(images)
        gram = x.T @ x if gram is None else gram + x.T @ x
        target = x.T @ y if target is None else target + x.T @ y
    # Ridge scaled to the Gram matrix's own size, so one value suits any band and data size.
    damping = ridge * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
    return torch.linalg.solve(gram + damping, target)


def linear_fill(images: torch.Tensor, operator: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The hole of [N, 3, 64, 64] images in [0, 1] filled by the harmonic fill plus the fitted correction."""
    correction = (features(images, mask) @ operator).view(len(images), 3, HOLE_SIZE, HOLE_SIZE)
    return (hole_of(harmonic_fill(images)) + correction).clamp(0, 1)


def _harmonic_inside_ring(images: torch.Tensor, ring: int, sweeps: int = 1000) -> torch.Tensor:
    """The hole with its outer `ring` pixels true and the rest the harmonic fill of them (Jacobi sweeps,
    from the whole hole's harmonic fill, which is already close)."""
    filled = images.clone()
    inner = slice(hole_slice(0).start + ring, hole_slice(0).stop - ring)
    filled[..., inner, inner] = harmonic_fill(images)[..., inner, inner]
    up, down = slice(inner.start - 1, inner.stop - 1), slice(inner.start + 1, inner.stop + 1)
    for _ in range(sweeps):
        filled[..., inner, inner] = (filled[..., up, inner] + filled[..., down, inner]
                                     + filled[..., inner, up] + filled[..., inner, down]) / 4
    return hole_of(filled)


def oracle_fills(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Hole predictions that use the true hole: what knowing part of it is worth (see the module's docstring)."""
    harmonic = hole_of(harmonic_fill(images))
    error = hole_of(images) - harmonic
    block = HOLE_SIZE // 2
    coarse = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(error, block), scale_factor=block,
                                             mode="bilinear")
    return {
        "oracle: true mean": harmonic + error.mean(dim=(-2, -1), keepdim=True),
        "oracle: true 2x2": (harmonic + coarse).clamp(0, 1),
        "oracle: true ring": _harmonic_inside_ring(images, ring=1),
    }


def score(center: torch.Tensor, images: torch.Tensor, seed: int) -> dict[str, float]:
    """A filled hole's validation metrics ([0, 1] images here), scored the one way validation and the classical
    fills are (raysearch.evaluate, which takes [-1, 1])."""
    return score_centers(center.float() * 2 - 1, images.float() * 2 - 1, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="a prepared dataset directory with train and val splits")
    parser.add_argument("--band", type=int, default=8, help="context pixels around the hole the fill reads (1-16)")
    parser.add_argument("--ridge", type=float, default=0.1, help="ridge damping, relative to the Gram diagonal")
    parser.add_argument("--train-images", type=int, default=0, help="fit on the first N training images (0 = all)")
    parser.add_argument("--val-images", type=int, default=DataConfig.val_images, help="as data.val_images")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed, help="the metric seed, as train.seed")
    args = parser.parse_args()
    if not 1 <= args.band <= hole_slice(0).start:
        parser.error(f"--band: must be 1 to {hole_slice(0).start}, got {args.band}")
    if args.ridge <= 0 or args.train_images < 0:
        parser.error("--ridge must be > 0 and --train-images >= 0")
    check_source(args.data, captions=False, label="DATA")
    torch.set_num_threads(2)

    dataset = PreparedDataset(resolve_dataset(args.data))
    train = dataset.images("train")
    train = train if args.train_images == 0 else train[: args.train_images]
    data = DataConfig(path=args.data, val_images=args.val_images)
    mask = band_mask(args.band)
    started = time.perf_counter()
    operator = fit(train, mask, args.ridge)
    fit_s = time.perf_counter() - started

    real = unit_images(validation_subset(data))
    linear = score(linear_fill(real, operator, mask), real, args.seed)
    oracles = {name: score(center, real, args.seed) for name, center in oracle_fills(real).items()}
    classical = baselines_for(data, args.seed)
    print(f"{len(train)} training images x 8 symmetries, band {args.band} ({int(mask.sum())} pixels per channel), "
          f"fitted in {fit_s:.1f} s; {len(real)} validation images, metric seed {args.seed}")
    print(f"{'fill':<20}" + "".join(f"{name:>12}" for name in linear))
    for name, row in {**classical, "linear (fitted)": linear, **oracles}.items():
        print(f"{name:<20}" + "".join(f"{row[key]:>12.4f}" for key in linear))
    summary = {"train_images": len(train), "band": args.band, "ridge": args.ridge, "fit_s": round(fit_s, 2),
               **{f"linear_{key.split('/')[1]}": round(value, 4) for key, value in linear.items()},
               **{f"harmonic_{key.split('/')[1]}": round(value, 4) for key, value in classical["harmonic"].items()},
               "linear_over_harmonic_psnr_db": round(linear["val/psnr"] - classical["harmonic"]["val/psnr"], 4),
               **{f"oracle_{name.split()[-1]}_psnr": round(row["val/psnr"], 4) for name, row in oracles.items()}}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
