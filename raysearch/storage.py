"""Small text files at a local path or a storage URI (s3://, gs://, file://, ...).

Experiments live wherever Ray's storage layer puts them; pyarrow's filesystems
(what that layer uses) read and write the few files raysearch adds beside
Tune's: the experiment record and best_config.yaml.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs


def is_uri(location: str) -> bool:
    return "://" in location


def join(location: str, *parts: str) -> str:
    """`location`/part/...: a string join that keeps a URI's `//` intact."""
    return "/".join([location.rstrip("/"), *parts])


def _resolve(location: str) -> tuple[pyarrow.fs.FileSystem, str]:
    if is_uri(location):
        return pyarrow.fs.FileSystem.from_uri(location)
    return pyarrow.fs.LocalFileSystem(), str(Path(location).resolve())


def write_text(location: str, text: str) -> None:
    filesystem, path = _resolve(location)
    filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with filesystem.open_output_stream(path) as stream:
        stream.write(text.encode())


def read_text(location: str) -> str:
    filesystem, path = _resolve(location)
    with filesystem.open_input_stream(path) as stream:
        return stream.read().decode()


def exists(location: str) -> bool:
    filesystem, path = _resolve(location)
    return filesystem.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def list_dirs(location: str) -> list[str]:
    """Names of the directories directly inside `location` ([] if it does not exist)."""
    filesystem, path = _resolve(location)
    if filesystem.get_file_info(path).type == pyarrow.fs.FileType.NotFound:
        return []
    entries = filesystem.get_file_info(pyarrow.fs.FileSelector(path))
    return sorted(e.base_name for e in entries if e.type == pyarrow.fs.FileType.Directory)
