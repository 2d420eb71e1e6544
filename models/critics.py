"""Critics: image -> one raw score per image (no sigmoid; the losses apply it).

`conv` follows seed 001's discriminator table: `depth` stages that each halve
the resolution (widths base_width * 2^i capped at max_width), then a global
average pool (`pool`, 256x4x4 -> 256) and a linear score (`output`, 256 -> 1).
Stages are named `features.conv1`...
"""

from collections import OrderedDict
from collections.abc import Callable
from typing import get_args, get_type_hints

import torch
from torch import nn

from models.geometry import HOLE_SIZE, IMAGE_SIZE
from models.layers import WEIGHT_NORMS, BlockStyle, ConvBlock, Stage, check_choice, choose, with_weight_norm, widths
from models.options import Activation, CriticOptions
from models.registry import CRITICS

# How a stage halves the resolution: the conv's stride, and what follows it.
# `strided` is seed 001's; `max`/`avg` are seed 000's conv-then-pool variants.
POOLINGS: dict[str, tuple[int, Callable[[], nn.Module]]] = {
    "strided": (2, nn.Identity),
    "max": (1, lambda: nn.MaxPool2d(2)),
    "avg": (1, lambda: nn.AvgPool2d(2)),
}

# The image each `input` kind scores: the whole composited 64x64 image, or the
# generated square alone (32 + 2 * margin pixels).
INPUT_SIZES: dict[str, Callable[[int], bool]] = {
    "whole": lambda size: size == IMAGE_SIZE,
    "center": lambda size: HOLE_SIZE <= size < IMAGE_SIZE,
}


# The norms a critic takes, from its options' Literal (the layer table also has `instance`).
CRITIC_NORMS = get_args(get_type_hints(CriticOptions)["norm"])


@CRITICS.register("conv")
class ConvCritic(nn.Module):
    """[B, 3, S, S] images -> [B] raw scores."""

    def __init__(self, opts: CriticOptions, input_size: int) -> None:
        super().__init__()
        if not choose(INPUT_SIZES, opts.input, "input")(input_size):
            raise ValueError(f"input: a {opts.input!r} critic cannot take {input_size}x{input_size} images")
        check_choice(opts.norm, CRITIC_NORMS, "norm")
        check_choice(opts.activation, get_args(Activation), "activation")
        stride, pool = choose(POOLINGS, opts.pooling, "pooling")
        style = BlockStyle(opts.kernel_size, opts.norm, opts.activation, opts.leaky_slope)
        # As in DCGAN, the first conv has no activation norm (it would only
        # rescale the input); a weight norm (spectral) still applies to it.
        first = BlockStyle(
            opts.kernel_size, opts.norm if opts.norm in WEIGHT_NORMS else "none", opts.activation, opts.leaky_slope
        )
        # depth <= 5 and inputs >= 32 pixels: the last map is at least 1x1.
        stages, channels = OrderedDict(), 3
        for i, width in enumerate(widths(opts.base_width, opts.max_width, opts.depth)):
            block = ConvBlock(channels, width, first if i == 0 else style, stride=stride)
            stages[f"conv{i + 1}"] = Stage([block], after=pool())
            channels = width
        self.features = nn.Sequential(stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.output = with_weight_norm(opts.norm, nn.Linear(channels, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.output(self.pool(self.features(images))).squeeze(1)
