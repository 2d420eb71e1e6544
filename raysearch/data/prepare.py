"""`prepare`: raw COCO 2014 (or the IFT6266 layout) -> a packed 64x64 dataset.

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
from raysearch.data.images import load_square
from raysearch.data.parallel import Mapper, ordered_mapper, resolve_workers
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


def _load_one(task: tuple[str, int]) -> tuple[np.ndarray | None, str]:
    """(pixels, original mode) or (None, why it was skipped). Runs in pool workers."""
    path, size = task
    try:
        return load_square(Path(path), size)
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
    source: SourceSplit, work: Path, size: int, mapper: Mapper, log: Log
) -> tuple[dict[str, Any], list[dict[str, str]], Counter[str]]:
    count = len(source.images)
    images_path = work / layout.images_file(source.name)
    shape = (max(count, 1), size, size, 3)  # a memory map cannot be empty
    pixels_out = np.lib.format.open_memmap(images_path, mode="w+", dtype=np.uint8, shape=shape)
    skipped = list(source.skipped)
    converted: Counter[str] = Counter()
    ids: list[int] = []
    captions: list[list[str]] = []
    report_every = max(count // 10, 1000)
    tasks = [(str(image.path), size) for image in source.images]
    for index, (pixels, note) in enumerate(mapper(_load_one, tasks)):
        image = source.images[index]
        if pixels is None:
            skipped.append({"split": source.name, "file": image.name, "reason": note})
        else:
            if note != "RGB":
                converted[note] += 1
            pixels_out[len(ids)] = pixels
            ids.append(image.image_id)
            captions.append(list(image.captions))
        if (index + 1) % report_every == 0:
            log(f"{source.name}: {index + 1}/{count} images")
    pixels_out.flush()
    del pixels_out
    kept = len(ids)
    if kept == 0:  # the caller leaves the split out; an empty array cannot be memory-mapped
        images_path.unlink()
    elif kept < count:
        _compact(images_path, kept)
    np.save(work / layout.image_ids_file(source.name), np.asarray(ids, dtype=np.int64))
    with (work / layout.captions_file(source.name)).open("w", encoding="utf-8") as handle:
        json.dump(captions, handle, separators=(",", ":"))
    info = {
        "count": kept,
        "image_shape": [size, size, 3],
        "captions_per_image": CAPTIONS_PER_IMAGE,
        "files": {
            "images": layout.images_file(source.name),
            "captions": layout.captions_file(source.name),
            "image_ids": layout.image_ids_file(source.name),
        },
        "source": source.source_files,
        "skipped": len(skipped),
    }
    return info, skipped, converted


def _existing(out: Path, root: Path, size: int) -> dict[str, Any] | None:
    """The meta of an already prepared OUT for the same source and size, else None or DataError."""
    if not (out / layout.META_FILE).exists():
        return None
    try:
        meta = layout.read_meta(out)
    except DataError as error:
        raise DataError(
            f"--out {out}: holds an invalid {layout.META_FILE} ({error}); remove it or choose another --out"
        ) from None
    if meta.get("image_size") != size or meta.get("source", {}).get("root") != str(root):
        raise DataError(
            f"--out {out}: already prepared from {meta.get('source', {}).get('root')} at size "
            f"{meta.get('image_size')}; remove it or choose another --out for {root} at size {size}"
        )
    return meta


def prepare(
    coco_root: str | Path, out: str | Path, *, size: int = DEFAULT_SIZE, workers: int | None = None, log: Log = print
) -> dict[str, Any]:
    """Build the prepared dataset at `out` from the raw tree at `coco_root`; returns its meta.

    Bad images (unreadable, truncated, missing) are skipped and listed; they
    never abort. A finished `out` is left alone.
    """
    root = Path(coco_root).expanduser().resolve()
    out = Path(out).expanduser().resolve()
    if size < 8:
        raise DataError(f"--size: must be >= 8, got {size}")
    workers = resolve_workers(workers)
    existing = _existing(out, root, size)
    if existing is not None:
        log(f"{out}: already prepared ({_describe(existing)}); nothing to do")
        return existing
    sources = find_sources(root)
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(out)
    work = Path(tempfile.mkdtemp(dir=out, prefix=f"{PARTIAL_PREFIX}{os.getpid()}-"))
    try:
        splits: dict[str, Any] = {}
        skipped: list[dict[str, str]] = []
        converted: Counter[str] = Counter()
        total = sum(len(source.images) for source in sources)
        with ordered_mapper(workers, total) as mapper:
            for source in sources:
                info, split_skipped, split_converted = _prepare_split(source, work, size, mapper, log)
                skipped += split_skipped
                converted += split_converted
                if info["count"]:
                    splits[source.name] = info
                else:
                    log(f"{source.name}: no readable image, split left out")
        if not splits:
            raise DataError(f"{root}: no readable image with captions in any split ({len(skipped)} skipped)")
        meta = {
            "format": layout.FORMAT_NAME,
            "version": layout.FORMAT_VERSION,
            "image_size": size,
            "source": {"layout": sources[0].source_files["layout"], "root": str(root)},
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
