"""The fidelity-realism plane of a search: every trial as a point on its first two objectives, the front drawn
through its members (labelled, the knee starred), the classical fills as marked points on the same axes, and a
realism-residual model's `--alpha` sweep as a curve (Blau & Michaeli 2018 read methods as points against the
boundary of this plane). Drawn headless with matplotlib's Agg backend into a PIL image (a PNG, and the same
picture in TensorBoard)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display: a server, a CI machine, a Ray node

import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

from raysearch.front import Front  # noqa: E402
from raysearch.rows import TrialRow  # noqa: E402

FILL_MARKERS = {"mean": "s", "harmonic": "D", "telea": "^", "navier_stokes": "v"}


@dataclass(frozen=True)
class Curve:
    """A model's points along a sweep (e.g. a realism residual's alpha), in order, each labelled."""

    name: str
    points: tuple[tuple[float, float], ...]
    labels: tuple[str, ...]


def draw_front(rows: Sequence[TrialRow], front: Front, fills: dict[str, dict[str, float]] | None = None,
               curves: Sequence[Curve] = (), title: str = "") -> Image.Image:
    """The plane of the front's first two objectives (a third, if any, is left to the table)."""
    x_metric, y_metric = (o.metric for o in front.objectives[:2])
    figure, axes = plt.subplots(figsize=(8, 6), dpi=100)
    try:
        others = [row for row in rows if row.front != 0 and _point(row.scores, x_metric, y_metric)]
        if others:
            xs, ys = zip(*(_point(row.scores, x_metric, y_metric) for row in others))
            axes.scatter(xs, ys, s=28, facecolors="none", edgecolors="0.55", label="other trials (dominated, "
                         "stopped early or outside the constraints)")
        members = sorted((row for row in front.members if _point(row.scores, x_metric, y_metric)),
                         key=lambda row: row.scores[x_metric])
        if members:
            xs, ys = zip(*(_point(row.scores, x_metric, y_metric) for row in members))
            axes.plot(xs, ys, "-", color="tab:blue", linewidth=1, alpha=0.6)
            axes.scatter(xs, ys, s=40, color="tab:blue", label="front")
            for row, x, y in zip(members, xs, ys):
                axes.annotate(row.trial, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
        if front.knee is not None and _point(front.knee.scores, x_metric, y_metric):
            axes.scatter(*_point(front.knee.scores, x_metric, y_metric), s=180, marker="*", color="tab:orange",
                         zorder=5, label=f"knee: {front.knee.trial} (best_config.yaml)")
        for name, row in (fills or {}).items():
            point = _point(row, x_metric, y_metric)
            if point:
                axes.scatter(*point, s=60, marker=FILL_MARKERS.get(name, "x"), color="tab:red", zorder=4)
                axes.annotate(f"fill: {name}", point, textcoords="offset points", xytext=(5, -10), fontsize=7,
                              color="tab:red")
        for curve in curves:
            xs, ys = zip(*curve.points)
            axes.plot(xs, ys, "--", marker=".", color="tab:green", linewidth=1)
            for label, x, y in zip(curve.labels, xs, ys):
                axes.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=6,
                              color="tab:green")
            axes.plot([], [], "--", marker=".", color="tab:green", label=curve.name)
        for objective, set_label in zip(front.objectives[:2], (axes.set_xlabel, axes.set_ylabel)):
            set_label(f"{objective.metric} score ({'higher' if objective.mode == 'max' else 'lower'} is better)")
        axes.set_title(title or f"{len(front.members)} trial(s) on the front", fontsize=10)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=7, loc="best")
        buffer = io.BytesIO()
        figure.tight_layout()
        figure.savefig(buffer, format="png")
    finally:
        plt.close(figure)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _point(scores: dict[str, float], x_metric: str, y_metric: str) -> tuple[float, float] | None:
    x, y = scores.get(x_metric), scores.get(y_metric)
    return (x, y) if x is not None and y is not None else None
