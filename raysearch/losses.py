"""Reconstruction and adversarial objectives, and the tricks of the two seeds.

Critics output raw scores; each objective says how scores become losses:

- `gan`: minimax BCE written as seed 000 first wrote it, -[log D(x) + log(1 - D(G(z)))]
  with D = sigmoid(score), through an explicit sigmoid and log. That form saturates:
  once the critic is confident, log(0) = -inf and the gradients turn into NaN (the
  NaNs of seed 000's April 23rd post). It is kept on purpose so a search can see
  it diverge; the loop reports such trials as `diverged` instead of crashing.
- `nsgan`: non-saturating BCE, on logits (numerically stable).
- `wgan`: critic maximises D(real) - D(fake); weights clipped to [-clip, clip].
- `wgan-gp`: the same with a gradient penalty instead of clipping.
- `hinge`: hinge critic loss, generator maximises D(fake).

The generator loss is l2_weight * MSE + adv_weight * adversarial (+ the clip
penalty of seed 000's clip output activation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


# image_psnr: an image's weight stops growing once its MSE is below this (40 dB): a flat patch the
# generator already fills near-perfectly must not take over the batch.
IMAGE_MSE_FLOOR = 1e-4


def reconstruction(fake: Tensor, real: Tensor, weights: Tensor | None = None, kind: str = "mse") -> Tensor:
    """The reconstruction loss over the generated square (32x32, or 36x36 with a margin).

    `weights` ([S, S], averaging 1, from `border_weights`) reweights the pixels.

    - `mse`: the mean squared error of the batch (the seeds' L2).
    - `image_psnr`: the gradient of the batch's mean per-image PSNR, the metric
      validation reports (metrics.psnr averages 10 log10(1 / mse_i) over images).
      Pooled MSE is dominated by the textured images whose error barely moves;
      d log(mse_i) = d mse_i / mse_i weighs each image by the inverse of its own
      error instead. Written as sum_i w_i mse_i with w_i = mean(mse) / mse_i
      (detached), so its value and scale stay those of the MSE.
    """
    error = (fake - real) ** 2
    if weights is not None:
        error = error * weights
    if kind == "mse":
        return error.mean()
    if kind == "image_psnr":
        per_image = error.flatten(1).mean(1)
        scale = per_image.detach()
        return (per_image / scale.clamp_min(IMAGE_MSE_FLOOR)).mean() * scale.mean()
    raise ValueError(f"no reconstruction loss {kind!r}")


def border_weights(size: int, margin: int, width: int, extra: float) -> Tensor:
    """[S, S] per-pixel weights of the generated square, rescaled to average 1.

    The pixels of the context margin and the first `width` rings inside the hole
    weigh 1 + extra, the rest 1: the seam with the real context is what a viewer
    sees first, and the pixels nearest the border are the best determined ones.
    """
    index = torch.arange(size)
    to_edge = torch.minimum(index, size - 1 - index)
    depth = torch.minimum(to_edge[:, None], to_edge[None, :]) - margin  # < 0 in the margin
    weights = 1.0 + extra * (depth < width).float()
    return weights / weights.mean()


def critic_loss(objective: str, real_scores: Tensor, fake_scores: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """The critic's loss for one batch of real and one of generated images."""
    if objective == "gan":
        real_target = 1.0 - label_smoothing
        d_real, d_fake = torch.sigmoid(real_scores), torch.sigmoid(fake_scores)
        # Seed 000's form: BCE through log(sigmoid), which can reach log(0).
        real_term = real_target * torch.log(d_real) + (1 - real_target) * torch.log(1 - d_real)
        return -(real_term.mean() + torch.log(1 - d_fake).mean())
    if objective == "nsgan":
        real_target = torch.full_like(real_scores, 1.0 - label_smoothing)
        return F.binary_cross_entropy_with_logits(real_scores, real_target) + F.binary_cross_entropy_with_logits(
            fake_scores, torch.zeros_like(fake_scores)
        )
    if objective in ("wgan", "wgan-gp"):
        return fake_scores.mean() - real_scores.mean()
    if objective == "hinge":
        return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()
    raise ValueError(f"no critic loss for objective {objective!r}")


def generator_adversarial(objective: str, fake_scores: Tensor) -> Tensor:
    """The adversarial term of the generator's loss."""
    if objective == "gan":
        # Minimax: minimise log(1 - D(G(z))), seed 000's first formulation.
        return torch.log(1 - torch.sigmoid(fake_scores)).mean()
    if objective == "nsgan":
        return F.binary_cross_entropy_with_logits(fake_scores, torch.ones_like(fake_scores))
    if objective in ("wgan", "wgan-gp", "hinge"):
        return -fake_scores.mean()
    raise ValueError(f"no generator loss for objective {objective!r}")


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """WGAN-GP (Gulrajani et al. 2017): (||grad D(x_hat)|| - 1)^2 on random interpolates."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype, generator=generator)
    interpolates = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    scores = critic(interpolates)
    (grads,) = torch.autograd.grad(scores.sum(), interpolates, create_graph=True)
    return ((grads.flatten(1).norm(dim=1) - 1) ** 2).mean()


@torch.no_grad()
def clip_weights(critic: nn.Module, clip: float) -> None:
    """WGAN's Lipschitz constraint: every critic parameter clamped to [-clip, clip].

    Two fused multi-tensor kernels instead of one clamp per parameter.
    """
    parameters = list(critic.parameters())
    torch._foreach_clamp_min_(parameters, -clip)
    torch._foreach_clamp_max_(parameters, clip)


def instance_noise(images: Tensor, std: float, generator: torch.Generator | None = None) -> Tensor:
    """Gaussian noise on critic inputs (seed 000), so the critic cannot be certain."""
    if std == 0:
        return images
    noise = torch.randn(images.shape, device=images.device, dtype=images.dtype, generator=generator)
    return images + std * noise
