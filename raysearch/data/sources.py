"""What a raw dataset layout yields for `prepare`: per split, image files with their captions."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Captions stored per image: MSCOCO has 5 per image (a few have 6 or 7).
CAPTIONS_PER_IMAGE = 5


@dataclass(frozen=True)
class SourceImage:
    path: Path  # absolute path of the image file
    name: str  # path relative to the raw root, for messages and meta.json
    image_id: int
    captions: tuple[str, ...]


@dataclass
class SourceSplit:
    name: str  # output split name: "train" or "val"
    images: list[SourceImage]
    source_files: dict[str, str]  # where the split came from, relative to the raw root
    skipped: list[dict[str, str]] = field(default_factory=list)  # rejected before decoding


def fixed_captions(captions: list[str]) -> tuple[str, ...]:
    """Exactly CAPTIONS_PER_IMAGE captions: the first ones, cycled when there are fewer."""
    return tuple(captions[i % len(captions)] for i in range(CAPTIONS_PER_IMAGE))
