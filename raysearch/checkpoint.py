"""Full-state checkpoints: models, optimisers, schedulers, epoch, RNG, config; and a run's kept ones.

One file, `state.pt`, written to a temporary name and renamed into place so a
crash mid-write never leaves a checkpoint that looks complete. Read back with
`torch.load(weights_only=True)`: only tensors and plain containers, never
arbitrary pickles.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from raysearch.errors import CheckpointError

STATE_FILE = "state.pt"
FORMAT_VERSION = 2
# Format 1 named the optimisers and schedules opt_g, opt_d, sched_g, sched_d: read as today's names.
RENAMED_IN_FORMAT_2 = {"opt_g": "generator_optimizer", "opt_d": "critic_optimizer",
                       "sched_g": "generator_schedule", "sched_d": "critic_schedule"}
# Full-state checkpoints are small (a few MB); keep a couple so a corrupt latest one is not the only copy.
CHECKPOINTS_TO_KEEP = 2
# Where a run directory (raysearch.train --logdir) keeps its checkpoints, as Train names them for a DDP run there.
RUN_DIR_CHECKPOINTS = "train"


def checkpoint_name(epoch: int) -> str:
    """A run's checkpoint directory of `epoch`, as raysearch.train and a DDP trial's Train run name it."""
    return f"epoch_{epoch:04d}"


def save_checkpoint(state: dict[str, Any], directory: Path) -> Path:
    """Write `state` atomically into `directory`/state.pt and return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / STATE_FILE
    partial = directory / f".{STATE_FILE}.partial"
    torch.save({"format_version": FORMAT_VERSION, **state}, partial)
    os.replace(partial, final)
    return directory


def load_checkpoint(directory: Path) -> dict[str, Any]:
    """The state saved by `save_checkpoint`, or CheckpointError naming what is wrong (one line)."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{directory}: not a raysearch checkpoint (no {STATE_FILE})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(f"{path}: {_load_failure(err)}") from None
    version = state.get("format_version") if isinstance(state, dict) else None
    if version == 1:  # written before the optimisers' entries were renamed: the same state under old names
        state = {RENAMED_IN_FORMAT_2.get(key, key): value for key, value in state.items()}
        state["format_version"] = FORMAT_VERSION
    elif version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unknown checkpoint format (format_version {version!r}; this raysearch "
                              f"reads 1 and {FORMAT_VERSION})")
    return state


def _load_failure(err: Exception) -> str:
    """One line for torch.load's error. Its weights-only refusal spans lines and advises weights_only=False,
    which would run the file's code: keep only what it refused."""
    text = str(err)
    if "Weights only load failed" in text:
        _, _, detail = text.partition("WeightsUnpickler error:")
        reason = next((line.strip() for line in detail.splitlines() if line.strip()), "")
        reason = reason.split(" was not an allowed global")[0].split(". ")[0]
        return (f"refused: it holds more than tensors and plain containers ({reason or 'unsupported content'}); "
                "raysearch reads only weights-only checkpoints")
    first = " ".join(text.split())[:300]
    return f"cannot be read as a checkpoint ({type(err).__name__}: {first})"


# What a full-state checkpoint holds (Trial.state), and the type each entry must have.
STATE_TYPES: dict[str, tuple[type, ...]] = {
    "config": (dict,), "epoch": (int,), "step": (int,), "generator": (dict,),
    "generator_average": (dict, type(None)), "critic": (dict, type(None)),
    "generator_optimizer": (dict,), "critic_optimizer": (dict, type(None)), "generator_schedule": (dict,),
    "critic_schedule": (dict, type(None)), "rng": (dict,),
}


# What filling holes needs of it (generator_only keeps these).
GENERATOR_ENTRIES = ("config", "epoch", "generator", "generator_average")


def check_state(state: dict[str, Any], path: Path | str, entries: tuple[str, ...] = tuple(STATE_TYPES)) -> None:
    """Every entry a trial restores (or only `entries` of them) is there with the right type, or
    CheckpointError naming the entry."""
    for key in entries:
        types = STATE_TYPES[key]
        if key not in state:
            kind = "full-state " if key not in GENERATOR_ENTRIES else ""
            raise CheckpointError(f"{path}: not a {kind}raysearch checkpoint (no {key!r} entry)")
        if not isinstance(state[key], types) or isinstance(state[key], bool):
            allowed = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise CheckpointError(f"{path}: entry {key!r} must be {allowed}, got {type(state[key]).__name__}")
    if "rng" in entries and not isinstance(state["rng"].get("torch"), torch.Tensor):
        raise CheckpointError(f"{path}: entry 'rng' must hold the 'torch' generator state (a tensor)")


def load_part(target: Any, state: Any, what: str, path: Path | str) -> None:
    """`target.load_state_dict(state)` (a network, optimiser or scheduler), or CheckpointError saying which part
    of the checkpoint does not fit (missing or unexpected keys, tensor shapes) in one line."""
    try:
        target.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as err:
        detail = " ".join(str(err).split())
        if len(detail) > 300:
            detail = detail[:297] + "..."
        raise CheckpointError(f"{path}: its {what} does not fit this config ({type(err).__name__}: {detail})") from None


def config_differences(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain config dicts."""
    keys = sorted(set(saved) | set(current))
    differences = []
    for key in keys:
        dotted = f"{prefix}{key}"
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            differences += config_differences(a, b, f"{dotted}.")
        elif a != b:
            differences.append(f"{dotted} ({a!r} in the checkpoint, {b!r} now)")
    return differences


def generator_only(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's state cut to what filling holes needs (raysearch.inpaint): its config, epoch and the
    generator validation measures, without the critic, optimisers, schedulers or RNG; it cannot resume a run.

    Where the run kept a weight average, that is the generator measured and the only one kept: both
    generator entries then hold the same tensors, which torch.save writes once (a quarter of the full file).
    """
    average = state["generator_average"]
    generator = average["network"] if isinstance(average, dict) and "network" in average else state["generator"]
    return {"config": state["config"], "epoch": state["epoch"], "generator": generator,
            "generator_average": average}


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest complete `epoch_NNNN` checkpoint under `directory`, or None."""
    found = sorted(p for p in directory.glob("epoch_*") if (p / STATE_FILE).is_file()) if directory.is_dir() else []
    return found[-1] if found else None


def keep_checkpoint(source: Path, target: Path) -> None:
    """Copy a checkpoint into place (complete or absent: copied under a temporary name, then renamed),
    and drop the oldest beyond CHECKPOINTS_TO_KEEP."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    kept = sorted(p for p in target.parent.glob("epoch_*") if (p / STATE_FILE).is_file())
    for old in kept[:-CHECKPOINTS_TO_KEEP]:
        shutil.rmtree(old, ignore_errors=True)
