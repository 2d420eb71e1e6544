"""A search space YAML -> validated parameters, an Optuna define-by-run space, objectives, Tune settings.

The `search:` section maps dotted config keys to one distribution each:

    search:
      optim.generator_lr: {loguniform: [1.0e-5, 1.0e-3]}
      train.critic_steps: {int: [1, 10]}
      generator.kernel_size: {choice: [3, 5, 7]}
      objective.clip: {uniform: [0.005, 0.1], when: {objective.name: wgan}}

`when` makes a parameter conditional on another key (searched earlier in the
file, or the base value). Every key, bound and choice is checked against the
typed config when the file is loaded, so a misspelt key fails before Ray
starts instead of being silently ignored by every trial. What the search
optimises (`metric`, or several `objectives`, and `constraints`) is
raysearch.objectives'.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from raysearch.config import (
    ExperimentConfig,
    build_config,
    build_dataclass,
    check_combinations,
    close_match_hint,
    config_to_dict,
    flatten,
    load_space_file,
    set_dotted,
)
from raysearch.errors import ConfigError
from raysearch.objectives import Constraint, ConstraintSpec, Objective, parse_constraints, parse_objectives
from raysearch.pbt import PbtSettings, check_settings as check_pbt_settings, trial_values as pbt_trial_values

KINDS = ("loguniform", "uniform", "int", "choice")



@dataclass(frozen=True)
class Param:
    """One searched key: its distribution, and the condition under which it applies."""

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple[Any, ...] = ()
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def applies(self, values: dict[str, Any]) -> bool:
        return all(values.get(key) in allowed for key, allowed in self.when.items())

    def suggest(self, trial: Any) -> Any:
        """Ask an Optuna trial (or Ray's suggest captor) for a value."""
        if self.kind == "loguniform":
            return trial.suggest_float(self.key, self.low, self.high, log=True)
        if self.kind == "uniform":
            return trial.suggest_float(self.key, self.low, self.high)
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high)
        return trial.suggest_categorical(self.key, list(self.choices))

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return value in self.choices
        return isinstance(value, (int, float)) and self.low <= value <= self.high


@dataclass(frozen=True)
class Resources:
    """What one trial takes: CPUs and a GPU fraction per Ray Train worker, and the worker count.

    `workers` sets every trial's train.workers (DDP when > 1), whatever the base says.
    """

    cpus: float = 1.0
    gpu_fraction: float | None = None  # None: trials packed per GPU (raysearch.tune.gpu_fraction)
    workers: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.cpus <= 64:
            raise ValueError(f"cpus: must be in (0, 64], got {self.cpus}")
        if self.gpu_fraction is not None and not 0 < self.gpu_fraction <= 1:
            # A Train worker drives one device; Ray also refuses fractions above 1 (1.5 GPUs).
            raise ValueError(f"gpu_fraction: must be in (0, 1] (one worker uses at most one GPU; "
                             f"set workers for more GPUs per trial), got {self.gpu_fraction}")
        if not 1 <= self.workers <= 64:
            raise ValueError(f"workers: must be 1 to 64, got {self.workers}")


@dataclass(frozen=True)
class TuneSettings:
    """The `tune:` section: budget, scheduler, searcher, concurrency, resources.

    scheduler `asha` stops bad trials early on the trial's own `epoch`
    (Tune's training_iteration restarts after a trial restart) by one metric;
    `mo_asha` does the same for several objectives, promoting by non-dominated
    sorting (raysearch.schedulers; the default of a multi-objective space);
    `none` runs every trial to max_epochs; `pbt` and `pb2` run Population Based
    Training (raysearch.pbt: the `pbt` block). searcher `optuna` is a seeded
    multivariate TPE (MOTPE for several objectives); `random` is Optuna's random
    sampler (the baseline of bench/search.py). HyperBandForBOHB is not offered:
    with OptunaSearch it crashes in Ray 2.60.
    """

    num_samples: int = 16
    max_epochs: int = 10
    scheduler: Literal["asha", "mo_asha", "none", "pbt", "pb2"] = "asha"
    grace_period: int = 2
    reduction_factor: int = 3
    searcher: Literal["optuna", "random"] = "optuna"
    seed: int = 0
    max_concurrent: int = 0
    max_failures: int = 2
    resources: Resources = field(default_factory=Resources)
    pbt: PbtSettings = field(default_factory=PbtSettings)  # scheduler pbt / pb2 only

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ValueError(f"num_samples: must be >= 1, got {self.num_samples}")
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs: must be >= 1, got {self.max_epochs}")
        if self.grace_period < 1:
            raise ValueError(f"grace_period: must be >= 1, got {self.grace_period}")
        if self.reduction_factor < 2:
            raise ValueError(f"reduction_factor: must be >= 2, got {self.reduction_factor}")
        if self.max_concurrent < 0:
            raise ValueError(f"max_concurrent: must be >= 0 (0 = as many as resources allow), got {self.max_concurrent}")
        if self.max_failures < 0:
            raise ValueError(f"max_failures: must be >= 0, got {self.max_failures}")


@dataclass(frozen=True)
class SearchSpace:
    """A loaded, validated search-space file."""

    path: Path
    description: str
    base: dict[str, Any]  # the plain `base:` mapping with --set overrides applied
    config: ExperimentConfig  # the validated base config
    params: tuple[Param, ...]
    objectives: tuple[Objective, ...]  # what the search optimises; the first is the table's primary column
    constraints: tuple[ConstraintSpec, ...]  # what a trial must meet to count (resolved with `bounds`)
    tune: TuneSettings

    @property
    def metric(self) -> str:
        """The primary objective's metric (the only one of a single-objective space)."""
        return self.objectives[0].metric

    @property
    def mode(self) -> str:
        return self.objectives[0].mode

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def bounds(self, baselines: dict[str, dict[str, float]] | None) -> tuple[Constraint, ...]:
        """The constraints with their bounds resolved against the classical fills of the search's data."""
        return tuple(spec.resolve(baselines) for spec in self.constraints)

    def define_by_run(self, trial: Any) -> None:
        """Optuna define-by-run: suggest each parameter whose condition holds."""
        values = self.flat_base()
        for param in self.params:
            if param.applies(values):
                values[param.key] = param.suggest(trial)

    def flat_base(self) -> dict[str, Any]:
        return flatten(config_to_dict(self.config))

    def base_point(self) -> dict[str, Any] | None:
        """The base config as a first point to evaluate, if every active value lies in its range."""
        values = self.flat_base()
        point = {p.key: values[p.key] for p in self.params if p.applies(values)}
        return point if all(p.contains(point[p.key]) for p in self.params if p.key in point) else None

    def check_trials(self, settings: TuneSettings) -> None:
        """Every config the search can give a trial under `settings` (its budget and workers) is valid,
        or ConfigError naming the file and the values."""
        # What the runtime adds to every trial's parameters (runtime.search_trial).
        fixed = {"train.epochs": settings.max_epochs, "train.workers": settings.resources.workers,
                 **pbt_trial_values(settings, self.config.train.checkpoint_every)}
        try:
            check_pbt_settings(settings, self.params)  # PBT hook: scheduler pbt / pb2 and its block
            check_reachable_configs(self.params, self.base, fixed)
        except ConfigError as err:
            raise ConfigError(f"{self.path}: {err}") from None

    def trial_config(self, params: dict[str, Any]) -> ExperimentConfig:
        """The config of one trial: the base with the sampled values."""
        values = copy.deepcopy(self.base)
        for key, value in params.items():
            set_dotted(values, key, value)
        return build_config(values, source=f"{self.path} (trial parameters {params})")


def load_space(name_or_path: str, overrides: list[str] = ()) -> SearchSpace:
    """Load and validate a search space: base config, search section, metric, tune settings.

    Every value the `search:` section can give a trial is checked the way the trial will build its config,
    so a space that can sample an invalid combination fails here, before Ray starts.
    """
    path, values = load_space_file(name_or_path)
    base = copy.deepcopy(values["base"] or {})
    config = build_config(base, overrides, source=str(path))
    base = config_to_dict(config)  # overrides applied, every default spelt out
    where = str(path)
    try:
        objectives = parse_objectives(values)
        constraints = parse_constraints(values, config.objective.adversarial)
        tune_section = values.get("tune") or {}
        if isinstance(tune_section, dict) and "scheduler" not in tune_section and len(objectives) > 1:
            tune_section = dict(tune_section)
            tune_section["scheduler"] = "mo_asha"  # several objectives: successive halving that keeps the front
        tune = build_dataclass(TuneSettings, tune_section, "tune")
        if values.get("schedule") is not None:  # PBT hook: best_config.yaml's section, for raysearch.train
            raise ConfigError("schedule: is a PBT winner's schedule for `raysearch.train --config`; a search "
                              "space has none")
        check_scheduler(tune.scheduler, objectives)
        params = tuple(_parse_params(values.get("search") or {}, config))
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    space = SearchSpace(path, str(values.get("description", "")).strip(), base, config, params, objectives,
                        constraints, tune)
    space.check_trials(tune)
    return space


def check_scheduler(scheduler: str, objectives: tuple[Objective, ...]) -> None:
    """ASHA ranks by one metric and MO-ASHA by several: refuse the one that does not fit the objectives."""
    if scheduler == "asha" and len(objectives) > 1:
        raise ConfigError(f"tune.scheduler: asha stops trials by one metric, and this space has "
                          f"{len(objectives)} objectives; use mo_asha (successive halving by Pareto front) or none")
    if scheduler in ("pbt", "pb2") and len(objectives) > 1:  # PBT hook
        raise ConfigError(f"tune.scheduler: {scheduler} copies the members best by one metric, and this space has "
                          f"{len(objectives)} objectives; use mo_asha or none")
    if scheduler == "mo_asha" and len(objectives) == 1:
        raise ConfigError(f"tune.scheduler: mo_asha is for several objectives, and this space has one "
                          f"({objectives[0].metric}); use asha or none")


def _parse_params(section: Any, config: ExperimentConfig) -> list[Param]:
    if not isinstance(section, dict):
        raise ConfigError(f"search: expected a mapping of dotted keys to distributions, got {section!r}")
    base = config_to_dict(config)
    flat = flatten(base)
    params: list[Param] = []
    for key, spec in section.items():
        where = f"search.{key}"
        if key not in flat:
            raise ConfigError(f"{where}: not a config key{close_match_hint(str(key), list(flat))}")
        param = _parse_param(key, spec, where, [p.key for p in params], list(section), flat)
        for value in probe_values(param):
            _check_value(base, key, value, where)
        _check_when(param, params, base, flat, where)
        params.append(param)
    return params


def _parse_param(key: str, spec: Any, where: str, earlier: list[str], searched: list[str], flat: dict[str, Any]) -> Param:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping like {{loguniform: [1.0e-5, 1.0e-3]}}, got {spec!r}")
    kinds = [k for k in spec if k in KINDS]
    unknown = [k for k in spec if k not in KINDS and k != "when"]
    if unknown or len(kinds) != 1:
        raise ConfigError(f"{where}: give exactly one of {', '.join(KINDS)} (and optionally when), got {', '.join(map(str, spec))}")
    kind = kinds[0]
    args = spec[kind]
    when = _parse_when(spec.get("when") or {}, where, earlier, searched, flat)
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise ConfigError(f"{where}: choice needs a non-empty list, got {args!r}")
        return Param(key, kind, choices=tuple(args), when=when)
    if not (isinstance(args, list) and len(args) == 2 and all(_is_number(a) for a in args)):
        raise ConfigError(f"{where}: {kind} needs [low, high] finite numbers, got {args!r}")
    low, high = (float(a) for a in args) if kind != "int" else args
    if kind == "int" and not all(isinstance(a, int) for a in args):
        raise ConfigError(f"{where}: int needs integer bounds, got {args!r}")
    if not low < high:
        raise ConfigError(f"{where}: low must be below high, got [{low}, {high}]")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{where}: loguniform needs low > 0, got {low}")
    return Param(key, kind, low, high, when=when)


def _parse_when(
    when: Any, where: str, earlier: list[str], searched: list[str], flat: dict[str, Any]
) -> dict[str, tuple[Any, ...]]:
    if not isinstance(when, dict):
        raise ConfigError(f"{where}.when: expected a mapping like {{objective.name: wgan}}, got {when!r}")
    parsed = {}
    for key, allowed in when.items():
        if key not in flat:
            raise ConfigError(f"{where}.when: {key!r} is not a config key{close_match_hint(str(key), list(flat))}")
        if key in searched and key not in earlier:
            raise ConfigError(f"{where}.when: {key!r} is searched later in the file; list it before {where}")
        parsed[key] = tuple(allowed) if isinstance(allowed, list) else (allowed,)
    return parsed


# An int range this short is probed value by value (kernel sizes, step ratios); a longer one at its ends.
ENUMERATED_INT_RANGE = 64


def probe_values(param: Param) -> list[Any]:
    """The values of a parameter that load-time checks try: every choice, every int of a short range,
    else the bounds (a continuous range's rules are monotone in practice: `>= 0`, `in (0, 1]`)."""
    if param.kind == "choice":
        return list(param.choices)
    if param.kind == "int":
        if param.high - param.low < ENUMERATED_INT_RANGE:
            return list(range(param.low, param.high + 1))
        return [param.low, param.low + 1, param.high - 1, param.high]
    return [param.low, param.high]


def _check_when(param: Param, earlier: list[Param], base: dict[str, Any], flat: dict[str, Any], where: str) -> None:
    """Each `when` value must be one the key accepts, and one the key can take in a trial (else it never matches)."""
    searched = {p.key: p for p in earlier}
    for key, allowed in param.when.items():
        for value in allowed:
            _check_value(base, key, value, f"{where}.when.{key}")
        condition = searched.get(key)
        possible = [] if condition is None else [v for v in allowed if condition.contains(v)]
        if condition is None or condition.when:  # unsearched, or not always sampled: the base value occurs
            possible += [v for v in allowed if v == flat[key]]
        if condition is not None:
            never = [v for v in allowed if not condition.contains(v)]
            if never and not (condition.when and all(v == flat[key] for v in never)):
                raise ConfigError(f"{where}.when: {key} is never {never[0]!r} (searched as {_describe(condition)})")
        if not possible:
            raise ConfigError(f"{where}.when: {key} is {flat[key]!r} (the base value; it is not searched), never "
                              f"{' or '.join(map(repr, allowed))}: this parameter would never be sampled")


def _describe(param: Param) -> str:
    if param.kind == "choice":
        return f"choice of {', '.join(map(repr, param.choices))}"
    return f"{param.kind} in [{param.low}, {param.high}]"


# ---------------------------------------------------------------- every config a trial can get


def check_reachable_configs(params: tuple[Param, ...], base: dict[str, Any], fixed: dict[str, Any]) -> None:
    """Build, as a trial would, configs covering every probed value of each parameter and every pair of them.

    The rules between options (check_combinations) are between two keys, so covering pairs finds the
    combinations a searcher can sample that no trial could train. Raise ConfigError naming the first.
    """
    probes = {p.key: probe_values(p) for p in params}
    # Pairs take an int range's ends and their neighbours only, so the count stays small for long ranges.
    pair_probes = {key: values if len(values) <= 8 or _param(params, key).kind == "choice"
                   else [values[0], values[1], values[-2], values[-1]] for key, values in probes.items()}
    flat_base = flatten(base)
    targets: list[dict[str, Any]] = [{}]
    targets += [{p.key: v} for p in params for v in probes[p.key]]
    targets += [{p.key: v, q.key: w} for i, p in enumerate(params) for q in params[i + 1:]
                for v in pair_probes[p.key] for w in pair_probes[q.key]]
    tried: set[tuple] = set()
    for target in targets:
        chosen = _assignment(params, probes, flat_base, target)
        if chosen is None:
            continue  # these values never occur together (a `when` excludes one)
        signature = tuple(sorted((k, repr(v)) for k, v in chosen.items()))
        if signature in tried:
            continue
        tried.add(signature)
        values = copy.deepcopy(base)
        for key, value in {**chosen, **fixed}.items():
            set_dotted(values, key, value)
        try:
            check_combinations(build_dataclass(ExperimentConfig, values))
        except ConfigError as err:
            shown = target or chosen
            sample = " with ".join(f"{k}={v!r}" for k, v in shown.items()) or "the base config"
            raise ConfigError(f"search: a trial can sample {sample}, which is invalid: {err}") from None


def _assignment(params: tuple[Param, ...], probes: dict[str, list[Any]], flat_base: dict[str, Any],
                target: dict[str, Any]) -> dict[str, Any] | None:
    """The parameters one trial samples when it gets `target`'s values: the conditions that make the targets
    apply are met, every other parameter takes its first probed value. None if the targets cannot co-occur."""
    wanted = dict(target)
    for param in reversed(params):  # a condition's key comes earlier in the file than its parameter
        if param.key not in wanted:
            continue
        for key, allowed in param.when.items():
            if key in wanted or key not in probes:
                continue
            matching = [v for v in probes[key] if v in allowed] or [v for v in allowed if _param(params, key).contains(v)]
            if not matching:
                return None
            wanted[key] = matching[0]
    values = dict(flat_base)
    chosen: dict[str, Any] = {}
    for param in params:
        if param.applies(values):
            chosen[param.key] = values[param.key] = wanted.get(param.key, probes[param.key][0])
    return chosen if all(key in chosen for key in target) else None


def _param(params: tuple[Param, ...], key: str) -> Param:
    return next(p for p in params if p.key == key)


def _check_value(base: dict[str, Any], key: str, value: Any, where: str) -> None:
    """The value must be one the typed config accepts for this key (type, range)."""
    values = copy.deepcopy(base)
    set_dotted(values, key, value)
    try:
        build_dataclass(ExperimentConfig, values)
    except ConfigError as err:
        raise ConfigError(f"{where}: value {value!r} is not valid for this key ({err})") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

