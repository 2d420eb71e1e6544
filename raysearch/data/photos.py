"""Read any folder of photos for `prepare --images`: its splits and the squares cut from each photo.

Splits: `train/` and `val/` subfolders when the folder has both, else every photo
goes to one split by a hash of its path relative to the folder, so adding or
removing a photo never moves another one between splits.

Crops: one crop is the centered largest square, exactly as the COCO pipeline
cuts it. More crops are random squares, each with a side uniform in
[min_crop x short side, short side] at a uniform position. The draws depend
only on (seed, relative path), never on the order the pool decodes in, so the
same seed gives the same bytes.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raysearch.data.sources import SourceImage, SourceSplit
from raysearch.errors import DataError

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
LAYOUT_NAME = "photos"
DEFAULT_VAL_FRACTION = 0.1
DEFAULT_MIN_CROP = 0.5

# One random crop: (side, left, top) as fractions in [0, 1), turned into pixels once the size is known.
CropDraw = tuple[float, float, float]


@dataclass(frozen=True)
class CropPlan:
    """How many squares to cut from each photo of a split, and how small they may be."""

    count: int
    min_crop: float
    seed: int

    def draws(self, name: str) -> list[CropDraw] | None:
        """The random fractions of `name`'s crops; None for the single centered square."""
        if self.count == 1:
            return None
        digest = hashlib.sha256(f"{self.seed}\0{name}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:16], "little"))
        return [tuple(float(x) for x in rng.random(3)) for _ in range(self.count)]  # type: ignore[misc]


def crop_box(width: int, height: int, draw: CropDraw, min_crop: float) -> tuple[int, int, int, int]:
    """The square of `draw` inside a width x height photo, as a Pillow box (left, top, right, bottom)."""
    short = min(width, height)
    smallest = max(1, math.ceil(min_crop * short))
    side_fraction, left_fraction, top_fraction = draw
    side = min(short, smallest + int(side_fraction * (short - smallest + 1)))
    left = int(left_fraction * (width - side + 1))
    top = int(top_fraction * (height - side + 1))
    return left, top, left + side, top + side


def is_photo(path: Path) -> bool:
    return path.suffix.lower() in PHOTO_SUFFIXES and path.is_file()


def _photos(folder: Path) -> list[Path]:
    # Sorted by relative path so ids, and every output row, are the same on every run and machine.
    return sorted((p for p in folder.rglob("*") if is_photo(p)), key=lambda p: p.relative_to(folder).as_posix())


def hash_split(name: str, val_fraction: float) -> str:
    """'val' for about `val_fraction` of names, chosen by a hash of the name, else 'train'."""
    digest = hashlib.sha256(name.encode()).digest()
    return "val" if int.from_bytes(digest[:8], "little") / 2**64 < val_fraction else "train"


def read_photo_splits(root: Path, val_fraction: float = DEFAULT_VAL_FRACTION) -> list[SourceSplit]:
    """The train and val photos under `root` (captionless), in split order; DataError if there are none."""
    if not root.is_dir():
        raise DataError(f"--images {root}: no such directory")
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"--val-fraction: must be in [0, 1), got {val_fraction}")
    by_split: dict[str, list[tuple[Path, str]]] = {"train": [], "val": []}
    if (root / "train").is_dir() and (root / "val").is_dir():
        described = {split: f"{split}/" for split in by_split}
        for split in by_split:
            by_split[split] = [(p, p.relative_to(root).as_posix()) for p in _photos(root / split)]
    else:
        described = {split: f"hash of the file name, val fraction {val_fraction}" for split in by_split}
        for path in _photos(root):
            name = path.relative_to(root).as_posix()
            by_split[hash_split(name, val_fraction)].append((path, name))
    if not any(by_split.values()):
        raise DataError(f"--images {root}: no photo found (looked for {', '.join(sorted(PHOTO_SUFFIXES))}, "
                        "any case, in all subfolders)")
    splits = []
    for split, photos in by_split.items():
        if photos:
            images = [SourceImage(path, name, index, ()) for index, (path, name) in enumerate(photos)]
            splits.append(SourceSplit(split, images, {"layout": LAYOUT_NAME, "images": described[split]}))
    return splits
