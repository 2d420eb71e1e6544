"""`download-coco`: fetch the official MSCOCO 2014 zips, resumably, check them, unzip them.

Each file is streamed into `NAME.part`; an interrupted transfer (dropped
connection, killed process) resumes from the bytes already there with an HTTP
Range request. A finished file is checked (size, and md5 for the official
files) before it is renamed to `NAME`; a corrupt one is deleted with a clear
error so the next run starts it over. Unpacking writes a marker file when it
completes, so reruns skip what is done.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from raysearch.errors import DataError

IMAGES_BASE_URL = "http://images.cocodataset.org/zips/"
ANNOTATIONS_BASE_URL = "http://images.cocodataset.org/annotations/"
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0

Log = Callable[[str], None]


@dataclass(frozen=True)
class Expected:
    """What a downloaded file must be; None = not checked."""

    size: int | None = None
    md5: str | None = None


# The official files (sizes as served by images.cocodataset.org, md5 as
# published by the COCO mirrors and checked by other loaders).
OFFICIAL_FILES: dict[str, Expected] = {
    "train2014.zip": Expected(13_510_573_713, "0da8c0bd3d6becc4dcb32757491aca88"),
    "val2014.zip": Expected(6_645_013_297, "a3d79f5ed8d289b7a7554ce06a5782b3"),
    "annotations_trainval2014.zip": Expected(252_872_794, "0a379cfc70b0e71301e0f377548639bd"),
}


class _Interrupted(Exception):
    """A transfer stopped early; retrying resumes it."""


def default_url(name: str, base_url: str | None = None) -> str:
    if base_url:
        return base_url.rstrip("/") + "/" + name
    return (ANNOTATIONS_BASE_URL if name.startswith("annotations") else IMAGES_BASE_URL) + name


class _Progress:
    """Prints '<name>: 45.0% (120.0/266.7 MB)' every 5%, or every 100 MB when the size is unknown."""

    def __init__(self, name: str, done: int, total: int | None, log: Log) -> None:
        self.name, self.done, self.total, self.log = name, done, total, log
        self.next_mark = self._mark_after(done)

    def _mark_after(self, done: int) -> int:
        step = self.total // 20 if self.total else 100 * CHUNK_BYTES
        step = max(step, 1)
        return (done // step + 1) * step

    def add(self, count: int) -> None:
        self.done += count
        if self.done >= self.next_mark or (self.total is not None and self.done >= self.total):
            self.next_mark = self._mark_after(self.done)
            if self.total:
                self.log(f"{self.name}: {100 * self.done / self.total:5.1f}% "
                         f"({self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB)")
            else:
                self.log(f"{self.name}: {self.done / 1e6:.1f} MB")


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) from 'bytes 100-199/200' or 'bytes */200'."""
    match = re.fullmatch(r"bytes (?:(\d+)-\d+|\*)/(\d+|\*)", (value or "").strip())
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def _transfer(url: str, part: Path, expected: Expected, log: Log) -> int | None:
    """Append the rest of `url` to `part`; returns the total size the server announced."""
    offset = part.stat().st_size if part.exists() else 0
    if expected.size is not None and offset >= expected.size:
        if offset == expected.size:
            return expected.size  # finished by an earlier run, killed before the rename
        part.unlink()
        offset = 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # nothing left past our offset
            _, total = _content_range(error.headers.get("Content-Range"))
            if total == offset:
                return total
            part.unlink()
            raise _Interrupted(f"server refused to resume at byte {offset}, starting over") from None
        raise DataError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise _Interrupted(f"cannot reach the server ({getattr(error, 'reason', error)})") from None
    with response:
        if offset and response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink()
                raise _Interrupted(f"server resumed at byte {start}, not {offset}; starting over")
            mode = "ab"
            log(f"{part.name}: resuming at {offset / 1e6:.1f} MB")
        else:
            if offset:
                log(f"{part.name}: the server does not support resuming, starting over")
            offset, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if total is not None and expected.size is not None and total != expected.size:
            part.unlink(missing_ok=True)
            raise DataError(
                f"{url}: the server announces {total} bytes, expected {expected.size}; wrong file or mirror"
            )
        progress = _Progress(part.name.removesuffix(".part"), offset, total, log)
        with part.open(mode) as handle:
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except (http.client.HTTPException, OSError) as error:
                    raise _Interrupted(f"connection lost ({type(error).__name__})") from None
                if not chunk:
                    break
                handle.write(chunk)
                progress.add(len(chunk))
    received = part.stat().st_size
    if total is not None and received < total:
        raise _Interrupted(f"connection closed after {received} of {total} bytes")
    return total


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while block := handle.read(CHUNK_BYTES * 8):
            digest.update(block)
    return digest.hexdigest()


def _verify(url: str, part: Path, total: int | None, expected: Expected) -> None:
    """Size then md5; a file that fails is deleted so the next run downloads it again."""
    size = part.stat().st_size
    want = expected.size if expected.size is not None else total
    if want is not None and size != want:
        part.unlink()
        raise DataError(f"{url}: got {size} bytes, expected {want}; the partial file was deleted, run again")
    if expected.md5:
        digest = _md5(part)
        if digest != expected.md5.lower():
            part.unlink()
            raise DataError(
                f"{url}: md5 {digest} does not match the expected {expected.md5}; "
                "the corrupt download was deleted, run again"
            )


def download_file(
    url: str, target: Path, expected: Expected = Expected(), *, retries: int = 5, retry_wait_s: float = 2.0,
    log: Log = print,
) -> Path:
    """Download `url` to `target` (resuming `target.part`), checked against `expected`."""
    if target.exists():
        if expected.size is None or target.stat().st_size == expected.size:
            log(f"{target.name}: already downloaded")
            return target
        raise DataError(
            f"{target}: exists with {target.stat().st_size} bytes, expected {expected.size}; delete it and run again"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    log(f"{target.name}: downloading {url}")
    failures = 0
    while True:
        try:
            total = _transfer(url, part, expected, log)
            break
        except _Interrupted as why:
            failures += 1
            have = part.stat().st_size if part.exists() else 0
            if failures > retries:
                raise DataError(
                    f"{url}: {why}; gave up after {retries} retries with {have} bytes in {part}, run again to resume"
                ) from None
            log(f"{target.name}: {why}; retry {failures}/{retries} from byte {have}")
            time.sleep(retry_wait_s * failures)
    _verify(url, part, total, expected)
    os.replace(part, target)
    return target


def unpacked_marker(zip_path: Path, dest: Path) -> Path:
    return dest / f".{zip_path.name}.unpacked"


def unpack(zip_path: Path, dest: Path, log: Log = print) -> None:
    """Extract `zip_path` into `dest` unless a previous run finished doing so."""
    marker = unpacked_marker(zip_path, dest)
    if marker.exists():
        log(f"{zip_path.name}: already unpacked")
        return
    log(f"{zip_path.name}: unpacking into {dest}")
    try:
        with zipfile.ZipFile(zip_path) as archive:
            # extractall drops absolute paths and '..' parts; each member's CRC is checked as it is read.
            archive.extractall(dest)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as error:
        raise DataError(f"{zip_path}: not a valid zip ({error}); delete it and run again") from None
    marker.write_text("done\n", encoding="utf-8")


def download_coco(
    dest: str | Path,
    *,
    base_url: str | None = None,
    files: Sequence[str] | None = None,
    checksums: Mapping[str, Expected] | None = None,
    retries: int = 5,
    retry_wait_s: float = 2.0,
    delete_zips: bool = False,
    log: Log = print,
) -> Path:
    """Fetch and unpack the 2014 zips into `dest`, giving the layout `prepare --coco-root` reads.

    `checksums` replaces the table of the official files (a mirror, tests);
    files it does not name are checked against the announced size only.
    """
    dest = Path(dest).expanduser()
    names = list(files) if files else list(OFFICIAL_FILES)
    for name in names:
        if name not in OFFICIAL_FILES:
            raise DataError(f"--files: unknown file {name!r}; allowed: {list(OFFICIAL_FILES)}")
    if dest.exists() and not dest.is_dir():
        raise DataError(f"--dest {dest}: is a file; give a directory to download and unpack into")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a parent is a file, no permission...
        raise DataError(f"--dest {dest}: cannot be created ({error.strerror or error})") from None
    for name in names:
        zip_path = dest / name
        if unpacked_marker(zip_path, dest).exists():
            log(f"{name}: already downloaded and unpacked")
            continue
        expected = OFFICIAL_FILES[name] if checksums is None else checksums.get(name, Expected())
        url = default_url(name, base_url)
        download_file(url, zip_path, expected, retries=retries, retry_wait_s=retry_wait_s, log=log)
        unpack(zip_path, dest, log)
        if delete_zips:
            zip_path.unlink()
    return dest
