"""A procedurally drawn stand-in for MSCOCO 2014, written in the official layout.

    OUT/train2014/COCO_train2014_%012d.jpg   OUT/val2014/COCO_val2014_%012d.jpg
    OUT/annotations/captions_train2014.json  OUT/annotations/captions_val2014.json

Images have varied sizes and aspect ratios and textured backgrounds with
lines or rings crossing the middle. Each holds one object (6 colors x 4
shapes) drawn well inside the square that becomes the hidden 32x32 center
after center-crop-and-resize to 64x64. Its color and shape appear only in the
captions, so a caption-conditioned model can predict what a context-only one
cannot: the dataset shows whether caption conditioning works.

The same seed gives byte-identical files: every image draws from its own
generator seeded by (seed, split, index), whatever the worker count.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from raysearch.data.coco import COCO_SPLITS
from raysearch.data.images import center_crop_box
from raysearch.data.parallel import ordered_mapper, resolve_workers
from raysearch.data.sources import CAPTIONS_PER_IMAGE
from raysearch.errors import DataError

# Object colors are far (RGB distance > 85) from every background tone below,
# darkened or lightened, so the center object is unambiguous in pixels too.
OBJECT_COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 165, 50),
    "blue": (40, 70, 215),
    "yellow": (240, 215, 35),
    "purple": (135, 45, 175),
    "orange": (245, 135, 25),
}
SHAPES = ("circle", "square", "triangle", "star")
BACKGROUND_COLORS: dict[str, tuple[int, int, int]] = {
    "grey": (128, 128, 128),
    "brown": (125, 95, 70),
    "pink": (225, 185, 195),
    "navy": (40, 45, 85),
    "beige": (215, 205, 170),
    "mint": (170, 215, 190),
}
# texture -> (adjective, noun) used by the captions
TEXTURES = {
    "stripes": ("striped", "stripes"),
    "checks": ("checkered", "checks"),
    "gradient": ("shaded", "shading"),
    "speckles": ("speckled", "speckles"),
    "waves": ("wavy", "waves"),
    "plain": ("plain", "paint"),
}
DISTRACTORS = ("none", "line", "bar", "ring", "cross")
LINE_COLORS = {"white": (235, 235, 235), "black": (20, 20, 20)}
SIDE_RANGE = (80, 200)  # pixels per side of the full image, drawn independently
SPLIT_CODES = {"train": 0, "val": 1}
# COCO image ids are unique across splits; keep ours apart the same way.
ID_OFFSETS = {"train": 1, "val": 500_000_001}
DEFAULT_TRAIN, DEFAULT_VAL, DEFAULT_SEED = 2000, 200, 0


def file_name(split: str, image_id: int) -> str:
    return f"COCO_{COCO_SPLITS[split]}_{image_id:012d}.jpg"


def _background(rng: np.random.Generator, height: int, width: int, base: np.ndarray, texture: str) -> np.ndarray:
    factor = rng.uniform(0.65, 0.8) if rng.random() < 0.5 else rng.uniform(1.15, 1.3)
    other = np.clip(base * factor, 0, 255)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, math.pi)
    along = x * math.cos(angle) + y * math.sin(angle)
    if texture == "stripes":
        mix = (np.floor(along / rng.uniform(4, 12)) % 2)[..., None]
    elif texture == "checks":
        cell = rng.uniform(8, 20)
        mix = ((np.floor(x / cell) + np.floor(y / cell)) % 2)[..., None]
    elif texture == "gradient":
        mix = ((along - along.min()) / max(float(np.ptp(along)), 1.0))[..., None]
    elif texture == "waves":
        bend = rng.uniform(3, 10) * np.sin(2 * math.pi * x / rng.uniform(20, 60))
        mix = (0.5 + 0.5 * np.sin(2 * math.pi * (y + bend) / rng.uniform(10, 25)))[..., None]
    elif texture == "speckles":
        mix = np.zeros((height, width, 1), np.float32)
    else:  # plain
        mix = np.zeros((height, width, 1), np.float32)
    pixels = base * (1 - mix) + other * mix
    amplitude = 18.0 if texture == "speckles" else 4.0
    pixels = pixels + rng.uniform(-amplitude, amplitude, (height, width, 1))  # gray noise keeps the hue
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _polygon(cx: float, cy: float, radius: float, points: int, inner: float, turn: float) -> list[tuple[float, float]]:
    """Vertices of a regular polygon (inner == 1) or star (inner < 1) around (cx, cy)."""
    vertices = []
    steps = points * (1 if inner == 1 else 2)
    for k in range(steps):
        r = radius if k % 2 == 0 or inner == 1 else radius * inner
        a = turn + 2 * math.pi * k / steps
        vertices.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return vertices


def _draw_distractor(draw: ImageDraw.ImageDraw, rng: np.random.Generator, kind: str, color: tuple[int, int, int],
                     cx: float, cy: float, side: int) -> None:
    """Something crossing the middle: the inpainting model has to continue it."""
    reach = 2 * side
    angles = [rng.uniform(0, math.pi)]
    if kind == "cross":
        angles.append(angles[0] + math.pi / 2)
    if kind in ("line", "bar", "cross"):
        width = max(2, round(side * (rng.uniform(0.07, 0.11) if kind == "bar" else 0.025)))
        for angle in angles:
            ox, oy = cx + rng.uniform(-0.1, 0.1) * side, cy + rng.uniform(-0.1, 0.1) * side
            dx, dy = reach * math.cos(angle), reach * math.sin(angle)
            draw.line([(ox - dx, oy - dy), (ox + dx, oy + dy)], fill=color, width=width)
    elif kind == "ring":
        r = side * rng.uniform(0.28, 0.42)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=color, width=max(2, round(side * 0.03)))


def _draw_object(draw: ImageDraw.ImageDraw, rng: np.random.Generator, shape: str, color: tuple[int, int, int],
                 cx: float, cy: float, radius: float) -> None:
    if shape == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=color)
    elif shape == "square":
        half = radius * 0.85
        draw.rectangle([cx - half, cy - half, cx + half, cy + half], fill=color)
    elif shape == "triangle":
        draw.polygon(_polygon(cx, cy, radius, 3, 1.0, rng.uniform(0, 2 * math.pi)), fill=color)
    else:  # star
        draw.polygon(_polygon(cx, cy, radius, 5, 0.5, rng.uniform(0, 2 * math.pi)), fill=color)


def _captions(rng: np.random.Generator, color: str, shape: str, background: str, texture: str,
              distractor: str, line_color: str) -> list[str]:
    """Five phrasings; the object's color and shape are named in every one."""
    adjective, noun = TEXTURES[texture]
    middle = ["middle", "center", "centre"][int(rng.integers(3))]
    extra = {
        "none": "",
        "line": f" with a thin {line_color} line across it",
        "bar": f" crossed by a wide {line_color} bar",
        "ring": f" inside a {line_color} ring",
        "cross": f" with two {line_color} lines crossing",
    }[distractor]
    return [
        f"{_article(color).capitalize()} {color} {shape} in the {middle} of {_article(adjective)} {adjective} "
        f"{background} scene{extra}.",
        f"{adjective.capitalize()} {background} background with {_article(color)} {color} {shape} at its {middle}.",
        f"There is {_article(color)} {color} {shape} near the {middle} of the picture.",
        f"A picture of a {shape} painted {color}, surrounded by {background} {noun}.",
        f"The {shape} in the {middle} is {color}; the rest is {background} {noun}{extra}.",
    ][:CAPTIONS_PER_IMAGE]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def draw_image(seed: int, split: str, index: int) -> tuple[Image.Image, list[str]]:
    """One synthetic image and its captions, a pure function of (seed, split, index)."""
    rng = np.random.default_rng([seed, SPLIT_CODES[split], index])
    width, height = (int(v) for v in rng.integers(SIDE_RANGE[0], SIDE_RANGE[1] + 1, size=2))
    color = list(OBJECT_COLORS)[int(rng.integers(len(OBJECT_COLORS)))]
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    background = list(BACKGROUND_COLORS)[int(rng.integers(len(BACKGROUND_COLORS)))]
    texture = list(TEXTURES)[int(rng.integers(len(TEXTURES)))]
    distractor = DISTRACTORS[int(rng.integers(len(DISTRACTORS)))]
    line_color = list(LINE_COLORS)[int(rng.integers(len(LINE_COLORS)))]

    base = np.array(BACKGROUND_COLORS[background], np.float32) + rng.uniform(-10, 10, 3)
    image = Image.fromarray(_background(rng, height, width, base, texture))
    draw = ImageDraw.Draw(image)

    # Geometry in the center-cropped square (side s), which becomes 64x64 with
    # the hidden center at [0.25 s, 0.75 s]. The object stays inside the middle
    # 40% ([0.3 s, 0.7 s]) so resizing blur never leaks its color outside.
    left, top, right, _ = center_crop_box(width, height)
    side = right - left
    cx, cy = left + side / 2, top + side / 2
    if distractor != "none":
        _draw_distractor(draw, rng, distractor, LINE_COLORS[line_color], cx, cy, side)
    radius = side * rng.uniform(0.10, 0.16)
    slack = 0.2 * side - radius
    ox, oy = rng.uniform(-slack, slack, 2)
    fill = tuple(int(c) for c in np.clip(np.array(OBJECT_COLORS[color]) + rng.integers(-10, 11, 3), 0, 255))
    _draw_object(draw, rng, shape, fill, cx + ox, cy + oy, radius)
    return image, _captions(rng, color, shape, background, texture, distractor, line_color)


def _write_one(task: tuple[str, str, int, int]) -> tuple[int, int, list[str]]:
    """Draw and save one image; returns (width, height, captions). Runs in pool workers."""
    out, split, index, seed = task
    image, captions = draw_image(seed, split, index)
    path = Path(out) / COCO_SPLITS[split] / file_name(split, ID_OFFSETS[split] + index)
    image.save(path, "JPEG", quality=90)
    return image.width, image.height, captions


def _annotation_file(split: str, seed: int, rows: list[tuple[int, int, list[str]]]) -> dict[str, Any]:
    """The official captions_*2014.json structure, with fixed dates so reruns are identical."""
    folder = COCO_SPLITS[split]
    images, annotations = [], []
    for index, (width, height, captions) in enumerate(rows):
        image_id = ID_OFFSETS[split] + index
        name = file_name(split, image_id)
        images.append({
            "license": 1,
            "file_name": name,
            "coco_url": f"http://images.cocodataset.org/{folder}/{name}",
            "height": height,
            "width": width,
            "date_captured": "2014-01-01 00:00:00",
            "flickr_url": "",
            "id": image_id,
        })
        for k, caption in enumerate(captions):
            annotations.append({"image_id": image_id, "id": image_id * 10 + k, "caption": caption})
    return {
        "info": {
            "description": f"raysearch synthetic inpainting images in the COCO 2014 captions format (seed {seed})",
            "url": "",
            "version": "1.0",
            "year": 2014,
            "contributor": "raysearch",
            "date_created": "2014-01-01 00:00:00",
        },
        "licenses": [{"url": "", "id": 1, "name": "generated by raysearch; free to use"}],
        "images": images,
        "annotations": annotations,
    }


# Written into --out first: a directory holding it was written by `synthetic`, and may be written again.
SYNTHETIC_MARKER = ".raysearch-synthetic"


def write_synthetic(out: str | Path, *, train: int = DEFAULT_TRAIN, val: int = DEFAULT_VAL, seed: int = DEFAULT_SEED,
                    workers: int | None = None, force: bool = False) -> Path:
    """Write the synthetic COCO 2014 tree into `out` (created if needed); returns `out`.

    A non-empty `out` that an earlier `synthetic` did not write (no marker
    file) is someone's data, e.g. a real COCO tree whose caption files this
    would replace: refused unless `force`.
    """
    if train < 1 or val < 1:
        raise DataError(f"synthetic: --train and --val must be >= 1, got train={train}, val={val}")
    out = Path(out).expanduser()
    workers = resolve_workers(workers)
    _claim(out, force)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    counts = {"train": train, "val": val}
    tasks = []
    for split, count in counts.items():
        (out / COCO_SPLITS[split]).mkdir(exist_ok=True)
        tasks += [(str(out), split, index, seed) for index in range(count)]
    with ordered_mapper(workers, len(tasks)) as mapper:
        rows = list(mapper(_write_one, tasks))
    start = 0
    for split, count in counts.items():
        data = _annotation_file(split, seed, rows[start : start + count])
        start += count
        path = out / "annotations" / f"captions_{COCO_SPLITS[split]}.json"
        path.write_text(json.dumps(data), encoding="utf-8")
    return out


def _claim(out: Path, force: bool) -> None:
    """Make `out` ours (the marker written before anything else), or DataError if it holds other data."""
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: is a file; give a directory to write the synthetic tree into")
    marker = out / SYNTHETIC_MARKER
    if out.is_dir() and not marker.exists() and any(out.iterdir()) and not force:
        raise DataError(f"--out {out}: is not empty and was not written by `synthetic` (no {SYNTHETIC_MARKER}); "
                        "choose a new or empty directory, or pass --force to write over its files")
    try:
        out.mkdir(parents=True, exist_ok=True)
        marker.write_text("written by python -m raysearch.data synthetic\n", encoding="utf-8")
    except OSError as error:
        raise DataError(f"--out {out}: cannot be written ({error.strerror or error})") from None
