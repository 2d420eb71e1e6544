"""`prepare --images`: real photos, splits, random crops, determinism, no captions, and what it refuses to overwrite."""

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from raysearch.data import InpaintingDataset, PreparedDataset, check_source, layout
from raysearch.data.__main__ import main
from raysearch.data.images import load_square
from raysearch.data.photos import CropPlan, crop_box
from raysearch.data.prepare import prepare_photos
from raysearch.errors import DataError
from tests.photos import bsds_photos



@pytest.fixture
def bsds_few(tmp_path: Path) -> Path:
    """3 train + 2 val real photos from BSDS500, in its train/ val/ layout."""
    root = tmp_path / "bsds"
    for split, count in (("train", 3), ("val", 2)):
        (root / split).mkdir(parents=True)
        for photo in bsds_photos(split, count):
            shutil.copy(photo, root / split / photo.name)
    return root


def _center_square(path: Path, size: int = 64) -> np.ndarray:
    """Written out here: the centered largest square, bicubic to size (no JPEG draft, so ~equal, not equal)."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
        w, h = rgb.size
        s = min(w, h)
        box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
        return np.asarray(rgb.crop(box).resize((size, size), Image.Resampling.BICUBIC), dtype=np.float64)


def test_real_photos_shapes_splits_and_no_captions(bsds_few: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["prepare", "--images", str(bsds_few), "--out", str(out), "--crops", "3", "--val-crops", "2",
                 "--workers", "1"]) == 0
    dataset = PreparedDataset(out)
    assert dataset.images("train").shape == (9, 64, 64, 3) and dataset.images("val").shape == (4, 64, 64, 3)
    assert dataset.images("train").dtype == np.uint8
    assert dataset.image_ids("train").tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert dataset.image_ids("val").tolist() == [0, 0, 1, 1]
    assert dataset.captions("train") == [[]] * 9 and not dataset.has_captions
    meta = dataset.meta
    assert meta["captions"] is False
    assert {k: meta["source"][k] for k in ("crops", "val_crops", "min_crop", "seed")} == {
        "crops": 3, "val_crops": 2, "min_crop": 0.5, "seed": 0}
    # The photos of train/ feed train only, those of val/ val only: no leak between the splits.
    assert meta["splits"]["train"]["source"]["images"] == "train/"
    assert meta["splits"]["val"]["source"]["images"] == "val/"
    # Random crops of one photo differ from each other.
    crops = dataset.images("train")[:3].astype(int)
    assert np.abs(crops[0] - crops[1]).mean() > 1 and np.abs(crops[1] - crops[2]).mean() > 1


def test_one_crop_is_the_centered_square_like_coco(bsds_few: Path, tmp_path: Path) -> None:
    prepare_photos(bsds_few, tmp_path / "one", workers=1, log=lambda _: None)
    images = PreparedDataset(tmp_path / "one").images("val")
    for row, photo in enumerate(sorted((bsds_few / "val").iterdir())):
        assert np.array_equal(images[row], load_square(photo, 64)[0])  # the COCO pipeline's square, bit for bit
        # And the right square: JPEG draft decoding changes fine texture, so compare 8x8 block means.
        blocks = lambda a: a.reshape(8, 8, 8, 8, 3).mean(axis=(1, 3))  # noqa: E731
        assert np.abs(blocks(images[row].astype(float)) - blocks(_center_square(photo))).mean() < 3.0


def test_crops_are_deterministic_for_a_seed(bsds_few: Path, tmp_path: Path) -> None:
    def run(name: str, seed: int, workers: int) -> bytes:
        prepare_photos(bsds_few, tmp_path / name, crops=4, seed=seed, workers=workers, log=lambda _: None)
        return (tmp_path / name / layout.images_file("train")).read_bytes()

    first = run("a", 0, 1)
    assert run("b", 0, 2) == first  # same seed, any worker count: same bytes
    assert run("c", 1, 1) != first


def test_crop_boxes_are_squares_of_the_allowed_sides_inside_the_photo() -> None:
    plan = CropPlan(count=200, min_crop=0.5, seed=3)
    sides = []
    for draw in plan.draws("some/photo.jpg"):
        left, top, right, bottom = crop_box(481, 321, draw, plan.min_crop)
        assert right - left == bottom - top
        assert 0 <= left and 0 <= top and right <= 481 and bottom <= 321
        sides.append(right - left)
    assert min(sides) >= 161 and max(sides) <= 321
    assert min(sides) < 175 and max(sides) > 305  # the whole range is used
    assert plan.draws("some/photo.jpg") == plan.draws("some/photo.jpg")
    assert plan.draws("other.jpg") != plan.draws("some/photo.jpg")
    assert CropPlan(1, 0.5, 3).draws("x.jpg") is None  # one crop = the centered square


def _write_photo(path: Path, seed: int, fmt: str) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (40 + seed, 50, 3), dtype=np.uint8)).save(path, fmt)


def _expected_split(name: str, fraction: float) -> str:
    value = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little") / 2**64
    return "val" if value < fraction else "train"


def test_flat_folder_split_by_hash_with_formats_cases_and_corrupt_files(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    names = []
    for i, (suffix, fmt) in enumerate([(".jpg", "JPEG"), (".JPEG", "JPEG"), (".png", "PNG"), (".Bmp", "BMP"),
                                       (".webp", "WEBP")] * 4):
        name = f"{'nested/deeper/' if i % 3 == 0 else ''}p{i:02d}{suffix}"
        _write_photo(root / name, i, fmt)
        names.append(name)
    (root / "notes.txt").write_text("not a photo")
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    meta = prepare_photos(root, tmp_path / "out", val_fraction=0.3, workers=1, log=lambda _: None)
    assert [item["file"] for item in meta["skipped"]] == ["broken.jpg"]
    expected = {split: sum(_expected_split(n, 0.3) == split for n in names) for split in ("train", "val")}
    assert expected["train"] and expected["val"]  # the hash split puts photos in both
    assert {split: info["count"] for split, info in meta["splits"].items()} == expected


def test_captionless_dataset_rejected_when_captions_are_on(bsds_few: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare_photos(bsds_few, out, workers=1, log=lambda _: None)
    check_source(str(out), captions=False)
    with pytest.raises(DataError, match=r"out: this dataset has no captions.*captions.encoder=none"):
        check_source(str(out), captions=True)
    dataset = PreparedDataset(out)
    vocab = dataset.vocabulary()
    with pytest.raises(DataError, match="no captions.*captions.encoder=none"):
        InpaintingDataset(dataset, "train", vocab, require_captions=True)
    # Without captions the loop gets all-padding tokens.
    items = InpaintingDataset(dataset, "train", vocab)
    assert items.tokens.shape == (3, 5, 16) and int(items.tokens.abs().sum()) == 0
    # The loop itself refuses too, for a config that bypassed the command-line check.
    from raysearch.config import load_config
    from raysearch.loop import Worker, Trial

    cfg = load_config("captions", [f"data.path={out}", "data.val_images=2", "train.preview_images=2"])
    with pytest.raises(DataError, match="no captions"):
        Trial(cfg, Worker())


def test_prepare_refuses_to_overwrite_files_it_did_not_write(bsds_few: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "train_images.npy").write_bytes(b"the user's own array")
    assert main(["prepare", "--images", str(bsds_few), "--out", str(out), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did not write" in err and "--force" in err
    assert (out / "train_images.npy").read_bytes() == b"the user's own array"
    assert main(["prepare", "--images", str(bsds_few), "--out", str(out), "--workers", "1", "--force"]) == 0
    assert PreparedDataset(out).count("train") == 3
    # Another recipe over a finished dataset: refused, then --force prepares it again.
    assert main(["prepare", "--images", str(bsds_few), "--out", str(out), "--crops", "2"]) == 2
    assert "already prepared" in capsys.readouterr().err
    assert main(["prepare", "--images", str(bsds_few), "--out", str(out), "--crops", "2", "--force"]) == 0
    assert PreparedDataset(out).count("train") == 6


@pytest.mark.parametrize("flag", ["--images", "--coco-root"])
def test_prepare_out_naming_a_file_is_one_line(bsds_few: Path, tmp_path: Path, capsys, flag: str) -> None:
    target = tmp_path / "a-file"
    target.write_text("keep me")
    assert main(["prepare", flag, str(bsds_few), "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file" in err
    assert target.read_text() == "keep me"
    assert main(["prepare", flag, str(bsds_few), "--out", str(target / "below")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("flags", [["--crops", "4"], ["--seed", "0", "--min-crop", "0.5"]])
def test_photo_flags_with_coco_root_are_one_line(tmp_path: Path, capsys, flags: list[str]) -> None:
    # Given at all is the error, even at the --images default: the user meant something by it.
    assert main(["prepare", "--coco-root", str(tmp_path), "--out", str(tmp_path / "o"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "only for --images" in err
    assert all(flag in err for flag in flags[::2])
    assert not (tmp_path / "o").exists()  # refused before anything is written
