"""`prepare`: raw COCO 2014 (or the IFT6266 layout), or any folder of photos -> a packed 64x64 dataset.

Crash safety: everything is written into `OUT/.partial-<pid>-*/`, moved into
OUT when complete, and `meta.json` is published last with an atomic rename.
A directory without a valid meta.json is never taken for a dataset, and a
rerun simply starts over.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from raysearch.data import layout
from raysearch.data.coco import COCO_SPLITS, read_coco_splits
from raysearch.data.ift6266 import CAPTIONS_PICKLE, is_ift6266, read_ift6266_splits
from raysearch.data.images import load_crops, load_square
from raysearch.data.parallel import Mapper, ordered_mapper, resolve_workers
from raysearch.data.photos import (
    DEFAULT_MIN_CROP, DEFAULT_VAL_FRACTION, LAYOUT_NAME, CropDraw, CropPlan, crop_box, read_photo_splits,
)
from raysearch.data.sources import CAPTIONS_PER_IMAGE, SourceSplit
from raysearch.errors import DataError

DEFAULT_SIZE = 64
PARTIAL_PREFIX = ".partial-"
_COPY_ROWS = 4096  # rows per chunk when compacting an array after skips

Log = Callable[[str], None]


def find_sources(root: Path) -> list[SourceSplit]:
    """The splits of a raw dataset: the COCO 2014 layout, else the IFT6266 one."""
    if not root.is_dir():
        raise DataError(f"--coco-root {root}: no such directory")
    if (root / "annotations").is_dir():
        splits = read_coco_splits(root)
        if not splits:
            expected = " and/or ".join(
                f"annotations/captions_{folder}.json with {folder}/" for folder in COCO_SPLITS.values()
            )
            raise DataError(f"{root}: no COCO split found; expected {expected}")
        return splits
    if is_ift6266(root):
        splits = read_ift6266_splits(root)
        if not splits:
            raise DataError(f"{root}: IFT6266 layout without train2014/ or val2014/ image folders")
        return splits
    raise DataError(
        f"{root}: not a raw dataset; expected the COCO 2014 layout (annotations/captions_train2014.json, "
        f"train2014/, val2014/) or the IFT6266 one ({CAPTIONS_PICKLE}, train2014/, val2014/)"
    )


def load_task(task: tuple[str, int, list[CropDraw] | None, float]) -> tuple[np.ndarray | None, str]:
    """One image of a prepare: (pixels [K, size, size, 3], original mode) or (None, why it was skipped).
    Runs in pool workers (a top-level function: pool workers pickle it by name)."""
    path, size, draws, min_crop = task
    try:
        if draws is None:
            pixels, mode = load_square(Path(path), size)
            return pixels[None], mode
        return load_crops(Path(path), size, lambda w, h: [crop_box(w, h, d, min_crop) for d in draws], min_crop)
    except FileNotFoundError:
        return None, "missing file"
    except Exception as error:  # decoders raise OSError, SyntaxError, ValueError... for bad files
        return None, f"unreadable: {type(error).__name__}: {error}"


def _remove_stale_partials(out: Path) -> None:
    """Delete work dirs left by killed runs (their pid is gone), never a live run's."""
    for entry in out.glob(f"{PARTIAL_PREFIX}*"):
        pid_text = entry.name[len(PARTIAL_PREFIX) :].split("-", 1)[0]
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except (ValueError, PermissionError, OSError):
            continue


def _compact(path: Path, rows: int) -> None:
    """Rewrite the .npy at `path` keeping only its first `rows` rows (after skips)."""
    full = np.load(path, mmap_mode="r")
    smaller = path.with_name(path.name + ".compact")
    target = np.lib.format.open_memmap(smaller, mode="w+", dtype=full.dtype, shape=(rows, *full.shape[1:]))
    for start in range(0, rows, _COPY_ROWS):
        stop = min(start + _COPY_ROWS, rows)
        target[start:stop] = full[start:stop]
    target.flush()
    del full, target
    os.replace(smaller, path)


def _prepare_split(
    source: SourceSplit, work: Path, size: int, plan: CropPlan | None, mapper: Mapper, log: Log
) -> tuple[dict[str, Any], list[dict[str, str]], Counter[str]]:
    """Decode one split into `work`; `plan` None = the centered square of each image with its captions."""
    count = len(source.images)
    crops = plan.count if plan else 1
    captions_per_image = 0 if plan else CAPTIONS_PER_IMAGE
    images_path = work / layout.images_file(source.name)
    shape = (max(count * crops, 1), size, size, 3)  # a memory map cannot be empty
    pixels_out = np.lib.format.open_memmap(images_path, mode="w+", dtype=np.uint8, shape=shape)
    skipped = list(source.skipped)
    converted: Counter[str] = Counter()
    ids: list[int] = []
    captions: list[list[str]] = []
    report_every = max(count // 10, 1000)
    tasks = [(str(image.path), size, plan.draws(image.name) if plan else None, plan.min_crop if plan else 1.0)
             for image in source.images]
    for index, (pixels, note) in enumerate(mapper(load_task, tasks)):
        image = source.images[index]
        if pixels is None:
            skipped.append({"split": source.name, "file": image.name, "reason": note})
        else:
            if note != "RGB":
                converted[note] += 1
            pixels_out[len(ids) : len(ids) + len(pixels)] = pixels
            ids += [image.image_id] * len(pixels)  # every crop keeps its photo's id
            captions += [list(image.captions)] * len(pixels)
        if (index + 1) % report_every == 0:
            log(f"{source.name}: {index + 1}/{count} images")
    pixels_out.flush()
    del pixels_out
    kept = len(ids)
    if kept == 0:  # the caller leaves the split out; an empty array cannot be memory-mapped
        images_path.unlink()
    elif kept < count * crops:
        _compact(images_path, kept)
    np.save(work / layout.image_ids_file(source.name), np.asarray(ids, dtype=np.int64))
    with (work / layout.captions_file(source.name)).open("w", encoding="utf-8") as handle:
        json.dump(captions, handle, separators=(",", ":"))
    info = {
        "count": kept,
        "image_shape": [size, size, 3],
        "captions_per_image": captions_per_image,
        "files": {
            "images": layout.images_file(source.name),
            "captions": layout.captions_file(source.name),
            "image_ids": layout.image_ids_file(source.name),
        },
        "source": source.source_files,
        "skipped": len(skipped),
    }
    return info, skipped, converted


def _check_out(out: Path, recipe: dict[str, Any], size: int, force: bool) -> dict[str, Any] | None:
    """The meta of an OUT already prepared by the same recipe (None if OUT is free to write), else DataError.

    OUT must not be a file, and a directory holding anything but this
    command's own work dirs is someone's data: never overwritten without --force.
    """
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: is a file; give a directory to write the prepared dataset into")
    if not out.is_dir():
        return None
    if not (out / layout.META_FILE).exists():
        foreign = sorted(entry.name for entry in out.iterdir() if not entry.name.startswith(PARTIAL_PREFIX))
        if foreign and not force:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise DataError(f"--out {out}: holds files this command did not write ({shown}) and no "
                            f"{layout.META_FILE}; choose a new or empty directory, or pass --force to write over them")
        return None
    try:
        meta = layout.read_meta(out)
    except DataError as error:
        if force:
            return None
        raise DataError(
            f"--out {out}: holds an invalid {layout.META_FILE} ({error}); remove it, choose another --out "
            "or pass --force"
        ) from None
    source = meta.get("source", {})
    same = meta.get("image_size") == size and all(source.get(key) == value for key, value in recipe.items())
    if same:
        return meta
    if force:
        return None
    raise DataError(
        f"--out {out}: already prepared from {source.get('root')} at size {meta.get('image_size')} "
        f"({', '.join(f'{k}={source.get(k)}' for k in recipe if k != 'root') or 'COCO layout'}); remove it, "
        f"choose another --out or pass --force to prepare {recipe['root']} at size {size} there"
    )


def _make_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a parent is a file, no permission...
        raise DataError(f"--out {out}: cannot be created ({error.strerror or error})") from None


def prepare(
    coco_root: str | Path, out: str | Path, *, size: int = DEFAULT_SIZE, workers: int | None = None,
    force: bool = False, log: Log = print,
) -> dict[str, Any]:
    """Build the prepared dataset at `out` from the raw COCO (or IFT6266) tree at `coco_root`; returns its meta.

    Bad images (unreadable, truncated, missing) are skipped and listed; they
    never abort. A finished `out` is left alone.
    """
    root = Path(coco_root).expanduser().resolve()
    out = Path(out).expanduser().resolve()
    if size < 8:
        raise DataError(f"--size: must be >= 8, got {size}")
    workers = resolve_workers(workers)
    existing = _check_out(out, {"root": str(root)}, size, force)
    if existing is not None:
        log(f"{out}: already prepared ({_describe(existing)}); nothing to do")
        return existing
    sources = find_sources(root)
    source = {"layout": sources[0].source_files["layout"], "root": str(root)}
    return _build(sources, out, size, workers, {}, source, log)


def prepare_photos(
    images: str | Path, out: str | Path, *, size: int = DEFAULT_SIZE, crops: int = 1, val_crops: int | None = None,
    min_crop: float = DEFAULT_MIN_CROP, seed: int = 0, val_fraction: float = DEFAULT_VAL_FRACTION,
    workers: int | None = None, force: bool = False, log: Log = print,
) -> dict[str, Any]:
    """Build a captionless prepared dataset at `out` from the photos under `images` (see photos.py)."""
    root = Path(images).expanduser().resolve()
    out = Path(out).expanduser().resolve()
    val_crops = crops if val_crops is None else val_crops
    if size < 8:
        raise DataError(f"--size: must be >= 8, got {size}")
    if crops < 1 or val_crops < 1:
        raise DataError(f"--crops and --val-crops: must be >= 1, got {crops} and {val_crops}")
    if not 0.0 < min_crop <= 1.0:
        raise DataError(f"--min-crop: must be in (0, 1] (a fraction of the short side), got {min_crop}")
    workers = resolve_workers(workers)
    recipe = {"root": str(root), "layout": LAYOUT_NAME, "crops": crops, "val_crops": val_crops,
              "min_crop": min_crop, "seed": seed, "val_fraction": val_fraction}
    existing = _check_out(out, recipe, size, force)
    if existing is not None:
        log(f"{out}: already prepared ({_describe(existing)}); nothing to do")
        return existing
    sources = read_photo_splits(root, val_fraction)
    plans = {"train": CropPlan(crops, min_crop, seed), "val": CropPlan(val_crops, min_crop, seed)}
    return _build(sources, out, size, workers, plans, recipe, log)


def _build(
    sources: list[SourceSplit], out: Path, size: int, workers: int, plans: dict[str, CropPlan],
    source: dict[str, Any], log: Log,
) -> dict[str, Any]:
    """Decode `sources` into a work dir under `out`, move the files in, publish meta.json last."""
    _make_out(out)
    _remove_stale_partials(out)
    work = Path(tempfile.mkdtemp(dir=out, prefix=f"{PARTIAL_PREFIX}{os.getpid()}-"))
    try:
        splits: dict[str, Any] = {}
        skipped: list[dict[str, str]] = []
        converted: Counter[str] = Counter()
        total = sum(len(split.images) for split in sources)
        with ordered_mapper(workers, total) as mapper:
            for split in sources:
                info, split_skipped, split_converted = _prepare_split(
                    split, work, size, plans.get(split.name), mapper, log
                )
                skipped += split_skipped
                converted += split_converted
                if info["count"]:
                    splits[split.name] = info
                else:
                    log(f"{split.name}: no readable image, split left out")
        if not splits:
            raise DataError(f"{source['root']}: no readable image in any split ({len(skipped)} skipped)")
        meta = {
            "format": layout.FORMAT_NAME,
            "version": layout.FORMAT_VERSION,
            "image_size": size,
            "captions": all(info["captions_per_image"] > 0 for info in splits.values()),
            "source": source,
            "splits": splits,
            "skipped": skipped,
            "counts": {
                "images": sum(info["count"] for info in splits.values()),
                "skipped": len(skipped),
                "converted_to_rgb": dict(sorted(converted.items())),
            },
        }
        for split in layout.SPLITS:
            for name in layout.split_files(split):
                if split in splits:
                    os.replace(work / name, out / name)
                else:  # a stale file from an older run must not sit beside the new meta
                    (out / name).unlink(missing_ok=True)
        layout.write_json_atomic(out / layout.META_FILE, meta)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"prepared {out}: {_describe(meta)}")
    for item in skipped[:20]:
        log(f"  skipped {item['file']}: {item['reason']}")
    if len(skipped) > 20:
        log(f"  ... and {len(skipped) - 20} more, listed in {out / layout.META_FILE}")
    return meta


def _describe(meta: dict[str, Any]) -> str:
    parts = [f"{split} {info['count']} images" for split, info in meta["splits"].items()]
    counts = meta.get("counts", {})
    converted = counts.get("converted_to_rgb") or {}
    text = ", ".join(parts) + f"; {counts.get('skipped', 0)} skipped"
    if converted:
        text += "; converted to RGB: " + ", ".join(f"{mode} {n}" for mode, n in converted.items())
    return text
