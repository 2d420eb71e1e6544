"""Read the IFT6266 (2017 course) layout: 64x64 JPEGs + a pickled captions dict.

    ROOT/train2014/*.jpg  ROOT/val2014/*.jpg
    ROOT/dict_key_imgID_value_caps_train_and_valid.pkl   {file stem: [captions]}

The pickle is read with an unpickler that refuses every global, so it can
only build plain containers (dict, list, str, int, ...) from opcodes: a
crafted file cannot run code (no `os.system` via REDUCE).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any, NoReturn

from raysearch.data.sources import SourceImage, SourceSplit, fixed_captions
from raysearch.errors import DataError

CAPTIONS_PICKLE = "dict_key_imgID_value_caps_train_and_valid.pkl"
IFT6266_SPLITS = {"train": "train2014", "val": "val2014"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
_TRAILING_DIGITS = re.compile(r"(\d+)$")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler for plain data: any class or function reference is refused."""

    def __init__(self, file: Any, source: Path) -> None:
        # The course pickle was written by Python 2: its str objects are bytes.
        super().__init__(file, encoding="utf-8", errors="replace")
        self._source = source

    def find_class(self, module: str, name: str) -> NoReturn:
        raise DataError(
            f"{self._source}: refusing to load global {module}.{name}; "
            "only plain dict/list/str/int data is allowed in a captions pickle"
        )

    def persistent_load(self, pid: Any) -> NoReturn:
        raise DataError(f"{self._source}: persistent ids are not allowed in a captions pickle")


def load_captions_pickle(path: Path) -> dict[str, list[str]]:
    """The {file stem: [captions]} mapping, validated; DataError for anything else."""
    try:
        with path.open("rb") as handle:
            data = RestrictedUnpickler(handle, path).load()
    except DataError:
        raise
    except Exception as error:  # a damaged pickle fails in many ways (EOFError, KeyError, ...)
        raise DataError(f"{path}: unreadable captions pickle ({type(error).__name__}: {error})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: must hold a dict {{image file stem: [captions]}}, got {type(data).__name__}")
    out: dict[str, list[str]] = {}
    for key, value in data.items():
        if isinstance(key, bytes):
            key = key.decode("utf-8", "replace")
        if isinstance(value, str | bytes):
            value = [value]
        if not isinstance(key, str) or not isinstance(value, list | tuple):
            raise DataError(f"{path}: entry {key!r} must map a file stem to a list of captions")
        captions = []
        for caption in value:
            if isinstance(caption, bytes):
                caption = caption.decode("utf-8", "replace")
            if not isinstance(caption, str):
                raise DataError(f"{path}: entry {key!r} holds a {type(caption).__name__}, captions must be strings")
            captions.append(caption.strip())
        out[key] = [c for c in captions if c]
    return out


def is_ift6266(root: Path) -> bool:
    return (root / CAPTIONS_PICKLE).is_file()


def _image_id(stem: str) -> int:
    # COCO_train2014_000000000009 -> 9; -1 when a name carries no number.
    match = _TRAILING_DIGITS.search(stem)
    return int(match.group(1)) if match else -1


def read_ift6266_splits(root: Path) -> list[SourceSplit]:
    pickle_path = root / CAPTIONS_PICKLE
    captions = load_captions_pickle(pickle_path)
    splits = []
    for split, folder in IFT6266_SPLITS.items():
        image_dir = root / folder
        if not image_dir.is_dir():
            continue
        images, skipped = [], []
        files = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in files:
            name = f"{folder}/{path.name}"
            caps = captions.get(path.stem)
            if not caps:
                skipped.append({"split": split, "file": name, "reason": f"no captions in {CAPTIONS_PICKLE}"})
                continue
            images.append(SourceImage(path, name, _image_id(path.stem), fixed_captions(caps)))
        source = {"layout": "ift6266", "annotations": CAPTIONS_PICKLE, "images": f"{folder}/"}
        splits.append(SourceSplit(split, images, source, skipped))
    return splits
