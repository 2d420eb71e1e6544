"""Pin every metric on cases whose answer is known in closed form or by ranking."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from raysearch import metrics
from raysearch.errors import ConfigError


def textures(n: int, size: int, seed: int) -> torch.Tensor:
    """One random-texture distribution in [0, 1]; each seed draws an independent sample.

    Every image mixes 8 oriented sinusoids (0.4..1.4 rad/pixel, random phase and
    per-channel amplitude) and one straight colour edge, so that 128 images
    already cover the distribution well and two samples are close in swd.
    """
    g = torch.Generator().manual_seed(seed)
    coords = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    images = torch.full((n, 3, size, size), 0.5)
    for _ in range(8):
        freq = 0.4 + 1.0 * torch.rand(n, 1, 1, 1, generator=g)
        angle = math.pi * torch.rand(n, 1, 1, 1, generator=g)
        phase = 2 * math.pi * torch.rand(n, 1, 1, 1, generator=g)
        amp = 0.1 * torch.rand(n, 3, 1, 1, generator=g)
        images = images + amp * torch.sin(freq * (xx * torch.cos(angle) + yy * torch.sin(angle)) + phase)
    angle = 2 * math.pi * torch.rand(n, 1, 1, 1, generator=g)
    offset = size * (torch.rand(n, 1, 1, 1, generator=g) - 0.5)
    across = (xx - size / 2) * torch.cos(angle) + (yy - size / 2) * torch.sin(angle)
    step = 0.2 * (torch.rand(n, 3, 1, 1, generator=g) - 0.5)
    return (images + step * torch.sign(across - offset)).clamp(0, 1)


def gaussian_blur(images: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    radius = 4
    x = torch.arange(-radius, radius + 1, dtype=images.dtype)
    k = torch.exp(-x.square() / (2 * sigma**2))
    k = torch.outer(k / k.sum(), k / k.sum()).expand(3, 1, 2 * radius + 1, 2 * radius + 1)
    return F.conv2d(F.pad(images, (radius,) * 4, mode="reflect"), k, groups=3)


@pytest.fixture(scope="module")
def real_a() -> torch.Tensor:
    return textures(128, 32, seed=1)


@pytest.fixture(scope="module")
def real_b() -> torch.Tensor:
    return textures(128, 32, seed=2)


# ----------------------------------------------------------------------------- identical sets


def test_identical_sets_score_perfectly(real_a):
    whole = textures(8, 64, seed=3)
    center = whole[..., 16:48, 16:48]
    assert metrics.mse(real_a, real_a).item() == 0.0
    assert metrics.psnr(real_a, real_a).item() == pytest.approx(100.0)  # the 1e-10 clamp
    assert metrics.ssim(real_a, real_a).item() == pytest.approx(1.0, abs=1e-5)
    assert metrics.seam(whole, whole).item() == 0.0
    assert metrics.sliced_wasserstein(real_a[:32], real_a[:32]).item() == pytest.approx(0.0, abs=1e-3)
    scores = metrics.compute_all(center.clone(), center, whole)
    assert scores == pytest.approx({"mse": 0.0, "psnr": 100.0, "ssim": 1.0, "seam": 0.0, "swd": 0.0, "swd_band": 0.0}, abs=1e-3)


# ----------------------------------------------------------------------------- mse / psnr


def test_constant_offset_gives_known_mse_and_psnr(real_a):
    shifted = real_a * 0.8 + 0.1  # stays in [0, 1]
    real = real_a * 0.8
    assert metrics.mse(shifted, real).item() == pytest.approx(0.01, rel=1e-4)
    assert metrics.psnr(shifted, real).item() == pytest.approx(20.0, abs=1e-3)


def test_psnr_is_the_mean_of_per_image_values():
    real = torch.full((2, 3, 32, 32), 0.5)
    fake = real + torch.tensor([0.1, 0.01]).view(2, 1, 1, 1)  # per-image mse 1e-2 and 1e-4
    # per image: 20 dB and 40 dB -> 30 dB; the pooled mse (5.05e-3) would give 22.97 dB
    assert metrics.psnr(fake, real).item() == pytest.approx(30.0, abs=1e-3)
    assert metrics.mse(fake, real).item() == pytest.approx((1e-2 + 1e-4) / 2, rel=1e-4)


# ----------------------------------------------------------------------------- ssim


def test_ssim_of_flat_images_is_the_luminance_term():
    a, b = 0.5, 0.6
    x, y = torch.full((1, 3, 32, 32), a), torch.full((1, 3, 32, 32), b)
    c1 = 0.01**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)  # no variance: structure term is 1
    assert metrics.ssim(x, y).item() == pytest.approx(expected, abs=1e-6)


def test_ssim_drops_with_noise_and_is_symmetric(real_a):
    g = torch.Generator().manual_seed(4)
    noise = torch.randn(real_a.shape, generator=g)
    slightly = (real_a + 0.05 * noise).clamp(0, 1)
    very = (real_a + 0.2 * noise).clamp(0, 1)
    s_slightly, s_very = metrics.ssim(slightly, real_a).item(), metrics.ssim(very, real_a).item()
    assert 1.0 > s_slightly > s_very
    assert metrics.ssim(real_a, very).item() == pytest.approx(s_very, abs=1e-6)


def test_ssim_matches_an_independent_scipy_implementation(real_a):
    ndimage = pytest.importorskip("scipy.ndimage")
    fake = (real_a[:4] + 0.1 * torch.randn(real_a[:4].shape, generator=torch.Generator().manual_seed(5))).clamp(0, 1)
    x, y = fake.double().numpy(), real_a[:4].double().numpy()

    def blur(t):  # truncate 3.5 * sigma 1.5 -> radius 5 -> 11x11; crop to the valid part
        return ndimage.gaussian_filter(t, 1.5, truncate=3.5)[5:-5, 5:-5]

    values = []
    for i in range(x.shape[0]):
        for c in range(3):
            a, b = x[i, c], y[i, c]
            ma, mb = blur(a), blur(b)
            va, vb, cab = blur(a * a) - ma**2, blur(b * b) - mb**2, blur(a * b) - ma * mb
            c1, c2 = 0.01**2, 0.03**2
            values.append(((2 * ma * mb + c1) * (2 * cab + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2))).mean())
    assert metrics.ssim(fake, real_a[:4]).item() == pytest.approx(float(np.mean(values)), abs=1e-5)


# ----------------------------------------------------------------------------- seam


def horizontal_gradient(n: int = 2) -> torch.Tensor:
    return (torch.arange(64, dtype=torch.float32) / 63).expand(n, 3, 64, 64).clone()


def test_seam_is_zero_for_the_real_image_and_pinned_for_a_flat_fill():
    real = horizontal_gradient()
    assert metrics.seam(real, real).item() == 0.0
    gray = real.clone()
    gray[..., 16:48, 16:48] = 0.5
    columns = torch.arange(16, 48, dtype=torch.float32) / 63
    # top and bottom edges: |0.5 - x_j| over the 32 columns; left and right: |0.5 - x_15|, |0.5 - x_48|
    fake_jump = (2 * (0.5 - columns).abs().sum() + 32 * abs(0.5 - 15 / 63) + 32 * abs(0.5 - 48 / 63)) / 128
    real_jump = (2 * 32 * (1 / 63)) / 128  # only the vertical edges cut the gradient
    assert metrics.seam(gray, real).item() == pytest.approx(float(fake_jump) - real_jump, abs=1e-6)
    assert metrics.seam(gray, real).item() > 0


def test_seam_of_an_offset_fill():
    real = horizontal_gradient()
    fake = real.clone()
    fake[..., 16:48, 16:48] += 0.1
    # top/bottom jump 0.1; left 0.1 + 1/63; right 0.1 - 1/63 -> mean 0.1; the real image's is 1/126
    assert metrics.seam(fake, real).item() == pytest.approx(0.1 - 1 / 126, abs=1e-6)
    assert metrics.seam(real, fake).item() == pytest.approx(-(0.1 - 1 / 126), abs=1e-6)  # signed


def test_seam_looks_only_at_the_hole_border():
    real = textures(2, 64, seed=6)
    fake = real.clone()
    fake[..., 18:46, 18:46] = 0.5  # changed inside, but the border rows/columns are untouched
    fake[..., :10, :10] = 0.0  # and far outside
    assert metrics.seam(fake, real).item() == 0.0


def test_seam_rejects_centers():
    with pytest.raises(ValueError, match="64x64"):
        metrics.seam(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))


# ----------------------------------------------------------------------------- swd


def test_laplacian_pyramid_matches_the_reference_and_reconstructs(real_a):
    ndimage = pytest.importorskip("scipy.ndimage")
    # Karras et al.'s progressive_growing_of_gans/metrics/sliced_wasserstein.py, verbatim in numpy
    kernel = np.float32([[1, 4, 6, 4, 1], [4, 16, 24, 16, 4], [6, 24, 36, 24, 6], [4, 16, 24, 16, 4], [1, 4, 6, 4, 1]]) / 256
    kernel = kernel[np.newaxis, np.newaxis]

    def pyr_down(mb):
        return ndimage.convolve(mb, kernel, mode="mirror")[:, :, ::2, ::2]

    def pyr_up(mb):
        res = np.zeros(mb.shape[:2] + (mb.shape[2] * 2, mb.shape[3] * 2), mb.dtype)
        res[:, :, ::2, ::2] = mb
        return ndimage.convolve(res, kernel * 4.0, mode="mirror")

    images = real_a[:4]
    reference = [images.numpy().copy()]
    for _ in range(2):
        reference.append(pyr_down(reference[-1]))
        reference[-2] -= pyr_up(reference[-1])
    ours = metrics.laplacian_pyramid(images, 3)
    assert [tuple(level.shape[-2:]) for level in ours] == [(32, 32), (16, 16), (8, 8)]
    for mine, theirs in zip(ours, reference):
        np.testing.assert_allclose(mine.numpy(), theirs, atol=1e-5)
    torch.testing.assert_close(metrics.collapse_laplacian_pyramid(ours), images, atol=1e-5, rtol=0)


def test_swd_ranks_blur_and_noise_worse_than_a_second_real_sample(real_a, real_b):
    between_reals = metrics.sliced_wasserstein_per_level(real_b, real_a)
    # paired (the blurred references themselves, as a blurry generator's output would be) ...
    blurred = metrics.sliced_wasserstein_per_level(gaussian_blur(real_a), real_a)
    # ... and unpaired (a blurred independent sample), which also pays the sampling noise
    blurred_other = metrics.sliced_wasserstein_per_level(gaussian_blur(textures(128, 32, seed=3)), real_a)
    for worse in (blurred, blurred_other):
        assert torch.stack(worse).mean() > 1.3 * torch.stack(between_reals).mean()
        assert worse[0] > 1.5 * between_reals[0]  # the finest level sees the blur most
    noisy = (real_a + 0.1 * torch.randn(real_a.shape, generator=torch.Generator().manual_seed(7))).clamp(0, 1)
    assert metrics.sliced_wasserstein_per_level(noisy, real_a)[0] > 1.5 * between_reals[0]
    # L2 prefers the blur over an equally real sample: the reason swd is reported
    assert metrics.mse(gaussian_blur(real_a), real_a) < metrics.mse(real_b, real_a)


def test_swd_is_deterministic_for_a_seed(real_a, real_b):
    a, b, small = real_a[:32], real_b[:32], {"projections": 32}
    first = metrics.sliced_wasserstein(b, a, seed=3, **small).item()
    assert metrics.sliced_wasserstein(b.clone(), a.clone(), seed=3, **small).item() == first
    assert metrics.sliced_wasserstein(b, a, seed=4, **small).item() != first
    per_level = metrics.sliced_wasserstein_per_level(b, a, seed=3, **small)
    assert torch.stack(per_level).mean().item() == pytest.approx(first)


def test_swd_levels_follow_the_image_size(real_a):
    few = {"patches_per_image": 8, "projections": 16}
    assert len(metrics.sliced_wasserstein_per_level(real_a[:8], real_a[:8], **few)) == 2  # 32, 16
    whole = textures(4, 64, seed=8)
    assert len(metrics.sliced_wasserstein_per_level(whole, whole, **few)) == 3  # 64, 32, 16
    assert len(metrics.sliced_wasserstein_per_level(real_a[:8], real_a[:8], levels=3, **few)) == 3  # 8x8 fits 7x7
    with pytest.raises(ValueError, match="pyramid levels"):
        metrics.sliced_wasserstein(real_a, real_a, levels=4)  # 4x4 cannot hold a 7x7 patch
    with pytest.raises(ValueError, match="same shape"):
        metrics.sliced_wasserstein(real_a, real_a[:10])


def test_swd_of_a_flat_fill_is_finite_and_large(real_a, real_b):
    a, b = real_a[:32], real_b[:32]
    flat = torch.full_like(a, 0.5)  # every Laplacian level is constant: std 0
    value = metrics.sliced_wasserstein(flat, a).item()
    assert math.isfinite(value)
    assert value > 2 * metrics.sliced_wasserstein(b, a).item()


def test_swd_band_keeps_the_detail_energy_that_swd_standardises_away(real_a, real_b):
    """Halving every Laplacian band (a contrast cut about the mean) is invisible to swd, which standardises
    each set by its own statistics, and plain to swd_band, which uses the real set's for both."""
    real_a, real_b = real_a[:64], real_b[:64]
    flat = 0.5 + 0.5 * (real_b - 0.5)  # same shape of every patch distribution, half the energy in every band
    between_reals = metrics.sliced_wasserstein_band(real_b, real_a).item()
    assert metrics.sliced_wasserstein(flat, real_a).item() == pytest.approx(
        metrics.sliced_wasserstein(real_b, real_a).item(), rel=0.05)
    assert metrics.sliced_wasserstein_band(flat, real_a).item() > 3 * between_reals
    assert metrics.sliced_wasserstein_band(real_a.clone(), real_a).item() == pytest.approx(0.0, abs=1e-3)
    with pytest.raises(ValueError, match="standardise"):
        metrics.sliced_wasserstein_per_level(real_a, real_a, standardise="fake")


# ----------------------------------------------------------------------------- compute_all


def test_compute_all_reports_every_metric_like_the_functions():
    whole = textures(8, 64, seed=9)
    real = whole[..., 16:48, 16:48]
    fake = gaussian_blur(real)
    scores = metrics.compute_all(fake, real, whole, seed=2)
    assert list(scores) == ["mse", "psnr", "ssim", "seam", "swd", "swd_band"]
    assert all(isinstance(v, float) for v in scores.values())
    fake_whole = whole.clone()
    fake_whole[..., 16:48, 16:48] = fake
    assert scores["mse"] == pytest.approx(metrics.mse(fake, real).item())
    assert scores["psnr"] == pytest.approx(metrics.psnr(fake, real).item())
    assert scores["ssim"] == pytest.approx(metrics.ssim(fake, real).item())
    assert scores["seam"] == pytest.approx(metrics.seam(fake_whole, whole).item())
    assert scores["swd"] == pytest.approx(metrics.sliced_wasserstein(fake, real, seed=2).item())
    assert scores["swd_band"] == pytest.approx(metrics.sliced_wasserstein_band(fake, real, seed=2).item())
    assert scores["seam"] != 0.0 and scores["mse"] > 0.0


def test_compute_all_scores_the_central_32_of_a_36_output():
    whole = textures(4, 64, seed=10)
    real = whole[..., 16:48, 16:48]
    fake = torch.rand(4, 3, 36, 36, generator=torch.Generator().manual_seed(11))  # margin 2: noise border
    fake[..., 2:34, 2:34] = real
    scores = metrics.compute_all(fake, real, whole)
    assert scores == pytest.approx({"mse": 0.0, "psnr": 100.0, "ssim": 1.0, "seam": 0.0, "swd": 0.0, "swd_band": 0.0}, abs=1e-3)
    with pytest.raises(ValueError, match="margin"):
        metrics.compute_all(torch.rand(4, 3, 35, 35), real, whole)


def test_compute_all_composites_the_real_center_into_the_context():
    whole = textures(4, 64, seed=12)
    real = whole[..., 16:48, 16:48].clone()
    masked = whole.clone()
    masked[..., 16:48, 16:48] = 0.0  # the model's input: the hole's content must not matter
    assert metrics.compute_all(real.clone(), real, masked)["seam"] == 0.0


def test_compute_all_rejects_mismatched_inputs():
    whole = textures(4, 64, seed=13)
    real = whole[..., 16:48, 16:48]
    with pytest.raises(ValueError, match="context"):
        metrics.compute_all(real, real, whole[:2])
    with pytest.raises(ValueError, match="real_center"):
        metrics.compute_all(real, whole[..., 14:50, 14:50], whole)


# ----------------------------------------------------------------------------- registry


def test_registry_lists_and_finds_metrics():
    assert metrics.list_metrics() == ["mse", "psnr", "ssim", "seam", "swd", "swd_band"]
    assert metrics.get_metric("swd") is metrics.sliced_wasserstein
    with pytest.raises(ConfigError, match="allowed: mse, psnr, ssim, seam, swd, swd_band"):
        metrics.get_metric("fid")
    with pytest.raises(ValueError, match="already registered"):
        metrics.register_metric("mse", direction="min", diverged=1.0)(metrics.mse)
    with pytest.raises(ValueError, match="direction"):
        metrics.register_metric("sharpness", direction="up", diverged=0.0)
    with pytest.raises(ValueError, match="finite"):
        metrics.register_metric("sharpness", direction="max", diverged=float("-inf"))


def test_every_registered_metric_has_its_facts_and_every_view_reads_them_from_the_registry(tmp_path):
    from raysearch.baselines import METRIC_NAMES
    from raysearch.evaluate import reported_metrics, score_centers
    from raysearch.loop import diverged_metrics
    from raysearch.spaces import load_space

    reported = reported_metrics()
    assert list(reported) == [f"val/{name}" for name in metrics.list_metrics()] == list(METRIC_NAMES)
    assert diverged_metrics() == {key: metric.diverged for key, metric in reported.items()}
    # A diverged trial's value is worse than any fill's: the truth itself and a flat grey hole here.
    images = textures(8, 64, seed=3) * 2 - 1
    grey = images.clone()
    grey[..., 16:48, 16:48] = 0.0
    scored = [score_centers(images[..., 16:48, 16:48], images, seed=0),
              score_centers(grey[..., 16:48, 16:48], images, seed=0)]
    for key, metric in reported.items():
        assert metric.direction in ("min", "max") and callable(metric.fn), key
        sign = 1 if metric.direction == "min" else -1
        assert all(sign * metric.diverged > sign * values[key] for values in scored), (key, metric.diverged)
        # A space may rank by every metric, in its registered direction only.
        space = tmp_path / f"{metric.name}.yaml"
        other = "max" if metric.direction == "min" else "min"
        space.write_text(f"base: {{}}\nmetric: {key}\n")
        assert load_space(str(space)).mode == metric.direction
        space.write_text(f"base: {{}}\nmetric: {key}\nmode: {other}\n")
        with pytest.raises(ConfigError, match=f"use mode: {metric.direction}"):
            load_space(str(space))
