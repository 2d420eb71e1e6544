"""What a trial trains and validates on, held on its device: the training split, the fixed validation subset
and its generator noise, each epoch's shuffled batches, and the random symmetries of `data.augment`.

The prepared splits are read once per process (raysearch.data.splits, cached): trials that
Tune runs one after another in the same actor share them.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

from raysearch.config import ExperimentConfig
from raysearch.data.dataset import to_float_images
from raysearch.data.splits import load_split
from raysearch.fill import validation_noise

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
