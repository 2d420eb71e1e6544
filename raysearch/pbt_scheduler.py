"""Ray's PopulationBasedTraining and PB2 for a space's `tune.pbt` block, seeded, and the population as Tune's
points to evaluate (Ray's public API only).

Ray's PBT draws from Python's global `random` (which member to copy) and PB2
also from numpy's (its acquisition's starting points). Each scheduler here seeds
both around every decision, from the search's seed and the number of results it
has decided on, and puts the process's generators back afterwards: nothing else
in the driver sees a seeded generator, and a synchronous population (everyone
waits at each interval) decides the same way whenever it runs. Asynchronous PBT
stays reproducible only as far as the order results arrive in is.

Tune saves no scheduler state: a resumed search gets the scheduler as it was
built, which believes every member is at epoch 0 and that the first sync is at
`interval`. A synchronous population restored at epoch 7 of interval 2 would
then meet at 7 and set its next sync to 7, where every member already is: none
may run, and the search waits forever. So Ray's scheduler counts epochs from
the sync point the population was restored past (`SYNC_TIME`, measured from
the restored members' last results), and it sees the population as a fresh
one that starts there.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from ray import tune
from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler
from ray.tune.schedulers.pb2 import PB2  # its module imports without scikit-learn; PB2() needs it
from ray.tune.search.basic_variant import BasicVariantGenerator

from raysearch import storage as storage_io
from raysearch.constants import score_key
from raysearch.lineage import POPULATION_LOG, log_entry
from raysearch.pbt import Clipper, Explorer, mutated_params
from raysearch.spaces import SearchSpace, TuneSettings

# The time Ray's scheduler reads: a member's epochs since the sync point the population (re)started from.
SYNC_TIME = "pbt/epochs_since_start"


def restart_epoch(members: list, interval: int) -> int:
    """The last sync point at or below every member's epoch, from Tune's restored results (0 for a new search:
    no member has a result yet)."""
    epochs = [int(member.last_result.get("epoch", 0) or 0) for member in members]
    return min(epochs, default=0) // interval * interval


@contextmanager
def seeded_generators(seed: str) -> Iterator[None]:
    """Python's and numpy's global generators seeded from `seed` inside, as they were outside."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(random.getrandbits(32))
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


class SeededDecisions:
    """A PBT scheduler's global draws seeded per decision (see the module's docstring), and no copy into a trial
    at its last epoch; mixed in before Ray's class."""

    decision_label = "pbt"

    def __init__(self, *, decision_seed: int, max_t: int, **kwargs: Any) -> None:
        super().__init__(time_attr=SYNC_TIME, **kwargs)
        self.decision_seed = decision_seed
        self.max_t = max_t
        self.interval = kwargs["perturbation_interval"]
        self.decisions = 0
        self.started_at: int | None = None  # the population's restart epoch, at the first result this driver sees

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if "epoch" not in result:
            return super().on_trial_result(tune_controller, trial, result)  # Ray's error names the missing time
        if result["epoch"] >= self.max_t:
            # The trial's last epoch: it ends with this report. Ray's PBT would still copy a donor into it (at
            # the last interval), which restores a finished checkpoint, trains nothing and takes the donor's result.
            return TrialScheduler.CONTINUE
        if self.started_at is None:
            # Tune updates a trial's last result after the scheduler has decided: here every member's is still
            # the one it was restored with.
            self.started_at = restart_epoch(tune_controller.get_live_trials(), self.interval)
        with seeded_generators(f"raysearch-{self.decision_label}:{self.decision_seed}:{self.decisions}"):
            self.decisions += 1
            return super().on_trial_result(tune_controller, trial,
                                           {**result, SYNC_TIME: result["epoch"] - self.started_at})

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "started_at": None}  # a scheduler unpickled by a resume measures its own


class SeededPopulationBasedTraining(SeededDecisions, PopulationBasedTraining):
    """Ray's PBT, seeded; its explore step is raysearch.pbt.Explorer."""


class SeededPB2(SeededDecisions, PB2):
    """Ray's PB2 (its GP needs scikit-learn, checked when the space loads), seeded; proposals clipped to the ranges."""

    decision_label = "pb2"


def make_scheduler(space: SearchSpace, settings: TuneSettings):
    """PBT (or PB2) on the trial's own epoch (as SYNC_TIME), ranking by the score of the space's metric."""
    pbt = settings.pbt
    params = mutated_params(settings, space.params)
    common = dict(metric=score_key(space.metric), mode=space.mode,
                  perturbation_interval=pbt.interval, quantile_fraction=pbt.quantile, synch=pbt.synch,
                  require_attrs=True, decision_seed=settings.seed, max_t=settings.max_epochs)
    if settings.scheduler == "pb2":
        return SeededPB2(custom_explore_fn=Clipper(params),
                         hyperparam_bounds={p.key: [p.low, p.high] for p in params}, **common)
    # hyperparam_mutations stays empty: Explorer draws every new value (seeded, inside the ranges).
    return SeededPopulationBasedTraining(resample_probability=0.0,
                                         custom_explore_fn=Explorer(params, pbt, settings.seed), **common)


def param_space(space: SearchSpace) -> dict[str, None]:
    """Tune's param_space for a fixed population: every searched key, None until a member sets it (a member whose
    `when` leaves a key out keeps None, which the trial drops)."""
    return {param.key: None for param in space.params}


def population_searcher(members: list[dict[str, Any]]) -> BasicVariantGenerator:
    """Tune's basic generator over the fixed population: one trial per member, in order (PBT refuses any
    search algorithm but this one). Unlimited: every member must exist for PBT to pause some and run others
    (a paused trial counts as live to a limit, so tune.max_concurrent would shrink the population); the
    trials' resources bound how many train at once."""
    return BasicVariantGenerator(points_to_evaluate=[dict(member) for member in members], max_concurrent=0)


class PopulationLog(tune.Callback):
    """Every result of a PBT search as lineage.py reads it (copies, schedule values, checkpoints, scores), written
    by the driver straight into the experiment as lineage.POPULATION_LOG.

    Tune's own result.json of a trial can lose lines when the trial is paused and restarted (Ray 2.60 copies the
    experiment storage's older result.json over the driver's newer one before it goes on; a synchronous
    population is paused at every interval), so the lineage is not read from there.
    """

    def __init__(self, experiment_path: str) -> None:
        self.experiment_path = experiment_path
        self.lines: list[str] | None = None  # read back on first use: a resumed search goes on with its log

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        storage = storage_io.Storage(self.experiment_path)
        if self.lines is None:
            self.lines = (storage.read_text(POPULATION_LOG) or "").splitlines()
        self.lines.append(log_entry(trial.path, result))
        storage.write_text(POPULATION_LOG, "\n".join(self.lines) + "\n")

    def __getstate__(self) -> dict[str, Any]:
        return {"experiment_path": self.experiment_path, "lines": None}
