"""TensorBoard output of one trial: scalars, the preview grid, hparams.

Written with tensorboardX from rank 0 straight to the trial's directory. Images
never travel through Ray's metric dict (in Ray 2.60 a numpy array in a report
that also carries a checkpoint crashes the Train controller).

The hparams summary goes into the same run as the per-epoch scalars, with the
same metric tags, so TensorBoard's HParams dashboard shows each trial's final
`val/*` values next to its hyperparameters (tensorboardX's `add_hparams` would
open a second writer in a sub-directory instead).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from tensorboardX import SummaryWriter
from tensorboardX.summary import hparams

from models.geometry import mask_context, paste_center
from raysearch.config import flatten
from raysearch.storage import Storage, is_uri


class TrialSummary:
    """The event files of one trial. `purge_step` drops events a resumed run will redo.

    `commit()` makes everything written so far durable; the loop calls it
    before each report, because a trial the scheduler stops is killed right
    after reporting, and tensorboardX's `flush()` does not drain its writer
    thread's queue (only `close()` does). Each commit therefore closes the
    writer and the next write opens a new event file, numbered so that the
    files of a trial sort in the order they were written.

    `logdir` is a local directory or a storage URI (s3://, gs://, ...): for a
    URI the events are written to a local directory and copied to the URI at
    every commit, so a trial on any node lands in the experiment's tree.
    """

    def __init__(self, logdir: str | Path, purge_step: int | None = None) -> None:
        self.remote = Storage(str(logdir)) if is_uri(str(logdir)) else None
        local = Path(tempfile.mkdtemp(prefix="raysearch-tb-")) if self.remote else Path(logdir)
        local.mkdir(parents=True, exist_ok=True)
        self.logdir = local
        self._purge_step = purge_step
        self._files = 0
        self._writer: SummaryWriter | None = None

    @property
    def writer(self) -> SummaryWriter:
        if self._writer is None:
            self._writer = SummaryWriter(
                logdir=str(self.logdir), purge_step=self._purge_step if self._files == 0 else None,
                filename_suffix=f".{self._files:05d}",
            )
            self._files += 1
        return self._writer

    def commit(self) -> None:
        """Everything written so far on disk (and at the URI), before the trial reports."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.remote:
            for event_file in self.logdir.iterdir():
                self.remote.upload(event_file, event_file.name)

    def scalars(self, metrics: dict[str, Any], epoch: int) -> None:
        for tag, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(tag, value, epoch)

    def preview(self, images: torch.Tensor, generated_center: torch.Tensor, epoch: int) -> None:
        """Three rows like the seeds' figures: context, ground truth, generated pasted into the context.

        `images` and `generated_center` are in [-1, 1]; the same validation
        images and the same noise are used every epoch, so grids compare.
        """
        context = mask_context(images)
        rows = [context, images, paste_center(context, generated_center.to(images.dtype))]
        grid = image_grid(rows)
        self.writer.add_image("preview/context_truth_generated", grid, epoch)

    def hyperparameters(self, values: dict[str, Any], final_metrics: dict[str, float]) -> None:
        experiment, start, end = hparams(_hparam_values(values), final_metrics)
        for summary in (experiment, start, end):
            self.writer.file_writer.add_summary(summary)

    def close(self) -> None:
        self.commit()
        if self.remote:
            shutil.rmtree(self.logdir, ignore_errors=True)


def image_grid(rows: list[torch.Tensor], padding: int = 2) -> torch.Tensor:
    """Rows of [-1, 1] NCHW image batches -> one CHW [0, 1] grid (torchvision's make_grid, minus torchvision)."""
    count, channels, height, width = rows[0].shape
    grid = torch.ones(channels, padding + len(rows) * (height + padding), padding + count * (width + padding))
    for r, batch in enumerate(rows):
        for c, image in enumerate(batch.detach().float().cpu()):
            top, left = padding + r * (height + padding), padding + c * (width + padding)
            grid[:, top : top + height, left : left + width] = (image.clamp(-1, 1) + 1) / 2
    return grid


def _hparam_values(values: dict[str, Any]) -> dict[str, bool | str | float | int]:
    """HParams takes bool/str/number only: lists become strings, None becomes 'none'."""
    plain: dict[str, bool | str | float | int] = {}
    for key, value in flatten(values).items():
        if value is None:
            plain[key] = "none"
        elif isinstance(value, (bool, str, int, float)):
            plain[key] = value
        else:
            plain[key] = str(value)
    return plain
