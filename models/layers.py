"""Building blocks shared by the generators and the critic.

Every choice a config names (norm, activation) is a small table of factories:
adding one is one line, and an unknown name fails with the valid ones listed.
"""

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

T = TypeVar("T")


def check_choice(kind: str, allowed: Collection[str], option: str) -> None:
    """A ValueError naming the option and the valid kinds unless `kind` is one of them."""
    if kind not in allowed:
        raise ValueError(f"{option}: unknown {kind!r}; choose one of: {', '.join(sorted(allowed))}")


def choose(table: Mapping[str, T], kind: str, option: str) -> T:
    """`table[kind]`, or a ValueError naming the option and the valid kinds."""
    check_choice(kind, table, option)
    return table[kind]


# "layer" is GroupNorm with a single group: it normalises each sample over
# (C, H, W) exactly like LayerNorm([C, H, W]), but its affine is per channel
# rather than per pixel, so it does not tie a layer to one spatial size (the
# critic sees 32, 36 or 64 pixel inputs; the generators' maps go down to 1x1)
# and it is the "layer norm" of the WGAN-GP critic. "spectral" normalises the
# weights instead (see WEIGHT_NORMS), so it adds no activation norm.
NORMS: dict[str, Callable[[int], nn.Module]] = {
    "batch": nn.BatchNorm2d,
    "instance": lambda channels: nn.InstanceNorm2d(channels, affine=True),
    "layer": lambda channels: nn.GroupNorm(1, channels),
    "none": lambda channels: nn.Identity(),
    "spectral": lambda channels: nn.Identity(),
}

# Norms with a learnt shift of their own, which makes the conv's bias redundant.
SHIFTING_NORMS = frozenset({"batch", "instance", "layer"})

WEIGHT_NORMS: dict[str, Callable[[nn.Module], nn.Module]] = {"spectral": spectral_norm}

ACTIVATIONS: dict[str, Callable[[float], nn.Module]] = {
    "relu": lambda slope: nn.ReLU(),
    "leaky_relu": lambda slope: nn.LeakyReLU(slope),
    "none": lambda slope: nn.Identity(),
}


def make_norm(kind: str, channels: int) -> nn.Module:
    return choose(NORMS, kind, "norm")(channels)


def make_activation(kind: str, slope: float) -> nn.Module:
    return choose(ACTIVATIONS, kind, "activation")(slope)


def with_weight_norm(kind: str, module: nn.Module) -> nn.Module:
    """`module` with the weight normalisation `kind` names, if it names one."""
    return WEIGHT_NORMS[kind](module) if kind in WEIGHT_NORMS else module


@dataclass(frozen=True)
class BlockStyle:
    """What every conv block of one path (down or up) shares."""

    kernel_size: int
    norm: str = "none"
    activation: str = "none"
    slope: float = 0.2

    def raw(self) -> "BlockStyle":
        """The same kernel with no norm and no activation (an output layer)."""
        return BlockStyle(self.kernel_size)


class ConvBlock(nn.Module):
    """conv -> norm -> (+ a per-sample channel shift) -> activation.

    The optional shift is the caption bias of seed 000: it is added after the
    norm, where a batch-normalised Lasagne conv keeps its bias (beta), so the
    norm cannot cancel it.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        style: BlockStyle,
        *,
        stride: int = 1,
        kernel_size: int | None = None,
        padding: int | None = None,
    ) -> None:
        super().__init__()
        kernel_size = style.kernel_size if kernel_size is None else kernel_size
        padding = kernel_size // 2 if padding is None else padding
        conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, bias=style.norm not in SHIFTING_NORMS
        )
        self.conv = with_weight_norm(style.norm, conv)
        self.norm = make_norm(style.norm, out_channels)
        self.act = make_activation(style.activation, style.slope)

    def forward(self, x: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm(self.conv(x))
        if shift is not None:
            x = x + shift[:, :, None, None]
        return self.act(x)


class Stage(nn.Module):
    """One resolution stage: resample in, a run of conv blocks, resample out.

    A shift given to the stage goes to its last block (the caption bias lands
    on the last convolution of the encoder).
    """

    def __init__(
        self, blocks: Sequence[ConvBlock], *, before: nn.Module | None = None, after: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.before = nn.Identity() if before is None else before
        self.blocks = nn.ModuleList(blocks)
        self.after = nn.Identity() if after is None else after

    def forward(self, x: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
        x = self.before(x)
        *body, last = self.blocks
        for block in body:
            x = block(x)
        return self.after(last(x, shift))


class SkipUp(nn.Module):
    """A U-Net up stage: its output concatenated with the encoder's map of the same size."""

    def __init__(self, stage: Stage) -> None:
        super().__init__()
        self.stage = stage

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.stage(x), skip), dim=1)


class ChannelwiseFC(nn.Module):
    """Context Encoders' channel-wise fully connected layer.

    Each channel's HxW map goes through its own dense layer (HW -> HW): the
    receptive field becomes the whole image at a cost of C*(HW)^2 weights
    instead of (C*HW)^2, and channels are not mixed (a 1x1 conv after it does).
    """

    def __init__(self, channels: int, size: int) -> None:
        super().__init__()
        area = size * size
        bound = area**-0.5  # nn.Linear's default init range for fan-in `area`
        self.weight = nn.Parameter(torch.empty(channels, area, area).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(channels, area).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = torch.einsum("bci,cij->bcj", x.flatten(2), self.weight) + self.bias
        return mixed.view_as(x)


def widths(base: int, cap: int, count: int) -> list[int]:
    """Channels of `count` stages that double from `base`, capped at `cap`."""
    return [min(base * 2**i, cap) for i in range(count)]


def down_stage(in_channels: int, width: int, blocks: int, style: BlockStyle) -> Stage:
    """A stride-2 conv block, then `blocks - 1` stride-1 ones: halves the size."""
    first = ConvBlock(in_channels, width, style, stride=2)
    return Stage([first] + [ConvBlock(width, width, style) for _ in range(blocks - 1)])


def pooled_stage(in_channels: int, width: int, blocks: int, style: BlockStyle, pool: nn.Module) -> Stage:
    """`blocks` stride-1 conv blocks, then `pool` (seed 000's conv-conv-pool)."""
    first = ConvBlock(in_channels, width, style)
    return Stage([first] + [ConvBlock(width, width, style) for _ in range(blocks - 1)], after=pool)


def _resample(size: int | None) -> nn.Module | None:
    return nn.Upsample(size=size, mode="nearest") if size is not None else None


def up_stage(in_channels: int, width: int, blocks: int, style: BlockStyle, size: int | None) -> Stage:
    """Nearest ("repeat") upsampling to `size` (None: the caller resamples), then `blocks` conv blocks.

    Upsampling to a size, not by a factor, lets the last stage reach 36 pixels
    (context margin 2) and the autoencoder go from 1x1 to 4x4 in one step.
    """
    first = ConvBlock(in_channels, width, style)
    rest = [ConvBlock(width, width, style) for _ in range(blocks - 1)]
    return Stage([first] + rest, before=_resample(size))


def output_stage(
    in_channels: int, width: int, blocks: int, style: BlockStyle, size: int | None, out_channels: int = 3
) -> Stage:
    """Upsample to `size` (None: the caller resamples), `blocks - 1` conv blocks of `width`, then a raw conv to
    `out_channels` (RGB, or RGB twice for a generator with a realism residual)."""
    inner = [ConvBlock(in_channels if i == 0 else width, width, style) for i in range(blocks - 1)]
    last = ConvBlock(width if inner else in_channels, out_channels, style.raw())
    return Stage(inner + [last], before=_resample(size))


def tile_cat(x: torch.Tensor, vectors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate [B, n] vectors to a [B, C, H, W] map as constant channels.

    At a 1x1 code this is plain concatenation; at a 4x4 bottleneck every
    position sees the vector (as Reed et al. tile the text code in a GAN).
    """
    tiles = [v[:, :, None, None].expand(-1, -1, *x.shape[2:]) for v in vectors]
    return torch.cat([x, *tiles], dim=1)


class ContextualAttention(nn.Module):
    """DeepFill v1's contextual attention (Yu et al. 2018, sec. 4.1): copy features from the known region into the hole.

    Built for one hole ([H, W] bool, True inside; models.geometry.hole_mask). Forward: [B, C, H, W]
    -> the same map with every hole location replaced by copies of known-region features; the known
    locations come back untouched.

    - keys: the 3x3 feature patches centred on every location whose patch lies wholly outside the hole
      (zero padding past the map's edge included, as DeepFill's same-padded extraction);
    - queries: the 3x3 patches centred on the hole's locations (their features are the network's own
      guess there, the coarse fill in DeepFill);
    - attention: softmax over the keys of `scale` x the cosine similarity of query and key
      (scale 10, DeepFill's softmax_scale);
    - copy: each query's attention-weighted sum of the raw key patches, put back where the query's
      patch lies (F.fold: the transposed convolution with the patches as filters) and averaged over
      the overlapping copies each hole location gets (one from every hole location in its 3x3).

    Unlike DeepFill only hole locations query (known ones would be discarded), and it matches at
    the map's own resolution (no rate-2 downsampling) with no attention propagation ("fuse").
    Vectorised over the batch: two [B, Q, L] x [C*9] matrix products (Q hole locations, L keys).
    """

    def __init__(self, hole: torch.Tensor, scale: float = 10.0) -> None:
        super().__init__()
        if hole.dim() != 2 or hole.dtype != torch.bool:
            raise ValueError(f"hole: expected an [H, W] bool mask, got {hole.dtype} of shape {list(hole.shape)}")
        near_hole = nn.functional.max_pool2d(hole[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0
        if near_hole.all() or not hole.any():
            raise ValueError("hole: needs hole locations and at least one 3x3 patch wholly outside the hole")
        self.size = tuple(hole.shape)
        self.scale = scale
        self.register_buffer("hole", hole, persistent=False)
        self.register_buffer("queries", hole.flatten().nonzero().squeeze(1), persistent=False)
        self.register_buffer("keys", (~near_hole).flatten().nonzero().squeeze(1), persistent=False)
        # How many query patches cover each location: the copies a hole location averages.
        spread = torch.zeros(1, 9, hole.numel()).index_fill(2, self.queries, 1.0)
        self.register_buffer("copies", nn.functional.fold(spread, self.size, 3, padding=1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[2:]) != self.size:
            raise ValueError(f"x: this attention was built for {list(self.size)} maps, got {list(x.shape)}")
        patches = nn.functional.unfold(x, 3, padding=1)  # [B, C*9, H*W]
        keys = patches.index_select(2, self.keys)  # [B, C*9, L]
        queries = patches.index_select(2, self.queries)  # [B, C*9, Q]
        # DeepFill normalises with max(norm, 1e-4): a patch of zeros matches nothing.
        similarity = nn.functional.normalize(queries, dim=1, eps=1e-4).transpose(1, 2) @ nn.functional.normalize(
            keys, dim=1, eps=1e-4
        )
        attention = torch.softmax(self.scale * similarity, dim=2)  # [B, Q, L]
        pasted = keys @ attention.transpose(1, 2)  # [B, C*9, Q]
        spread = patches.new_zeros(patches.shape).index_copy(2, self.queries, pasted)
        copied = nn.functional.fold(spread, self.size, 3, padding=1) / self.copies.clamp_min(1.0)
        return torch.where(self.hole, copied, x)
