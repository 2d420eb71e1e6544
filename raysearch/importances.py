"""Parameter importances of an experiment's metric: Optuna's PED-ANOVA evaluator on an in-memory study built
from the trials that reached a final value (finished, stopped by the scheduler, or diverged), with
distributions from the space's `search:` section.

A trial's value is its final reported one, what the search's own Optuna searcher saw (so a trial ASHA stopped
early counts with its value then). Diverged trials are included with the worst value they reported, which is
what the searcher learned from too: that a learning rate diverges is what its importance should show.
PED-ANOVA compares the best trials with all of them, so those worst values are not outliers that swamp the
rest (as they would in fANOVA's variance decomposition); it handles the conditional (`when:`) parameters, and
it needs no scikit-learn (fANOVA does).
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

from raysearch.errors import RaysearchError
from raysearch.experiment import Experiment
from raysearch.spaces import load_space

MIN_IMPORTANCE_TRIALS = 2


@dataclasses.dataclass(frozen=True)
class Importances:
    method: str
    trials: int  # how many trials the evaluation used
    values: dict[str, float]  # param -> importance, sums to 1, most important first
    constant: list[str]  # searched params that never varied over those trials
    note: str | None  # why there are no values, or what to keep in mind

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _distributions(experiment: Experiment, points: list[dict[str, Any]]) -> tuple[dict[str, Any], str | None]:
    """param -> Optuna distribution, from the space's `search:` section (widened to every observed value)."""
    params: dict[str, Any] = {}
    note = None
    space_path = str(experiment.record["space"])
    # The recorded path, else this checkout's space of that name (an experiment analysed on another machine).
    for candidate in dict.fromkeys([space_path, Path(space_path).stem]):
        try:
            params = {p.key: p for p in load_space(candidate, list(experiment.record["overrides"])).params}
            note = None if candidate == space_path else f"{space_path} is not here: ranges from search space {candidate!r}"
            break
        except RaysearchError as err:
            note = f"the space {space_path} cannot be loaded here ({err}); ranges taken from the trials' values"
    observed: dict[str, list[Any]] = {}
    for point in points:
        for key, value in point.items():
            observed.setdefault(key, []).append(value)
    distributions = {}
    for key, values in observed.items():
        param = params.get(key)
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if (param is not None and param.kind == "choice") or not numeric:
            choices = [_scalar(c) for c in param.choices] if param is not None and param.kind == "choice" else []
            choices += [v for v in dict.fromkeys(values) if v not in choices]
            distributions[key] = CategoricalDistribution(choices)
        elif (param is not None and param.kind == "int") or (param is None and all(isinstance(v, int) for v in values)):
            low, high = (param.low, param.high) if param is not None else (min(values), max(values))
            distributions[key] = IntDistribution(int(min(low, *values)), int(max(high, *values)))
        else:
            low, high = (param.low, param.high) if param is not None else (min(values), max(values))
            log = param is not None and param.kind == "loguniform" and min(values) > 0
            low, high = float(min(low, *values)), float(max(high, *values))
            distributions[key] = FloatDistribution(low, high if high > low else low + 1.0, log=log)
    return distributions, note


def importances(experiment: Experiment) -> Importances:
    """PED-ANOVA importances of the searched parameters for the experiment's metric."""
    trials = [t for t in experiment.finished() if _finite(t.last.get(experiment.metric))]
    # The best trials against all of them: the best 10%, but at least 2 trials (Optuna's default 0.1 means
    # a single trial below 20) and at most half.
    quantile = min(0.5, max(0.1, 2 / max(len(trials), 1)))
    method = f"optuna PedAnovaImportanceEvaluator(target_quantile={quantile:.2g})"
    if len(trials) < MIN_IMPORTANCE_TRIALS:
        return Importances(method, len(trials), {}, [], f"{len(trials)} trial(s) with a final {experiment.metric}; "
                           f"importances need at least {MIN_IMPORTANCE_TRIALS}")

    points = [{key: _scalar(value) for key, value in t.params.items()} for t in trials]
    distributions, note = _distributions(experiment, points)
    varied = {key for key in distributions if len({repr(p[key]) for p in points if key in p}) > 1}
    constant = sorted(set(distributions) - varied)
    if not varied:
        return Importances(method, len(trials), {}, constant, "no searched parameter took more than one value "
                           "over these trials")
    values = [float(t.last[experiment.metric]) for t in trials]
    if max(values) == min(values):
        return Importances(method, len(trials), {}, constant, f"every trial has the same {experiment.metric}")
    frozen = [optuna.trial.create_trial(params=point, distributions={k: distributions[k] for k in point}, value=value)
              for point, value in zip(points, values)]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize" if experiment.mode == "min" else "maximize")
    study.add_trials(frozen)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's experimental-feature and few-trials warnings
        raw = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator(target_quantile=quantile),
                                    params=sorted(varied), normalize=False)
    total = sum(raw.values())
    if total <= 0:
        return Importances(method, len(trials), {}, constant, "no parameter separates the best trials from the rest")
    ordered = dict(sorted(((k, v / total) for k, v in raw.items()), key=lambda kv: -kv[1]))
    best = math.ceil(quantile * len(trials))
    if best < 5:
        few = f"the best group holds {best} of {len(trials)} trials (Optuna advises at least 5): a rough indication"
        note = f"{note}; {few}" if note else few
    return Importances(method, len(trials), ordered, constant, note)


def format_importances(result: Importances, experiment: Experiment) -> str:
    diverged = sum(1 for t in experiment.finished() if t.status == "diverged")
    lines = [f"Parameter importances for {experiment.metric} ({result.method}, {result.trials} trials"
             + (f", {diverged} diverged counted with their worst value" if diverged else "") + "):"]
    if result.values:
        width = max(len(k) for k in result.values)
        for key, value in result.values.items():
            lines.append(f"  {key.ljust(width)}  {value:6.3f}  {'#' * round(value * 40)}")
    if result.constant:
        lines.append(f"  did not vary: {', '.join(result.constant)}")
    if result.note:
        lines.append(f"  note: {result.note}")
    return "\n".join(lines)


def _scalar(value: Any) -> Any:
    """What an Optuna categorical accepts: lists and mappings become their JSON text."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value, sort_keys=True)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
