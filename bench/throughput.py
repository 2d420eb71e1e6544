"""Images per second of raysearch's training epoch versus a bare PyTorch loop of the same networks.

Both arms train the same Trial's networks and optimisers, in the same process,
on the same device, for whole epochs of the same length: the batches the data
holds (or `--steps` cycles of them), in the same phase cycle (critic_steps
critic batches, then generator_steps generator batches; generator only during
`train.pretrain_epochs`), with the same losses, noise and instance noise, the
same augmentation and, where the config has one, the same weight average. The
bare loop is what one would write by hand for that training: images converted
to float once, one random permutation per epoch, augment, forward, loss,
backward, step, one lerp of the average. The raysearch arm is
`raysearch.loop.train_epoch` whole: sampling, uint8 -> float per batch, phase dispatch,
divergence watch, metric accumulation, the end-of-epoch checks.

Images are counted as trained (`images_trained`): an epoch has only as many
batches as the data holds. Arms are interleaved epoch by epoch and the median
rate of each is kept, so machine noise hits both alike. Where torch.compile is
supported (every objective but wgan-gp) the compiled loop is timed against the
eager one too.

    python bench/throughput.py                               # l2, wgan (n_critic 5), wgan-gp on CPU
    python bench/throughput.py --device cuda --batch-size 64 --train-images 2000
    python bench/throughput.py --bf16 --channels-last        # both arms with those options
    python bench/throughput.py --compare-options             # bf16 + channels_last against fp32

The last line is one JSON object: `<objective>_raysearch_over_bare` and
`<objective>_compiled_over_eager` (raysearch's loop compiled / eager) and, with
--compare-options, `<objective>_bf16_channels_last_over_fp32`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

import torch

from models.geometry import crop_center, mask_context
from raysearch import losses
from raysearch.config import ExperimentConfig, load_config
from raysearch.data import to_float_images
from raysearch.fill import autocast, generate
from raysearch.loop import Trial, Worker, phase_cycle, train_epoch, unwrap
from raysearch.loop.batches import augment

OBJECTIVES = {  # label: (space, extra overrides)
    "l2": ("l2", []),
    "wgan": ("wgan", ["train.critic_steps=5"]),
    "wgan-gp": ("wgan_gp", ["train.critic_steps=5"]),
}
COMPILE_UNSUPPORTED = {"wgan-gp"}  # rejected by config.check_combinations


def images_trained(batches_held: int, steps_per_epoch: int, cycle_length: int, batch_size: int) -> int:
    """Images one `train_epoch` trains: the batches the data holds, cut to `steps_per_epoch` cycles if set."""
    batches = batches_held
    if steps_per_epoch:
        batches = min(batches, steps_per_epoch * cycle_length)
    return batches * batch_size


def raysearch_epoch(trial: Trial, epoch: int) -> tuple[int, float]:
    """(images trained, seconds) of one whole `train_epoch` at epoch index `epoch`."""
    trial.epoch = epoch
    cycle = phase_cycle(trial.cfg, trial.networks.critic is not None and epoch >= trial.cfg.train.pretrain_epochs)
    images = images_trained(len(trial.data.epoch_batches(epoch)), trial.cfg.train.steps_per_epoch, len(cycle),
                            trial.cfg.train.batch_size)
    _sync(trial.device)
    start = time.perf_counter()
    _, diverged = train_epoch(trial)
    _sync(trial.device)
    elapsed = time.perf_counter() - start
    assert diverged is None, f"diverged in {diverged}: the bench needs finite losses"
    return images, elapsed


class BareLoop:
    """A hand-written loop over the Trial's networks: the same work, none of the bookkeeping."""

    def __init__(self, trial: Trial) -> None:
        self.trial = trial
        self.networks, self.optimizers, self.update = trial.networks, trial.optimizers, trial.update
        self.images = to_float_images(trial.data.train_images)  # converted once, up front
        if trial.cfg.train.channels_last:
            self.images = self.images.contiguous(memory_format=torch.channels_last)
        self.tokens = trial.data.train_tokens
        self.rng = torch.Generator(device=trial.device).manual_seed(1)
        # The weight average as one would write it: a copy of the parameters, lerped after every generator step.
        self.trained = list(unwrap(self.networks.generator).parameters())
        self.average = [p.detach().clone() for p in self.trained] if trial.cfg.train.ema_decay else None

    def epoch(self, epoch: int) -> tuple[int, float]:
        trial, cfg = self.trial, self.trial.cfg
        size = cfg.train.batch_size
        adversarial = self.networks.critic is not None and epoch >= cfg.train.pretrain_epochs
        cycle = phase_cycle(trial.cfg, adversarial)
        batches = len(self.images) // size
        if cfg.train.steps_per_epoch:
            batches = min(batches, cfg.train.steps_per_epoch * len(cycle))
        self.networks.generator.train()
        if self.networks.critic is not None:
            self.networks.critic.train()
        _sync(trial.device)
        start = time.perf_counter()
        order = torch.randperm(len(self.images), device=trial.device, generator=self.rng)
        for index in range(batches):
            batch = order[index * size : (index + 1) * size]
            if cycle[index % len(cycle)] == "critic":
                self.critic_step(self.images[batch], self.tokens[batch])
            else:
                self.generator_step(self.images[batch], self.tokens[batch], adversarial)
        _sync(trial.device)
        return batches * size, time.perf_counter() - start

    def critic_step(self, images: torch.Tensor, tokens: torch.Tensor) -> None:
        cfg, obj, update = self.trial.cfg, self.trial.cfg.objective, self.update
        critic = self.networks.critic
        images = augment(images, cfg.data.augment, self.rng)
        context = mask_context(images)
        with torch.no_grad(), autocast(cfg, self.trial.device):
            fake_center, _ = generate(cfg, self.networks.generator, context, tokens, self.noise(len(images)))
        real = losses.instance_noise(update.critic_inputs(context, crop_center(images, update.margin)),
                                     obj.instance_noise, self.rng)
        fake = update.critic_inputs(context, fake_center)
        if obj.instance_noise_on == "both":
            fake = losses.instance_noise(fake, obj.instance_noise, self.rng)
        with autocast(cfg, self.trial.device):
            loss = losses.critic_loss(obj.name, critic(real).float(), critic(fake).float(), obj.label_smoothing)
            if obj.name == "wgan-gp":
                loss = loss + obj.gp_weight * losses.gradient_penalty(critic, real, fake, self.rng)
        self.optimizers.critic.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers.critic.step()
        if obj.name == "wgan":
            losses.clip_weights(critic, obj.clip)

    def generator_step(self, images: torch.Tensor, tokens: torch.Tensor, adversarial: bool) -> None:
        cfg, obj, update = self.trial.cfg, self.trial.cfg.objective, self.update
        images = augment(images, cfg.data.augment, self.rng)
        context = mask_context(images)
        with autocast(cfg, self.trial.device):
            fake_center, clip_penalty = generate(cfg, self.networks.generator, context, tokens,
                                                 self.noise(len(images)))
            l2 = losses.reconstruction(fake_center, crop_center(images, update.margin), update.reconstruction_weights,
                                      obj.reconstruction)
            loss = obj.l2_weight * l2 if adversarial else l2
            if adversarial:
                critic = unwrap(self.networks.critic)
                critic.requires_grad_(False)
                scores = critic(update.critic_inputs(context, fake_center)).float()
                critic.requires_grad_(True)
                loss = loss + obj.adv_weight * losses.generator_adversarial(obj.name, scores)
            if clip_penalty is not None:
                loss = loss + obj.clip_penalty_weight * clip_penalty
        self.optimizers.generator.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers.generator.step()
        if self.average is not None:
            with torch.no_grad():
                torch._foreach_lerp_(self.average, self.trained, 1.0 - cfg.train.ema_decay)

    def noise(self, count: int) -> torch.Tensor | None:
        dim = self.trial.cfg.generator.noise_length
        return torch.randn(count, dim, generator=self.rng, device=self.trial.device) if dim else None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved_rates(arms: dict[str, callable], epochs: int, repeats: int, pretrain: int) -> dict[str, float]:
    """Median images/s of each arm; each repeat runs every arm over the same epoch indices, in turn."""
    for arm in arms.values():  # warm-up: allocator, kernels, compilation (both phase cycles)
        for epoch in sorted({0, pretrain}):
            arm(epoch)
    rates: dict[str, list[float]] = {name: [] for name in arms}
    for repeat in range(repeats):
        # Every other repeat in reverse order: no arm always runs right after the same other arm.
        order = list(arms.items()) if repeat % 2 == 0 else list(reversed(arms.items()))
        for epoch in range(epochs):
            for name, arm in order:
                images, seconds = arm(epoch)
                rates[name].append(images / seconds)
    return {name: statistics.median(values) for name, values in rates.items()}


def measure(cfg: ExperimentConfig, device: torch.device, epochs: int, repeats: int, compiled: bool,
            options: bool = False) -> dict[str, float]:
    eager = Trial(cfg, Worker(device=device))
    bare = BareLoop(eager)
    arms = {"raysearch": lambda e: raysearch_epoch(eager, e), "bare": bare.epoch}
    if compiled:
        graphed = Trial(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, compile=True)),
                        Worker(device=device))
        arms["compiled"] = lambda e: raysearch_epoch(graphed, e)
    if options:  # the same loop with bf16 autocast and channels_last memory
        lowered = Trial(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, bf16=True, channels_last=True)),
                        Worker(device=device))
        arms["bf16_channels_last"] = lambda e: raysearch_epoch(lowered, e)
    return interleaved_rates(arms, epochs, repeats, cfg.train.pretrain_epochs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--objectives", default="l2,wgan,wgan-gp", help=f"comma-separated, of {', '.join(OBJECTIVES)}")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--train-images", type=int, default=512, help="synthetic training images (the data an epoch holds)")
    parser.add_argument("--steps", type=int, default=0, help="train.steps_per_epoch (cycles; 0 = the whole data)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per arm per repeat")
    parser.add_argument("--pretrain-epochs", type=int, default=0, help="train.pretrain_epochs (generator-only epochs)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled arm")
    parser.add_argument("--compare-options", action="store_true",
                        help="also time the loop with bf16 + channels_last against fp32 (same run, interleaved)")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    device = torch.device(args.device)
    common = [
        f"train.batch_size={args.batch_size}", f"train.bf16={str(args.bf16).lower()}",
        f"train.channels_last={str(args.channels_last).lower()}", f"data.synthetic_train={args.train_images}",
        "data.synthetic_val=32", "data.val_images=16", "train.preview_images=0", f"train.device={args.device}",
        f"train.steps_per_epoch={args.steps}", f"train.pretrain_epochs={args.pretrain_epochs}", *args.overrides,
    ]
    print(f"device={args.device} batch={args.batch_size} train_images={args.train_images} steps={args.steps} "
          f"epochs={args.epochs} pretrain={args.pretrain_epochs} repeats={args.repeats} bf16={args.bf16} "
          f"channels_last={args.channels_last} threads={torch.get_num_threads()}")
    print(f"{'objective':<10}{'raysearch img/s':>16}{'bare img/s':>12}{'ratio':>8}{'compiled img/s':>16}{'c/eager':>9}")
    summary: dict[str, object] = {"device": args.device, "batch_size": args.batch_size, "bf16": args.bf16,
                                  "channels_last": args.channels_last}
    for label in args.objectives.split(","):
        space, extra = OBJECTIVES[label]
        cfg = load_config(space, common + extra)
        compiled = not args.no_compile and label not in COMPILE_UNSUPPORTED
        rates = measure(cfg, device, args.epochs, args.repeats, compiled, args.compare_options)
        ratio = rates["raysearch"] / rates["bare"]
        summary[f"{label}_raysearch_over_bare"] = round(ratio, 3)
        summary[f"{label}_raysearch_images_per_s"] = round(rates["raysearch"], 1)
        line = f"{label:<10}{rates['raysearch']:>16.1f}{rates['bare']:>12.1f}{ratio:>8.3f}"
        if compiled:
            summary[f"{label}_compiled_over_eager"] = round(rates["compiled"] / rates["raysearch"], 3)
            line += f"{rates['compiled']:>16.1f}{rates['compiled'] / rates['raysearch']:>9.3f}"
        if args.compare_options:
            summary[f"{label}_bf16_channels_last_over_fp32"] = round(rates["bf16_channels_last"] / rates["raysearch"], 3)
            line += f"   bf16+channels_last/fp32 {rates['bf16_channels_last'] / rates['raysearch']:.3f}"
        print(line, flush=True)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
