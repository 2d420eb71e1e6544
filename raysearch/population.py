"""The starting population of a PBT search: seeded random samples of the space, or the top configs of a
finished search (`--init-from EXPERIMENT`, `tune.pbt.init_from`), topped up with samples when it has fewer.

Ray's PBT allows no search algorithm, so the members are fixed before the search
starts and handed to Tune as its points to evaluate. Without Ray: `tune` checks
`--init-from` before Ray starts.
"""

from __future__ import annotations

import random
import sys
from typing import Any

from raysearch.errors import ConfigError, RaysearchError
from raysearch.pbt import draw
from raysearch.spaces import SearchSpace, TuneSettings


def sample_population(space: SearchSpace, count: int, seed: int) -> list[dict[str, Any]]:
    """`count` seeded random samples of the space's searched keys (a `when` applied as the searcher applies it)."""
    rng = random.Random(f"raysearch-population:{seed}")
    members = []
    for _ in range(count):
        values, member = space.flat_base(), {}
        for param in space.params:
            if param.applies(values):
                values[param.key] = member[param.key] = draw(param, rng)
        members.append(member)
    return members


def population_from(location: str, space: SearchSpace, count: int) -> list[dict[str, Any]]:
    """The searched values of the best `count` trials of the finished experiment at `location`, ranked as its
    table ranks them (ended trials with a score; diverged and failed ones left out). ConfigError in one line for
    an experiment that cannot be read, or whose trials searched other keys or left this space's ranges."""
    from raysearch.experiment import open_experiment  # reads Tune's state: imports Ray's Tune, starts nothing

    where = f"--init-from {location}"
    try:
        experiment = open_experiment(location)
        _, constraints = experiment.fills(log=lambda line: None)
        rows = experiment.rows(constraints)
    except RaysearchError as err:
        raise ConfigError(f"{where}: {err}") from None
    if experiment.metric != space.metric or experiment.mode != space.mode:
        raise ConfigError(f"{where}: it ranked by {experiment.metric} ({experiment.mode}), this space by "
                          f"{space.metric} ({space.mode}): its top configs are not this search's")
    searched = {p.key: p for p in space.params}
    members = []
    for row in rows:
        if row.status not in ("finished", "stopped", "interrupted") or row.score is None:
            continue
        params = {key: value for key, value in row.params.items()}
        for key, value in params.items():
            param = searched.get(key)
            if param is None:
                raise ConfigError(f"{where}: trial {row.trial} set {key}, which {space.path.name} does not search")
            if not param.contains(value):
                raise ConfigError(f"{where}: trial {row.trial} has {key}={value!r}, outside this space's "
                                  f"{param.kind} range")
        members.append(params)
        if len(members) == count:
            break
    if not members:
        raise ConfigError(f"{where}: no trial of it ended with a score (finished, stopped or interrupted)")
    return members


def starting_population(space: SearchSpace, settings: TuneSettings, log=None) -> list[dict[str, Any]]:
    """tune.num_samples members: the init_from experiment's top configs first, seeded samples for the rest."""
    count, init_from = settings.num_samples, settings.pbt.init_from
    members = population_from(init_from, space, count) if init_from else []
    if init_from and len(members) < count:
        (log or (lambda line: print(line, file=sys.stderr)))(
            f"--init-from {init_from}: {len(members)} trial(s) with a score; {count - len(members)} more members "
            f"are seeded samples of the space (seed {settings.seed})")
    return members + sample_population(space, count - len(members), settings.seed)
