"""Are an experiment's saved files whole, before `--resume` or `analyze` hands them to Ray Tune?

A resume reads raysearch's own record (`raysearch_experiment.yaml`, which must
end with its last line), Optuna's journal of the study (every complete line a
JSON record) and four files Tune saved: `tuner.pkl` (how the Tuner was built),
the newest `experiment_state-<time>.json` (the trials and their statuses), the
newest `searcher-state-<time>.pkl` (Optuna's study) and the newest
`search_gen_state-<time>.json` (the search generator, a pickle despite its
name). Tune writes each under a temporary name and renames it, so a crash
never leaves one half-written; a disk or a copy can. Tune then fails deep in
its restore with a traceback, after Ray has started. Checked here first, in
one line naming the file, and without changing anything:

- JSON by parsing it;
- pickles by walking their opcodes to the final STOP with `pickletools`,
  which reads the stream without running it (raysearch never unpickles a
  file; Tune does, once the file is known to be whole).
"""

from __future__ import annotations

import json
import pickletools
import re
from io import BytesIO
from pathlib import Path

from raysearch.errors import RaysearchError
from raysearch.storage import Storage

TUNER_FILE = "tuner.pkl"
TUNE_STATE = re.compile(r"^experiment_state-.*\.json$")
SEARCHER_STATE = re.compile(r"^searcher-state-.*\.pkl$")
SEARCH_GENERATOR_STATE = re.compile(r"^search_gen_state-.*\.json$")


class DamagedExperiment(RaysearchError):
    """A file an experiment needs to resume is missing, truncated or not what Tune wrote."""


def newest(storage: Storage, pattern: re.Pattern) -> str | None:
    """The newest file matching `pattern` as Tune picks it (the greatest name: names hold their time)."""
    names = [name for name, is_dir in storage.list_dir() if not is_dir and pattern.match(name)]
    return max(names) if names else None


def check_resumable(storage: Storage) -> None:
    """DamagedExperiment naming the first file of Tune's saved state that is missing or not whole (the study's
    journal: check_journal)."""
    where = storage.location
    if storage.kind(TUNER_FILE) != "file" or newest(storage, TUNE_STATE) is None:
        raise DamagedExperiment(f"{where}: Tune saved no state for this experiment ({TUNER_FILE} or "
                                "experiment_state-*.json missing): it stopped before its first trial started; start "
                                "it again without --resume")
    check_pickle(storage, TUNER_FILE)
    check_tune_state(storage, newest(storage, TUNE_STATE))
    for pattern in (SEARCHER_STATE, SEARCH_GENERATOR_STATE):
        name = newest(storage, pattern)
        if name is not None:
            check_pickle(storage, name)


def check_journal(path: Path) -> None:
    """Optuna's journal of the search's study (a local file; none for an experiment from before studies): every
    complete line a JSON record. An unterminated last line is a write cut short, which Optuna skips while it is
    last (drop_partial_record removes it before a resume appends after it)."""
    if not path.is_file():
        return
    for number, line in enumerate(path.read_bytes().split(b"\n")[:-1], 1):
        try:
            json.loads(line)
        except ValueError as err:
            raise DamagedExperiment(f"{path}: line {number} is not a whole Optuna journal record ({err}); Optuna "
                                    "cannot read the study past it; nothing was changed") from None


def drop_partial_record(path: Path) -> int:
    """The one repair: cut an unterminated last record from Optuna's journal (a write a full disk or a killed
    driver cut short; Optuna never read it) so that the records a resume appends do not follow it, which
    would make the whole journal unreadable. The bytes dropped (0: none)."""
    if not path.is_file():
        return 0
    data = path.read_bytes()
    whole = data.rfind(b"\n") + 1
    if whole == len(data):
        return 0
    with open(path, "r+b") as journal:
        journal.truncate(whole)
    return len(data) - whole


def check_tune_state(storage: Storage, name: str) -> None:
    """Tune's experiment state `name`: complete JSON holding the trial list."""
    data = _read(storage, name)
    try:
        state = json.loads(data)
    except ValueError as err:
        raise DamagedExperiment(f"{storage.location}/{name}: Tune's experiment state is not complete JSON "
                                f"({_damage(err, len(data))}); nothing was changed") from None
    if not isinstance(state, dict) or not isinstance(state.get("trial_data"), list):
        raise DamagedExperiment(f"{storage.location}/{name}: not a Tune experiment state (no trial_data list); "
                                "nothing was changed")


def check_pickle(storage: Storage, name: str) -> None:
    """A pickle Tune wrote: every opcode readable up to its STOP (nothing is unpickled)."""
    data = _read(storage, name)
    try:
        for opcode, _, _ in pickletools.genops(BytesIO(data)):
            if opcode.name == "STOP":
                return
    except (ValueError, EOFError) as err:
        raise DamagedExperiment(f"{storage.location}/{name}: truncated or damaged ({err}, {len(data)} bytes); "
                                "Tune cannot restore from it; nothing was changed") from None
    raise DamagedExperiment(f"{storage.location}/{name}: truncated ({len(data)} bytes, no end of pickle); Tune "
                            "cannot restore from it; nothing was changed")


def check_record_complete(text: str, where: str) -> None:
    """raysearch's own record (raysearch_experiment.yaml) ends with its last line: YAML cut short can still
    parse, with its last keys gone (yaml.safe_dump, which writes it, always ends with a newline)."""
    if text and not text.endswith("\n"):
        raise DamagedExperiment(f"{where}: truncated (it ends mid-line, after {len(text.encode())} bytes); "
                                "nothing was changed")


def _read(storage: Storage, name: str) -> bytes:
    data = storage.read_bytes(name)
    if data is None:
        raise DamagedExperiment(f"{storage.location}/{name}: cannot be read")
    return data


def _damage(err: ValueError, size: int) -> str:
    position = getattr(err, "pos", None)
    if isinstance(err, json.JSONDecodeError) and position is not None and position >= size - 1:
        return f"it ends after {size} bytes, mid-document: truncated"
    return str(err)
