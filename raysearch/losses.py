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

Every loss above takes [B] scores or [B, N, N] score maps of a patch critic
(averaged over cells). The recipes of current inpainting models add:

- `mask_aware_critic_loss` / `generator_adversarial_map`: per-cell losses of a
  patch critic where only the cells that see the hole are fake (LaMa);
- `r1_penalty` and `lazy_weight`: the zero-centred gradient penalty on real
  data (Mescheder et al. 2018), applied every k critic steps (StyleGAN2);
- `feature_matching`: L1 between the critic's features of real and generated
  images (pix2pixHD, LaMa).
"""

from __future__ import annotations

from collections.abc import Sequence

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
    """WGAN-GP (Gulrajani et al. 2017): (||grad D(x_hat)|| - 1)^2 on random interpolates.

    A patch critic's D(x) is the mean of its score map, the score its Wasserstein losses use.
    """
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype, generator=generator)
    interpolates = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    scores = critic(interpolates)
    if scores.dim() > 1:
        scores = scores.flatten(1).mean(1)
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


# ---------------------------------------------------------------- recipes of current inpainting models

# The objectives whose critic classifies (a target per score): per-cell labels and R1 apply to them
# (raysearch.config refuses them with the others).
CLASSIFYING_OBJECTIVES = ("gan", "nsgan", "hinge")


def cell_losses(objective: str, scores: Tensor, real: bool, label_smoothing: float = 0.0) -> Tensor:
    """The critic's loss of each score (any shape) labelled real (target 1 - label_smoothing) or fake.

    `gan` keeps seed 000's explicit log(sigmoid) form (it can reach log(0)); `nsgan`
    is the same cross-entropy on logits; `hinge` is relu(1 - s) real, relu(1 + s) fake.
    """
    if objective == "gan":
        d = torch.sigmoid(scores)
        if not real:
            return -torch.log(1 - d)
        target = 1.0 - label_smoothing
        return -(target * torch.log(d) + (1 - target) * torch.log(1 - d))
    if objective == "nsgan":
        target = torch.full_like(scores, 1.0 - label_smoothing if real else 0.0)
        return F.binary_cross_entropy_with_logits(scores, target, reduction="none")
    if objective == "hinge":
        return F.relu(1 - scores) if real else F.relu(1 + scores)
    raise ValueError(f"no per-cell labels for objective {objective!r}; choose one of: {', '.join(CLASSIFYING_OBJECTIVES)}")


def mask_aware_critic_loss(
    objective: str, real_scores: Tensor, fake_scores: Tensor, fake_labels: Tensor, label_smoothing: float = 0.0
) -> Tensor:
    """A patch critic's loss with mask-aware labels (LaMa, Suvorov et al. 2022; DeepFill v2, Yu et al. 2019).

    real_scores, fake_scores: [B, N, N] score maps of real and generated images.
    fake_labels: [N, N] or [B, N, N] bool, True where a generated image's cell is fake (it sees the
    hole: models.critics.hole_label_map); the other cells see only the real context and are
    labelled real, as LaMa's `mask_as_fake_target` does. Every cell of a real image is real.
    The mean over the cells of each, summed: with every label True it is `critic_loss`.
    """
    fake_labels = fake_labels.to(torch.bool).expand_as(fake_scores)
    real = cell_losses(objective, real_scores, True, label_smoothing).mean()
    as_fake = cell_losses(objective, fake_scores, False)
    as_real = cell_losses(objective, fake_scores, True, label_smoothing)
    return real + torch.where(fake_labels, as_fake, as_real).mean()


def generator_adversarial_map(objective: str, fake_scores: Tensor, weights: Tensor | None = None) -> Tensor:
    """The generator's adversarial term on a patch critic's [B, N, N] maps, a weighted mean over cells.

    weights: None averages every cell (LaMa: `use_unmasked_for_gen`), which is
    `generator_adversarial` on the map; the hole labels (as float) average the cells
    that see the hole only. The other cells do not depend on the generated pixels, so
    the choice only rescales the term, by cells / cells touching the hole.
    """
    if weights is None:
        return generator_adversarial(objective, fake_scores)
    if objective == "gan":
        cells = torch.log(1 - torch.sigmoid(fake_scores))
    elif objective == "nsgan":
        cells = F.softplus(-fake_scores)
    elif objective in ("wgan", "wgan-gp", "hinge"):
        cells = -fake_scores
    else:
        raise ValueError(f"no generator loss for objective {objective!r}")
    weights = weights.to(cells.dtype).expand_as(cells)
    return (cells * weights).sum() / weights.sum()


def r1_penalty(critic: nn.Module, real: Tensor) -> Tensor:
    """R1 (Mescheder, Geiger and Nowozin 2018, eq. 9): E_real ||grad_x D(x)||^2, zero-centred, on real data.

    Mescheder et al. add (gamma / 2) * R1 to the critic's loss: the config's r1_weight is
    gamma / 2 (their gamma = 10 is r1_weight = 5). For a patch critic D(x) is the sum of its
    score map, as LaMa's make_r1_gp and StyleGAN2 (real_logits.sum()) take it: N*N times the
    mean per-cell penalty where the cells' input gradients do not overlap, more where neighbours
    agree, so a patch critic wants a smaller weight than a one-score critic.
    Differentiable (create_graph): its gradient reaches the critic's weights. The extra forward
    costs one critic pass; with lazy regularisation (`lazy_weight`) it runs every k steps only.
    """
    real = real.detach().requires_grad_(True)
    scores = critic(real)
    (grads,) = torch.autograd.grad(scores.sum(), real, create_graph=True)
    return grads.pow(2).flatten(1).sum(1).mean()


def lazy_weight(weight: float, every: int, step: int) -> float:
    """A regulariser's weight at critic step `step` (0, 1, ...) when it runs every `every` steps only.

    StyleGAN2's lazy regularisation (Karras et al. 2020, sec. 3.1): the penalty is computed on one
    step in `every` and multiplied by `every` there (0 on the others), so its weight averaged over
    steps is unchanged and its cost is divided by `every`. Added to that step's critic loss (one
    optimiser step), StyleGAN2's separate step with rescaled Adam betas is not needed.
    """
    if every < 1:
        raise ValueError(f"every: must be >= 1, got {every}")
    return weight * every if step % every == 0 else 0.0


def feature_matching(real_features: Sequence[Tensor], fake_features: Sequence[Tensor]) -> Tensor:
    """L1 between the critic's features of real and generated images, each layer's mean, then the mean over layers.

    pix2pixHD's feature-matching loss (Wang et al. 2018, eq. 4, whose weights 1/N_i are this
    per-layer mean), as LaMa uses it on its patch critic (LaMa's code takes the squared error).
    The real features are targets: detached here, so only the generator learns from it (run the
    critic with its weights frozen, as for the adversarial term). Outside the hole's reach the
    two images are the same context, so those feature cells add nothing.
    """
    if len(real_features) != len(fake_features) or not real_features:
        raise ValueError(f"features: expected the same non-zero number of layers, got {len(real_features)} real "
                         f"and {len(fake_features)} generated")
    return torch.stack([F.l1_loss(fake, real.detach()) for real, fake in zip(real_features, fake_features)]).mean()
