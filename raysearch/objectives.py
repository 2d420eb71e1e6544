"""What a search optimises: one or several objectives (reported metrics, each in its registered direction) and
the constraints a trial must meet to count, some relative to the classical fills of the search's data.

A space file says either

    metric: val/swd_band          # one objective (mode: optional, must be the metric's own direction)

or

    objectives:                   # several: the search answers with their front of non-dominated trials
      val/psnr: max
      val/swd_band: min

and optionally

    constraints:
      val/psnr: {at_least: -1.0, relative_to: best_fill}   # the PSNR score >= the best classical fill's - 1 dB
      val/ssim: {at_least: 0.3}

A GAN space (an adversarial objective) that says nothing about constraints keeps the fidelity floor every
GAN search has had: PSNR no more than 1 dB under the best classical fill (`DEFAULT_GAN_CONSTRAINTS`), since
L2 alone rewards blur and realism alone rewards noise; `constraints: {}` drops it.

A constraint is on a trial's score (the mean of its last epochs, constants.score_key), like the objectives.
`relative_to: best_fill` is resolved against the classical fills of the search's data (raysearch.baselines)
before Ray starts: the best fill of that metric in its own direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from raysearch.config import close_match_hint
from raysearch.errors import ConfigError
from raysearch.evaluate import reported_metrics

MAX_OBJECTIVES = 3  # the front and its hypervolume are exact for any number; past 3 nobody can read the plot
RELATIVE_TO = ("best_fill",)
FIDELITY_METRIC = "val/psnr"
FIDELITY_MARGIN_DB = 1.0  # a GAN trial may lose up to 1 dB of PSNR against the best classical fill


@dataclass(frozen=True)
class Objective:
    """A reported metric the search optimises, in its registered direction."""

    metric: str  # e.g. val/psnr
    mode: str  # min or max


@dataclass(frozen=True)
class Constraint:
    """A reported value that must stay on one side of a bound, e.g. `Constraint("val/psnr", ">=", 16.4)`."""

    metric: str
    op: str  # ">=" or "<="
    bound: float

    def __post_init__(self) -> None:
        if self.op not in (">=", "<="):
            raise ValueError(f"constraint on {self.metric}: operator {self.op!r} is not one of >=, <=")
        if not math.isfinite(self.bound):
            raise ValueError(f"constraint on {self.metric}: bound {self.bound!r} is not a finite number")

    @property
    def name(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"

    def violation(self, value: float) -> float:
        """How far `value` is on the wrong side of the bound (Optuna's convention: > 0 is infeasible)."""
        return self.bound - value if self.op == ">=" else value - self.bound

    def holds(self, value: float | None) -> bool:
        """Whether a value meets the constraint (a missing or non-finite one never does)."""
        return value is not None and math.isfinite(value) and self.violation(value) <= 0


@dataclass(frozen=True)
class ConstraintSpec:
    """A constraint as a space file states it: its bound absolute, or an offset from the best classical fill."""

    metric: str
    op: str
    value: float
    relative_to: str | None = None

    def resolve(self, baselines: dict[str, dict[str, float]] | None) -> Constraint:
        """The constraint with its bound in the metric's units; ConfigError when it needs classical fills that
        are not there."""
        if self.relative_to is None:
            return Constraint(self.metric, self.op, self.value)
        scored = [row[self.metric] for row in (baselines or {}).values() if self.metric in row]
        if not scored:
            raise ConfigError(f"constraints.{self.metric}: relative_to best_fill needs the classical fills of "
                              "the search's data, and none were computed")
        best = max(scored) if reported_metrics()[self.metric].direction == "max" else min(scored)
        return Constraint(self.metric, self.op, best + self.value)

    def describe(self) -> str:
        if self.relative_to is None:
            return f"{self.metric} {self.op} {self.value:g}"
        return f"{self.metric} {self.op} best fill {'+' if self.value >= 0 else '-'} {abs(self.value):g}"


DEFAULT_GAN_CONSTRAINTS = (ConstraintSpec(FIDELITY_METRIC, ">=", -FIDELITY_MARGIN_DB, "best_fill"),)


def parse_objectives(values: dict[str, Any]) -> tuple[Objective, ...]:
    """The objectives of a space file's `metric`/`mode` or `objectives` keys; ConfigError naming the key."""
    directions = {key: metric.direction for key, metric in reported_metrics().items()}
    if "objectives" in values:
        if "metric" in values or "mode" in values:
            raise ConfigError("objectives: give either metric (and mode) or objectives, not both")
        section = values["objectives"]
        if not isinstance(section, dict) or not section:
            raise ConfigError(f"objectives: expected a mapping of metrics to min or max, e.g. "
                              f"{{val/psnr: max, val/swd_band: min}}, got {section!r}")
        if len(section) > MAX_OBJECTIVES:
            raise ConfigError(f"objectives: at most {MAX_OBJECTIVES}, got {len(section)}")
        return tuple(_objective(str(metric), mode, directions, f"objectives.{metric}")
                     for metric, mode in section.items())
    metric = values.get("metric", FIDELITY_METRIC)
    return (_objective(str(metric), values.get("mode"), directions, "metric", mode_key="mode"),)


def _objective(metric: str, mode: Any, directions: dict[str, str], key: str, mode_key: str | None = None) -> Objective:
    if metric not in directions:
        raise ConfigError(f"{key}: {metric!r} is not reported{close_match_hint(metric, list(directions))}; "
                          f"allowed: {', '.join(directions)}")
    where = mode_key or key
    if mode is None and mode_key:
        mode = directions[metric]
    if mode not in ("min", "max"):
        raise ConfigError(f"{where}: must be min or max, got {mode!r}")
    if mode != directions[metric]:
        better = "lower" if directions[metric] == "min" else "higher"
        advice = f"use {mode_key}: {directions[metric]}, or leave {mode_key} out" if mode_key else \
            f"use {directions[metric]}"
        raise ConfigError(f"{where}: {mode} does not fit metric {metric} ({better} is better): {advice}")
    return Objective(metric, mode)


def parse_constraints(values: dict[str, Any], adversarial: bool) -> tuple[ConstraintSpec, ...]:
    """The constraints of a space file's `constraints` key (the GAN default when it has none)."""
    if "constraints" not in values:
        return DEFAULT_GAN_CONSTRAINTS if adversarial else ()
    section = values["constraints"] or {}
    if not isinstance(section, dict):
        raise ConfigError(f"constraints: expected a mapping of metrics to {{at_least: V}} or {{at_most: V}} "
                          f"(optionally with relative_to: best_fill), got {section!r}")
    reported = list(reported_metrics())
    specs = []
    for metric, rule in section.items():
        key = f"constraints.{metric}"
        if metric not in reported:
            raise ConfigError(f"{key}: {metric!r} is not reported{close_match_hint(str(metric), reported)}; "
                              f"allowed: {', '.join(reported)}")
        if not isinstance(rule, dict):
            raise ConfigError(f"{key}: expected {{at_least: V}} or {{at_most: V}}, got {rule!r}")
        unknown = [k for k in rule if k not in ("at_least", "at_most", "relative_to")]
        bounds = [k for k in ("at_least", "at_most") if k in rule]
        if unknown or len(bounds) != 1:
            raise ConfigError(f"{key}: give exactly one of at_least, at_most (and optionally relative_to), got "
                              f"{', '.join(map(str, rule)) or 'nothing'}")
        value = rule[bounds[0]]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{key}.{bounds[0]}: expected a finite number, got {value!r}")
        relative_to = rule.get("relative_to")
        if relative_to is not None and relative_to not in RELATIVE_TO:
            raise ConfigError(f"{key}.relative_to: {relative_to!r} is not one of {', '.join(RELATIVE_TO)}")
        specs.append(ConstraintSpec(str(metric), ">=" if bounds[0] == "at_least" else "<=", float(value),
                                    relative_to))
    return tuple(specs)


def constraints_hold(constraints: tuple[Constraint, ...] | list[Constraint], scores: dict[str, float | None]) -> bool:
    """Whether every constraint holds for a trial's `scores` (metric -> its score)."""
    return all(c.holds(scores.get(c.metric)) for c in constraints)
