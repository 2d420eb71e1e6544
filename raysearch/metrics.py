"""Image-quality metrics for inpainting: mse, psnr, ssim, seam, swd, swd_band.

Why these and not just L2: the L2 distance to the one true center is minimised
by the *average* of all plausible centers, i.e. a blur, so a search that
optimises `val/mse` (or `val/psnr`) selects blurry generators. The other metrics
look at what L2 cannot see:

- `ssim` (Wang et al. 2004) compares local means, contrasts and structure;
- `swd`, the sliced Wasserstein distance between distributions of 7x7 patches of
  a Laplacian pyramid (Karras et al. 2018), measures how realistic the local
  texture is at each scale, without pairing fake and real images;
- `swd_band` is the same distance with both patch sets standardised by the *real* set's
  statistics: `swd` standardises each set by its own mean and std (as the reference does), which
  normalises away how much detail each pyramid band holds, so a smooth fill whose few remaining
  gradients have the right *shape* scores as realistic as a textured one (Telea's smear scored best
  of all fills on real photos, docs/quality.md). `swd_band` keeps the band energy: a fill with too little
  (blur) or too much (noise) detail at a scale is far from the real set at that scale;
- `seam` measures how much larger the intensity jump across the hole border is
  in the composite than in the real image: a fill that does not continue its
  context shows a visible frame.

GAN searches should therefore optimise a realism-aware objective, e.g.
`val/swd` (mode "min") or a combination with a fidelity term, not `val/mse`.
No metric here needs pretrained weights (the machines have no internet).

All functions take NCHW float tensors with intensities in [0, 1], run on
whichever device the tensors are on and return a 0-d tensor (mean over the
batch). Metrics are registered by name (`list_metrics`, `get_metric`) and
`compute_all` evaluates every registered one for the training loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F

from models.geometry import HOLE_SIZE, IMAGE_SIZE, hole_of, hole_slice, paste_center
from raysearch.errors import ConfigError

# The 64x64 / 32x32 geometry is models/geometry.py's (importing it also fills the
# network registries: about 60 ms, once).
HOLE = hole_slice(0)

PSNR_MSE_FLOOR = 1e-10  # identical images give 10 * log10(1 / 1e-10) = 100 dB

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2  # (K1 * L)^2 with data range L = 1
SSIM_C2 = 0.03**2  # (K2 * L)^2

SWD_MIN_RESOLUTION = 16  # the reference keeps pyramid levels down to 16x16
SWD_STANDARDISE = ("own", "real")  # each patch set by its own statistics (Karras et al.), or both by the real set's
_STD_FLOOR = 1e-6  # below this a descriptor channel is constant: do not rescale it

MetricFn = Callable[..., torch.Tensor]
Direction = Literal["min", "max"]


@dataclass(frozen=True)
class Metric:
    """A registered metric and every fact the rest of raysearch derives from it: the one place to add one."""

    name: str
    fn: MetricFn
    direction: Direction  # which way is better: what a space's mode must be, what a scheduler ranks by
    diverged: float  # the worst value it takes on images in [0, 1]: what a diverged trial reports, ranked last
    whole: bool  # takes 64x64 composites instead of 32x32 centers
    seeded: bool  # takes a `seed` keyword


_METRICS: dict[str, Metric] = {}


def register_metric(name: str, *, direction: Direction, diverged: float, whole: bool = False,
                    seeded: bool = False) -> Callable[[MetricFn], MetricFn]:
    """Register `fn(fake, real[, seed=...]) -> Tensor` under `name`, with its direction and diverged value.

    `whole=True` metrics get 64x64 composites, the others the 32x32 centers.
    """
    if direction not in ("min", "max"):
        raise ValueError(f"metric {name!r}: direction must be 'min' or 'max', got {direction!r}")
    if not math.isfinite(diverged):
        raise ValueError(f"metric {name!r}: its diverged value must be finite (searchers cannot rank NaN or inf)")

    def add(fn: MetricFn) -> MetricFn:
        if name in _METRICS:
            raise ValueError(f"metric {name!r} is already registered")
        _METRICS[name] = Metric(name, fn, direction, float(diverged), whole, seeded)
        return fn

    return add


def list_metrics() -> list[str]:
    """Names of the registered metrics, in the order `compute_all` reports them."""
    return list(_METRICS)


def metric_info(name: str) -> Metric:
    """The metric registered under `name` with its facts; ConfigError naming the registered ones."""
    if name not in _METRICS:
        raise ConfigError(f"unknown metric {name!r}; allowed: {', '.join(_METRICS)}")
    return _METRICS[name]


def get_metric(name: str) -> MetricFn:
    """The metric function registered under `name`."""
    return metric_info(name).fn


# ----------------------------------------------------------------------------- helpers


def _pair(fake: torch.Tensor, real: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Check two NCHW batches have the same shape; compute in at least float32."""
    if fake.dim() != 4 or fake.shape != real.shape:
        raise ValueError(
            f"{what}: expected two NCHW batches of the same shape, got {tuple(fake.shape)} and {tuple(real.shape)}"
        )
    dtype = torch.promote_types(torch.promote_types(fake.dtype, real.dtype), torch.float32)
    return fake.to(dtype), real.to(dtype)


def _per_image_mse(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    return (fake - real).square().flatten(1).mean(dim=1)


# ----------------------------------------------------------------------------- fidelity


@register_metric("mse", direction="min", diverged=1.0)
def mse(fake_center: torch.Tensor, real_center: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all pixels, channels and images."""
    fake, real = _pair(fake_center, real_center, "mse")
    return (fake - real).square().mean()


@register_metric("psnr", direction="max", diverged=0.0)
def psnr(fake_center: torch.Tensor, real_center: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, peak 1.0, averaged per image.

    Each image gets 10 * log10(1 / mse_i) with mse_i clamped at 1e-10 (so an
    exact reconstruction scores a finite 100 dB); the result is the mean of the
    per-image values, not the PSNR of the pooled MSE.
    """
    fake, real = _pair(fake_center, real_center, "psnr")
    per_image = _per_image_mse(fake, real).clamp_min(PSNR_MSE_FLOOR)
    return (-10.0 * torch.log10(per_image)).mean()


def _gaussian_window(size: int, sigma: float, channels: int, like: torch.Tensor) -> torch.Tensor:
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-coords.square() / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g).expand(channels, 1, size, size).contiguous()


@register_metric("ssim", direction="max", diverged=-1.0)
def ssim(fake_center: torch.Tensor, real_center: torch.Tensor) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004), data range 1, averaged.

    11x11 Gaussian window (sigma 1.5), C1 = 0.01^2, C2 = 0.03^2, population
    (co)variances; each channel separately (depthwise convolution), valid
    positions only (no padding), then the mean over positions, channels and
    images. 1 for identical images; symmetric in its arguments.
    """
    x, y = _pair(fake_center, real_center, "ssim")
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"ssim: images must be at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(x.shape[-2:])}")
    channels = x.shape[1]
    window = _gaussian_window(SSIM_WINDOW, SSIM_SIGMA, channels, x)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    # (Co)variances ignore constant shifts: take them of mean-free images, so that
    # E[x^2] - E[x]^2 does not cancel catastrophically in float32 on flat regions.
    xc = x - x.mean(dim=(2, 3), keepdim=True)
    yc = y - y.mean(dim=(2, 3), keepdim=True)
    mu_xc, mu_yc = blur(xc), blur(yc)
    var_x = blur(xc * xc) - mu_xc.square()
    var_y = blur(yc * yc) - mu_yc.square()
    cov = blur(xc * yc) - mu_xc * mu_yc
    numerator = (2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)
    denominator = (mu_x.square() + mu_y.square() + SSIM_C1) * (var_x + var_y + SSIM_C2)
    return (numerator / denominator).mean()


# ----------------------------------------------------------------------------- border


def _border_jump(images: torch.Tensor) -> torch.Tensor:
    """Per image: mean |inside - outside| over the 4 x 32 pixel pairs across the hole border."""
    lo, hi = HOLE.start, HOLE.stop  # first row/column inside, first one outside after it
    top = images[..., lo, HOLE] - images[..., lo - 1, HOLE]
    bottom = images[..., hi - 1, HOLE] - images[..., hi, HOLE]
    left = images[..., HOLE, lo] - images[..., HOLE, lo - 1]
    right = images[..., HOLE, hi - 1] - images[..., HOLE, hi]
    jumps = torch.cat([top, bottom, left, right], dim=-1)  # (N, C, 4 * 32)
    return jumps.abs().flatten(1).mean(dim=1)


@register_metric("seam", direction="min", diverged=1.0, whole=True)
def seam(fake_whole: torch.Tensor, real_whole: torch.Tensor) -> torch.Tensor:
    """Excess intensity jump across the hole border of 64x64 composites.

    The jump of an image is the mean absolute difference between each pixel
    just inside the 32x32 hole and its neighbour just outside (rows 15|16 and
    47|48 over columns 16..47, columns 15|16 and 47|48 over rows 16..47, all
    channels). Returned: jump(fake) - jump(real), averaged over the batch.
    Signed: 0 for the real image itself, positive when the fill shows a seam,
    slightly negative when the fill is smoother across the border than reality.
    """
    fake, real = _pair(fake_whole, real_whole, "seam")
    if fake.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"seam: expected {IMAGE_SIZE}x{IMAGE_SIZE} composites, got {tuple(fake.shape[-2:])}")
    return (_border_jump(fake) - _border_jump(real)).mean()


# ----------------------------------------------------------------------------- sliced Wasserstein


# The 5-tap binomial kernel of cv2.pyrDown/pyrUp, applied separably.
_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)


def _binomial_blur(images: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Separable [1,4,6,4,1]/16 blur with mirror (reflect) borders, scaled by gain."""
    channels = images.shape[1]
    k = torch.tensor(_BINOMIAL, dtype=images.dtype, device=images.device) / 16 * math.sqrt(gain)
    rows = k.view(1, 1, 5, 1).expand(channels, 1, 5, 1)
    cols = k.view(1, 1, 1, 5).expand(channels, 1, 1, 5)
    padded = F.pad(images, (2, 2, 2, 2), mode="reflect")
    return F.conv2d(F.conv2d(padded, rows, groups=channels), cols, groups=channels)


def _pyr_down(images: torch.Tensor) -> torch.Tensor:
    return _binomial_blur(images)[..., ::2, ::2]


def _pyr_up(images: torch.Tensor) -> torch.Tensor:
    n, c, h, w = images.shape
    spread = images.new_zeros(n, c, 2 * h, 2 * w)
    spread[..., ::2, ::2] = images
    return _binomial_blur(spread, gain=4.0)


def laplacian_pyramid(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Laplacian pyramid as in Karras et al.'s reference (cv2.pyrDown/pyrUp semantics).

    Level i (side size / 2^i) is the Gaussian level minus the upsampled next
    one; the last level is the low-pass image itself.
    """
    gaussian = [images]
    for _ in range(1, levels):
        gaussian.append(_pyr_down(gaussian[-1]))
    return [g - _pyr_up(nxt) for g, nxt in zip(gaussian, gaussian[1:])] + [gaussian[-1]]


def collapse_laplacian_pyramid(pyramid: list[torch.Tensor]) -> torch.Tensor:
    """The image a `laplacian_pyramid` was taken of: each level plus the upsampled coarser image."""
    image = pyramid[-1]
    for level in reversed(pyramid[:-1]):
        image = level + _pyr_up(image)
    return image


def _swd_levels(size: int, patch: int, levels: int | None) -> int:
    if levels is None:
        levels = 1
        while size >> levels >= SWD_MIN_RESOLUTION:
            levels += 1
    if levels < 1 or size % (1 << (levels - 1)) or size >> (levels - 1) < max(patch, 3):
        raise ValueError(
            f"sliced_wasserstein: cannot take {levels} pyramid levels with {patch}x{patch} patches "
            f"of {size}x{size} images (the side must halve exactly and stay >= the patch)"
        )
    return levels


def _standardise(desc: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-channel standardisation with `like`'s mean and std, then flatten (reference `finalize_descriptors`
    when `like` is `desc` itself)."""
    mean = like.mean(dim=(0, 2, 3), keepdim=True)
    std = (like - mean).std(dim=(0, 2, 3), keepdim=True, correction=0)
    # A constant channel (e.g. a flat fill's Laplacian) would divide 0 by 0.
    return ((desc - mean) / torch.where(std > _STD_FLOOR, std, torch.ones_like(std))).flatten(1)


@torch.no_grad()
def sliced_wasserstein_per_level(
    fake: torch.Tensor,
    real: torch.Tensor,
    *,
    seed: int = 0,
    levels: int | None = None,
    patch: int = 7,
    patches_per_image: int = 64,
    projections: int = 128,
    repeats: int = 4,
    standardise: str = "own",
) -> list[torch.Tensor]:
    """SWD x 1e3 per Laplacian-pyramid level, finest first (Karras et al. 2018).

    `levels=None` keeps levels down to 16x16 as the reference does: 32 and 16
    for 32x32 centers, 64, 32 and 16 for whole images. At every level the same
    `patches_per_image` random patch positions (seeded) are taken from the fake
    and the real images, each set of patch descriptors is standardised per
    channel with its own mean and std (`standardise="own"`, as the reference
    does, so a global colour or contrast shift is left to mse/ssim) or both with
    the real set's (`"real"`: the band energy stays in), and for each of `repeats`
    draws of `projections` random unit directions (seeded) the sorted
    projections are compared: mean absolute difference, averaged over repeats.
    The batches must have the same shape; the same seed gives the same value.
    """
    fake, real = _pair(fake, real, "sliced_wasserstein")
    if standardise not in SWD_STANDARDISE:
        raise ValueError(f"sliced_wasserstein: standardise must be one of {SWD_STANDARDISE}, got {standardise!r}")
    n, _, height, width = fake.shape
    if height != width:
        raise ValueError(f"sliced_wasserstein: expected square images, got {height}x{width}")
    levels = _swd_levels(height, patch, levels)
    # Draw on the CPU so a seed gives the same patches and directions on any device.
    rng = torch.Generator().manual_seed(seed)
    offsets = torch.arange(patch)
    results = []
    for fake_level, real_level in zip(laplacian_pyramid(fake, levels), laplacian_pyramid(real, levels)):
        side = fake_level.shape[-1]
        count = n * patches_per_image
        image = torch.arange(n).repeat_interleave(patches_per_image)
        top = torch.randint(0, side - patch + 1, (count,), generator=rng)
        left = torch.randint(0, side - patch + 1, (count,), generator=rng)
        index = (
            image.view(-1, 1, 1).to(fake.device),
            (top.view(-1, 1, 1) + offsets.view(1, -1, 1)).to(fake.device),
            (left.view(-1, 1, 1) + offsets.view(1, 1, -1)).to(fake.device),
        )

        def patches(level: torch.Tensor) -> torch.Tensor:
            # (count, patch, patch, C) -> (count, C, patch, patch), the reference's layout
            return level.permute(0, 2, 3, 1)[index].permute(0, 3, 1, 2)

        raw_fake, raw_real = patches(fake_level), patches(real_level)
        desc_real = _standardise(raw_real, raw_real)
        desc_fake = _standardise(raw_fake, raw_fake if standardise == "own" else raw_real)
        distance = fake.new_zeros(())
        for _ in range(repeats):
            directions = torch.randn(desc_fake.shape[1], projections, generator=rng, dtype=fake.dtype)
            directions = (directions / directions.norm(dim=0, keepdim=True)).to(fake.device)
            # (projections, count): sorting along the contiguous last dimension is faster
            proj_fake = (desc_fake @ directions).T.contiguous().sort(dim=-1).values
            proj_real = (desc_real @ directions).T.contiguous().sort(dim=-1).values
            distance = distance + (proj_fake - proj_real).abs().mean()
        results.append(distance / repeats * 1e3)
    return results


@register_metric("swd", direction="min", diverged=1e4, seeded=True)
def sliced_wasserstein(
    fake: torch.Tensor,
    real: torch.Tensor,
    *,
    seed: int = 0,
    levels: int | None = None,
    patch: int = 7,
    patches_per_image: int = 64,
    projections: int = 128,
    repeats: int = 4,
    standardise: str = "own",
) -> torch.Tensor:
    """Sliced Wasserstein distance x 1e3, averaged over pyramid levels.

    See `sliced_wasserstein_per_level` (and `standardise` there). Lower is more realistic;
    about 0 for identical sets. Memory grows with images x patches_per_image (200 images
    at the defaults: ~8 MB of descriptors per set and level).
    """
    per_level = sliced_wasserstein_per_level(
        fake,
        real,
        seed=seed,
        levels=levels,
        patch=patch,
        patches_per_image=patches_per_image,
        projections=projections,
        repeats=repeats,
        standardise=standardise,
    )
    return torch.stack(per_level).mean()


@register_metric("swd_band", direction="min", diverged=1e4, seeded=True)
def sliced_wasserstein_band(fake: torch.Tensor, real: torch.Tensor, *, seed: int = 0,
                            **settings: int | None) -> torch.Tensor:
    """`sliced_wasserstein` (the same `settings`: levels, patch, ...) with both patch sets standardised by
    the real set's mean and std.

    The same patches and directions as `swd` for the same seed; about 0 for identical
    sets. Unlike `swd` it is not blind to how much detail each pyramid band holds: a
    blurred fill (too little) and a noisy one (too much) are both far from the real set.
    """
    return sliced_wasserstein(fake, real, seed=seed, standardise="real", **settings)


# ----------------------------------------------------------------------------- all at once


@torch.no_grad()
def compute_all(
    fake_center: torch.Tensor,
    real_center: torch.Tensor,
    context: torch.Tensor,
    *,
    seed: int = 0,
) -> dict[str, float]:
    """Every registered metric as a float: {"mse", "psnr", "ssim", "seam", "swd", "swd_band"}.

    `fake_center` is the generator's output, 32x32 or 32 + 2m pixels (context
    margin m): only its central 32x32 is scored and pasted. `real_center` is the
    true 32x32 center and `context` the 64x64 images (whatever their center
    holds); the composites for `seam` are `context` with the fake, respectively
    the real, center pasted in. The caller adds any "val/" prefix.
    """
    fake = hole_of(fake_center)
    if real_center.shape[-2:] != (HOLE_SIZE, HOLE_SIZE):
        raise ValueError(f"compute_all: real_center must be {HOLE_SIZE}x{HOLE_SIZE}, got {tuple(real_center.shape[-2:])}")
    if context.dim() != 4 or context.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE) or context.shape[:2] != real_center.shape[:2]:
        raise ValueError(
            f"compute_all: context must be N x C x {IMAGE_SIZE} x {IMAGE_SIZE} matching real_center "
            f"{tuple(real_center.shape)}, got {tuple(context.shape)}"
        )
    fake, real = _pair(fake, real_center, "compute_all")
    context = context.to(fake.dtype)
    fake_whole, real_whole = paste_center(context, fake), paste_center(context, real)
    results = {}
    for name, metric in _METRICS.items():
        a, b = (fake_whole, real_whole) if metric.whole else (fake, real)
        value = metric.fn(a, b, seed=seed) if metric.seeded else metric.fn(a, b)
        results[name] = float(value)
    return results
