"""One epoch of training: the shuffled batches through the phases, their logs kept on the device, and the
watch for a non-finite loss or weight (a diverged trial stops cleanly instead of crashing)."""

from __future__ import annotations

import math
import time

import torch
from torch import Tensor

from raysearch.loop.networks import COMPILE_MODE
from raysearch.loop.phases import CRITIC, CRITIC_GP, CRITIC_R1, GENERATOR, phase_cycle
from raysearch.loop.trial import Trial

# How often (in batches) the loop synchronises with the device to look for a
# non-finite loss; checking every step would stall a GPU.
DIVERGENCE_CHECK_EVERY = 25


class EpochLog:
    """One epoch's per-batch logs, kept on the device as they come: no device op and no sync per batch.

    Every phase log (a detached 0-dim tensor) is appended to its key's list;
    the epoch means are one stack per key at the end. The losses (`*/loss` and
    the gradient penalty) are also the divergence watch: `diverged_phase` looks
    at the entries added since its last call (one stack and one sync per call)
    and names the phase whose loss went non-finite at the earliest batch.
    """

    def __init__(self) -> None:
        self.values: dict[str, list[Tensor]] = {}
        self.batches: dict[str, list[int]] = {}  # per watched key: the batch index of each entry
        self.checked: dict[str, int] = {}  # per watched key: entries already seen finite
        self.first_bad: dict[str, int] = {}  # phase -> the earliest batch with a non-finite loss

    def add(self, batch: int, logs: dict[str, Tensor]) -> None:
        for key, value in logs.items():
            self.values.setdefault(key, []).append(value)
            if watched(key):
                self.batches.setdefault(key, []).append(batch)

    def diverged_phase(self) -> str | None:
        """The phase whose loss went non-finite first (one sync over the entries not yet checked), or None."""
        fresh = [(key, i) for key, batches in self.batches.items()
                 for i in range(self.checked.get(key, 0), len(batches))]
        if fresh:
            finite = torch.isfinite(torch.stack([self.values[key][i] for key, i in fresh])).tolist()
            for (key, i), ok in zip(fresh, finite):
                if not ok:
                    phase, batch = key.split("/")[0], self.batches[key][i]
                    self.first_bad[phase] = min(self.first_bad.get(phase, batch), batch)
            self.checked = {key: len(batches) for key, batches in self.batches.items()}
        return min(self.first_bad, key=self.first_bad.get) if self.first_bad else None

    def means(self) -> dict[str, float]:
        """Each key's mean over the epoch (one sync for all of them)."""
        keys = list(self.values)
        if not keys:
            return {}
        means = torch.stack([torch.stack(self.values[key]).float().mean() for key in keys]).tolist()
        return dict(zip(keys, means))


def watched(key: str) -> bool:
    """The logs whose non-finite value means a phase diverged: its loss, and the gradient penalties."""
    return key.endswith("/loss") or key in (f"{CRITIC_GP}/penalty", f"{CRITIC_R1}/penalty")


def train_epoch(trial: Trial) -> tuple[dict[str, float], str | None]:
    """One epoch of `trial`; its mean phase logs and the phase that diverged, if any."""
    cfg, networks = trial.cfg, trial.networks
    networks.generator.train()
    if networks.critic is not None:
        networks.critic.train()
    trial.seed_epoch()
    adversarial = networks.critic is not None and trial.epoch >= cfg.train.pretrain_epochs
    cycle = phase_cycle(cfg, adversarial)
    log = EpochLog()
    started = time.perf_counter()
    batches = trial.data.epoch_batches(trial.epoch)
    if cfg.train.steps_per_epoch:
        # A step is one cycle: critic_steps critic batches, then generator_steps generator batches.
        batches = batches[: cfg.train.steps_per_epoch * len(cycle)]
    graphed = cfg.train.compile and COMPILE_MODE[trial.device.type] == "reduce-overhead"
    for index, indices in enumerate(batches):
        if graphed:
            torch.compiler.cudagraph_mark_step_begin()  # no output of the last step is reused
        images, tokens = trial.data.batch(indices)
        phase = cycle[index % len(cycle)]
        logs = trial.update.critic_step(images, tokens) if phase == CRITIC else \
            trial.update.generator_step(images, tokens, adversarial)
        trial.step += 1
        log.add(index, logs)
        if (index + 1) % DIVERGENCE_CHECK_EVERY == 0 and log.diverged_phase():
            break
    phase = log.diverged_phase() or non_finite_weights(trial)
    elapsed = time.perf_counter() - started
    means = log.means()
    means["train/images_per_s"] = len(batches) * cfg.train.batch_size * trial.worker.world_size / max(elapsed, 1e-9)
    means["train/epoch_s"] = elapsed
    means["train/threads"] = torch.get_num_threads()  # the trial's CPU share in a search, or the machine's cores
    means["train/generator_lr"] = trial.optimizers.generator.param_groups[0]["lr"]
    if trial.optimizers.critic is not None:
        means["train/critic_lr"] = trial.optimizers.critic.param_groups[0]["lr"]
    return means, phase


def non_finite_weights(trial: Trial) -> str | None:
    """The first network holding a NaN or inf weight, or None: one fused check, one synchronisation."""
    modules = [(name, list(module.parameters())) for name, module in
               ((GENERATOR, trial.networks.generator), (CRITIC, trial.networks.critic)) if module is not None]
    # The max-abs norm is NaN or inf exactly when the tensor holds one, and cannot overflow.
    norms = [torch.stack(torch._foreach_norm(params, math.inf)) for _, params in modules]
    finite = [bool(ok) for ok in torch.stack([n.isfinite().all() for n in norms]).tolist()]
    return next((name for (name, _), ok in zip(modules, finite) if not ok), None)
