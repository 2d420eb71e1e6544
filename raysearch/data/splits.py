"""A prepared dataset's splits as tensors, read once per process: what a trial trains on and a trained generator
fills (raysearch.fill).

Trials that Tune runs one after another in the same actor share the cached
splits instead of reading and tokenising the dataset again.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from raysearch.config import DataConfig
from raysearch.data import layout
from raysearch.data.cache import resolve_dataset
from raysearch.data.dataset import InpaintingDataset
from raysearch.data.prepared import PreparedDataset
from raysearch.data.vocab import Vocabulary

# Datasets kept per process: a search's trials use one, a few across benches and tests.
CACHED_SPLITS = 4


def open_dataset(data: DataConfig) -> tuple[PreparedDataset, Vocabulary]:
    """The prepared dataset a config names (the synthetic default when it names none) and its vocabulary."""
    prepared = _prepared(data)
    return prepared, prepared.vocabulary(data.vocab_min_count)


@dataclass(frozen=True)
class Split:
    """One split as the loop uses it: uint8 images [N, 64, 64, 3], caption tokens [N, 5, L], the vocabulary size."""

    images: Tensor
    tokens: Tensor
    vocab_size: int


def load_split(data: DataConfig, split: str, captions: bool) -> Split:
    """A split of the config's dataset (its first `train_images` / `val_images`), read once per process.

    Keyed by the dataset's images file as it is on disk (path, size, modification time), so a dataset
    prepared again in the same place is read again. The tensors are shared by every trial that asks for
    the same data: never written to.
    """
    prepared = _prepared(data)
    stamp = (prepared.path / layout.images_file(split)).stat()
    limit = data.train_images if split == "train" else data.val_images
    return _read_split(prepared.path, split, (stamp.st_size, stamp.st_mtime_ns), limit, data.caption_length,
                       data.vocab_min_count, captions)


def _prepared(data: DataConfig) -> PreparedDataset:
    return PreparedDataset(resolve_dataset(
        data.path, synthetic_train=data.synthetic_train, synthetic_val=data.synthetic_val,
        synthetic_seed=data.synthetic_seed,
    ))


@functools.lru_cache(maxsize=CACHED_SPLITS)
def _read_split(path: Path, split: str, stamp: tuple[int, int], limit: int, caption_length: int,
                vocab_min_count: int, captions: bool) -> Split:
    prepared = PreparedDataset(path)
    vocab = prepared.vocabulary(vocab_min_count)
    dataset = InpaintingDataset(prepared, split, vocab, caption_length, limit=limit, require_captions=captions)
    return Split(dataset.images_uint8, dataset.tokens, len(vocab))
