"""The end of a search: a ranked table, best_config.yaml, and the TensorBoard command."""

from __future__ import annotations

import dataclasses
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
from raysearch.spaces import SearchSpace, TuneSettings, load_space
from raysearch.lineage import (POPULATION_LOG, copies, describe_copies, read_population_log,  # PBT hooks
                               result_histories, schedule_of)

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
    copied: str = ""  # PBT: the donors it copied, `trial@epoch, ...` (lineage.describe_copies); '' for none


# finished: trained every epoch · stopped: by the scheduler (ASHA) · interrupted: the search ended (Ctrl-C)
# before the trial did · diverged · error · running / pending: the search is still going (analyze).
STATUSES = ("finished", "stopped", "interrupted", "running", "pending", "diverged", "error")
BASELINE_STATUS = "baseline"  # a classical fill's row (raysearch.baselines): a reference, not a trial


def trial_rows(results, space: SearchSpace, settings: TuneSettings, psnr_floor: float | None = None,
               histories: dict[str, list[dict[str, Any]]] | None = None) -> list[TrialRow]:
    """Rows for every trial of a Tune ResultGrid, best first.

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
        rows.append(make_row(
            Path(result.path).name if result.path else "?", result.config or {}, metrics, values,
            space.metric, space.mode,
            trial_status(metrics, error=result.error is not None, max_epochs=settings.max_epochs, done=done,
                         search_running=False),
            copied=_copied(Path(result.path).name if result.path else "?", histories),
        ))
    return rank_rows(rows, space.mode, psnr_floor)


def _copied(trial: str, histories: dict[str, list[dict[str, Any]]]) -> str:
    return describe_copies(copies(trial, histories.get(trial, [])))


def make_row(trial: str, params: dict[str, Any], last: dict[str, Any], values: list[Any], metric: str, mode: str,
             status: str, copied: str = "") -> TrialRow:
    """A row from plain data: the trial's last reported metrics and every value it reported for `metric`."""
    finite = [v for v in map(_number, values) if v is not None]
    best = (min(finite) if mode == "min" else max(finite)) if finite else None
    return TrialRow(trial=trial, params=dict(params), score=trial_score(last, metric), final=_number(last.get(metric)),
                    best=best, psnr=trial_score(last, FIDELITY_METRIC), epochs=int(last.get("epoch", 0) or 0),
                    status=status, copied=copied)


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
    """The ranked trials, then (below a rule, without ranks) the classical fills they must beat."""
    keys = sorted({k for row in rows for k in row.params})
    header = ["rank", "trial", *keys, f"{metric} score", "final", "best", "psnr score", "epochs", "status"]
    exploited = any(row.copied for row in rows)  # PBT hook: a column naming the donors each trial copied
    header += ["copied (donor@epoch)"] if exploited else []
    lines = [header]
    for rank, row in enumerate(rows, 1):
        lines.append([
            str(rank), row.trial, *(_short(row.params.get(k, "-")) for k in keys),
            _short(row.score), _short(row.final), _short(row.best), _short(row.psnr), str(row.epochs), row.status,
        ] + ([row.copied or "-"] if exploited else []))
    for row in baselines:
        lines.append(["-", row.trial, *("-" for _ in keys), _short(row.score), _short(row.final), "-",
                      _short(row.psnr), "-", row.status] + (["-"] if exploited else []))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
    if baselines:
        text.insert(1 + len(rows), "-" * max(len(line) for line in text))
    return "\n".join(text)


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
                      overrides: list[str] = (), histories: dict[str, list[dict[str, Any]]] | None = None) -> str | None:
    """best_config.yaml: the best non-diverged trial's full config, runnable with `raysearch.train --config`.

    A PBT trial's (`histories`: every trial's results) is the config its weights started from, and a `schedule:`
    of the values they were trained under from each epoch on (lineage.schedule_of), which raysearch.train replays.
    """
    candidates = [r for r in rows if r.status in ("finished", "stopped", "interrupted") and r.score is not None
                  and r.epochs > 0]
    if not candidates:
        return None
    best = candidates[0]
    schedule = schedule_of(best.trial, histories or {})  # PBT hook: empty for any other search
    if schedule.changes:
        best = dataclasses.replace(best, params={**best.params, **schedule.values_at(0)})
    smoke = any(o in overrides for o in SMOKE_OVERRIDES)
    return storage.Storage(experiment_path).write_text(BEST_CONFIG_FILE, yaml.safe_dump({
        "description": f"Best trial {best.trial} ({best.status}) of {experiment_path.rstrip('/').rsplit('/', 1)[-1]}: "
                       f"{space.metric} score {best.score:.6g} (mean of its last {SCORE_WINDOW} epochs) after "
                       f"{best.epochs} epochs, the train.epochs below (search space {space.path.name})"
                       + ("; the search's --smoke-test data settings are left out" if smoke else ""),
        "base": best_trial_config(best, space, list(overrides)),
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
    """The ranked table with the classical fills below it, best_config.yaml, and what to run next.

    `baselines`: the fills as the search computed them (read from their cache when not given).
    """
    record = yaml.safe_load(storage.Storage(experiment_path).read_text(EXPERIMENT_FILE) or "{}") or {}
    fills = baselines if baselines is not None else baselines_of(space.config)
    # PBT hook: the population's log where the search kept one (lineage.py), else Tune's results.
    histories = read_population_log(storage.Storage(experiment_path).read_text(POPULATION_LOG)) or \
        result_histories(results)
    rows = trial_rows(results, space, settings, search_psnr_floor(space, fills), histories=histories)
    baselines = baseline_rows(fills, space.metric)
    print(f"\nTrials of {experiment_path}, ranked by {space.metric} ({space.mode}; score = mean of the last "
          f"{SCORE_WINDOW} epochs; finished trials before those that ended early; below the rule, the classical "
          "fills of the same validation images):", file=out)
    print(format_table(rows, space.metric, baselines), file=out)
    best = write_best_config(rows, space, experiment_path, list(record.get("overrides", [])),
                             histories=histories)
    if best:
        print(f"\nBest config: {best}\n  run it:  python -m raysearch.train --config {best}", file=out)
    else:
        print("\nNo trial trained an epoch without diverging: no best_config.yaml written.", file=out)
    print(f"Compare the trials:  tensorboard --logdir {experiment_path}/tensorboard", file=out)
    unfinished = [r for r in rows if r.status == "interrupted"]
    if unfinished:
        print(f"\nThe search was interrupted ({len(unfinished)} trial(s) unfinished). Continue it with:\n"
              f"  {resume_command(space, experiment_path)}", file=out)
    return rows
