"""Typed options of the networks, with the defaults of the seed write-ups.

Each dataclass is frozen and checks its own values in ``__post_init__`` with a
``ValueError`` whose message starts with the field name; the experiment config
(`raysearch.config`) adds the section and the file to that message.
Combinations that span sections (a critic norm versus the objective, say) are
checked there, not here.
"""

from dataclasses import dataclass
from typing import Literal

from models.geometry import HOLE_SIZE

Norm = Literal["batch", "instance", "layer", "none"]
Activation = Literal["relu", "leaky_relu"]
OutputActivation = Literal["none", "tanh", "sigmoid", "clip"]
CaptionInjection = Literal["concat", "bias"]
InputFill = Literal["zeros", "mean", "harmonic"]


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class GeneratorOptions:
    """A generator: context (3x64x64) [+ caption code] [+ noise] -> center.

    name: `cnn` (seed 000), `autoencoder` (seed 001 baseline), `unet` (seed 001 final).
    blocks_per_stage: convolutions per resolution stage (seed 000's [2, 2, 2] is 2).
    stages: encoder stages; 0 picks the architecture's own (cnn 3, autoencoder 4, unet 4).
    code_size: dense code of `cnn`, and width of the 1x1 code of `autoencoder`.
    channelwise_fc: `autoencoder` only, Context Encoders' channel-wise dense bottleneck.
    noise_dim: length of a noise vector concatenated to the bottleneck (0 = none).
    noise_map: a map of Gaussian noise, one value per hole pixel, as one more input channel
        (zero outside the hole), as StyleGAN feeds noise per pixel: a bottleneck vector reaches
        the output only through the coarse decoder stages, so fine texture must otherwise be a
        fixed function of the context. The map travels at the end of the generator's noise
        vector, which is then `noise_length` = noise_dim + 32 * 32 long.
    context_margin: 0 predicts the 32x32 hole; 2 predicts 36x36 overlapping the border.
    caption_injection: how a caption code enters: concatenated to the bottleneck code,
        or added as a per-channel bias on the last encoder convolution.
    input_fill: what the hole holds when the context goes in: `zeros` (the seeds), the
        border's `mean` colour, or the `harmonic` (Laplace) fill of the border
        (models/fills.py). On real photos the harmonic fill alone beats the mean by ~2 dB.
    mask_channel: add a fourth input channel, 1 inside the hole and 0 outside, so the
        first convolutions can tell filled pixels from real ones.
    aligned_output: `unet` only. Seed 001's last stage stretches the decoder's map of the
        whole image over the hole, so an output pixel is computed from features of
        another place (the hole's top-left corner from the image's top-left); aligned,
        the last stage upsamples to the whole 64x64 frame and the center is cropped,
        so each pixel comes from the features (and skips) at its own place.
    full_res_width: `unet` with `aligned_output` only. 0 (the seeds) starts with a stride-2
        convolution, so no feature map is finer than 32x32 and the output is a 32x32 map
        upsampled. N > 0 adds a stride-1 stage of N channels at 64x64 before it, joined again
        at the end: the last convolutions see the border's pixels at their own resolution,
        where most of what a fill can gain lies (a true first ring of the hole alone is worth
        +0.67 dB over the harmonic fill on the BSDS500 crops). That end works on the hole and
        the few pixels around it its convolutions reach, not on the whole frame.
    residual: predict a correction to the input fill instead of the center itself: the
        raw output is added to the fill mapped back through the output activation
        (atanh for tanh), and the last convolution starts at zero, so an untrained
        generator returns the fill exactly.
    contextual_attention: `unet` only. 0 (the seeds) for none; 16 or 32 inserts DeepFill v1's
        contextual attention (models.layers.ContextualAttention) after the decoder stage that makes
        the map of that size: its hole locations get copies of known-region feature patches, which
        are concatenated to the map (the next stage takes twice the channels). 32 needs
        `aligned_output` (the seeds' decoder stops at 16x16 before stretching to the hole).
    realism_residual: a second raw output beside the first, a "realism residual": the generator
        returns l2_path + alpha * residual (alpha = the `alpha` argument or attribute, 1.0 by
        default), both raw; the residual's output convolution starts at zero. How the loop trains
        the two paths: models.generators.Generator.
    """

    name: str = "unet"
    kernel_size: int = 5
    base_width: int = 32
    max_width: int = 256
    blocks_per_stage: int = 1
    stages: int = 0
    norm: Norm = "batch"
    activation: Activation = "leaky_relu"
    up_activation: Activation = "relu"
    leaky_slope: float = 0.2
    output_activation: OutputActivation = "tanh"
    code_size: int = 500
    channelwise_fc: bool = False
    noise_dim: int = 0
    noise_map: bool = False
    context_margin: int = 0
    caption_injection: CaptionInjection = "concat"
    input_fill: InputFill = "zeros"
    mask_channel: bool = False
    aligned_output: bool = False
    full_res_width: int = 0
    residual: bool = False
    contextual_attention: int = 0
    realism_residual: bool = False

    def __post_init__(self) -> None:
        _require(self.kernel_size in (1, 3, 5, 7, 9), f"kernel_size: must be odd, 1 to 9, got {self.kernel_size}")
        _require(self.base_width >= 1, f"base_width: must be >= 1, got {self.base_width}")
        _require(self.max_width >= self.base_width, f"max_width: must be >= base_width ({self.base_width}), got {self.max_width}")
        _require(1 <= self.blocks_per_stage <= 4, f"blocks_per_stage: must be 1 to 4, got {self.blocks_per_stage}")
        _require(0 <= self.stages <= 5, f"stages: must be 0 (the architecture's own) to 5, got {self.stages}")
        _require(0.0 <= self.leaky_slope < 1.0, f"leaky_slope: must be in [0, 1), got {self.leaky_slope}")
        _require(self.code_size >= 1, f"code_size: must be >= 1, got {self.code_size}")
        _require(self.noise_dim >= 0, f"noise_dim: must be >= 0, got {self.noise_dim}")
        _require(self.context_margin in (0, 2), f"context_margin: must be 0 or 2, got {self.context_margin}")
        _require(0 <= self.full_res_width <= 256, f"full_res_width: must be 0 (none) to 256, got {self.full_res_width}")
        _require(
            self.contextual_attention in (0, 16, 32),
            f"contextual_attention: must be 0 (none), 16 or 32 (the decoder map it runs on), got {self.contextual_attention}",
        )

    @property
    def noise_length(self) -> int:
        """The length of the noise vector a generator takes per image: the bottleneck's, then the map's."""
        return self.noise_dim + (HOLE_SIZE * HOLE_SIZE if self.noise_map else 0)


@dataclass(frozen=True)
class CriticOptions:
    """A critic: image -> raw scores (no sigmoid; losses apply it).

    name: `conv` (the seeds: one score per image) or `patch` (a score per cell of a map, each
        cell seeing a patch of the whole image; models.critics.PatchCritic).
    input: `center` scores the generated (32 + 2m)-pixel square alone; `whole`
        scores the 64x64 context with the center pasted in (seed 000's variant).
    pooling: how each stage halves the resolution: strided convolution (seed 001),
        or a stride-1 convolution followed by max / average pooling (seed 000).
    depth: number of downsampling stages before the pooled linear head (`conv`) or the
        convolution that scores each cell (`patch`: kernel_size 5 and depth 2 give 29-px patches).
    """

    name: str = "conv"
    input: Literal["center", "whole"] = "whole"
    kernel_size: int = 5
    base_width: int = 32
    max_width: int = 256
    depth: int = 4
    norm: Literal["batch", "layer", "none", "spectral"] = "batch"
    pooling: Literal["strided", "max", "avg"] = "strided"
    activation: Activation = "leaky_relu"
    leaky_slope: float = 0.2

    def __post_init__(self) -> None:
        _require(self.kernel_size in (1, 3, 5, 7, 9), f"kernel_size: must be odd, 1 to 9, got {self.kernel_size}")
        _require(self.base_width >= 1, f"base_width: must be >= 1, got {self.base_width}")
        _require(self.max_width >= self.base_width, f"max_width: must be >= base_width ({self.base_width}), got {self.max_width}")
        _require(1 <= self.depth <= 5, f"depth: must be 1 to 5, got {self.depth}")
        _require(0.0 <= self.leaky_slope < 1.0, f"leaky_slope: must be in [0, 1), got {self.leaky_slope}")


@dataclass(frozen=True)
class CaptionOptions:
    """How captions condition the generator (seed 000).

    encoder: `none`, `bow` (dense layer over the averaged bag of words),
        `lstm` or `gru` (recurrent encoder over token ids, averaged over captions).
    num_captions: how many of each image's captions are used (1 or 5 in seed 000).
    code_size: length of the caption code handed to the generator (100 in seed 000).
    """

    encoder: str = "none"
    num_captions: int = 1
    code_size: int = 100
    embedding_dim: int = 64
    hidden_size: int = 128

    def __post_init__(self) -> None:
        _require(1 <= self.num_captions <= 5, f"num_captions: must be 1 to 5, got {self.num_captions}")
        _require(self.code_size >= 1, f"code_size: must be >= 1, got {self.code_size}")
        _require(self.embedding_dim >= 1, f"embedding_dim: must be >= 1, got {self.embedding_dim}")
        _require(self.hidden_size >= 1, f"hidden_size: must be >= 1, got {self.hidden_size}")

    @property
    def enabled(self) -> bool:
        return self.encoder != "none"
