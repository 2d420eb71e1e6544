"""The epoch loop of one trial, which knows nothing of Ray (STYLE: 5).

`run_trial(config, report, checkpoint=..., logdir=..., worker=...)` takes a
`report(metrics, checkpoint_dir)` callable and an optional checkpoint directory
to resume from. Every epoch: train (loop.epoch), validate the fixed subset
(with the generator's weight average when `train.ema_decay` > 0), write
TensorBoard, and report; every `checkpoint_every` epochs the report carries a
full-state checkpoint. A non-finite loss or weight stops the trial cleanly with
`diverged: 1` and the epoch and phase where it happened; the last good
checkpoint stays the trial's latest.

Trials share a process when Tune reuses an actor: `trial_process_scope` makes
each one start from the same process state and leave nothing behind.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from raysearch.checkpoint import load_checkpoint, save_checkpoint
from raysearch.config import ExperimentConfig, config_to_dict
from raysearch.constants import SCORE_WINDOW, score_key
from raysearch.evaluate import reported_metrics
from raysearch.loop.epoch import train_epoch
from raysearch.loop.trial import Worker, Trial, local_worker
from raysearch.loop.validation import validate
from raysearch.mutations import Schedule, tracked_values, with_values
from raysearch.summaries import TrialSummary

Report = Callable[[dict[str, Any], Path | None], None]


# The checkpoint's list of per-epoch validation metrics, from which the scores are computed.
VAL_HISTORY_KEY = "val_history"


def run_trial(
    cfg: ExperimentConfig,
    report: Report,
    *,
    checkpoint: Path | None = None,
    logdir: str | Path | None = None,
    worker: Worker | None = None,
    schedule: Schedule | None = None,
) -> dict[str, Any]:
    """Train `cfg` to `cfg.train.epochs`, calling `report` every epoch; return the last metrics.

    Every report carries, next to each `val/<name>`, its score `score/val/<name>`:
    the mean over the last SCORE_WINDOW epochs (constants.py), which the search
    ranks and stops trials by. The validation history it is computed from is
    part of the checkpoint, so a resumed trial scores as if it had never stopped.

    `schedule` (mutations.Schedule): values the run changes at given epochs (a PBT winner's schedule replayed),
    and keys reported every epoch as `schedule/<key>` (a PBT search's mutated keys).
    """
    worker = worker or local_worker(cfg)
    trial = Trial(cfg, worker)
    val_history: list[dict[str, float]] = []
    if checkpoint is not None:
        state = load_checkpoint(checkpoint)
        trial.restore(state, checkpoint)
        # Checkpoints written before scores existed hold no history: the score then starts at the resume.
        val_history = [dict(entry) for entry in state.get(VAL_HISTORY_KEY, [])]
    summary = TrialSummary(logdir, purge_step=trial.epoch + 1) if logdir and worker.rank == 0 else None
    if summary:
        summary.session_start(config_to_dict(cfg))  # before training: a trial stopped early is listed too
    last: dict[str, Any] = {}
    try:
        while trial.epoch < cfg.train.epochs:
            if schedule is not None and schedule.changes:  # the values in force from this epoch on
                scheduled = with_values(cfg, schedule.values_at(trial.epoch), "schedule")
                if scheduled != trial.cfg:
                    trial.apply_config(scheduled)
            train_logs, diverged_phase = train_epoch(trial)
            if diverged_phase:
                worst = diverged_metrics()
                last = {**worst, **{score_key(k): v for k, v in worst.items()}, "epoch": trial.epoch + 1, "diverged": 1,
                        "diverged_epoch": trial.epoch + 1, "diverged_phase": diverged_phase}
                report(last, None)  # no checkpoint: the last good one stays the latest
                break
            trial.end_epoch()
            val_logs, generated = validate(trial)
            val_history.append(val_logs)
            last = {**train_logs, **val_logs, **recent_scores(val_history), **tracked_values(trial.cfg, schedule),
                    "epoch": trial.epoch, "diverged": 0}
            if summary:
                summary.scalars(last, trial.epoch)
                if cfg.train.preview_images:
                    count = cfg.train.preview_images
                    summary.preview(trial.data.val_images[:count], generated[:count], trial.epoch)
                summary.commit()  # on disk before the report: a stopped trial ends inside it
            save_now = trial.epoch % cfg.train.checkpoint_every == 0 or trial.epoch == cfg.train.epochs
            if save_now:
                with tempfile.TemporaryDirectory(prefix="raysearch-ckpt-") as tmp:
                    state = {**trial.state(), VAL_HISTORY_KEY: val_history}
                    directory = save_checkpoint(state, Path(tmp)) if worker.rank == 0 else None
                    report(last, directory)
            else:
                report(last, None)
    finally:
        if summary:
            if last:
                summary.session_end(success=not last["diverged"])
            summary.close()
    return last


def diverged_metrics() -> dict[str, float]:
    """What a diverged trial reports for each validation metric: its registered worst value (raysearch.metrics),
    so a searcher ranks it last."""
    return {key: metric.diverged for key, metric in reported_metrics().items()}


def recent_scores(val_history: list[dict[str, float]], window: int = SCORE_WINDOW) -> dict[str, float]:
    """`score/<metric>` for every validation metric: its mean over the last `window` epochs (fewer at the start)."""
    recent = val_history[-window:]
    return {score_key(name): sum(entry[name] for entry in recent) / len(recent) for name in recent[-1]}


@contextmanager
def trial_process_scope(threads: int | None) -> Iterator[None]:
    """Run a trial in a process that may run others before and after it (Tune's reused actor).

    On entry, what a trial reads from process-wide torch state is set, not
    inherited: its thread count (`threads`: its CPU share; None keeps the
    process's), gradients on, cuDNN's autotuner and determinism flags at
    torch's defaults. (The global RNG is seeded by the trial itself, from its
    config or its checkpoint.) On exit, whatever it compiled is dropped, so the
    next trial neither reuses nor runs out of torch.compile's cache (8 entries
    per code object by default, after which it silently runs eagerly), and its
    memory is released.
    """
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    torch.set_grad_enabled(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = False
    try:
        yield
    finally:
        torch.compiler.reset()
        gc.collect()  # the trial's networks and optimiser states hold reference cycles (autograd hooks)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        release_freed_memory()
        torch.set_num_threads(previous_threads)


def release_freed_memory() -> None:
    """Hand the memory freed by a finished trial back to the system (glibc's malloc_trim).

    Each trial in a reused Tune actor runs in a new thread, and glibc gives new threads
    their own malloc arenas; what a trial frees there stays in the process unless trimmed, so
    without this an actor's resident memory grew by ~45 MB a trial (bench/overhead.py: 561 MB
    after one trial, 1,091 MB after twelve). A no-op where the C library has no malloc_trim.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)
