"""`download-coco` end to end against a loopback HTTP server: resume, integrity checks, unpacking."""

import hashlib
import io
import json
import re
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from raysearch.data.__main__ import main
from raysearch.data.download import OFFICIAL_FILES, Expected, default_url, download_coco
from raysearch.errors import DataError


@dataclass
class Server:
    url: str
    files: dict[str, bytes] = field(default_factory=dict)
    cut_once: dict[str, int] = field(default_factory=dict)  # name -> bytes sent before dropping the connection
    ranges: bool = True
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    def requested(self, name: str) -> list[str | None]:
        return [rng for path, rng in self.requests if path == name]


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

        def do_GET(self) -> None:
            name = self.path.rsplit("/", 1)[-1]
            header = self.headers.get("Range")
            state.requests.append((name, header))
            data = state.files.get(name)
            if data is None:
                self.send_error(404)
                return
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", header or "")
            if match and state.ranges:
                start = int(match.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            body = data[start:]
            cut = state.cut_once.pop(name, None)
            self.wfile.write(body if cut is None else body[:cut])  # then the connection closes

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/coco/"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _expected(data: bytes) -> Expected:
    return Expected(len(data), hashlib.md5(data).hexdigest())


@pytest.fixture
def zips() -> dict[str, dict[str, bytes]]:
    rng = np.random.default_rng(0)
    return {
        # incompressible members so the zip is a few hundred KB
        "val2014.zip": {f"val2014/COCO_val2014_{i:012d}.jpg": rng.bytes(100_000) for i in range(3)},
        "annotations_trainval2014.zip": {"annotations/captions_val2014.json": b'{"images": [], "annotations": []}'},
    }


def test_official_table_and_urls() -> None:
    assert set(OFFICIAL_FILES) == {"train2014.zip", "val2014.zip", "annotations_trainval2014.zip"}
    assert all(e.size and e.md5 and len(e.md5) == 32 for e in OFFICIAL_FILES.values())
    assert default_url("train2014.zip") == "http://images.cocodataset.org/zips/train2014.zip"
    assert default_url("annotations_trainval2014.zip") == (
        "http://images.cocodataset.org/annotations/annotations_trainval2014.zip")
    assert default_url("val2014.zip", "http://mirror/x") == "http://mirror/x/val2014.zip"


def test_download_resumes_after_dropped_connection(server: Server, zips, tmp_path: Path) -> None:
    blobs = {name: _zip(members) for name, members in zips.items()}
    server.files.update(blobs)
    server.cut_once["val2014.zip"] = 120_000
    logs: list[str] = []
    dest = tmp_path / "coco"
    download_coco(dest, base_url=server.url, files=list(blobs), retry_wait_s=0,
                  checksums={name: _expected(data) for name, data in blobs.items()}, log=logs.append)
    assert server.requested("val2014.zip") == [None, "bytes=120000-"]
    for members in zips.values():
        for name, data in members.items():
            assert (dest / name).read_bytes() == data
    assert (dest / "val2014.zip").read_bytes() == blobs["val2014.zip"]
    assert not list(dest.glob("*.part"))
    assert any("resuming at 0.1 MB" in line for line in logs)
    assert any("100.0%" in line for line in logs)
    # everything done: a rerun asks the server nothing
    before = len(server.requests)
    logs.clear()
    download_coco(dest, base_url=server.url, files=list(blobs), log=logs.append)
    assert len(server.requests) == before
    assert all("already" in line for line in logs)


def test_killed_run_resumes_on_the_next_one(server: Server, zips, tmp_path: Path) -> None:
    blob = _zip(zips["val2014.zip"])
    server.files["val2014.zip"] = blob
    server.cut_once["val2014.zip"] = 50_000
    checks = {"val2014.zip": _expected(blob)}
    with pytest.raises(DataError, match=r"val2014.zip: connection closed after 50000 of \d+ bytes.*run again"):
        download_coco(tmp_path, base_url=server.url, files=["val2014.zip"], checksums=checks, retries=0,
                      log=lambda _: None)
    assert (tmp_path / "val2014.zip.part").stat().st_size == 50_000
    assert not (tmp_path / "val2014.zip").exists()
    download_coco(tmp_path, base_url=server.url, files=["val2014.zip"], checksums=checks, log=lambda _: None)
    assert server.requested("val2014.zip") == [None, "bytes=50000-"]
    assert (tmp_path / "val2014.zip").read_bytes() == blob


def test_corrupt_download_fails_the_md5_check(server: Server, zips, tmp_path: Path) -> None:
    blob = _zip(zips["val2014.zip"])
    corrupt = bytearray(blob)
    corrupt[len(blob) // 2] ^= 0xFF
    server.files["val2014.zip"] = bytes(corrupt)
    with pytest.raises(DataError, match=r"/coco/val2014.zip: md5 [0-9a-f]{32} does not match the expected"):
        download_coco(tmp_path, base_url=server.url, files=["val2014.zip"],
                      checksums={"val2014.zip": _expected(blob)}, log=lambda _: None)
    assert not (tmp_path / "val2014.zip").exists() and not (tmp_path / "val2014.zip.part").exists()
    assert not (tmp_path / "val2014").exists()


def test_size_checks(server: Server, zips, tmp_path: Path) -> None:
    server.files["val2014.zip"] = _zip(zips["val2014.zip"])
    # without an override the official table applies: the tiny file is refused before downloading
    with pytest.raises(DataError, match="announces \\d+ bytes, expected 6645013297"):
        download_coco(tmp_path, base_url=server.url, files=["val2014.zip"], log=lambda _: None)
    # a complete .part left by a run killed before the rename is larger than expected: restarted
    (tmp_path / "val2014.zip.part").write_bytes(b"x" * (len(server.files["val2014.zip"]) + 10))
    download_coco(tmp_path, base_url=server.url, files=["val2014.zip"],
                  checksums={"val2014.zip": Expected(len(server.files["val2014.zip"]))}, log=lambda _: None)
    assert (tmp_path / "val2014.zip").read_bytes() == server.files["val2014.zip"]


def test_server_without_range_support_restarts(server: Server, zips, tmp_path: Path) -> None:
    blob = _zip(zips["val2014.zip"])
    server.files["val2014.zip"] = blob
    server.ranges = False
    (tmp_path / "val2014.zip.part").write_bytes(b"garbage")
    download_coco(tmp_path, base_url=server.url, files=["val2014.zip"], checksums={}, log=lambda _: None)
    assert server.requested("val2014.zip") == ["bytes=7-"]
    assert (tmp_path / "val2014.zip").read_bytes() == blob


def test_errors_are_one_clear_line(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="val2014.zip: HTTP 404"):
        download_coco(tmp_path, base_url=server.url, files=["val2014.zip"], checksums={}, log=lambda _: None)
    server.files["val2014.zip"] = b"not a zip at all"
    with pytest.raises(DataError, match="val2014.zip: not a valid zip"):
        download_coco(tmp_path, base_url=server.url, files=["val2014.zip"], checksums={}, log=lambda _: None)
    with pytest.raises(DataError, match="unknown file 'test2014.zip'; allowed"):
        download_coco(tmp_path, files=["test2014.zip"])


def test_cli(server: Server, zips, tmp_path: Path, capsys) -> None:
    blob = _zip(zips["annotations_trainval2014.zip"])
    server.files["annotations_trainval2014.zip"] = blob
    checksums = tmp_path / "sums.json"
    entry = {"size": len(blob), "md5": hashlib.md5(blob).hexdigest()}
    checksums.write_text(json.dumps({"annotations_trainval2014.zip": entry}))
    rc = main(["download-coco", "--dest", str(tmp_path / "d"), "--base-url", server.url,
               "--files", "annotations_trainval2014.zip", "--checksums", str(checksums), "--delete-zips"])
    assert rc == 0
    assert (tmp_path / "d" / "annotations" / "captions_val2014.json").is_file()
    assert not (tmp_path / "d" / "annotations_trainval2014.zip").exists()
    assert "100.0%" in capsys.readouterr().out
    checksums.write_text(json.dumps({"annotations_trainval2014.zip": {"sha1": "x"}}))
    assert main(["download-coco", "--dest", str(tmp_path / "e"), "--checksums", str(checksums)]) == 2
    assert "only 'size' and 'md5'" in capsys.readouterr().err


def test_dest_naming_a_file_is_one_line(tmp_path: Path, capsys) -> None:
    target = tmp_path / "a-file"
    target.write_text("keep me")
    for dest in (target, target / "below"):
        assert main(["download-coco", "--dest", str(dest), "--base-url", "http://127.0.0.1:9/"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: --dest") and str(target) in err
        assert ("is a file" in err) == (dest == target)
    assert target.read_text() == "keep me"
