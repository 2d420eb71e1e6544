"""A search's trials as rows: their scores, statuses and ranking, and the classical fills as rows beside them.

Shared by the end of a search (report.py, front.py) and the readers of an experiment (experiment.py, analyze).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from raysearch.baselines import baselines_of
from raysearch.constants import score_key
from raysearch.evaluate import reported_metrics
from raysearch.frontier import nondominated_fronts
from raysearch.objectives import FIDELITY_METRIC, Constraint, Objective, constraints_hold
from raysearch.spaces import SearchSpace


@dataclass(frozen=True)
class TrialRow:
    """One trial as the ranked table shows it."""

    trial: str
    params: dict[str, Any]
    score: float | None  # the ranking value: the mean of the (primary) metric over the trial's last epochs
    final: float | None  # the metric at the trial's last epoch
    best: float | None  # the metric at the trial's best epoch (shown, never ranked on: one lucky epoch)
    epochs: int
    status: str  # see STATUSES
    scores: dict[str, float] = field(default_factory=dict)  # every validation metric's last score, val/psnr -> ...
    front: int | None = None  # several objectives: its Pareto front among the feasible finished trials (0: on it)
    failures: int = 0  # times the trial's process died or raised (its error.txt); it restarted from its last
    # checkpoint while Tune's max_failures allowed (a trial whose status is error failed once more than that)
    copied: str = ""  # PBT: the donors it copied, `trial@epoch, ...` (lineage.describe_copies); '' for none

    @property
    def psnr(self) -> float | None:
        """The trial's PSNR score (the fidelity every GAN space is constrained by)."""
        return self.scores.get(FIDELITY_METRIC)


# finished: trained every epoch · stopped: by the scheduler (ASHA) · interrupted: the search ended (Ctrl-C)
# before the trial did · diverged · error · running / pending: the search is still going (analyze).
STATUSES = ("finished", "stopped", "interrupted", "running", "pending", "diverged", "error")
BASELINE_STATUS = "baseline"  # a classical fill's row (raysearch.baselines): a reference, not a trial


def make_row(trial: str, params: dict[str, Any], last: dict[str, Any], values: list[Any], metric: str, mode: str,
             status: str, failures: int = 0, copied: str = "") -> TrialRow:
    """A row from plain data: the trial's last reported metrics and every value it reported for `metric`."""
    finite = [v for v in map(_number, values) if v is not None]
    best = (min(finite) if mode == "min" else max(finite)) if finite else None
    scores = {name: value for name in reported_metrics() if (value := trial_score(last, name)) is not None}
    return TrialRow(trial=trial, params=dict(params), score=trial_score(last, metric), final=_number(last.get(metric)),
                    best=best, epochs=int(last.get("epoch", 0) or 0), status=status, scores=scores,
                    failures=failures, copied=copied)


TUNE_ERROR_FILE = "error.txt"  # in a trial's directory: Tune appends "Failure # N (occurred at ...)" and the error


def failure_count(error_text: str | None) -> int:
    """How many times a trial failed, from its error.txt (None: it never failed)."""
    return sum(line.startswith("Failure # ") for line in (error_text or "").splitlines())


def trial_score(last: dict[str, Any], metric: str) -> float | None:
    """The score a trial last reported for `metric` (experiments from before scores: the metric itself)."""
    key = score_key(metric)
    return _number(last[key]) if key in last else _number(last.get(metric))


def rank_rows(rows: list[TrialRow], objectives: Sequence[Objective], constraints: Sequence[Constraint] = ()) \
        -> list[TrialRow]:
    """Best first, in tiers; by score within a tier.

    1. Trials whose scores meet every constraint (e.g. a GAN space's PSNR floor: realism subject to
       fidelity) come before all that do not.
    2. Within those, finished trials come before trials that ended early (stopped by ASHA, interrupted,
       still running): a finished trial held its score to the last epoch and won every ASHA rung it met,
       while an early trial's score is from fewer epochs, where a noisy metric has had less chance to
       regress; under ASHA it lost the rung it stopped at against trials at the same epoch.
    3. Diverged trials, then trials without a score, then errors, last.

    With several objectives the feasible finished trials are ordered by their Pareto front (`front` 0: no
    other trial beats them on every objective), then by the first objective; early ones by the first.
    """
    primary = objectives[0]
    sign = 1 if primary.mode == "min" else -1

    def tier(row: TrialRow) -> int:
        base = {"diverged": 4, "error": 6}.get(row.status, 5 if row.score is None else
                                               (0 if row.status == "finished" else 1))
        return base + 2 if base < 2 and not constraints_hold(constraints, row.scores) else base

    if len(objectives) > 1:
        rows = with_fronts(rows, objectives, [tier(row) == 0 for row in rows])

    def key(row: TrialRow) -> tuple:
        return (tier(row), row.front if row.front is not None else 0, sign * (row.score or 0.0))

    return sorted(rows, key=key)


def with_fronts(rows: list[TrialRow], objectives: Sequence[Objective], candidates: list[bool]) -> list[TrialRow]:
    """The rows with `front` set for the candidates (their Pareto fronts on the objectives' scores), None else."""
    chosen = [i for i, candidate in enumerate(candidates) if candidate]
    points = [[rows[i].scores.get(o.metric) for o in objectives] for i in chosen]
    fronts = nondominated_fronts(points, [o.mode for o in objectives]) if chosen else []
    rank = {chosen[i]: number for number, front in enumerate(fronts) for i in front}
    return [dataclasses.replace(row, front=rank.get(i)) for i, row in enumerate(rows)]


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


# ---------------------------------------------------------------- the classical fills


def search_constraints(space: SearchSpace, baselines: dict[str, dict[str, float]] | None = None) \
        -> tuple[Constraint, ...]:
    """The constraints of a search's ranking, resolved against the classical fills of its data (`baselines`,
    read when not given and some constraint needs them)."""
    if baselines is None and any(spec.relative_to for spec in space.constraints):
        baselines = baselines_of(space.config)
    return space.bounds(baselines)


def baseline_rows(baselines: dict[str, dict[str, float]], metric: str) -> list[TrialRow]:
    """The classical fills as table rows (status `baseline`): shown beside the trials, never ranked or chosen."""
    return [TrialRow(trial=f"classical:{name}", params={}, score=_number(row.get(metric)), final=_number(row.get(metric)),
                     best=None, epochs=0, status=BASELINE_STATUS,
                     scores={key: value for key, value in row.items() if _number(value) is not None})
            for name, row in baselines.items()]


def short(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
