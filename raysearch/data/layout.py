"""The on-disk format of a prepared dataset: file names and `meta.json`.

A prepared dataset is a directory holding, per split (`train`, `val`):

    {split}_images.npy     uint8 [N, size, size, 3], memory-mappable
    {split}_captions.json  list of N lists of caption strings (same count each)
    {split}_image_ids.npy  int64 [N], the source image ids

and `meta.json`, written last and atomically: its presence and validity is
what makes the directory a complete dataset. Both the COCO pipeline and the
synthetic dataset end up in this format, so the trainer has a single reader.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from raysearch.errors import DataError

FORMAT_NAME = "raysearch-inpainting"
FORMAT_VERSION = 1
META_FILE = "meta.json"
SPLITS = ("train", "val")
PREPARE_HINT = "run `python -m raysearch.data prepare --coco-root RAW --out DIR` (or `--images PHOTOS`) first"


def images_file(split: str) -> str:
    return f"{split}_images.npy"


def captions_file(split: str) -> str:
    return f"{split}_captions.json"


def image_ids_file(split: str) -> str:
    return f"{split}_image_ids.npy"


def split_files(split: str) -> list[str]:
    return [images_file(split), captions_file(split), image_ids_file(split)]


def read_meta(path: Path) -> dict[str, Any]:
    """The validated meta of the prepared dataset at `path`; DataError if it is not one."""
    meta_path = path / META_FILE
    if not path.is_dir():
        raise DataError(f"{path}: no such dataset directory; {PREPARE_HINT}")
    if not meta_path.is_file():
        raise DataError(f"{path}: not a prepared dataset (no {META_FILE}); {PREPARE_HINT}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{meta_path}: unreadable ({error}); {PREPARE_HINT}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise DataError(f"{meta_path}: 'format' must be {FORMAT_NAME!r}; {PREPARE_HINT}")
    if meta.get("version") != FORMAT_VERSION:
        raise DataError(
            f"{meta_path}: format version {meta.get('version')!r} is not supported "
            f"(this code reads version {FORMAT_VERSION}); prepare the dataset again"
        )
    if not isinstance(meta.get("image_size"), int) or meta["image_size"] < 1:
        raise DataError(f"{meta_path}: 'image_size' must be a positive integer; {PREPARE_HINT}")
    splits = meta.get("splits")
    if not isinstance(splits, dict) or not splits:
        raise DataError(f"{meta_path}: 'splits' must be a non-empty mapping of {list(SPLITS)}")
    for split, info in splits.items():
        if split not in SPLITS:
            raise DataError(f"{meta_path}: unknown split {split!r}; allowed: {list(SPLITS)}")
        if not isinstance(info, dict):
            raise DataError(f"{meta_path}: splits.{split} must be a mapping")
        for key in ("count", "captions_per_image"):
            if not isinstance(info.get(key), int) or info[key] < 0:
                raise DataError(f"{meta_path}: splits.{split}.{key} must be an integer >= 0")
        shape = info.get("image_shape")
        if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(d, int) for d in shape)):
            raise DataError(f"{meta_path}: splits.{split}.image_shape must be [size, size, 3]")
        for name in split_files(split):
            if not (path / name).is_file():
                raise DataError(f"{path}: {name} is missing although {META_FILE} lists split {split!r}; {PREPARE_HINT}")
    return meta


def has_captions(meta: dict[str, Any]) -> bool:
    """Whether every split has captions (datasets prepared from plain photos have none)."""
    return all(info["captions_per_image"] > 0 for info in meta["splits"].values())


def no_captions_error(where: str) -> DataError:
    """The one line for a captionless dataset under a config that conditions on captions."""
    return DataError(f"{where}: this dataset has no captions (prepared from photos); "
                     "use captions.encoder=none with it (and a space that does not search it)")


def is_prepared(path: Path) -> bool:
    try:
        read_meta(path)
    except DataError:
        return False
    return True


def write_json_atomic(path: Path, value: Any) -> None:
    """Write JSON so that readers see either the old file, or the whole new one.

    The temporary file sits in the same directory so os.replace is a rename on
    one filesystem (atomic), and it is fsynced first so a crash cannot publish
    an empty file.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(value, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a dataset is read by every user's trials
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
