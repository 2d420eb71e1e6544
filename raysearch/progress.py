"""What a search prints while it runs: Tune's trial table with the space's metric, and an ETA.

Tune's table shows whatever metrics it infers (critic losses, not `val/swd`)
and no estimate of the time left. `SearchProgress` is a `CLIReporter` whose
columns are the trial's epoch, the space's metric and its score (the mean of
the last epochs that ranks trials; with several objectives, each one's score),
and whose header says how many of the
search's trial-epochs are done and when the search should end at the pace
measured since this process started (an upper bound: ASHA stops some trials
before their last epoch).
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass

import optuna
from ray.tune import CLIReporter

from raysearch.constants import score_key

REPORT_EVERY_S = 30  # a table every 30 s at most; a trial's epoch takes seconds to minutes


@dataclass(frozen=True)
class Budget:
    """The search's trial-epoch budget and how much of it is spent."""

    total: int  # num_samples * max_epochs
    done: int  # epochs reported by trials, plus the whole remainder of trials that ended early
    measured: int  # epochs trained since this process started (the pace's numerator)


def trial_epoch_budget(epochs_and_ended: list[tuple[int, bool]], num_samples: int, max_epochs: int) -> Budget:
    """The budget from each known trial's (epoch, ended): an ended trial spends its whole share."""
    done = sum(max_epochs if ended else min(epoch, max_epochs) for epoch, ended in epochs_and_ended)
    trained = sum(min(epoch, max_epochs) for epoch, _ in epochs_and_ended)
    return Budget(total=num_samples * max_epochs, done=done, measured=trained)


def eta_seconds(budget: Budget, trained_at_start: int, elapsed_s: float) -> float | None:
    """Seconds left at the pace of the epochs trained since `trained_at_start`; None before the first one."""
    trained = budget.measured - trained_at_start
    if trained <= 0 or elapsed_s <= 0:
        return None
    return max(0, budget.total - budget.done) * elapsed_s / trained


def format_duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return "under a minute"
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def short_names(keys: list[str]) -> dict[str, str]:
    """Column titles of dotted keys: the last part (lr, clip), or the whole key where two share it."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {key: short if last.count(short) == 1 else key for key, short in zip(keys, last)}


def failures_note(trials) -> str:
    """'; 2 trial failures (restarted from their last checkpoint while max_failures allows)', or ''."""
    failures = sum(trial.num_failures for trial in trials)
    if not failures:
        return ""
    return f"; {failures} trial failure(s) (each restarts from its last checkpoint while max_failures allows)"


class SearchProgress(CLIReporter):
    """Tune's CLI table with raysearch's columns and an ETA line."""

    def __init__(self, metrics: list[str], num_samples: int, max_epochs: int, params: list[str]) -> None:
        """`metrics`: the space's objectives; one shows its last value and its score, several their scores."""
        if len(metrics) == 1:
            columns = {metrics[0]: metrics[0].split("/")[-1], score_key(metrics[0]): "score"}
        else:
            columns = {score_key(metric): f"{metric.split('/')[-1]} score" for metric in metrics}
        super().__init__(
            metric_columns={"epoch": "epoch", **columns},
            parameter_columns=short_names(params),
            max_report_frequency=REPORT_EVERY_S,
            sort_by_metric=False,
        )
        self.num_samples = num_samples
        self.max_epochs = max_epochs
        self._started = time.monotonic()
        self._trained_at_start: int | None = None

    def setup(self, *args, **kwargs) -> None:
        # Tune passes the searcher's metric and mode too; our columns are fixed, so keep only the clock.
        super().setup(start_time=kwargs.get("start_time"), total_samples=kwargs.get("total_samples"))
        self._started = time.monotonic()
        self._trained_at_start = None

    def budget(self, trials) -> Budget:
        known = [(int((trial.last_result or {}).get("epoch", 0) or 0), trial.status in ("TERMINATED", "ERROR"))
                 for trial in trials]
        return trial_epoch_budget(known, self.num_samples, self.max_epochs)

    def eta_line(self, trials) -> str:
        budget = self.budget(trials)
        if self._trained_at_start is None:  # a resumed search: epochs trained before now set no pace
            self._trained_at_start = budget.measured
        eta = eta_seconds(budget, self._trained_at_start, time.monotonic() - self._started)
        left = "measuring the pace" if eta is None else f"at most {format_duration(eta)} left"
        return (f"Search: {budget.done}/{budget.total} trial-epochs ({self.num_samples} trials x {self.max_epochs} "
                f"epochs; early-stopped trials count whole), {left}{failures_note(trials)}")

    def _progress_str(self, trials, done, *sys_info, **kwargs) -> str:
        return super()._progress_str(trials, done, self.eta_line(trials), *sys_info, **kwargs)

    def __getstate__(self):
        # Tune pickles the run config (and this reporter) for --resume; the clock starts anew there.
        state = dict(self.__dict__)
        state["_trained_at_start"] = None
        return state


# ---------------------------------------------------------------- Ray's own lines

# Lines of Ray's driver-side loggers that a raysearch user cannot act on, or that
# raysearch replaces with its own (the resume hint names Ray's `Tuner.restore`,
# not `python -m raysearch.tune --resume`). --verbose keeps them.
QUIET = (
    "Experiment has been interrupted",  # replaced by the report's raysearch resume command
    "Trials did not complete",  # the report's table says which trials were interrupted
    "Total run time",
    "Wrote the latest version of all result files",
    "Checkpoint successfully created",
    "Reporting training result",
    "Running in local mode",  # Train's local mode, every one-process trial: raysearch's own choice
    "Reported metrics",  # local mode logs every report; the progress table and TensorBoard show them
)


class QuietRayLogs:
    """A logging filter that drops Ray's lines in QUIET and remembers whether the search was interrupted."""

    def __init__(self) -> None:
        self.interrupted = False

    def filter(self, record) -> bool:
        message = record.getMessage()
        if message.startswith("Experiment has been interrupted"):
            self.interrupted = True
        return not any(message.startswith(prefix) for prefix in QUIET)


def quiet_ray_logs() -> QuietRayLogs:
    """Install the filter on Ray's Tune and Train loggers (their handlers are Ray's); quiet Optuna's notes."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created in memory"
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # TPE's `group`

    quiet = QuietRayLogs()
    # A logger's filter sees only the records logged to it, not its children's: every Tune and Train logger.
    names = [name for name in logging.root.manager.loggerDict if name.startswith(("ray.tune", "ray.train"))]
    for name in names:
        logging.getLogger(name).addFilter(quiet)
    return quiet
