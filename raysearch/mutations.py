"""The config keys a running trial can take without rebuilding its networks, and how it takes them.

Population Based Training copies a good trial's checkpoint into a worse one and
changes some of its hyperparameters (Jaderberg et al. 2017); a schedule replayed
by `raysearch.train` changes them at given epochs. Either way a trial goes on
from a state trained under other values. That is sound only for values the
update reads afresh, never for anything that shapes a network, an optimiser's
state or the data: those are refused (a kernel size would not even load).

How each key reaches a running trial (`MUTABLE_KEYS`):

- the learning rates live in the optimisers' param_groups, which loading an
  optimiser's state overwrites with the saved ones: `apply_learning_rates` puts
  the new value back, and into the schedule's `base_lrs`, so the per-epoch decay
  goes on as if the run had started with it (`lr = value * lr_decay ** epoch`);
- every other key is read from the trial's config by the update at each step
  (loop/phases.py) or each epoch (`phase_cycle`), and a trial restored under a
  new config holds the new config.

This module knows nothing of Ray: the loop imports it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from raysearch.config import ExperimentConfig, build_config, config_to_dict, flatten, set_dotted
from raysearch.errors import ConfigError

# key -> where a running trial reads it (the reason it may change between two epochs).
MUTABLE_KEYS: dict[str, str] = {
    "optim.generator_lr": "the generator optimiser's param_groups and schedule (apply_learning_rates)",
    "optim.critic_lr": "the critic optimiser's param_groups and schedule (apply_learning_rates)",
    "train.critic_steps": "phase_cycle, every epoch",
    "train.generator_steps": "phase_cycle, every epoch",
    "objective.adv_weight": "the generator step",
    "objective.l2_weight": "the generator step",
    "objective.feature_matching_weight": "the generator step (every critic returns its features)",
    "objective.clip_penalty_weight": "the generator step",
    "objective.clip": "the weight clipping after each critic step",
    "objective.gp_weight": "the critic step (wgan-gp)",
    "objective.r1_weight": "the critic step (lazy R1's clock is part of the state)",
    "objective.instance_noise": "the critic step",
    "objective.label_smoothing": "the critic step",
}

# Learning-rate keys and the optimiser each one drives (Optimizers' attribute names).
LEARNING_RATES = {"optim.generator_lr": "generator", "optim.critic_lr": "critic"}

# A run's epoch budget may differ from its checkpoint's (a resumed run trains more epochs).
BUDGET_KEYS = ("train.epochs",)


def typed(key: str, value: Any) -> Any:
    """A mutable key's value as its config field's type (a dataframe or TensorBoard gives 2.0 for train.critic_steps)."""
    default = flatten(config_to_dict(ExperimentConfig()))[key]
    return int(round(value)) if isinstance(default, int) and not isinstance(default, bool) else float(value)


def allowed_keys() -> str:
    return ", ".join(MUTABLE_KEYS)


def split_differences(saved: dict[str, Any], current: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(mutable keys whose value differs, descriptions of every other difference) between a checkpoint's config
    and the config a trial restores it under; the epoch budget is neither."""
    saved_flat, current_flat = flatten(saved), flatten(current)
    mutated, refused = [], []
    for key in sorted(set(saved_flat) | set(current_flat)):
        before, after = saved_flat.get(key), current_flat.get(key)
        if before == after or key in BUDGET_KEYS:
            continue
        if key in MUTABLE_KEYS:
            mutated.append(key)
        else:
            refused.append(f"{key} ({before!r} in the checkpoint, {after!r} now)")
    return mutated, refused


def apply_learning_rates(optimizers: Any, cfg: ExperimentConfig, keys: list[str] | tuple[str, ...]) -> None:
    """Put `cfg`'s learning rates named in `keys` into the loop's optimisers (loop.networks.Optimizers) and their
    ExponentialLR schedules, as if the run had started with them.

    ExponentialLR is chainable: each epoch multiplies the param_groups' lr by gamma, so the lr after `n`
    scheduled epochs of a run that started at `value` is value * gamma**n; `base_lrs` and `initial_lr` (what a
    closed form or a rebuilt schedule starts from) become `value` too.
    """
    for key in keys:
        name = LEARNING_RATES.get(key)
        if name is None:
            continue
        optimizer = getattr(optimizers, name)
        schedule = getattr(optimizers, f"{name}_schedule")
        if optimizer is None:
            continue  # a critic's rate in a run without a critic: nothing trains under it
        value = float(flatten(config_to_dict(cfg))[key])
        current = value * schedule.gamma ** schedule.last_epoch
        for group in optimizer.param_groups:
            group["lr"] = current
            group["initial_lr"] = value
        schedule.base_lrs = [value for _ in optimizer.param_groups]


def with_values(cfg: ExperimentConfig, values: dict[str, Any], source: str) -> ExperimentConfig:
    """`cfg` with dotted `values` set (each a mutable key), validated as any config; ConfigError names `source`."""
    refused = [key for key in values if key not in MUTABLE_KEYS]
    if refused:
        raise ConfigError(f"{source}: {refused[0]} cannot change during a run (it shapes the networks, the "
                          f"optimiser state or the data); allowed: {allowed_keys()}")
    changed = copy.deepcopy(config_to_dict(cfg))
    for key, value in values.items():
        set_dotted(changed, key, value)
    return build_config(changed, source=source)


# ---------------------------------------------------------------- a schedule: epoch -> values


@dataclass(frozen=True)
class Schedule:
    """Values a run changes at given epochs, and the keys it shows as scalars every epoch.

    `changes`: (epoch, {mutable key: value}) pairs, epochs ascending; the values take effect for the epochs
    after `epoch` completed ones (0: from the start). `tracked`: keys logged as `schedule/<key>` every epoch (a
    PBT search's mutated keys, or a replayed schedule's), so TensorBoard shows each value over the epochs.
    """

    changes: tuple[tuple[int, dict[str, Any]], ...] = ()
    tracked: tuple[str, ...] = ()

    def values_at(self, epoch: int) -> dict[str, Any]:
        """Every value set by the changes at or before `epoch` completed epochs (later ones win)."""
        values: dict[str, Any] = {}
        for at, change in self.changes:
            if at <= epoch:
                values.update(change)
        return values

    def change_at(self, epoch: int) -> dict[str, Any]:
        return next((dict(change) for at, change in self.changes if at == epoch), {})

    def to_yaml(self) -> dict[int, dict[str, Any]]:
        return {at: dict(change) for at, change in self.changes}


SCHEDULE_PREFIX = "schedule/"


def schedule_key(key: str) -> str:
    """The metric (and TensorBoard tag) under which a run reports `key`'s value every epoch."""
    return f"{SCHEDULE_PREFIX}{key}"


def tracked_values(cfg: ExperimentConfig, schedule: Schedule | None) -> dict[str, float]:
    """`schedule/<key>` -> the value `cfg` holds, for every tracked key (all numbers: TensorBoard scalars)."""
    if schedule is None or not schedule.tracked:
        return {}
    flat = flatten(config_to_dict(cfg))
    return {schedule_key(key): flat[key] for key in schedule.tracked}


def parse_schedule(raw: Any, where: str) -> Schedule:
    """A `schedule:` section ({epoch: {key: value}}, as best_config.yaml writes it) -> Schedule, or ConfigError
    naming `where` and the entry."""
    if raw is None:
        return Schedule()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: schedule: expected a mapping of epochs to {{key: value}}, got {raw!r}")
    changes = []
    for epoch, values in raw.items():
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise ConfigError(f"{where}: schedule: {epoch!r} is not an epoch (an integer >= 0)")
        if not isinstance(values, dict) or not values:
            raise ConfigError(f"{where}: schedule.{epoch}: expected a mapping of config keys to values, got {values!r}")
        for key in values:
            if key not in MUTABLE_KEYS:
                raise ConfigError(f"{where}: schedule.{epoch}.{key}: cannot change during a run; "
                                  f"allowed: {allowed_keys()}")
        changes.append((epoch, dict(values)))
    changes.sort(key=lambda change: change[0])
    tracked = tuple(sorted({key for _, values in changes for key in values}))
    return Schedule(tuple(changes), tracked)
