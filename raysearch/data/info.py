"""`info`: a prepared dataset summarised as one JSON object."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from raysearch.data.prepared import PreparedDataset

DEFAULT_MIN_COUNT = 10


def dataset_info(path: str | Path, min_count: int = DEFAULT_MIN_COUNT) -> dict[str, Any]:
    """Counts read from the files themselves (not only meta.json), vocabulary size, skipped files."""
    dataset = PreparedDataset(path)
    splits = {}
    for split in dataset.splits:
        images = dataset.images(split)
        captions = dataset.captions(split)  # validates one row of captions per image
        splits[split] = {
            "count": int(images.shape[0]),
            "image_shape": list(images.shape[1:]),
            "captions_per_image": len(captions[0]) if captions else 0,
        }
    skipped = dataset.skipped
    info: dict[str, Any] = {
        "path": str(dataset.path.resolve()),
        "format": dataset.meta["format"],
        "version": dataset.meta["version"],
        "source": dataset.meta.get("source", {}),
        "splits": splits,
    }
    if "train" in dataset.splits:
        info["vocab_min_count"] = min_count
        info["vocabulary_size"] = len(dataset.vocabulary(min_count))
    info["skipped"] = {"count": len(skipped), "files": skipped}
    return info
