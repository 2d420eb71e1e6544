"""The inpainting geometry shared by data, models, losses and metrics.

Images are 64x64 with the 32x32 center hidden. With a context margin m the
generator predicts the (32 + 2m)-pixel square around the center, overlapping
the border by m pixels (seed 001's "reinforced context").
"""

import torch

IMAGE_SIZE = 64
HOLE_SIZE = 32
HOLE_START = (IMAGE_SIZE - HOLE_SIZE) // 2


def output_size(margin: int) -> int:
    """Side of the square a generator with this context margin produces."""
    return HOLE_SIZE + 2 * margin


def hole_slice(margin: int = 0) -> slice:
    """Rows/columns of the (possibly widened) center in a 64x64 image."""
    return slice(HOLE_START - margin, HOLE_START + HOLE_SIZE + margin)


def mask_context(images: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """The model's input: the images with the 32x32 center replaced by `fill`."""
    context = images.clone()
    center = hole_slice(0)
    context[..., center, center] = fill
    return context


def crop_center(images: torch.Tensor, margin: int = 0) -> torch.Tensor:
    """The (32 + 2m)-pixel square around the center of 64x64 images."""
    region = hole_slice(margin)
    return images[..., region, region]


def hole_of(square: torch.Tensor) -> torch.Tensor:
    """The central 32x32 (the hole) of square images of side 32 + 2 * margin: a generator's output with a context
    margin, or whole 64x64 images (margin 16). The one crop of the hole: what validation scores and a fill keeps."""
    side = square.shape[-1]
    if square.dim() < 2 or square.shape[-2] != side or side < HOLE_SIZE or (side - HOLE_SIZE) % 2:
        raise ValueError(f"hole_of: expected square images of side {HOLE_SIZE} + 2 * margin (a generator's output, or "
                         f"whole {IMAGE_SIZE}x{IMAGE_SIZE} images), got {tuple(square.shape[-2:])}")
    start = (side - HOLE_SIZE) // 2
    return square[..., start : start + HOLE_SIZE, start : start + HOLE_SIZE]


def paste_center(context: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """Composite a generated center (32 or 32 + 2m pixels) into the context.

    Differentiable with respect to `center`: used for a whole-image critic.
    """
    margin = (center.shape[-1] - HOLE_SIZE) // 2
    region = hole_slice(margin)
    size = output_size(margin)
    pad = (region.start, IMAGE_SIZE - region.stop, region.start, IMAGE_SIZE - region.stop)
    keep = torch.ones(1, 1, size, size, dtype=center.dtype, device=center.device)
    inside = torch.nn.functional.pad(keep, pad)
    return context * (1 - inside) + torch.nn.functional.pad(center, pad) * inside


def hole_mask(size: int) -> torch.Tensor:
    """[size, size] bool: where the 32x32 hole falls on a map of `size` that covers the whole 64x64 image.

    `size` divides 64 and is at least 4, so the hole's edges fall on cell edges: the hole is the
    map's central half (16x16 -> rows/columns 4..11).
    """
    if size < 4 or IMAGE_SIZE % size:
        raise ValueError(f"size: a map covering the whole image must divide {IMAGE_SIZE} and be >= 4, got {size}")
    scale = IMAGE_SIZE // size
    mask = torch.zeros(size, size, dtype=torch.bool)
    region = slice(HOLE_START // scale, (HOLE_START + HOLE_SIZE) // scale)
    mask[region, region] = True
    return mask
