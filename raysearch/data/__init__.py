"""The data pipeline: synthetic dataset, COCO download/prepare, vocabulary, PyTorch Dataset.

    synthetic.py   procedurally drawn stand-in for MSCOCO 2014, in its layout
    download.py    resumable, checked download of the official 2014 zips
    coco.py        read the COCO 2014 layout (pycocotools)
    ift6266.py     read the IFT6266 course layout (restricted unpickler)
    photos.py      read any folder of photos (splits, random square crops) for `prepare --images`
    sources.py     what a raw layout yields for `prepare`: per split, image files with their captions
    images.py      decode one image file into square RGB arrays (center crop or given crops, resized)
    parallel.py    map a function over tasks in order, on a process pool when it is worth it
    prepare.py     raw tree or photo folder -> packed 64x64 dataset, published atomically
    layout.py      the prepared on-disk format and meta.json
    prepared.py    PreparedDataset: open a prepared directory
    vocab.py       caption vocabulary (seed 000's preprocessing)
    dataset.py     InpaintingDataset (torch); the image conversions (uint8 <-> [-1, 1], [0, 1] for the metrics)
    splits.py      a prepared dataset's splits as tensors, read once per process (what trials train and fill)
    cache.py       resolve_dataset: data.path -> prepared directory, synthetic cached once
    remote.py      datasets at a storage URI: push, and fetch once per node into the cache
    check.py       check_source: data.path checked before Ray starts (one line per problem)
    info.py        the `info` summary
    __main__.py    `python -m raysearch.data synthetic|prepare|download-coco|info|push|baselines`

The torch-based names are imported on first use so that the command line,
and the pool processes of `prepare`, do not pay for importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from raysearch.data.cache import resolve_dataset
from raysearch.data.check import captions_possible, check_source
from raysearch.data.prepared import PreparedDataset
from raysearch.data.vocab import Vocabulary

if TYPE_CHECKING:
    from raysearch.data.dataset import InpaintingDataset, as_unit, to_float_images, to_uint8_images

__all__ = [
    "InpaintingDataset", "PreparedDataset", "Vocabulary", "as_unit", "captions_possible", "check_source",
    "resolve_dataset", "to_float_images", "to_uint8_images",
]

_TORCH_NAMES = {"InpaintingDataset", "as_unit", "to_float_images", "to_uint8_images"}


def __getattr__(name: str) -> Any:
    if name in _TORCH_NAMES:
        from raysearch.data import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'raysearch.data' has no attribute {name!r}")
