"""Vocabulary rules, PreparedDataset validation, InpaintingDataset values, the synthetic cache."""

import copy
import json
import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import raysearch.data as data_pkg
from raysearch.data import InpaintingDataset, PreparedDataset, Vocabulary, resolve_dataset, to_float_images
from raysearch.data import cache
from raysearch.data.prepare import prepare
from raysearch.data.synthetic import write_synthetic
from raysearch.data.vocab import STOP_WORDS, tokenize
from raysearch.errors import DataError

REPO = Path(__file__).resolve().parents[1]


# --- vocabulary --------------------------------------------------------------


def test_tokenize_lowercases_and_strips_punctuation() -> None:
    assert tokenize("A Man's  T-shirt, on the BEACH!") == ["a", "mans", "t", "shirt", "on", "the", "beach"]


def test_vocabulary_rules() -> None:
    captions = [
        ["The dog runs.", "A DOG, a dog!", "cat and dog"],
        ["The cat sleeps", "a bird", "Cat?"],
    ]
    vocab = Vocabulary.build(captions, min_count=2)
    # dog x4, cat x3; "the"/"a"/"and" are frequent but stop words; runs/sleeps/bird seen once
    assert vocab.words == ("dog", "cat")
    assert len(vocab) == 4  # padding, unknown, dog, cat
    assert vocab.encode("The cat chased a DOG.") == [3, 1, 2]
    assert {"the", "a", "and", "is", "of", "on", "with"} <= STOP_WORDS
    # ties broken alphabetically, counts descending first
    tied = Vocabulary.build(["zebra apple", "apple zebra", "mango mango mango"], min_count=2)
    assert tied.words == ("mango", "apple", "zebra")
    # exactly min_count is kept, one less is not
    assert "bird" in Vocabulary.build(["bird"] * 10, min_count=10)
    assert "bird" not in Vocabulary.build(["bird"] * 9, min_count=10)
    # flat captions and per-image lists give the same vocabulary
    assert Vocabulary.build([c for image in captions for c in image], min_count=2) == vocab


def test_tokens_and_bag_of_words() -> None:
    vocab = Vocabulary.build(["red ball", "red ball", "blue ball", "blue"], min_count=2)
    red, ball, blue = vocab.id_of("red"), vocab.id_of("ball"), vocab.id_of("blue")
    tokens = vocab.tokens(["Red ball and a blue ball near the tree", "blue"], length=4, count=5)
    assert tokens.dtype == np.int64 and tokens.shape == (5, 4)
    assert tokens[0].tolist() == [red, ball, blue, ball]  # truncated to 4
    assert tokens[1].tolist() == [blue, 0, 0, 0]  # padded with 0
    assert tokens[2].tolist() == tokens[0].tolist()  # fewer captions than count: cycled
    assert vocab.tokens(["tree"], length=2, count=1).tolist() == [[1, 0]]  # unknown word

    caps = ["red ball red ball", "blue", "blue ball", "red", "nothing known"]
    one = vocab.bag_of_words(caps, count=1)
    assert one.dtype == np.float32 and one.shape == (len(vocab),)
    assert one[red] == 1.0 and one[ball] == 1.0 and one.sum() == 2.0  # presence, not counts
    five = vocab.bag_of_words(caps, count=5)
    assert five[red] == pytest.approx(0.4) and five[ball] == pytest.approx(0.4)
    assert five[blue] == pytest.approx(0.4) and five[1] == pytest.approx(0.2) and five[0] == 0.0


def test_vocabulary_json_round_trip() -> None:
    vocab = Vocabulary.build(["a red car", "red car", "car"], min_count=2)
    again = Vocabulary.from_json(vocab.to_json())
    assert again == vocab and again.encode("red car") == vocab.encode("red car")
    with pytest.raises(DataError, match="'format'"):
        Vocabulary.from_json(json.dumps({"words": []}))
    with pytest.raises(DataError, match="not JSON"):
        Vocabulary.from_json("{")


# --- prepared dataset and torch Dataset --------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_synthetic(root / "raw", train=40, val=10, seed=2, workers=1)
    prepare(root / "raw", root / "prepared", workers=1, log=lambda _: None)
    return root / "prepared"


def test_prepared_dataset(prepared: Path) -> None:
    data = PreparedDataset(prepared)
    assert data.splits == ("train", "val") and data.image_size == 64
    images = data.images("val")
    assert isinstance(images, np.memmap) and images.shape == (10, 64, 64, 3) and not images.flags.writeable
    assert len(data.captions("train")) == 40
    vocab = data.vocabulary(min_count=3)
    assert vocab == Vocabulary.build(data.captions("train"), min_count=3)
    assert vocab == PreparedDataset(prepared).vocabulary(min_count=3), "deterministic"
    assert {"red", "circle", "center"} & set(vocab.words)
    with pytest.raises(DataError, match="no split 'test'"):
        data.images("test")


def test_not_a_prepared_dataset(tmp_path: Path, prepared: Path) -> None:
    with pytest.raises(DataError, match=f"{tmp_path}: not a prepared dataset.*python -m raysearch.data prepare"):
        PreparedDataset(tmp_path)
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in prepared.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    meta = json.loads((copy / "meta.json").read_text())
    meta["splits"]["train"]["count"] = 41
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="train_images.npy: holds uint8 \\[40, 64, 64, 3\\]"):
        PreparedDataset(copy)
    meta["format"] = "something-else"
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="'format' must be 'raysearch-inpainting'"):
        PreparedDataset(copy)


def test_inpainting_dataset(prepared: Path) -> None:
    data = PreparedDataset(prepared)
    vocab = data.vocabulary(min_count=3)
    dataset = InpaintingDataset(data, "val", vocab, caption_length=12)
    assert len(dataset) == 10
    item = dataset[3]
    assert set(item) == {"image", "tokens"}
    image, tokens = item["image"], item["tokens"]
    assert image.dtype == torch.float32 and image.shape == (3, 64, 64)
    assert tokens.dtype == torch.int64 and tokens.shape == (5, 12)
    raw = torch.from_numpy(np.array(data.images("val")[3])).permute(2, 0, 1).float()
    assert torch.allclose(image, raw / 127.5 - 1)
    assert image.min() >= -1 and image.max() <= 1 and image.max() - image.min() > 1
    assert torch.equal(tokens, torch.from_numpy(vocab.tokens(data.captions("val")[3], 12, 5)))

    assert dataset.images_uint8.dtype == torch.uint8 and dataset.images_uint8.shape == (10, 64, 64, 3)
    assert dataset.tokens.shape == (10, 5, 12)
    batch = to_float_images(dataset.images_uint8[:4])
    assert batch.shape == (4, 3, 64, 64) and batch.is_contiguous()
    assert torch.equal(batch[3], dataset[3]["image"])
    with pytest.raises(IndexError):
        dataset[10]

    limited = InpaintingDataset(prepared, "train", vocab, limit=7)
    assert len(limited) == 7 and limited.images_uint8.shape[0] == 7 and limited.tokens.shape == (7, 5, 16)
    loader = torch.utils.data.DataLoader(limited, batch_size=4)
    first = next(iter(loader))
    assert first["image"].shape == (4, 3, 64, 64) and first["tokens"].shape == (4, 5, 16)

    # pickling (DataLoader workers, Ray) carries a path, not the pixels
    assert len(pickle.dumps(limited)) < limited.images_uint8.numel()
    restored = copy.deepcopy(limited)  # goes through the same __getstate__ as pickle
    assert "images_uint8" not in restored.__dict__
    assert torch.equal(restored[5]["image"], limited[5]["image"])


def test_to_float_images_range_and_checks() -> None:
    batch = torch.tensor([0, 255, 128], dtype=torch.uint8).view(1, 1, 1, 3).repeat(2, 4, 5, 1)  # [B, H, W, RGB]
    floats = to_float_images(batch)
    assert floats.shape == (2, 3, 4, 5) and floats.dtype == torch.float32
    assert floats[1, :, 3, 4].tolist() == pytest.approx([-1.0, 1.0, 128 / 127.5 - 1], abs=1e-6)
    assert floats.min().item() == -1.0 and floats.max().item() == 1.0  # 0 and 255 map exactly
    with pytest.raises(ValueError, match="uint8"):
        to_float_images(torch.zeros(1, 64, 64, 3))
    with pytest.raises(ValueError, match="uint8"):
        to_float_images(torch.zeros(3, 64, 64, dtype=torch.uint8))


def test_every_uint8_pixel_comes_back_bit_for_bit_and_unit_is_zero_to_one() -> None:
    every = torch.arange(256, dtype=torch.uint8).view(1, 16, 16, 1).repeat(2, 1, 1, 3)
    floats = to_float_images(every)
    assert torch.equal(data_pkg.to_uint8_images(floats), every)
    assert torch.equal(data_pkg.to_uint8_images(floats.clamp(-2, 2) * 1.5), data_pkg.to_uint8_images(floats * 1.5))
    unit = data_pkg.as_unit(floats)
    assert unit.min().item() == 0.0 and unit.max().item() == 1.0


def test_package_exports() -> None:
    assert set(data_pkg.__all__) == {"PreparedDataset", "InpaintingDataset", "Vocabulary", "resolve_dataset",
                                     "to_float_images", "to_uint8_images", "as_unit", "check_source",
                                     "captions_possible"}


# --- cache -------------------------------------------------------------------


def test_resolve_dataset_paths(tmp_path: Path, prepared: Path) -> None:
    assert resolve_dataset(str(prepared)) == prepared.resolve()
    with pytest.raises(DataError, match="not a prepared dataset.*prepare"):
        resolve_dataset(str(tmp_path))
    with pytest.raises(DataError, match=r"^nosuch://bucket/coco64: cannot open this storage location"):
        resolve_dataset("nosuch://bucket/coco64")


def test_synthetic_cache_built_once_by_concurrent_threads(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RAYSEARCH_CACHE", str(tmp_path / "cache"))
    calls = []
    real = cache.write_synthetic

    def slow_write(*args, **kwargs):
        calls.append(args)
        time.sleep(0.3)  # keep the lock held while the other threads arrive
        return real(*args, **kwargs)

    monkeypatch.setattr(cache, "write_synthetic", slow_write)
    barrier = threading.Barrier(3)
    results: list[Path] = []

    def trial() -> None:
        barrier.wait()
        results.append(resolve_dataset(None, synthetic_train=12, synthetic_val=4, synthetic_seed=3))

    threads = [threading.Thread(target=trial) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = tmp_path / "cache" / "synthetic-train12-val4-seed3"
    assert results == [expected] * 3
    assert len(calls) == 1
    assert PreparedDataset(expected).count("train") == 12
    assert not list((tmp_path / "cache").glob(".synthetic-*-raw-*")), "the raw tree is removed"
    # later calls return at once; other parameters get their own directory
    assert resolve_dataset(None, synthetic_train=12, synthetic_val=4, synthetic_seed=3) == expected
    assert len(calls) == 1
    resolve_dataset(None, synthetic_train=12, synthetic_val=4, synthetic_seed=4)
    assert len(calls) == 2


def test_synthetic_cache_built_once_by_concurrent_processes(tmp_path: Path) -> None:
    env = {**os.environ, "RAYSEARCH_CACHE": str(tmp_path), "PYTHONPATH": str(REPO)}
    code = ("from raysearch.data import resolve_dataset; "
            "print(resolve_dataset(None, synthetic_train=30, synthetic_val=5, synthetic_seed=1))")
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    paths = {out.strip() for out, _ in outputs}
    assert paths == {str(tmp_path / "synthetic-train30-val5-seed1")}
    assert sum(err.count("generating the synthetic dataset") for _, err in outputs) == 1
    assert PreparedDataset(tmp_path / "synthetic-train30-val5-seed1").count("val") == 5


def test_synthetic_cache_replaces_an_unfinished_build(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RAYSEARCH_CACHE", str(tmp_path))
    target = tmp_path / "synthetic-train5-val2-seed0"
    target.mkdir()
    (target / "train_images.npy").write_bytes(b"left by a killed build")
    (tmp_path / f".{target.name}-raw-dead").mkdir()
    assert resolve_dataset(None, synthetic_train=5, synthetic_val=2) == target
    assert PreparedDataset(target).count("train") == 5
    assert not (tmp_path / f".{target.name}-raw-dead").exists()
    with pytest.raises(DataError, match="must be >= 1"):
        resolve_dataset(None, synthetic_train=0)
