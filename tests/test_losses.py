"""Objectives and tricks: values on known scores, saturation of seed 000's minimax form."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from raysearch import losses


def test_wasserstein_critic_loss_is_fake_minus_real():
    real, fake = torch.tensor([2.0, 4.0]), torch.tensor([1.0, -1.0])
    assert losses.critic_loss("wgan", real, fake).item() == pytest.approx(0.0 - 3.0)
    assert losses.generator_adversarial("wgan", fake).item() == pytest.approx(0.0)


def test_hinge_is_zero_beyond_the_margins():
    assert losses.critic_loss("hinge", torch.tensor([1.5]), torch.tensor([-2.0])).item() == 0.0
    assert losses.critic_loss("hinge", torch.tensor([0.0]), torch.tensor([0.0])).item() == pytest.approx(2.0)


def test_gan_and_nsgan_agree_on_the_critic_loss_where_both_are_finite():
    real, fake = torch.randn(16), torch.randn(16)
    assert losses.critic_loss("gan", real, fake).item() == pytest.approx(losses.critic_loss("nsgan", real, fake).item(), rel=1e-5)


def test_label_smoothing_lowers_the_real_target():
    real, fake = torch.full((4,), 5.0), torch.full((4,), -5.0)
    assert losses.critic_loss("nsgan", real, fake, 0.1) > losses.critic_loss("nsgan", real, fake, 0.0)


def test_seed_000_minimax_saturates_to_non_finite_where_nsgan_stays_finite():
    confident_fake = torch.tensor([-200.0], requires_grad=True)  # sigmoid underflows to 0 in float32
    real = torch.tensor([200.0])
    assert not torch.isfinite(losses.critic_loss("gan", real, confident_fake))
    assert torch.isfinite(losses.critic_loss("nsgan", real, confident_fake))


def test_non_saturating_generator_loss_pushes_fake_scores_up():
    fake = torch.zeros(4, requires_grad=True)
    losses.generator_adversarial("nsgan", fake).backward()
    assert (fake.grad < 0).all()


OBJECTIVES = ["gan", "nsgan", "wgan", "wgan-gp", "hinge"]


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_the_generator_pushes_fake_scores_the_way_the_critic_pulls_them_down(objective):
    # The critic's loss rises with the fake scores (it calls fakes fake by scoring them low);
    # the generator's adversarial term must fall with them, or it trains towards "more fake".
    fake = torch.linspace(-0.5, 0.5, 8).requires_grad_(True)  # inside every hinge margin
    losses.critic_loss(objective, torch.zeros(8), fake).backward()
    critic_pull = fake.grad.clone()
    fake.grad = None
    losses.generator_adversarial(objective, fake).backward()
    assert (critic_pull > 0).all() and (fake.grad < 0).all()


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_a_generator_step_makes_the_critic_score_its_fakes_as_more_real(objective):
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 1))
    critic.requires_grad_(False)
    generator = nn.Linear(4, 12)
    noise = torch.randn(16, 4)
    fakes = lambda: generator(noise).view(16, 3, 2, 2)  # noqa: E731
    before = critic(fakes()).mean().item()
    optimizer = torch.optim.SGD(generator.parameters(), lr=0.05)
    for _ in range(5):
        optimizer.zero_grad()
        losses.generator_adversarial(objective, critic(fakes()).squeeze(1)).backward()
        optimizer.step()
    assert critic(fakes()).mean().item() > before + 1e-3


def test_gradient_penalty_of_a_linear_critic_is_known():
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 1, bias=False))
    with torch.no_grad():
        critic[1].weight.fill_(0.5)  # gradient norm = 0.5 * sqrt(12)
    real, fake = torch.randn(3, 3, 2, 2), torch.randn(3, 3, 2, 2)
    expected = (0.5 * 12**0.5 - 1) ** 2
    assert losses.gradient_penalty(critic, real, fake).item() == pytest.approx(expected, rel=1e-5)


def test_clip_weights_clamps_every_parameter():
    critic = nn.Linear(8, 1)
    with torch.no_grad():
        critic.weight.uniform_(-3, 3)
    losses.clip_weights(critic, 0.05)
    assert all(p.abs().max() <= 0.05 for p in critic.parameters())


def test_instance_noise_is_seeded_and_absent_at_zero():
    images = torch.zeros(2, 3, 4, 4)
    assert losses.instance_noise(images, 0.0) is images
    a = losses.instance_noise(images, 0.1, torch.Generator().manual_seed(1))
    b = losses.instance_noise(images, 0.1, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.std() > 0.05


class HalfSquaredNorm(nn.Module):
    """D(x) = s/2 ||x||^2: its input gradient is s x, so the penalty is known at every interpolate."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale))

    def forward(self, x):
        return self.scale * 0.5 * x.flatten(1).square().sum(dim=1)


def test_gradient_penalty_is_taken_at_the_interpolates_and_trains_the_critic():
    real, fake = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    critic = HalfSquaredNorm(0.3)
    penalty = losses.gradient_penalty(critic, real, fake, torch.Generator().manual_seed(7))
    alpha = torch.rand(5, 1, 1, 1, generator=torch.Generator().manual_seed(7))
    norms = (alpha * real + (1 - alpha) * fake).flatten(1).norm(dim=1)
    assert penalty.item() == pytest.approx(((0.3 * norms - 1) ** 2).mean().item(), rel=1e-5)
    # create_graph: the penalty's gradient reaches the critic's weights (d/ds of mean (s n - 1)^2).
    penalty.backward()
    assert critic.scale.grad.item() == pytest.approx((2 * (0.3 * norms - 1) * norms).mean().item(), rel=1e-4)


def test_border_weights_favour_the_rings_next_to_the_context():
    weights = losses.border_weights(32, margin=0, width=4, extra=3.0)
    assert weights.shape == (32, 32) and weights.mean().item() == pytest.approx(1.0)
    assert weights[0, 10] == weights[3, 3] == weights[31, 31] == pytest.approx(4 * weights[16, 16].item())
    assert weights[4, 10] == weights[16, 16]
    widened = losses.border_weights(36, margin=2, width=1, extra=1.0)
    assert widened[0, 0] == widened[2, 10] == pytest.approx(2 * widened[3, 10].item())
    assert torch.equal(losses.border_weights(32, 0, 4, 0.0), torch.ones(32, 32))


def test_weighted_reconstruction_is_the_weighted_mean_of_squares():
    fake, real = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    weights = losses.border_weights(32, 0, 4, 2.0)
    expected = ((fake - real) ** 2 * weights).mean()
    assert losses.reconstruction(fake, real, weights).item() == pytest.approx(expected.item())
    assert losses.reconstruction(fake, real).item() == pytest.approx(((fake - real) ** 2).mean().item())


def test_image_psnr_reconstruction_is_the_mse_with_the_gradient_of_the_mean_per_image_psnr():
    generator = torch.Generator().manual_seed(0)
    real = torch.rand(4, 3, 32, 32, generator=generator)
    # Images with very different errors: a near-fill and a poor one.
    noise = torch.randn(4, 3, 32, 32, generator=generator) * torch.tensor([0.02, 0.05, 0.2, 0.4]).view(4, 1, 1, 1)
    fake = (real + noise).requires_grad_(True)
    loss = losses.reconstruction(fake, real, kind="image_psnr")
    assert loss.item() == pytest.approx(F.mse_loss(fake, real).item(), rel=1e-5)  # logged as the MSE
    (gradient,) = torch.autograd.grad(loss, fake)

    per_image = ((fake - real) ** 2).flatten(1).mean(1)
    minus_mean_psnr = (10 * torch.log10(per_image)).mean()  # what validation's mean PSNR rewards
    (psnr_gradient,) = torch.autograd.grad(minus_mean_psnr, fake)
    # The same direction; the scale is the batch's mean MSE (times the constant ln(10) / 10).
    scale = per_image.detach().mean() * math.log(10) / 10
    torch.testing.assert_close(gradient, psnr_gradient * scale, rtol=1e-4, atol=1e-9)

    (mse_gradient,) = torch.autograd.grad(losses.reconstruction(fake, real), fake)
    share = lambda g: g.flatten(1).norm(dim=1) / g.norm()  # noqa: E731 - each image's part of the gradient
    assert share(gradient)[0] > 3 * share(mse_gradient)[0]  # the near-fill counts far more than under MSE


def test_image_psnr_reconstruction_caps_the_weight_of_a_near_perfect_image():
    real = torch.zeros(2, 3, 32, 32)
    fake = torch.stack([torch.full((3, 32, 32), 1e-4), torch.full((3, 32, 32), 0.1)]).requires_grad_(True)
    (gradient,) = torch.autograd.grad(losses.reconstruction(fake, real, kind="image_psnr"), fake)
    assert torch.isfinite(gradient).all()
    weights = gradient.flatten(1).abs().mean(1) / (2 * fake.detach().flatten(1).abs().mean(1))  # d mse_i / d x = 2x/n
    assert weights[0] / weights[1] == pytest.approx(0.01 / losses.IMAGE_MSE_FLOOR, rel=1e-3)


# ---------------------------------------------------------------- recipes of current inpainting models


class LinearCritic(nn.Module):
    """D(x) = <w, x> + b: its input gradient is w everywhere, so R1 = ||w||^2."""

    def __init__(self, shape=(3, 4, 4)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(shape))
        self.bias = nn.Parameter(torch.randn(()))

    def forward(self, x):
        return (x * self.weight).flatten(1).sum(1) + self.bias


class QuadraticCritic(nn.Module):
    """D(x) = c / 2 * ||x||^2: its input gradient is c x, so R1 = c^2 E||x||^2 (a mean over the batch)."""

    def __init__(self):
        super().__init__()
        self.c = nn.Parameter(torch.tensor(3.0))

    def forward(self, x):
        return 0.5 * self.c * x.flatten(1).square().sum(1)


def test_r1_of_a_linear_critic_is_its_squared_weight_norm():
    critic = LinearCritic()
    penalty = losses.r1_penalty(critic, torch.randn(5, 3, 4, 4))
    assert penalty.item() == pytest.approx(critic.weight.square().sum().item(), rel=1e-5)
    penalty.backward()  # create_graph: the penalty trains the critic, d||w||^2/dw = 2w
    assert torch.allclose(critic.weight.grad, 2 * critic.weight.detach())


def test_r1_is_zero_centred_and_averaged_over_the_real_batch():
    real = torch.randn(6, 3, 4, 4)
    penalty = losses.r1_penalty(QuadraticCritic(), real)
    assert penalty.item() == pytest.approx(9.0 * real.flatten(1).square().sum(1).mean().item(), rel=1e-5)
    assert losses.r1_penalty(QuadraticCritic(), torch.zeros(2, 3, 4, 4)).item() == 0.0  # (not (||g|| - 1)^2)


def test_r1_of_a_score_map_takes_the_gradient_of_the_maps_sum():
    # A 1x1 convolution scores every pixel <w, x_pixel>: the sum's gradient is w at each of the 16 pixels.
    critic = nn.Conv2d(3, 1, 1, bias=False)
    map_critic = lambda x: critic(x).squeeze(1)  # noqa: E731
    penalty = losses.r1_penalty(map_critic, torch.randn(2, 3, 4, 4))
    assert penalty.item() == pytest.approx(16 * critic.weight.square().sum().item(), rel=1e-5)


def test_lazy_r1_runs_every_k_steps_with_k_times_the_weight():
    weights = [losses.lazy_weight(0.5, 4, step) for step in range(8)]
    assert weights == [2.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0]
    assert sum(weights) / len(weights) == 0.5  # the same weight on average
    assert [losses.lazy_weight(0.5, 1, step) for step in range(3)] == [0.5] * 3
    with pytest.raises(ValueError, match="every: must be >= 1"):
        losses.lazy_weight(0.5, 0, 0)


def test_feature_matching_is_the_mean_over_layers_of_each_layers_mean_l1():
    real = [torch.zeros(2, 4, 8, 8), torch.zeros(2, 8, 4, 4)]
    fake = [torch.full((2, 4, 8, 8), 1.0), torch.full((2, 8, 4, 4), -3.0)]
    assert losses.feature_matching(real, fake).item() == pytest.approx((1.0 + 3.0) / 2)
    assert losses.feature_matching(real, [r.clone() for r in real]).item() == 0.0


def test_feature_matching_trains_the_generated_side_only():
    real = [torch.randn(2, 4, 8, 8, requires_grad=True)]
    fake = [torch.randn(2, 4, 8, 8, requires_grad=True)]
    loss = losses.feature_matching(real, fake)
    assert loss.item() > 0
    loss.backward()
    assert real[0].grad is None and fake[0].grad.abs().sum() > 0
    with pytest.raises(ValueError, match="features: expected the same non-zero number of layers"):
        losses.feature_matching(real, fake + fake)


@pytest.mark.parametrize("objective", ["gan", "nsgan", "hinge"])
def test_mask_aware_loss_with_every_cell_fake_is_the_plain_loss(objective):
    real, fake = torch.randn(3, 4, 4), torch.randn(3, 4, 4)
    every = torch.ones(4, 4, dtype=torch.bool)
    expected = losses.critic_loss(objective, real.flatten(), fake.flatten(), 0.1)
    assert losses.mask_aware_critic_loss(objective, real, fake, every, 0.1).item() == pytest.approx(expected.item(), rel=1e-5)
    # With no cell fake, the generated maps are judged as real ones.
    none = torch.zeros(4, 4, dtype=torch.bool)
    both_real = 2 * losses.cell_losses(objective, torch.cat([real, fake]), True, 0.1).mean()
    assert losses.mask_aware_critic_loss(objective, real, fake, none, 0.1).item() == pytest.approx(both_real.item(), rel=1e-5)


def test_mask_aware_hinge_by_hand_and_its_pull_on_each_cell():
    real = torch.zeros(1, 2, 2)  # relu(1 - 0) = 1 per cell
    fake = torch.full((1, 2, 2), 0.5, requires_grad=True)
    labels = torch.tensor([[True, False], [False, False]])
    loss = losses.mask_aware_critic_loss("hinge", real, fake, labels)
    assert loss.item() == pytest.approx(1.0 + (1.5 + 3 * 0.5) / 4)
    loss.backward()
    # The fake cell is pushed down, the cells that only see the context up, towards "real".
    assert fake.grad[0, 0, 0] > 0 and (fake.grad[0][~labels] < 0).all()


@pytest.mark.parametrize("objective", ["gan", "nsgan", "hinge", "wgan"])
def test_generator_term_on_maps_weighted_by_the_hole_labels(objective):
    fake = torch.randn(2, 4, 4)
    assert losses.generator_adversarial_map(objective, fake).item() == pytest.approx(
        losses.generator_adversarial(objective, fake).item())
    labels = torch.zeros(4, 4, dtype=torch.bool)
    labels[1:3, 1:3] = True
    weighted = losses.generator_adversarial_map(objective, fake, labels)
    assert weighted.item() == pytest.approx(losses.generator_adversarial(objective, fake[:, 1:3, 1:3]).item(), rel=1e-5)


def test_cell_losses_refuse_the_wasserstein_objectives():
    with pytest.raises(ValueError, match="no per-cell labels for objective 'wgan'; choose one of: gan, nsgan, hinge"):
        losses.cell_losses("wgan", torch.zeros(2), True)


def test_gradient_penalty_of_a_score_map_is_that_of_its_mean():
    conv = nn.Conv2d(3, 1, 3, padding=1)
    map_critic = lambda x: conv(x).squeeze(1)  # noqa: E731
    mean_critic = lambda x: conv(x).flatten(1).mean(1)  # noqa: E731
    real, fake = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    on_map = losses.gradient_penalty(map_critic, real, fake, torch.Generator().manual_seed(1))
    on_mean = losses.gradient_penalty(mean_critic, real, fake, torch.Generator().manual_seed(1))
    assert on_map.item() == pytest.approx(on_mean.item(), rel=1e-6)


def test_clip_weights_clamps_every_critic_parameter():
    critic = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
    with torch.no_grad():
        for parameter in critic.parameters():
            parameter.uniform_(-3, 3)
    losses.clip_weights(critic, 0.01)
    assert all(p.abs().max() <= 0.01 for p in critic.parameters())
    assert any(p.abs().max() == 0.01 for p in critic.parameters())
