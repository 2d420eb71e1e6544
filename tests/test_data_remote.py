"""Datasets at a storage URI (a local-filesystem URI here): push, fetch once per node, refetch on change."""

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.fs
import pytest

from raysearch.data import PreparedDataset, layout, remote, resolve_dataset
from raysearch.storage import Storage
from raysearch.data.prepare import prepare
from raysearch.data.synthetic import write_synthetic
from raysearch.errors import DataError

REPO = Path(__file__).resolve().parents[1]
FILES = 6  # per dataset with both splits: images, captions, image ids


def _prepared(root: Path, seed: int) -> Path:
    write_synthetic(root / f"raw{seed}", train=16, val=8, seed=seed, workers=1)
    prepare(root / f"raw{seed}", root / f"prepared{seed}", workers=1, log=lambda _: None)
    return root / f"prepared{seed}"


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two small prepared datasets with the same counts and different pixels and captions."""
    root = tmp_path_factory.mktemp("remote-src")
    return _prepared(root, 1), _prepared(root, 2)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RAYSEARCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The remote file names copied into the cache, in order (every fetch goes through Storage.download)."""
    calls: list[str] = []
    real = Storage.download

    def counting(self, relative, destination):
        calls.append(Path(relative).name)
        return real(self, relative, destination)

    monkeypatch.setattr(Storage, "download", counting)
    return calls


def _uri(path: Path) -> str:
    return path.as_uri()  # file:///...


def _same_data(copy: Path, source: Path) -> None:
    got, want = PreparedDataset(copy), PreparedDataset(source)
    assert got.splits == want.splits == ("train", "val")
    for split in got.splits:
        images = got.images(split)
        assert isinstance(images, np.memmap) and not images.flags.writeable  # memory-mapped, like a local dir
        np.testing.assert_array_equal(images, want.images(split))
        np.testing.assert_array_equal(got.image_ids(split), want.image_ids(split))
        assert got.captions(split) == want.captions(split)


def test_push_then_resolve_gives_the_same_arrays(datasets, cache: Path, copies: list[str], tmp_path: Path,
                                                 capsys) -> None:
    a, _ = datasets
    target = tmp_path / "bucket" / "coco64"
    meta = remote.push(a, _uri(target) + "/")
    out = capsys.readouterr().out
    assert "pushed" in out and f"[{FILES}/{FILES}]" in out
    # the remote holds the dataset, its meta.json listing every file's size and digest
    assert sorted(p.name for p in target.iterdir()) == sorted([*remote.dataset_files(meta), layout.META_FILE])
    assert json.loads((target / layout.META_FILE).read_text()) == meta
    assert set(meta["files"]) == set(remote.dataset_files(meta)) and len(meta["files"]) == FILES

    copy = resolve_dataset(_uri(target))
    assert copy.is_relative_to(cache / remote.REMOTE_DIR) and copy.parent.name == remote.uri_key(_uri(target))
    assert "fetching" in capsys.readouterr().err
    _same_data(copy, a)
    assert sorted(copies) == sorted(remote.dataset_files(meta))
    # again: one small read of meta.json, no copy, the same directory (trailing slash or not)
    assert resolve_dataset(_uri(target) + "/") == copy
    assert len(copies) == FILES
    assert not list(copy.parent.glob(f"{remote.FETCH_PREFIX}*")), "no temp directory is left"

    # a cached copy damaged by hand is fetched again, not used
    (copy / layout.captions_file("val")).unlink()
    assert resolve_dataset(_uri(target)) == copy and len(copies) == 2 * FILES
    with open(copy / layout.META_FILE, "a") as handle:
        handle.write(" ")  # still valid JSON, no longer the remote's bytes
    assert resolve_dataset(_uri(target)) == copy and len(copies) == 3 * FILES
    _same_data(copy, a)


def _killed_reader(uri: str, cache: str) -> None:
    """A trial process killed (SIGKILL: no cleanup runs) in the middle of its download."""
    os.environ["RAYSEARCH_CACHE"] = cache
    real = Storage.download
    count = []

    def dying(self, relative, destination):
        count.append(relative)
        if len(count) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, relative, destination)

    Storage.download = dying
    resolve_dataset(uri)


def test_a_download_killed_midway_leaves_nothing_that_looks_complete(datasets, cache: Path, copies: list[str],
                                                                    tmp_path: Path) -> None:
    a, _ = datasets
    uri = _uri(tmp_path / "bucket" / "coco64")
    remote.push(a, uri, log=lambda _: None)
    proc = multiprocessing.get_context("spawn").Process(target=_killed_reader, args=(uri, str(cache)))
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == -signal.SIGKILL
    folder = cache / remote.REMOTE_DIR / remote.uri_key(uri)
    (partial,) = folder.iterdir()
    assert partial.name.startswith(remote.FETCH_PREFIX) and len(list(partial.iterdir())) == 2
    copy = resolve_dataset(uri)  # the lock died with its holder; the partial copy is removed, all is fetched
    _same_data(copy, a)
    assert len(copies) == FILES and [p.name for p in folder.iterdir()] == [copy.name]


def _reader(uri: str, cache: str, log: str, barrier, results) -> None:
    """One trial process: count its copies in a shared log, slowly, so the other one arrives mid-download."""
    os.environ["RAYSEARCH_CACHE"] = cache
    real = Storage.download

    def logged(self, relative, destination):
        with open(log, "a") as handle:  # O_APPEND: whole lines from both processes
            handle.write(f"{os.getpid()} {Path(relative).name} {time.time()}\n")
        time.sleep(0.15)
        return real(self, relative, destination)

    Storage.download = logged
    barrier.wait()
    started = time.time()
    path = resolve_dataset(uri)
    results.put((os.getpid(), started, time.time(), str(path)))


def test_two_concurrent_processes_download_once(datasets, cache: Path, tmp_path: Path) -> None:
    a, _ = datasets
    uri = _uri(tmp_path / "bucket" / "coco64")
    remote.push(a, uri, log=lambda _: None)
    log = tmp_path / "copies.log"
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    procs = [context.Process(target=_reader, args=(uri, str(cache), str(log), barrier, results)) for _ in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
    assert [proc.exitcode for proc in procs] == [0, 0], "a reader failed (its traceback is above)"
    outcomes = [results.get(timeout=5) for _ in procs]
    assert len({path for *_, path in outcomes}) == 1, outcomes
    copy = Path(outcomes[0][3])
    _same_data(copy, a)

    lines = [line.split() for line in log.read_text().splitlines()]
    fetchers = {int(pid) for pid, *_ in lines}
    assert len(lines) == FILES and len(fetchers) == 1, f"one download of {FILES} files expected, got {lines}"
    # The other process really ran during the download (it did not merely find a finished cache):
    # it started resolving before the last file was copied, and returned after the download ended.
    (waiter,) = [o for o in outcomes if o[0] not in fetchers]
    last_copy = max(float(stamp) for *_, stamp in lines)
    assert waiter[1] < last_copy < waiter[2]


def test_a_remote_change_is_fetched_again(datasets, cache: Path, copies: list[str], tmp_path: Path) -> None:
    a, b = datasets
    uri = _uri(tmp_path / "bucket" / "coco64")
    remote.push(a, uri, log=lambda _: None)
    first = resolve_dataset(uri)
    remote.push(b, uri, log=lambda _: None)  # re-pushing over an existing dataset is allowed
    second = resolve_dataset(uri)
    assert second != first and second.parent == first.parent
    _same_data(second, b)
    assert not first.exists(), "the older version is removed"
    assert len(copies) == 2 * FILES

    # One changed pixel, same counts, same everything else: the file digests in meta.json still change it.
    edited = tmp_path / "edited"
    shutil.copytree(a, edited)
    pixels = np.load(edited / layout.images_file("val"), mmap_mode="r+")
    pixels[3, 10, 10, 0] ^= 0xFF
    pixels.flush()
    del pixels
    remote.push(edited, uri, log=lambda _: None)
    third = resolve_dataset(uri)
    assert third not in (first, second)
    _same_data(third, edited)
    assert len(copies) == 3 * FILES


def test_a_push_during_a_fetch_is_noticed_and_fetched_again(datasets, cache: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    a, b = datasets
    uri = _uri(tmp_path / "bucket" / "coco64")
    remote.push(a, uri, log=lambda _: None)
    real = Storage.download
    calls: list[str] = []

    def repush_midway(self, relative, destination):
        calls.append(Path(relative).name)
        if len(calls) == 2:  # a user re-pushes while this node is copying
            remote.push(b, uri, log=lambda _: None)
        return real(self, relative, destination)

    monkeypatch.setattr(Storage, "download", repush_midway)
    copy = resolve_dataset(uri)
    assert "changed while fetching" in capsys.readouterr().err
    _same_data(copy, b)  # never a mix of the two versions
    assert calls == [layout.images_file("train"), layout.captions_file("train"), *remote.dataset_files(
        PreparedDataset(b).meta)], "the first attempt stops at the first file that differs, the second copies all"
    assert [p.name for p in copy.parent.iterdir()] == [copy.name], "the unfinished attempt is removed"


def test_missing_meta_and_unknown_storage_are_clear_errors(datasets, cache: Path, tmp_path: Path) -> None:
    a, _ = datasets
    bare = tmp_path / "bucket" / "raw-files"
    shutil.copytree(a, bare)
    (bare / layout.META_FILE).unlink()  # e.g. copied by hand, or a push that never finished
    with pytest.raises(DataError, match=r"raw-files: not a prepared dataset \(no meta.json.*prepare.*"
                                        r"raysearch.data push DIR file://"):
        resolve_dataset(_uri(bare))
    with pytest.raises(DataError, match="nowhere: not a prepared dataset"):
        resolve_dataset(_uri(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"^nosuch://bucket/x: cannot open this storage location \(.*nosuch"):
        resolve_dataset("nosuch://bucket/x")
    assert not (cache / remote.REMOTE_DIR).exists() or not any((cache / remote.REMOTE_DIR).iterdir())


def test_an_interrupted_push_never_looks_complete(datasets, cache: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = datasets
    uri = _uri(tmp_path / "bucket" / "coco64")
    remote.push(a, uri, log=lambda _: None)
    real = pyarrow.fs.copy_files
    uploads: list[str] = []

    def fail_third(source, destination, **kwargs):
        uploads.append(destination)
        if len(uploads) == 3:
            raise OSError("connection reset")
        return real(source, destination, **kwargs)

    monkeypatch.setattr(pyarrow.fs, "copy_files", fail_third)
    with pytest.raises(DataError, match=r"coco64: push failed \(connection reset\)"):
        remote.push(b, uri, log=lambda _: None)
    with pytest.raises(DataError, match="no meta.json; a push may be unfinished"):
        resolve_dataset(uri)


def test_push_refuses_a_directory_that_is_not_prepared(datasets, tmp_path: Path) -> None:
    a, _ = datasets
    destination = tmp_path / "bucket"
    (tmp_path / "raw-tree").mkdir()
    with pytest.raises(DataError, match=r"^push: .*raw-tree: not a prepared dataset \(no meta.json\); run"):
        remote.push(tmp_path / "raw-tree", _uri(destination))
    broken = tmp_path / "broken"
    shutil.copytree(a, broken)
    (broken / layout.images_file("train")).write_bytes(b"truncated")
    with pytest.raises(DataError, match="^push: .*train_images.npy: unreadable"):
        remote.push(broken, _uri(destination))
    with pytest.raises(DataError, match="is .* itself; give another destination"):
        remote.push(a, _uri(a))
    assert not destination.exists(), "nothing is uploaded"


def test_push_command_line(datasets, cache: Path, tmp_path: Path) -> None:
    a, _ = datasets
    uri = _uri(tmp_path / "bucket" / "coco64")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "raysearch.data", "push", str(a), uri], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"pushed {a} to {uri}" in done.stdout and f"--data {uri}" in done.stdout
    _same_data(resolve_dataset(uri), a)
    refused = subprocess.run([sys.executable, "-m", "raysearch.data", "push", str(tmp_path), uri], env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert refused.stderr.startswith("error: push: ") and "not a prepared dataset" in refused.stderr
