"""A trial's state: its data on the device, networks, optimisers, the GAN update, counters and sampling
generator; built from a config, saved whole as a checkpoint, restored whole from one (STYLE: 7)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from raysearch.checkpoint import STATE_FILE, check_state, config_differences, load_part
from raysearch.config import ExperimentConfig, build_config, config_to_dict
from raysearch.errors import CheckpointError, ConfigError
from raysearch.loop.batches import TrainingData
from raysearch.loop.networks import Networks, Optimizers, build_networks, build_optimizers, unwrap
from raysearch.loop.phases import GanUpdate


@dataclass(frozen=True)
class Runtime:
    """Where this copy of the loop runs: its rank, the device, and how models are wrapped (DDP)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    prepare_model: Callable[[nn.Module], nn.Module] = lambda module: module


def local_runtime(cfg: ExperimentConfig) -> Runtime:
    """One process: the device `train.device` names (`auto`: the GPU when torch sees one)."""
    wanted = cfg.train.device
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    if wanted == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda: torch sees no GPU here (torch.cuda.is_available() is False); "
                          "allowed: train.device=auto or cpu")
    return Runtime(device=torch.device(wanted))


class Trial:
    """The state of one training run."""

    def __init__(self, cfg: ExperimentConfig, runtime: Runtime | None = None) -> None:
        runtime = runtime or local_runtime(cfg)
        self.cfg = cfg
        self.runtime = runtime
        self.device = runtime.device
        self.data = TrainingData(cfg, self.device, runtime.rank, runtime.world_size)
        self.networks: Networks = build_networks(cfg, self.data.vocab_size, self.device, runtime.prepare_model)
        self.optimizers: Optimizers = build_optimizers(cfg, self.networks, self.device)
        # Noise, instance noise, augmentation and penalty interpolation; reseeded every epoch from
        # (seed, rank, epoch) (STYLE: 8), so a resumed run draws what it would have.
        self.sample_rng = torch.Generator(device=self.device)
        self.update = GanUpdate(cfg, self.networks, self.optimizers, self.device, self.sample_rng)
        self.epoch = 0  # completed epochs
        self.step = 0  # batches seen

    def seed_epoch(self) -> None:
        self.sample_rng.manual_seed(self.cfg.train.seed * 1_000_003 + self.runtime.rank * 10_007 + self.epoch)

    def end_epoch(self) -> None:
        self.epoch += 1
        self.optimizers.end_epoch()

    def state(self) -> dict[str, Any]:
        """Everything a resumed run needs (checkpoint.STATE_TYPES lists the entries)."""
        networks, optimizers = self.networks, self.optimizers
        average = networks.generator_average
        return {
            "config": config_to_dict(self.cfg),
            "epoch": self.epoch,
            "step": self.step,
            "generator": unwrap(networks.generator).state_dict(),
            "generator_average": average.state_dict() if average is not None else None,
            "critic": unwrap(networks.critic).state_dict() if networks.critic is not None else None,
            "opt_g": optimizers.generator.state_dict(),
            "opt_d": optimizers.critic.state_dict() if optimizers.critic is not None else None,
            "sched_g": optimizers.generator_schedule.state_dict(),
            "sched_d": optimizers.critic_schedule.state_dict() if optimizers.critic_schedule is not None else None,
            "rng": {"torch": torch.get_rng_state()},
            "critic_steps": self.update.critic_steps,
        }

    def restore(self, state: dict[str, Any], source: Path) -> None:
        """Load a checkpoint made by this config (its epochs may differ); CheckpointError names what does not fit."""
        path = Path(source) / STATE_FILE
        check_state(state, path)
        try:  # the saved config with today's defaults for options added since it was written
            saved = config_to_dict(build_config(state["config"], source=f"{path}: its config"))
        except ConfigError as err:
            raise CheckpointError(str(err)) from None
        differences = [d for d in config_differences(saved, config_to_dict(self.cfg))
                       if not d.startswith("train.epochs ")]
        if differences:
            raise CheckpointError(f"{path}: checkpoint was made with another config: {'; '.join(differences)}")
        self.load_weights(state, path)
        optimizers = self.optimizers
        if self.networks.critic is not None:
            for key in ("opt_d", "sched_d"):
                if state[key] is None:
                    raise CheckpointError(f"{path}: entry {key!r} is null, but this config trains a critic")
            load_part(optimizers.critic, state["opt_d"], "critic optimiser", path)
            load_part(optimizers.critic_schedule, state["sched_d"], "critic scheduler", path)
        load_part(optimizers.generator, state["opt_g"], "generator optimiser", path)
        load_part(optimizers.generator_schedule, state["sched_g"], "generator scheduler", path)
        try:
            torch.set_rng_state(state["rng"]["torch"])
        except (RuntimeError, TypeError) as err:
            raise CheckpointError(f"{path}: its random-generator state is not torch's ({err})") from None
        self.epoch = state["epoch"]
        self.step = state["step"]
        # Lazy R1's clock; checkpoints from before R1 existed never ran it.
        self.update.critic_steps = state.get("critic_steps", 0)

    def load_weights(self, state: dict[str, Any], path: Path | str) -> None:
        """The networks' weights (and the generator's average) of a checkpoint, without the optimisers:
        what evaluating a checkpoint needs. A generator-only checkpoint (checkpoint.generator_only) has no
        critic entry, and validation needs none: the critic keeps its initial weights then."""
        networks = self.networks
        load_part(unwrap(networks.generator), state["generator"], "generator", path)
        if networks.generator_average is not None:
            if state["generator_average"] is None:
                raise CheckpointError(f"{path}: entry 'generator_average' is null, but this config keeps one "
                                      "(train.ema_decay)")
            load_part(networks.generator_average, state["generator_average"], "generator average", path)
        if networks.critic is not None and "critic" in state:
            if state["critic"] is None:
                raise CheckpointError(f"{path}: entry 'critic' is null, but this config trains a critic")
            load_part(unwrap(networks.critic), state["critic"], "critic", path)
