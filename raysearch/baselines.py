"""Classical fills of the 32x32 hole, scored exactly like a trial's validation: what a model must beat.

- `mean`, `harmonic`: models/fills.py (the border ring's mean colour; Laplace's equation from the ring);
- `telea`, `navier_stokes`: OpenCV's `cv2.inpaint` (INPAINT_TELEA, INPAINT_NS) on the uint8 images
  with the 32x32 center as the mask.

The figures are `raysearch.metrics.compute_all` on the same fixed validation subset a trial
measures (the first `data.val_images` of the val split, 0 = all), with the same seed
(`train.seed`), through the one scoring path (`raysearch.evaluate.score_centers`), so a baseline
and a trial compare number for number.

They are computed once per dataset and cached beside it in `baselines.json` (under a file lock,
written atomically), keyed by everything they depend on: the validation pixels themselves, the
subset size, the seed, the metric settings read from raysearch/metrics.py, and the source of the
metric and fill code. A cache hit costs one hash of the validation subset and one small JSON read.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from filelock import FileLock

from models import fills
from models.geometry import hole_of, hole_slice
from raysearch import evaluate, metrics
from raysearch.config import DataConfig, TrainConfig
from raysearch.data import layout
from raysearch.data.cache import cache_root, resolve_dataset
from raysearch.data.check import check_source
from raysearch.data.dataset import to_float_images
from raysearch.data.prepared import PreparedDataset
from raysearch.errors import ConfigError, DataError
from raysearch.evaluate import reported_metrics, score_centers

BASELINE_NAMES = ("mean", "harmonic", "telea", "navier_stokes")
CACHE_FILE = "baselines.json"
CACHE_FORMAT = "raysearch-baselines"
INPAINT_RADIUS = 3  # pixels around each hole pixel OpenCV draws from (its documented typical value)
METRIC_NAMES = tuple(reported_metrics())


def _opencv_fill(images: np.ndarray, flag_name: str) -> np.ndarray:
    """uint8 [N, 64, 64, 3] with the center inpainted by cv2.inpaint(flag)."""
    mask = np.zeros(images.shape[1:3], np.uint8)
    mask[hole_slice(0), hole_slice(0)] = 255
    flag = getattr(cv2, flag_name)
    return np.stack([cv2.inpaint(np.ascontiguousarray(image), mask, INPAINT_RADIUS, flag) for image in images])


def filled_images(images: np.ndarray, name: str) -> torch.Tensor:
    """float32 [N, 3, 64, 64] in [-1, 1]: `images` (uint8 [N, 64, 64, 3]) with the hole filled by `name`."""
    if name == "telea":
        return to_float_images(torch.from_numpy(_opencv_fill(images, "INPAINT_TELEA")))
    if name == "navier_stokes":
        return to_float_images(torch.from_numpy(_opencv_fill(images, "INPAINT_NS")))
    if name in ("mean", "harmonic"):
        return fills.fill_hole(to_float_images(torch.from_numpy(np.array(images))), name)
    raise ValueError(f"baseline: unknown fill {name!r}; allowed: {', '.join(BASELINE_NAMES)}")


def score_fills(images: np.ndarray, seed: int) -> dict[str, dict[str, float]]:
    """{fill: {"val/mse": ..., ...}} for uint8 [N, 64, 64, 3] validation images, scored as validation scores."""
    real = to_float_images(torch.from_numpy(np.array(images)))
    return {name: score_centers(hole_of(filled_images(images, name)), real, seed=seed) for name in BASELINE_NAMES}


def metric_settings() -> dict[str, Any]:
    """What the figures depend on in the metric and fill code, read from the modules (never copied).

    The readable part (module constants, the SWD defaults) says what changed; the source digests
    catch any other change (e.g. compute_all passing other SWD counts).
    """
    constants = {name: value for name, value in vars(metrics).items()
                 if name.isupper() and isinstance(value, (int, float, str))}
    swd = {name: p.default for name, p in inspect.signature(metrics.sliced_wasserstein).parameters.items()
           if p.kind == p.KEYWORD_ONLY and p.default is not p.empty}
    digest = hashlib.sha256()
    for module in (metrics, fills, evaluate):
        digest.update(inspect.getsource(module).encode())
    return {"metrics": metrics.list_metrics(), "constants": constants, "swd": swd,
            "inpaint_radius": INPAINT_RADIUS, "source_sha256": digest.hexdigest()}


def _cache_key(subset: np.ndarray, val_images: int, seed: int) -> dict[str, Any]:
    return {
        "val_images": val_images,
        "count": int(subset.shape[0]),
        "seed": seed,
        "val_pixels_sha256": hashlib.sha256(np.ascontiguousarray(subset).data).hexdigest(),
        "metric_settings": metric_settings(),
    }


def _digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _read_cache(path: Path) -> dict[str, Any]:
    """The cache's entries, {} when absent or unreadable (it is only a cache: recomputed then)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("entries"), dict):
        return {}
    return data["entries"]


def _cached_figures(entries: dict[str, Any], digest: str) -> dict[str, dict[str, float]] | None:
    figures = entries.get(digest, {}).get("figures") if isinstance(entries.get(digest), dict) else None
    valid = isinstance(figures, dict) and set(figures) == set(BASELINE_NAMES) and all(
        isinstance(row, dict) and set(row) == set(METRIC_NAMES) for row in figures.values()
    )
    return figures if valid else None


def _cache_path(dataset: Path) -> Path:
    """`baselines.json` beside the dataset, or in the raysearch cache when that directory is read-only."""
    beside = dataset / CACHE_FILE
    probe = beside if beside.exists() else dataset
    if probe.exists() and _writable(probe):
        return beside
    name = hashlib.sha256(str(dataset.resolve()).encode()).hexdigest()[:16]
    return cache_root() / "baselines" / f"{name}-{CACHE_FILE}"


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def baselines_for(data: DataConfig, seed: int) -> dict[str, dict[str, float]]:
    """{fill: {"val/mse", "val/psnr", "val/ssim", "val/seam", "val/swd"}} on `data`'s validation subset.

    The dataset is resolved as the trial resolves it (the synthetic default, a
    directory, a URI fetched once per node); the figures are cached beside it.
    """
    location, subset = _validation_view(data)
    key = _cache_key(subset, data.val_images, seed)
    digest = _digest(key)
    path = _cache_path(location)
    cached = _cached_figures(_read_cache(path), digest)
    if cached is not None:
        return cached
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        entries = _read_cache(path)  # another process may have written it while we waited
        cached = _cached_figures(entries, digest)
        if cached is not None:
            return cached
        figures = score_fills(np.asarray(subset), seed)
        entries[digest] = {"key": key, "figures": figures}
        layout.write_json_atomic(path, {"format": CACHE_FORMAT, "entries": entries})
    return figures


def best_baseline(baselines: dict[str, dict[str, float]], metric: str, mode: str) -> tuple[str, float]:
    """(fill, value) of the best classical fill on `metric` ("val/psnr", ...) for `mode` ("max" or "min")."""
    if mode not in ("max", "min"):
        raise ConfigError(f"mode: must be 'max' or 'min', got {mode!r}")
    scored = {name: row[metric] for name, row in baselines.items() if metric in row}
    if not scored:
        raise ConfigError(f"metric: the classical fills have no {metric!r}; they have {', '.join(METRIC_NAMES)}")
    pick = max if mode == "max" else min
    name = pick(scored, key=scored.__getitem__)
    return name, scored[name]


def format_table(baselines: dict[str, dict[str, float]]) -> str:
    """A fixed-width table: one row per fill, one column per metric."""
    columns = [metric for metric in METRIC_NAMES if any(metric in row for row in baselines.values())]
    lines = ["fill            " + "".join(f"{metric:>12}" for metric in columns)]
    for name, row in baselines.items():
        lines.append(f"{name:<16}" + "".join(f"{row[metric]:>12.4f}" for metric in columns))
    return "\n".join(lines)


def print_baselines(source: str, *, val_images: int | None = None, seed: int | None = None) -> None:
    """The `baselines` command: a readable table, then one JSON object as the last line."""
    path = None if source == "synthetic" else source
    check_source(path, captions=False, label="DATA")  # one line for a missing, unprepared or foreign DATA
    val_images = DataConfig.val_images if val_images is None else val_images
    seed = TrainConfig.seed if seed is None else seed
    try:
        data = DataConfig(path=path, val_images=val_images)
    except ValueError as error:  # the dataclass's own check (a ValueError, as for a config file)
        raise DataError(f"--val-images: {error}") from None
    figures = baselines_for(data, seed)
    count = "all" if val_images == 0 else f"the first {val_images}"
    print(f"classical fills on {source}: {count} val images, metric seed {seed}")
    print(format_table(figures))
    print(json.dumps(figures, sort_keys=True))


def baselines_of(cfg) -> dict[str, dict[str, float]]:
    """The classical fills of a full config's data, scored with its metric seed: the one call every view makes
    (the search's ranking floor and table, analyze, TensorBoard's reference runs, `raysearch.train`)."""
    return baselines_for(cfg.data, cfg.train.seed)


def validation_subset(data: DataConfig) -> np.ndarray:
    """uint8 [N, 64, 64, 3]: the validation images a trial measures and the fills are scored on."""
    return np.array(_validation_view(data)[1])  # a writable copy, for torch


def _validation_view(data: DataConfig) -> tuple[Path, np.ndarray]:
    """The resolved dataset's directory and its validation subset (memory-mapped), as a trial resolves them
    (the synthetic default, a directory, a URI fetched once per node)."""
    dataset = PreparedDataset(resolve_dataset(
        data.path, synthetic_train=data.synthetic_train, synthetic_val=data.synthetic_val,
        synthetic_seed=data.synthetic_seed,
    ))
    if "val" not in dataset.splits:
        raise DataError(f"{dataset.path}: has no val split to score the classical fills on")
    images = dataset.images("val")
    return dataset.path, images if data.val_images == 0 else images[: data.val_images]
