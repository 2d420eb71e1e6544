"""The search's local storage as a pyarrow filesystem whose files appear whole or not at all.

Ray Tune copies the driver's files (the experiment's state, the searcher's,
each trial's results) into the storage every few seconds, and each trial
copies its checkpoints there, with `pyarrow.fs.copy_files` on a
`LocalFileSystem`: each file is written in place. When the disk fills up or
the directory stops taking writes mid-copy, the file that was being written
is left truncated, over the whole one it replaced (measured: a full disk
left the experiment's search-generator state at 0 bytes, Optuna's state at
8 KB, and every later `--resume` failed).

`AtomicLocalFileSystem` is Ray's public way around that: a pyarrow
`FileSystemHandler` handed to Tune and Train as `storage_filesystem`, the
local filesystem in all but one thing: a file opened for writing is written
to a hidden temporary name beside it and renamed over the target only when
it is closed after every write succeeded. A failed write deletes the
temporary file and leaves the previous version, so a checkpoint is either
all there or absent, and the experiment's state is always the last one that
was saved whole. (Against a failed write or a killed process; a power cut
of the storage's own machine is its filesystem's to survive.)

Object stores (s3://, gs://, ...) need none of this: an object appears only
when its upload completes.
"""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from raysearch import storage as storage_io

PARTIAL_PREFIX = ".raysearch-partial-"


class AtomicLocalFileSystem(pafs.FileSystemHandler):
    """The local filesystem, with every output stream written whole or not at all (see the module)."""

    def __init__(self) -> None:
        self.local = pafs.LocalFileSystem()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AtomicLocalFileSystem)

    def __hash__(self) -> int:
        return hash(AtomicLocalFileSystem)

    def __reduce__(self):
        return AtomicLocalFileSystem, ()  # sent to every trial's process with Tune's storage context

    def get_type_name(self) -> str:
        return "raysearch-atomic-local"

    def equals(self, other) -> bool:
        return isinstance(other, AtomicLocalFileSystem)

    def normalize_path(self, path: str) -> str:
        return self.local.normalize_path(path)

    def get_file_info(self, paths):
        return self.local.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self.local.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self.local.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self.local.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError("raysearch's storage never deletes a filesystem's root")

    def delete_file(self, path: str) -> None:
        self.local.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self.local.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        with self.local.open_input_stream(src) as source, self.open_output_stream(dest, None) as target:
            while chunk := source.read(storage_io.CHUNK_SIZE):
                target.write(chunk)

    def open_input_stream(self, path: str):
        return self.local.open_input_stream(path)

    def open_input_file(self, path: str):
        return self.local.open_input_file(path)

    def open_output_stream(self, path: str, metadata):
        return pa.PythonFile(WholeFileWriter(path), mode="w")

    def open_append_stream(self, path: str, metadata):
        return self.local.open_append_stream(path)  # appends cannot be whole-or-nothing; Ray makes none here


class WholeFileWriter:
    """A file object writing to a temporary name beside `path`, renamed over it on a close that follows only
    successful writes. A failed write deletes the temporary file at once (pyarrow's copy gives up on the stream
    without closing it), and the old `path` stays as it was."""

    def __init__(self, path: str) -> None:
        target = Path(path)
        self.path = target
        self.partial = target.with_name(f"{PARTIAL_PREFIX}{uuid.uuid4().hex[:12]}-{target.name}")
        # Unbuffered: a full disk fails the write that hits it, not a later flush.
        self.file = open(self.partial, "wb", buffering=0)
        self.closed = False
        self.position = 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):  # a raw write may take part of the bytes (a disk about to fill up)
                written = self.file.write(view[done:])
                if not written:
                    raise OSError(errno.EIO, f"{self.partial}: a write took no bytes")
                done += written
        except BaseException:
            self._discard()
            raise
        self.position += done
        return done

    def flush(self) -> None:
        pass  # unbuffered: every write is with the OS already

    def tell(self) -> int:
        return self.position

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.file.close()
            os.replace(self.partial, self.path)
        except BaseException:
            self._discard()
            raise
        self.closed = True

    def _discard(self) -> None:
        self.closed = True
        try:
            self.file.close()
        except OSError:
            pass
        try:
            os.unlink(self.partial)
        except OSError:
            pass  # already gone, or its directory is


def tune_storage(storage: str) -> tuple[str, pafs.FileSystem | None]:
    """(storage path, filesystem) to hand Tune and Train for a storage root: a local directory (or file://)
    through AtomicLocalFileSystem; a URI of an object store as it is, with Ray's own filesystem for it."""
    if storage_io.is_uri(storage):
        if not storage.startswith("file://"):
            return storage, None
        storage = storage_io.Storage(storage).root
    return str(Path(storage).resolve()), pafs.PyFileSystem(AtomicLocalFileSystem())
