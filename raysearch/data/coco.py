"""Read the official MSCOCO 2014 layout: `{split}2014/` images + `annotations/captions_{split}2014.json`."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from pycocotools.coco import COCO

from raysearch.data.sources import SourceImage, SourceSplit, fixed_captions
from raysearch.errors import DataError

# Output split name -> COCO 2014 folder / annotation stem.
COCO_SPLITS = {"train": "train2014", "val": "val2014"}


def annotation_path(root: Path, split: str) -> Path:
    return root / "annotations" / f"captions_{COCO_SPLITS[split]}.json"


def _load(path: Path) -> COCO:
    try:
        # pycocotools prints progress lines on stdout; keep our output readable.
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: cannot read the captions file ({error})") from None
    except (AssertionError, KeyError, TypeError) as error:
        raise DataError(
            f"{path}: not in the COCO captions format (an object with 'images' [id, file_name] and "
            f"'annotations' [image_id, caption]): {type(error).__name__} {error}"
        ) from None


def read_coco_splits(root: Path) -> list[SourceSplit]:
    """The splits whose annotation file and image folder both exist, in split order."""
    splits = []
    for split, folder in COCO_SPLITS.items():
        ann_path = annotation_path(root, split)
        image_dir = root / folder
        if not (ann_path.is_file() and image_dir.is_dir()):
            continue
        coco = _load(ann_path)
        images, skipped = [], []
        for image_id in sorted(coco.getImgIds()):
            record = coco.imgs[image_id]
            file_name = record.get("file_name")
            if not isinstance(file_name, str) or not file_name:
                raise DataError(f"{ann_path}: image id {image_id} has no 'file_name'")
            name = f"{folder}/{file_name}"
            # Annotation ids order the captions so reruns keep the same first 5.
            anns = sorted(coco.imgToAnns.get(image_id, []), key=lambda ann: ann.get("id", 0))
            captions = [ann["caption"].strip() for ann in anns if isinstance(ann.get("caption"), str)]
            captions = [c for c in captions if c]
            if not captions:
                skipped.append({"split": split, "file": name, "reason": "no captions"})
                continue
            images.append(SourceImage(image_dir / file_name, name, int(image_id), fixed_captions(captions)))
        source = {"layout": "coco2014", "annotations": f"annotations/{ann_path.name}", "images": f"{folder}/"}
        splits.append(SourceSplit(split, images, source, skipped))
    return splits
