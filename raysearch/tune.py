"""`python -m raysearch.tune SPACE`: a resumable Ray Tune + Optuna search.

This module is the command: it checks everything before Ray starts, records
the experiment, and hands the search to `raysearch.runtime`, where each trial
trains in its Tune actor (or on Train's DDP workers) and Tune reuses the actor
for the next trial.

Optuna's seeded multivariate TPE proposes configs (the base config first);
ASHA stops bad trials on the trial's own `epoch`. Both read the trial's score
`score/<metric>` (the mean of its last epochs, see constants.py), never one
epoch's value. The console shows `progress.SearchProgress`'s table; Ctrl-C
ends with the table and the raysearch command that resumes (report.py). Diverged trials report the
worst value of every metric and finish normally, so the searcher learns from
them and the experiment goes on. `--resume` restores an interrupted experiment;
Train's own restore brings each unfinished trial back to its last checkpoint.

One driver runs an experiment at a time (experiment_lock). SIGTERM stops a
search as Ctrl-C does; a cluster or a storage that fails under it, a dead
cluster address, a damaged experiment each end in one line with what is kept
and the command that continues (faults; docs/faults.md lists them all).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

from raysearch import cli, cluster_health, experiment_lock, faults, storage_health
from raysearch import storage as storage_io
from raysearch.baselines import baselines_of
from raysearch.config import build_dataclass, config_to_dict, list_spaces, parse_yaml
from raysearch.constants import EXPERIMENT_FILE, SMOKE_OVERRIDES, score_key
from raysearch.data.check import captions_possible, check_source
from raysearch.errors import ConfigError, RaysearchError
from raysearch.evaluate import reported_metrics
from raysearch.objectives import Constraint
from raysearch.report import resume_command, write_report
from raysearch.rows import search_constraints
from raysearch.saved_state import (TUNER_FILE, check_journal, check_record_complete, check_resumable,
                                   drop_partial_record)
from raysearch.spaces import SearchSpace, TuneSettings, load_space
from raysearch.stop_signals import sigterm_as_ctrl_c
from raysearch.storage_health import StorageFault
from raysearch.study import STUDY_FILE, fetch_journal, local_journal, publish_journal, study_mismatch
from raysearch.summaries import HParamColumn, write_baseline_runs, write_experiment_hparams
from raysearch import pbt  # PBT hook

# --smoke-test (Ray's convention): a tiny budget on constants.SMOKE_OVERRIDES' tiny dataset.
SMOKE_TUNE = {"num_samples": 3, "max_epochs": 2, "grace_period": 1, "max_concurrent": 2}


# ---------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.ArgumentParser(
        prog="python -m raysearch.tune",
        description="Search a space's hyperparameters with Ray Tune + Optuna; every trial is a Ray Train run.",
    )
    parser.add_argument("space", help=f"search space name or YAML path ({', '.join(list_spaces())})")
    parser.add_argument("--num-samples", type=int, help="trials to run (tune.num_samples)")
    parser.add_argument("--max-epochs", type=int, help="epochs of a trial that is not stopped early (tune.max_epochs)")
    parser.add_argument("--smoke-test", action="store_true", help="a tiny search on a tiny dataset (about 2 minutes)")
    parser.add_argument("--data", help="prepared dataset directory or URI (default: the synthetic dataset)")
    parser.add_argument("--storage", default=os.environ.get("RAYSEARCH_STORAGE", "runs/tune"),
                        help="experiments directory or URI (default $RAYSEARCH_STORAGE, else runs/tune; "
                        "on a multi-node cluster a shared filesystem or a cloud URI)")
    parser.add_argument("--name", help="experiment name (default SPACE-TIME; with --resume, the experiment to resume)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted experiment (--name, or the latest of SPACE)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a base value, e.g. --set objective.l2_weight=1e-5 (repeatable)")
    parser.add_argument("--address", help="Ray cluster address; `local` starts a private local Ray "
                        "(default: the cluster running on this machine, else a local Ray)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved base config, search space and settings, then exit")
    parser.add_argument("--verbose", action="store_true", help="also print Ray's per-trial results, checkpoint lines and warnings")
    parser.add_argument("--init-from", metavar="EXPERIMENT", help="scheduler pbt/pb2: start the population from this "
                        "finished experiment's top configs (tune.pbt.init_from)")
    args = parser.parse_args(argv)
    for flag in ("num_samples", "max_epochs"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1, got {value}")
    return args


def resolve_settings(space: SearchSpace, args: argparse.Namespace) -> TuneSettings:
    changes: dict[str, Any] = dict(SMOKE_TUNE) if args.smoke_test else {}
    if args.num_samples:
        changes["num_samples"] = args.num_samples
    if args.max_epochs:
        changes["max_epochs"] = args.max_epochs
    changes.update(pbt_changes(space, args))
    return dataclasses.replace(space.tune, **changes)


def pbt_changes(space: SearchSpace, args: argparse.Namespace) -> dict[str, Any]:
    """PBT hook: --init-from, and a perturbation within --smoke-test's 2 epochs."""
    if not pbt.is_population_based(space.tune):
        if getattr(args, "init_from", None):
            raise ConfigError(f"--init-from: starts a PBT population; {space.path.name}'s tune.scheduler is "
                              f"{space.tune.scheduler} (allowed with: {', '.join(pbt.POPULATION_SCHEDULERS)})")
        return {}
    block = space.tune.pbt
    if getattr(args, "init_from", None):
        block = dataclasses.replace(block, init_from=args.init_from)
    if args.smoke_test:
        block = dataclasses.replace(block, interval=1)
    return {"pbt": block} if block != space.tune.pbt else {}


def experiment_location(args: argparse.Namespace, space: SearchSpace) -> tuple[str, str]:
    """(storage root, experiment name); for --resume without --name, the latest experiment of the space."""
    storage = args.storage if storage_io.is_uri(args.storage) else str(Path(args.storage).resolve())
    if args.name:
        return storage, args.name
    if args.resume:
        prefix, root = f"{space.path.stem}-", storage_io.Storage(storage)
        candidates = [name for name, is_dir in root.list_dir()
                      if is_dir and name.startswith(prefix) and root.kind(f"{name}/{EXPERIMENT_FILE}") == "file"]
        if not candidates:
            raise ConfigError(f"--resume: no experiment of {space.path.stem!r} under {storage}; give --name")
        return storage, candidates[-1]
    return storage, f"{space.path.stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def dry_run(space: SearchSpace, settings: TuneSettings) -> None:
    print(yaml.safe_dump({
        "space": str(space.path),
        "base": space.base,
        "search": {p.key: _describe(p) for p in space.params},
        "objectives": {o.metric: o.mode for o in space.objectives},
        "constraints": [c.describe() for c in space.constraints],
        "tune": dataclasses.asdict(settings),
    }, sort_keys=False), end="")


def _describe(param) -> dict[str, Any]:
    spec: dict[str, Any] = {param.kind: list(param.choices) if param.kind == "choice" else [param.low, param.high]}
    if param.when:
        spec["when"] = {k: list(v) for k, v in param.when.items()}
    return spec


# Exit statuses: 0 the search ended (finished, or stopped by Ctrl-C with its resume command printed);
# 2 refused before Ray started (bad input, no cluster at --address, a damaged experiment, another driver);
# 3 stopped by a fault of the cluster or the storage, after one line naming it and the resume command;
# 143 (128 + SIGTERM) stopped by SIGTERM as by Ctrl-C, so a scheduler sees that the search did not finish.
EXIT_REFUSED = 2
EXIT_FAULT = 3
EXIT_SIGTERM = 128 + signal.SIGTERM
EXIT_CTRL_C = 128 + signal.SIGINT  # Ctrl-C before Tune took it over (during the search Tune's stop is a 0)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = (SMOKE_OVERRIDES if args.smoke_test else []) + list(args.overrides)
    if args.data:
        overrides.append(f"data.path={args.data}")
    try:
        space = load_space(args.space, overrides)
        settings = resolve_settings(space, args)
        storage_io.open_root(args.storage)
        storage, name = experiment_location(args, space)
        experiment_path = storage_io.join(storage, name)
        if args.resume:
            # The experiment's own record wins over today's flags: same space, overrides, budget.
            space, overrides, settings = recorded_experiment(experiment_path)
        elif not args.dry_run:
            check_new(storage, name)
        space.check_trials(settings)  # again with --max-epochs / --smoke-test's budget
        if pbt.is_population_based(settings) and settings.pbt.init_from and not args.resume:
            from raysearch.population import starting_population  # PBT hook: --init-from read before Ray starts

            starting_population(space, settings)
        if not args.dry_run:
            cli.check_gpu_before_ray(space.config.train.device, args.address)
        check_source(space.config.data.path, captions=captions_possible(space.config, space.params))
        if args.resume:
            check_study(storage_io.join(storage, name), name, space)
            check_resumable(storage_io.Storage(experiment_path))  # Tune's saved state whole, before Ray reads it
        # The classical fills of a new experiment (once per dataset, then cached beside it), before Ray starts:
        # its constraints may be relative to them.
        baselines = None if args.dry_run or args.resume else baselines_of(space.config)
        if baselines is not None:
            space.bounds(baselines)
    except RaysearchError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_REFUSED
    if args.dry_run:
        dry_run(space, settings)
        return 0

    from raysearch import runtime  # Ray (seconds to import) only once the input is checked

    with ExitStack() as held:
        try:
            # One driver per experiment, taken before Ray starts and held until this process ends.
            held.enter_context(experiment_lock.hold(experiment_path))
            if args.resume:
                drop_cut_journal_record(experiment_path)
            runtime.start_ray(args.address, log_to_driver=args.verbose, device=space.config.train.device)
            cli.check_gpu_on_cluster(space.config.train.device)
        except RaysearchError as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_REFUSED
        return search_and_report(space, settings, overrides, storage, name, args.resume, args.verbose, baselines)


def search_and_report(space: SearchSpace, settings: TuneSettings, overrides: list[str], storage: str, name: str,
                      resume: bool, verbose: bool, baselines: dict[str, dict[str, float]] | None) -> int:
    """Run the search on the Ray this process is attached to, through the faults a cluster has, and report.

    SIGTERM stops it as Ctrl-C does; a cluster that stops answering, or a storage that stops taking writes,
    ends it with one line saying what happened, what is kept and the command that continues it
    (raysearch.faults; docs/faults.md).
    """
    from raysearch import runtime

    experiment_path = storage_io.join(storage, name)
    resume_line = resume_command(space, experiment_path)
    storage_faults: list[StorageFault] = []

    def on_storage_fault(fault: StorageFault) -> None:
        storage_faults.append(fault)
        faults.stop_on_storage_fault(fault, experiment_path, resume_line, EXIT_FAULT)

    def on_lost_cluster(lost: cluster_health.Lost) -> None:
        faults.exit_on_lost_cluster(lost, experiment_path, resume_line, EXIT_FAULT)

    with cluster_health.watch(runtime.attached_address(), on_lost_cluster), \
            storage_health.watch(experiment_path, on_storage_fault), \
            sigterm_as_ctrl_c(lambda: faults.sigterm_notice(resume_line)) as sigterm:
        try:
            results = run_search(space, settings, overrides, storage, name, resume, verbose, baselines)
        except KeyboardInterrupt:  # before Tune took Ctrl-C over (SIGTERM and a storage fault send it too)
            if storage_faults:
                return EXIT_FAULT  # its line is said
            saved = storage_io.Storage(experiment_path).kind(TUNER_FILE) == "file"
            print(f"error: {faults.interrupted_before_tune(experiment_path, resume_line if saved else None)}",
                  file=sys.stderr)
            return EXIT_SIGTERM if sigterm else EXIT_CTRL_C
        except Exception as err:
            failed = faults.storage_failure(err)
            if failed is None:
                raise
            where = failed.path or experiment_path
            print(f"error: {faults.storage_line(where, failed.message, experiment_path, resume_line)}", file=sys.stderr)
            return EXIT_FAULT
    write_report(results, space, settings, experiment_path, baselines=baselines)
    if storage_faults:  # the last line the user sees: what stopped the search and how to go on
        fault = storage_faults[0]
        print(f"error: {faults.storage_line(fault.location, fault.message, experiment_path, resume_line)}",
              file=sys.stderr)
        return EXIT_FAULT
    return EXIT_SIGTERM if sigterm else 0


def drop_cut_journal_record(experiment_path: str) -> None:
    """Before a resume appends to the study's journal: drop a last record a fault cut short (saved_state)."""
    journal = fetch_journal(experiment_path)
    dropped = drop_partial_record(journal)
    if dropped:
        print(f"note: {journal} ended with a record cut short ({dropped} bytes, never read by Optuna): dropped, so "
              "the records this resume adds can be read", file=sys.stderr)


def check_new(storage: str, name: str) -> None:
    """A new experiment must not start over one that already holds a search (its results would be mixed)."""
    if storage_io.Storage(storage).kind(f"{name}/{TUNER_FILE}") == "file":
        raise ConfigError(f"{storage_io.join(storage, name)}: already holds a search; continue it with --resume "
                          f"--name {name}, or give another --name")


RECORD_KEYS = ("space", "overrides", "tune")  # what --resume reads from an experiment's record


def check_study(experiment_path: str, name: str, space: SearchSpace) -> None:
    """--resume continues the experiment's own Optuna study: ConfigError when its journal holds a study with other
    objectives (an experiment from before studies has no journal: its searcher resumes as it was saved)."""
    journal = fetch_journal(experiment_path)
    if not journal.is_file():
        return
    check_journal(journal)  # a damaged record: one line naming it, not Optuna's parse error
    problem = study_mismatch(journal, name, [score_key(o.metric) for o in space.objectives],
                             [o.mode for o in space.objectives])
    if problem:
        raise ConfigError(f"--resume: {problem}; the space's objectives changed since the search started: resume "
                          "with the space as it was, or start a new search")


def recorded_experiment(experiment_path: str) -> tuple[SearchSpace, list[str], TuneSettings]:
    """The space, overrides and settings an experiment was started with (for --resume)."""
    where = storage_io.join(experiment_path, EXPERIMENT_FILE)
    text = storage_io.Storage(experiment_path).read_text(EXPERIMENT_FILE)
    if text is None:
        raise ConfigError(f"--resume: {experiment_path} is not a raysearch experiment (no {EXPERIMENT_FILE})")
    check_record_complete(text, where)
    record = parse_yaml(text, where)
    missing = [key for key in RECORD_KEYS if not isinstance(record, dict) or key not in record]
    if missing:
        raise ConfigError(f"{where}: not a raysearch experiment record (missing {', '.join(missing)}; "
                          f"it needs {', '.join(RECORD_KEYS)}, as tune writes it)")
    if not isinstance(record["space"], str):
        raise ConfigError(f"{where}: space: expected a search-space name or path, got {record['space']!r}")
    overrides = record["overrides"] or []
    if not (isinstance(overrides, list) and all(isinstance(o, str) for o in overrides)):
        raise ConfigError(f"{where}: overrides: expected a list of KEY=VALUE strings, got {overrides!r}")
    try:
        space = load_space(record["space"], overrides)
        settings = build_dataclass(TuneSettings, record["tune"] or {}, "tune")
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    return space, list(overrides), settings


def run_search(space: SearchSpace, settings: TuneSettings, overrides: list[str], storage: str, name: str,
               resume: bool, verbose: bool = False, baselines: dict[str, dict[str, float]] | None = None):
    """Run (or resume) the experiment `storage/name` on the Ray this process is attached to
    (`runtime.start_ray`); return Tune's ResultGrid.

    A new experiment is recorded first (for --resume and analyze), with the classical fills (`baselines`,
    computed here when not given) as TensorBoard reference runs beside its trials.
    """
    # Tune's classic table, which takes a progress reporter (its newer output ignores one).
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Ray (seconds to import) only once the input is checked: --dry-run and a bad flag answer at once.
    from raysearch import runtime
    from raysearch.progress import SearchProgress, quiet_ray_logs

    if not verbose:
        # The trials' own lines (Tune's "Checkpoint successfully created", Ray's actor notices) stay in the
        # trials' logs unless --verbose; a failed trial's error still reaches this console through Tune.
        quiet_ray_logs()
    experiment_path = storage_io.join(storage, name)
    journal = fetch_journal(experiment_path) if resume else local_journal(experiment_path)
    constraints = ()  # a resumed search's searcher comes back with its own
    if not resume:
        fills = baselines if baselines is not None else baselines_of(space.config)
        constraints = space.bounds(fills)
        remember_experiment(experiment_path, space, overrides, settings, constraints)
        write_baseline_runs(storage_io.join(experiment_path, "tensorboard"), fills, settings.max_epochs)
    print(f"Optuna study: optuna-dashboard {journal}", file=sys.stderr)
    progress = SearchProgress([o.metric for o in space.objectives], settings.num_samples, settings.max_epochs,
                              [p.key for p in space.params])
    try:
        return runtime.run_tuner(space, settings, overrides, storage, name, resume=resume, progress=progress,
                                 verbose=verbose, constraints=constraints, journal=journal)
    finally:
        publish_journal(experiment_path)


def remember_experiment(experiment_path: str, space: SearchSpace, overrides: list[str], settings: TuneSettings,
                        constraints: tuple[Constraint, ...] | None = None) -> None:
    """Record what the experiment was started with, so --resume and analyze can rebuild it: its space,
    overrides and budget, its objectives (`metric`/`mode`: the primary one) and constraints (as stated and as
    resolved against the classical fills), and its Optuna study.

    Also the experiment's HParams columns: the searched parameters and the metrics. `constraints` as resolved
    for the search (None: resolved here, against the classical fills of its data).
    """
    if constraints is None:
        constraints = search_constraints(space)
    storage_io.Storage(experiment_path).write_text(EXPERIMENT_FILE, yaml.safe_dump({
        "space": str(space.path), "overrides": overrides, "tune": dataclasses.asdict(settings),
        "metric": space.metric, "mode": space.mode,
        "objectives": {o.metric: o.mode for o in space.objectives},
        "constraints": [{"metric": c.metric, "op": c.op, "bound": c.bound, "stated": spec.describe()}
                        for c, spec in zip(constraints, space.constraints)],
        "study": {"name": experiment_path.rstrip("/").rsplit("/", 1)[-1], "journal": STUDY_FILE},
        "base": config_to_dict(space.config),
    }, sort_keys=False))
    columns = [HParamColumn(p.key, p.kind, tuple(p.choices) if p.kind == "choice" else (), p.low, p.high)
               for p in space.params]
    metrics = list(reported_metrics())
    write_experiment_hparams(storage_io.join(experiment_path, "tensorboard"), columns,
                             [score_key(space.metric)] + metrics + [score_key(m) for m in metrics if m != space.metric])


if __name__ == "__main__":
    raise SystemExit(main())
