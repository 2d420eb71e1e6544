"""Non-learned fills of the 32x32 hole: what a learned generator must beat, and what it may start from.

- `zeros`: the hole left at 0 (mid grey in [-1, 1]); what `mask_context` gives and the seeds used.
- `mean`: the mean colour of the one-pixel ring around the hole.
- `harmonic`: the solution of Laplace's equation inside the hole with the ring as its boundary
  (the smoothest surface that continues the border; on real photos ~2.5 dB above the mean fill).

The harmonic fill is linear in the ring and the hole never moves, so it is solved once, exactly:
a 1024x128 matrix maps the ring's 128 pixels to the hole's 1024 (per channel), and filling a
batch is one matrix product on whichever device the images are. Both fills are affine-equivariant,
so they work the same on images in [0, 1] or [-1, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import torch

from models.geometry import HOLE_SIZE, HOLE_START, hole_slice

FILL_NAMES = ("zeros", "mean", "harmonic")


def border_ring(images: torch.Tensor) -> torch.Tensor:
    """[..., C, 64, 64] -> [..., C, 128]: the pixels just above, below, left and right of the hole."""
    inside = hole_slice(0)
    before, after = HOLE_START - 1, HOLE_START + HOLE_SIZE
    return torch.cat([
        images[..., before, inside],
        images[..., after, inside],
        images[..., inside, before],
        images[..., inside, after],
    ], dim=-1)


@lru_cache(maxsize=8)
def _harmonic_operator(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The [1024, 128] matrix taking the ring to the harmonic interior (5-point Laplacian)."""
    n = HOLE_SIZE
    index = torch.arange(n * n).reshape(n, n)
    laplacian = 4.0 * torch.eye(n * n, dtype=torch.float64)
    for shift, dim in ((1, 0), (-1, 0), (1, 1), (-1, 1)):
        # Each interior neighbour couples two unknowns; the rolled-around row/column is the ring instead.
        neighbour = torch.roll(index, shifts=shift, dims=dim)
        valid = torch.ones(n, n, dtype=torch.bool)
        edge = 0 if shift == 1 else n - 1
        valid.select(dim, edge).fill_(False)
        laplacian[index[valid], neighbour[valid]] = -1.0
    # Ring order as in border_ring: top row, bottom row, left column, right column.
    coupling = torch.zeros(n * n, 4 * n, dtype=torch.float64)
    k = torch.arange(n)
    coupling[index[0, k], k] = 1.0
    coupling[index[n - 1, k], n + k] = 1.0
    coupling[index[k, 0], 2 * n + k] = 1.0
    coupling[index[k, n - 1], 3 * n + k] = 1.0
    return torch.linalg.solve(laplacian, coupling).to(device=device, dtype=dtype)


def harmonic_fill(images: torch.Tensor) -> torch.Tensor:
    """The images with the hole replaced by the harmonic interpolation of its ring."""
    ring = border_ring(images)
    operator = _harmonic_operator(images.device, images.dtype)
    interior = (ring @ operator.T).unflatten(-1, (HOLE_SIZE, HOLE_SIZE))
    return _with_center(images, interior)


def mean_fill(images: torch.Tensor) -> torch.Tensor:
    """The images with the hole replaced by the mean colour of its ring."""
    colour = border_ring(images).mean(dim=-1)[..., None, None]
    return _with_center(images, colour.expand(*colour.shape[:-2], HOLE_SIZE, HOLE_SIZE))


def zeros_fill(images: torch.Tensor) -> torch.Tensor:
    """The images with the hole set to 0."""
    return _with_center(images, torch.zeros_like(images[..., hole_slice(0), hole_slice(0)]))


def _with_center(images: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    filled = images.clone()
    filled[..., hole_slice(0), hole_slice(0)] = center
    return filled


FILLS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "zeros": zeros_fill,
    "mean": mean_fill,
    "harmonic": harmonic_fill,
}


def fill_hole(images: torch.Tensor, kind: str) -> torch.Tensor:
    """The images with the hole filled by `kind` (one of FILL_NAMES)."""
    if kind not in FILLS:
        raise ValueError(f"fill: unknown {kind!r}; allowed: {', '.join(FILL_NAMES)}")
    return FILLS[kind](images)
