"""Pictures of fills: grids of image rows (TensorBoard's previews, `analyze --grid`, the benches) and their
labelled PNG forms, and the strip `inpaint --compare` writes per photo. Images are [-1, 1] NCHW tensors."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from raysearch.data.dataset import as_unit

LABEL_WIDTH = 132  # pixels left of a grid for its row labels
PADDING = 2  # pixels between tiles
CAPTION_HEIGHT = 30  # pixels under a strip for its two caption lines


def image_grid(rows: list[torch.Tensor], padding: int = PADDING) -> torch.Tensor:
    """Rows of [-1, 1] NCHW image batches -> one CHW [0, 1] grid (torchvision's make_grid, minus torchvision)."""
    count, channels, height, width = rows[0].shape
    grid = torch.ones(channels, padding + len(rows) * (height + padding), padding + count * (width + padding))
    for r, batch in enumerate(rows):
        for c, image in enumerate(batch.detach().float().cpu()):
            top, left = padding + r * (height + padding), padding + c * (width + padding)
            grid[:, top : top + height, left : left + width] = as_unit(image.clamp(-1, 1))
    return grid


def to_pil(grid: torch.Tensor) -> Image.Image:
    """A CHW [0, 1] grid -> an RGB image, truncated as tensorboardX's add_image does (so the tiles match the
    trials' own preview grids pixel for pixel)."""
    pixels = (grid.clamp(0, 1) * 255).to(dtype=torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(pixels))


def labelled(grid: torch.Tensor, labels: list[tuple[str, str]]) -> Image.Image:
    """A CHW [0, 1] grid of len(labels) rows -> an RGB image with each row's two label lines on its left."""
    image = to_pil(grid)
    canvas = Image.new("RGB", (LABEL_WIDTH + image.width, image.height), "white")
    canvas.paste(image, (LABEL_WIDTH, 0))
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    tile = (image.height - PADDING) // len(labels)
    for row, (first, second) in enumerate(labels):
        top = PADDING + row * tile + tile // 2 - (12 if second else 6)
        draw.text((4, top), fit(draw, font, first, LABEL_WIDTH - 6), fill="black", font=font)
        if second:
            draw.text((4, top + 14), fit(draw, font, second, LABEL_WIDTH - 6), fill="dimgray", font=font)
    return canvas


def strip(tiles: list[torch.Tensor], captions: list[tuple[str, str]], scale: int = 2) -> Image.Image:
    """One row of [-1, 1] CHW images, each `scale` times larger (nearest), with two caption lines under each."""
    image = to_pil(image_grid([torch.stack(tiles)]))
    image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    canvas = Image.new("RGB", (image.width, image.height + CAPTION_HEIGHT), "white")
    canvas.paste(image, (0, 0))
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    tile = (image.width - PADDING * scale) // len(tiles)
    for column, (first, second) in enumerate(captions):
        left = PADDING * scale + column * tile
        draw.text((left, image.height + 2), fit(draw, font, first, tile - 4), fill="black", font=font)
        draw.text((left, image.height + 15), fit(draw, font, second, tile - 4), fill="dimgray", font=font)
    return canvas


def fit(draw: ImageDraw.ImageDraw, font, text: str, width: int) -> str:
    """`text`, cut with an ellipsis to `width` pixels."""
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "…"
    return text
