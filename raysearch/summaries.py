"""TensorBoard output of one trial: scalars, the preview grid, hparams; and the classical fills'
reference runs (`write_baseline_runs`), written once beside the trials.

Written with tensorboardX from rank 0 straight to the trial's directory. Images
never travel through Ray's metric dict (in Ray 2.60 a numpy array in a report
that also carries a checkpoint crashes the Train controller).

HParams: TensorBoard's dashboard takes its columns from ONE experiment-level
summary, which the search writes once at the root of its `tensorboard/`
directory (`write_experiment_hparams`): the searched parameters with their
domains, marked as differing, and the validation metrics and their scores.
Each trial writes only its session start (its full config, flattened) before
its first epoch, so a trial the scheduler stops and kills is listed too, and
its session end when it ends normally. The metric columns are read from the
trials' own scalars, so a stopped trial shows its last values.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensorboard.compat.proto.summary_pb2 import Summary as TensorBoardSummary
from tensorboard.plugins.hparams import api_pb2, metadata as hparams_metadata, plugin_data_pb2
from tensorboardX import SummaryWriter
from tensorboardX.proto.summary_pb2 import Summary

from models.geometry import mask_context
from raysearch.config import flatten
from raysearch.fill import composite
from raysearch.pictures import image_grid
from raysearch.constants import score_key
from raysearch.storage import Storage, is_uri, join

BASELINE_RUN_PREFIX = "baseline_"  # <tensorboard root>/baseline_<fill>: a classical fill as a reference run


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

    def preview(self, images: torch.Tensor, outputs: torch.Tensor, epoch: int) -> None:
        """Three rows like the seeds' figures: context, ground truth, the images filled by the generator's `outputs`.

        `images` and `outputs` are in [-1, 1]; the same validation images and the same noise are used every
        epoch, so grids compare; the fill is composited as every fill is (raysearch.fill).
        """
        rows = [mask_context(images), images, composite(images, outputs)]
        grid = image_grid(rows)
        self.writer.add_image("preview/context_truth_generated", grid, epoch)

    def session_start(self, values: dict[str, Any]) -> None:
        """This trial's hyperparameters (a nested config), for the HParams dashboard; written before training."""
        info = plugin_data_pb2.SessionStartInfo()
        for key, value in _hparam_values(values).items():
            _set_value(info.hparams[key], value)
        self._add_hparams(hparams_metadata.SESSION_START_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_start_info=info))

    def session_end(self, success: bool) -> None:
        status = api_pb2.Status.STATUS_SUCCESS if success else api_pb2.Status.STATUS_FAILURE
        end = plugin_data_pb2.SessionEndInfo(status=status)
        self._add_hparams(hparams_metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=end))

    def _add_hparams(self, tag: str, data: plugin_data_pb2.HParamsPluginData) -> None:
        self.writer.file_writer.add_summary(_hparams_summary(tag, data))

    def close(self) -> None:
        self.commit()
        if self.remote:
            shutil.rmtree(self.logdir, ignore_errors=True)


@dataclass(frozen=True)
class HParamColumn:
    """A searched parameter as the HParams dashboard shows it: its dotted key and its domain."""

    key: str
    kind: str  # choice | uniform | loguniform | int
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None


def write_experiment_hparams(tensorboard_root: str, columns: list[HParamColumn], metric_tags: list[str]) -> str:
    """The experiment-level HParams summary at the root of an experiment's TensorBoard tree (a path or URI).

    Only the searched parameters are columns, each marked as differing: the
    dashboard otherwise shows every config value (68) with `differs: false`.
    """
    infos = []
    for column in columns:
        info = api_pb2.HParamInfo(name=column.key, differs=True)
        if column.kind == "choice":
            values = [_hparam_value(choice) for choice in column.choices]
            info.type = _data_type(values[0]) if len({type(v) for v in values}) == 1 else api_pb2.DATA_TYPE_STRING
            for value in values:
                _set_value(info.domain_discrete.values.add(), value if info.type != api_pb2.DATA_TYPE_STRING else str(value))
        else:
            info.type = api_pb2.DATA_TYPE_FLOAT64
            info.domain_interval.min_value = float(column.low)
            info.domain_interval.max_value = float(column.high)
        infos.append(info)
    metrics = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in metric_tags]
    experiment = api_pb2.Experiment(hparam_infos=infos, metric_infos=metrics)
    summary = _hparams_summary(hparams_metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=experiment))
    with tempfile.TemporaryDirectory(prefix="raysearch-hparams-") as tmp:
        writer = SummaryWriter(logdir=tmp, filename_suffix=".hparams")
        writer.file_writer.add_summary(summary)
        writer.close()
        (event,) = Path(tmp).glob("events.out.tfevents.*")
        return Storage(tensorboard_root).upload(event, event.name)


def write_baseline_runs(root: str, baselines: dict[str, dict[str, float]], epochs: int) -> list[str]:
    """One TensorBoard run per classical fill under `root` (a path or URI): each `val/<metric>` and its
    `score/val/<metric>` as a flat line at steps 1..epochs, so every scalar chart of the trials shows what
    a non-learned fill scores there. Returns the runs' locations."""
    runs = []
    for name, figures in baselines.items():
        run = join(str(root), f"{BASELINE_RUN_PREFIX}{name}")
        summary = TrialSummary(run)
        scalars = {**figures, **{score_key(metric): value for metric, value in figures.items()}}
        for epoch in range(1, max(1, epochs) + 1):
            summary.scalars(scalars, epoch)
        summary.close()
        runs.append(run)
    return runs


def _hparams_summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> Summary:
    """A tensorboardX Summary carrying HParams plugin data (built with TensorBoard's own protos)."""
    data.version = hparams_metadata.PLUGIN_DATA_VERSION
    summary = TensorBoardSummary()
    value = summary.value.add(tag=tag)
    value.metadata.plugin_data.plugin_name = hparams_metadata.PLUGIN_NAME
    value.metadata.plugin_data.content = data.SerializeToString()
    return Summary.FromString(summary.SerializeToString())


def _set_value(target, value: bool | str | float | int) -> None:
    """Fill a protobuf Value."""
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, str):
        target.string_value = value
    else:
        target.number_value = float(value)


def _data_type(value: bool | str | float | int) -> int:
    if isinstance(value, bool):
        return api_pb2.DATA_TYPE_BOOL
    if isinstance(value, str):
        return api_pb2.DATA_TYPE_STRING
    return api_pb2.DATA_TYPE_FLOAT64


def _hparam_values(values: dict[str, Any]) -> dict[str, bool | str | float | int]:
    """HParams takes bool/str/number only: lists become strings, None becomes 'none'."""
    return {key: _hparam_value(value) for key, value in flatten(values).items()}


def _hparam_value(value: Any) -> bool | str | float | int:
    if value is None:
        return "none"
    if isinstance(value, (bool, str, int, float)):
        return value
    return str(value)
