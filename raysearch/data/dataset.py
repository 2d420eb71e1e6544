"""Serve a prepared dataset to PyTorch as (image, caption tokens)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from raysearch.data import layout
from raysearch.data.prepared import PreparedDataset
from raysearch.data.sources import CAPTIONS_PER_IMAGE
from raysearch.data.vocab import Vocabulary
from raysearch.errors import DataError

__all__ = ["InpaintingDataset", "PreparedDataset", "as_unit", "to_float_images", "to_uint8_images"]


def to_float_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float32 [B, 3, H, W] in [-1, 1], on the input's device.

    The trainer keeps batches as uint8 (4x less memory and host-to-device
    traffic) and converts on the GPU with this.
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
        raise ValueError(f"to_float_images expects uint8 [B, H, W, 3], got {images.dtype} {list(images.shape)}")
    floats = images.permute(0, 3, 1, 2).to(dtype=torch.float32, memory_format=torch.contiguous_format)
    return floats.div_(127.5).sub_(1.0)


def to_uint8_images(images: torch.Tensor) -> torch.Tensor:
    """float [B, 3, H, W] in [-1, 1] -> uint8 [B, H, W, 3], rounded: the inverse of `to_float_images`, so a pixel
    that went through both comes back bit for bit (a filled photo keeps every known pixel)."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"to_uint8_images expects float [B, 3, H, W], got {images.dtype} {list(images.shape)}")
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)


def as_unit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]: the range the metrics (raysearch.metrics) and pictures take."""
    return (images + 1) / 2


class InpaintingDataset(Dataset):
    """Items are {"image": float32 [3, 64, 64] in [-1, 1], "tokens": int64 [5, caption_length]}.

    The masked context is derived by the consumer (models.geometry.mask_context),
    not stored. For an in-memory training loop, `images_uint8` (loaded on first
    use) and `tokens` hold the whole split; convert batches with `to_float_images`.
    """

    def __init__(
        self,
        prepared: PreparedDataset | str | Path,
        split: str,
        vocab: Vocabulary,
        caption_length: int = 16,
        limit: int = 0,
        *,
        require_captions: bool = False,
    ) -> None:
        """`require_captions`: the consumer conditions on captions, so a captionless dataset is a DataError."""
        if not isinstance(prepared, PreparedDataset):
            prepared = PreparedDataset(prepared)
        if require_captions:
            prepared.require_captions()
        if limit < 0:
            raise DataError(f"limit: must be >= 0 (0 = the whole split), got {limit}")
        if caption_length < 1:
            raise DataError(f"caption_length: must be >= 1, got {caption_length}")
        available = prepared.count(split)
        self.split = split
        self.caption_length = caption_length
        self._images_path = prepared.path / layout.images_file(split)
        self._count = available if limit == 0 else min(limit, available)
        self._pixels: np.ndarray | None = None
        self.captions: list[list[str]] = prepared.captions(split)[: self._count]
        # Encoded once here so neither the trainer nor DataLoader workers re-tokenize per epoch.
        tokens = np.zeros((self._count, CAPTIONS_PER_IMAGE, caption_length), dtype=np.int64)
        for row, image_captions in enumerate(self.captions):
            if image_captions:  # a captionless dataset (photos) keeps all-padding tokens
                tokens[row] = vocab.tokens(image_captions, caption_length, CAPTIONS_PER_IMAGE)
        self.tokens: torch.Tensor = torch.from_numpy(tokens)

    def __len__(self) -> int:
        return self._count

    def _mapped(self) -> np.ndarray:
        # Opened lazily so that pickling the dataset (DataLoader workers, Ray)
        # sends a path, not the pixels.
        if self._pixels is None:
            self._pixels = np.load(self._images_path, mmap_mode="r")[: self._count]
        return self._pixels

    @cached_property
    def images_uint8(self) -> torch.Tensor:
        """uint8 [N, 64, 64, 3] of the whole split, read into memory on first use."""
        return torch.from_numpy(np.array(self._mapped()))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -self._count <= index < self._count:
            raise IndexError(f"index {index} out of range for {self._count} images")
        if "images_uint8" in self.__dict__:
            pixels = self.images_uint8[index]
        else:
            pixels = torch.from_numpy(np.array(self._mapped()[index]))  # a copy: the map is read-only
        return {"image": to_float_images(pixels[None])[0], "tokens": self.tokens[index]}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_pixels"] = None
        state.pop("images_uint8", None)
        return state
