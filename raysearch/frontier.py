"""Pareto fronts of trials: which trials no other beats on every objective, how spread out they are, the
volume they cover, and the one a user gets when asked for a single answer.

A GAN's fidelity (PSNR) and realism (a judge's proxy) trade against each other (Blau & Michaeli 2018, "The
Perception-Distortion Tradeoff"): the answer to a search over both is the set of non-dominated trials, read
as points against that boundary, not one winner. These functions are the arithmetic of that answer, shared
by the scheduler that stops trials (rung promotion), the report (front table, hypervolume, knee) and the
benches. numpy only: no Ray, no Optuna.

Conventions shared by every function here:
- `values` is a sequence of points, one per trial, each a sequence of objective values in the order of
  `directions`; `directions` are the project's "min"/"max" strings, one per objective.
- A point is *invalid* when any of its objectives is None, NaN or infinite (a diverged trial, a metric never
  reported, a broken metric that returned -inf). Invalid points are worse than every valid point: they
  form the last front together (none dominates another), never count towards a hypervolume and are never
  the knee. Infinite values are invalid too because a "-inf dB" or "+inf" score is a broken measurement,
  not a trial that beats every other.
- Ties are deterministic: where a rule leaves points equal, the lower index (the earlier trial) comes first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

DIRECTIONS = ("min", "max")

Values = Sequence[Sequence[float | None]]


def check_objectives(metrics: Sequence[str], modes: Sequence[str], owner: str) -> None:
    """Metrics paired with their directions: at least one, as many modes as metrics, none named twice, every
    mode min or max; ValueError naming `owner` (the scheduler or searcher being built)."""
    if not metrics:
        raise ValueError(f"{owner} needs at least one metric")
    if len(modes) != len(metrics):
        raise ValueError(f"{owner}: {len(metrics)} metrics {list(metrics)} for {len(modes)} modes {list(modes)}")
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"{owner}: metrics {list(metrics)} name one metric twice")
    for mode in modes:
        if mode not in DIRECTIONS:
            raise ValueError(f"{owner}: mode {mode!r} is not one of {DIRECTIONS}")


def objective_value(value: object) -> float:
    """A reported objective as a float: NaN (invalid) for None, a bool, or anything that is not a number."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def is_valid(point: Sequence[float | None]) -> bool:
    """Every objective of the point is a finite number."""
    return all(math.isfinite(objective_value(v)) for v in point)


def as_losses(values: Values, directions: Sequence[str]) -> np.ndarray:
    """The points as an (n, m) float array in which every objective is minimised (max objectives negated).

    None becomes NaN; a point of the wrong length or an unknown direction is a ValueError.
    """
    for direction in directions:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction {direction!r} is not one of {DIRECTIONS}")
    m = len(directions)
    if m == 0:
        raise ValueError("at least one objective direction is needed")
    rows = []
    for i, point in enumerate(values):
        if len(point) != m:
            raise ValueError(f"point {i} has {len(point)} values for {m} objectives")
        rows.append([math.nan if v is None else float(v) for v in point])
    losses = np.array(rows, dtype=float).reshape(len(rows), m)
    signs = np.array([1.0 if d == "min" else -1.0 for d in directions])
    return losses * signs


def valid_mask(losses: np.ndarray) -> np.ndarray:
    """Which points have every objective finite."""
    return np.isfinite(losses).all(axis=1)


def dominates(losses: np.ndarray) -> np.ndarray:
    """dominance[i, j]: point i dominates point j (no worse on every objective, better on one).

    Only meaningful between valid points; callers keep invalid points out.
    """
    a = losses[:, None, :]
    b = losses[None, :, :]
    return (a <= b).all(axis=2) & (a < b).any(axis=2)


def nondominated_fronts(values: Values, directions: Sequence[str]) -> list[list[int]]:
    """The points sorted into fronts of indices (Deb et al. 2002, NSGA-II's non-dominated sorting).

    The first front holds the points no other point dominates; each later front the points dominated only
    by points of earlier fronts. Equal points dominate neither other, so duplicates share a front. Invalid
    points (see the module docstring) form one last front of their own. Indices ascend within a front.
    Quadratic in the number of points, which is fine for a search's few hundred trials.
    """
    losses = as_losses(values, directions)
    valid = np.flatnonzero(valid_mask(losses))
    invalid = np.flatnonzero(~valid_mask(losses))
    fronts: list[list[int]] = []
    if valid.size:
        dominance = dominates(losses[valid])
        remaining = np.ones(valid.size, dtype=bool)
        while remaining.any():
            # A remaining point is in this front when no remaining point dominates it.
            dominated = (dominance & remaining[:, None]).any(axis=0)
            front = remaining & ~dominated
            fronts.append([int(i) for i in valid[front]])
            remaining &= ~front
    if invalid.size:
        fronts.append([int(i) for i in invalid])
    return fronts


def crowding_distances(values: Values, directions: Sequence[str], indices: Sequence[int]) -> dict[int, float]:
    """NSGA-II's crowding distance of each of `indices` (usually one front) among those points.

    Deb et al. (2002, "A fast and elitist multiobjective genetic algorithm: NSGA-II"): per objective, sort the
    members; the two boundary members get infinity, each other member adds the gap between its two
    neighbours divided by the objective's range over the members. A larger distance is a less crowded, more
    diverse point. Details that paper leaves open, decided here:
    - With one or two (valid) members every member is a boundary: all infinite.
    - An objective on which every member is equal tells nothing about spread: it is skipped (no boundary).
    - Members tied at an extreme: only one is the boundary, the lowest index at the low end and the highest
      index at the high end (a stable sort by value, then index).
    - Invalid members get 0.0 and take no part in the sorting.
    """
    losses = as_losses(values, directions)
    members = [int(i) for i in indices]
    distances = {i: 0.0 for i in members}
    finite = [i for i in members if np.isfinite(losses[i]).all()]
    if len(finite) <= 2:
        return {i: (math.inf if i in finite else 0.0) for i in members}
    points = losses[finite]
    for k in range(points.shape[1]):
        column = points[:, k]
        span = float(column.max() - column.min())
        if span == 0.0:
            continue
        order = sorted(range(len(finite)), key=lambda r: (column[r], finite[r]))
        distances[finite[order[0]]] = math.inf
        distances[finite[order[-1]]] = math.inf
        for before, here, after in zip(order, order[1:], order[2:]):
            distances[finite[here]] += float(column[after] - column[before]) / span
    return distances


def promotion_order(values: Values, directions: Sequence[str]) -> list[int]:
    """Every index, best first: by front, then by crowding distance (descending) within a front, then by
    index. This is the NSGA-II ranking that multi-objective successive halving promotes by (Schmucker et al.
    2021, "Multi-objective Asynchronous Successive Halving"): the top ceil(n / rf) of this order continue.
    Invalid points come last, by index.
    """
    order: list[int] = []
    for front in nondominated_fronts(values, directions):
        distances = crowding_distances(values, directions, front)
        order.extend(sorted(front, key=lambda i: (-distances[i], i)))
    return order


def hypervolume(values: Values, directions: Sequence[str], reference: Sequence[float]) -> float:
    """The volume of objective space the points dominate, bounded by `reference` (Zitzler & Thiele 1998).

    Convention: the union over the points p strictly better than the reference on every objective of the box
    between p and the reference; for "max" objectives the reference is a lower bound (e.g. the worst
    acceptable PSNR), for "min" objectives an upper bound. Points not strictly better than the reference on
    every objective, and invalid points, contribute nothing; no such point gives 0.0. Dominated points and
    duplicates change nothing. Exact: a sweep in 2-D, slicing along the last objective in more dimensions
    (While et al. 2006, "A faster algorithm for calculating hypervolume": HSO), fine for a few hundred
    points and a handful of objectives.
    """
    losses = as_losses(values, directions)
    if len(reference) != losses.shape[1]:
        raise ValueError(f"reference has {len(reference)} values for {losses.shape[1]} objectives")
    ref = as_losses([reference], directions)[0]
    if not np.isfinite(ref).all():
        raise ValueError(f"reference {list(reference)} must be finite")
    inside = losses[valid_mask(losses)]
    inside = inside[(inside < ref).all(axis=1)]
    return _volume(inside, ref)


def _volume(points: np.ndarray, ref: np.ndarray) -> float:
    """The volume dominated by `points` (all strictly inside the reference box), every objective minimised."""
    if points.shape[0] == 0:
        return 0.0
    if points.shape[1] == 1:
        return float(ref[0] - points[:, 0].min())
    if points.shape[1] == 2:
        return _volume_2d(points, ref)
    # Slice along the last objective: between two consecutive levels, the cross-section is the (m-1)-D
    # volume of the points at or below the lower level.
    points = points[np.argsort(points[:, -1], kind="stable")]
    levels = points[:, -1]
    total = 0.0
    for i in range(points.shape[0]):
        upper = levels[i + 1] if i + 1 < points.shape[0] else ref[-1]
        height = float(upper - levels[i])
        if height > 0.0:
            total += height * _volume(points[: i + 1, :-1], ref[:-1])
    return total


def _volume_2d(points: np.ndarray, ref: np.ndarray) -> float:
    """The 2-D sweep: by the first objective ascending, each point adds the strip from its first objective to
    the reference's, as high as its second objective improves on every point before it."""
    order = np.lexsort((points[:, 1], points[:, 0]))
    xs, ys = points[order, 0], points[order, 1]
    best_before = np.minimum.accumulate(np.concatenate(([ref[1]], ys[:-1])))
    return float(np.sum((ref[0] - xs) * np.maximum(best_before - ys, 0.0)))


def knee(values: Values, directions: Sequence[str], indices: Sequence[int] | None = None) -> int:
    """The one member of `indices` (default: the first front) to give as the single best config.

    Rule: normalise each objective to [0, 1] over the valid members (0 = the best member's value, 1 = the
    worst's; an objective on which all members are equal is 0 for all) and take the member with the smallest
    sum of normalised objectives. On a 2-D front the two extremes normalise to (0, 1) and (1, 0), so this is
    the member farthest from the line joining the extremes on the ideal point's side: the knee of Das (1999,
    "On characterizing the knee of the Pareto curve") and Deb & Gupta (2011, "Understanding knee points in
    bicriteria problems"), the point where gaining on one objective starts to cost most on the other. In
    N-D it is the member farthest from the hyperplane through the normalised extremes. On a concave front no
    interior member beats the extremes by this measure and an extreme is returned.
    Ties, including a front of two members (both extremes sum to 1): the member best on the first objective,
    then the second, ..., then the lower index; so the order the objectives are declared in is the
    priority. One member: that member. Invalid members never; no valid member is a ValueError.
    """
    losses = as_losses(values, directions)
    if indices is None:
        fronts = nondominated_fronts(values, directions)
        members = fronts[0] if fronts else []
    else:
        members = [int(i) for i in indices]
    members = [i for i in members if np.isfinite(losses[i]).all()]
    if not members:
        raise ValueError("no member with every objective finite to choose a knee from")
    points = losses[members]
    low, high = points.min(axis=0), points.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    normalised = (points - low) / span
    scores = normalised.sum(axis=1)
    # Rounded so that sums equal but for float error (the two extremes: 0 + 1 and 1 + 0) tie as documented.
    best = min(range(len(members)), key=lambda r: (round(float(scores[r]), 12), *points[r], members[r]))
    return members[best]
