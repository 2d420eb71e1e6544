"""Early stopping that keeps the front: multi-objective asynchronous successive halving as a Tune scheduler.

Ray's ASHA (`ray.tune.schedulers.AsyncHyperBandScheduler`, Li et al. 2020, "A System for Massively Parallel
Hyperparameter Tuning") ranks trials at each rung by one metric. A search over fidelity and realism ranked
by one of them stops exactly the trials that make the trade-off: the realistic-but-blurrier ones die under a
PSNR ranking and vice versa. Multi-objective ASHA (Schmucker et al. 2021, "Multi-objective Asynchronous
Successive Halving"; Salinas et al. 2021; syne-tune's `MOASHA`) keeps ASHA's rungs and asynchrony and only
changes the ranking at a rung: non-dominated sorting, then NSGA-II's crowding distance within a front
(raysearch.frontier.promotion_order), so a trial on the front survives even when it is the worst trial of
the rung on one objective.

Built on Ray's public scheduler API (`FIFOScheduler` / `TrialScheduler`, as ASHA is), one bracket, no
searcher needed. Like Ray's ASHA it schedules on the trial's own `time_attr` (the project's `epoch`: Tune's
`training_iteration` restarts at 1 when a trial restarts) and keeps its rungs in plain Python data, so
Tune can pickle it into the experiment (tuner.pkl) and `Tuner.restore` unpickles it. As with Ray's ASHA,
Tune does not save a scheduler's rungs during a run: after a restore the rungs start empty and fill again
as trials report (each trial is judged at the highest rung it crosses next).
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Sequence
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from raysearch.frontier import check_objectives, is_valid, nondominated_fronts, objective_value, promotion_order

Vector = tuple[float, ...]


def rung_milestones(grace_period: int, reduction_factor: int, max_t: int) -> list[int]:
    """ASHA's rungs: grace_period * reduction_factor**k below max_t (at max_t a trial stops anyway)."""
    milestones, milestone = [], grace_period
    while milestone < max_t:
        milestones.append(milestone)
        milestone *= reduction_factor
    return milestones


class StateUnpickler(pickle.Unpickler):
    """Reads back what `save` wrote (rungs of plain numbers, names, counters) and nothing else: a pickle in
    an experiment directory someone handed over cannot name a class to build, let alone a function to call."""

    PLAIN = {"dict", "list", "tuple", "set", "frozenset", "str", "int", "float", "bool", "complex"}

    def find_class(self, module: str, name: str):
        if module == "builtins" and name in self.PLAIN:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"MO-ASHA state: {module}.{name} is not plain data")


class MultiObjectiveASHA(FIFOScheduler):
    """Asynchronous successive halving that promotes by Pareto rank and crowding distance.

    Rungs at `grace_period * reduction_factor**k < max_t` (in `time_attr` units). When a trial first reports
    a `time_attr` at or past a rung it has not been judged at (the highest such rung), its objective vector
    is recorded there and it continues iff it is among the top ceil(n / reduction_factor) of
    `promotion_order` over the n vectors recorded at that rung so far, itself included; else it stops. The
    first trial at a rung always continues (asynchronous promotion: no trial waits for a rung to fill).
    A trial stops at `max_t`.

    A result whose objectives are not all finite numbers (NaN, missing, infinite) or that says
    `diverged_key: 1` is the worst: it is recorded as such (it counts in n) and the trial stops at once,
    whatever the rung or grace period, since there is nothing left to train for.

    Args:
        time_attr: the result key that measures progress; the trial's own epoch.
        metrics: the result keys of the objectives.
        modes: "min" or "max" per metric.
        max_t: the budget: a trial stops when `time_attr` reaches it.
        grace_period: the first rung; no finite trial stops before it.
        reduction_factor: 1 / the fraction of a rung's trials that continue.
        diverged_key: the result key that is 1 when a trial diverged.
    """

    def __init__(self, *, time_attr: str = "epoch", metrics: Sequence[str], modes: Sequence[str], max_t: int,
                 grace_period: int, reduction_factor: int, diverged_key: str = "diverged"):
        super().__init__()
        metrics, modes = list(metrics), list(modes)
        check_objectives(metrics, modes, "MultiObjectiveASHA")
        if max_t < 1:
            raise ValueError(f"MultiObjectiveASHA: max_t must be >= 1, got {max_t}")
        if not 1 <= grace_period <= max_t:
            raise ValueError(f"MultiObjectiveASHA: grace_period must be between 1 and max_t ({max_t}), "
                             f"got {grace_period}")
        if reduction_factor < 2 or int(reduction_factor) != reduction_factor:
            raise ValueError(f"MultiObjectiveASHA: reduction_factor must be an integer >= 2, got {reduction_factor}")
        self._time_attr = time_attr
        self._metrics = metrics
        self._modes = modes
        self._max_t = max_t
        self._grace_period = grace_period
        self._reduction_factor = int(reduction_factor)
        self._diverged_key = diverged_key
        # milestone -> {trial_id: objective vector}, in the order the trials reached the rung (the index
        # order promotion_order breaks ties by: the earlier trial first).
        self._rungs: dict[int, dict[str, Vector]] = {
            m: {} for m in rung_milestones(grace_period, self._reduction_factor, max_t)}
        self._num_stopped = 0

    # ------------------------------------------------------------ what it was built with

    @property
    def metrics(self) -> list[str]:
        return list(self._metrics)

    @property
    def modes(self) -> list[str]:
        return list(self._modes)

    @property
    def milestones(self) -> list[int]:
        return list(self._rungs)

    def recorded(self, milestone: int) -> dict[str, Vector]:
        """The objective vectors recorded at a rung, by trial id, in the order the trials reached it."""
        return dict(self._rungs[milestone])

    def promotable(self, milestone: int) -> list[str]:
        """The trial ids among the top ceil(n / reduction_factor) of a rung now (its promotion quota)."""
        ids = list(self._rungs[milestone])
        order = promotion_order(list(self._rungs[milestone].values()), self._modes)
        quota = math.ceil(len(ids) / self._reduction_factor)
        return [ids[i] for i in order[:quota]]

    # ------------------------------------------------------------ Tune's scheduler API

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """Tune passes TuneConfig's metric and mode. This scheduler has its own objectives: it accepts none,
        or one of its own metrics with that metric's mode (left unused); anything else would silently rank by
        something other than what it was built with, so it refuses (Tune then raises)."""
        if metric is None and mode is None:
            return True
        return metric in self._metrics and mode == self._modes[self._metrics.index(metric)]

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        if self._time_attr not in result:
            return TrialScheduler.CONTINUE
        time = result[self._time_attr]
        if time >= self._max_t:
            action = TrialScheduler.STOP
        else:
            vector = self.objective_vector(result)
            action = self._judge(trial.trial_id, time, vector)
            if not is_valid(vector):
                action = TrialScheduler.STOP
        if action == TrialScheduler.STOP:
            self._num_stopped += 1
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        # As Ray's ASHA: a trial's last result also counts at a rung it crossed (later trials compare to it).
        if result and self._time_attr in result and result[self._time_attr] < self._max_t:
            self._judge(trial.trial_id, result[self._time_attr], self.objective_vector(result))

    def debug_string(self) -> str:
        """One line like ASHA's, then per rung: trials recorded, how many are non-dominated, the quota."""
        rungs = []
        for milestone, recorded in self._rungs.items():
            vectors = list(recorded.values())
            front = [i for i in (nondominated_fronts(vectors, self._modes) or [[]])[0] if is_valid(vectors[i])]
            rungs.append(f"{self._time_attr} {milestone}: {len(vectors)} recorded, {len(front)} non-dominated, "
                         f"{len(self.promotable(milestone))} promotable")
        out = f"Using MultiObjectiveASHA: num_stopped={self._num_stopped}"
        return out + ("\nRungs: " + " | ".join(rungs) if rungs else "")

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as handle:
            pickle.dump(self.__dict__, handle)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as handle:
            self.__dict__.update(StateUnpickler(handle).load())

    # ------------------------------------------------------------ the rule

    def objective_vector(self, result: dict) -> Vector:
        """The result's objectives in `metrics` order; all NaN (the worst) when the trial diverged, and NaN for
        a missing or non-numeric objective."""
        if result.get(self._diverged_key):
            return tuple(math.nan for _ in self._metrics)
        return tuple(objective_value(result.get(metric)) for metric in self._metrics)

    def _judge(self, trial_id: str, time: float, vector: Vector) -> str:
        """Record `vector` at the highest rung `time` reached that has not judged this trial, and decide."""
        passed = [m for m in self._rungs if m <= time]
        if not passed:
            return TrialScheduler.CONTINUE
        rung = self._rungs[passed[-1]]
        if trial_id in rung:
            return TrialScheduler.CONTINUE  # judged there already: the decision was made then
        rung[trial_id] = vector
        return TrialScheduler.CONTINUE if trial_id in self.promotable(passed[-1]) else TrialScheduler.STOP

