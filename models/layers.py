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

    Built for one hole ([H, W] bool, True inside, not touching the map's edge; models.geometry.hole_mask).
    Forward: [B, C, H, W] -> the same map with every hole location replaced by copies of known-region
    features; the known locations come back untouched.

    - keys: the 3x3 feature patches centred on every location whose patch lies wholly outside the hole
      (zero padding past the map's edge included, as DeepFill's same-padded extraction);
    - queries: the 3x3 patches centred on the hole's locations (their features are the network's own
      guess there, the coarse fill in DeepFill);
    - attention: softmax over the keys of `scale` x the cosine similarity of query and key
      (scale 10, DeepFill's softmax_scale);
    - copy: each query's attention-weighted sum of the raw key patches is pasted where the query's
      patch lies (DeepFill's transposed convolution with the patches as filters), and each hole
      location averages the copies it gets (one from every hole location in its 3x3).

    Unlike DeepFill only hole locations query (known ones would be discarded), and it matches at
    the map's own resolution (no rate-2 downsampling) with no attention propagation ("fuse").
    Vectorised over the batch: patches are gathered as rows of the channels-last map (index tables
    built here), then two [B, Q, L] x [9C] matrix products (Q hole locations, L keys).
    """

    def __init__(self, hole: torch.Tensor, scale: float = 10.0) -> None:
        super().__init__()
        if hole.dim() != 2 or hole.dtype != torch.bool:
            raise ValueError(f"hole: expected an [H, W] bool mask, got {hole.dtype} of shape {list(hole.shape)}")
        height, width = hole.shape
        near_hole = nn.functional.max_pool2d(hole[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0
        if not hole.any() or near_hole.all() or hole[[0, -1]].any() or hole[:, [0, -1]].any():
            raise ValueError("hole: needs hole locations, none on the map's edge, and a 3x3 patch wholly outside it")
        self.size = (height, width)
        self.scale = scale
        offsets = [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)]
        queries = [tuple(p) for p in hole.nonzero().tolist()]
        keys = [tuple(p) for p in (~near_hole).nonzero().tolist()]

        def padded(i: int, j: int) -> int:  # a location's row in the zero-padded, flattened, channels-last map
            return (i + 1) * (width + 2) + j + 1

        def patch_rows(centres: list[tuple[int, int]]) -> torch.Tensor:
            return torch.tensor([padded(i + di, j + dj) for i, j in centres for di, dj in offsets])

        # A hole location y gets slot o of the pasted patch centred at y - o, where that is a query;
        # rows past Q * 9 read a zero row.
        query_row = {q: n for n, q in enumerate(queries)}
        paste = [
            query_row[(i - di, j - dj)] * 9 + slot if (i - di, j - dj) in query_row else len(queries) * 9
            for i, j in queries for slot, (di, dj) in enumerate(offsets)
        ]
        counts = torch.tensor(paste).view(len(queries), 9).lt(len(queries) * 9).sum(1)
        self.register_buffer("hole", hole, persistent=False)
        self.register_buffer("query_index", torch.tensor([i * width + j for i, j in queries]), persistent=False)
        self.register_buffer("query_rows", patch_rows(queries), persistent=False)
        self.register_buffer("key_rows", patch_rows(keys), persistent=False)
        self.register_buffer("paste_rows", torch.tensor(paste), persistent=False)
        self.register_buffer("copies", counts.float()[None, :, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[2:]) != self.size:
            raise ValueError(f"x: this attention was built for {list(self.size)} maps, got {list(x.shape)}")
        batch, channels = x.shape[:2]
        rows = x.permute(0, 2, 3, 1)  # channels last: a location's features are one row
        padded = nn.functional.pad(rows, (0, 0, 1, 1, 1, 1)).reshape(batch, -1, channels)
        keys = padded.index_select(1, self.key_rows).view(batch, -1, 9 * channels)  # [B, L, 9C]
        queries = padded.index_select(1, self.query_rows).view(batch, -1, 9 * channels)  # [B, Q, 9C]
        # Cosine similarity; the patch norms come from the locations' squared norms (small tensors, a cheap
        # backward). DeepFill divides by max(norm, 1e-4): a patch of zeros matches nothing.
        squares = padded.square().sum(2)  # [B, (H + 2) * (W + 2)]
        key_norms = squares.index_select(1, self.key_rows).view(batch, -1, 9).sum(2).clamp_min(1e-8).sqrt()
        query_norms = squares.index_select(1, self.query_rows).view(batch, -1, 9).sum(2).clamp_min(1e-8).sqrt()
        similarity = (queries @ keys.transpose(1, 2)) / (query_norms[:, :, None] * key_norms[:, None, :])
        attention = torch.softmax(self.scale * similarity, dim=2)  # [B, Q, L]
        pasted = (attention @ keys).view(batch, -1, channels)  # [B, Q * 9, C]: each query's copied patch
        pasted = torch.cat([pasted, pasted.new_zeros(batch, 1, channels)], dim=1)
        copied = pasted.index_select(1, self.paste_rows).view(batch, -1, 9, channels).sum(2) / self.copies
        out = rows.reshape(batch, -1, channels).index_copy(1, self.query_index, copied)
        return out.view(batch, *self.size, channels).permute(0, 3, 1, 2)
