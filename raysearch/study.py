"""A search's Optuna study on disk: one journal file per experiment, which Optuna's own tools open
(`optuna-dashboard JOURNAL`, `optuna.load_study`), where it lives, and whether a resume continues it.

The journal is written by the search's driver (Ray's searcher runs there), so it must be a local file: in the
experiment directory when the experiment is on a disk (a shared filesystem on a cluster), else in the local
cache, with a copy uploaded into the experiment at the end of the search and fetched back by `--resume`.
Optuna only; no Ray.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from raysearch import storage as storage_io
from raysearch.data.cache import cache_root

STUDY_FILE = "optuna.journal"


def journal_storage(path: str | Path) -> JournalStorage:
    """Optuna's journal storage in one file (what `optuna-dashboard PATH` opens)."""
    return JournalStorage(JournalFileBackend(str(path)))


def local_journal(experiment_path: str) -> Path:
    """Where the driver keeps the study of the experiment at `experiment_path` (a directory or a URI)."""
    if not storage_io.is_uri(experiment_path):
        return Path(experiment_path) / STUDY_FILE
    digest = hashlib.sha256(experiment_path.rstrip("/").encode()).hexdigest()[:16]
    return cache_root() / "studies" / f"{experiment_path.rstrip('/').rsplit('/', 1)[-1]}-{digest}" / STUDY_FILE


def fetch_journal(experiment_path: str) -> Path:
    """The local journal of an experiment to resume: a URI experiment's uploaded copy is fetched when this
    machine has none (resumed elsewhere, or the cache was cleared)."""
    local = local_journal(experiment_path)
    if storage_io.is_uri(experiment_path) and not local.is_file():
        remote = storage_io.Storage(experiment_path)
        if remote.kind(STUDY_FILE) == "file":
            local.parent.mkdir(parents=True, exist_ok=True)
            remote.download(STUDY_FILE, local)
    return local


def publish_journal(experiment_path: str) -> str | None:
    """Upload the driver's journal into a URI experiment (its readers find it there); the journal's location."""
    local = local_journal(experiment_path)
    if not local.is_file():
        return None
    if storage_io.is_uri(experiment_path):
        return storage_io.Storage(experiment_path).upload(local, STUDY_FILE)
    return str(local)


def open_study(journal_path: str | Path, study_name: str) -> optuna.Study:
    """The study of a search, as Optuna's tools see it; FileNotFoundError / KeyError naming what is missing."""
    if not Path(journal_path).is_file():
        raise FileNotFoundError(f"{journal_path}: no Optuna journal")
    storage = journal_storage(journal_path)
    if study_name not in optuna.study.get_all_study_names(storage):
        raise KeyError(f"{journal_path}: no study named {study_name!r}")
    return optuna.load_study(study_name=study_name, storage=storage)


def study_mismatch(journal_path: str | Path, study_name: str, metrics: list[str] | tuple[str, ...],
                   modes: list[str] | tuple[str, ...]) -> str | None:
    """Why the study in the journal cannot be the one a search with these objectives continues (one line),
    or None when it matches: for refusing a `--resume` before Ray starts."""
    try:
        study = open_study(journal_path, study_name)
    except (FileNotFoundError, KeyError) as err:
        return str(err.args[0])
    directions = ["min" if d == optuna.study.StudyDirection.MINIMIZE else "max" for d in study.directions]
    if list(study.metric_names or []) != list(metrics) or directions != list(modes):
        return (f"{journal_path}: study {study_name!r} has objectives "
                f"{dict(zip(study.metric_names or [], directions))}, not {dict(zip(metrics, modes))}")
    return None
