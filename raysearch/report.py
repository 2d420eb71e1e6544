"""The end of a search: a ranked table, best_config.yaml, and the TensorBoard command."""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from raysearch import storage
from raysearch.baselines import baselines_of, best_baseline
from raysearch.config import config_to_dict, list_spaces
from raysearch.constants import EXPERIMENT_FILE, SCORE_WINDOW, SMOKE_OVERRIDES, score_key
from raysearch.errors import first_line
from raysearch.spaces import SearchSpace, TuneSettings, load_space

BEST_CONFIG_FILE = "best_config.yaml"


FIDELITY_METRIC = "val/psnr"
FIDELITY_MARGIN_DB = 1.0  # a GAN trial may lose up to 1 dB of PSNR against the best classical fill


@dataclass(frozen=True)
class TrialRow:
    """One trial as the ranked table shows it."""

    trial: str
    params: dict[str, Any]
    score: float | None  # the ranking value: the mean of the metric over the trial's last epochs
    final: float | None  # the metric at the trial's last epoch
    best: float | None  # the metric at the trial's best epoch (shown, never ranked on: one lucky epoch)
    psnr: float | None  # the trial's PSNR score, for the fidelity floor
    epochs: int
    status: str  # see STATUSES
    failures: int = 0  # times the trial's process died or raised; it restarted from its last checkpoint
    # while Tune's max_failures allowed (a trial whose status is error failed once more than that)


# finished: trained every epoch · stopped: by the scheduler (ASHA) · interrupted: the search ended (Ctrl-C)
# before the trial did · diverged · error · running / pending: the search is still going (analyze).
STATUSES = ("finished", "stopped", "interrupted", "running", "pending", "diverged", "error")
BASELINE_STATUS = "baseline"  # a classical fill's row (raysearch.baselines): a reference, not a trial


def trial_rows(results, space: SearchSpace, settings: TuneSettings, psnr_floor: float | None = None,
               failures: dict[str, int] | None = None) -> list[TrialRow]:
    """Rows for every trial of a Tune ResultGrid, best first; `failures`: trial name -> times it failed.

    Tune returns a ResultGrid also after Ctrl-C: a trial without an error whose
    last result is not `done` did not end, so it was interrupted.
    """
    rows = []
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
        ))
    return rank_rows(rows, space.mode, psnr_floor)


def make_row(trial: str, params: dict[str, Any], last: dict[str, Any], values: list[Any], metric: str, mode: str,
             status: str, failures: int = 0) -> TrialRow:
    """A row from plain data: the trial's last reported metrics and every value it reported for `metric`."""
    finite = [v for v in map(_number, values) if v is not None]
    best = (min(finite) if mode == "min" else max(finite)) if finite else None
    return TrialRow(trial=trial, params=dict(params), score=trial_score(last, metric), final=_number(last.get(metric)),
                    best=best, psnr=trial_score(last, FIDELITY_METRIC), epochs=int(last.get("epoch", 0) or 0),
                    status=status, failures=failures)


def trial_score(last: dict[str, Any], metric: str) -> float | None:
    """The score a trial last reported for `metric` (experiments from before scores: the metric itself)."""
    key = score_key(metric)
    return _number(last[key]) if key in last else _number(last.get(metric))


def rank_rows(rows: list[TrialRow], mode: str, psnr_floor: float | None = None) -> list[TrialRow]:
    """Best first, in tiers; by score within a tier.

    1. Trials whose PSNR score is at least `psnr_floor` (None: no fidelity
       constraint) come before all that fall below it: realism subject to fidelity.
    2. Within those, finished trials come before trials that ended early
       (stopped by ASHA, interrupted, still running): a finished trial held its
       score to the last epoch and won every ASHA rung it met, while an early
       trial's score is from fewer epochs, where a noisy metric has had less
       chance to regress; under ASHA it lost the rung it stopped at against
       trials at the same epoch.
    3. Diverged trials, then trials without a score, then errors, last.
    """
    sign = 1 if mode == "min" else -1

    def key(row: TrialRow) -> tuple:
        below_floor = psnr_floor is not None and (row.psnr is None or row.psnr < psnr_floor)
        tier = {"diverged": 4, "error": 6}.get(row.status, 5 if row.score is None else (0 if row.status == "finished" else 1))
        if tier < 2 and below_floor:
            tier += 2
        return (tier, sign * (row.score or 0.0))

    return sorted(rows, key=key)


def trial_status(last: dict[str, Any], *, error: bool, max_epochs: int, done: bool = True,
                 search_running: bool = True) -> str:
    """The table's status of a trial from its last reported metrics.

    `done`: Tune finished with the trial. A trial that is not done is running
    (or pending) while the search runs, and was interrupted once it has ended.
    """
    if error:
        return "error"
    if last.get("diverged"):
        return "diverged"
    if not done:
        if not search_running:
            return "interrupted"
        return "running" if last else "pending"
    return "finished" if int(last.get("epoch", 0) or 0) >= max_epochs else "stopped"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None


# ---------------------------------------------------------------- the fidelity floor


def fidelity_floor(best_classical_psnr: float | None) -> float | None:
    """The lowest PSNR score a GAN trial may have to rank among the faithful ones."""
    return None if best_classical_psnr is None else best_classical_psnr - FIDELITY_MARGIN_DB


def search_psnr_floor(space: SearchSpace, baselines: dict[str, dict[str, float]] | None = None) -> float | None:
    """The PSNR floor of a search's ranking: GAN spaces only (realism subject to fidelity); None = no constraint.

    `baselines`: the classical fills of the search's data (raysearch.baselines), read when not given.
    """
    if not space.config.objective.adversarial:
        return None

    _, best = best_baseline(baselines if baselines is not None else baselines_of(space.config), FIDELITY_METRIC, "max")
    return fidelity_floor(best)


def baseline_rows(baselines: dict[str, dict[str, float]], metric: str) -> list[TrialRow]:
    """The classical fills as table rows (status `baseline`): shown beside the trials, never ranked or chosen."""
    return [TrialRow(trial=f"classical:{name}", params={}, score=_number(row.get(metric)), final=_number(row.get(metric)),
                     best=None, psnr=_number(row.get(FIDELITY_METRIC)), epochs=0, status=BASELINE_STATUS)
            for name, row in baselines.items()]


def format_table(rows: list[TrialRow], metric: str, baselines: list[TrialRow] = ()) -> str:
    """The ranked trials, then (below a rule, without ranks) the classical fills they must beat. A `failures`
    column appears when some trial failed (and restarted from its checkpoint, or ended in error)."""
    keys = sorted({k for row in rows for k in row.params})
    failed = any(row.failures for row in rows)
    header = ["rank", "trial", *keys, f"{metric} score", "final", "best", "psnr score",
              *(["failures"] if failed else []), "epochs", "status"]
    lines = [header]
    for rank, row in enumerate(rows, 1):
        lines.append([
            str(rank), row.trial, *(_short(row.params.get(k, "-")) for k in keys),
            _short(row.score), _short(row.final), _short(row.best), _short(row.psnr),
            *([str(row.failures)] if failed else []), str(row.epochs), row.status,
        ])
    for row in baselines:
        lines.append(["-", row.trial, *("-" for _ in keys), _short(row.score), _short(row.final), "-",
                      _short(row.psnr), *(["-"] if failed else []), "-", row.status])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
    if baselines:
        text.insert(1 + len(rows), "-" * max(len(line) for line in text))
    return "\n".join(text)


TUNE_ERROR_FILE = "error.txt"  # Tune appends "Failure # N (occurred at ...)" and the error at each failure


def failure_count(error_text: str | None) -> int:
    """How many times a trial failed, from its error.txt (None: it never failed)."""
    return sum(line.startswith("Failure # ") for line in (error_text or "").splitlines())


def trial_failures(experiment_path: str, names: list[str]) -> dict[str, int]:
    """Trial name -> times it failed, from the trials' error.txt in the experiment."""
    where = storage.Storage(experiment_path)
    counts = {name: failure_count(where.read_text(f"{name}/{TUNE_ERROR_FILE}")) for name in names}
    return {name: count for name, count in counts.items() if count}


def _short(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


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
                      overrides: list[str] = ()) -> str | None:
    """best_config.yaml: the best non-diverged trial's full config, runnable with `raysearch.train --config`."""
    candidates = [r for r in rows if r.status in ("finished", "stopped", "interrupted") and r.score is not None
                  and r.epochs > 0]
    if not candidates:
        return None
    best = candidates[0]
    smoke = any(o in overrides for o in SMOKE_OVERRIDES)
    return storage.Storage(experiment_path).write_text(BEST_CONFIG_FILE, yaml.safe_dump({
        "description": f"Best trial {best.trial} ({best.status}) of {experiment_path.rstrip('/').rsplit('/', 1)[-1]}: "
                       f"{space.metric} score {best.score:.6g} (mean of its last {SCORE_WINDOW} epochs) after "
                       f"{best.epochs} epochs, the train.epochs below (search space {space.path.name})"
                       + ("; the search's --smoke-test data settings are left out" if smoke else ""),
        "base": best_trial_config(best, space, list(overrides)),
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
    """The ranked table with the classical fills below it, best_config.yaml, and what to run next.

    `baselines`: the fills as the search computed them (read from their cache when not given).
    """
    record = yaml.safe_load(storage.Storage(experiment_path).read_text(EXPERIMENT_FILE) or "{}") or {}
    fills = baselines if baselines is not None else baselines_of(space.config)
    names = [Path(result.path).name for result in results if result.path]
    rows = trial_rows(results, space, settings, search_psnr_floor(space, fills), trial_failures(experiment_path, names))
    baselines = baseline_rows(fills, space.metric)
    print(f"\nTrials of {experiment_path}, ranked by {space.metric} ({space.mode}; score = mean of the last "
          f"{SCORE_WINDOW} epochs; finished trials before those that ended early; below the rule, the classical "
          "fills of the same validation images):", file=out)
    print(format_table(rows, space.metric, baselines), file=out)
    try:
        best = write_best_config(rows, space, experiment_path, list(record.get("overrides", [])))
    except OSError as err:  # the storage failed at the very end: the table above is the result all the same
        best = None
        print(f"\nbest_config.yaml not written: {first_line(err)} (the previous one, if any, is as it was)", file=out)
    else:
        if best:
            print(f"\nBest config: {best}\n  run it:  python -m raysearch.train --config {best}", file=out)
        else:
            print("\nNo trial trained an epoch without diverging: no best_config.yaml written.", file=out)
    print(f"Compare the trials:  tensorboard --logdir {experiment_path}/tensorboard", file=out)
    print_failures(results, rows, out)
    print_continue(rows, len(results), settings.num_samples, space, experiment_path, out)
    return rows


def print_failures(results, rows: list[TrialRow], out) -> None:
    """A line for each trial that ended in error (its error's first line), and one for trials that failed and
    restarted from their checkpoint."""
    restarted = [row for row in rows if row.failures and row.status != "error"]
    if restarted:
        print(f"\n{len(restarted)} trial(s) failed and restarted from their last checkpoint (failures column; "
              "each error in the trial's error.txt): " + ", ".join(f"{r.trial} ({r.failures}x)" for r in restarted),
              file=out)
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
