"""The end of a search: a ranked table (or, for several objectives, the front: raysearch.front), best_config.yaml,
and the TensorBoard and Optuna dashboard commands."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from raysearch import storage
from raysearch.baselines import baselines_of
from raysearch.config import config_to_dict, list_spaces
from raysearch.constants import EXPERIMENT_FILE, SCORE_WINDOW, SMOKE_OVERRIDES
from raysearch.errors import first_line
from raysearch.front import FRONT_DIR, Front, describe, format_front, read_front
from raysearch.objectives import Constraint
from raysearch.rows import (TUNE_ERROR_FILE, TrialRow, baseline_rows, failure_count, make_row, rank_rows,
                            search_constraints, short, trial_status)
from raysearch.spaces import SearchSpace, TuneSettings, load_space
from raysearch.study import local_journal
from raysearch.lineage import (POPULATION_LOG, copies, describe_copies, read_population_log,  # PBT hooks
                               result_histories, schedule_of)

BEST_CONFIG_FILE = "best_config.yaml"


def trial_rows(results, space: SearchSpace, settings: TuneSettings,
               constraints: Sequence[Constraint] = (), failures: dict[str, int] | None = None,
               histories: dict[str, list[dict[str, Any]]] | None = None) -> list[TrialRow]:
    """Rows for every trial of a Tune ResultGrid, best first; `failures`: trial name -> times it failed,
    `histories`: trial name -> its results (a PBT search's, for the donors each trial copied).

    Tune returns a ResultGrid also after Ctrl-C: a trial without an error whose
    last result is not `done` did not end, so it was interrupted.
    """
    rows = []
    histories = histories if histories is not None else result_histories(results)  # PBT hook: donors copied
    for result in results:
        metrics = result.metrics or {}
        history = result.metrics_dataframe
        values = history[space.metric].dropna().tolist() if history is not None and space.metric in history else []
        done = bool(metrics.get("done"))
        name = Path(result.path).name if result.path else "?"
        rows.append(make_row(
            name, result.config or {}, metrics, values, space.metric, space.mode,
            trial_status(metrics, error=result.error is not None, max_epochs=settings.max_epochs, done=done,
                         search_running=False),
            failures=(failures or {}).get(name, 0),
            copied=_copied(name, histories or {}),
        ))
    return rank_rows(rows, space.objectives, constraints)


def _copied(trial: str, histories: dict[str, list[dict[str, Any]]]) -> str:
    return describe_copies(copies(trial, histories.get(trial, [])))


def format_table(rows: list[TrialRow], metric: str, baselines: list[TrialRow] = ()) -> str:
    """The ranked trials, then (below a rule, without ranks) the classical fills they must beat. A `failures`
    column appears when some trial failed (and restarted from its checkpoint, or ended in error)."""
    keys = sorted({k for row in rows for k in row.params})
    failed = any(row.failures for row in rows)
    exploited = any(row.copied for row in rows)  # PBT hook: a column naming the donors each trial copied
    header = ["rank", "trial", *keys, f"{metric} score", "final", "best", "psnr score",
              *(["failures"] if failed else []), "epochs", "status", *(["copied (donor@epoch)"] if exploited else [])]
    lines = [header]
    for rank, row in enumerate(rows, 1):
        lines.append([
            str(rank), row.trial, *(short(row.params.get(k, "-")) for k in keys),
            short(row.score), short(row.final), short(row.best), short(row.psnr),
            *([str(row.failures)] if failed else []), str(row.epochs), row.status,
            *([row.copied or "-"] if exploited else []),
        ])
    for row in baselines:
        lines.append(["-", row.trial, *("-" for _ in keys), short(row.score), short(row.final), "-",
                      short(row.psnr), *(["-"] if failed else []), "-", row.status, *(["-"] if exploited else [])])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
    if baselines:
        text.insert(1 + len(rows), "-" * max(len(line) for line in text))
    return "\n".join(text)


# ---------------------------------------------------------------- best_config.yaml


def best_trial_config(best: TrialRow, space: SearchSpace, overrides: list[str]) -> dict[str, Any]:
    """The best trial's config as `raysearch.train --config` should run it.

    It trains as many epochs as the trial did, and without --smoke-test's
    tiny-data settings (a smoke test's winner is meant to be trained for real).
    """
    kept = [o for o in overrides if o not in SMOKE_OVERRIDES]
    full = load_space(str(space.path), kept) if kept != list(overrides) else space
    return config_to_dict(full.trial_config({**best.params, "train.epochs": best.epochs}))


def write_best_config(rows: list[TrialRow], space: SearchSpace, experiment_path: str,
                      overrides: list[str] = (), front: Front | None = None,
                      histories: dict[str, list[dict[str, Any]]] | None = None) -> str | None:
    """best_config.yaml, runnable with `raysearch.train --config`: the best non-diverged trial's full config, or
    with several objectives the knee of the `front` (raysearch.frontier.knee).

    A PBT trial's (`histories`: every trial's results) is the config its weights started from, and a `schedule:`
    of the values they were trained under from each epoch on (lineage.schedule_of), which raysearch.train replays.
    """
    if front is not None:
        best, why = front.knee, "the knee of the front"
    else:
        candidates = [r for r in rows if r.status in ("finished", "stopped", "interrupted") and r.score is not None
                      and r.epochs > 0]
        best, why = (candidates[0] if candidates else None), "best trial"
    if best is None:
        return None
    return _write_trial_config(best, space, experiment_path, list(overrides), BEST_CONFIG_FILE, why, histories)


def write_front_configs(front: Front, space: SearchSpace, experiment_path: str, overrides: list[str] = ()) \
        -> list[str]:
    """front/<trial>.yaml: one runnable config per front trial, for the user to pick a point of the trade-off."""
    return [_write_trial_config(row, space, experiment_path, list(overrides), f"{FRONT_DIR}/{row.trial}.yaml",
                                "on the front") for row in front.members]


def _write_trial_config(row: TrialRow, space: SearchSpace, experiment_path: str, overrides: list[str],
                        relative: str, why: str, histories: dict[str, list[dict[str, Any]]] | None = None) -> str:
    schedule = schedule_of(row.trial, histories or {})  # PBT hook: empty for any other search
    if schedule.changes:
        row = dataclasses.replace(row, params={**row.params, **schedule.values_at(0)})
    smoke = any(o in overrides for o in SMOKE_OVERRIDES)
    figures = ", ".join(f"{o.metric} score {row.scores[o.metric]:.6g}" for o in space.objectives
                        if o.metric in row.scores)
    return storage.Storage(experiment_path).write_text(relative, yaml.safe_dump({
        "description": f"Trial {row.trial} ({row.status}; {why}) of {experiment_path.rstrip('/').rsplit('/', 1)[-1]}: "
                       f"{figures} (mean of its last {SCORE_WINDOW} epochs) after {row.epochs} epochs, the "
                       f"train.epochs below (search space {space.path.name})"
                       + ("; the search's --smoke-test data settings are left out" if smoke else ""),
        "base": best_trial_config(row, space, overrides),
        **({"schedule": schedule.to_yaml()} if schedule.changes else {}),
    }, sort_keys=False))


# ---------------------------------------------------------------- the end of a search


def resume_command(space: SearchSpace, experiment_path: str) -> str:
    """The command that continues this experiment (--storage only when it is not the default)."""
    storage_root, name = experiment_path.rstrip("/").rsplit("/", 1)
    default = os.environ.get("RAYSEARCH_STORAGE", "runs/tune")
    default = default if storage.is_uri(default) else str(Path(default).resolve())
    shipped = space.path.stem in list_spaces() and space.path.resolve().parent.name == "search_spaces"
    command = f"python -m raysearch.tune {space.path.stem if shipped else space.path} --resume --name {name}"
    return command if storage_root == default.rstrip("/") else f"{command} --storage {storage_root}"


def write_report(results, space: SearchSpace, settings: TuneSettings, experiment_path: str, out=sys.stdout,
                 baselines: dict[str, dict[str, float]] | None = None) -> list[TrialRow]:
    """The ranked table (several objectives: the front) with the classical fills below it, best_config.yaml
    (and front/), and what to run next.

    `baselines`: the fills as the search computed them (read from their cache when not given).
    """
    record = yaml.safe_load(storage.Storage(experiment_path).read_text(EXPERIMENT_FILE) or "{}") or {}
    overrides = list(record.get("overrides", []))
    fills = baselines if baselines is not None else baselines_of(space.config)
    constraints = search_constraints(space, fills)
    names = [Path(result.path).name for result in results if result.path]
    # PBT hook: the population's log where the search kept one (lineage.py), else Tune's results.
    histories = read_population_log(storage.Storage(experiment_path).read_text(POPULATION_LOG)) or \
        result_histories(results)
    rows = trial_rows(results, space, settings, constraints, trial_failures(experiment_path, names),
                      histories=histories)
    fill_rows = baseline_rows(fills, space.metric)
    if space.multi_objective:
        front = read_front(rows, space.objectives, fills)
        print(f"\nTrials of {experiment_path}{_constraint_note(constraints)} (score = mean of the last "
              f"{SCORE_WINDOW} epochs; the front among the finished trials first; below the rule, the classical "
              "fills of the same validation images as points on the same axes):", file=out)
        print(format_front(rows, front, fill_rows), file=out)
        print(f"\n{describe(front, sum(r.status == 'finished' for r in rows))}", file=out)
    else:
        print(f"\nTrials of {experiment_path}, ranked by {space.metric} ({space.mode}; score = mean of the last "
              f"{SCORE_WINDOW} epochs{_constraint_note(constraints, ', ')}; finished trials before those that "
              "ended early; below the rule, the classical fills of the same validation images):", file=out)
        print(format_table(rows, space.metric, fill_rows), file=out)
    try:
        if space.multi_objective:
            if write_front_configs(front, space, experiment_path, overrides):
                print(f"One config per front trial: {storage.join(experiment_path, FRONT_DIR)}/", file=out)
        best = write_best_config(rows, space, experiment_path, overrides,
                                 front=front if space.multi_objective else None, histories=histories)
    except OSError as err:  # the storage failed at the very end: the table above is the result all the same
        print(f"\nbest_config.yaml not written: {first_line(err)} (the previous one, if any, is as it was)", file=out)
    else:
        if best:
            print(f"\nBest config: {best}\n  run it:  python -m raysearch.train --config {best}", file=out)
        else:
            print("\nNo trial trained an epoch without diverging (or met the constraints): no best_config.yaml "
                  "written.", file=out)
    print(f"Compare the trials:  tensorboard --logdir {experiment_path}/tensorboard", file=out)
    journal = local_journal(experiment_path)
    if journal.is_file():
        print(f"The Optuna study:    optuna-dashboard {journal}", file=out)
    print_failures(results, rows, out)
    print_continue(rows, len(results), settings.num_samples, space, experiment_path, out)
    return rows


def trial_failures(experiment_path: str, names: list[str]) -> dict[str, int]:
    """Trial name -> times it failed, from the trials' error.txt in the experiment."""
    where = storage.Storage(experiment_path)
    counts = {name: failure_count(where.read_text(f"{name}/{TUNE_ERROR_FILE}")) for name in names}
    return {name: count for name, count in counts.items() if count}


def print_failures(results, rows: list[TrialRow], out) -> None:
    """A line for each trial that ended in error (its error's last line), and one for the trials that failed and
    restarted from their checkpoint."""
    restarted = [row for row in rows if row.failures and row.status != "error"]
    if restarted:
        print(f"\n{len(restarted)} trial(s) failed and restarted from their last checkpoint (each error in the "
              "trial's error.txt): " + ", ".join(f"{r.trial} ({r.failures}x)" for r in restarted), file=out)
    for result in results:
        if result.error is not None:
            print(f"Trial {Path(result.path).name if result.path else '?'} ended in error: {error_line(result.error)}",
                  file=out)


def error_line(error: BaseException) -> str:
    """A trial's error in one line: the last line of Ray's message, where the raised exception is named (the
    first is Ray's `ray::ImplicitFunc.train() (pid=..., ip=...)`)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    line = lines[-1] if lines else type(error).__name__
    return line if len(line) <= 300 else line[:297] + "..."


def print_continue(rows: list[TrialRow], known: int, num_samples: int, space: SearchSpace, experiment_path: str,
                   out) -> None:
    """The resume command when the search has more to do: trials interrupted or ended in error (--resume
    restarts them from their last checkpoint), or trials the searcher had not proposed yet."""
    interrupted = sum(r.status == "interrupted" for r in rows)
    errors = sum(r.status == "error" for r in rows)
    unstarted = max(0, num_samples - known)
    if not (interrupted or errors or unstarted):
        return
    parts = [f"{count} {what}" for count, what in ((interrupted, "trial(s) unfinished"),
                                                   (errors, "ended in error, retried from their last checkpoint"),
                                                   (unstarted, "not started")) if count]
    head = "The search was interrupted" if interrupted or unstarted else "The search ended with trials in error"
    print(f"\n{head} ({'; '.join(parts)}). Continue it with:\n  {resume_command(space, experiment_path)}", file=out)


def _constraint_note(constraints: Sequence[Constraint], lead: str = "; ") -> str:
    """How the constraints read in a table's title (a trial that misses one ranks after all that meet them)."""
    if not constraints:
        return ""
    return f"{lead}trials meeting {' and '.join(c.name for c in constraints)} first"
