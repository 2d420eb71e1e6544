"""Images the tests fill: smooth synthetic photos made here, and the real BSDS500 photos that lie beside a
checkout (../shared/photos/bsds500), which a lone clone does not have: tests that need them skip, saying why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

# ../shared/photos/bsds500 beside the clone (the clone's parent, or a parent of that for a worktree).
BESIDE = "shared/photos/bsds500"
BSDS = next((parent / BESIDE for parent in Path(__file__).resolve().parents[2:4] if (parent / BESIDE).is_dir()),
            Path(__file__).resolve().parents[2] / BESIDE)


PHOTOS_MISSING = (f"the BSDS500 photos are not at {BSDS} (../shared/photos/bsds500 beside this clone; a lone clone "
                  "has none)")
# For a test that reads the photos: skipped, naming where they were looked for, in a clone without them.
skip_without_bsds = pytest.mark.skipif(not any(BSDS.glob("*/*.jpg")), reason=PHOTOS_MISSING)


def bsds_photos(split: str = "*", count: int | None = None) -> list[Path]:
    """The first `count` BSDS500 photos of `split` (train, val; * for both), in a stable order; the test is
    skipped, naming where they were looked for, when they are not there (or fewer than `count`)."""
    paths = sorted(BSDS.glob(f"{split}/*.jpg"))
    if not paths or (count is not None and len(paths) < count):
        pytest.skip(PHOTOS_MISSING)
    return paths if count is None else paths[:count]


def smooth_photo(rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """uint8 [size, size, 3]: a smooth colour field plus a little noise: a fill that continues the border beats
    a flat one."""
    y, x = np.mgrid[0:size, 0:size] / float(size)
    channels = []
    for _ in range(3):
        a, b, c, d = rng.uniform(-1, 1, 4)
        channels.append(0.5 + 0.3 * np.sin(3 * a * x + 3 * b * y + c) * np.cos(2 * d * x))
    image = np.stack(channels, axis=-1) + rng.normal(0, 0.02, (size, size, 3))
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)
