"""Open a prepared dataset directory: its splits, pixels (memory-mapped), captions, vocabulary.

Kept free of torch so `info` and other tools start fast; the PyTorch side is dataset.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from raysearch.data import layout
from raysearch.data.vocab import Vocabulary
from raysearch.errors import DataError


class PreparedDataset:
    """A directory written by `python -m raysearch.data prepare` (see layout.py)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.meta: dict[str, Any] = layout.read_meta(self.path)
        self._captions: dict[str, list[list[str]]] = {}
        self._vocabularies: dict[int, Vocabulary] = {}
        for split in self.splits:
            # Opening a .npy memory map reads only its header: a cheap check
            # that catches a truncated or swapped file before training starts.
            expected = (self.meta["splits"][split]["count"], *self.meta["splits"][split]["image_shape"])
            images = self.images(split)
            if images.dtype != np.uint8 or images.shape != expected:
                raise DataError(
                    f"{self.path / layout.images_file(split)}: holds {images.dtype} {list(images.shape)}, "
                    f"{layout.META_FILE} says uint8 {list(expected)}; prepare the dataset again"
                )

    def __repr__(self) -> str:
        counts = ", ".join(f"{split}={self.count(split)}" for split in self.splits)
        return f"PreparedDataset({str(self.path)!r}, {counts})"

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(split for split in layout.SPLITS if split in self.meta["splits"])

    @property
    def image_size(self) -> int:
        return int(self.meta["image_size"])

    @property
    def has_captions(self) -> bool:
        return layout.has_captions(self.meta)

    def require_captions(self) -> None:
        """DataError (one line, naming the dataset) unless its images have captions."""
        if not self.has_captions:
            raise layout.no_captions_error(str(self.path))

    @property
    def skipped(self) -> list[dict[str, str]]:
        return list(self.meta.get("skipped", []))

    def _check_split(self, split: str) -> None:
        if split not in self.meta["splits"]:
            raise DataError(f"{self.path}: no split {split!r}; this dataset has {list(self.splits)}")

    def count(self, split: str) -> int:
        self._check_split(split)
        return int(self.meta["splits"][split]["count"])

    def images(self, split: str) -> np.ndarray:
        """uint8 [N, size, size, 3], memory-mapped read-only (nothing is loaded yet)."""
        self._check_split(split)
        path = self.path / layout.images_file(split)
        try:
            return np.load(path, mmap_mode="r")
        except (OSError, ValueError) as error:
            raise DataError(f"{path}: unreadable ({error}); prepare the dataset again") from None

    def image_ids(self, split: str) -> np.ndarray:
        self._check_split(split)
        return np.load(self.path / layout.image_ids_file(split))

    def captions(self, split: str) -> list[list[str]]:
        """One list of caption strings per image row, validated against meta.json."""
        self._check_split(split)
        if split not in self._captions:
            path = self.path / layout.captions_file(split)
            try:
                captions = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
                raise DataError(f"{path}: unreadable ({error}); prepare the dataset again") from None
            per_image = self.meta["splits"][split]["captions_per_image"]
            valid = isinstance(captions, list) and len(captions) == self.count(split) and all(
                isinstance(row, list) and len(row) == per_image and all(isinstance(c, str) for c in row)
                for row in captions
            )
            if not valid:
                raise DataError(
                    f"{path}: must be a list of {self.count(split)} lists of {per_image} strings "
                    f"(one per image); prepare the dataset again"
                )
            self._captions[split] = captions
        return self._captions[split]

    def vocabulary(self, min_count: int = 10) -> Vocabulary:
        """The vocabulary of the train split's captions (val words never leak in)."""
        if "train" not in self.meta["splits"]:
            raise DataError(f"{self.path}: has no train split to build a vocabulary from")
        if min_count not in self._vocabularies:
            self._vocabularies[min_count] = Vocabulary.build(self.captions("train"), min_count=min_count)
        return self._vocabularies[min_count]
