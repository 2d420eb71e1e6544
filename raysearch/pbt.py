"""Population Based Training's settings and its moves, without Ray: the `tune.pbt` block, which searched keys
it may mutate, and the seeded perturbation that keeps every value inside its `search:` range.

    tune:
      scheduler: pbt            # or pb2 (Ray's PB2: a GP bandit picks the new values; needs scikit-learn)
      searcher: random          # Ray's PBT allows no search algorithm: the population is sampled, seeded
      num_samples: 8            # the population
      pbt:
        mutate: [optim.generator_lr, optim.critic_lr, train.critic_steps]   # default: every searched one it may
        interval: 2             # epochs between perturbations (and checkpoints)
        quantile: 0.25          # the bottom quarter copies the top quarter...
        resample_probability: 0.25   # ...and then resamples each value, or perturbs it
        synch: true             # everyone waits at each interval: decisions independent of timing

A member of the bottom quantile copies a top member's checkpoint and config
(Ray's exploit), then each mutated value is resampled from its `search:`
distribution with `resample_probability`, or else perturbed: a continuous value
multiplied by one of `factors` (1.2 or 0.8, as Ray does), an int moved by the
same factor and by at least one step, a choice moved to a neighbour in the
listed order; every value is then clipped to its range (Ray's own
perturbation is not clipped and never moves an int of 1). The draws come from
`Explorer`'s own generator, seeded by the search's seed and the number of
explorations so far, so a search with the same seed explores the same way.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from raysearch.errors import ConfigError
from raysearch.mutations import MUTABLE_KEYS, allowed_keys

POPULATION_SCHEDULERS = ("pbt", "pb2")
# Ray warns below 3: a donor's checkpoint must outlive the wait of the member that copies it. Synchronous PBT
# pauses a donor at the next interval until everyone is there, so a donor writes at most one more checkpoint
# before its copies restore; one more is kept for an asynchronous population waiting for a slot.
CHECKPOINTS_TO_KEEP = 4


@dataclass(frozen=True)
class PbtSettings:
    """The `tune.pbt` block (read only with scheduler pbt or pb2)."""

    mutate: tuple[str, ...] = ()  # empty: every searched key a running trial can take (mutations.MUTABLE_KEYS)
    interval: int = 4  # epochs between perturbations; every trial checkpoints at least this often
    quantile: float = 0.25  # the fraction at the bottom that copies, and at the top that is copied
    resample_probability: float = 0.25  # per mutated value, at each exploration (pbt only; pb2 fits a GP)
    factors: tuple[float, float] = (1.2, 0.8)  # a continuous value's perturbation: times one of these
    synch: bool = True  # everyone reaches each interval before anyone is perturbed
    init_from: str | None = None  # a finished experiment whose top configs start the population

    def __post_init__(self) -> None:
        if self.interval < 1:
            raise ValueError(f"interval: must be >= 1 epoch, got {self.interval}")
        if not 0 < self.quantile <= 0.5:
            raise ValueError(f"quantile: must be in (0, 0.5] (the bottom copies the top), got {self.quantile}")
        if not 0 <= self.resample_probability <= 1:
            raise ValueError(f"resample_probability: must be in [0, 1], got {self.resample_probability}")
        if not all(f > 0 for f in self.factors) or self.factors[0] == self.factors[1]:
            raise ValueError(f"factors: must be two different positive numbers, got {list(self.factors)}")
        if len(set(self.mutate)) != len(self.mutate):
            raise ValueError(f"mutate: lists a key twice: {list(self.mutate)}")


def is_population_based(settings: Any) -> bool:
    """Whether a search's TuneSettings run Population Based Training (pbt or pb2)."""
    return settings.scheduler in POPULATION_SCHEDULERS


def check_settings(settings: Any, params: tuple[Any, ...]) -> None:
    """A search's TuneSettings (`tune:`) against its searched params (spaces.Param): ConfigError in one line,
    naming the key and what is allowed, for anything PBT cannot run."""
    pbt: PbtSettings = settings.pbt
    if not is_population_based(settings):
        if pbt != PbtSettings():
            raise ConfigError(f"tune.pbt: set, but tune.scheduler is {settings.scheduler}; the pbt block is read only "
                              f"with scheduler: {' or '.join(POPULATION_SCHEDULERS)}")
        return
    name = settings.scheduler
    if settings.searcher == "optuna":
        raise ConfigError(f"tune.searcher: optuna cannot run with scheduler: {name} (Ray's PopulationBasedTraining "
                          "allows no search algorithm); use searcher: random, whose seeded samples of the space are "
                          "the starting population (or start from a finished search's top configs: --init-from)")
    if settings.resources.workers != 1:
        raise ConfigError(f"tune.resources.workers: scheduler {name} needs one-process trials (workers: 1): a DDP "
                          "trial's Train run resumes its own checkpoint, never the one PBT copied into it")
    if settings.num_samples < 2:
        raise ConfigError(f"tune.num_samples: scheduler {name} needs a population of at least 2, got "
                          f"{settings.num_samples}")
    if pbt.interval >= settings.max_epochs:
        raise ConfigError(f"tune.pbt.interval: {pbt.interval} epochs is not below tune.max_epochs "
                          f"({settings.max_epochs}): no trial would ever be perturbed")
    mutated = mutated_params(settings, params)
    if name == "pb2":
        choices = [p.key for p in mutated if p.kind == "choice"]
        if choices:
            raise ConfigError(f"tune.pbt.mutate: {choices[0]} is a choice; pb2 fits a GP over continuous and int "
                              "ranges only (leave it out of mutate, or use scheduler: pbt)")
        conditional = [p.key for p in mutated if p.when]
        if conditional:
            raise ConfigError(f"tune.pbt.mutate: {conditional[0]} is searched only `when` another key allows it; "
                              "pb2's GP needs every mutated key in every member (use scheduler: pbt)")
        try:
            import sklearn  # noqa: F401  (PB2's GP; Ray imports it lazily and fails at the first trial)
        except ImportError:
            raise ConfigError("tune.scheduler: pb2 needs scikit-learn (pip install 'raysearch[pb2]'), or use "
                              "scheduler: pbt") from None


def mutated_params(settings: Any, params: tuple[Any, ...]) -> tuple[Any, ...]:
    """The searched params PBT mutates: `tune.pbt.mutate`'s, or every searched one a running trial can take.
    ConfigError for a key it cannot mutate."""
    searched = {p.key: p for p in params}
    if not settings.pbt.mutate:
        chosen = tuple(p for p in params if p.key in MUTABLE_KEYS)
        if not chosen:
            raise ConfigError(f"tune.pbt.mutate: none of the searched keys can change during a run "
                              f"({', '.join(searched) or 'nothing is searched'}); allowed: {allowed_keys()}")
        return chosen
    for key in settings.pbt.mutate:
        if key not in MUTABLE_KEYS:
            raise ConfigError(f"tune.pbt.mutate: {key} cannot change during a run (it shapes the networks, the "
                              f"optimiser state or the data); allowed: {allowed_keys()}")
        if key not in searched:
            raise ConfigError(f"tune.pbt.mutate: {key} is not in search:; PBT mutates searched keys within their "
                              f"ranges (searched: {', '.join(searched) or 'nothing'})")
    return tuple(searched[key] for key in settings.pbt.mutate)


def trial_values(settings: Any, checkpoint_every: int) -> dict[str, Any]:
    """What a PBT search sets in every trial's config: a checkpoint at every interval, since a member can only
    be copied from a checkpoint reported with its result (keeping the base's rate where it divides the interval)."""
    if not is_population_based(settings):
        return {}
    return {"train.checkpoint_every": math.gcd(checkpoint_every, settings.pbt.interval)}


# ---------------------------------------------------------------- seeded draws inside the space


def draw(param: Any, rng: random.Random) -> Any:
    """A sample of a searched param's distribution (spaces.Param: loguniform, uniform, int, choice)."""
    if param.kind == "loguniform":
        return math.exp(rng.uniform(math.log(param.low), math.log(param.high)))
    if param.kind == "uniform":
        return rng.uniform(param.low, param.high)
    if param.kind == "int":
        return rng.randint(param.low, param.high)
    return rng.choice(list(param.choices))


def perturb(param: Any, value: Any, rng: random.Random, factors: tuple[float, float]) -> Any:
    """`value` moved once, inside its range: times one of `factors` (an int by at least one step that way),
    or a choice to a neighbour in the listed order."""
    if param.kind == "choice":
        choices = list(param.choices)
        if value not in choices:
            return rng.choice(choices)
        index = choices.index(value) + rng.choice((-1, 1))
        return choices[min(max(index, 0), len(choices) - 1)]
    factor = rng.choice(factors)
    if param.kind == "int":
        moved = int(round(value * factor))
        if moved == value:  # round(1 * 1.2) is 1: step the way the factor points
            moved = value + (1 if factor > 1 else -1)
        return min(max(moved, param.low), param.high)
    return min(max(value * factor, param.low), param.high)


def clip(param: Any, value: Any) -> Any:
    """A value inside its param's range and type (PB2's GP proposes floats; an int key gets the nearest int)."""
    if param.kind == "choice":
        return value
    if param.kind == "int":
        return min(max(int(round(value)), param.low), param.high)
    return min(max(float(value), param.low), param.high)


class Explorer:
    """PBT's explore step (Ray's `custom_explore_fn`): a copied config with each mutated key resampled or
    perturbed inside its range. Seeded by (seed, explorations so far): the same search explores the same way.

    Ray's own perturbation is not used (its hyperparam_mutations is left empty): it draws from Python's global
    `random` and ignores the bounds. A key the copied config does not hold (a `when` that does not apply) stays
    absent. Picklable: Tune saves the scheduler with the experiment.
    """

    def __init__(self, params: tuple[Any, ...], pbt: PbtSettings, seed: int) -> None:
        self.params = tuple(params)
        self.resample_probability = pbt.resample_probability
        self.factors = tuple(pbt.factors)
        self.seed = seed
        self.explorations = 0

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        rng = random.Random(f"raysearch-pbt:{self.seed}:{self.explorations}")
        self.explorations += 1
        explored = dict(config)
        for param in self.params:
            if config.get(param.key) is None:
                continue
            if rng.random() < self.resample_probability:
                explored[param.key] = draw(param, rng)
            else:
                explored[param.key] = perturb(param, config[param.key], rng, self.factors)
        return explored


class Clipper:
    """PB2's `custom_explore_fn`: its GP's proposal clipped into each range, ints rounded (Ray casts an int key's
    proposal with int(), which truncates, and its float32 can leave a bound by a rounding error)."""

    def __init__(self, params: tuple[Any, ...]) -> None:
        self.params = tuple(params)

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        clipped = dict(config)
        for param in self.params:
            if clipped.get(param.key) is not None:
                clipped[param.key] = clip(param, clipped[param.key])
        return clipped
