"""The generator on the fixed validation subset, or on any images, scored the one way (`raysearch.evaluate`);
and a checkpoint's networks rebuilt for evaluation: its generator alone (`trained_generator`, no data
needed), or a whole Trial with its validation data (`checkpoint_trial`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from models.geometry import mask_context
from raysearch.checkpoint import GENERATOR_ENTRIES, check_state, load_part
from raysearch.config import ExperimentConfig, build_config
from raysearch.errors import CheckpointError, ConfigError
from raysearch.evaluate import score_centers
from raysearch.loop.networks import ConditionedGenerator, unwrap
from raysearch.loop.phases import autocast, generate
from raysearch.loop.trial import Runtime, Trial


@torch.no_grad()
def fill_centers(trial: Trial, images: Tensor, tokens: Tensor, noise: Tensor | None) -> Tensor:
    """The centers (float, [-1, 1]) the evaluated generator (its weight average where the run keeps one)
    fills into `images` (float, [-1, 1]), in the trial's batches."""
    trial.networks.generator.eval()
    generator = trial.networks.evaluated_generator()
    centers = []
    size = trial.cfg.train.batch_size
    for start in range(0, len(images), size):
        batch_noise = noise[start : start + size] if noise is not None else None
        with autocast(trial.cfg, trial.device):
            center, _ = generate(trial.cfg, generator, mask_context(images[start : start + size]),
                                 tokens[start : start + size], batch_noise)
        centers.append(center.float())
    return torch.cat(centers)


def evaluate(trial: Trial, images: Tensor, tokens: Tensor, noise: Tensor | None) -> tuple[dict[str, float], Tensor]:
    """Validation's metrics and centers on any images (e.g. training images, to see what a run memorised)."""
    generated = fill_centers(trial, images, tokens, noise)
    return score_centers(generated, images, seed=trial.cfg.train.seed), generated


def validate(trial: Trial) -> tuple[dict[str, float], Tensor]:
    """The metrics on the fixed validation subset, and the generated centers (in [-1, 1])."""
    data = trial.data
    return evaluate(trial, data.val_images, data.val_tokens, data.val_noise)


def checkpoint_config(state: dict[str, Any], where: str) -> ExperimentConfig:
    """A checkpoint's own config, checked, not compiled; CheckpointError naming `where` when it is not one
    (a generator-only checkpoint, checkpoint.generator_only, is one: only what filling holes reads is checked)."""
    check_state(state, where, GENERATOR_ENTRIES)
    try:
        cfg = build_config(state["config"], source=f"{where}: its config")
    except ConfigError as err:
        raise CheckpointError(str(err)) from None
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, compile=False))


def checkpoint_vocab_size(state: dict[str, Any]) -> int:
    """The vocabulary a checkpoint's caption encoder was built for (0 without one), read from its weights:
    an embedding's rows (lstm, gru) or the first layer's inputs (bow)."""
    weights = state["generator"]
    if "caption_encoder.embedding.weight" in weights:  # lstm, gru: one embedding row per word
        return int(weights["caption_encoder.embedding.weight"].shape[0])
    if "caption_encoder.output.0.weight" in weights:  # bow: its first layer reads the multi-hot vocabulary
        return int(weights["caption_encoder.output.0.weight"].shape[1])
    return 0


def trained_generator(state: dict[str, Any], where: str = "checkpoint", device: torch.device | None = None,
                      alpha: float | None = None) -> tuple[ExperimentConfig, nn.Module]:
    """(config, generator) of a checkpoint, without its data: the generator validation measures (its weight
    average where the run kept one), in eval mode on `device`, at realism trade-off `alpha` where given
    (`set_realism_alpha`). Everything the checkpoint holds for it is checked here: a checkpoint that does
    not fit its config is one CheckpointError line naming `where`."""
    cfg = checkpoint_config(state, where)
    generator = ConditionedGenerator(cfg, checkpoint_vocab_size(state))
    average = state["generator_average"]
    if cfg.train.ema_decay and average is None:
        raise CheckpointError(f"{where}: entry 'generator_average' is null, but its config keeps one "
                              "(train.ema_decay)")
    load_part(generator, state["generator"], "generator", where)  # checked even where the average is used
    if average is not None:
        if not isinstance(average, dict) or not isinstance(average.get("network"), dict):
            raise CheckpointError(f"{where}: entry 'generator_average' must hold the averaged 'network'")
        load_part(generator, average["network"], "generator average", where)
    if alpha is not None:
        set_alpha(cfg, [generator], alpha, where)
    return cfg, generator.to(device or torch.device("cpu")).eval().requires_grad_(False)


def set_realism_alpha(trial: Trial, alpha: float, where: str = "checkpoint") -> None:
    """Evaluate a `realism_residual` generator at trade-off `alpha` (0: its L2 path, 1: as trained); the
    weight average too. ConfigError for a generator without a realism residual."""
    generators = [unwrap(trial.networks.generator)]
    if trial.networks.generator_average is not None:
        generators.append(trial.networks.generator_average.network)
    set_alpha(trial.cfg, generators, alpha, where)


def set_alpha(cfg: ExperimentConfig, generators: list[nn.Module], alpha: float, where: str) -> None:
    """Set `alpha` on conditioned generators built from `cfg`, or ConfigError where it has no realism residual."""
    if not cfg.generator.realism_residual:
        raise ConfigError(f"--alpha: {where} has no realism residual (generator.realism_residual: false)")
    for conditioned in generators:
        conditioned.generator.alpha = alpha


def checkpoint_trial(state: dict[str, Any], where: str = "checkpoint", device: torch.device | None = None) -> Trial:
    """A Trial on `device` (the CPU by default) holding a checkpoint's networks (and the generator's weight
    average, which is what validation runs when the config keeps one), not compiled, ready to `validate`.

    The checkpoint is checked before the Trial loads its data: a checkpoint that does not fit its own
    config (missing entries, tensor shapes) is one CheckpointError line naming `where`, and no dataset
    is read or generated for it.
    """
    cfg, _ = trained_generator(state, where, device)
    trial = Trial(cfg, Runtime(device=device or torch.device("cpu")))
    trial.load_weights(state, where)
    return trial
