"""The GAN update as named phases, whose names prefix their log keys (STYLE: 6); `GanUpdate.critic_step` and
`GanUpdate.generator_step` run them:

- `critic`: one critic step on a batch of real and generated centers (`critic/loss`,
  `critic/real_score`, `critic/fake_score`), with its gradient penalty logged as
  `critic_gp/penalty` under `wgan-gp`, R1 on real images as `critic_r1/penalty`
  (`objective.r1_weight`, every `r1_every` critic steps), and WGAN's weight clipping
  after the step; a patch critic's cells are labelled by what they see with
  `objective.mask_aware_labels`;
- `generator`: one generator step on the reconstruction and, past the L2
  pretraining epochs, the adversarial term and the feature matching on the critic's
  features (`generator/l2`, `generator/adversarial`, `generator/feature_matching`,
  `generator/clip_penalty`, `generator/loss`). A `realism_residual` generator's L2
  path learns the reconstruction alone (`generator/l2_path`); its full output
  (the L2 path held fixed, plus the residual) learns the weighted reconstruction and
  the adversarial terms.

An epoch feeds its batches to the phases in the order `phase_cycle` gives.
"""

from __future__ import annotations

import torch
from torch import Tensor

from models.generators import activate_output, mix_paths
from models.geometry import crop_center, mask_context, output_size, paste_center
from raysearch import losses
from raysearch.config import ExperimentConfig
from raysearch.fill import autocast, generate
from raysearch.loop.batches import augment
from raysearch.loop.networks import Networks, Optimizers, unwrap

CRITIC, CRITIC_GP, CRITIC_R1, GENERATOR = "critic", "critic_gp", "critic_r1", "generator"


def phase_cycle(cfg: ExperimentConfig, adversarial: bool) -> list[str]:
    """Which phase each batch of an epoch feeds: critic_steps critic batches then generator_steps
    generator batches, repeated; only the generator without an adversary (or while pretraining)."""
    if not adversarial:
        return [GENERATOR]
    return [CRITIC] * cfg.train.critic_steps + [GENERATOR] * cfg.train.generator_steps


class GanUpdate:
    """The phases of one trial: its networks, optimisers and sampling generator, stepped one batch at a time."""

    def __init__(self, cfg: ExperimentConfig, networks: Networks, optimizers: Optimizers, device: torch.device,
                 sample_rng: torch.Generator) -> None:
        self.cfg = cfg
        self.networks = networks
        self.optimizers = optimizers
        self.device = device
        self.rng = sample_rng  # noise, instance noise, augmentation and penalty interpolation
        self.critic_steps = 0  # lazy R1's clock; part of the trial's state
        self.margin = cfg.generator.context_margin
        objective = cfg.objective
        self.reconstruction_weights = (
            losses.border_weights(output_size(self.margin), self.margin, objective.border_width,
                                  objective.border_weight).to(device)
            if objective.border_weight else None
        )

    def noise(self, count: int) -> Tensor | None:
        dim = self.cfg.generator.noise_length
        return torch.randn(count, dim, generator=self.rng, device=self.device) if dim else None

    def critic_inputs(self, context: Tensor, center: Tensor) -> Tensor:
        """What the critic sees: the center alone, or the context with the center pasted in."""
        return paste_center(context, center) if self.cfg.critic.input == "whole" else center

    def critic_step(self, images: Tensor, tokens: Tensor) -> dict[str, Tensor]:
        """One critic step; the logs of phases `critic`, `critic_gp` and `critic_r1`."""
        objective = self.cfg.objective
        critic, generator = self.networks.critic, self.networks.generator
        images = augment(images, self.cfg.data.augment, self.rng)
        context = mask_context(images)
        real_center = crop_center(images, self.margin)
        with torch.no_grad(), autocast(self.cfg, self.device):
            fake_center, _ = generate(self.cfg, generator, context, tokens, self.noise(len(images)))
        real = losses.instance_noise(self.critic_inputs(context, real_center), objective.instance_noise, self.rng)
        fake = self.critic_inputs(context, fake_center)
        if objective.instance_noise_on == "both":
            fake = losses.instance_noise(fake, objective.instance_noise, self.rng)
        with autocast(self.cfg, self.device):
            real_scores = critic(real).float()
            fake_scores = critic(fake).float()
            if objective.mask_aware_labels:  # a generated image's cells are fake only where they see the hole
                loss = losses.mask_aware_critic_loss(objective.name, real_scores, fake_scores,
                                                     unwrap(critic).hole_labels, objective.label_smoothing)
            else:
                loss = losses.critic_loss(objective.name, real_scores, fake_scores, objective.label_smoothing)
            logs = {f"{CRITIC}/loss": loss.detach(), f"{CRITIC}/real_score": real_scores.detach().mean(),
                    f"{CRITIC}/fake_score": fake_scores.detach().mean()}
            total = loss
            if objective.name == "wgan-gp":
                penalty = losses.gradient_penalty(critic, real, fake, self.rng)
                total = loss + objective.gp_weight * penalty
                logs[f"{CRITIC_GP}/penalty"] = penalty.detach()
            r1_weight = (losses.lazy_weight(objective.r1_weight, objective.r1_every, self.critic_steps)
                         if objective.r1_weight else 0.0)
            if r1_weight:
                penalty = losses.r1_penalty(critic, real)
                total = total + r1_weight * penalty
                logs[f"{CRITIC_R1}/penalty"] = penalty.detach()
        optimizer = self.optimizers.critic
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        self.critic_steps += 1
        if objective.name == "wgan":
            losses.clip_weights(critic, objective.clip)
        return logs

    def generator_step(self, images: Tensor, tokens: Tensor, adversarial: bool) -> dict[str, Tensor]:
        """One generator step; the logs of phase `generator`."""
        objective = self.cfg.objective
        images = augment(images, self.cfg.data.augment, self.rng)
        context = mask_context(images)
        real_center = crop_center(images, self.margin)
        with autocast(self.cfg, self.device):
            logs: dict[str, Tensor] = {}
            fake_center, clip_penalty, loss = self.generated_for_training(context, tokens, real_center, logs)
            l2 = losses.reconstruction(fake_center, real_center, self.reconstruction_weights, objective.reconstruction)
            logs[f"{GENERATOR}/l2"] = l2.detach()
            # During L2 pretraining the reconstruction trains alone, unscaled.
            loss = loss + (objective.l2_weight * l2 if adversarial else l2)
            if adversarial:
                loss = loss + self.adversarial_terms(context, fake_center, real_center, logs)
            if clip_penalty is not None:
                loss = loss + objective.clip_penalty_weight * clip_penalty
                logs[f"{GENERATOR}/clip_penalty"] = clip_penalty.detach()
        logs[f"{GENERATOR}/loss"] = loss.detach()
        optimizer = self.optimizers.generator
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if self.networks.generator_average is not None:
            self.networks.generator_average.update()
        return logs

    def generated_for_training(self, context: Tensor, tokens: Tensor, real_center: Tensor,
                               logs: dict[str, Tensor]) -> tuple[Tensor, Tensor | None, Tensor]:
        """(the generated center, its clip penalty, the loss so far). A `realism_residual` generator's L2 path
        learns the reconstruction here at weight 1; its full output holds that path fixed (`mix_paths` of the
        detached path and the residual at alpha 1), so the critic's terms train the residual alone."""
        noise = self.noise(len(context))
        if not self.cfg.generator.realism_residual:
            fake_center, clip_penalty = generate(self.cfg, self.networks.generator, context, tokens, noise)
            return fake_center, clip_penalty, torch.zeros((), device=context.device)
        l2_path, residual = self.networks.generator(context, tokens, noise, return_paths=True)
        kind = self.cfg.generator.output_activation
        l2_center, l2_penalty = activate_output(l2_path.float(), kind)
        fake_center, clip_penalty = activate_output(mix_paths(l2_path.detach(), residual, 1.0).float(), kind)
        path_loss = losses.reconstruction(l2_center, real_center, self.reconstruction_weights,
                                          self.cfg.objective.reconstruction)
        logs[f"{GENERATOR}/l2_path"] = path_loss.detach()
        if l2_penalty is not None:
            clip_penalty = clip_penalty + l2_penalty
        return fake_center, clip_penalty, path_loss

    def adversarial_terms(self, context: Tensor, fake_center: Tensor, real_center: Tensor,
                          logs: dict[str, Tensor]) -> Tensor:
        """adv_weight x the adversarial term (+ feature_matching_weight x the feature matching) of a batch."""
        objective = self.cfg.objective
        # The unwrapped critic: its weights are not trained here, so no DDP sync is needed.
        critic = unwrap(self.networks.critic)
        critic.requires_grad_(False)
        matching = objective.feature_matching_weight > 0
        fake = critic(self.critic_inputs(context, fake_center), return_features=matching)
        fake_scores, fake_features = fake if matching else (fake, None)
        adversarial = losses.generator_adversarial(objective.name, fake_scores.float())
        logs[f"{GENERATOR}/adversarial"] = adversarial.detach()
        total = objective.adv_weight * adversarial
        if matching:
            with torch.no_grad():
                _, real_features = critic(self.critic_inputs(context, real_center), return_features=True)
            matched = losses.feature_matching(real_features, fake_features)
            logs[f"{GENERATOR}/feature_matching"] = matched.detach()
            total = total + objective.feature_matching_weight * matched
        critic.requires_grad_(True)
        return total
