"""The data pipeline: synthetic dataset, COCO download/prepare, vocabulary, PyTorch Dataset.

    synthetic.py   procedurally drawn stand-in for MSCOCO 2014, in its layout
    download.py    resumable, checked download of the official 2014 zips
    coco.py        read the COCO 2014 layout (pycocotools)
    ift6266.py     read the IFT6266 course layout (restricted unpickler)
    photos.py      read any folder of photos (splits, random square crops) for `prepare --images`
    prepare.py     raw tree or photo folder -> packed 64x64 dataset, published atomically
    layout.py      the prepared on-disk format and meta.json
    prepared.py    PreparedDataset: open a prepared directory
    vocab.py       caption vocabulary (seed 000's preprocessing)
    dataset.py     InpaintingDataset (torch) and to_float_images
    cache.py       resolve_dataset: data.path -> prepared directory, synthetic cached once
    remote.py      datasets at a storage URI: push, and fetch once per node into the cache
    check.py       check_source: data.path checked before Ray starts (one line per problem)
    baselines.py   classical fills (mean, harmonic, Telea, Navier-Stokes) scored like a trial, cached
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
    from raysearch.data.dataset import InpaintingDataset, to_float_images

__all__ = [
    "InpaintingDataset", "PreparedDataset", "Vocabulary", "captions_possible", "check_source", "resolve_dataset",
    "to_float_images",
]

_TORCH_NAMES = {"InpaintingDataset", "to_float_images"}


def __getattr__(name: str) -> Any:
    if name in _TORCH_NAMES:
        from raysearch.data import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'raysearch.data' has no attribute {name!r}")
