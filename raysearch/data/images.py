"""Decode one image file into square RGB uint8 arrays (center crop, or given crops, + resize)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]  # Pillow's (left, top, right, bottom)


def center_crop_box(width: int, height: int) -> Box:
    """The largest centered square, as a Pillow box (left, top, right, bottom)."""
    side = min(width, height)
    left = (width - side) // 2
    top = (height - side) // 2
    return left, top, left + side, top + side


def load_square(path: Path, size: int) -> tuple[np.ndarray, str]:
    """uint8 [size, size, 3] of the centered square of `path`, and the file's original mode.

    Grayscale, palette, CMYK, RGBA... are converted to RGB. Raises whatever
    Pillow raises for a missing, unreadable or truncated file: the caller
    decides what to do with a bad image.
    """
    squares, mode = load_crops(path, size, lambda width, height: [center_crop_box(width, height)], smallest=1.0)
    return squares[0], mode


def load_crops(path: Path, size: int, boxes_of: Callable[[int, int], list[Box]], smallest: float) -> tuple[np.ndarray, str]:
    """uint8 [K, size, size, 3] of the squares `boxes_of(width, height)` of `path`, and its original mode.

    `smallest` is the smallest crop side as a fraction of the short side: the
    JPEG decoder may downscale only as far as keeps such a crop >= `size`.
    """
    with Image.open(path) as image:
        mode = image.mode
        # Let the JPEG decoder downscale by 1/2..1/8 while decoding when the
        # image is much larger than needed (COCO is ~640x480): several times
        # faster, and every crop still holds >= size pixels a side.
        need = math.ceil(size / smallest)
        image.draft("RGB", (need, need))
        image.load()  # decode now, so a truncated file fails here and not later
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        squares = []
        for box in boxes_of(*rgb.size):
            square = rgb.crop(box)
            if square.size != (size, size):
                # BICUBIC in Pillow widens its support when shrinking: antialiased.
                square = square.resize((size, size), Image.Resampling.BICUBIC)
            squares.append(np.array(square, dtype=np.uint8))
        return np.stack(squares), mode
