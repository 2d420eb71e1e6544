"""`prepare`: COCO layout with bad files, conversion, atomic publish, IFT6266 layout, restricted unpickler."""

import io
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from raysearch.data import PreparedDataset, layout
from raysearch.data import prepare as prepare_module
from raysearch.data.__main__ import main
from raysearch.data.ift6266 import CAPTIONS_PICKLE, load_captions_pickle
from raysearch.data.prepare import prepare
from raysearch.errors import DataError


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def _bands(size: tuple[int, int], vertical: bool) -> Image.Image:
    """Three equal bands red | green | blue: the center crop of a 3:1 image is all green."""
    width, height = size
    pixels = np.zeros((height, width, 3), np.uint8)
    third = (width if vertical else height) // 3
    for k, color in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        if vertical:
            pixels[:, k * third : (k + 1) * third] = color
        else:
            pixels[k * third : (k + 1) * third] = color
    return Image.fromarray(pixels)


def _write_coco(root: Path, split: str, images: dict[int, bytes | None], captions: dict[int, list[str]]) -> None:
    """A hand-written COCO 2014 split; None writes no file (a missing image)."""
    folder = root / f"{split}2014"
    folder.mkdir(parents=True, exist_ok=True)
    records, anns = [], []
    for image_id, data in images.items():
        name = f"COCO_{split}2014_{image_id:012d}.jpg"
        if data is not None:
            (folder / name).write_bytes(data)
        records.append({"id": image_id, "file_name": name, "width": 0, "height": 0})
        for k, caption in enumerate(captions[image_id]):
            anns.append({"id": 1000 * image_id + (9 - k), "image_id": image_id, "caption": caption})
    anns.reverse()  # order in the file must not matter
    (root / "annotations").mkdir(exist_ok=True)
    data = {"info": {}, "licenses": [], "images": records, "annotations": anns}
    (root / "annotations" / f"captions_{split}2014.json").write_text(json.dumps(data))


@pytest.fixture
def coco_root(tmp_path: Path) -> Path:
    root = tmp_path / "coco"
    good = _jpeg(_bands((180, 60), vertical=True))
    tall = _jpeg(_bands((60, 180), vertical=False))
    gray = _jpeg(Image.new("L", (90, 70), 77))
    cmyk = _jpeg(Image.new("CMYK", (70, 90), (0, 255, 255, 0)))
    truncated = _jpeg(Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 120, 3), dtype=np.uint8)))
    corrupt = b"this is not a jpeg" * 20
    train = {1: good, 2: tall, 3: gray, 4: cmyk, 5: corrupt, 6: truncated[: len(truncated) // 2], 7: None}
    _write_coco(root, "train", train, {i: [f"image {i} caption {k}" for k in range(5)] for i in train})
    val = {11: good, 12: tall, 13: good}
    val_captions = {11: ["only one", "only two"], 12: [f"v{k}" for k in range(7)], 13: []}
    _write_coco(root, "val", val, val_captions)
    return root


def test_prepare_skips_bad_files_and_converts_modes(coco_root: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    meta = prepare(coco_root, out, workers=1)
    printed = capsys.readouterr().out
    data = PreparedDataset(out)
    assert data.splits == ("train", "val")
    train = data.images("train")
    assert train.shape == (4, 64, 64, 3) and train.dtype == np.uint8
    assert list(data.image_ids("train")) == [1, 2, 3, 4]
    assert data.captions("train")[2] == [f"image 3 caption {k}" for k in (4, 3, 2, 1, 0)]  # by annotation id
    # center crop, not squash: the middle band of each 3:1 image fills the output
    assert np.all(np.abs(train[0, 4:60, 4:60].astype(int) - [0, 255, 0]) < 40)
    assert np.all(np.abs(train[1, 4:60, 4:60].astype(int) - [0, 255, 0]) < 40)
    gray = train[2].astype(int)
    assert np.all(np.abs(gray - 77) <= 3) and np.all(gray[..., 0] == gray[..., 1])
    red = train[3].astype(int)
    assert np.all(red[..., 0] > 200) and np.all(red[..., 1:] < 60)
    assert meta["counts"]["converted_to_rgb"] == {"CMYK": 1, "L": 1}

    skipped = {item["file"]: item["reason"] for item in meta["skipped"]}
    assert set(skipped) == {
        "train2014/COCO_train2014_000000000005.jpg",
        "train2014/COCO_train2014_000000000006.jpg",
        "train2014/COCO_train2014_000000000007.jpg",
        "val2014/COCO_val2014_000000000013.jpg",
    }
    assert skipped["train2014/COCO_train2014_000000000007.jpg"] == "missing file"
    assert skipped["train2014/COCO_train2014_000000000005.jpg"].startswith("unreadable")
    assert "truncated" in skipped["train2014/COCO_train2014_000000000006.jpg"]
    assert skipped["val2014/COCO_val2014_000000000013.jpg"] == "no captions"
    assert meta["counts"] == {"images": 6, "skipped": 4, "converted_to_rgb": {"CMYK": 1, "L": 1}}
    assert "4 skipped" in printed and "COCO_train2014_000000000006.jpg" in printed

    # fewer than 5 captions are cycled, more than 5 keep the first 5 (by annotation id)
    assert data.captions("val")[0] == ["only two", "only one", "only two", "only one", "only two"]
    assert data.captions("val")[1] == ["v6", "v5", "v4", "v3", "v2"]
    saved = json.loads((out / "meta.json").read_text())
    assert saved["splits"]["val"]["source"] == {
        "layout": "coco2014", "annotations": "annotations/captions_val2014.json", "images": "val2014/"}
    assert saved["splits"]["train"]["count"] == 4 and saved["splits"]["train"]["captions_per_image"] == 5
    assert not list(out.glob(".partial-*"))

    assert main(["info", str(out), "--min-count", "1"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["skipped"]["count"] == 4 and len(info["skipped"]["files"]) == 4
    assert info["splits"]["train"]["count"] == 4


def test_rerun_is_a_no_op(coco_root: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    prepare(coco_root, out, workers=1)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    capsys.readouterr()
    prepare(coco_root, out, workers=1)
    assert "already prepared" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    other = tmp_path / "other"
    _write_coco(other, "val", {1: _jpeg(Image.new("RGB", (64, 64)))}, {1: ["x"]})
    with pytest.raises(DataError, match="already prepared from"):
        prepare(other, out, workers=1)
    with pytest.raises(DataError, match="already prepared from"):
        prepare(coco_root, out, size=32, workers=1)


def test_interrupted_prepare_leaves_no_dataset(coco_root: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    # a run killed earlier left its work dir and a stray array, but no meta.json
    stale = out / ".partial-999999999-x"
    stale.mkdir(parents=True)
    (stale / "train_images.npy").write_bytes(b"junk")
    real = prepare_module.load_task
    calls = []

    def failing(task):
        calls.append(task)
        if len(calls) == 3:
            raise KeyboardInterrupt  # like Ctrl-C in the middle of the train split
        return real(task)

    monkeypatch.setattr(prepare_module, "load_task", failing)
    with pytest.raises(KeyboardInterrupt):
        prepare(coco_root, out, workers=1)
    assert not (out / "meta.json").exists()
    assert not layout.is_prepared(out)
    assert not list(out.glob(".partial-*")), "its own work dir is removed, and the dead run's too"
    with pytest.raises(DataError, match="python -m raysearch.data prepare"):
        PreparedDataset(out)
    monkeypatch.setattr(prepare_module, "load_task", real)
    prepare(coco_root, out, workers=1)
    assert PreparedDataset(out).count("train") == 4


def test_unknown_layout_and_bad_annotations(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="COCO 2014 layout.*IFT6266"):
        prepare(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(DataError, match="no such directory"):
        prepare(tmp_path / "absent", tmp_path / "out")
    bad = tmp_path / "bad"
    (bad / "annotations").mkdir(parents=True)
    (bad / "train2014").mkdir()
    (bad / "annotations" / "captions_train2014.json").write_text("{not json")
    with pytest.raises(DataError, match="captions_train2014.json"):
        prepare(bad, tmp_path / "out")
    assert not (tmp_path / "out" / "meta.json").exists()


# --- IFT6266 layout ---------------------------------------------------------


def _python2_pickle(mapping: dict[str, list[str]]) -> bytes:
    """What Python 2 wrote for a dict of str: protocol 2 with byte strings (SHORT_BINSTRING)."""
    def short(text: str) -> bytes:
        raw = text.encode()
        return b"U" + bytes([len(raw)]) + raw

    body = b"\x80\x02}"
    for key, captions in mapping.items():
        body += short(key) + b"]" + b"".join(short(c) + b"a" for c in captions) + b"s"
    return body + b"."


def test_ift6266_layout(tmp_path: Path) -> None:
    root = tmp_path / "ift"
    captions = {}
    for split, count in (("train2014", 3), ("val2014", 2)):
        (root / split).mkdir(parents=True)
        for i in range(count):
            stem = f"COCO_{split}_{i + 1:012d}"
            Image.new("RGB", (64, 64), (10 * i, 100, 200)).save(root / split / f"{stem}.jpg", quality=95)
            captions[stem] = [f"{split} picture {i} number {k}" for k in range(5)]
    del captions["COCO_train2014_000000000002"]
    (root / CAPTIONS_PICKLE).write_bytes(_python2_pickle(captions))

    meta = prepare(root, tmp_path / "out", workers=1)
    data = PreparedDataset(tmp_path / "out")
    assert meta["source"]["layout"] == "ift6266"
    assert data.count("train") == 2 and data.count("val") == 2
    assert list(data.image_ids("train")) == [1, 3]
    assert data.captions("val")[1] == [f"val2014 picture 1 number {k}" for k in range(5)]
    assert np.abs(data.images("val")[1].astype(int) - [10, 100, 200]).max() < 8
    assert meta["skipped"] == [{"split": "train", "file": "train2014/COCO_train2014_000000000002.jpg",
                                "reason": f"no captions in {CAPTIONS_PICKLE}"}]


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_restricted_unpickler_refuses_code(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / CAPTIONS_PICKLE
    path.write_bytes(pickle.dumps({"COCO_x": [_Exploit(marker)]}, protocol=protocol))
    with pytest.raises(DataError, match="refusing to load global (posix|os).system"):
        load_captions_pickle(path)
    assert not marker.exists()
    (tmp_path / "train2014").mkdir()
    with pytest.raises(DataError, match="refusing"):
        prepare(tmp_path, tmp_path / "out", workers=1)
    assert not marker.exists()


def test_captions_pickle_must_be_plain_mapping(tmp_path: Path) -> None:
    path = tmp_path / CAPTIONS_PICKLE
    path.write_bytes(pickle.dumps(["not", "a", "dict"]))
    with pytest.raises(DataError, match="must hold a dict"):
        load_captions_pickle(path)
    path.write_bytes(pickle.dumps({"a": [1, 2]}))
    with pytest.raises(DataError, match="captions must be strings"):
        load_captions_pickle(path)
    path.write_bytes(b"\x80\x02}q")  # truncated
    with pytest.raises(DataError, match="unreadable captions pickle"):
        load_captions_pickle(path)
    path.write_bytes(pickle.dumps({"a": ("one", "two"), "b": "single"}, protocol=4))
    assert load_captions_pickle(path) == {"a": ["one", "two"], "b": ["single"]}
