"""Critics: image -> raw scores (no sigmoid; the losses apply it).

`conv` follows seed 001's discriminator table: `depth` stages that each halve
the resolution (widths base_width * 2^i capped at max_width), then a global
average pool (`pool`, 256x4x4 -> 256) and a linear score (`output`, 256 -> 1):
one score per image. Stages are named `features.conv1`...

`patch` (pix2pix's PatchGAN, as LaMa and DeepFill v2 use it) has the same
stages and no pool: a last convolution scores every cell of the final map, each
cell judging the patch of the image it sees (`ReceptiveField`). With
`hole_label_map` a generated image's cells are labelled by whether they see the
hole (LaMa's mask-aware labels; raysearch.losses.mask_aware_critic_loss).

Both take `return_features=True` and then also return the output of every stage
(the critic features that raysearch.losses.feature_matching compares).
"""

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import get_args, get_type_hints

import torch
from torch import nn

from models.geometry import HOLE_SIZE, HOLE_START, IMAGE_SIZE
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


def _stages(opts: CriticOptions) -> tuple[nn.Sequential, int]:
    """The downsampling stages `conv1`... both critics share, and the channels of the last."""
    check_choice(opts.norm, CRITIC_NORMS, "norm")
    check_choice(opts.activation, get_args(Activation), "activation")
    stride, pool = choose(POOLINGS, opts.pooling, "pooling")
    style = BlockStyle(opts.kernel_size, opts.norm, opts.activation, opts.leaky_slope)
    # As in DCGAN, the first conv has no activation norm (it would only
    # rescale the input); a weight norm (spectral) still applies to it.
    first = BlockStyle(
        opts.kernel_size, opts.norm if opts.norm in WEIGHT_NORMS else "none", opts.activation, opts.leaky_slope
    )
    stages, channels = OrderedDict(), 3
    for i, width in enumerate(widths(opts.base_width, opts.max_width, opts.depth)):
        block = ConvBlock(channels, width, first if i == 0 else style, stride=stride)
        stages[f"conv{i + 1}"] = Stage([block], after=pool())
        channels = width
    return nn.Sequential(stages), channels


def _run_stages(stages: nn.Sequential, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The last stage's map and every stage's output, in order."""
    features, x = [], images
    for stage in stages:
        x = stage(x)
        features.append(x)
    return x, features


@CRITICS.register("conv")
class ConvCritic(nn.Module):
    """[B, 3, S, S] images -> [B] raw scores (and, asked, the stages' outputs)."""

    def __init__(self, opts: CriticOptions, input_size: int) -> None:
        super().__init__()
        if not choose(INPUT_SIZES, opts.input, "input")(input_size):
            raise ValueError(f"input: a {opts.input!r} critic cannot take {input_size}x{input_size} images")
        # depth <= 5 and inputs >= 32 pixels: the last map is at least 1x1.
        self.features, channels = _stages(opts)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.output = with_weight_norm(opts.norm, nn.Linear(channels, 1))

    def forward(
        self, images: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """[B] scores; with `return_features`, (scores, [the output of each of `features.conv1`...])."""
        if not return_features:
            return self.output(self.pool(self.features(images))).squeeze(1)
        x, features = _run_stages(self.features, images)
        return self.output(self.pool(x)).squeeze(1), features


@dataclass(frozen=True)
class ReceptiveField:
    """Which input pixels a cell of a convolutional map depends on, along one axis (both are alike).

    Cell i reads input pixels start + i * jump ... start + i * jump + size - 1; those
    outside 0..63 are the zero padding. Built layer by layer with `then`.
    """

    size: int = 1
    jump: int = 1
    start: int = 0

    def then(self, kernel: int, stride: int = 1, padding: int = 0) -> "ReceptiveField":
        """The field of a layer (kernel, stride, padding) applied to this map."""
        return ReceptiveField(
            self.size + (kernel - 1) * self.jump, self.jump * stride, self.start - padding * self.jump
        )

    def window(self, cell: int) -> tuple[int, int]:
        """First and last input pixel that `cell` reads (may lie in the padding)."""
        first = self.start + cell * self.jump
        return first, first + self.size - 1


def patch_field(opts: CriticOptions) -> ReceptiveField:
    """The receptive field of a `patch` critic's score cells, or a ValueError if a cell would see the whole image.

    Each stage is a kernel_size conv (stride 2, or stride 1 followed by a 2x2 pool), and the
    score a kernel_size conv of stride 1: size = 1 + (k - 1)(2^(depth+1) - 1) when strided,
    29 px for kernel_size 5 and depth 2, 31 px for kernel_size 3 and depth 3.
    """
    stride, _ = choose(POOLINGS, opts.pooling, "pooling")
    field = ReceptiveField()
    for _ in range(opts.depth):
        field = field.then(opts.kernel_size, stride, opts.kernel_size // 2)
        if stride == 1:
            field = field.then(2, 2)
    field = field.then(opts.kernel_size, 1, opts.kernel_size // 2)
    if field.size >= IMAGE_SIZE:
        raise ValueError(
            f"depth: a patch critic with kernel_size {opts.kernel_size}, depth {opts.depth} and {opts.pooling} pooling "
            f"sees {field.size} px, not a patch of the {IMAGE_SIZE}-px image; lower depth or kernel_size "
            "(kernel_size 5, depth 2: 29 px; kernel_size 3, depth 3: 31 px)"
        )
    return field


def hole_label_map(field: ReceptiveField, cells: int) -> torch.Tensor:
    """[cells, cells] bool: True where a cell's receptive field touches the 32x32 hole.

    On a generated image (the context with the generated center pasted in) these are
    the cells that see generated pixels, the ones labelled fake; the others see only
    the real context, identical to the real image's, and are labelled real. That is
    LaMa's `mask_as_fake_target` (Suvorov et al. 2022, its NonSaturatingWithR1 loss),
    which labels cells real rather than leaving them out; LaMa picks a cell's label by
    nearest-resizing the mask (the cell's centre in the hole), this by its whole
    receptive field, so a cell that sees any generated pixel is never called real.
    """
    hole_first, hole_last = HOLE_START, HOLE_START + HOLE_SIZE - 1
    touches = torch.tensor(
        [field.window(i)[1] >= hole_first and field.window(i)[0] <= hole_last for i in range(cells)]
    )
    return touches[:, None] & touches[None, :]


@CRITICS.register("patch")
class PatchCritic(nn.Module):
    """[B, 3, 64, 64] whole images -> [B, N, N] raw score maps, N = 64 / 2^depth.

    The stages of `conv` (same widths, norms and pooling), then a kernel_size
    convolution to one channel (`output`) in place of the pool and linear head.
    `field` is the receptive field of a cell (`patch_field`), `hole_labels` the
    [N, N] bool map of the cells that see the hole (`hole_label_map`).
    kernel_size 5, depth 2 (strided): a 16x16 map of 29-px cells, 15x15 of them touching the hole.
    """

    def __init__(self, opts: CriticOptions, input_size: int) -> None:
        super().__init__()
        if opts.input != "whole" or input_size != IMAGE_SIZE:
            raise ValueError(
                f"input: the patch critic scores whole {IMAGE_SIZE}x{IMAGE_SIZE} images (its labels say which cells "
                f"see the hole), not a {opts.input!r} input of {input_size}x{input_size}; use input: whole"
            )
        self.field = patch_field(opts)
        self.features, channels = _stages(opts)
        kernel = opts.kernel_size
        self.output = with_weight_norm(opts.norm, nn.Conv2d(channels, 1, kernel, padding=kernel // 2))
        self.cells = IMAGE_SIZE >> opts.depth
        self.register_buffer("hole_labels", hole_label_map(self.field, self.cells), persistent=False)

    def forward(
        self, images: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """[B, N, N] scores; with `return_features`, (scores, [the output of each of `features.conv1`...])."""
        x, features = _run_stages(self.features, images)
        scores = self.output(x).squeeze(1)
        return (scores, features) if return_features else scores
