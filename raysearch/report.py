"""The end of a search: a ranked table, best_config.yaml, and the TensorBoard command."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from raysearch import storage
from raysearch.config import config_to_dict
from raysearch.spaces import SearchSpace, TuneSettings

BEST_CONFIG_FILE = "best_config.yaml"


@dataclass(frozen=True)
class TrialRow:
    """One trial as the ranked table shows it."""

    trial: str
    params: dict[str, Any]
    final: float | None
    best: float | None
    epochs: int
    status: str  # finished | stopped (by the scheduler) | diverged | error | running | pending (no result yet)


def trial_rows(results, space: SearchSpace, settings: TuneSettings) -> list[TrialRow]:
    """Rows for every trial of a Tune ResultGrid, best first (errors last)."""
    rows = []
    for result in results:
        metrics = result.metrics or {}
        history = result.metrics_dataframe
        values = history[space.metric].dropna().tolist() if history is not None and space.metric in history else []
        rows.append(make_row(
            Path(result.path).name if result.path else "?", result.config or {}, metrics, values,
            space.metric, space.mode,
            trial_status(metrics, error=result.error is not None, max_epochs=settings.max_epochs),
        ))
    return rank_rows(rows, space.mode)


def make_row(trial: str, params: dict[str, Any], last: dict[str, Any], values: list[Any], metric: str, mode: str,
             status: str) -> TrialRow:
    """A row from plain data: the trial's last reported metrics and every value it reported for `metric`."""
    finite = [v for v in map(_number, values) if v is not None]
    best = (min(finite) if mode == "min" else max(finite)) if finite else None
    return TrialRow(trial=trial, params=dict(params), final=_number(last.get(metric)), best=best,
                    epochs=int(last.get("epoch", 0) or 0), status=status)


def rank_rows(rows: list[TrialRow], mode: str) -> list[TrialRow]:
    """Best final value first; trials without a value, then errors, last."""
    sign = 1 if mode == "min" else -1
    return sorted(rows, key=lambda r: (r.status == "error", r.final is None, sign * (r.final or 0)))


def trial_status(last: dict[str, Any], *, error: bool, max_epochs: int, done: bool = True) -> str:
    """The table's status of a trial from its last reported metrics (`done`: Tune finished with it)."""
    if error:
        return "error"
    if last.get("diverged"):
        return "diverged"
    if not done:
        return "running" if last else "pending"
    return "finished" if int(last.get("epoch", 0) or 0) >= max_epochs else "stopped"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def format_table(rows: list[TrialRow], metric: str) -> str:
    keys = sorted({k for row in rows for k in row.params})
    header = ["rank", "trial", *keys, f"{metric} (final)", "best", "epochs", "status"]
    lines = [header]
    for rank, row in enumerate(rows, 1):
        lines.append([
            str(rank), row.trial, *(_short(row.params.get(k, "-")) for k in keys),
            _short(row.final), _short(row.best), str(row.epochs), row.status,
        ])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)


def _short(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_best_config(rows: list[TrialRow], space: SearchSpace, experiment_path: str) -> str | None:
    """best_config.yaml: the best non-diverged trial's full config, runnable with `raysearch.train --config`."""
    candidates = [r for r in rows if r.status in ("finished", "stopped") and r.final is not None]
    if not candidates:
        return None
    best = candidates[0]
    cfg = space.trial_config(best.params)
    return storage.Storage(experiment_path).write_text(BEST_CONFIG_FILE, yaml.safe_dump({
        "description": f"Best trial {best.trial} of {experiment_path.rstrip('/').rsplit('/', 1)[-1]}: "
                       f"{space.metric} = {best.final:.6g} after {best.epochs} epochs (search space {space.path.name})",
        "base": config_to_dict(cfg),
    }, sort_keys=False))


def write_report(results, space: SearchSpace, settings: TuneSettings, experiment_path: str, out=sys.stdout) -> list[TrialRow]:
    rows = trial_rows(results, space, settings)
    print(f"\nTrials of {experiment_path}, ranked by {space.metric} ({space.mode}):", file=out)
    print(format_table(rows, space.metric), file=out)
    best = write_best_config(rows, space, experiment_path)
    if best:
        print(f"\nBest config: {best}\n  run it:  python -m raysearch.train --config {best}", file=out)
    else:
        print("\nNo trial finished without diverging: no best_config.yaml written.", file=out)
    print(f"Compare the trials:  tensorboard --logdir {experiment_path}/tensorboard", file=out)
    return rows
