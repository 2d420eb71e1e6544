"""Ray's PopulationBasedTraining and PB2 for a space's `tune.pbt` block, seeded, and the population as Tune's
points to evaluate (Ray's public API only).

Ray's PBT draws from Python's global `random` (which member to copy) and PB2
also from numpy's (its acquisition's starting points). Each scheduler here seeds
both around every decision, from the search's seed and the number of results it
has decided on, and puts the process's generators back afterwards: nothing else
in the driver sees a seeded generator, and a synchronous population (everyone
waits at each interval) decides the same way whenever it runs. Asynchronous PBT
stays reproducible only as far as the order results arrive in is.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from ray.tune.schedulers import PopulationBasedTraining
from ray.tune.search.basic_variant import BasicVariantGenerator

from raysearch.constants import score_key
from raysearch.pbt import Clipper, Explorer, mutated_params
from raysearch.spaces import SearchSpace, TuneSettings


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


class SeededPopulationBasedTraining(PopulationBasedTraining):
    """Ray's PBT, its global draws seeded per decision (see the module's docstring)."""

    def __init__(self, *, decision_seed: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decision_seed = decision_seed
        self.decisions = 0

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        with seeded_generators(f"raysearch-pbt-decision:{self.decision_seed}:{self.decisions}"):
            self.decisions += 1
            return super().on_trial_result(tune_controller, trial, result)


def make_scheduler(space: SearchSpace, settings: TuneSettings):
    """PBT (or PB2) on the trial's own `epoch`, ranking by the score of the space's metric."""
    pbt = settings.pbt
    params = mutated_params(settings, space.params)
    common = dict(time_attr="epoch", metric=score_key(space.metric), mode=space.mode,
                  perturbation_interval=pbt.interval, quantile_fraction=pbt.quantile, synch=pbt.synch,
                  require_attrs=True)
    if settings.scheduler == "pb2":
        return _seeded_pb2()(decision_seed=settings.seed, custom_explore_fn=Clipper(params),
                             hyperparam_bounds={p.key: [p.low, p.high] for p in params}, **common)
    # hyperparam_mutations stays empty: Explorer draws every new value (seeded, inside the ranges).
    return SeededPopulationBasedTraining(decision_seed=settings.seed, resample_probability=0.0,
                                         custom_explore_fn=Explorer(params, pbt, settings.seed), **common)


def _seeded_pb2():
    """SeededPB2, built on first use: Ray's PB2 module needs scikit-learn (spaces.py checks it at load)."""
    global SeededPB2
    if SeededPB2 is None:
        from ray.tune.schedulers.pb2 import PB2

        class SeededPB2(PB2):  # noqa: F811  (module-level name, for pickling with the experiment)
            """Ray's PB2, its global draws seeded per decision (see the module's docstring)."""

            def __init__(self, *, decision_seed: int, **kwargs: Any) -> None:
                super().__init__(**kwargs)
                self.decision_seed = decision_seed
                self.decisions = 0

            def on_trial_result(self, tune_controller, trial, result: dict) -> str:
                with seeded_generators(f"raysearch-pb2-decision:{self.decision_seed}:{self.decisions}"):
                    self.decisions += 1
                    return super().on_trial_result(tune_controller, trial, result)

        SeededPB2.__qualname__ = "SeededPB2"
        globals()["SeededPB2"] = SeededPB2
    return SeededPB2


SeededPB2 = None


def param_space(space: SearchSpace) -> dict[str, None]:
    """Tune's param_space for a fixed population: every searched key, None until a member sets it (a member whose
    `when` leaves a key out keeps None, which the trial drops)."""
    return {param.key: None for param in space.params}


def population_searcher(members: list[dict[str, Any]]) -> BasicVariantGenerator:
    """Tune's basic generator over the fixed population: one trial per member, in order (PBT refuses any
    search algorithm but this one)."""
    return BasicVariantGenerator(points_to_evaluate=[dict(member) for member in members], max_concurrent=0)
