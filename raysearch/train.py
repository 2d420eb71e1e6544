"""One trial: a generator (and critic) trained from an ExperimentConfig.

`run_trial(config, report, checkpoint=..., logdir=..., runtime=...)` knows
nothing about Ray: it takes a `report(metrics, checkpoint_dir)` callable and an
optional checkpoint directory to resume from. `raysearch.ray_adapter` runs it
as a Ray Train worker; tests and benchmarks call it directly.

Every epoch: train on shuffled batches (phases `critic`, `critic_gp`,
`generator`, whose names prefix the log keys; each image under a random
symmetry with `data.augment`), measure the fixed validation subset (with the
generator's weight average when `train.ema_decay` > 0), write TensorBoard, and report; every `checkpoint_every` epochs the
report carries a full-state checkpoint. A non-finite loss or weight stops the
trial cleanly with `diverged: 1` and the epoch and phase where it happened; the
last good checkpoint stays the trial's latest.

`python -m raysearch.train SPACE` runs one trial of a search space's base
config through Ray Train on a local Ray (see `main`).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn
from torch.utils.data import DistributedSampler

from models import build_caption_encoder, build_critic, build_generator
from models.generators import activate_output
from models.geometry import IMAGE_SIZE, crop_center, mask_context, output_size, paste_center
from raysearch import cli, losses, metrics
from raysearch.checkpoint import STATE_FILE, check_state, config_differences, load_checkpoint, load_part, save_checkpoint
from raysearch.constants import SCORE_WINDOW, score_key
from raysearch.config import DataConfig, ExperimentConfig, config_to_dict, list_spaces, load_config
from raysearch.data import InpaintingDataset, PreparedDataset, Vocabulary, resolve_dataset, to_float_images
from raysearch.data.check import check_source
from raysearch.errors import CheckpointError, ConfigError, RaysearchError
from raysearch.summaries import TrialSummary

Report = Callable[[dict[str, Any], Path | None], None]

# What a diverged trial reports for each validation metric: the worst value the
# metric can take on images in [0, 1], so a searcher ranks it last.
DIVERGED_METRICS = {"val/mse": 1.0, "val/psnr": 0.0, "val/ssim": -1.0, "val/seam": 1.0, "val/swd": 1e4,
                    "val/swd_band": 1e4}

# The checkpoint's list of per-epoch validation metrics, from which the scores are computed.
VAL_HISTORY_KEY = "val_history"

# How often (in batches) the loop synchronises with the device to look for a
# non-finite loss; checking every step would stall a GPU.
DIVERGENCE_CHECK_EVERY = 25

# torch.compile's mode per device type (train.compile=true). On CUDA, CUDA graphs
# ("reduce-overhead"): the step is launch-bound at search batch sizes (issue 9).
# On CPU, the default (inductor's C++ kernels). wgan-gp is rejected with compile
# (config.check_combinations): its double backward cannot run compiled.
COMPILE_MODE = {"cuda": "reduce-overhead", "cpu": "default"}


@dataclass(frozen=True)
class Runtime:
    """Where this copy of the loop runs: its rank, the device, and how models are wrapped (DDP)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    prepare_model: Callable[[nn.Module], nn.Module] = lambda module: module


def phase_cycle(cfg: ExperimentConfig, adversarial: bool) -> list[str]:
    """Which phase each batch of an epoch feeds: critic_steps critic batches then generator_steps
    generator batches, repeated; only the generator without an adversary (or while pretraining)."""
    if not adversarial:
        return ["generator"]
    return ["critic"] * cfg.train.critic_steps + ["generator"] * cfg.train.generator_steps


def local_runtime(cfg: ExperimentConfig) -> Runtime:
    """One process, no Ray: the device `train.device` names (`auto`: the GPU when torch sees one)."""
    wanted = cfg.train.device
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    if wanted == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda: torch sees no GPU here (torch.cuda.is_available() is False); "
                          "allowed: train.device=auto or cpu")
    return Runtime(device=torch.device(wanted))


class ConditionedGenerator(nn.Module):
    """The generator with its caption encoder, so one module holds everything the generator step trains."""

    def __init__(self, cfg: ExperimentConfig, vocab_size: int) -> None:
        super().__init__()
        captions = cfg.captions
        self.caption_encoder = build_caption_encoder(captions, vocab_size) if captions.enabled else None
        self.num_captions = captions.num_captions
        self.generator = build_generator(cfg.generator, caption_dim=captions.code_size if captions.enabled else 0)

    def forward(self, context: Tensor, tokens: Tensor, noise: Tensor | None) -> Tensor:
        code = self.caption_encoder(tokens[:, : self.num_captions]) if self.caption_encoder is not None else None
        return self.generator(context, code, noise)


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
        self._averaged = list(self.network.parameters())
        self._trained = network
        self._trained_parameters = list(network.parameters())

    @torch.no_grad()
    def update(self) -> None:
        """Move the average toward the trained network's current weights."""
        weight = 1.0 - min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self._averaged, self._trained_parameters, weight)
        self.updates += 1

    @torch.no_grad()
    def synced(self) -> nn.Module:
        """The averaged network, with the trained network's current buffers."""
        buffers = list(self.network.buffers())
        if buffers:
            torch._foreach_copy_(buffers, list(self._trained.buffers()))
        return self.network

    def state_dict(self) -> dict[str, Any]:
        return {"network": self.synced().state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["network"])
        self.updates = state["updates"]


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
        self._checked: dict[str, int] = {}  # per watched key: entries already seen finite
        self.first_bad: dict[str, int] = {}  # phase -> the earliest batch with a non-finite loss

    def add(self, batch: int, logs: dict[str, Tensor]) -> None:
        for key, value in logs.items():
            self.values.setdefault(key, []).append(value)
            if _watched(key):
                self.batches.setdefault(key, []).append(batch)

    def diverged_phase(self) -> str | None:
        """The phase whose loss went non-finite first (one sync over the entries not yet checked), or None."""
        fresh = [(key, i) for key, batches in self.batches.items()
                 for i in range(self._checked.get(key, 0), len(batches))]
        if fresh:
            finite = torch.isfinite(torch.stack([self.values[key][i] for key, i in fresh])).tolist()
            for (key, i), ok in zip(fresh, finite):
                if not ok:
                    phase, batch = key.split("/")[0], self.batches[key][i]
                    self.first_bad[phase] = min(self.first_bad.get(phase, batch), batch)
            self._checked = {key: len(batches) for key, batches in self.batches.items()}
        return min(self.first_bad, key=self.first_bad.get) if self.first_bad else None

    def means(self) -> dict[str, float]:
        """Each key's mean over the epoch (one sync for all of them)."""
        keys = list(self.values)
        if not keys:
            return {}
        means = torch.stack([torch.stack(self.values[key]).float().mean() for key in keys]).tolist()
        return dict(zip(keys, means))


def _watched(key: str) -> bool:
    """The logs whose non-finite value means a phase diverged: its loss, and the gradient penalty."""
    return key.endswith("/loss") or key == "critic_gp/penalty"


class Trial:
    """The state of one training run: data, networks, optimisers, counters, RNG."""

    def __init__(self, cfg: ExperimentConfig, runtime: Runtime) -> None:
        self.cfg = cfg
        self.runtime = runtime
        self.device = runtime.device
        self.margin = cfg.generator.context_margin
        torch.manual_seed(cfg.train.seed)  # network initialisation
        # Noise, instance noise and penalty interpolation; reseeded every epoch from
        # (seed, rank, epoch) (STYLE: 8), so a resumed run draws what it would have.
        self.sample_rng = torch.Generator(device=self.device)
        self._load_data()
        self._build_networks()
        self._build_optimizers()
        # The generator validation measures: a weight average of the trained one, or it.
        self.generator_average = (
            WeightAverage(_unwrap(self.generator), cfg.train.ema_decay) if cfg.train.ema_decay else None
        )
        self.reconstruction_weights = (
            losses.border_weights(
                output_size(self.margin), self.margin, cfg.objective.border_width, cfg.objective.border_weight
            ).to(self.device)
            if cfg.objective.border_weight
            else None
        )
        self.epoch = 0  # completed epochs
        self.step = 0  # batches seen
        self.val_noise = validation_noise(cfg, len(self.val_images), self.device)

    def _load_data(self) -> None:
        data = self.cfg.data
        prepared, vocab = open_dataset(data)
        captions = self.cfg.captions.enabled
        train = InpaintingDataset(prepared, "train", vocab, data.caption_length, limit=data.train_images,
                                  require_captions=captions)
        val = InpaintingDataset(prepared, "val", vocab, data.caption_length, limit=data.val_images,
                                require_captions=captions)
        # The dataset is small next to device memory: hold it as one uint8 tensor
        # there and index batches from it, so loading never starves the step.
        self.train_images = train.images_uint8.to(self.device)
        self.train_tokens = train.tokens.to(self.device)
        self.val_images = to_float_images(val.images_uint8.to(self.device))
        self.val_tokens = val.tokens.to(self.device)
        self.train_size = len(train)
        self.vocab_size = len(vocab)

    def _build_networks(self) -> None:
        cfg = self.cfg
        generator = ConditionedGenerator(cfg, self.vocab_size).to(self.device)
        critic = None
        if cfg.objective.adversarial:
            size = IMAGE_SIZE if cfg.critic.input == "whole" else output_size(self.margin)
            critic = build_critic(cfg.critic, input_size=size).to(self.device)
        if cfg.train.channels_last:
            generator = generator.to(memory_format=torch.channels_last)
            critic = critic.to(memory_format=torch.channels_last) if critic is not None else None
        self.generator = self.runtime.prepare_model(generator)
        self.critic = self.runtime.prepare_model(critic) if critic is not None else None
        if cfg.train.compile:
            mode = COMPILE_MODE[self.device.type]
            self.generator = torch.compile(self.generator, mode=mode)
            self.critic = torch.compile(self.critic, mode=mode) if self.critic is not None else None

    def _build_optimizers(self) -> None:
        optim = self.cfg.optim
        self.opt_g = _optimizer(self.cfg, self.generator.parameters(), optim.generator_lr, self.device)
        self.sched_g = torch.optim.lr_scheduler.ExponentialLR(self.opt_g, gamma=optim.lr_decay)
        self.opt_d = self.sched_d = None
        if self.critic is not None:
            self.opt_d = _optimizer(self.cfg, self.critic.parameters(), optim.critic_lr, self.device)
            self.sched_d = torch.optim.lr_scheduler.ExponentialLR(self.opt_d, gamma=optim.lr_decay)

    # ------------------------------------------------------------ state

    def state(self) -> dict[str, Any]:
        return {
            "config": config_to_dict(self.cfg),
            "epoch": self.epoch,
            "step": self.step,
            "generator": _unwrap(self.generator).state_dict(),
            "generator_average": self.generator_average.state_dict() if self.generator_average is not None else None,
            "critic": _unwrap(self.critic).state_dict() if self.critic is not None else None,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict() if self.opt_d is not None else None,
            "sched_g": self.sched_g.state_dict(),
            "sched_d": self.sched_d.state_dict() if self.sched_d is not None else None,
            "rng": {"torch": torch.get_rng_state()},
        }

    def restore(self, state: dict[str, Any], source: Path) -> None:
        path = Path(source) / STATE_FILE
        check_state(state, path)
        differences = [
            d for d in config_differences(state["config"], config_to_dict(self.cfg)) if not d.startswith("train.epochs ")
        ]
        if differences:
            raise CheckpointError(f"{path}: checkpoint was made with another config: {'; '.join(differences)}")
        load_part(_unwrap(self.generator), state["generator"], "generator", path)
        if self.generator_average is not None:
            load_part(self.generator_average, state["generator_average"], "generator average", path)
        if self.critic is not None:
            for key in ("critic", "opt_d", "sched_d"):
                if state[key] is None:
                    raise CheckpointError(f"{path}: entry {key!r} is null, but this config trains a critic")
            load_part(_unwrap(self.critic), state["critic"], "critic", path)
            load_part(self.opt_d, state["opt_d"], "critic optimiser", path)
            load_part(self.sched_d, state["sched_d"], "critic scheduler", path)
        load_part(self.opt_g, state["opt_g"], "generator optimiser", path)
        load_part(self.sched_g, state["sched_g"], "generator scheduler", path)
        try:
            torch.set_rng_state(state["rng"]["torch"])
        except (RuntimeError, TypeError) as err:
            raise CheckpointError(f"{path}: its random-generator state is not torch's ({err})") from None
        self.epoch = state["epoch"]
        self.step = state["step"]

    # ------------------------------------------------------------ batches

    def _noise(self, count: int, rng: torch.Generator) -> Tensor | None:
        dim = self.cfg.generator.noise_dim
        return torch.randn(count, dim, generator=rng, device=self.device) if dim else None

    def epoch_batches(self) -> list[Tensor]:
        """This rank's shuffled batches of indices: the same for a given seed and epoch, resumed or not."""
        sampler = DistributedSampler(
            range(self.train_size), num_replicas=self.runtime.world_size, rank=self.runtime.rank,
            shuffle=True, seed=self.cfg.train.seed, drop_last=True,
        )
        sampler.set_epoch(self.epoch)
        # One host-to-device copy per epoch; the batches are views of it.
        order = torch.tensor(list(sampler)).to(self.device)
        size = self.cfg.train.batch_size
        return list(order[: len(order) // size * size].split(size))  # full batches only: batch norm

    def augment(self, images: Tensor) -> Tensor:
        """Each training image under a random symmetry of the square (`data.augment`), no host sync."""
        kind = self.cfg.data.augment
        if kind == "none":
            return images
        flips = torch.rand(3, len(images), 1, 1, 1, generator=self.sample_rng, device=self.device) < 0.5
        images = torch.where(flips[0], images.flip(-1), images)
        if kind == "dihedral":
            images = torch.where(flips[1], images.flip(-2), images)
            images = torch.where(flips[2], images.transpose(-1, -2), images)
        return images

    def autocast(self):
        if not self.cfg.train.bf16:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    # ------------------------------------------------------------ phases

    def critic_inputs(self, images: Tensor, context: Tensor, center: Tensor) -> Tensor:
        """What the critic sees: the center alone, or the context with the center pasted in."""
        if self.cfg.critic.input == "whole":
            return paste_center(context, center)
        return center

    def generate(
        self, context: Tensor, tokens: Tensor, noise: Tensor | None, generator: nn.Module | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """The center `generator` (default: the one being trained) fills in, in image space, and the clip penalty."""
        raw = (generator or self.generator)(context, tokens, noise)
        return activate_output(raw.float(), self.cfg.generator.output_activation)

    def critic_phase(self, images: Tensor, tokens: Tensor) -> dict[str, Tensor]:
        cfg = self.cfg.objective
        images = self.augment(images)
        context = mask_context(images)
        real_center = crop_center(images, self.margin)
        with torch.no_grad(), self.autocast():
            fake_center, _ = self.generate(context, tokens, self._noise(len(images), self.sample_rng))
        real = losses.instance_noise(self.critic_inputs(images, context, real_center), cfg.instance_noise, self.sample_rng)
        fake = self.critic_inputs(images, context, fake_center)
        if cfg.instance_noise_on == "both":
            fake = losses.instance_noise(fake, cfg.instance_noise, self.sample_rng)
        with self.autocast():
            real_scores = self.critic(real).float()
            fake_scores = self.critic(fake).float()
            loss = losses.critic_loss(cfg.name, real_scores, fake_scores, cfg.label_smoothing)
            logs = {"critic/loss": loss.detach(), "critic/real_score": real_scores.detach().mean(),
                    "critic/fake_score": fake_scores.detach().mean()}
            total = loss
            if cfg.name == "wgan-gp":
                penalty = losses.gradient_penalty(self.critic, real, fake, self.sample_rng)
                total = loss + cfg.gp_weight * penalty
                logs["critic_gp/penalty"] = penalty.detach()
        self.opt_d.zero_grad(set_to_none=True)
        total.backward()
        self.opt_d.step()
        if cfg.name == "wgan":
            losses.clip_weights(self.critic, cfg.clip)
        return logs

    def generator_phase(self, images: Tensor, tokens: Tensor, adversarial: bool) -> dict[str, Tensor]:
        cfg = self.cfg.objective
        images = self.augment(images)
        context = mask_context(images)
        real_center = crop_center(images, self.margin)
        with self.autocast():
            fake_center, clip_penalty = self.generate(context, tokens, self._noise(len(images), self.sample_rng))
            l2 = losses.reconstruction(fake_center, real_center, self.reconstruction_weights, cfg.reconstruction)
            # During L2 pretraining the reconstruction trains alone, unscaled.
            loss = cfg.l2_weight * l2 if adversarial else l2
            logs = {"generator/l2": l2.detach()}
            if adversarial:
                # The unwrapped critic: its weights are not trained here, so no DDP sync is needed.
                critic = _unwrap(self.critic)
                critic.requires_grad_(False)
                adv = losses.generator_adversarial(cfg.name, critic(self.critic_inputs(images, context, fake_center)).float())
                critic.requires_grad_(True)
                loss = loss + cfg.adv_weight * adv
                logs["generator/adversarial"] = adv.detach()
            if clip_penalty is not None:
                loss = loss + cfg.clip_penalty_weight * clip_penalty
                logs["generator/clip_penalty"] = clip_penalty.detach()
        logs["generator/loss"] = loss.detach()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        if self.generator_average is not None:
            self.generator_average.update()
        return logs

    def train_epoch(self) -> tuple[dict[str, float], str | None]:
        """One epoch; returns mean phase logs and the phase that diverged, if any."""
        self.generator.train()
        if self.critic is not None:
            self.critic.train()
        self.sample_rng.manual_seed(self.cfg.train.seed * 1_000_003 + self.runtime.rank * 10_007 + self.epoch)
        adversarial = self.critic is not None and self.epoch >= self.cfg.train.pretrain_epochs
        cycle = phase_cycle(self.cfg, adversarial)
        log = EpochLog()
        started = time.perf_counter()
        batches = self.epoch_batches()
        if self.cfg.train.steps_per_epoch:
            # A step is one cycle: critic_steps critic batches, then generator_steps generator batches.
            batches = batches[: self.cfg.train.steps_per_epoch * len(cycle)]
        graphed = self.cfg.train.compile and COMPILE_MODE[self.device.type] == "reduce-overhead"
        for index, batch in enumerate(batches):
            if graphed:
                torch.compiler.cudagraph_mark_step_begin()  # no output of the last step is reused
            images = to_float_images(self.train_images[batch])
            if self.cfg.train.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            tokens = self.train_tokens[batch]
            phase = cycle[index % len(cycle)]
            logs = self.critic_phase(images, tokens) if phase == "critic" else self.generator_phase(images, tokens, adversarial)
            self.step += 1
            log.add(index, logs)
            if (index + 1) % DIVERGENCE_CHECK_EVERY == 0 and log.diverged_phase():
                break
        phase = log.diverged_phase() or self._non_finite_weights()
        elapsed = time.perf_counter() - started
        means = log.means()
        means["train/images_per_s"] = len(batches) * self.cfg.train.batch_size * self.runtime.world_size / max(elapsed, 1e-9)
        means["train/epoch_s"] = elapsed
        means["train/generator_lr"] = self.opt_g.param_groups[0]["lr"]
        if self.opt_d is not None:
            means["train/critic_lr"] = self.opt_d.param_groups[0]["lr"]
        return means, phase

    def _non_finite_weights(self) -> str | None:
        """The first network holding a NaN or inf weight, or None: one fused check, one synchronisation."""
        modules = [(name, list(module.parameters())) for name, module in
                   (("generator", self.generator), ("critic", self.critic)) if module is not None]
        # The max-abs norm is NaN or inf exactly when the tensor holds one, and cannot overflow.
        norms = [torch.stack(torch._foreach_norm(params, math.inf)) for _, params in modules]
        finite = [bool(ok) for ok in torch.stack([n.isfinite().all() for n in norms]).tolist()]
        return next((name for (name, _), ok in zip(modules, finite) if not ok), None)

    def end_epoch(self) -> None:
        self.epoch += 1
        self.sched_g.step()
        if self.sched_d is not None:
            self.sched_d.step()

    # ------------------------------------------------------------ validation

    def validate(self) -> tuple[dict[str, float], Tensor]:
        """Metrics on the fixed validation subset, and the generated centers (in [-1, 1]).

        With `train.ema_decay` the weight average generates them, not the trained weights.
        """
        return self.evaluate(self.val_images, self.val_tokens, self.val_noise)

    @torch.no_grad()
    def evaluate(self, images: Tensor, tokens: Tensor, noise: Tensor | None) -> tuple[dict[str, float], Tensor]:
        """`validate` on any images (float, [-1, 1]) with their caption tokens and generator noise:
        the same generator, batches and metrics, e.g. on training images to see what a run memorised."""
        self.generator.eval()
        generator = self.generator_average.synced() if self.generator_average is not None else self.generator
        centers = []
        size = self.cfg.train.batch_size
        for start in range(0, len(images), size):
            batch = images[start : start + size]
            batch_noise = noise[start : start + size] if noise is not None else None
            with self.autocast():
                center, _ = self.generate(mask_context(batch), tokens[start : start + size], batch_noise, generator)
            centers.append(center.float())
        generated = torch.cat(centers)
        as_unit = lambda x: (x + 1) / 2  # noqa: E731 - metrics take images in [0, 1]
        values = metrics.compute_all(
            as_unit(generated), as_unit(crop_center(images, 0)), as_unit(images), seed=self.cfg.train.seed
        )
        return {f"val/{name}": float(value) for name, value in values.items()}, generated


def open_dataset(data: DataConfig) -> tuple[PreparedDataset, Vocabulary]:
    """The prepared dataset a config names (the synthetic default when it names none) and its vocabulary."""
    prepared = PreparedDataset(resolve_dataset(
        data.path, synthetic_train=data.synthetic_train, synthetic_val=data.synthetic_val,
        synthetic_seed=data.synthetic_seed,
    ))
    return prepared, prepared.vocabulary(data.vocab_min_count)


def validation_noise(cfg: ExperimentConfig, count: int, device: torch.device) -> Tensor | None:
    """The generator noise of the validation subset: the same every epoch, and in analysis.

    Drawn on the CPU, then moved: a CUDA generator draws other numbers than the
    CPU one for the same seed, and analysis (on the CPU) must show exactly the
    validation images a GPU-trained trial measured.
    """
    if not cfg.generator.noise_dim:
        return None
    rng = torch.Generator(device="cpu").manual_seed(cfg.train.seed + 12345)
    return torch.randn(count, cfg.generator.noise_dim, generator=rng).to(device)


def _optimizer(cfg: ExperimentConfig, parameters, lr: float, device: torch.device) -> torch.optim.Optimizer:
    optim = cfg.optim
    if optim.name == "adam":
        # On a GPU the fused kernel: one launch per step instead of a few per parameter group (issue 9);
        # elsewhere torch's default implementation.
        fused = True if device.type == "cuda" else None
        return torch.optim.Adam(parameters, lr=lr, betas=optim.betas, weight_decay=optim.weight_decay, fused=fused)
    return torch.optim.RMSprop(parameters, lr=lr, alpha=optim.betas[1], weight_decay=optim.weight_decay)


def _unwrap(module: nn.Module | None) -> nn.Module | None:
    """The network inside a DDP and/or torch.compile wrapper."""
    while module is not None and (hasattr(module, "module") or hasattr(module, "_orig_mod")):
        module = module.module if hasattr(module, "module") else module._orig_mod
    return module


# ---------------------------------------------------------------- the trial


def run_trial(
    cfg: ExperimentConfig,
    report: Report,
    *,
    checkpoint: Path | None = None,
    logdir: str | Path | None = None,
    runtime: Runtime | None = None,
) -> dict[str, Any]:
    """Train `cfg` to `cfg.train.epochs`, calling `report` every epoch; return the last metrics.

    Every report carries, next to each `val/<name>`, its score `score/val/<name>`:
    the mean over the last SCORE_WINDOW epochs (constants.py), which the search
    ranks and stops trials by. The validation history it is computed from is
    part of the checkpoint, so a resumed trial scores as if it had never stopped.
    """
    runtime = runtime or local_runtime(cfg)
    trial = Trial(cfg, runtime)
    val_history: list[dict[str, float]] = []
    if checkpoint is not None:
        state = load_checkpoint(checkpoint)
        trial.restore(state, checkpoint)
        # Checkpoints written before scores existed hold no history: the score then starts at the resume.
        val_history = [dict(entry) for entry in state.get(VAL_HISTORY_KEY, [])]
    summary = TrialSummary(logdir, purge_step=trial.epoch + 1) if logdir and runtime.rank == 0 else None
    if summary:
        summary.session_start(config_to_dict(cfg))  # before training: a trial stopped early is listed too
    last: dict[str, Any] = {}
    try:
        while trial.epoch < cfg.train.epochs:
            train_logs, diverged_phase = trial.train_epoch()
            if diverged_phase:
                worst_scores = {score_key(k): v for k, v in DIVERGED_METRICS.items()}
                last = {**DIVERGED_METRICS, **worst_scores, "epoch": trial.epoch + 1, "diverged": 1,
                        "diverged_epoch": trial.epoch + 1, "diverged_phase": diverged_phase}
                report(last, None)  # no checkpoint: the last good one stays the latest
                break
            trial.end_epoch()
            val_logs, generated = trial.validate()
            val_history.append(val_logs)
            last = {**train_logs, **val_logs, **recent_scores(val_history), "epoch": trial.epoch, "diverged": 0}
            if summary:
                summary.scalars(last, trial.epoch)
                if cfg.train.preview_images:
                    count = cfg.train.preview_images
                    summary.preview(trial.val_images[:count], generated[:count], trial.epoch)
                summary.commit()  # on disk before the report: a stopped trial is killed right after it
            save_now = trial.epoch % cfg.train.checkpoint_every == 0 or trial.epoch == cfg.train.epochs
            if save_now:
                with tempfile.TemporaryDirectory(prefix="raysearch-ckpt-") as tmp:
                    state = {**trial.state(), VAL_HISTORY_KEY: val_history}
                    directory = save_checkpoint(state, Path(tmp)) if runtime.rank == 0 else None
                    report(last, directory)
            else:
                report(last, None)
    finally:
        if summary:
            if last:
                summary.session_end(success=not last["diverged"])
            summary.close()
    return last


def recent_scores(val_history: list[dict[str, float]], window: int = SCORE_WINDOW) -> dict[str, float]:
    """`score/<metric>` for every validation metric: its mean over the last `window` epochs (fewer at the start)."""
    recent = val_history[-window:]
    return {score_key(name): sum(entry[name] for entry in recent) / len(recent) for name in recent[-1]}


# ---------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.ArgumentParser(
        prog="python -m raysearch.train",
        description="Train one trial of a search space's base config through Ray Train on a local Ray "
        "(or --address). Prints the final validation metrics as one JSON object on the last line.",
    )
    parser.add_argument("space", nargs="?", help=f"search space name or YAML path ({', '.join(list_spaces())})")
    parser.add_argument("--config", help="a YAML file with a base: section, e.g. an experiment's best_config.yaml")
    parser.add_argument("--data", help="prepared dataset directory or URI (default: the synthetic dataset)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a base value, e.g. --set objective.l2_weight=1e-5 (repeatable)")
    parser.add_argument("--epochs", type=int, help="train.epochs")
    parser.add_argument("--workers", type=int, help="train.workers (Ray Train workers; DDP when > 1)")
    parser.add_argument("--logdir", help="run directory: TensorBoard files and checkpoints (default runs/train/NAME-TIME)")
    parser.add_argument("--address", help="Ray cluster address; `local` starts a private local Ray "
                        "(default: the cluster running on this machine, else a local Ray)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    args = parser.parse_args(argv)
    if bool(args.space) == bool(args.config):
        parser.error("give a search space or --config FILE (one of the two)")
    return args


def against_best_fill(final: dict[str, Any], baselines: dict[str, dict[str, float]],
                      metric: str = "val/psnr") -> dict[str, Any]:
    """The JSON keys that place a result against the best classical fill on `metric` (higher is better):
    {"best_fill", "best_fill/<metric>", "<metric>_over_best_fill"}; the last only when the result has `metric`."""
    from raysearch.data.baselines import best_baseline

    name, value = best_baseline(baselines, metric, "max")
    keys: dict[str, Any] = {"best_fill": name, f"best_fill/{metric}": value}
    result = final.get(metric)
    if isinstance(result, (int, float)) and not isinstance(result, bool) and math.isfinite(result):
        keys[f"{metric}_over_best_fill"] = result - value
    return keys


def describe_against_best_fill(final: dict[str, Any], metric: str = "val/psnr") -> str:
    """e.g. `val/psnr 17.62 dB: +0.48 dB above the best classical fill (harmonic 17.14 dB)`."""
    gap, name, value = final[f"{metric}_over_best_fill"], final["best_fill"], final[f"best_fill/{metric}"]
    side = "above" if gap >= 0 else "below"
    return (f"{metric} {final[metric]:.2f} dB: {gap:+.2f} dB {side} the best classical fill "
            f"({name} {value:.2f} dB)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data.path={args.data}")
    if args.epochs is not None:
        overrides.append(f"train.epochs={args.epochs}")
    if args.workers is not None:
        overrides.append(f"train.workers={args.workers}")
    name = Path(args.space or args.config).stem
    logdir = Path(args.logdir or f"runs/train/{name}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    try:
        cfg = load_config(args.space or args.config, overrides)
        check_source(cfg.data.path, captions=cfg.captions.enabled)  # before Ray, and on --dry-run
        if not args.dry_run:
            from raysearch.storage import open_root

            open_root(str(logdir), "--logdir")
            cli.check_gpu_before_ray(cfg.train.device, args.address)
            from raysearch.data.baselines import baselines_of

            baselines = baselines_of(cfg)  # before Ray: a data problem here is one line too
    except RaysearchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(yaml.safe_dump({"base": config_to_dict(cfg)}, sort_keys=False), end="")
        return 0
    from raysearch.summaries import write_baseline_runs

    write_baseline_runs(str(logdir), baselines, cfg.train.epochs)  # reference runs beside the trial's own

    from raysearch import ray_adapter  # Ray only for the command, never for the loop

    ray_adapter.start_ray(args.address)
    try:
        cli.check_gpu_on_cluster(cfg.train.device)
    except RaysearchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    trainer = ray_adapter.build_trainer(
        cfg, name="train", storage_path=str(logdir), logdir=str(logdir), use_gpu=ray_adapter.wants_gpu(cfg)
    )
    result = trainer.fit()
    print(f"TensorBoard: tensorboard --logdir {logdir}", file=sys.stderr)
    final = {k: v for k, v in (result.metrics or {}).items() if k.startswith("val/") or k in ("epoch", "diverged", "diverged_phase", "diverged_epoch")}
    final.update(against_best_fill(final, baselines))
    if "val/psnr_over_best_fill" in final:
        print(describe_against_best_fill(final), file=sys.stderr)
    print(json.dumps(final, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
