"""`python -m raysearch.tune SPACE`: a resumable Ray Tune + Optuna search.

Each Tune trial is a small driver function that builds a Ray Train trainer
(ray_adapter.build_trainer) for its sampled config and forwards the workers'
reports to Tune (`TuneReportCallback`). Tune reuses a driver process for the
next trial; a trial stopped early has its Train run killed first. The driver
holds a custom resource instead of a CPU, so drivers never starve the Train
workers on small machines (Tune rejects `{"CPU": 0}`, and `{"CPU": 0.01}`
deadlocks two trials on 2 cores).

Optuna's seeded multivariate TPE proposes configs (the base config first);
ASHA stops bad trials on the trial's own `epoch`. Both read the trial's score
`score/<metric>` (the mean of its last epochs, see constants.py), never one
epoch's value. The console shows `progress.SearchProgress`'s table; Ctrl-C
ends with the table and the raysearch command that resumes (report.py). Diverged trials report the
worst value of every metric and finish normally, so the searcher learns from
them and the experiment goes on. `--resume` restores an interrupted experiment;
Train's own restore brings each unfinished trial back to its last checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from raysearch.config import config_to_dict, list_spaces
from raysearch import cli
from raysearch import storage as storage_io
from raysearch.data.baselines import baselines_of
from raysearch.data.check import captions_possible, check_source
from raysearch.constants import DRIVER_RESOURCE, DRIVER_SLOTS, EXPERIMENT_FILE, SMOKE_OVERRIDES, score_key
from raysearch.errors import ConfigError, RaysearchError
from raysearch.spaces import SearchSpace, TuneSettings, load_space

# --smoke-test (Ray's convention): a tiny budget on constants.SMOKE_OVERRIDES' tiny dataset.
SMOKE_TUNE = {"num_samples": 3, "max_epochs": 2, "grace_period": 1, "max_concurrent": 2}


# ---------------------------------------------------------------- the trial driver


def trial_driver(params: dict[str, Any], *, space_path: str, overrides: list[str], max_epochs: int, workers: int,
                 experiment_path: str, use_gpu: bool, resources: dict[str, float], max_failures: int) -> None:
    """One Tune trial: train the sampled config through Ray Train, reporting to Tune."""
    from ray import tune
    from ray.train._internal.session import get_session
    from ray.tune.integration.ray_train import TuneReportCallback

    from raysearch import ray_adapter

    space = load_space(space_path, overrides)
    # The tune section sets each trial's budget and its number of Train workers.
    cfg = space.trial_config({**params, "train.epochs": max_epochs, "train.workers": workers})
    context = tune.get_context()
    trainer = ray_adapter.build_trainer(
        cfg,
        # Stable per trial: a restarted trial finds its Train run and resumes from its checkpoint.
        name=f"train_{context.get_trial_id()}",
        storage_path=experiment_path,
        logdir=f"{experiment_path}/tensorboard/{context.get_trial_name()}",  # a path or a URI
        use_gpu=use_gpu,
        resources_per_worker=resources,
        max_failures=max_failures,
        callbacks=[TuneReportCallback()],
    )
    # With reuse_actors Tune keeps a stopped trial's process for the next trial: it sets the session's stop
    # event, then waits TUNE_FUNCTION_THREAD_TIMEOUT_S (2 s) for this function to return.
    trainer.fit_until(get_session().stop_event)


# ---------------------------------------------------------------- building the search


def make_searcher(space: SearchSpace, settings: TuneSettings, max_concurrent: int):
    """OptunaSearch over the space's define-by-run function, seeded, base config first."""
    import optuna
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    if settings.searcher == "optuna":
        # multivariate + group: TPE models the joint distribution, conditional parameters included.
        sampler = optuna.samplers.TPESampler(seed=settings.seed, multivariate=True, group=True,
                                             n_startup_trials=min(10, max(2, settings.num_samples // 3)))
    else:
        sampler = optuna.samplers.RandomSampler(seed=settings.seed)
    point = space.base_point()
    searcher = OptunaSearch(
        space=space.define_by_run,
        metric=score_key(space.metric),  # the mean of the last epochs: one lucky epoch does not win
        mode=space.mode,
        sampler=sampler,
        points_to_evaluate=[point] if point and settings.searcher == "optuna" else None,
    )
    return ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)


def make_scheduler(space: SearchSpace, settings: TuneSettings):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if settings.scheduler == "none":
        return FIFOScheduler()
    # The trial's own epoch: Tune's training_iteration restarts at 1 after a trial restart.
    # Rungs compare each trial's score (the mean of its last epochs), not one lucky epoch.
    return ASHAScheduler(time_attr="epoch", metric=score_key(space.metric), mode=space.mode, max_t=settings.max_epochs,
                         grace_period=min(settings.grace_period, settings.max_epochs),
                         reduction_factor=settings.reduction_factor)


# Trials packed onto one GPU when the space leaves `tune.resources.gpu_fraction`
# unset. Measured through Tune + Train by bench/packing.py on one H100 (wgan's
# base config, n_critic 5, batch 64, 3 epochs of 30 steps per trial): aggregate
# 4,007 images/s for 1 trial, 7,942 for 2 (1.98x), 12,356 for 4 (3.08x),
# 15,513 for 8 (3.87x). The whole-loop processes on the same GPU: 2.51x
# at 8, 2.59x at 16 (under 3% more). Each trial's step is launch-bound (one
# CPU core feeding the GPU), so packing scales until the cores or the GPU run out.
PACKED_TRIALS_PER_GPU = 8
# GPU memory one trial of the shipped spaces is allowed for when packing: the
# CUDA context (~0.5 GiB), the training set held on the device as uint8 (a
# 2,000-image synthetic set is 25 MB; COCO's 83k training crops are 1 GiB),
# networks, Adam state and batch-64 activations (a few hundred MB). An estimate,
# not a measurement; a space that needs more sets gpu_fraction itself.
TRIAL_GPU_MEMORY_BYTES = 3 * 2**30


def gpu_fraction(settings: TuneSettings) -> float:
    """The GPU share of one Train worker: the space's `gpu_fraction`, else packed (fewer if memory is short)."""
    if settings.resources.gpu_fraction is not None:
        return settings.resources.gpu_fraction
    per_gpu = PACKED_TRIALS_PER_GPU
    free = free_gpu_memory()
    if free is not None:
        per_gpu = max(1, min(per_gpu, free // TRIAL_GPU_MEMORY_BYTES))
    return 1.0 / per_gpu


def free_gpu_memory() -> int | None:
    """Free bytes on the smallest GPU this process sees (a local Ray's GPUs), or None where it sees none.

    On a cluster the driver usually has no GPU; then the packing default is not
    memory-checked here and TRIAL_GPU_MEMORY_BYTES x PACKED_TRIALS_PER_GPU (24 GiB)
    must fit the workers' GPUs (it does on 40 and 80 GB A100s and H100s).
    """
    import torch

    if not torch.cuda.is_available():
        return None
    return min(torch.cuda.mem_get_info(device)[0] for device in range(torch.cuda.device_count()))


def trial_resources(settings: TuneSettings, use_gpu: bool) -> dict[str, float]:
    per_worker = {"CPU": settings.resources.cpus}
    if use_gpu:
        per_worker["GPU"] = gpu_fraction(settings)
    return per_worker


def concurrency(settings: TuneSettings, use_gpu: bool) -> int:
    """How many trials fit at once: the setting, or what the cluster's CPUs/GPUs allow."""
    import ray

    if settings.max_concurrent:
        return settings.max_concurrent
    total = ray.cluster_resources()
    workers = settings.resources.workers
    by_cpu = total.get("CPU", 1) // (settings.resources.cpus * workers)
    # A small epsilon: 1 // (1/8) must give 8, not 7.99 rounded down.
    by_gpu = math.floor(total.get("GPU", 0) / (gpu_fraction(settings) * workers) + 1e-9) if use_gpu else math.inf
    return int(max(1, min(by_cpu, by_gpu)))


def build_trainable(space_path: str, overrides: list[str], settings: TuneSettings, experiment_path: str, use_gpu: bool):
    import ray
    from ray import tune

    driver = tune.with_parameters(
        trial_driver,
        space_path=space_path,
        overrides=overrides,
        max_epochs=settings.max_epochs,
        workers=settings.resources.workers,
        experiment_path=experiment_path,
        use_gpu=use_gpu,
        resources=trial_resources(settings, use_gpu),
        max_failures=settings.max_failures,
    )
    has_slot = ray.cluster_resources().get(DRIVER_RESOURCE, 0) > 0
    if not has_slot:
        print(f"note: the cluster declares no {DRIVER_RESOURCE!r} resource; trial drivers take 1 CPU each "
              f"(declare it on the head node with --resources='{{\"{DRIVER_RESOURCE}\": {DRIVER_SLOTS}}}')",
              file=sys.stderr)
    return tune.with_resources(driver, {DRIVER_RESOURCE: 1} if has_slot else {"CPU": 1})


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
    return dataclasses.replace(space.tune, **changes)


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
        "metric": space.metric,
        "mode": space.mode,
        "tune": dataclasses.asdict(settings),
    }, sort_keys=False), end="")


def _describe(param) -> dict[str, Any]:
    spec: dict[str, Any] = {param.kind: list(param.choices) if param.kind == "choice" else [param.low, param.high]}
    if param.when:
        spec["when"] = {k: list(v) for k, v in param.when.items()}
    return spec


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
        if args.resume:
            # The experiment's own record wins over today's flags: same space, overrides, budget.
            space, overrides, settings = recorded_experiment(f"{storage}/{name}")
        space.check_trials(settings)  # again with --max-epochs / --smoke-test's budget
        if not args.dry_run:
            cli.check_gpu_before_ray(space.config.train.device, args.address)
        check_source(space.config.data.path, captions=captions_possible(space.config, space.params))
        # The classical fills of a new experiment (once per dataset, then cached beside it), before Ray starts.
        baselines = None if args.dry_run or args.resume else baselines_of(space.config)
    except RaysearchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        dry_run(space, settings)
        return 0

    from raysearch import ray_adapter
    from raysearch.report import write_report

    ray_adapter.start_ray(args.address, log_to_driver=args.verbose)
    try:
        cli.check_gpu_on_cluster(space.config.train.device)
    except RaysearchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    results = run_search(space, settings, overrides, storage, name, args.address, args.resume, args.verbose,
                         baselines)
    write_report(results, space, settings, f"{storage}/{name}", baselines=baselines)
    return 0


RECORD_KEYS = ("space", "overrides", "tune")  # what --resume reads from an experiment's record


def recorded_experiment(experiment_path: str) -> tuple[SearchSpace, list[str], TuneSettings]:
    """The space, overrides and settings an experiment was started with (for --resume)."""
    from raysearch.config import build_dataclass, parse_yaml

    where = storage_io.join(experiment_path, EXPERIMENT_FILE)
    text = storage_io.Storage(experiment_path).read_text(EXPERIMENT_FILE)
    if text is None:
        raise ConfigError(f"--resume: {experiment_path} is not a raysearch experiment (no {EXPERIMENT_FILE})")
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
               address: str | None, resume: bool, verbose: bool = False,
               baselines: dict[str, dict[str, float]] | None = None):
    """Run (or resume) the experiment `storage/name`; return Tune's ResultGrid.

    `baselines` (the classical fills, raysearch.data.baselines; computed here when not given) become TensorBoard
    reference runs of a new experiment.
    """
    # Tune's classic table, which takes a progress reporter (its newer output ignores one).
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    from ray import tune

    from raysearch.progress import SearchProgress, quiet_ray_logs
    from raysearch.ray_adapter import start_ray, wants_gpu
    from raysearch.summaries import write_baseline_runs

    if not verbose:
        quiet_ray_logs()
    # The workers' own lines (Train's per-epoch "Reporting training result" and "Checkpoint successfully
    # created", Ray's actor notices) stay in the trials' logs unless --verbose; a failed trial's error
    # still reaches this console through Tune.
    start_ray(address, log_to_driver=verbose)
    use_gpu = wants_gpu(space.config)
    experiment_path = storage_io.join(storage, name)
    trainable = build_trainable(str(space.path), overrides, settings, experiment_path, use_gpu)
    if resume:
        # restart_errored would crash OptunaSearch in Ray 2.60; resume_errored continues errored trials.
        tuner = tune.Tuner.restore(experiment_path, trainable, resume_unfinished=True, resume_errored=True)
    else:
        _remember_experiment(experiment_path, space, overrides, settings)
        # The classical fills as reference runs beside the trials: every scalar chart shows what they score.
        fills = baselines if baselines is not None else baselines_of(space.config)
        write_baseline_runs(storage_io.join(experiment_path, "tensorboard"), fills, settings.max_epochs)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=make_searcher(space, settings, concurrency(settings, use_gpu)),
                scheduler=make_scheduler(space, settings),
                num_samples=settings.num_samples,
                # One trial driver process per concurrent trial for the whole search, not one per trial:
                # a process start and its imports, about 3 s per trial on 2 cores (bench/overhead.py).
                reuse_actors=True,
                trial_name_creator=lambda trial: f"{space.path.stem}_{trial.trial_id}",
                trial_dirname_creator=lambda trial: f"{space.path.stem}_{trial.trial_id}",
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=storage,
                failure_config=tune.FailureConfig(max_failures=settings.max_failures),
                progress_reporter=SearchProgress(space.metric, settings.num_samples, settings.max_epochs,
                                                 [p.key for p in space.params]),
                verbose=3 if verbose else 1,  # 1: the table and the experiment's own lines, no per-trial results
            ),
        )
    return tuner.fit()


def _remember_experiment(experiment_path: str, space: SearchSpace, overrides: list[str], settings: TuneSettings) -> None:
    """Record what the experiment was started with, so --resume and analyze can rebuild it.

    Also the experiment's HParams columns: the searched parameters and the metrics.
    """
    from raysearch.metrics import list_metrics
    from raysearch.summaries import HParamColumn, write_experiment_hparams

    storage_io.Storage(experiment_path).write_text(EXPERIMENT_FILE, yaml.safe_dump({
        "space": str(space.path), "overrides": overrides, "tune": dataclasses.asdict(settings),
        "metric": space.metric, "mode": space.mode, "base": config_to_dict(space.config),
    }, sort_keys=False))
    columns = [HParamColumn(p.key, p.kind, tuple(p.choices) if p.kind == "choice" else (), p.low, p.high)
               for p in space.params]
    metrics = [f"val/{name}" for name in list_metrics()]
    write_experiment_hparams(storage_io.join(experiment_path, "tensorboard"), columns,
                             [score_key(space.metric)] + metrics + [score_key(m) for m in metrics if m != space.metric])


if __name__ == "__main__":
    raise SystemExit(main())
