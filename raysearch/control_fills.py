"""Control fills of the 32x32 hole whose realism a person can judge at a glance: what a realism metric is checked on.

A metric is believed only once it orders these as a person would (docs/quality.md):

- `real`: the true centers themselves; any realism metric must call them real (classifier AUC ~0.5, SWD ~0);
- `mean`: the border ring's mean colour, a flat square (obviously fake);
- `harmonic`: Laplace's equation from the ring, a smooth blur (the L2 optimum's look);
- `harmonic_noise`: the harmonic fill plus Gaussian noise whose energy in each Laplacian-pyramid band
  matches the image's own context (see `border_matched_noise`): the right amount of detail at each
  scale, but no structure; a metric that counts only band energy calls it real;
- `pasted`: the 16-pixel strips of context above and below the hole (or left and right of it,
  alternating per image) copied in as they are: real texture of the same photo, with seams where it
  meets the border and in the middle (the 16-pixel frame cannot hold a whole 32x32 square away from
  the hole, so the square is made of the two strips that flank it);
- `telea`, `navier_stokes`: OpenCV's inpainting (raysearch.baselines), Telea's X-shaped smear
  of fast marching and the Navier-Stokes fill.

Every control takes uint8 [N, 64, 64, 3] images and returns float32 [N, 3, 64, 64] in [-1, 1] with
only the hole changed, deterministic for a seed.
"""

from __future__ import annotations

import numpy as np
import torch

from models.geometry import HOLE_SIZE, HOLE_START, IMAGE_SIZE, hole_slice
from raysearch.baselines import filled_images
from raysearch.data.dataset import to_float_images
from raysearch.metrics import collapse_laplacian_pyramid, laplacian_pyramid

CONTROL_NAMES = ("real", "mean", "harmonic", "harmonic_noise", "pasted", "telea", "navier_stokes")

# Bands whose energy the noise matches: the Laplacian levels at 64, 32 and 16 pixels (detail of 1-2,
# 2-4 and 4-8 pixels). Coarser structure is the harmonic fill's; the context frame is only 16 pixels
# wide, so coarser bands could not be measured away from the hole anyway.
NOISE_BANDS = 3
# Coefficients next to the hole (at each level's own resolution) or to the image's edge are
# left out of the measurement: the pyramid's 5-tap filters mix the hole's smooth fill or the
# reflected border into them.
MEASURE_MARGIN = 1
MATCH_ROUNDS = 3  # rescaling rounds in border_matched_noise (after 3 the bands' RMS is within ~2% of its target)


def control_fill(images: np.ndarray, name: str, seed: int = 0) -> torch.Tensor:
    """float32 [N, 3, 64, 64] in [-1, 1]: uint8 [N, 64, 64, 3] `images` with the hole filled by control `name`."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise ValueError(f"control_fill: expected uint8 [N, {IMAGE_SIZE}, {IMAGE_SIZE}, 3], "
                         f"got {images.dtype} {list(images.shape)}")
    if name == "real":
        return to_float_images(torch.from_numpy(np.array(images)))
    if name in ("mean", "harmonic", "telea", "navier_stokes"):
        return filled_images(images, name)
    if name == "harmonic_noise":
        harmonic = filled_images(images, "harmonic")
        return _with_center(harmonic, harmonic + border_matched_noise(harmonic, seed)).clamp(-1.0, 1.0)
    if name == "pasted":
        return pasted_context(to_float_images(torch.from_numpy(np.array(images))))
    raise ValueError(f"control: unknown {name!r}; allowed: {', '.join(CONTROL_NAMES)}")


def _with_center(images: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """`images` with the hole taken from `source` (same shape)."""
    out = images.clone()
    hole = hole_slice(0)
    out[..., hole, hole] = source[..., hole, hole]
    return out


def _context_mask(size: int) -> torch.Tensor:
    """bool [size, size]: the Laplacian coefficients of a level of this side measured for the context's energy."""
    scale = IMAGE_SIZE // size
    lo, hi = HOLE_START // scale - MEASURE_MARGIN, (HOLE_START + HOLE_SIZE) // scale + MEASURE_MARGIN
    keep = torch.zeros(size, size, dtype=torch.bool)
    keep[MEASURE_MARGIN:size - MEASURE_MARGIN, MEASURE_MARGIN:size - MEASURE_MARGIN] = True
    keep[max(lo, 0):hi, max(lo, 0):hi] = False
    return keep


def band_energies(images: torch.Tensor) -> list[torch.Tensor]:
    """Per band (finest first), [N, C] RMS of the Laplacian coefficients of the context, away from the hole."""
    pyramid = laplacian_pyramid(images, NOISE_BANDS + 1)
    energies = []
    for level in pyramid[:NOISE_BANDS]:
        keep = _context_mask(level.shape[-1])
        energies.append(level[..., keep].square().mean(dim=-1).sqrt())
    return energies


def border_matched_noise(images: torch.Tensor, seed: int) -> torch.Tensor:
    """[N, C, 64, 64] Gaussian noise with, in each of the finest NOISE_BANDS Laplacian bands, the RMS the
    image's context has there (per image and channel, `band_energies`).

    One white-noise field per image is split into its Laplacian bands, each band scaled to the
    context's RMS, and the bands summed back (the low-pass level dropped: the fill keeps its own
    coarse shape). The pyramid is overcomplete, so the sum's bands are not exactly the scaled ones:
    a few rounds of measuring the sum and rescaling each band bring every band within a few % of its
    target. The channels share the field, so the noise varies in brightness, as photo texture mostly
    does, rather than in hue.
    """
    generator = torch.Generator().manual_seed(seed)
    white = torch.randn(images.shape[0], 1, IMAGE_SIZE, IMAGE_SIZE, generator=generator, dtype=images.dtype)
    white_bands = laplacian_pyramid(white, NOISE_BANDS + 1)
    bands = [band.expand(-1, images.shape[1], -1, -1) for band in white_bands[:NOISE_BANDS]]
    targets = [target[..., None, None] for target in band_energies(images)]
    low = torch.zeros_like(white_bands[-1]).expand(-1, images.shape[1], -1, -1)
    for _ in range(MATCH_ROUNDS):
        measured = laplacian_pyramid(collapse_laplacian_pyramid([*bands, low]), NOISE_BANDS + 1)
        bands = [band * target / _rms(level) for band, target, level in zip(bands, targets, measured)]
    return collapse_laplacian_pyramid([*bands, low])


def _rms(level: torch.Tensor) -> torch.Tensor:
    """[N, C, 1, 1] root mean square over each image's and channel's positions."""
    return level.square().mean(dim=(2, 3), keepdim=True).sqrt().clamp_min(1e-12)


def pasted_context(images: torch.Tensor) -> torch.Tensor:
    """float [N, C, 64, 64]: the hole made of the 16-pixel strips of context flanking it, copied in unchanged.

    Even images take the strips above and below the hole (its top half is the strip above, its bottom
    half the strip below), odd images the strips left and right: both orientations occur, so a judge
    cannot learn one seam direction.
    """
    out = images.clone()
    hole, half = hole_slice(0), HOLE_SIZE // 2
    top, middle, bottom = HOLE_START, HOLE_START + half, HOLE_START + HOLE_SIZE
    vertical, horizontal = out[0::2], out[1::2]  # views: writing them writes `out`
    vertical[..., top:middle, hole] = images[0::2, :, top - half:top, hole]
    vertical[..., middle:bottom, hole] = images[0::2, :, bottom:bottom + half, hole]
    horizontal[..., hole, top:middle] = images[1::2, :, hole, top - half:top]
    horizontal[..., hole, middle:bottom] = images[1::2, :, hole, bottom:bottom + half]
    return out
