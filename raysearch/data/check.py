"""Check `data.path` before Ray starts: one clear line for every dataset a trial could not open.

The trial would find the same problems, but only after Ray, the placement
groups and the workers have started, and as a traceback in a worker log.
Nothing here builds, fetches or decodes: a local check reads meta.json and
the .npy headers, a URI check reads only the remote meta.json.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from raysearch.data import layout, remote
from raysearch.data.photos import is_photo
from raysearch.data.prepared import PreparedDataset
from raysearch.errors import DataError
from raysearch.storage import PYARROW_SCHEMES, display_uri, is_uri

SYNTHETIC_HINT = "omit --data (data.path: null) for the synthetic dataset"


def captions_possible(config: Any, params: Iterable[Any] = ()) -> bool:
    """Whether `config`, or a value a searched `captions.encoder` can take, conditions on captions."""
    if config.captions.encoder != "none":
        return True
    return any(param.key == "captions.encoder" and set(param.choices) - {"none"} for param in params)


def check_source(path: str | None, *, captions: bool, label: str = "data.path (--data)") -> None:
    """DataError (one line, starting with `label`) unless `path` names a dataset a trial can open.

    None is the synthetic dataset.
    """
    if path is None:
        return  # the synthetic dataset: built on first use, has captions
    if is_uri(path):
        _check_uri(path, captions, label)
        return
    where = f"{label} {path}"
    local = Path(path).expanduser()
    if not local.exists():
        raise DataError(f"{where}: no such directory; {layout.PREPARE_HINT}, or {SYNTHETIC_HINT}")
    if not local.is_dir():
        raise DataError(f"{where}: is a file; give a prepared dataset directory")
    if not (local / layout.META_FILE).exists():
        raise DataError(f"{where}: {_unprepared(local)}")
    dataset = PreparedDataset(local)  # meta.json, every file, the .npy headers
    if captions and not dataset.has_captions:
        raise layout.no_captions_error(where)


def _unprepared(local: Path) -> str:
    """Why a directory without meta.json is not a dataset, and the command that makes one of it."""
    entries = list(local.iterdir())
    if not entries:
        return f"is an empty directory; {layout.PREPARE_HINT}"
    if (local / "annotations").is_dir() or (local / "train2014").is_dir():
        return (f"is a raw COCO 2014 tree, not a prepared dataset; prepare it with "
                f"`python -m raysearch.data prepare --coco-root {local} --out DIR` and pass --data DIR")
    if any(is_photo(entry) for entry in local.rglob("*")):
        return (f"holds photos but is not a prepared dataset; prepare it with "
                f"`python -m raysearch.data prepare --images {local} --out DIR` and pass --data DIR")
    return f"not a prepared dataset (no {layout.META_FILE}); {layout.PREPARE_HINT}"


def _check_uri(uri: str, captions: bool, label: str) -> None:
    scheme = uri.split("://", 1)[0].lower()
    if scheme not in PYARROW_SCHEMES:
        raise DataError(f"{label} {display_uri(uri)}: unsupported URI scheme {scheme!r}; allowed: {', '.join(PYARROW_SCHEMES)}")
    try:
        meta_bytes = remote.read_remote_meta(remote.open_uri(uri), uri)
    except DataError as error:  # it names the URI (credentials hidden); say where the URI came from
        raise DataError(f"{label} {error}") from None
    try:
        has_captions = layout.has_captions(json.loads(meta_bytes.decode("utf-8")))
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise DataError(f"{label} {display_uri(uri)}: its {layout.META_FILE} is not a prepared "
                        "dataset's; push the dataset again") from None
    if captions and not has_captions:
        raise layout.no_captions_error(f"{label} {display_uri(uri)}")
