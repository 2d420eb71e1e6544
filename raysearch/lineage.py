"""Who copied whom in a PBT search, and the schedule the winner's weights were trained under, from the trials'
own results (each trial's result.json, or Tune's metrics dataframe of it); without Ray.

A trial that restores another trial's checkpoint (PBT's exploit) says so in its
first report after it: `pbt/copied_from` (the donor's trial directory) and
`pbt/copied_checkpoint` (which of its checkpoints). Every report of a PBT trial
carries `schedule/<key>`, the mutated values it trained that epoch under. A
trial's state at any report is then traced back: its own reports down to the
copy, then the donor's reports down to the checkpoint it copied (found by
Tune's `checkpoint_dir_name` in the donor's results), and so on to a first
member. The epochs and values met on the way are the schedule that produced
those weights: what `best_config.yaml` records and `raysearch.train` replays.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raysearch.mutations import MUTABLE_KEYS, SCHEDULE_PREFIX, Schedule, typed

POPULATION_LOG = "pbt_population.jsonl"  # every result of a PBT search, in arrival order (pbt_scheduler.PopulationLog)
COPIED_FROM = "pbt/copied_from"
COPIED_CHECKPOINT = "pbt/copied_checkpoint"
CHECKPOINT_DIR_NAME = "checkpoint_dir_name"  # Tune's: the trial's checkpoint reported with a result


def copy_marks(checkpoint_path: str | None, trial_dir: str) -> dict[str, str]:
    """What a trial adds to its first report after restoring `checkpoint_path`: {} for its own checkpoint (a
    resume), the donor and checkpoint names for another trial's (a PBT exploit). Tune keeps a one-process trial's
    checkpoints as <trial dir>/checkpoint_NNNNNN, on a disk or at a URI."""
    if not checkpoint_path:
        return {}
    path = Path(str(checkpoint_path).rstrip("/"))
    if path.parent.name == Path(trial_dir.rstrip("/")).name:
        return {}
    return {COPIED_FROM: path.parent.name, COPIED_CHECKPOINT: path.name}


@dataclass(frozen=True)
class Copy:
    """One exploit: `trial` went on from `donor`'s checkpoint of epoch `epoch`, under `values`."""

    trial: str
    donor: str
    epoch: int  # the donor's epoch copied: the trial's next report is epoch + 1
    was_at: int | None  # the trial's own last epoch before the copy (None: it had reported nothing)
    values: dict[str, Any]  # the mutated values it went on with


def clean(result: dict[str, Any]) -> dict[str, Any]:
    """A result row as plain Python: numpy scalars (a dataframe's) as numbers, its NaN holes (a row without a
    column) left out."""
    plain = {k: v.item() if hasattr(v, "item") and not isinstance(v, (str, bytes)) else v for k, v in result.items()}
    return {k: v for k, v in plain.items() if not (isinstance(v, float) and math.isnan(v))}


LOGGED = ("epoch", CHECKPOINT_DIR_NAME, "time_this_iter_s", "iterations_since_restore", "diverged")


def log_entry(trial_path: str, result: dict[str, Any]) -> str:
    """One line of the population log: the trial's directory and the parts of its result the lineage reads."""
    kept = {key: value for key, value in result.items()
            if key in LOGGED or key.startswith((SCHEDULE_PREFIX, "pbt/", "score/"))}
    return json.dumps({"trial": Path(str(trial_path)).name, **kept}, default=str)


def read_population_log(text: str | None) -> dict[str, list[dict[str, Any]]]:
    """trial directory -> its results in order, from a population log (a half-written last line skipped)."""
    histories: dict[str, list[dict[str, Any]]] = {}
    for line in (text or "").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("trial"), str):
            histories.setdefault(entry.pop("trial"), []).append(entry)
    return histories


def result_histories(results: Any) -> dict[str, list[dict[str, Any]]]:
    """trial directory -> its results in order, from a Tune ResultGrid (each Result's metrics dataframe)."""
    histories = {}
    for result in results:
        frame = getattr(result, "metrics_dataframe", None)
        if result.path and frame is not None and len(frame):
            histories[Path(result.path).name] = [clean(row) for row in frame.to_dict("records")]
    return histories


def schedule_values(result: dict[str, Any]) -> dict[str, Any]:
    """The `schedule/<key>` values of one report, by key, each as its config field's type."""
    return {name[len(SCHEDULE_PREFIX):]: typed(name[len(SCHEDULE_PREFIX):], value) for name, value in result.items()
            if name.startswith(SCHEDULE_PREFIX) and name[len(SCHEDULE_PREFIX):] in MUTABLE_KEYS
            and isinstance(value, (int, float))}


def copies(trial: str, history: list[dict[str, Any]]) -> list[Copy]:
    """Every exploit of `trial`, in order, from its results."""
    found, previous = [], None
    for result in map(clean, history):
        if COPIED_FROM in result and isinstance(result.get("epoch"), (int, float)):
            found.append(Copy(trial, str(result[COPIED_FROM]), int(result["epoch"]) - 1, previous,
                              schedule_values(result)))
        if isinstance(result.get("epoch"), (int, float)):
            previous = int(result["epoch"])
    return found


def describe_copies(found: list[Copy]) -> str:
    """e.g. `wgan_a1@2, wgan_c3@4` (donor@epoch), '' for a trial that never copied."""
    return ", ".join(f"{c.donor}@{c.epoch}" for c in found)


@dataclass(frozen=True)
class Segment:
    """Epochs first..last of a lineage, trained by `trial` (the one whose reports they are)."""

    trial: str
    first: int
    last: int


def trace(trial: str, histories: dict[str, list[dict[str, Any]]],
          upto: int | None = None) -> tuple[dict[int, dict[str, Any]], list[Segment]]:
    """({epoch: its schedule values}, [who trained which epochs, oldest first]) of the weights `trial` held at its
    report `upto` (an index in its history; default its last). Stops where a donor's results do not reach."""
    per_epoch: dict[int, dict[str, Any]] = {}
    segments: list[Segment] = []
    current, index, below = trial, upto, math.inf
    visited: set[tuple[str, int]] = set()
    while current in histories:
        history = [clean(r) for r in histories[current]]
        index = len(history) - 1 if index is None else index
        last_epoch = None
        jump = None
        while index >= 0:
            result = history[index]
            epoch = result.get("epoch")
            if isinstance(epoch, (int, float)) and int(epoch) < below:
                below = int(epoch)
                per_epoch[below] = schedule_values(result)
                last_epoch = last_epoch if last_epoch is not None else below
                if COPIED_FROM in result:  # the epochs before this one are the donor's
                    jump = (str(result[COPIED_FROM]), str(result.get(COPIED_CHECKPOINT, "")))
                    break
            index -= 1
        if last_epoch is not None:
            segments.append(Segment(current, below, last_epoch))
        if jump is None or (jump in visited):
            break
        visited.add(jump)
        donor, checkpoint = jump
        donor_history = histories.get(donor, [])
        index = next((i for i, r in enumerate(donor_history) if r.get(CHECKPOINT_DIR_NAME) == checkpoint), None)
        if index is None:
            break
        current = donor
    segments.reverse()
    return per_epoch, segments


def schedule_of(trial: str, histories: dict[str, list[dict[str, Any]]]) -> Schedule:
    """The schedule `trial`'s final weights were trained under: its first epoch's values at 0, then each change
    at the completed epochs after which it took effect (mutations.Schedule, as raysearch.train replays it)."""
    per_epoch, _ = trace(trial, histories)
    changes: list[tuple[int, dict[str, Any]]] = []
    previous: dict[str, Any] = {}
    for epoch in sorted(per_epoch):
        values = per_epoch[epoch]
        changed = {k: v for k, v in values.items() if previous.get(k) != v}
        if changed:
            changes.append((epoch - 1 if changes else 0, changed))
        previous = {**previous, **values}
    tracked = tuple(sorted({k for _, values in changes for k in values}))
    return Schedule(tuple(changes), tracked)


# ---------------------------------------------------------------- shown


def lineage_lines(histories: dict[str, list[dict[str, Any]]], winner: str | None) -> list[str]:
    """`analyze --lineage`: every copy (who copied whom at which epoch, with the values it went on with), then the
    winner's lineage (who trained which of its epochs) and schedule."""
    lines = []
    every = sorted((c for trial, history in histories.items() for c in copies(trial, history)),
                   key=lambda c: (c.epoch, c.trial))
    if not every:
        lines.append("No trial copied another (no PBT exploit in this experiment).")
    else:
        lines.append(f"{len(every)} exploit(s): trial <- donor at epoch (the trial's own epoch before), new values")
        for c in every:
            values = ", ".join(f"{k}={_short(v)}" for k, v in sorted(c.values.items()))
            was = "" if c.was_at is None else f" (was at {c.was_at})"
            lines.append(f"  {c.trial} <- {c.donor} @ epoch {c.epoch}{was}: {values}")
    if winner is not None and winner in histories:
        _, segments = trace(winner, histories)
        lines.append(f"The winner {winner}'s weights: " + " -> ".join(
            f"{s.trial} epochs {s.first}-{s.last}" for s in segments))
        schedule = schedule_of(winner, histories)
        lines.append("Its schedule (from epoch: values):")
        for epoch, change in schedule.changes:
            lines.append(f"  {epoch}: " + ", ".join(f"{k}={_short(v)}" for k, v in sorted(change.items())))
    return lines


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def draw_lineage(histories: dict[str, list[dict[str, Any]]], winner: str | None, path: Path) -> Path:
    """A PNG of the population over epochs: one row per trial, a line where it trained, an arrow from the donor's
    row where it copied, the winner's lineage in red."""
    from PIL import Image, ImageDraw  # only for the picture

    names = sorted(histories)
    epochs = [int(r["epoch"]) for h in histories.values() for r in map(clean, h)
              if isinstance(r.get("epoch"), (int, float))]
    top = max(epochs, default=1)
    left, right, row_height, margin = 200, 30, 28, 40
    width = max(480, left + right + 40 * top)
    height = margin * 2 + row_height * len(names)
    image = Image.new("RGB", (width, height), "white")
    canvas = ImageDraw.Draw(image)
    x = lambda epoch: left + (width - left - right) * epoch / top  # noqa: E731
    y = {name: margin + row_height * i + row_height // 2 for i, name in enumerate(names)}
    for epoch in range(top + 1):
        canvas.line([(x(epoch), margin - 10), (x(epoch), height - margin + 10)], fill=(225, 225, 225))
        canvas.text((x(epoch) - 3, height - margin + 14), str(epoch), fill="black")
    canvas.text((left, 8), "epoch ->  (arrow: a trial copies a donor's checkpoint)", fill="black")
    winning = set()
    if winner in histories:
        winning = {(s.trial, e) for s in trace(winner, histories)[1] for e in range(s.first, s.last + 1)}
    for name in names:
        canvas.text((8, y[name] - 6), name[-24:], fill="black")
        for result in map(clean, histories[name]):
            epoch = result.get("epoch")
            if not isinstance(epoch, (int, float)):
                continue
            epoch = int(epoch)
            colour = (200, 30, 30) if (name, epoch) in winning else (60, 90, 160)
            canvas.line([(x(epoch - 1), y[name]), (x(epoch), y[name])], fill=colour, width=4)
        for c in copies(name, histories[name]):
            if c.donor in y:
                canvas.line([(x(c.epoch), y[c.donor]), (x(c.epoch), y[name])], fill=(20, 150, 60), width=2)
                tip = y[name] + (-6 if y[name] > y[c.donor] else 6)
                canvas.polygon([(x(c.epoch) - 4, tip), (x(c.epoch) + 4, tip), (x(c.epoch), y[name])],
                               fill=(20, 150, 60))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
