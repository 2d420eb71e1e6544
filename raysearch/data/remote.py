"""Prepared datasets at a storage URI: `push` uploads one, `fetch_dataset` caches one per node.

Storage goes through pyarrow's filesystem layer, the one Ray's storage layer
uses, so the URIs Ray accepts for results (`s3://`, `gs://`, `abfs://`,
`hdfs://`, `file://`, ...) work here, with the same credentials and URI
options (an unreachable `gs://` retries for minutes unless the URI says
`?retry_limit_seconds=N`).

At the URI the files are those of a local prepared dataset (layout.py).
`push` deletes the remote `meta.json` first and uploads the new one last, so a
dataset being (re-)pushed never looks complete; the uploaded `meta.json`
carries the size and sha256 of every file under "files", so it changes
whenever any byte of the dataset changes.

On each node:

    CACHE/remote/<uri-key>/<meta-digest>/   one complete, immutable copy per remote version
    CACHE/remote/<uri-key>/.fetch-*         a fetch in progress (removed when it ends)
    CACHE/remote/<uri-key>.lock             held while fetching

`fetch_dataset` reads the remote `meta.json` (one small read). If the copy for
its digest exists and holds the same `meta.json` bytes, that copy is the answer
and no lock is taken. Otherwise, under the lock (trials are separate processes,
often several per node, and share one download), the check is repeated, then
the listed files are copied into a temp directory next to the final one,
checked (sizes and sha256 when the meta lists them, then the layout and .npy
headers), and published by one rename. Older versions of the same URI are then
removed: a trial already running keeps its memory maps (POSIX unlink) and has
read its captions when it opened the dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from filelock import FileLock

from raysearch.data import layout
from raysearch.data.prepared import PreparedDataset
from raysearch.errors import DataError, first_line
from raysearch.storage import CHUNK_SIZE, Storage, StorageError, display_uri

Log = Callable[[str], None]

REMOTE_DIR = "remote"
FETCH_PREFIX = ".fetch-"
FETCH_ATTEMPTS = 3  # the remote may be re-pushed while we copy it
PUSH_HINT = ("run `python -m raysearch.data prepare --coco-root RAW --out DIR`, "
             "then `python -m raysearch.data push DIR {uri}`")


# pyarrow raises OSError for I/O, ArrowInvalid (a ValueError) for bad URIs,
# ArrowNotImplementedError for filesystems this build lacks.
_STORAGE_ERRORS = (OSError, ValueError, NotImplementedError)


def open_uri(uri: str) -> Storage:
    """The storage at `uri` (raysearch.storage); DataError naming the URI and the cause."""
    try:
        return Storage(uri)
    except StorageError as error:
        raise DataError(str(error)) from None


def _unreachable(uri: str, what: str, error: BaseException) -> DataError:
    return DataError(f"{display_uri(uri)}: {what} failed ({first_line(error)})")


def read_remote_meta(storage: Storage, uri: str) -> bytes:
    """The bytes of `uri`/meta.json; DataError if absent (not a prepared or pushed dataset) or unreadable."""
    try:
        if storage.kind(layout.META_FILE) != "file":
            raise DataError(
                f"{display_uri(uri)}: not a prepared dataset (no {layout.META_FILE}; a push may be unfinished); "
                + PUSH_HINT.format(uri=display_uri(uri))
            )
        data = storage.read_bytes(layout.META_FILE)
    except _STORAGE_ERRORS as error:
        raise _unreachable(uri, f"reading {layout.META_FILE}", error) from None
    if data is None:  # removed between the two reads: a push has just begun
        raise DataError(f"{display_uri(uri)}: {layout.META_FILE} vanished while read (a push is under way); "
                        "start again when it ends")
    return data


def _parse_meta(data: bytes, uri: str) -> dict[str, Any]:
    """The remote meta, checked only as far as choosing the files to fetch (layout.read_meta runs after)."""
    where = f"{display_uri(uri)}/{layout.META_FILE}"
    try:
        meta = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{where}: not valid JSON ({error}); push the dataset again") from None
    if not (isinstance(meta, dict) and meta.get("format") == layout.FORMAT_NAME
            and isinstance(meta.get("splits"), dict)):
        raise DataError(f"{where}: not the meta.json of a prepared dataset; " + PUSH_HINT.format(uri=display_uri(uri)))
    files = meta.get("files")
    if files is not None and not (
        isinstance(files, dict)
        and all(isinstance(v, dict) and isinstance(v.get("bytes"), int) and isinstance(v.get("sha256"), str)
                for v in files.values())
    ):
        raise DataError(f"{where}: 'files' must map file names to {{bytes, sha256}}; push the dataset again")
    return meta


def dataset_files(meta: dict[str, Any]) -> list[str]:
    """The data files of a prepared dataset's meta, in layout order (meta.json not included)."""
    return [name for split in layout.SPLITS if split in meta["splits"] for name in layout.split_files(split)]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(block)
    return digest.hexdigest()


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- push ----------------------------------------------------------------------


def push(local: str | Path, uri: str, *, log: Log = print) -> dict[str, Any]:
    """Upload the prepared dataset at `local` to `uri`; returns the meta.json written there.

    The remote meta.json is deleted first and written last, so readers never
    take a half-pushed dataset for a complete one. Pushing again overwrites.
    """
    source = Path(local).expanduser().resolve()
    try:
        PreparedDataset(source)  # prepared and consistent: meta.json, every file, .npy headers
    except DataError as error:
        raise DataError(f"push: {error}") from None
    meta = layout.read_meta(source)
    storage = open_uri(uri)
    shown = display_uri(uri)
    if storage.is_local and Path(storage.root).resolve() == source:
        raise DataError(f"push: {shown} is {source} itself; give another destination")

    names = dataset_files(meta)
    files: dict[str, dict[str, Any]] = {}
    for name in names:
        path = source / name
        files[name] = {"bytes": path.stat().st_size, "sha256": _file_digest(path)}
    total = sum(entry["bytes"] for entry in files.values())
    log(f"pushing {source} to {shown}: {len(names)} files, {_size(total)}")
    started = time.monotonic()
    try:
        storage.create_dir()
        storage.delete(layout.META_FILE)  # from now on the remote is visibly incomplete
        for k, name in enumerate(names, 1):
            storage.upload(source / name, name)
            log(f"  [{k}/{len(names)}] {name} ({_size(files[name]['bytes'])})")
        remote_meta = {**meta, "files": files}
        # Written under another name, then moved: on a filesystem (file://, hdfs://)
        # a reader must never see a half-written meta.json; object stores publish
        # an object whole on close anyway.
        staging = f".{layout.META_FILE}.{os.getpid()}.tmp"
        storage.write_bytes(staging, json.dumps(remote_meta, indent=1).encode("utf-8"))
        storage.move(staging, layout.META_FILE)
    except _STORAGE_ERRORS as error:
        raise _unreachable(uri, "push", error) from None
    seconds = time.monotonic() - started
    counts = ", ".join(f"{split} {info['count']} images" for split, info in meta["splits"].items())
    log(f"pushed {source} to {shown} ({counts}; {_size(total)} in {seconds:.1f} s); "
        f"use it with --data {shown}")
    return remote_meta


# --- fetch into the node cache -------------------------------------------------------


def uri_key(uri: str) -> str:
    """A directory name for `uri`: readable (credentials and query left out) + a hash of the whole URI."""
    uri = uri.rstrip("/")
    parts = urlsplit(uri)
    readable = f"{parts.scheme}_{parts.netloc.rpartition('@')[2]}{parts.path}"
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", readable).strip("_.")[:80]
    return f"{readable}-{hashlib.sha256(uri.encode('utf-8')).hexdigest()[:12]}"


def _version(meta_bytes: bytes) -> str:
    return hashlib.sha256(meta_bytes).hexdigest()[:20]


def _is_current(copy: Path, meta_bytes: bytes) -> bool:
    """Whether `copy` is a complete copy of the remote version whose meta.json is `meta_bytes`."""
    try:
        if (copy / layout.META_FILE).read_bytes() != meta_bytes:
            return False
    except OSError:
        return False
    return layout.is_prepared(copy)


def _fetch_into(storage: Storage, uri: str, meta_bytes: bytes, work: Path) -> None:
    """Copy the version described by `meta_bytes` into the empty directory `work` and check it."""
    meta = _parse_meta(meta_bytes, uri)
    names = dataset_files(meta)
    listed = meta.get("files")
    for name in names:
        try:
            storage.download(name, work / name)
        except _STORAGE_ERRORS as error:
            raise _unreachable(uri, f"fetching {name}", error) from None
        if listed is not None:
            expected = listed.get(name)
            if expected is None:
                raise DataError(f"{display_uri(uri)}/{layout.META_FILE}: 'files' does not list {name}; "
                                "push the dataset again")
            path = work / name
            if path.stat().st_size != expected["bytes"] or _file_digest(path) != expected["sha256"]:
                raise _Changed(name)
    (work / layout.META_FILE).write_bytes(meta_bytes)
    try:
        PreparedDataset(work)  # meta.json valid, every file there, .npy headers match it
    except DataError as error:
        raise DataError(f"{display_uri(uri)}: the fetched dataset is inconsistent ({error}); "
                        "push it again") from None


class _Changed(Exception):
    """A fetched file does not match the meta.json read before: the remote changed meanwhile."""


def _remove_unfinished(folder: Path) -> None:
    """Remove fetches left by killed processes (the caller holds the lock)."""
    for entry in folder.glob(f"{FETCH_PREFIX}*"):
        shutil.rmtree(entry, ignore_errors=True)


def _remove_other_versions(folder: Path, keep: Path) -> None:
    """Remove the copies of older remote versions (the caller holds the lock)."""
    for entry in folder.iterdir():
        if entry != keep and entry.is_dir() and not entry.name.startswith(FETCH_PREFIX):
            shutil.rmtree(entry, ignore_errors=True)


def fetch_dataset(uri: str, cache: Path, *, log: Log = _stderr) -> Path:
    """The local copy of the prepared dataset at `uri`, fetched into `cache` once per remote version."""
    storage = open_uri(uri)
    meta_bytes = read_remote_meta(storage, uri)
    folder = cache / REMOTE_DIR / uri_key(uri)
    copy = folder / _version(meta_bytes)
    if _is_current(copy, meta_bytes):
        return copy  # the common case: one small read, no lock
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cache directory {folder}: cannot be created ({error}); set $RAYSEARCH_CACHE") from None
    with FileLock(str(folder) + ".lock"):
        for attempt in range(1, FETCH_ATTEMPTS + 1):
            # Read again under the lock: another process may have fetched this or a newer version meanwhile.
            meta_bytes = read_remote_meta(storage, uri)
            copy = folder / _version(meta_bytes)
            if _is_current(copy, meta_bytes):
                return copy
            _remove_unfinished(folder)
            if copy.exists():  # damaged by hand: fetch it again
                shutil.rmtree(copy)
            work = Path(tempfile.mkdtemp(dir=folder, prefix=f"{FETCH_PREFIX}{os.getpid()}-"))
            try:
                log(f"fetching {display_uri(uri)} into {copy}")
                started = time.monotonic()
                _fetch_into(storage, uri, meta_bytes, work)
                if read_remote_meta(storage, uri) != meta_bytes:
                    raise _Changed(layout.META_FILE)
                try:
                    os.rename(work, copy)  # publish: the copy appears whole or not at all
                except OSError:
                    if not _is_current(copy, meta_bytes):  # e.g. a cache on a filesystem without working locks
                        raise
            except _Changed as changed:
                log(f"{display_uri(uri)} changed while fetching ({changed}); attempt {attempt} of {FETCH_ATTEMPTS}")
                continue
            finally:
                shutil.rmtree(work, ignore_errors=True)
            size = sum(path.stat().st_size for path in copy.iterdir())
            log(f"fetched {display_uri(uri)}: {_size(size)} in {time.monotonic() - started:.1f} s")
            _remove_other_versions(folder, keep=copy)
            return copy
    raise DataError(f"{display_uri(uri)}: changed during each of {FETCH_ATTEMPTS} fetches; "
                    "wait for the push to finish and start again")
