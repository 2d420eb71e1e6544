"""Full-state checkpoints: models, optimisers, schedulers, epoch, RNG, config.

One file, `state.pt`, written to a temporary name and renamed into place so a
crash mid-write never leaves a checkpoint that looks complete. Read back with
`torch.load(weights_only=True)`: only tensors and plain containers, never
arbitrary pickles.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from raysearch.errors import CheckpointError

STATE_FILE = "state.pt"
FORMAT_VERSION = 1


def save_checkpoint(state: dict[str, Any], directory: Path) -> Path:
    """Write `state` atomically into `directory`/state.pt and return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / STATE_FILE
    partial = directory / f".{STATE_FILE}.partial"
    torch.save({"format_version": FORMAT_VERSION, **state}, partial)
    os.replace(partial, final)
    return directory


def load_checkpoint(directory: Path) -> dict[str, Any]:
    """The state saved by `save_checkpoint`, or CheckpointError naming what is wrong."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{directory}: not a raysearch checkpoint (no {STATE_FILE})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(f"{path}: cannot be read as a checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unknown checkpoint format (expected format_version {FORMAT_VERSION})")
    return state


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
