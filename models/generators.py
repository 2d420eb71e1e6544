"""Generators: context (3x64x64) [+ caption code] [+ noise] -> raw center.

Three architectures from the seed write-ups, one class each:

- `cnn` (seed 000's best model): conv-conv-pool stages, a dense code, a dense
  layer back to a map, upsample-conv-conv stages, a raw output conv.
- `autoencoder` (seed 001's baseline): stride-2 convs down to a 1x1 code made
  by a valid conv (or Context Encoders' channel-wise dense layer at 4x4),
  upsample+conv back up.
- `unet` (seed 001's final WGAN generator): stride-2 convs down to 4x4, up
  again with each up stage concatenated with the encoder map of its size.

Every generator returns the RAW prediction; `activate_output` maps it to image
space. What goes in, the same in all three: the context with its hole filled
(`input_fill`: zeros as the seeds did, the border's mean, or the harmonic fill),
optionally with the hole's mask as a fourth channel (`mask_channel`); with
`residual` the raw prediction is a correction added to that fill. Layers are named after the seed tables: `encoder.conv1`...,
`decoder.deconv1`..., plus `code`/`dense` (cnn) and `bottleneck` (autoencoder).

Two recipes of current inpainting models (docs/quality.md), off by default:
- `contextual_attention` (unet): DeepFill v1's layer after a decoder stage, which
  copies known-region feature patches into the hole (models.layers.ContextualAttention);
- `realism_residual` (all three): the last convolution makes two raw RGB maps, an
  L2 path and a realism residual, mixed as l2 + alpha * residual (`Generator`).

Conditioning, the same in all three:
- noise, and a caption code injected by `concat`, are concatenated to the
  bottleneck: to the dense code (cnn), to the 1x1 code (autoencoder), or as
  constant channels tiled over the 4x4 bottleneck (unet, channel-wise
  autoencoder), which the first up stage's conv then mixes in;
- a caption code injected by `bias` goes through a Linear to the channels of
  the last encoder stage and is added to its last conv's output, after the norm;
- with `noise_map`, a 32x32 map of noise (the end of the noise vector) goes in
  as one more input channel, in the hole: texture can vary per pixel and per sample.
"""

from collections import OrderedDict
from collections.abc import Callable
from typing import ClassVar, get_args

import torch
import torch.nn.functional as F
from torch import nn

from models.fills import fill_hole
from models.geometry import HOLE_SIZE, HOLE_START, IMAGE_SIZE, crop_center, hole_mask, hole_slice, output_size
from models.layers import (
    BlockStyle,
    ChannelwiseFC,
    ContextualAttention,
    ConvBlock,
    SkipUp,
    Stage,
    check_choice,
    choose,
    down_stage,
    make_activation,
    output_stage,
    pooled_stage,
    tile_cat,
    up_stage,
    widths,
)
from models.options import Activation, CaptionInjection, GeneratorOptions, InputFill, Norm
from models.registry import GENERATORS


def _clip(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # Seed 000's custom activation: clamp, plus a penalty that pulls clamped
    # pixels back inside so the clamp does not saturate (its gradient is 0 there).
    clamped = raw.clamp(-1.0, 1.0)
    return clamped, F.mse_loss(raw, clamped)


# Images live in [-1, 1]: the sigmoid is rescaled to that range.
OUTPUT_ACTIVATIONS: dict[str, Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]] = {
    "none": lambda raw: (raw, None),
    "tanh": lambda raw: (torch.tanh(raw), None),
    "sigmoid": lambda raw: (2.0 * torch.sigmoid(raw) - 1.0, None),
    "clip": _clip,
}


# Where an activation saturates its inverse is infinite: fills are pulled this far
# inside [-1, 1] first (atanh(0.999) = 3.8, a pixel value error of 1e-3).
_INVERSE_MARGIN = 1e-3

# Each output activation's inverse: the raw value the activation maps to a given image.
OUTPUT_INVERSES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "none": lambda image: image,
    "tanh": lambda image: torch.atanh(image.clamp(-1 + _INVERSE_MARGIN, 1 - _INVERSE_MARGIN)),
    "sigmoid": lambda image: torch.logit((image + 1) / 2, eps=_INVERSE_MARGIN / 2),
    "clip": lambda image: image,
}


def activate_output(raw: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A generator's raw output in image space [-1, 1], and the `clip` penalty (else None).

    A free function rather than a method so the training loop can call it on
    the output of a DDP-wrapped generator.
    """
    return choose(OUTPUT_ACTIVATIONS, kind, "output_activation")(raw)


def mix_paths(l2_path: torch.Tensor, residual: torch.Tensor, alpha: float) -> torch.Tensor:
    """A realism-residual generator's raw output: l2_path + alpha * residual.

    alpha = 0 is the L2 path exactly, 1 the output trained to look real. The mix is taken on
    the raw values: linear in image space with output_activation none, close to it with tanh
    away from saturation. A free function so the loop can mix a DDP-wrapped generator's paths.
    """
    return l2_path + alpha * residual


def _check_vector(name: str, vector: torch.Tensor | None, size: int, batch: int) -> None:
    if size == 0 and vector is not None:
        raise ValueError(f"{name}: this generator was built without one (size 0) but got a tensor")
    if size > 0 and vector is None:
        raise ValueError(f"{name}: this generator was built for a [B, {size}] tensor and got None")
    if vector is not None and tuple(vector.shape) != (batch, size):
        raise ValueError(f"{name}: expected shape [{batch}, {size}], got {list(vector.shape)}")


class Generator(nn.Module):
    """What all generators share: option checks, conditioning, the encoder loop.

    A subclass builds `self.encoder` (a ModuleDict of stages `conv1`...) and
    implements `generate(context, extras, shift)`, where `extras` are the
    [B, n] vectors to concatenate at its bottleneck and `shift` the caption
    bias of its last encoder stage; its last convolution makes `out_channels`.

    With `realism_residual` that last convolution makes 6 channels: an L2 path
    (the first 3; with `residual` it is the one added to the input fill) and a
    realism residual (the last 3, starting at zero). `forward` returns
    l2_path + alpha * residual (raw, `mix_paths`), alpha from the call or the
    `alpha` attribute (1.0; set it to evaluate at another trade-off);
    `return_paths=True` returns (l2_path, residual) instead. How the loop trains it,
    with act = activate_output and real = the real center:

        l2_path, residual = generator(context, code, noise, return_paths=True)
        l2_image, full_image = act(l2_path), act(mix_paths(l2_path.detach(), residual, 1.0))
        L2 pretraining:  loss = reconstruction(l2_image, real)
        adversarial:     loss = reconstruction(l2_image, real)
                                + l2_weight * reconstruction(full_image, real)
                                + adv_weight * adversarial(critic(full_image))
                                + feature_matching_weight * feature_matching(critic features, real vs full_image)
        critic phase:    fakes are full_image (no gradient)

    The L2 path learns the reconstruction alone, at weight 1 whatever l2_weight is (the
    MMSE estimate, the blur L2 rewards): the full output's losses reach the shared trunk
    through the residual only, never the L2 head. The full output gets the losses a
    generator without the option gets (its L2 path held fixed in them). Validation
    at alpha in [0, 1] then traces the distortion/realism trade-off of one network
    (Blau and Michaeli 2018; Freirich et al. 2021 show that the optimal estimators along
    it interpolate between the MMSE and the perfect-realism ones).
    """

    default_stages: ClassVar[int]
    has_channelwise_fc: ClassVar[bool] = False
    has_aligned_output: ClassVar[bool] = False
    encoder: nn.ModuleDict

    def __init__(self, opts: GeneratorOptions, caption_dim: int = 0) -> None:
        super().__init__()
        if opts.channelwise_fc and not self.has_channelwise_fc:
            raise ValueError(f"channelwise_fc: only the autoencoder generator has one, not {opts.name!r}")
        if opts.aligned_output and not self.has_aligned_output:
            raise ValueError(f"aligned_output: only the unet generator has one, not {opts.name!r}")
        if caption_dim < 0:
            raise ValueError(f"caption_dim: must be >= 0, got {caption_dim}")
        # The layer tables hold more kinds than a generator takes (spectral norm,
        # no activation): the options' own Literals say which are allowed.
        check_choice(opts.norm, get_args(Norm), "norm")
        check_choice(opts.activation, get_args(Activation), "activation")
        check_choice(opts.up_activation, get_args(Activation), "up_activation")
        check_choice(opts.output_activation, OUTPUT_ACTIVATIONS, "output_activation")
        check_choice(opts.caption_injection, get_args(CaptionInjection), "caption_injection")
        self.stages = opts.stages or self.default_stages
        if self.stages < 2:
            # Every decoder upsamples from the encoder's last map, which must be below 32x32.
            raise ValueError(f"stages: the {opts.name!r} generator needs at least 2, got {self.stages}")
        check_choice(opts.input_fill, get_args(InputFill), "input_fill")
        sizes = self.attention_sizes(opts)
        if opts.contextual_attention and not sizes:
            raise ValueError(f"contextual_attention: only the unet generator has one, not {opts.name!r}")
        if opts.contextual_attention not in (0, *sizes):
            raise ValueError(f"contextual_attention: this unet's decoder makes {', '.join(map(str, sizes))}-px maps, "
                             f"not {opts.contextual_attention} (32 needs aligned_output)")
        self.options = opts
        self.in_channels = 3 + int(opts.mask_channel) + int(opts.noise_map)
        # The hole's mask (an input channel with `mask_channel`): built once, moved with the module,
        # not saved in checkpoints.
        mask = torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE)
        mask[..., hole_slice(0), hole_slice(0)] = 1.0
        self.register_buffer("hole_mask", mask, persistent=False)
        self.noise_dim = opts.noise_dim
        self.caption_dim = caption_dim
        self.output_size = output_size(opts.context_margin)
        self.widths = widths(opts.base_width, opts.max_width, self.stages)
        self.sizes = [IMAGE_SIZE >> (i + 1) for i in range(self.stages)]  # each encoder stage's output
        self.down = BlockStyle(opts.kernel_size, opts.norm, opts.activation, opts.leaky_slope)
        self.up = BlockStyle(opts.kernel_size, opts.norm, opts.up_activation, opts.leaky_slope)
        bias = caption_dim > 0 and opts.caption_injection == "bias"
        self.concat_caption = caption_dim > 0 and not bias
        self.extra_dim = (caption_dim if self.concat_caption else 0) + opts.noise_dim
        self.caption_bias = nn.Linear(caption_dim, self.widths[-1]) if bias else None
        self.out_channels = 6 if opts.realism_residual else 3
        # The realism trade-off the plain call uses (realism_residual only): 0 = the L2 path.
        self.alpha = 1.0

    def forward(
        self,
        context: torch.Tensor,
        caption_code: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        *,
        alpha: float | None = None,
        return_paths: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """[B, 3, 64, 64] context -> [B, 3, S, S] raw center, S = 32 + 2 * context_margin.

        With `realism_residual`: l2_path + alpha * residual (alpha None: `self.alpha`), or
        with `return_paths` the pair (l2_path, residual). Without it both are refused.
        """
        if not self.options.realism_residual and (alpha is not None or return_paths):
            raise ValueError("alpha, return_paths: this generator has no realism residual (realism_residual: false)")
        if context.dim() != 4 or tuple(context.shape[1:]) != (3, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"context: expected shape [B, 3, {IMAGE_SIZE}, {IMAGE_SIZE}], got {list(context.shape)}")
        batch, noise_length = context.shape[0], self.options.noise_length
        if noise_length > 0 and noise is None:
            noise = torch.randn(batch, noise_length, device=context.device, dtype=context.dtype)
        _check_vector("noise", noise, noise_length, batch)
        _check_vector("caption_code", caption_code, self.caption_dim, batch)
        vector = noise[:, : self.noise_dim] if self.noise_dim else None
        extras = [v for v in (caption_code if self.concat_caption else None, vector) if v is not None]
        shift = self.caption_bias(caption_code) if self.caption_bias is not None else None
        filled = fill_hole(context, self.options.input_fill)
        raw = self.generate(self.network_input(filled, noise), extras, shift)
        raw, realism = raw[:, :3], raw[:, 3:]
        if self.options.residual:
            raw = raw + OUTPUT_INVERSES[self.options.output_activation](crop_center(filled, self.options.context_margin))
        if not self.options.realism_residual:
            return raw
        if return_paths:
            return raw, realism
        return mix_paths(raw, realism, self.alpha if alpha is None else alpha)

    def network_input(self, filled: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """The filled context, then the hole's mask (`mask_channel`), then the noise map (`noise_map`:
        the last HOLE_SIZE**2 values of `noise`, placed in the hole, zero outside)."""
        channels = [filled]
        if self.options.mask_channel:
            channels.append(self.hole_mask.to(filled.dtype).expand(filled.shape[0], -1, -1, -1))
        if self.options.noise_map:
            noise_map = filled.new_zeros(filled.shape[0], 1, IMAGE_SIZE, IMAGE_SIZE)
            hole = hole_slice(0)
            noise_map[..., hole, hole] = noise[:, self.noise_dim :].reshape(-1, 1, HOLE_SIZE, HOLE_SIZE)
            channels.append(noise_map)
        return torch.cat(channels, dim=1) if len(channels) > 1 else filled

    def start_output(self, output: ConvBlock) -> None:
        """Initialise the last convolution: zero with `residual` (an untrained generator then returns its
        input fill), and zero on the realism residual's channels (its output then starts at the L2 path)."""
        zeroed = slice(0, None) if self.options.residual else slice(3, None)
        with torch.no_grad():
            output.conv.weight[zeroed] = 0.0
            if output.conv.bias is not None:
                output.conv.bias[zeroed] = 0.0

    @classmethod
    def attention_sizes(cls, opts: GeneratorOptions) -> tuple[int, ...]:
        """The decoder map sizes `contextual_attention` can run at (none but the unet's)."""
        return ()

    def generate(self, context: torch.Tensor, extras: list[torch.Tensor], shift: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, context: torch.Tensor, shift: torch.Tensor | None) -> list[torch.Tensor]:
        """The output of every encoder stage; `shift` goes to the last one."""
        *body, last = self.encoder.values()
        features = []
        x = context
        for stage in body:
            x = stage(x)
            features.append(x)
        features.append(last(x, shift))
        return features


def _activation(style: BlockStyle) -> nn.Module:
    return make_activation(style.activation, style.slope)


def _strided_encoder(gen: Generator, channels: int) -> OrderedDict[str, Stage]:
    """Stride-2 stages `conv1`... from a map of `channels` to the generator's widths."""
    opts = gen.options
    stages = OrderedDict()
    for i, width in enumerate(gen.widths):
        stages[f"conv{i + 1}"] = down_stage(channels, width, opts.blocks_per_stage, gen.down)
        channels = width
    return stages


@GENERATORS.register("cnn")
class DenseCodeCNN(Generator):
    """Seed 000: [conv -> norm -> act] x blocks + 2x2 max-pool per stage, a dense
    code (`code_size`, 500), a dense layer back to the last map, upsample + conv
    blocks per stage up to 32x32 (36x36), a raw conv to RGB (`decoder.output`).
    """

    default_stages = 3

    def __init__(self, opts: GeneratorOptions, caption_dim: int = 0) -> None:
        super().__init__(opts, caption_dim)
        stages, channels = OrderedDict(), self.in_channels
        for i, width in enumerate(self.widths):
            stages[f"conv{i + 1}"] = pooled_stage(channels, width, opts.blocks_per_stage, self.down, nn.MaxPool2d(2))
            channels = width
        self.encoder = nn.ModuleDict(stages)
        last = (self.widths[-1], self.sizes[-1], self.sizes[-1])
        units = last[0] * last[1] * last[2]
        # Dense layers carry no norm: seed 000 normalises its convolutions only.
        self.code = nn.Sequential(nn.Flatten(), nn.Linear(units, opts.code_size), _activation(self.down))
        self.dense = nn.Sequential(
            nn.Linear(opts.code_size + self.extra_dim, units), _activation(self.up), nn.Unflatten(1, last)
        )
        decoder = OrderedDict()
        for j in range(1, self.stages):
            target = self.stages - 1 - j  # the encoder stage whose size this stage restores
            size = self.sizes[target] if j < self.stages - 1 else self.output_size
            decoder[f"deconv{j}"] = up_stage(channels, self.widths[target], opts.blocks_per_stage, self.up, size)
            channels = self.widths[target]
        decoder["output"] = ConvBlock(channels, self.out_channels, self.up.raw())
        self.decoder = nn.Sequential(decoder)
        self.start_output(self.decoder.output)

    def generate(self, context: torch.Tensor, extras: list[torch.Tensor], shift: torch.Tensor | None) -> torch.Tensor:
        code = self.code(self.encode(context, shift)[-1])
        return self.decoder(self.dense(torch.cat([code, *extras], dim=1)))


@GENERATORS.register("autoencoder")
class ConvAutoencoder(Generator):
    """Seed 001's baseline: stride-2 conv stages (64, 128, 256, 512 at 32..4
    pixels for base 64), a valid conv as wide as the last map (4x4) down to a
    `code_size` x 1 x 1 code (`bottleneck`; the seed table's 512 is
    `code_size=512`), then upsample + conv stages (`deconv1` goes 1x1 -> 4x4 at
    once) and a raw conv to RGB in the last one.

    With `channelwise_fc` the bottleneck is instead Context Encoders'
    channel-wise dense layer + a 1x1 conv on the last map (`code_size` then
    does not apply), and the decoder starts from that map.
    """

    default_stages = 4
    has_channelwise_fc = True

    def __init__(self, opts: GeneratorOptions, caption_dim: int = 0) -> None:
        super().__init__(opts, caption_dim)
        self.encoder = nn.ModuleDict(_strided_encoder(self, self.in_channels))
        width, size = self.widths[-1], self.sizes[-1]
        if opts.channelwise_fc:
            self.bottleneck = nn.Sequential(
                OrderedDict(fc=ChannelwiseFC(width, size), mix=ConvBlock(width, width, self.down, kernel_size=1))
            )
            channels = width
        else:
            # No norm on the code: instance norm would zero a 1x1 map, and batch
            # norm there would depend on the batch size (the dense code of `cnn`
            # has none either).
            code_style = BlockStyle(opts.kernel_size, "none", opts.activation, opts.leaky_slope)
            self.bottleneck = ConvBlock(width, opts.code_size, code_style, kernel_size=size, padding=0)
            channels = opts.code_size
        channels += self.extra_dim
        decoder = OrderedDict()
        for j in range(1, self.stages):
            target = self.stages - 1 - j
            decoder[f"deconv{j}"] = up_stage(
                channels, self.widths[target], opts.blocks_per_stage, self.up, self.sizes[target + 1]
            )
            channels = self.widths[target]
        decoder[f"deconv{self.stages}"] = output_stage(
            channels, self.widths[0], opts.blocks_per_stage, self.up, self.output_size, self.out_channels
        )
        self.decoder = nn.Sequential(decoder)
        self.start_output(decoder[f"deconv{self.stages}"].blocks[-1])

    def generate(self, context: torch.Tensor, extras: list[torch.Tensor], shift: torch.Tensor | None) -> torch.Tensor:
        code = self.bottleneck(self.encode(context, shift)[-1])
        return self.decoder(tile_cat(code, extras))


@GENERATORS.register("unet")
class UNet(Generator):
    """Seed 001's final generator: stride-2 conv stages down to 4x4 (32, 64,
    128, 256 channels for base 32), then upsample + conv stages, each
    concatenated with the encoder map of its size (`deconv1` -> (128+128)x8x8,
    `deconv2` -> (64+64)x16x16), and a last one to raw RGB at 32x32 (36x36).
    With `aligned_output` the decoder goes on to 32x32 joined with `encoder.conv1`, the
    last stage to 64x64, and the center is cropped.

    With `full_res_width` N, a stride-1 stage `encoder.conv0` of N channels at 64x64
    comes first; the decoder goes up to 64x64 (`deconv{stages}`, joined with
    `encoder.conv0`) and `decoder.output` ends in the raw conv. The 64x64 end
    works on the output square plus what its convolutions reach (`full_res_reach`),
    not the whole frame: the corners cannot change the hole there.

    With `contextual_attention` S, `attention` (models.layers.ContextualAttention) runs
    on the output of the decoder stage that makes the SxS map (after its skip join) and
    its result is concatenated to that map: the next stage sees the network's own
    features and, in the hole, the copies of known-region patches beside them.
    """

    default_stages = 4
    has_aligned_output = True

    @classmethod
    def attention_sizes(cls, opts: GeneratorOptions) -> tuple[int, ...]:
        """The sizes of the maps the skip-joined decoder stages make, deepest first."""
        stages = opts.stages or cls.default_stages
        joins = range(1, stages if opts.aligned_output else stages - 1)
        return tuple(IMAGE_SIZE >> (stages - j) for j in joins)

    def __init__(self, opts: GeneratorOptions, caption_dim: int = 0) -> None:
        super().__init__(opts, caption_dim)
        top = opts.full_res_width
        if top and not opts.aligned_output:
            raise ValueError("full_res_width: needs aligned_output (the decoder must reach 64x64 to join it)")
        encoder = OrderedDict(conv0=Stage([ConvBlock(self.in_channels, top, self.down)])) if top else OrderedDict()
        encoder.update(_strided_encoder(self, top or self.in_channels))
        self.encoder = nn.ModuleDict(encoder)
        channels = self.widths[-1] + self.extra_dim
        decoder = OrderedDict()
        # The index of the join whose output the attention reads (None: no attention).
        self.attention_after = None
        self.attention = None
        # Aligned, the decoder also joins the first encoder map (32x32) before the 64x64 output.
        for j in range(1, self.stages if opts.aligned_output else self.stages - 1):
            target = self.stages - 1 - j  # the encoder stage this one is concatenated with
            stage = up_stage(channels, self.widths[target], opts.blocks_per_stage, self.up, self.sizes[target])
            decoder[f"deconv{j}"] = SkipUp(stage)
            channels = 2 * self.widths[target]
            if self.sizes[target] == opts.contextual_attention:
                self.attention_after = j - 1
                self.attention = ContextualAttention(hole_mask(self.sizes[target]))
                channels *= 2
        if top:
            # Upsampled and cropped in `generate`, so neither stage resamples on its own.
            decoder[f"deconv{self.stages}"] = SkipUp(up_stage(channels, top, opts.blocks_per_stage, self.up, None))
            decoder["output"] = output_stage(2 * top, top, opts.blocks_per_stage + 1, self.up, None, self.out_channels)
            last = "output"
        else:
            last = f"deconv{len(decoder) + 1}"
            decoder[last] = output_stage(
                channels, self.widths[0], opts.blocks_per_stage, self.up,
                IMAGE_SIZE if opts.aligned_output else self.output_size, self.out_channels,
            )
        self.decoder = nn.ModuleDict(decoder)
        self.start_output(decoder[last].blocks[-1])

    def full_res_reach(self) -> int:
        """Pixels beyond the output square that the 64x64 end's convolutions read (zero-padded past them)."""
        convolutions = 2 * self.options.blocks_per_stage + 1
        return convolutions * (self.options.kernel_size // 2)

    def generate(self, context: torch.Tensor, extras: list[torch.Tensor], shift: torch.Tensor | None) -> torch.Tensor:
        features = self.encode(context, shift)
        margin = self.options.context_margin
        full_res = features.pop(0) if self.options.full_res_width else None
        x = tile_cat(features[-1], extras)
        *joins, final = self.decoder.values()
        if full_res is not None:
            *joins, top = joins
        # Encoder maps from the second deepest up; zip stops at the last skip stage.
        for index, (join, skip) in enumerate(zip(joins, reversed(features[:-1]))):
            x = join(x, skip)
            if index == self.attention_after:
                x = torch.cat([x, self.attention(x)], dim=1)
        if full_res is None:
            x = final(x)
            return crop_center(x, margin) if self.options.aligned_output else x
        # A reach past the image's edge is the whole frame, where the zero padding is the image's own.
        reach = min(margin + self.full_res_reach(), HOLE_START)
        x = crop_center(F.interpolate(x, size=IMAGE_SIZE, mode="nearest"), reach)
        x = final(top(x, crop_center(full_res, reach)))
        border = reach - margin  # what the zero padding at the crop's edge touched
        return x[..., border:-border, border:-border] if border else x
