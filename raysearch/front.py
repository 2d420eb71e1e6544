"""The answer of a search over several objectives: the front of its feasible finished trials (no other such
trial is at least as good on every objective and better on one), read against the classical fills as points
on the same axes, with the volume it covers and the one trial a single answer picks (its knee).

Only trials that trained to the budget and meet the space's constraints can be on the front: a trial the
scheduler stopped has early scores (Optuna's study records it as pruned), and an infeasible one is outside
what the user asked for. The hypervolume's reference point is, per objective, the worst classical fill's
value: the area a front covers is the part of the plane where it beats the crudest non-learned fill.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from raysearch.frontier import hypervolume, knee
from raysearch.objectives import Objective
from raysearch.rows import BASELINE_STATUS, TrialRow, short

FRONT_DIR = "front"  # one config per front trial, beside best_config.yaml


@dataclass(frozen=True)
class Front:
    """A search's front: its members (first objective's order), the knee, and the volume they cover."""

    objectives: tuple[Objective, ...]
    members: tuple[TrialRow, ...]
    knee: TrialRow | None
    hypervolume: float | None  # None without classical fills to place the reference point
    reference: dict[str, tuple[str, float]] | None  # objective -> (the fill it is taken from, its value)

    def point(self, scores: dict[str, float]) -> list[float | None]:
        return [scores.get(o.metric) for o in self.objectives]

    @property
    def directions(self) -> list[str]:
        return [o.mode for o in self.objectives]


def read_front(rows: Sequence[TrialRow], objectives: Sequence[Objective],
               baselines: dict[str, dict[str, float]] | None) -> Front:
    """The front of ranked rows (report.rank_rows sets `front`), its knee and hypervolume."""
    objectives = tuple(objectives)
    members = tuple(row for row in rows if row.front == 0)
    directions = [o.mode for o in objectives]
    points = [[row.scores.get(o.metric) for o in objectives] for row in members]
    chosen = members[knee(points, directions, list(range(len(members))))] if members else None
    reference = reference_point(objectives, baselines)
    volume = None
    if reference is not None:
        volume = hypervolume(points, directions, [value for _, value in reference.values()]) if members else 0.0
    return Front(objectives, members, chosen, volume, reference)


def reference_point(objectives: Sequence[Objective], baselines: dict[str, dict[str, float]] | None) \
        -> dict[str, tuple[str, float]] | None:
    """Per objective, the classical fill that does worst on it and its value; None without fills."""
    if not baselines:
        return None
    reference = {}
    for objective in objectives:
        scored = {name: row[objective.metric] for name, row in baselines.items() if objective.metric in row}
        if not scored:
            return None
        worst = (max if objective.mode == "min" else min)(scored, key=scored.__getitem__)
        reference[objective.metric] = (worst, scored[worst])
    return reference


def fills_beaten(front: Front, baselines: dict[str, dict[str, float]]) -> dict[str, list[str]]:
    """Per classical fill, the front trials that beat it on every objective at once (strictly)."""
    beaten = {}
    for name, row in baselines.items():
        fill = front.point(row)
        beaten[name] = [member.trial for member in front.members
                        if _strictly_better(front.point(member.scores), fill, front.directions)]
    return beaten


def _strictly_better(point: list[float | None], other: list[float | None], directions: list[str]) -> bool:
    if any(value is None for value in point + other):
        return False
    return all((a < b) if d == "min" else (a > b) for a, b, d in zip(point, other, directions))


def format_front(rows: Sequence[TrialRow], front: Front, fills: Sequence[TrialRow] = ()) -> str:
    """The trials (the front first, its knee marked), then below a rule the classical fills on the same axes,
    each with the front trials that beat it on every objective."""
    keys = sorted({k for row in rows for k in row.params})
    metrics = [o.metric for o in front.objectives]
    header = ["rank", "front", "trial", *keys, *(f"{m} score" for m in metrics), "epochs", "status"]
    lines = [header]
    for rank, row in enumerate(rows, 1):
        mark = "knee" if front.knee is not None and row.trial == front.knee.trial else (
            "yes" if row.front == 0 else "-" if row.front is None else f"{row.front + 1}")
        lines.append([str(rank), mark, row.trial, *(short(row.params.get(k, "-")) for k in keys),
                      *(short(row.scores.get(m)) for m in metrics), str(row.epochs), row.status])
    fill_lines = []
    points = {row.trial.removeprefix("classical:"): row.scores for row in fills if row.status == BASELINE_STATUS}
    beaten = fills_beaten(front, points)
    for name, scores in points.items():
        verdict = f"beaten on every objective by {', '.join(beaten[name])}" if beaten[name] else \
            "not beaten on every objective by any front trial"
        fill_lines.append(["-", "fill", f"classical:{name}", *("-" for _ in keys),
                           *(short(scores.get(m)) for m in metrics), "-", verdict])
    table = lines + fill_lines
    widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
    text = ["  ".join([cell.ljust(width) for cell, width in zip(line, widths)] + [line[-1]]).rstrip()
            for line in table]
    if fill_lines:
        text.insert(1 + len(lines) - 1, "-" * max(len(line) for line in text))
    return "\n".join(text)


def describe(front: Front, finished: int) -> str:
    """One paragraph: how many trials are on the front, its knee, and the hypervolume with its reference."""
    metrics = ", ".join(f"{o.metric} ({o.mode})" for o in front.objectives)
    if not front.members:
        return (f"No finished trial meets the constraints: no front of {metrics} yet ({finished} finished "
                f"trial(s)).")
    knee_scores = ", ".join(f"{o.metric} {short(front.knee.scores.get(o.metric))}" for o in front.objectives)
    text = (f"Front of {metrics}: {len(front.members)} of {finished} finished trial(s). Knee (best_config.yaml): "
            f"{front.knee.trial} ({knee_scores}).")
    if front.hypervolume is not None:
        where = ", ".join(f"{metric} {short(value)} ({fill})" for metric, (fill, value) in front.reference.items())
        text += (f" Hypervolume {front.hypervolume:.4g} against the worst classical fill on each axis: {where}.")
    return text
