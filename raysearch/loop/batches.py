"""What a trial trains and validates on, held on its device: the training split, the fixed validation subset
and its generator noise, each epoch's shuffled batches, and the random symmetries of `data.augment`.

The prepared splits are read once per process (`load_split`, cached): trials that
Tune runs one after another in the same actor share them instead of reading and
tokenising the dataset again.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

from raysearch.config import DataConfig, ExperimentConfig
from raysearch.data import layout
from raysearch.data import InpaintingDataset, PreparedDataset, Vocabulary, resolve_dataset, to_float_images

# Datasets kept per process: a search's trials use one, a few across benches and tests.
CACHED_SPLITS = 4


def open_dataset(data: DataConfig) -> tuple[PreparedDataset, Vocabulary]:
    """The prepared dataset a config names (the synthetic default when it names none) and its vocabulary."""
    prepared = PreparedDataset(resolve_dataset(
        data.path, synthetic_train=data.synthetic_train, synthetic_val=data.synthetic_val,
        synthetic_seed=data.synthetic_seed,
    ))
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
    prepared = PreparedDataset(resolve_dataset(
        data.path, synthetic_train=data.synthetic_train, synthetic_val=data.synthetic_val,
        synthetic_seed=data.synthetic_seed,
    ))
    stamp = (prepared.path / layout.images_file(split)).stat()
    limit = data.train_images if split == "train" else data.val_images
    return _read_split(prepared.path, split, (stamp.st_size, stamp.st_mtime_ns), limit, data.caption_length,
                       data.vocab_min_count, captions)


@functools.lru_cache(maxsize=CACHED_SPLITS)
def _read_split(path: Path, split: str, stamp: tuple[int, int], limit: int, caption_length: int,
                vocab_min_count: int, captions: bool) -> Split:
    prepared = PreparedDataset(path)
    vocab = prepared.vocabulary(vocab_min_count)
    dataset = InpaintingDataset(prepared, split, vocab, caption_length, limit=limit, require_captions=captions)
    return Split(dataset.images_uint8, dataset.tokens, len(vocab))


class TrainingData:
    """A trial's training split and validation subset on its device, and how each epoch draws from them.

    The dataset is small next to device memory: it is held there as one uint8
    tensor and batches are indexed from it, so loading never starves the step.
    """

    def __init__(self, cfg: ExperimentConfig, device: torch.device, rank: int = 0, world_size: int = 1) -> None:
        self.cfg = cfg
        self.device = device
        self.rank, self.world_size = rank, world_size
        captions = cfg.captions.enabled
        train, val = load_split(cfg.data, "train", captions), load_split(cfg.data, "val", captions)
        self.train_images = train.images.to(device)
        self.train_tokens = train.tokens.to(device)
        self.val_images = to_float_images(val.images.to(device))
        self.val_tokens = val.tokens.to(device)
        self.vocab_size = train.vocab_size
        self.val_noise = validation_noise(cfg, len(self.val_images), device)

    @property
    def train_size(self) -> int:
        return len(self.train_images)

    def epoch_batches(self, epoch: int) -> list[Tensor]:
        """This rank's shuffled batches of indices: the same for a given seed and epoch, resumed or not."""
        sampler = DistributedSampler(range(self.train_size), num_replicas=self.world_size, rank=self.rank,
                                     shuffle=True, seed=self.cfg.train.seed, drop_last=True)
        sampler.set_epoch(epoch)
        # One host-to-device copy per epoch; the batches are views of it.
        order = torch.tensor(list(sampler)).to(self.device)
        size = self.cfg.train.batch_size
        return list(order[: len(order) // size * size].split(size))  # full batches only: batch norm

    def batch(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        """Float images [B, 3, 64, 64] in [-1, 1] and caption tokens of a batch of indices."""
        images = to_float_images(self.train_images[indices])
        if self.cfg.train.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, self.train_tokens[indices]


def augment(images: Tensor, kind: str, rng: torch.Generator) -> Tensor:
    """Each image under a random symmetry of the square (`data.augment`), drawn from `rng`, no host sync."""
    if kind == "none":
        return images
    flips = torch.rand(3, len(images), 1, 1, 1, generator=rng, device=images.device) < 0.5
    images = torch.where(flips[0], images.flip(-1), images)
    if kind == "dihedral":
        images = torch.where(flips[1], images.flip(-2), images)
        images = torch.where(flips[2], images.transpose(-1, -2), images)
    return images


def validation_noise(cfg: ExperimentConfig, count: int, device: torch.device) -> Tensor | None:
    """The generator noise of the validation subset: the same every epoch, and in analysis.

    Drawn on the CPU, then moved: a CUDA generator draws other numbers than the
    CPU one for the same seed, and analysis (on the CPU) must show exactly the
    validation images a GPU-trained trial measured.
    """
    if not cfg.generator.noise_length:
        return None
    rng = torch.Generator(device="cpu").manual_seed(cfg.train.seed + 12345)
    return torch.randn(count, cfg.generator.noise_length, generator=rng).to(device)
