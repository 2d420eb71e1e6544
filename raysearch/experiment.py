"""Read a search's experiment directory from its files, without a running Ray.

An experiment written by `python -m raysearch.tune` lives at `<storage>/<name>/`
on a local disk or at a storage URI (`file://`, `s3://`, ... anything
`pyarrow.fs` opens):

    raysearch_experiment.yaml       what tune.py started it with: space, overrides, tune, metric, mode, base
    experiment_state-<time>.json    Tune's trial list and statuses (read with ray.tune.ExperimentAnalysis)
    <space>_<trial id>/             Tune's trial dir: params.json (dotted keys), result.json (one JSON per report),
                                    error.txt when the trial failed
    <space>_<trial id>/checkpoint_NNNNNN/   a one-process trial's kept full-state checkpoints (state.pt), as
                                    Tune keeps them; result.json's `checkpoint_dir_name` says each one's epoch
    train_<trial id>/epoch_NNNN/    a DDP trial's, as its Ray Train run keeps them
    tensorboard/<trial name>/       the trials' event files
    tensorboard/baseline_<fill>/    the classical fills as flat reference lines (summaries.write_baseline_runs)

Tune's trial list and statuses are read with Ray's public `ray.tune.ExperimentAnalysis`
(no `ray.init` needed); the trials' results are read from their result.json
directly, which tolerates a half-written last line of a running trial and
finds the results of trials Tune's last saved state does not know yet.
"""

from __future__ import annotations

import json
import logging
import math
import re
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from raysearch.baselines import baselines_of
from raysearch.config import build_config, build_dataclass, parse_yaml
from raysearch.constants import EXPERIMENT_FILE
from raysearch.errors import RaysearchError
from raysearch.front import read_front
from raysearch.lineage import POPULATION_LOG, copies, describe_copies, read_population_log  # PBT hooks
from raysearch.objectives import DEFAULT_GAN_CONSTRAINTS, Constraint, Objective
from raysearch.rows import TUNE_ERROR_FILE, TrialRow, failure_count, make_row, rank_rows, trial_status
from raysearch.saved_state import TUNE_STATE, DamagedExperiment, check_record_complete, check_tune_state
from raysearch.spaces import TuneSettings
from raysearch.storage import Storage

CHECKPOINT_DIR = re.compile(r"^epoch_(\d+)$")
CHECKPOINT_FILE = "state.pt"
TERMINAL = ("finished", "stopped", "diverged")  # statuses whose trial has a final value
MODEL_STATUSES = ("finished", "stopped", "running")  # a diverged trial's checkpoint predates its divergence


class ExperimentError(RaysearchError):
    """A directory is not an experiment, or the experiment has nothing to analyse."""


# ---------------------------------------------------------------- trials


@dataclass(frozen=True)
class TrialRecord:
    """One trial as its files describe it."""

    trial_id: str
    name: str  # the trial's directory (and TensorBoard run) name, e.g. wgan_038e2c5d
    params: dict[str, Any]  # the searched values, dotted keys
    history: tuple[dict[str, Any], ...]  # every complete result.json line, in order
    status: str  # see rows.TrialRow.status
    checkpoint_dirs: tuple[tuple[int, str], ...]  # (epoch, directory relative to the experiment) of each kept one
    skipped_lines: int = 0  # result.json lines that could not be parsed (a running trial's half-written last line)
    failures: int = 0  # times the trial failed (its error.txt); it restarted from its checkpoint while allowed

    @property
    def checkpoints(self) -> tuple[int, ...]:
        """The epochs of the kept checkpoints, oldest first."""
        return tuple(epoch for epoch, _ in self.checkpoint_dirs)

    @property
    def last(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}

    def value_at(self, epoch: int, metric: str) -> float | None:
        """The metric the trial reported for `epoch` (the latest report of it, after a restart)."""
        for result in reversed(self.history):
            if result.get("epoch") == epoch:
                value = result.get(metric)
                return float(value) if isinstance(value, (int, float)) else None
        return None

    def best_checkpoints(self, metric: str, mode: str) -> list[int]:
        """The kept checkpoints' epochs, best `metric` first (unknown metric last, latest first among those)."""
        sign = 1 if mode == "min" else -1

        def key(epoch: int) -> tuple[bool, float, int]:
            value = self.value_at(epoch, metric)
            known = value is not None and math.isfinite(value)
            return (not known, sign * value if known else 0.0, -epoch)

        return sorted(self.checkpoints, key=key)

    def checkpoint_dir(self, epoch: int) -> str:
        """The kept checkpoint of `epoch`, relative to the experiment."""
        return dict(self.checkpoint_dirs)[epoch]


@dataclass(frozen=True)
class Experiment:
    """An experiment's record and trials, read from its files."""

    storage: Storage
    record: dict[str, Any]
    settings: TuneSettings
    trials: tuple[TrialRecord, ...]

    @property
    def location(self) -> str:
        return self.storage.location

    @property
    def metric(self) -> str:
        return self.record["metric"]

    @property
    def mode(self) -> str:
        return self.record["mode"]

    @property
    def objectives(self) -> tuple[Objective, ...]:
        """What the search optimised (the record's `objectives`; one `metric` in older records)."""
        recorded = self.record.get("objectives")
        if isinstance(recorded, dict) and recorded:
            return tuple(Objective(str(metric), str(mode)) for metric, mode in recorded.items())
        return (Objective(self.metric, self.mode),)

    def rows(self, constraints: Sequence[Constraint] = ()) -> list[TrialRow]:
        """The ranked table rows (rows.rank_rows, as the search's table ranks them), best first."""
        histories = self.histories()  # PBT hook: the donors each trial copied
        rows = [make_row(t.name, t.params, t.last, [r.get(self.metric) for r in t.history], self.metric, self.mode,
                         t.status, failures=t.failures,
                         copied=describe_copies(copies(t.name, histories.get(t.name, []))))
                for t in self.trials]
        return rank_rows(rows, self.objectives, constraints)

    def config(self):
        """The search's base config (the record's `base:`): its data and metric seed are the trials'."""
        where = f"{self.location}/{EXPERIMENT_FILE}"
        if not isinstance(self.record.get("base"), dict):
            raise ExperimentError(f"{where}: has no base: config (an experiment from an older raysearch)")
        try:
            return build_config(self.record["base"], source=f"{where}: base")
        except RaysearchError as err:
            raise ExperimentError(str(err)) from None

    def baselines(self) -> dict[str, dict[str, float]]:
        """The classical fills of the experiment's validation images, as the search itself computed them."""
        return baselines_of(self.config())

    def constraints(self, baselines: dict[str, dict[str, float]] | None) -> tuple[Constraint, ...]:
        """The search's constraints with their bounds as the search resolved them (its record's `constraints`);
        a record from before constraints: a GAN search's PSNR floor, from the classical fills."""
        recorded = self.record.get("constraints")
        if isinstance(recorded, list):
            try:
                return tuple(Constraint(str(c["metric"]), str(c["op"]), float(c["bound"])) for c in recorded)
            except (KeyError, TypeError, ValueError) as err:
                raise ExperimentError(f"{self.location}/{EXPERIMENT_FILE}: constraints: expected entries "
                                      f"with metric, op and bound ({err})") from None
        if baselines is None or not self.config().objective.adversarial:
            return ()
        return tuple(spec.resolve(baselines) for spec in DEFAULT_GAN_CONSTRAINTS)

    def fills(self, log=print) -> tuple[dict[str, dict[str, float]] | None, tuple[Constraint, ...]]:
        """(the classical fills' figures, the search's constraints); no fills, with a note through `log`, when
        the experiment's data cannot be read here (e.g. analysed on another machine)."""
        try:
            baselines = self.baselines()
        except RaysearchError as err:
            log(f"note: no classical fills: {err}")
            baselines = None
        return baselines, self.constraints(baselines)

    def best_model(self, log=print, pick: str | None = None) -> tuple[TrialRecord, int] | None:
        """The trial `pick` names (see PICKS) that has a usable checkpoint, and its kept checkpoint with the best
        primary metric; None when no trial has one yet. Without `pick`: the best trial as the search's table
        ranks them (constraints included), or with several objectives the front's knee first.
        ExperimentError for a pick that names no trial or metric, saying what is allowed."""
        baselines, constraints = self.fills(log)
        rows = self.rows(constraints)
        front = read_front(rows, self.objectives, baselines) if len(self.objectives) > 1 else None
        if pick not in (None, "knee"):
            rows = self._picked(rows, front, pick)
        elif front is not None:
            rows = sorted(rows, key=lambda row: front.knee is None or row.trial != front.knee.trial)
        for row in rows:
            trial = self.trial(row.trial)
            if row.status in MODEL_STATUSES and trial.checkpoints:
                return trial, trial.best_checkpoints(self.metric, self.mode)[0]
        return None

    def _picked(self, rows: list[TrialRow], front, pick: str) -> list[TrialRow]:
        """The rows `pick` chooses: `best:METRIC` (on the front, or the feasible finished trials with one
        objective) or a trial's name or id."""
        if pick.startswith("best:"):
            metric = pick.removeprefix("best:")
            objectives = {o.metric: o.mode for o in self.objectives}
            if metric not in objectives:
                raise ExperimentError(f"--pick {pick}: {metric!r} is not an objective of {self.location}; allowed: "
                                      f"{', '.join(f'best:{m}' for m in objectives)}, knee, or a trial's name")
            pool = list(front.members) if front is not None else rows
            scored = [row for row in pool if row.scores.get(metric) is not None]
            return sorted(scored, key=lambda row: row.scores[metric], reverse=objectives[metric] == "max")
        chosen = [row for row in rows if pick in (row.trial, self.trial(row.trial).trial_id)]
        if not chosen:
            members = ", ".join(row.trial for row in front.members) if front is not None else rows[0].trial
            raise ExperimentError(f"--pick {pick}: no such trial in {self.location}; allowed: knee, "
                                  f"{', '.join(f'best:{o.metric}' for o in self.objectives)}, or a trial's name "
                                  f"(e.g. {members})")
        return chosen

    def trial(self, name: str) -> TrialRecord:
        return next(t for t in self.trials if t.name == name)

    def histories(self) -> dict[str, list[dict[str, Any]]]:
        """trial name -> its results in order, for lineage.py (PBT's copies and schedules): the population log a
        PBT search keeps, else each trial's result.json."""
        logged = read_population_log(self.storage.read_text(POPULATION_LOG))
        return logged or {t.name: list(t.history) for t in self.trials}

    def finished(self) -> list[TrialRecord]:
        """Trials that reached a final value: finished, stopped by the scheduler, or diverged."""
        return [t for t in self.trials if t.status in TERMINAL]


def open_experiment(location: str) -> Experiment:
    """Read the experiment at a directory or storage URI; ExperimentError if it is not one."""
    storage = Storage(location)
    try:
        return _open(storage, location)
    except OSError as err:  # an unreachable bucket, a permission, a network error
        raise ExperimentError(f"{location}: cannot be read ({err})") from None


def _open(storage: Storage, location: str) -> Experiment:
    kind = storage.kind()
    if kind != "dir":
        raise ExperimentError(f"{location}: {'no such directory' if kind == 'missing' else 'not a directory'}")
    text = storage.read_text(EXPERIMENT_FILE)
    if text is None:
        raise ExperimentError(f"{location}: not a raysearch experiment (no {EXPERIMENT_FILE}, which "
                              f"`python -m raysearch.tune` writes){_experiments_hint(storage)}")
    where = f"{storage.location}/{EXPERIMENT_FILE}"
    record = _parse_record(text, where)
    try:
        settings = build_dataclass(TuneSettings, record["tune"], "tune")
    except RaysearchError as err:
        raise ExperimentError(f"{where}: {err}") from None
    trials = _read_trials(storage, settings)
    return Experiment(storage, record, settings, tuple(trials))


def _experiments_hint(storage: Storage) -> str:
    """'; it holds experiments: a, b' when `storage` is the storage root above experiments, else ''."""
    found = [name for name, is_dir in storage.list_dir() if is_dir and storage.kind(f"{name}/{EXPERIMENT_FILE}") == "file"]
    if not found:
        return ""
    shown = ", ".join(found[-5:])
    return f"; it holds experiments: {shown}" + (f" (and {len(found) - 5} more)" if len(found) > 5 else "")


def _parse_record(text: str, where: str) -> dict[str, Any]:
    try:
        check_record_complete(text, where)
    except DamagedExperiment as err:
        raise ExperimentError(str(err)) from None
    record = parse_yaml(text, where)  # one line naming the file and the line; duplicate keys refused
    missing = [k for k in ("space", "overrides", "tune", "metric", "mode") if not isinstance(record, dict) or k not in record]
    if missing:
        raise ExperimentError(f"{where}: not a raysearch experiment record (missing {', '.join(missing)})")
    if record["mode"] not in ("min", "max"):
        raise ExperimentError(f"{where}: mode must be min or max, got {record['mode']!r}")
    return record


def _tune_states(storage: Storage) -> dict[str, dict[str, Any]]:
    """trial id -> {status, dir, config}, from Tune's experiment state read by Ray's public ExperimentAnalysis.

    No state yet (a search that has just started): {} and the trials come from
    their directories. A state Ray cannot read (another Ray version, a damaged
    file) is an ExperimentError, never a silent empty answer: statuses from the
    directories alone would call every pending trial missing.
    """
    names = sorted(name for name, is_dir in storage.list_dir() if not is_dir and TUNE_STATE.match(name))
    if not names:
        return {}
    try:
        check_tune_state(storage, names[-1])  # a truncated file: one line saying so, not Ray's parse error
    except DamagedExperiment as err:
        raise ExperimentError(str(err)) from None
    # Ray's Tune (seconds to import) only where Tune's state is there to read: inpaint and analyze of a
    # trial's files, or of a search that has just started, need none of it.
    import ray
    from ray.tune import ExperimentAnalysis

    try:
        with warnings.catch_warnings(), _quiet("ray.tune.analysis.experiment_analysis"):
            warnings.simplefilter("ignore")
            analysis = ExperimentAnalysis(storage.location)
        return {trial.trial_id: {"status": trial.status, "dir": trial.storage.trial_dir_name,
                                 "config": dict(trial.config or {})} for trial in analysis.trials}
    except Exception as err:  # Ray raises KeyError, ValueError, TypeError, pickle errors... for a state it cannot read
        raise ExperimentError(
            f"{storage.location}/{names[-1]}: Ray Tune {ray.__version__} cannot read this experiment state "
            f"({type(err).__name__}: {err}); was it written by another Ray version? (this project pins 2.60)"
        ) from None


@contextmanager
def _quiet(logger_name: str):
    """Ray's ExperimentAnalysis logs a warning per trial without results (pending ones): expected here."""
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _read_results(text: str | None) -> tuple[list[dict[str, Any]], int]:
    history, skipped = [], 0
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        try:
            result = json.loads(line)
        except ValueError:
            skipped += 1
            continue
        if isinstance(result, dict):
            history.append(result)
    return history, skipped


def _read_json(storage: Storage, relative: str) -> dict[str, Any] | None:
    try:
        value = json.loads(storage.read_text(relative) or "")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _read_trials(storage: Storage, settings: TuneSettings) -> list[TrialRecord]:
    states = _tune_states(storage)
    entries = storage.list_dir()
    dirs = {name for name, is_dir in entries if is_dir}
    # Tune's trial dirs: every directory with a params.json (Train's run dirs and tensorboard/ have none).
    trial_dirs = [name for name in sorted(dirs) if not name.startswith(("train_", "tensorboard"))
                  and storage.kind(f"{name}/params.json") == "file"]
    # Our trial dirs are named <space>_<trial id>; Tune's state, when there is one, says for sure.
    names: dict[str, str | None] = {name.rsplit("_", 1)[-1]: name for name in trial_dirs}
    for trial_id, state in states.items():
        names = {key: name for key, name in names.items() if name != state["dir"]}
        names[trial_id] = state["dir"] if state["dir"] in dirs else None  # None: pending, no dir yet
    trials = []
    for trial_id, name in names.items():
        state = states.get(trial_id, {})
        params = (_read_json(storage, f"{name}/params.json") if name else None) or state.get("config") or {}
        history, skipped = _read_results(storage.read_text(f"{name}/result.json") if name else None)
        # Tune's state is written every few seconds; a last result with done=true is as good.
        done = bool(history and history[-1].get("done")) or state.get("status") in ("TERMINATED", "ERROR")
        if state:
            error = state["status"] == "ERROR"
        else:  # error.txt is written at every failure, also of a trial that was retried and went on
            error = not done and bool(name) and storage.kind(f"{name}/{TUNE_ERROR_FILE}") == "file"
        trials.append(TrialRecord(
            trial_id=trial_id,
            name=name or state.get("dir") or trial_id,
            params=params,
            history=tuple(history),
            status=trial_status(history[-1] if history else {}, error=error, max_epochs=settings.max_epochs, done=done),
            checkpoint_dirs=_checkpoints(storage, trial_id, name, history),
            skipped_lines=skipped,
            failures=failure_count(storage.read_text(f"{name}/{TUNE_ERROR_FILE}")) if name else 0,
        ))
    return trials


def _checkpoints(storage: Storage, trial_id: str, trial_dir: str | None,
                 history: list[dict[str, Any]]) -> tuple[tuple[int, str], ...]:
    """(epoch, relative directory) of every kept checkpoint with its state file, oldest first: Tune's
    `<trial dir>/checkpoint_NNNNNN` (a one-process trial; the epoch from the result that reported it) and
    Ray Train's `train_<id>/epoch_NNNN` (a DDP trial)."""
    found: dict[int, str] = {}
    if trial_dir:
        for result in history:
            name, epoch = result.get("checkpoint_dir_name"), result.get("epoch")
            if isinstance(name, str) and isinstance(epoch, int) \
                    and storage.kind(f"{trial_dir}/{name}/{CHECKPOINT_FILE}") == "file":
                found[epoch] = f"{trial_dir}/{name}"
    for name, is_dir in storage.list_dir(f"train_{trial_id}"):
        match = CHECKPOINT_DIR.match(name)
        if is_dir and match and storage.kind(f"train_{trial_id}/{name}/{CHECKPOINT_FILE}") == "file":
            found[int(match.group(1))] = f"train_{trial_id}/{name}"
    return tuple(sorted(found.items()))
