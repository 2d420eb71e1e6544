"""`python -m raysearch.analyze EXPERIMENT`: the ranked trials (or the front), parameter importances, a
side-by-side grid, the fidelity-realism plane, the realism judge.

Reads the experiment's files (see raysearch.experiment), locally or at a
storage URI, finished or still running; Ray is never started.

- The table is the one the search prints at its end (report.py; with several
  objectives the front, front.py), ranked with the search's constraints, and
  the classical fills (raysearch.baselines) of the experiment's data below it
  (and in --json/--csv).
- Importances: raysearch.importances (Optuna's PED-ANOVA on the primary metric).
- `--grid FILE.png`: context, ground truth, then the fills of the top K trials
  (ranked as in the table, the front first; diverged and failed trials left
  out) on the first N images of the validation subset, each from the kept
  checkpoint with the best metric, then the classical fills of those images.
- `--front FILE.png`: every trial on the first two objectives' plane, the front
  drawn and labelled, its knee starred, the classical fills as points, and each
  front trial with a realism residual as its `--alpha` sweep (raysearch.front_plot).
- `--judge`: the realism judge on the top K trials (the front's, with several
  objectives) beside the real centers and the classical fills.

The grid and the plane also go to TensorBoard, run `<experiment>/tensorboard/analysis/`.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensorboardX import SummaryWriter

from models.geometry import mask_context
from raysearch import cli
from raysearch.baselines import filled_images, validation_subset
from raysearch.checkpoint import load_checkpoint
from raysearch.data.dataset import to_float_images
from raysearch.errors import CheckpointError, RaysearchError
from raysearch.evaluate import score_centers
from raysearch.experiment import CHECKPOINT_FILE, MODEL_STATUSES, Experiment, ExperimentError, open_experiment
from raysearch.fill import trained_generator, validation_fills
from raysearch.front import Front, describe, format_front, read_front
from raysearch.front_plot import Curve, draw_front
from raysearch.importances import format_importances, importances
from raysearch.judge import DEFAULT_SEEDS, judge_beside_fills
from raysearch.judge import format_table as judge_table
from raysearch.lineage import copies, draw_lineage, lineage_lines, schedule_of  # PBT hook: --lineage
from raysearch.objectives import FIDELITY_METRIC
from raysearch.pictures import image_grid, labelled
from raysearch.report import format_table
from raysearch.rows import TrialRow, baseline_rows
from raysearch.stability import experiment_rank_stability

ANALYSIS_RUN = "tensorboard/analysis"  # a TensorBoard run of its own: never shares a directory with a trial's writer
GRID_TAG = "analysis/top_trials"
FRONT_TAG = "analysis/front"
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)  # a realism residual's sweep: its L2 path (0) to the model as trained (1)


# ---------------------------------------------------------------- the grid


@dataclasses.dataclass(frozen=True)
class GridTrial:
    trial: str
    rank: int
    epoch: int  # the checkpoint drawn
    value: float | None  # the metric at that epoch
    kept: tuple[int, ...]  # the epochs whose checkpoints were kept


def fill_rows(experiment: Experiment, images, baselines: dict[str, dict[str, float]] | None, log=print):
    """[(label, second line, images)] of the classical fills of the same validation images as the trials' rows."""
    if not baselines:
        return []
    subset = validation_subset(experiment.config().data)[: len(images)]
    if not torch.equal(to_float_images(torch.from_numpy(subset)).to(images.dtype), images):
        log("note: grid: the classical fills are left out (the experiment's data gives other validation images "
            "than the trials')")
        return []
    metric = experiment.metric.split("/")[-1]
    return [(f"classical: {name}", f"{metric} {figures[experiment.metric]:.4g}" if experiment.metric in figures else "",
             filled_images(subset, name).to(images.dtype)) for name, figures in baselines.items()]


def grid_checkpoints(experiment: Experiment, log=print) -> dict[str, tuple[int, dict[str, Any]]]:
    """Per trial that may be drawn: its best readable kept checkpoint (epoch, state), each checked against its
    config before any data is read (a refused one is one CheckpointError line naming it, and no dataset is
    generated for nothing). An unreadable one (still being copied, just dropped) is a note, and the next
    best is tried."""
    found = {}
    for trial in experiment.trials:
        if trial.status not in MODEL_STATUSES:
            continue
        for epoch in trial.best_checkpoints(experiment.metric, experiment.mode):
            try:
                with experiment.storage.local_dir(trial.checkpoint_dir(epoch)) as local:
                    state = load_checkpoint(local)
            except CheckpointError as err:
                log(f"note: grid: {trial.name}: skipping its epoch {epoch} checkpoint ({err})")
                continue
            trained_generator(state, f"{experiment.location}/{trial.checkpoint_dir(epoch)}/{CHECKPOINT_FILE}")
            found[trial.name] = (epoch, state)
            break
    return found


def draw_grid(experiment: Experiment, rows: list[TrialRow], top: int, count: int,
              checkpoints: dict[str, tuple[int, dict[str, Any]]], log=print,
              baselines: dict[str, dict[str, float]] | None = None):
    """The grid as a PIL image, which checkpoint each trial row shows, and how many images it has.

    `checkpoints` are `grid_checkpoints`'. Below the trials, one row per classical fill (`baselines`) of the
    same images."""
    chosen: list[tuple[GridTrial, torch.Tensor]] = []
    images = None  # the first `count` validation images, the same for every row
    for rank, row in enumerate(rows, 1):
        if len(chosen) == top:
            break
        trial = experiment.trial(row.trial)
        if row.trial not in checkpoints:
            why = "no checkpoint yet" if row.status in MODEL_STATUSES else row.status
            log(f"note: grid: #{rank} {row.trial} left out ({why})")
            continue
        epoch, state = checkpoints[row.trial]
        # The trial's own validation (the same subset, noise and batches), so the grid matches its TensorBoard
        # preview pixel for pixel.
        trial_fills = validation_fills(state, f"{experiment.location}/{trial.checkpoint_dir(epoch)}/{CHECKPOINT_FILE}")
        these = trial_fills.real[:count]
        if images is None:
            images = these
        elif images.shape != these.shape or not torch.equal(images, these):
            log(f"note: grid: #{rank} {row.trial} left out (its data.* settings give other validation images)")
            continue
        chosen.append((GridTrial(row.trial, rank, epoch, trial.value_at(epoch, experiment.metric),
                                 trial.checkpoints), trial_fills.filled[:count]))
    if not chosen:
        raise ExperimentError(f"{experiment.location}: --grid: no finished, stopped or running trial has a "
                              "readable checkpoint yet")
    if len(images) < count:
        log(f"note: grid: the validation subset has only {len(images)} images")
    context = mask_context(images)
    fills = fill_rows(experiment, images, baselines, log)
    grid = image_grid([context, images] + [filled for _, filled in chosen] + [filled for _, _, filled in fills])
    metric = experiment.metric.split("/")[-1]
    labels = [("context", ""), ("ground truth", "")] + [
        (f"#{g.rank} {g.trial}", f"epoch {g.epoch}" + (f"  {metric} {g.value:.4g}" if g.value is not None else ""))
        for g, _ in chosen] + [(first, second) for first, second, _ in fills]
    return labelled(grid, labels), [g for g, _ in chosen], len(images)


def judge_top_trials(experiment: Experiment, rows: list[TrialRow], top: int,
                     checkpoints: dict[str, tuple[int, dict[str, Any]]], seeds: int, text, log=print) -> dict[str, Any]:
    """The realism judge on the top `top` trials (each at its `grid_checkpoints` checkpoint) and the classical
    fills, every validation image, the same seeds for every row; the table goes to `text`."""
    methods, images, photos = {}, None, None
    for rank, row in enumerate(rows, 1):
        if len(methods) == top:
            break
        if row.trial not in checkpoints:
            continue
        epoch, state = checkpoints[row.trial]
        fills = validation_fills(state, f"{experiment.location}/{experiment.trial(row.trial).checkpoint_dir(epoch)}",
                                 val_images=0)
        if images is not None and not np.array_equal(images, fills.images):
            log(f"note: judge: #{rank} {row.trial} left out (its data.* settings give other validation images)")
            continue
        images, photos = fills.images, fills.photos
        methods[f"#{rank} {row.trial}"] = fills.filled
    if not methods:
        raise ExperimentError(f"{experiment.location}: --judge: no trial has a readable checkpoint yet")
    results = judge_beside_fills(images, photos, methods, seeds=seeds, log=log)
    print(f"\nRealism judge ({seeds} seeds, {len(images)} validation images; AUC 0.5: cannot be told from real):",
          file=text)
    print(judge_table(results), file=text)
    return {name: result.to_json() for name, result in results.items()}


def alpha_curves(experiment: Experiment, front: Front, checkpoints: dict[str, tuple[int, dict[str, Any]]]) \
        -> list[Curve]:
    """Each front trial with a realism residual, filled at every alpha of ALPHAS: its curve on the plane (the
    validation metrics of its drawn checkpoint, as its validation scores them)."""
    x_metric, y_metric = (objective.metric for objective in front.objectives[:2])
    curves = []
    for row in front.members:
        if row.trial not in checkpoints:
            continue
        epoch, state = checkpoints[row.trial]
        if not (state["config"].get("generator") or {}).get("realism_residual"):
            continue
        where = f"{experiment.location}/{experiment.trial(row.trial).checkpoint_dir(epoch)}/{CHECKPOINT_FILE}"
        points = []
        for alpha in ALPHAS:
            fills = validation_fills(state, where, alpha=alpha)
            values = score_centers(fills.outputs, fills.real, seed=fills.config.train.seed)
            points.append((values[x_metric], values[y_metric]))
        curves.append(Curve(f"{row.trial}: --alpha sweep (epoch {epoch})", tuple(points),
                            tuple(f"alpha {alpha:g}" for alpha in ALPHAS)))
    return curves


def draw_plane(experiment: Experiment, rows: list[TrialRow], front: Front, baselines, checkpoints, path: str,
               text) -> dict[str, Any]:
    """--front: the plane as a PNG and in TensorBoard; what was drawn."""
    curves = alpha_curves(experiment, front, checkpoints)
    name = experiment.location.rstrip("/").rsplit("/", 1)[-1]
    image = draw_front(rows, front, baselines, curves, title=f"{name}: {len(front.members)} trial(s) on the front")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    step = max((t.last.get("epoch", 0) or 0 for t in experiment.trials), default=0)
    event = log_image_to_tensorboard(experiment, image, int(step), FRONT_TAG)
    print(f"\nThe plane of {' and '.join(o.metric for o in front.objectives[:2])}: {path} (also in TensorBoard: run "
          f"analysis, tag {FRONT_TAG})" + (f"; alpha sweeps of {len(curves)} realism-residual trial(s)" if curves
                                           else ""), file=text)
    return {"png": str(Path(path).resolve()), "tensorboard": event, "tag": FRONT_TAG,
            "alpha_curves": {curve.name: list(curve.points) for curve in curves}}


def log_image_to_tensorboard(experiment: Experiment, image, step: int, tag: str = GRID_TAG) -> str:
    """Write a picture (the grid, the plane) to `<experiment>/tensorboard/analysis/` as a new event file;
    return its location."""
    with tempfile.TemporaryDirectory(prefix="raysearch-analysis-") as tmp:
        # A unique suffix: two analyses within the same second would otherwise share an event file
        # name (time and host), and the second upload would replace the first.
        writer = SummaryWriter(logdir=tmp, filename_suffix=f".analysis-{uuid.uuid4().hex[:12]}")
        writer.add_image(tag, np.asarray(image), step, dataformats="HWC")
        writer.close()
        (event,) = Path(tmp).glob("events.out.tfevents.*")
        return experiment.storage.upload(event, f"{ANALYSIS_RUN}/{event.name}")


# ---------------------------------------------------------------- outputs


def rows_json(experiment: Experiment, rows: list[TrialRow]) -> list[dict[str, Any]]:
    out = []
    for rank, row in enumerate(rows, 1):
        trial = experiment.trial(row.trial)
        order = trial.best_checkpoints(experiment.metric, experiment.mode)
        out.append({"rank": rank, "trial": row.trial, "trial_id": trial.trial_id, "status": row.status,
                    "params": row.params, "final": row.final, "best": row.best, "epochs": row.epochs,
                    "checkpoints": list(trial.checkpoints), "best_checkpoint": order[0] if order else None,
                    "diverged_phase": trial.last.get("diverged_phase") if row.status == "diverged" else None})
    return out


def write_csv(path: Path, experiment: Experiment, rows: list[TrialRow], fills: list[TrialRow] = ()) -> None:
    """The ranked trials, then the classical fills (rank empty, status `baseline`)."""
    keys = sorted({k for row in rows for k in row.params})
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", "trial", "status", "epochs", f"{experiment.metric} final",
                         f"{experiment.metric} best", *keys])
        for rank, row in enumerate(rows, 1):
            writer.writerow([rank, row.trial, row.status, row.epochs, _cell(row.final), _cell(row.best),
                             *(_cell(row.params.get(k)) for k in keys)])
        for row in fills:
            writer.writerow(["", row.trial, row.status, "", _cell(row.final), "", *("" for _ in keys)])


def _cell(value: Any) -> Any:
    return "" if value is None else value


def _counts(rows: list[TrialRow]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in counts.items())


def print_rank_stability(experiment: Experiment, text) -> dict[str, Any]:
    """Spearman's rho of the experiment's metric (and PSNR) between two halves of the validation subset."""
    found = experiment_rank_stability(experiment, experiment.metric, also=(FIDELITY_METRIC,))
    figures = ", ".join(f"{name} rho {rho:.3f}" for name, rho in found["rhos"].items())
    print(f"\nRank stability over {len(found['trials'])} trials (their last kept checkpoints), two halves of "
          f"{found['images_per_half']} validation images each: {figures}", file=text)
    return {"images_per_half": found["images_per_half"], "trials": len(found["trials"]), "rho": found["rhos"]}


# ---------------------------------------------------------------- command line


def print_lineage(experiment: Experiment, rows, picture: str, out) -> dict[str, Any]:
    """`--lineage`: every PBT copy and the winner's lineage and schedule (lineage.py), printed and, with a file
    name, drawn; the same as JSON."""
    histories = experiment.histories()
    winner = next((r.trial for r in rows if r.status in MODEL_STATUSES), None)
    print("", file=out)
    for line in lineage_lines(histories, winner):
        print(line, file=out)
    found = {"winner": winner, "schedule": schedule_of(winner, histories).to_yaml() if winner else {},
             "copies": [dataclasses.asdict(c) for trial, history in histories.items() for c in copies(trial, history)]}
    if picture:
        found["png"] = str(draw_lineage(histories, winner, Path(picture)).resolve())
        print(f"Lineage drawn: {picture}", file=out)
    return found


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.ArgumentParser(
        prog="python -m raysearch.analyze",
        description="Rank an experiment's trials, estimate parameter importances and draw the top trials side "
        "by side. Reads the experiment's files (finished or running, local or at a storage URI); never starts Ray.",
    )
    parser.add_argument("experiment", help="experiment directory or URI, e.g. runs/tune/wgan-20260101-120000 or s3://bucket/tune/NAME")
    parser.add_argument("--json", action="store_true", help="print one JSON document (trials, importances, grid) instead of text")
    parser.add_argument("--csv", metavar="FILE", help="also write the ranked table to FILE as CSV")
    parser.add_argument("--grid", metavar="FILE.png", help="draw the top trials on the same validation images into FILE.png "
                        "(and into TensorBoard, run tensorboard/analysis of the experiment)")
    parser.add_argument("--front", metavar="FILE.png", help="draw every trial on the first two objectives' plane, the front "
                        "and the classical fills into FILE.png (and into TensorBoard); several objectives only")
    parser.add_argument("--top", type=int, metavar="K", help="trials in the grid and the judge (default 3; with several "
                        "objectives, the whole front)")
    parser.add_argument("--judge", action="store_true",
                        help="judge the top K trials' fills of every validation image beside the real centers and the "
                        "classical fills (raysearch/judge.py: a classifier two-sample test; ~25 s of CPU per row)")
    parser.add_argument("--judge-seeds", type=cli.judge_seeds, default=DEFAULT_SEEDS, metavar="N",
                        help=f"the judge's seeds per row (default {DEFAULT_SEEDS})")
    parser.add_argument("--images", type=int, default=8, metavar="N", help="validation images in the grid (default 8)")
    parser.add_argument("--lineage", nargs="?", const="", metavar="FILE.png",
                        help="a PBT search: which trial copied which at which epoch, and the winner's schedule "
                        "(and with FILE.png, a picture of it)")
    parser.add_argument("--rank-stability", action="store_true",
                        help="score every trial's last checkpoint on two disjoint halves of the validation subset and "
                        "print Spearman's rho between the two rankings (near 1: the metric ranks generators, not noise)")
    args = parser.parse_args(argv)
    if args.top is not None and args.top < 1:
        parser.error(f"--top must be >= 1, got {args.top}")
    if not 1 <= args.images <= 64:
        parser.error(f"--images must be 1 to 64, got {args.images}")
    for flag, value in (("--grid", args.grid), ("--front", args.front), ("--lineage", args.lineage or None)):
        if value and not value.lower().endswith(".png"):
            parser.error(f"{flag} {value}: the picture is written as PNG only; give a file name ending in .png")
    # Output files are checked before the experiment is read: a long read must not end in a traceback.
    for flag, value in (("--csv", args.csv), ("--grid", args.grid), ("--front", args.front),
                        ("--lineage", args.lineage or None)):
        if value is None:
            continue
        target = Path(value)
        if target.is_dir():
            parser.error(f"{flag} {value}: is a directory; give a file name to write")
        existing = next(p for p in (target.parent.absolute(), *target.parent.absolute().parents) if p.exists())
        if not existing.is_dir():
            parser.error(f"{flag} {value}: {existing} is a file, not a directory")
        if not os.access(existing, os.W_OK):
            parser.error(f"{flag} {value}: cannot write under {existing} (permission denied)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    text = sys.stdout if not args.json else io.StringIO()  # with --json, the text report is not printed
    note = lambda message: print(message, file=sys.stderr)  # noqa: E731
    document: dict[str, Any] = {}
    try:
        experiment = open_experiment(args.experiment)
        multi = len(experiment.objectives) > 1
        if args.front and not multi:
            raise ExperimentError(f"--front: {experiment.location} searched one objective ({experiment.metric}); "
                                  "the plane needs a space with several objectives")
        # Before anything reads the data: a refused checkpoint is one line, not a dataset generated for nothing.
        wanted = args.grid or args.judge or args.front
        checkpoints = grid_checkpoints(experiment, note) if wanted else {}
        baselines, constraints = experiment.fills(note)
        rows = experiment.rows(constraints)
        if not rows:
            raise ExperimentError(f"{experiment.location}: the experiment has no trials yet")
        fills = baseline_rows(baselines, experiment.metric) if baselines else []
        floor = next((c.bound for c in constraints if c.metric == FIDELITY_METRIC and c.op == ">="), None)
        document = {"experiment": experiment.location, "space": experiment.record["space"], "metric": experiment.metric,
                    "mode": experiment.mode, "objectives": {o.metric: o.mode for o in experiment.objectives},
                    "constraints": [c.name for c in constraints], "max_epochs": experiment.settings.max_epochs,
                    "trials": rows_json(experiment, rows), "baselines": baselines, "psnr_floor": floor,
                    "importances": None, "grid": None}
        front = read_front(rows, experiment.objectives, baselines) if multi else None
        print_table(experiment, rows, fills, front, text)
        if front is not None:
            document["front"] = {"trials": [row.trial for row in front.members],
                                 "knee": front.knee.trial if front.knee else None, "hypervolume": front.hypervolume,
                                 "reference": front.reference}
        skipped = sum(t.skipped_lines for t in experiment.trials)
        if skipped:
            note(f"note: skipped {skipped} unreadable result.json line(s) (a running trial's last line is written as we read)")
        if args.csv:
            Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
            write_csv(Path(args.csv), experiment, rows, fills)
            print(f"\nTable written to {args.csv}", file=text)
        if args.lineage is not None:  # PBT hook
            document["lineage"] = print_lineage(experiment, rows, args.lineage, text)
        if not experiment.finished():
            errors = [r.trial for r in rows if r.status == "error"]
            hint = f"; see {experiment.location}/{errors[0]}/error.txt" if errors else ""
            raise ExperimentError(f"{experiment.location}: no finished trial yet ({_counts(rows)}){hint}")
        found = importances(experiment)
        document["importances"] = found.to_json()
        print(f"\n{format_importances(found, experiment)}", file=text)
        if args.rank_stability:
            document["rank_stability"] = print_rank_stability(experiment, text)
        top = args.top or (max(1, len(front.members)) if front is not None else 3)
        if args.grid:
            document["grid"] = print_grid(experiment, rows, top, args, checkpoints, baselines, text, note)
        if args.front:
            document["plane"] = draw_plane(experiment, rows, front, baselines, checkpoints, args.front, text)
        if args.judge:
            document["judge"] = judge_top_trials(experiment, rows, top, checkpoints, args.judge_seeds, text, note)
    except RaysearchError as err:
        if args.json and document:
            print(json.dumps({**document, "error": str(err)}, indent=2, default=str))
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(document, indent=2, default=str))
    return 0


def print_table(experiment: Experiment, rows: list[TrialRow], fills: list[TrialRow], front: Front | None,
                text) -> None:
    """The table the search printed at its end: ranked by the metric, or the front of several objectives."""
    if front is None:
        print(f"Trials of {experiment.location}, ranked by {experiment.metric} ({experiment.mode}): {_counts(rows)}"
              + ("; below the rule, the classical fills of the same validation images" if fills else ""), file=text)
        print(format_table(rows, experiment.metric, fills), file=text)
        return
    print(f"Trials of {experiment.location}: {_counts(rows)}; the front among the finished trials first"
          + ("; below the rule, the classical fills as points on the same axes" if fills else ""), file=text)
    print(format_front(rows, front, fills), file=text)
    print(f"\n{describe(front, sum(row.status == 'finished' for row in rows))}", file=text)


def print_grid(experiment: Experiment, rows: list[TrialRow], top: int, args, checkpoints, baselines, text,
               note) -> dict[str, Any]:
    """--grid: the picture as a PNG and in TensorBoard, and which checkpoint each row shows."""
    image, shown, count = draw_grid(experiment, rows, top, args.images, checkpoints, log=note, baselines=baselines)
    Path(args.grid).parent.mkdir(parents=True, exist_ok=True)
    image.save(args.grid)
    step = max((t.last.get("epoch", 0) or 0 for t in experiment.trials), default=0)
    event = log_image_to_tensorboard(experiment, image, int(step))
    print(f"\nGrid of the top {len(shown)} trial(s) on {count} validation images: {args.grid}", file=text)
    for g in shown:
        kept = ", ".join(f"epoch {e}" for e in g.kept)
        value = f" ({experiment.metric} {g.value:.4g})" if g.value is not None else ""
        print(f"  #{g.rank} {g.trial}: best kept checkpoint epoch {g.epoch}{value}; kept: {kept}", file=text)
    print(f"  also in TensorBoard: tensorboard --logdir {experiment.location}/tensorboard  (run analysis, "
          f"tag {GRID_TAG})", file=text)
    return {"png": str(Path(args.grid).resolve()), "tensorboard": event, "tag": GRID_TAG, "images": count,
            "trials": [dataclasses.asdict(g) for g in shown]}


if __name__ == "__main__":
    raise SystemExit(main())
