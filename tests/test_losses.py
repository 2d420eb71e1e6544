"""Objectives and tricks: values on known scores, saturation of seed 000's minimax form."""

import pytest
import torch
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
