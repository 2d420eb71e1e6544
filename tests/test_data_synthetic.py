"""The synthetic dataset: official COCO layout/format, determinism, captions naming the center object."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from raysearch.data.images import load_square
from raysearch.data.__main__ import main
from raysearch.data.synthetic import OBJECT_COLORS, SHAPES, SYNTHETIC_MARKER, write_synthetic

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("synthetic"), train=48, val=12, seed=5, workers=1)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_official_captions_format(tree: Path) -> None:
    for split, count in (("train2014", 48), ("val2014", 12)):
        data = json.loads((tree / "annotations" / f"captions_{split}.json").read_text())
        assert set(data) == {"info", "licenses", "images", "annotations"}
        assert {"description", "version", "year", "date_created"} <= set(data["info"])
        assert data["licenses"] and {"id", "name", "url"} <= set(data["licenses"][0])
        assert len(data["images"]) == count
        sizes = set()
        for record in data["images"]:
            assert {"id", "file_name", "width", "height", "license", "coco_url", "date_captured"} <= set(record)
            assert record["file_name"] == f"COCO_{split}_{record['id']:012d}.jpg"
            with Image.open(tree / split / record["file_name"]) as image:
                assert image.format == "JPEG"
                assert image.size == (record["width"], record["height"])
            assert 80 <= record["width"] <= 200 and 80 <= record["height"] <= 200
            sizes.add((record["width"], record["height"]))
        assert len(sizes) > count // 2, "image sizes should vary"
        assert any(w != h for w, h in sizes), "aspect ratios should vary"
        ann_ids = [ann["id"] for ann in data["annotations"]]
        assert len(set(ann_ids)) == len(ann_ids) == 5 * count
        # pycocotools reads it and finds 5 captions for every image
        coco = COCO(str(tree / "annotations" / f"captions_{split}.json"))
        assert all(len(coco.imgToAnns[i]) == 5 for i in coco.getImgIds())
    # The COCO layout, plus the marker that lets `synthetic` write into this directory again.
    assert sorted(p.name for p in tree.iterdir()) == [SYNTHETIC_MARKER, "annotations", "train2014", "val2014"]
    train_ids = {r["id"] for r in json.loads((tree / "annotations/captions_train2014.json").read_text())["images"]}
    val_ids = {r["id"] for r in json.loads((tree / "annotations/captions_val2014.json").read_text())["images"]}
    assert not train_ids & val_ids, "COCO image ids are unique across splits"


def test_captions_name_the_object_hidden_in_the_center(tree: Path) -> None:
    data = json.loads((tree / "annotations" / "captions_train2014.json").read_text())
    captions: dict[int, list[str]] = {}
    for ann in data["annotations"]:
        captions.setdefault(ann["image_id"], []).append(ann["caption"])
    hole = np.zeros((64, 64), bool)
    hole[16:48, 16:48] = True
    for record in data["images"]:
        caps = captions[record["id"]]
        assert len(set(caps)) == 5, "five different phrasings"
        words = [set(re.findall(r"[a-z]+", c.lower())) for c in caps]
        colors = {c for c in OBJECT_COLORS if all(c in w for w in words)}
        shapes = {s for s in SHAPES if all(s in w for w in words)}
        assert len(colors) == 1 and len(shapes) == 1, caps
        assert all(len(w & set(OBJECT_COLORS)) == 1 for w in words), "only the object's color is an object color"
        assert all(len(w & {"grey", "brown", "pink", "navy", "beige", "mint"}) for w in words[3:4]), "background named"
        (color,) = colors
        pixels, _ = load_square(tree / "train2014" / record["file_name"], 64)
        distance = np.linalg.norm(pixels.astype(float) - np.array(OBJECT_COLORS[color]), axis=-1)
        match = distance < 50
        assert match[hole].sum() >= 20, f"{record['file_name']}: no {color} object in the hidden center"
        assert match[~hole].sum() <= 2, f"{record['file_name']}: {color} leaks outside the hidden center"


def test_same_seed_same_bytes_whatever_the_workers(tmp_path: Path, tree: Path) -> None:
    # 70 images: enough for the process pool to be used with 2 workers
    one = write_synthetic(tmp_path / "one", train=60, val=10, seed=5, workers=1)
    two = write_synthetic(tmp_path / "two", train=60, val=10, seed=5, workers=2)
    other = write_synthetic(tmp_path / "other", train=60, val=10, seed=6, workers=1)
    assert _files(one) == _files(two)
    assert _files(one) != _files(other)
    # the first 48 train images do not depend on how many are drawn
    first = _files(one)
    assert all(first[name] == data for name, data in _files(tree).items() if name.startswith("train2014/"))


@pytest.mark.slow
def test_cli_synthetic_prepare_info(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "raysearch.data", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)

    raw, out = tmp_path / "raw", tmp_path / "prepared"
    result = run("synthetic", "--out", str(raw), "--train", "70", "--val", "10", "--seed", "1")
    assert result.returncode == 0, result.stderr
    assert len(list((raw / "train2014").glob("*.jpg"))) == 70
    result = run("prepare", "--coco-root", str(raw), "--out", str(out), "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "train 70 images" in result.stdout and (out / "meta.json").is_file()
    result = run("prepare", "--coco-root", str(raw), "--out", str(out))
    assert result.returncode == 0 and "already prepared" in result.stdout
    result = run("info", str(out), "--min-count", "3")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1
    info = json.loads(result.stdout)
    assert info["splits"] == {
        "train": {"count": 70, "image_shape": [64, 64, 3], "captions_per_image": 5},
        "val": {"count": 10, "image_shape": [64, 64, 3], "captions_per_image": 5},
    }
    assert info["vocabulary_size"] > 2 + len(OBJECT_COLORS) + len(SHAPES)
    assert info["skipped"] == {"count": 0, "files": []}
    result = run("info", str(raw))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "python -m raysearch.data prepare" in result.stderr


def test_synthetic_refuses_a_tree_it_did_not_write(tmp_path: Path, capsys) -> None:
    coco = tmp_path / "coco"
    (coco / "annotations").mkdir(parents=True)
    captions = coco / "annotations" / "captions_train2014.json"
    captions.write_text('{"the": "real COCO captions"}')
    assert main(["synthetic", "--out", str(coco), "--train", "2", "--val", "1", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not written by `synthetic`" in err and "--force" in err
    assert captions.read_text() == '{"the": "real COCO captions"}'
    assert not (coco / SYNTHETIC_MARKER).exists()
    # Its own earlier output is written again without --force; someone else's with it.
    own = tmp_path / "own"
    assert main(["synthetic", "--out", str(own), "--train", "2", "--val", "1", "--workers", "1"]) == 0
    assert main(["synthetic", "--out", str(own), "--train", "2", "--val", "1", "--workers", "1"]) == 0
    assert main(["synthetic", "--out", str(coco), "--train", "2", "--val", "1", "--workers", "1", "--force"]) == 0
    assert "real COCO captions" not in captions.read_text()


def test_synthetic_out_naming_a_file_is_one_line(tmp_path: Path, capsys) -> None:
    target = tmp_path / "a-file"
    target.write_text("keep me")
    for out in (target, target / "below"):
        assert main(["synthetic", "--out", str(out), "--train", "2", "--val", "1"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: --out") and str(target) in err
    assert target.read_text() == "keep me"
