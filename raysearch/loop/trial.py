"""A trial's state: its data on the device, networks, optimisers, the GAN update, counters and sampling
generator; built from a config, saved whole as a checkpoint, restored whole from one (STYLE: 7)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from raysearch import mutations
from raysearch.checkpoint import STATE_FILE, check_state, load_part
from raysearch.config import ExperimentConfig, build_config, config_to_dict
from raysearch.errors import CheckpointError, ConfigError
from raysearch.loop.batches import TrainingData
from raysearch.loop.networks import Networks, Optimizers, build_networks, build_optimizers, unwrap
from raysearch.loop.phases import GanUpdate


@dataclass(frozen=True)
class Worker:
    """Where this copy of the loop runs: its rank among the trial's workers (DDP), the device, and how models
    are wrapped for that (Ray Train's prepare_model on a Train worker; unwrapped in one process)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    prepare_model: Callable[[nn.Module], nn.Module] = lambda module: module


def local_worker(cfg: ExperimentConfig) -> Worker:
    """The only worker of a one-process run: the device `train.device` names (`auto`: the GPU when torch sees one)."""
    wanted = cfg.train.device
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    if wanted == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda: torch sees no GPU here (torch.cuda.is_available() is False); "
                          "allowed: train.device=auto or cpu")
    return Worker(device=torch.device(wanted))


class Trial:
    """The state of one training run."""

    def __init__(self, cfg: ExperimentConfig, worker: Worker | None = None) -> None:
        worker = worker or local_worker(cfg)
        self.cfg = cfg
        self.worker = worker
        self.device = worker.device
        self.data = TrainingData(cfg, self.device, worker.rank, worker.world_size)
        self.networks: Networks = build_networks(cfg, self.data.vocab_size, self.device, worker.prepare_model)
        self.optimizers: Optimizers = build_optimizers(cfg, self.networks, self.device)
        # Noise, instance noise, augmentation and penalty interpolation; reseeded every epoch from
        # (seed, rank, epoch) (STYLE: 8), so a resumed run draws what it would have.
        self.sample_rng = torch.Generator(device=self.device)
        self.update = GanUpdate(cfg, self.networks, self.optimizers, self.device, self.sample_rng)
        self.epoch = 0  # completed epochs
        self.step = 0  # batches seen

    def seed_epoch(self) -> None:
        self.sample_rng.manual_seed(self.cfg.train.seed * 1_000_003 + self.worker.rank * 10_007 + self.epoch)

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
            "generator_optimizer": optimizers.generator.state_dict(),
            "critic_optimizer": optimizers.critic.state_dict() if optimizers.critic is not None else None,
            "generator_schedule": optimizers.generator_schedule.state_dict(),
            "critic_schedule": optimizers.critic_schedule.state_dict() if optimizers.critic_schedule is not None
            else None,
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
        # A config may differ in keys a running trial can take (a PBT exploit, a replayed schedule): loaded,
        # then applied below. Anything else would load a state trained for another model.
        mutated, differences = mutations.split_differences(saved, config_to_dict(self.cfg))
        if differences:
            raise CheckpointError(f"{path}: checkpoint was made with another config: {'; '.join(differences)} "
                                  f"(only these may differ: train.epochs, {mutations.allowed_keys()})")
        for key, target, what in self._restored_parts():
            if state[key] is None:
                raise CheckpointError(f"{path}: entry {key!r} is null, but this config needs its {what}")
            load_part(target, state[key], what, path)
        try:
            torch.set_rng_state(state["rng"]["torch"])
        except (RuntimeError, TypeError) as err:
            raise CheckpointError(f"{path}: its random-generator state is not torch's ({err})") from None
        self.epoch = state["epoch"]
        self.step = state["step"]
        # Lazy R1's clock; checkpoints from before R1 existed never ran it.
        self.update.critic_steps = state.get("critic_steps", 0)
        # ---- PBT hook: the optimisers' states brought the checkpoint's learning rates back; use this config's.
        mutations.apply_learning_rates(self.optimizers, self.cfg, mutated)

    def apply_config(self, cfg: ExperimentConfig) -> None:
        """Go on under `cfg`, which may differ from the trial's config only in mutations.MUTABLE_KEYS (a replayed
        schedule's change): the update reads steps and weights from it, the optimisers take its learning rates."""
        mutated, refused = mutations.split_differences(config_to_dict(self.cfg), config_to_dict(cfg))
        if refused:
            raise ConfigError(f"a running trial cannot change {refused[0]}; allowed: {mutations.allowed_keys()}")
        self.cfg = cfg
        self.update.cfg = cfg
        mutations.apply_learning_rates(self.optimizers, cfg, mutated)

    def _restored_parts(self) -> list[tuple[str, Any, str]]:
        """(checkpoint entry, what loads it, its name in errors) for every part this config trains."""
        networks, optimizers = self.networks, self.optimizers
        parts = [("generator", unwrap(networks.generator), "generator"),
                 ("generator_optimizer", optimizers.generator, "generator optimiser"),
                 ("generator_schedule", optimizers.generator_schedule, "generator schedule")]
        if networks.generator_average is not None:
            parts.append(("generator_average", networks.generator_average, "generator average (train.ema_decay)"))
        if networks.critic is not None:
            parts += [("critic", unwrap(networks.critic), "critic"),
                      ("critic_optimizer", optimizers.critic, "critic optimiser"),
                      ("critic_schedule", optimizers.critic_schedule, "critic schedule")]
        return parts
