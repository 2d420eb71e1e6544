"""The one storage layer: files at a local path or a storage URI (s3://, gs://, file://, ...).

Experiments live wherever Ray's storage layer puts them, and prepared datasets
can be pushed to the same places; pyarrow's filesystems (what Ray's storage
layer uses, with the same URIs, credentials and URI options) read and write
them here: the files raysearch adds beside Tune's (the experiment record,
best_config.yaml, analysis output), Tune's and Train's own (results,
checkpoints) without a running Ray, and the datasets `data push` uploads and
each node fetches once (raysearch.data.remote).
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Iterator
from urllib.parse import urlsplit

from raysearch.errors import RaysearchError, first_line


class StorageError(RaysearchError):
    """A storage location cannot be opened."""


# What pyarrow.fs.FileSystem.from_uri opens: storage locations and remote datasets are both read through it.
PYARROW_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")


# Bytes per read or write: fewer round trips to object stores.
CHUNK_SIZE = 8 << 20


def is_uri(location: str) -> bool:
    return "://" in location


def display_uri(uri: str) -> str:
    """The URI without credentials (`s3://KEY:SECRET@bucket/...` is allowed by pyarrow)."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()


def join(location: str, *parts: str) -> str:
    """`location`/part/...: a string join that keeps a URI's `//` intact."""
    return "/".join([location.rstrip("/"), *parts])


class Storage:
    """An experiment directory on the local disk or at a storage URI, read through pyarrow.fs."""

    def __init__(self, location: str) -> None:
        import pyarrow.fs as pafs  # pyarrow (a second to import) only once a location is opened, not for is_uri

        self.is_uri = is_uri(location)
        self.location = location.rstrip("/") if self.is_uri else str(Path(location).expanduser().resolve())
        try:
            if self.is_uri:
                self.fs, self.root = pafs.FileSystem.from_uri(self.location)
            else:
                self.fs, self.root = pafs.LocalFileSystem(), self.location
        except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ... for bad URIs
            cause = first_line(err)
            allowed = (f"; allowed: a local path or a URI pyarrow opens ({', '.join(f'{scheme}://' for scheme in PYARROW_SCHEMES)})"
                       if "Unrecognized filesystem" in cause else "")
            raise StorageError(f"{display_uri(location)}: cannot open this storage location ({cause}){allowed}") from None
        self._pafs = pafs

    def _path(self, relative: str) -> str:
        return str(PurePosixPath(self.root, relative)) if relative else self.root

    def kind(self, relative: str = "") -> str:
        """'file', 'dir' or 'missing'."""
        info = self.fs.get_file_info(self._path(relative))
        if info.type == self._pafs.FileType.File:
            return "file"
        return "dir" if info.type == self._pafs.FileType.Directory else "missing"

    def list_dir(self, relative: str = "") -> list[tuple[str, bool]]:
        """(name, is_dir) of the entries of a directory; [] if it does not exist."""
        selector = self._pafs.FileSelector(self._path(relative), allow_not_found=True)
        return sorted((PurePosixPath(i.path).name, i.type == self._pafs.FileType.Directory)
                      for i in self.fs.get_file_info(selector))

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, self._pafs.LocalFileSystem)

    def read_bytes(self, relative: str) -> bytes | None:
        """A file's bytes, or None if it does not exist (or vanished while we looked)."""
        try:
            with self.fs.open_input_stream(self._path(relative)) as stream:
                return stream.read()
        except (FileNotFoundError, OSError):
            return None

    def read_text(self, relative: str) -> str | None:
        """A file's text, or None if it does not exist (or vanished while we looked)."""
        data = self.read_bytes(relative)
        return None if data is None else data.decode("utf-8", errors="replace")

    def write_bytes(self, relative: str, data: bytes) -> str:
        """Write a small file whole or not at all (directories created); return where it went.

        On a filesystem the bytes go to a temporary name renamed over the target, so a full disk or a lost
        permission mid-write leaves the previous file (an experiment's record, best_config.yaml) as it was;
        an object store publishes an object only when its upload completes.
        """
        target = PurePosixPath(self._path(relative))
        self.fs.create_dir(str(target.parent), recursive=True)
        if not self.is_local:
            with self.fs.open_output_stream(str(target)) as stream:
                stream.write(data)
            return join(self.location, relative)
        partial = str(target.with_name(f".{target.name}.partial"))
        try:
            with self.fs.open_output_stream(partial) as stream:
                stream.write(data)
            self.fs.move(partial, str(target))
        except BaseException:
            try:
                self.fs.delete_file(partial)
            except OSError:
                pass  # never written, or the filesystem is gone: nothing of ours to clean
            raise
        return join(self.location, relative)

    def write_text(self, relative: str, text: str) -> str:
        return self.write_bytes(relative, text.encode("utf-8"))

    def create_dir(self, relative: str = "") -> None:
        self.fs.create_dir(self._path(relative), recursive=True)

    def delete(self, relative: str) -> None:
        """Delete a file if it is there."""
        if self.kind(relative) == "file":
            self.fs.delete_file(self._path(relative))

    def move(self, source: str, target: str) -> None:
        """Rename a file (a write that appears whole, on filesystems; object stores publish on close anyway)."""
        self.fs.move(self._path(source), self._path(target))

    def download(self, relative: str, destination: Path) -> None:
        """Copy one file to a local path."""
        self._pafs.copy_files(self._path(relative), str(destination), source_filesystem=self.fs,
                              destination_filesystem=self._pafs.LocalFileSystem(), chunk_size=CHUNK_SIZE)

    def local_path(self, relative: str) -> Path | None:
        return Path(self._path(relative)) if not self.is_uri else None

    @contextmanager
    def local_dir(self, relative: str) -> Iterator[Path]:
        """A local directory holding `relative`'s files: the directory itself, or a temporary download."""
        local = self.local_path(relative)
        if local is not None:
            yield local
            return
        tmp = Path(tempfile.mkdtemp(prefix="raysearch-fetch-"))
        try:
            for name, is_dir in self.list_dir(relative):
                if not is_dir:
                    self.download(f"{relative}/{name}", tmp / name)
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def upload(self, source: Path, relative: str) -> str:
        """Copy a local file to `relative` (directories created); return where it went."""
        target = self._path(relative)
        self.fs.create_dir(str(PurePosixPath(target).parent), recursive=True)
        self._pafs.copy_files(str(source), target, source_filesystem=self._pafs.LocalFileSystem(),
                              destination_filesystem=self.fs, chunk_size=CHUNK_SIZE)
        return join(self.location, relative)


def open_root(location: str, what: str = "--storage") -> Storage:
    """A storage root (where experiments go), checked before Ray starts: a filesystem pyarrow knows and,
    if it exists, a directory."""
    try:
        root = Storage(location)
    except StorageError as err:
        raise StorageError(f"{what} {err}") from None
    local = root.local_path("")
    if local is not None:
        existing = next(p for p in (local, *local.parents) if p.exists())
        if not existing.is_dir():
            where = "is a file" if existing == local else f"is under the file {existing}"
            raise StorageError(f"{what} {location}: {where}; allowed: a directory (created if missing) or a "
                               "storage URI")
        return root
    try:
        kind = root.kind()
    except OSError as err:  # no credentials, no such bucket, no network: Ray's storage layer would fail alike
        raise StorageError(f"{what} {location}: cannot be reached ({first_line(err)})") from None
    if kind == "file":
        raise StorageError(f"{what} {location}: is a file; allowed: a directory (created if missing) or a storage URI")
    return root
