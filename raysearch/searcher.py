"""The search's Optuna study: one or several objectives, kept in a journal file Optuna's own tools open, with
every trial's honest end (complete, pruned, failed) and its constraints.

Ray's `OptunaSearch` already runs Optuna's ask/tell for Tune, with several objectives (`metric=[...]`,
`mode=[...]`) and any storage. `StudySearch` is a thin subclass for what it has no hook for:

- **Pruned, not complete.** Tune reports a trial that a scheduler stopped through the same
  `on_trial_complete(trial_id, result)` as a finished one, and Ray tells Optuna COMPLETE with the early
  values, so a trial stopped at epoch 1 would sit on the front beside trials trained to the end. Here a
  trial whose last result's epoch (`time_attr`) is below the budget `max_epochs` enters as PRUNED. That is
  the signal Tune gives (no result field says "stopped by the scheduler"); it covers every early stop (the
  scheduler's, a Tune stopper's) and nothing else, since every trial of a search trains to `max_epochs`
  unless stopped. The values it stopped with stay on the trial as user attributes (`values_at_stop`);
  with one objective they are also its intermediate values (Optuna then keeps the last as the pruned
  trial's value, which its TPE ranks pruned trials by). Optuna has no intermediate values for several
  objectives (`Trial.report` refuses them).
- **Failed, never a NaN tell.** Ray tells NaN or None values, which Optuna refuses; Ray only logs that and
  the trial stays RUNNING forever. Here a result with `diverged: 1`, or an objective or constrained metric
  that is missing, NaN or infinite, enters as FAIL, as does a trial that errored.
- **Constraints.** Each `Constraint(metric, ">=" | "<=", bound)` is set on the trial with Optuna 5's public
  `Trial.set_constraint(name, violation)` (a violation > 0 is infeasible), which the multi-objective TPE
  (and NSGA-II) sampler and `study.best_trials` read. (`constraints_func` is deprecated since Optuna 5.0.)
  optuna-dashboard 0.21 neither shows these named constraints nor leaves infeasible trials off its Pareto
  front, so each constrained trial also carries a `feasible` user attribute, which it shows.
- **A study Optuna's tools open.** The study lives in `JournalStorage(JournalFileBackend(path))` (one file;
  `optuna-dashboard PATH` and `optuna.load_study` read it while the search runs), with its metric names
  set so the dashboard labels the axes, the directions, and the objectives and constraints as study user
  attributes. Every trial carries its Tune trial id (`ray_trial_id`).
- **Resume without duplicates.** Tune saves the searcher by pickling it (Ray's `OptunaSearch.save`). A
  pickled Optuna study on a journal re-reads the journal file when unpickled (Optuna's `JournalStorage`
  drops its in-memory replay when pickled), so a restored searcher continues the same study in the same
  file; an in-memory study would fork. Trials asked after Tune's last experiment checkpoint are unknown to
  the restored Tune run: they are closed as FAIL on restore instead of staying RUNNING. A trial that is told
  again after a restore (Tune resumed it after it had already ended) keeps its first record, except a
  FAIL (an errored trial Tune resumed with `resume_errored`), whose real outcome is added as a new trial
  with the same parameters and `replaces_failed_trial` set. The journal's path is absolute and fixed when
  the searcher is built: an experiment directory moved elsewhere keeps writing to the old journal.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState
from ray.tune.search.optuna import OptunaSearch

from raysearch.frontier import check_objectives, objective_value
from raysearch.objectives import Constraint
from raysearch.study import journal_storage

logger = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random")


@dataclass(frozen=True)
class Outcome:
    """How a trial enters the study: its state, its values (COMPLETE only), why, and its last numbers."""

    state: TrialState
    values: list[float] | None
    ended: str
    epoch: float | None = None
    reported: dict[str, float] | None = None  # the objectives and constrained metrics of the last result


def make_sampler(kind: str, *, seed: int, n_startup_trials: int = 10) -> optuna.samplers.BaseSampler:
    """The seeded sampler of a search: "tpe" (multivariate TPE with conditional groups, which models the
    joint distribution of conditional parameters; with several objectives it is Optuna's MOTPE and honours
    constraints) or "random" (the baseline the benches compare against)."""
    if kind == "tpe":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)  # multivariate and group: experimental since 2.x
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                              n_startup_trials=n_startup_trials)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"sampler {kind!r} is not one of {SAMPLERS}")


class StudySearch(OptunaSearch):
    """Ray's OptunaSearch over a journal-file study, with pruned, failed and constrained trials recorded as
    such (see the module docstring for each rule and why).

    Args:
        space: the define-by-run function (or a dict of Optuna distributions), as OptunaSearch takes it.
        metrics: the result keys of the objectives, in order (the study's metric names).
        modes: "min" or "max" per metric.
        journal_path: the journal file (created with its directory); it must not hold `study_name` yet. None
            keeps the study in memory (benches and tests that need no Optuna tools and no resume).
        study_name: the study's name in the journal.
        max_epochs: the budget: a trial whose last `time_attr` is below it was stopped early (PRUNED).
        sampler: from `make_sampler` (seeded).
        points_to_evaluate: configs to try first (the space's base config), as OptunaSearch takes them.
        constraints: metrics that must satisfy a bound; violations make a trial infeasible.
        time_attr: the result key of the trial's own epoch.
        diverged_key: the result key that is 1 when a trial diverged.
    """

    def __init__(self, space: Callable[[Any], Any] | dict, *, metrics: Sequence[str], modes: Sequence[str],
                 journal_path: str | Path | None, study_name: str, max_epochs: int,
                 sampler: optuna.samplers.BaseSampler, points_to_evaluate: list[dict] | None = None,
                 constraints: Sequence[Constraint] = (), time_attr: str = "epoch",
                 diverged_key: str = "diverged"):
        metrics, modes, constraints = list(metrics), list(modes), list(constraints)
        check_objectives(metrics, modes, "StudySearch")
        if max_epochs < 1:
            raise ValueError(f"StudySearch: max_epochs must be >= 1, got {max_epochs}")
        journal = Path(journal_path).absolute() if journal_path is not None else None
        storage = None
        if journal is not None:
            journal.parent.mkdir(parents=True, exist_ok=True)
            storage = journal_storage(journal)
            # OptunaSearch loads an existing study of that name and enqueues the first points again: a second
            # search on one study (a resume goes through Tuner.restore, not through here) would duplicate them.
            if study_name in optuna.study.get_all_study_names(storage):
                raise ValueError(f"{journal}: a study named {study_name!r} exists already (resume it, or name "
                                 f"the search differently)")
        single = len(metrics) == 1
        super().__init__(space=space, metric=metrics[0] if single else metrics, mode=modes[0] if single else modes,
                         points_to_evaluate=points_to_evaluate, sampler=sampler, study_name=study_name,
                         storage=storage)
        self._metrics = metrics
        self._modes = modes
        self._constraints = constraints
        self._journal_path = str(journal) if journal is not None else None
        self._max_epochs = max_epochs
        self._time_attr = time_attr
        self._diverged_key = diverged_key
        self._last_reported_step: dict[str, int] = {}
        study = self._ot_study
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)  # set_metric_names: experimental since 3.2
            study.set_metric_names(metrics)
        study.set_user_attr("objectives", dict(zip(metrics, modes)))
        study.set_user_attr("constraints", [c.name for c in constraints])
        study.set_user_attr("max_epochs", max_epochs)

    @property
    def journal_path(self) -> str | None:
        return self._journal_path

    @property
    def study(self) -> optuna.Study:
        return self._ot_study

    # ------------------------------------------------------------ Tune's searcher API

    def suggest(self, trial_id: str) -> dict | None:
        config = super().suggest(trial_id)
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and trial_id not in self._last_reported_step:
            ot_trial.set_user_attr("ray_trial_id", trial_id)  # the dashboard's link to Tune's trial directory
            self._last_reported_step[trial_id] = -1
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """One objective: its value at the trial's own epoch as an intermediate value (the dashboard's
        learning curves). Several: nothing (Optuna keeps no intermediate values for them)."""
        if len(self._metrics) == 1 and trial_id in self._ot_trials and trial_id not in self._completed_trials:
            self._report(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None:
            logger.warning("trial %s ended but was never suggested by this search: not recorded", trial_id)
            return
        outcome = self.outcome(result, error)
        recorded = self._frozen(ot_trial.number)
        if recorded.state == TrialState.RUNNING:
            self._tell(trial_id, ot_trial, outcome, result)
        elif recorded.state == TrialState.FAIL and outcome.state != TrialState.FAIL:
            self._replace_failed(recorded, outcome)
        else:
            logger.info("trial %s (study trial %d) is recorded as %s already: kept", trial_id, recorded.number,
                        recorded.state.name)
        self._completed_trials.add(trial_id)

    def restore(self, checkpoint_path: str) -> None:
        """OptunaSearch's restore (its pickle reopens the journal: the same study), then close the trials the
        study has RUNNING that this search never handed to Tune before its checkpoint."""
        super().restore(checkpoint_path)
        if self._journal_path is not None and not Path(self._journal_path).is_file():
            raise FileNotFoundError(f"{self._journal_path}: the search's Optuna journal is gone; cannot resume "
                                    f"study {self._study_name!r}")
        known = {t.number for t in self._ot_trials.values()}
        for lost in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if lost.number not in known:
                logger.warning("study trial %d was asked after the last checkpoint and never ran: FAIL", lost.number)
                self._ot_study.tell(lost.number, state=TrialState.FAIL)

    # ------------------------------------------------------------ the rules

    def outcome(self, result: dict | None, error: bool = False) -> Outcome:
        """How a trial that ended with `result` (its last) enters the study; see the module docstring."""
        if error:
            return Outcome(TrialState.FAIL, None, "error")
        if not result or self._time_attr not in result:
            return Outcome(TrialState.PRUNED, None, "no result")
        epoch = result[self._time_attr]
        keys = self._metrics + [c.metric for c in self._constraints if c.metric not in self._metrics]
        reported = {key: objective_value(result.get(key)) for key in keys}
        if result.get(self._diverged_key):
            return Outcome(TrialState.FAIL, None, "diverged", epoch, reported)
        broken = [key for key, value in reported.items() if not math.isfinite(value)]
        if broken:
            return Outcome(TrialState.FAIL, None, f"missing or non-finite: {', '.join(broken)}", epoch, reported)
        values = [reported[m] for m in self._metrics]
        if epoch < self._max_epochs:
            return Outcome(TrialState.PRUNED, None, "stopped early", epoch, reported)
        return Outcome(TrialState.COMPLETE, values, "completed", epoch, reported)

    def _report(self, trial_id: str, result: dict) -> None:
        value = objective_value(result.get(self._metrics[0]))
        step = result.get(self._time_attr)
        if step is None or not math.isfinite(value):
            return
        # Once per epoch: a trial resumed from a checkpoint reports its last epochs again.
        if int(step) > self._last_reported_step.get(trial_id, -1):
            self._ot_trials[trial_id].report(value, int(step))
            self._last_reported_step[trial_id] = int(step)

    def _constraint_values(self, outcome: Outcome) -> dict[str, float]:
        if outcome.state == TrialState.FAIL or not outcome.reported:
            return {}
        return {c.name: c.violation(outcome.reported[c.metric]) for c in self._constraints}

    def _tell(self, trial_id: str, ot_trial: optuna.Trial, outcome: Outcome, result: dict | None) -> None:
        ot_trial.set_user_attr("ended", outcome.ended)
        if outcome.epoch is not None:
            ot_trial.set_user_attr(self._time_attr, outcome.epoch)
        if outcome.state == TrialState.PRUNED and outcome.reported:
            ot_trial.set_user_attr("values_at_stop", {m: outcome.reported[m] for m in self._metrics})
            if len(self._metrics) == 1 and result:
                self._report(trial_id, result)  # the stopping result reached no on_trial_result
        constraints = self._constraint_values(outcome)
        for name, violation in constraints.items():
            ot_trial.set_constraint(name, violation)
        if constraints:
            # The dashboard (0.21) shows user attributes, not Optuna 5's named constraints.
            ot_trial.set_user_attr("feasible", all(v <= 0 for v in constraints.values()))
        self._ot_study.tell(ot_trial, outcome.values, state=outcome.state)

    def _replace_failed(self, failed: FrozenTrial, outcome: Outcome) -> None:
        constraints = self._constraint_values(outcome)
        user_attrs = {**failed.user_attrs, "ended": outcome.ended, "replaces_failed_trial": failed.number}
        if outcome.epoch is not None:
            user_attrs[self._time_attr] = outcome.epoch
        if constraints:
            user_attrs["feasible"] = all(v <= 0 for v in constraints.values())
        intermediate = None
        if outcome.state == TrialState.PRUNED and outcome.reported:
            user_attrs["values_at_stop"] = {m: outcome.reported[m] for m in self._metrics}
            if len(self._metrics) == 1 and outcome.epoch is not None:
                intermediate = {int(outcome.epoch): outcome.reported[self._metrics[0]]}
        trial = optuna.trial.create_trial(
            state=outcome.state, values=outcome.values, params=failed.params, distributions=failed.distributions,
            user_attrs=user_attrs, intermediate_values=intermediate, constraints=constraints or None)
        self._ot_study.add_trial(trial)
        logger.warning("study trial %d had failed; its resumed run ended %s: recorded as a new trial",
                       failed.number, outcome.state.name)

    def _frozen(self, number: int) -> FrozenTrial:
        for trial in self._ot_study.get_trials(deepcopy=False):
            if trial.number == number:
                return trial
        raise KeyError(f"study {self._study_name!r} has no trial {number}")
