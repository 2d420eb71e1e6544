"""`--data` is checked before Ray starts: every unusable dataset is one line, exit 2, and Ray never starts."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from raysearch import runtime
from raysearch import train as train_cli
from raysearch import tune as tune_cli
from raysearch.data import check_source
from raysearch.data.prepare import prepare_photos
from raysearch.errors import DataError


@pytest.fixture
def no_ray(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("Ray was started although --data is unusable")

    monkeypatch.setattr(runtime, "start_ray", fail)


@pytest.fixture(scope="module")
def photos_dataset(tmp_path_factory) -> Path:
    """A prepared dataset without captions (from plain photos)."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / "raw" / split).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(root / "raw" / split / f"{i}.png")
    prepare_photos(root / "raw", root / "prepared", workers=1, log=lambda _: None)
    return root / "prepared"


def _bad_sources(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """case -> (--data value, a fragment its one line must hold)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    a_file = tmp_path / "a-file.npy"
    a_file.write_bytes(b"x")
    coco = tmp_path / "coco"
    (coco / "annotations").mkdir(parents=True)
    (coco / "train2014").mkdir()
    no_meta = tmp_path / "no-meta"
    no_meta.mkdir()
    (no_meta / "train_images.npy").write_bytes(b"x")
    return {
        "missing": (str(tmp_path / "nosuch"), "no such directory"),
        "empty": (str(empty), "is an empty directory"),
        "file": (str(a_file), "is a file"),
        "coco": (str(coco), f"raw COCO 2014 tree, not a prepared dataset; prepare it with `python -m raysearch.data "
                            f"prepare --coco-root {coco}"),
        "no-meta": (str(no_meta), "no meta.json"),
        "scheme": ("nosuch://bucket/x", "unsupported URI scheme 'nosuch'"),
        "uri-no-meta": (no_meta.as_uri(), "not a prepared dataset (no meta.json"),
    }


CASES = ["missing", "empty", "file", "coco", "no-meta", "scheme", "uri-no-meta"]


def _one_line(capsys, fragment: str) -> None:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: data.path (--data) "), err
    assert fragment in err, err


@pytest.mark.parametrize("case", CASES)
def test_train_rejects_unusable_data_before_ray(case: str, tmp_path: Path, no_ray, capsys) -> None:
    data, fragment = _bad_sources(tmp_path)[case]
    assert train_cli.main(["l2", "--data", data, "--logdir", str(tmp_path / "run")]) == 2
    _one_line(capsys, fragment)
    assert train_cli.main(["l2", "--data", data, "--dry-run"]) == 2  # --dry-run checks it too
    _one_line(capsys, fragment)


@pytest.mark.parametrize("case", CASES)
def test_tune_rejects_unusable_data_before_ray(case: str, tmp_path: Path, no_ray, capsys) -> None:
    data, fragment = _bad_sources(tmp_path)[case]
    assert tune_cli.main(["l2", "--data", data, "--storage", str(tmp_path / "runs")]) == 2
    _one_line(capsys, fragment)
    assert tune_cli.main(["l2", "--data", data, "--dry-run"]) == 2
    _one_line(capsys, fragment)
    assert not (tmp_path / "runs").exists()


def test_captionless_data_with_captions_is_rejected_before_ray(photos_dataset: Path, tmp_path: Path, no_ray,
                                                               capsys) -> None:
    fragment = "this dataset has no captions (prepared from photos); use captions.encoder=none"
    assert train_cli.main(["captions", "--data", str(photos_dataset)]) == 2
    _one_line(capsys, fragment)
    assert train_cli.main(["l2", "--data", str(photos_dataset), "--set", "captions.encoder=bow", "--dry-run"]) == 2
    _one_line(capsys, fragment)
    # seed000_cnn's base has no captions, but its search can sample an encoder.
    assert tune_cli.main(["seed000_cnn", "--data", str(photos_dataset), "--storage", str(tmp_path / "runs")]) == 2
    _one_line(capsys, fragment)
    # Without captions the same dataset is accepted.
    assert train_cli.main(["l2", "--data", str(photos_dataset), "--dry-run"]) == 0
    assert tune_cli.main(["l2", "--data", str(photos_dataset), "--dry-run"]) == 0


def test_check_source_on_uris(photos_dataset: Path) -> None:
    uri = photos_dataset.as_uri()
    check_source(uri, captions=False)  # reads the remote meta.json only
    with pytest.raises(DataError, match="no captions"):
        check_source(uri, captions=True)
    check_source(None, captions=True)  # the synthetic default has captions
