"""A trial's networks and optimisers, built from its config: the generator (with its caption encoder), the
critic of adversarial objectives, the generator's weight average, and their optimisers and schedules."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from models import ConditionedGenerator, build_critic
from models.geometry import IMAGE_SIZE, output_size
from raysearch.config import ExperimentConfig

# torch.compile's mode per device type (train.compile=true). On CUDA, CUDA graphs
# ("reduce-overhead"): the step is launch-bound at search batch sizes (docs/benchmarks.md).
# On CPU, the default (inductor's C++ kernels). wgan-gp is rejected with compile
# (config.check_combinations): its double backward cannot run compiled.
COMPILE_MODE = {"cuda": "reduce-overhead", "cpu": "default"}


class WeightAverage:
    """An exponential moving average of a network's weights (Polyak averaging), for evaluation.

    Parameters are averaged at every update; buffers (batch-norm statistics,
    themselves running averages) are copied from the trained network only when
    the average is used (`synced`, `state_dict`), not at every step. Before
    `decay` is reached the average runs over the updates seen so far,
    min(decay, (1 + n) / (10 + n)).
    """

    def __init__(self, network: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.network = copy.deepcopy(network).eval().requires_grad_(False)
        # Both parameter lists are taken once: an update is one fused lerp, no per-parameter Python.
        self.averaged_parameters = list(self.network.parameters())
        self.trained = network
        self.trained_parameters = list(network.parameters())

    @torch.no_grad()
    def update(self) -> None:
        """Move the average toward the trained network's current weights."""
        weight = 1.0 - min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.averaged_parameters, self.trained_parameters, weight)
        self.updates += 1

    @torch.no_grad()
    def synced(self) -> nn.Module:
        """The averaged network, with the trained network's current buffers."""
        buffers = list(self.network.buffers())
        if buffers:
            torch._foreach_copy_(buffers, list(self.trained.buffers()))
        return self.network

    def state_dict(self) -> dict[str, Any]:
        return {"network": self.synced().state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["network"])
        self.updates = state["updates"]


@dataclass
class Networks:
    """What a trial trains: the generator, the critic (None without an adversary) and the generator's
    weight average (None without `train.ema_decay`), each as the loop calls it (DDP- or compile-wrapped)."""

    generator: nn.Module
    critic: nn.Module | None
    generator_average: WeightAverage | None

    def evaluated_generator(self) -> nn.Module:
        """The generator validation measures: the weight average where the run keeps one."""
        return self.generator_average.synced() if self.generator_average is not None else self.generator


def build_networks(cfg: ExperimentConfig, vocab_size: int, device: torch.device,
                   prepare_model: Callable[[nn.Module], nn.Module]) -> Networks:
    """The trial's networks on `device`, wrapped by `prepare_model` (DDP), compiled with `train.compile`.

    Seeded from `train.seed` here, so the initial weights do not depend on what ran before in this process.
    """
    torch.manual_seed(cfg.train.seed)
    generator = ConditionedGenerator(cfg.generator, cfg.captions, vocab_size).to(device)
    critic = None
    if cfg.objective.adversarial:
        size = IMAGE_SIZE if cfg.critic.input == "whole" else output_size(cfg.generator.context_margin)
        critic = build_critic(cfg.critic, input_size=size).to(device)
    if cfg.train.channels_last:
        generator = generator.to(memory_format=torch.channels_last)
        critic = critic.to(memory_format=torch.channels_last) if critic is not None else None
    generator = prepare_model(generator)
    critic = prepare_model(critic) if critic is not None else None
    if cfg.train.compile:
        mode = COMPILE_MODE[device.type]
        generator = torch.compile(generator, mode=mode)
        critic = torch.compile(critic, mode=mode) if critic is not None else None
    average = WeightAverage(unwrap(generator), cfg.train.ema_decay) if cfg.train.ema_decay else None
    return Networks(generator, critic, average)


@dataclass
class Optimizers:
    """Each network's optimiser and its per-epoch learning-rate schedule (the critic's are None without one)."""

    generator: torch.optim.Optimizer
    generator_schedule: torch.optim.lr_scheduler.LRScheduler
    critic: torch.optim.Optimizer | None
    critic_schedule: torch.optim.lr_scheduler.LRScheduler | None

    def end_epoch(self) -> None:
        self.generator_schedule.step()
        if self.critic_schedule is not None:
            self.critic_schedule.step()


def build_optimizers(cfg: ExperimentConfig, networks: Networks, device: torch.device) -> Optimizers:
    optim = cfg.optim
    generator = _optimizer(cfg, networks.generator.parameters(), optim.generator_lr, device)
    critic = critic_schedule = None
    if networks.critic is not None:
        critic = _optimizer(cfg, networks.critic.parameters(), optim.critic_lr, device)
        critic_schedule = torch.optim.lr_scheduler.ExponentialLR(critic, gamma=optim.lr_decay)
    return Optimizers(generator, torch.optim.lr_scheduler.ExponentialLR(generator, gamma=optim.lr_decay),
                      critic, critic_schedule)


def _optimizer(cfg: ExperimentConfig, parameters: Iterable[nn.Parameter], lr: float,
               device: torch.device) -> torch.optim.Optimizer:
    optim = cfg.optim
    if optim.name == "adam":
        # On a GPU the fused kernel: one launch per step instead of a few per parameter group (docs/benchmarks.md);
        # elsewhere torch's default implementation.
        fused = True if device.type == "cuda" else None
        return torch.optim.Adam(parameters, lr=lr, betas=optim.betas, weight_decay=optim.weight_decay, fused=fused)
    return torch.optim.RMSprop(parameters, lr=lr, alpha=optim.betas[1], weight_decay=optim.weight_decay)


def unwrap(module: nn.Module | None) -> nn.Module | None:
    """The network inside a DDP and/or torch.compile wrapper."""
    while module is not None and (hasattr(module, "module") or hasattr(module, "_orig_mod")):
        module = module.module if hasattr(module, "module") else module._orig_mod
    return module
