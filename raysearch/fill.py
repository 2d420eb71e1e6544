"""The one way a trained generator fills holes: what validation measures, what `inpaint` writes, what `analyze`,
the judge and the benches look at.

- `generate`: a generator's center in image space (its output activation), as training and filling see it;
- `generator_outputs`: the one loop over a generator's batches (eval mode, no gradients, bf16 where the run
  trained in it), with `validation_noise`, the fixed noise that makes a fill repeatable;
- `composite`: the images with only their 32x32 hole replaced. A generator with a context margin m outputs a
  (32 + 2m)-pixel square; its margin is scored by nothing and pasted nowhere, so every known pixel of an
  image stays as it was (`models.geometry.hole_of` is the one crop);
- `trained_generator`: a checkpoint's generator (its weight average where the run kept one), checked;
- `validation_fills` / `checkpoint_fills`: a checkpoint's fills of a dataset's validation subset, exactly as
  the trial's own validation made them every epoch (the same subset, noise, batches and generator).

Knows nothing of the training loop (`raysearch.loop` calls this module, never the other way round).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from models import ConditionedGenerator
from models.generators import activate_output
from models.geometry import IMAGE_SIZE, hole_of, mask_context, paste_center
from raysearch.checkpoint import GENERATOR_ENTRIES, check_state, load_checkpoint, load_part
from raysearch.config import ExperimentConfig, build_config
from raysearch.data.dataset import to_float_images
from raysearch.data.splits import load_split, open_dataset
from raysearch.errors import CheckpointError, ConfigError, DataError

# Photos between two progress lines of a long fill (inpaint of a folder).
PROGRESS_EVERY = 256


def generate(cfg: ExperimentConfig, generator: nn.Module, context: Tensor, tokens: Tensor,
             noise: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """The center `generator` fills in, in image space, and the clip penalty of seed 000's clip output."""
    raw = generator(context, tokens, noise)
    return activate_output(raw.float(), cfg.generator.output_activation)


def autocast(cfg: ExperimentConfig, device: torch.device):
    """bf16 autocast with `train.bf16`, else nothing."""
    if not cfg.train.bf16:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def validation_noise(cfg: ExperimentConfig, count: int, device: torch.device) -> Tensor | None:
    """The generator noise of `count` images to fill: the same every epoch, in analysis and in `inpaint`.

    Drawn on the CPU, then moved: a CUDA generator draws other numbers than the
    CPU one for the same seed, and analysis (on the CPU) must show exactly the
    validation images a GPU-trained trial measured.
    """
    if not cfg.generator.noise_length:
        return None
    rng = torch.Generator(device="cpu").manual_seed(cfg.train.seed + 12345)
    return torch.randn(count, cfg.generator.noise_length, generator=rng).to(device)


@torch.no_grad()
def generator_outputs(generator: nn.Module, cfg: ExperimentConfig, images: Tensor, tokens: Tensor,
                      noise: Tensor | None, *, device: torch.device | None = None, batch_size: int | None = None,
                      progress: Callable[[int, int], None] | None = None) -> Tensor:
    """What `generator` (built from `cfg`) outputs for the holes of `images` (float [N, 3, 64, 64] in [-1, 1]):
    float [N, 3, 32 + 2m, 32 + 2m] in [-1, 1], on the images' device.

    Batches of `batch_size` (default `train.batch_size`) run on `device` (default: the images'), so a fill of
    thousands of photos never holds them all on a GPU; `progress(done, total)` is called every PROGRESS_EVERY
    images and at the end.
    """
    device = device or images.device
    size = batch_size or cfg.train.batch_size
    generator.eval()
    outputs = []
    for start in range(0, len(images), size):
        batch = slice(start, start + size)
        batch_noise = noise[batch].to(device) if noise is not None else None
        with autocast(cfg, device):
            output, _ = generate(cfg, generator, mask_context(images[batch].to(device)), tokens[batch].to(device),
                                 batch_noise)
        outputs.append(output.float().to(images.device))
        done = min(start + size, len(images))
        if progress is not None and len(images) > size and (done % PROGRESS_EVERY < size or done == len(images)):
            progress(done, len(images))
    return torch.cat(outputs)


def composite(images: Tensor, outputs: Tensor) -> Tensor:
    """`images` (float [N, 3, 64, 64]) with their 32x32 hole taken from the generator's `outputs` (32 + 2m
    pixels): every pixel outside the hole is the image's own, whatever the context margin."""
    return paste_center(images, hole_of(outputs).to(images.dtype))


# ---------------------------------------------------------------- a checkpoint's generator


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
                      alpha: float | None = None) -> tuple[ExperimentConfig, ConditionedGenerator]:
    """(config, generator) of a checkpoint, without its data: the generator validation measures (its weight
    average where the run kept one), in eval mode on `device`, at realism trade-off `alpha` where given
    (`set_alpha`). Everything the checkpoint holds for it is checked here: a checkpoint that does not fit
    its config is one CheckpointError line naming `where`."""
    cfg = checkpoint_config(state, where)
    generator = ConditionedGenerator(cfg.generator, cfg.captions, checkpoint_vocab_size(state))
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


def set_alpha(cfg: ExperimentConfig, generators: list[nn.Module], alpha: float, where: str) -> None:
    """Evaluate `realism_residual` generators (ConditionedGenerators built from `cfg`) at trade-off `alpha`
    (0: their L2 path, 1: as trained), or ConfigError where the config has no realism residual."""
    if not cfg.generator.realism_residual:
        raise ConfigError(f"--alpha: {where} has no realism residual (generator.realism_residual: false)")
    for conditioned in generators:
        conditioned.generator.alpha = alpha


@dataclass(frozen=True)
class ValidationFills:
    """A checkpoint's generator on the validation subset of a dataset, as the trial's validation filled it."""

    images: np.ndarray  # uint8 [N, 64, 64, 3]: the validation images (for the classical fills)
    real: Tensor  # float32 [N, 3, 64, 64] in [-1, 1]: the same images
    outputs: Tensor  # float32 [N, 3, 32 + 2m, 32 + 2m] in [-1, 1]: what the generator output (scored: hole_of)
    filled: Tensor  # float32 [N, 3, 64, 64] in [-1, 1]: `real` with the generated 32x32 hole (`composite`)
    photos: np.ndarray  # int64 [N]: the photo each image was cut from
    config: ExperimentConfig  # the run's config, with the dataset and subset used here
    epoch: int  # epochs the checkpoint had trained


def validation_fills(state: dict[str, Any], where: str = "checkpoint", *, data: str | None = None,
                     val_images: int | None = None, alpha: float | None = None) -> ValidationFills:
    """The generator of checkpoint `state` on the first `val_images` validation images (None: as the run
    measured, 0: all) of `data` (a dataset directory or URI; None: the one the run trained on), on the CPU;
    a `realism_residual` generator at trade-off `alpha` (None: its own, 1).

    The trial's validation, image for image: the same subset, noise, batches and generator, so a trial's
    recorded `val/*` figures come back from these fills. Bad input is one CheckpointError or DataError line
    naming `where` or the dataset; the checkpoint is checked before any data is read.
    """
    cfg, generator = trained_generator(state, where, alpha=alpha)
    changes = {"val_images": val_images} if val_images is not None else {}
    if data is not None:
        changes["path"] = data
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, **changes),
                              train=dataclasses.replace(cfg.train, device="cpu"))  # filled here, on the CPU
    prepared, _ = open_dataset(cfg.data)
    if prepared.image_size != IMAGE_SIZE:
        raise DataError(f"{prepared.path}: holds {prepared.image_size}x{prepared.image_size} images; "
                        f"the generators fill {IMAGE_SIZE}x{IMAGE_SIZE} ones")
    split = load_split(cfg.data, "val", cfg.captions.enabled)
    real = to_float_images(split.images)
    outputs = generator_outputs(generator, cfg, real, split.tokens, validation_noise(cfg, len(real), real.device))
    count = len(real)
    return ValidationFills(
        images=np.array(split.images), real=real, outputs=outputs, filled=composite(real, outputs),
        photos=np.asarray(prepared.image_ids("val")[:count], dtype=np.int64), config=cfg,
        epoch=int(state["epoch"]),
    )


def checkpoint_fills(directory: str | Path, *, data: str | None = None, val_images: int | None = 0,
                     alpha: float | None = None) -> ValidationFills:
    """`validation_fills` of the checkpoint in `directory` (holding state.pt), all validation images by default
    (None: the run's own subset): what the judge scores (python -m raysearch.judge CHECKPOINT)."""
    state = load_checkpoint(Path(directory))
    return validation_fills(state, str(Path(directory) / "state.pt"), data=data, val_images=val_images, alpha=alpha)
