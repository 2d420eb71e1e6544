"""The one module that runs trials through Ray Tune and Ray Train (their public APIs only).

Every generator/critic pair trains through one train function, `train_function`,
under a Ray Train `TorchTrainer`:

- **one-process trials** (`train.workers: 1`, the default) run it in Train's local
  mode (`ScalingConfig(num_workers=0)`), which calls it in this process: inside
  the Tune trial's own actor during a search, or in the command's process for
  `python -m raysearch.train`. Tune reuses a trial's actor for the next trial
  (`reuse_actors`), so its imports, the datasets it has loaded and, on a GPU, its
  CUDA context stay warm: a further trial costs what its training costs.
- **DDP trials** (`train.workers > 1`) run it on Train's workers; a search's trial
  hears their reports through Tune's `TuneReportCallback`.

Local mode keeps `ray.train.report`'s metrics and checkpoints in memory only
(Ray 2.60), so there the train function reports where its run lives itself
(`Destination`): to Tune (`tune.report` with the checkpoint, `tune.get_checkpoint`
to resume), or into `raysearch.train`'s run directory.

Trials are packed with Tune's own resources: a one-process trial holds its
CPUs and GPU share; a DDP trial's actor holds only a little memory (Tune refuses
an empty request) and its workers hold the CPUs and GPUs, so a cluster with N
CPUs and no custom resources never has trial actors holding the CPUs their
workers wait for.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal

import ray
import ray.train
import ray.train.torch
import torch
from ray import tune
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import ConcurrencyLimiter

from raysearch import atomic_fs, cli, cluster_health
from raysearch import storage as storage_io
from raysearch.checkpoint import (CHECKPOINTS_TO_KEEP, RUN_DIR_CHECKPOINTS, checkpoint_name, keep_checkpoint,
                                  latest_checkpoint)
from raysearch.config import ExperimentConfig, build_config, config_to_dict
from raysearch.constants import score_key
from raysearch.loop import Worker, local_worker, run_trial, trial_process_scope
from raysearch.objectives import Constraint
from raysearch.schedulers import MultiObjectiveASHA
from raysearch.searcher import StudySearch, make_sampler
from raysearch.spaces import SearchSpace, TuneSettings, load_space
# ---- PBT hooks (raysearch.pbt, pbt_scheduler, population, lineage, mutations)
from raysearch import pbt, pbt_scheduler
from raysearch.lineage import copy_marks
from raysearch.mutations import Schedule
from raysearch.population import starting_population

# Where a run's reports and checkpoints go, and where it resumes from.
#   tune:    local mode in a Tune trial's actor: tune.report / tune.get_checkpoint
#   train:   Ray Train's workers (DDP): ray.train.report / ray.train.get_checkpoint
#   run_dir: local mode in `raysearch.train`: <run dir>/train/epoch_NNNN, the latest resumed
Destination = Literal["tune", "train", "run_dir"]

# A DDP trial's actor only waits for its workers: it holds no CPU (they need them) but Tune takes no empty
# request, so it holds a little memory, a resource every Ray node has.
DDP_DRIVER_MEMORY = 64 * 2**20


# ---------------------------------------------------------------- the train function


def train_function(loop_config: dict[str, Any]) -> None:
    """What every pair's training runs, in local mode or on a Train worker: rebuild the config, resume, run the loop.

    `loop_config`: {"config": the experiment config as a dict, "logdir": TensorBoard directory (path or URI),
    "destination": a Destination, "threads": torch threads (None: leave Ray's OMP_NUM_THREADS),
    "run_dir": the run directory (run_dir only), "schedule": a mutations.Schedule or None (PBT hook)}.
    """
    cfg = build_config(loop_config["config"], source="trial config")
    destination: Destination = loop_config["destination"]
    worker = _train_worker() if destination == "train" else local_worker(cfg)
    resume, report = _resume_and_report(destination, loop_config.get("run_dir"))
    with trial_process_scope(loop_config["threads"]), resume() as checkpoint:
        run_trial(cfg, report, checkpoint=checkpoint, logdir=loop_config["logdir"], worker=worker,
                  schedule=loop_config.get("schedule"))


def _train_worker() -> Worker:
    """A Train worker's rank, world and device; its models wrapped for DDP."""
    context = ray.train.get_context()
    device = ray.train.torch.get_device()
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return Worker(rank=context.get_world_rank(), world_size=context.get_world_size(), device=device,
                   prepare_model=ray.train.torch.prepare_model)


def _resume_and_report(destination: Destination, run_dir: str | None):
    """(a context manager giving the checkpoint directory to resume from or None, the loop's report callable)."""
    if destination == "tune":
        # PBT hook: a restored checkpoint of another trial (an exploit) is named in the first report after it.
        restored = tune.get_checkpoint()
        copied = copy_marks(restored.path if restored else None, tune.get_context().get_trial_dir())

        def report(metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
            if copied:
                metrics = {**metrics, **copied}
                copied.clear()
            # Copied into the trial's storage before report returns; a stopped trial ends inside it (SystemExit).
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None)

        return lambda: _as_directory(tune.get_checkpoint()), report
    if destination == "train":
        def report(metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
            checkpoint = Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
            name = checkpoint_name(metrics["epoch"]) if checkpoint_dir else None
            ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=name)

        return lambda: _as_directory(ray.train.get_checkpoint()), report
    checkpoints = Path(run_dir) / RUN_DIR_CHECKPOINTS

    def report(metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        if checkpoint_dir is not None:
            keep_checkpoint(checkpoint_dir, checkpoints / checkpoint_name(metrics["epoch"]))
        print(progress_line(metrics), file=sys.stderr, flush=True)
        ray.train.report(metrics)  # kept in memory by local mode: the command's result

    return lambda: nullcontext(latest_checkpoint(checkpoints)), report


def progress_line(metrics: dict[str, Any]) -> str:
    """One epoch of a standalone run, e.g. `epoch 3: val/psnr 17.21 dB (score 17.18), val/swd 140.2, 12.4 s`."""
    if metrics.get("diverged"):
        return f"epoch {metrics['epoch']}: diverged in phase {metrics['diverged_phase']}"
    return (f"epoch {metrics['epoch']}: val/psnr {metrics['val/psnr']:.2f} dB (score {metrics['score/val/psnr']:.2f}), "
            f"val/swd {metrics['val/swd']:.1f}, {metrics['train/epoch_s']:.1f} s")


@contextmanager
def _as_directory(checkpoint: Checkpoint | None) -> Iterator[Path | None]:
    """A reported checkpoint as a local directory to resume from (downloaded for a URI), or None."""
    if checkpoint is None:
        yield None
        return
    with checkpoint.as_directory() as directory:
        yield Path(directory)


# ---------------------------------------------------------------- trainers


def make_trainer(cfg: ExperimentConfig, destination: Destination, *, logdir: str, run_name: str, storage_path: str,
                 use_gpu: bool = False, resources_per_worker: dict[str, float] | None = None, max_failures: int = 2,
                 callbacks: list | None = None, threads: int | None = None, run_dir: str | None = None,
                 storage_filesystem=None, schedule: Schedule | None = None) -> TorchTrainer:
    """A TorchTrainer running `train_function` for `cfg`: local mode for one worker, DDP workers for several.

    `run_name` must be stable across restarts of the trial: a DDP trial's restarted Train run finds its latest
    checkpoint under `storage_path/run_name` (Train V2 restores a run of the same name by itself).
    """
    local = cfg.train.workers == 1
    scaling = (ScalingConfig(num_workers=0) if local else
               ScalingConfig(num_workers=cfg.train.workers, use_gpu=use_gpu, resources_per_worker=resources_per_worker))
    return TorchTrainer(
        train_function,
        train_loop_config={"config": config_to_dict(cfg), "logdir": logdir, "destination": destination,
                           "threads": threads, "run_dir": run_dir, "schedule": schedule},
        scaling_config=scaling,
        run_config=RunConfig(
            name=run_name,
            storage_path=storage_path,
            storage_filesystem=storage_filesystem,
            failure_config=FailureConfig(max_failures=max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=CHECKPOINTS_TO_KEEP),
            callbacks=callbacks,
        ),
    )


def train_run(cfg: ExperimentConfig, run_dir: Path, *, use_gpu: bool = False,
              schedule: Schedule | None = None) -> dict[str, Any]:
    """`python -m raysearch.train`: one run into `run_dir`, resumed from its latest checkpoint; the last metrics.

    One worker trains in this process on all of its cores (Train's local mode: no Ray cluster needed);
    several train with DDP on Ray Train's workers, which write their checkpoints to the same place.
    """
    local = cfg.train.workers == 1
    trainer = make_trainer(
        cfg, "run_dir" if local else "train", logdir=str(run_dir), run_name=RUN_DIR_CHECKPOINTS,
        storage_path=str(run_dir), use_gpu=use_gpu, threads=available_cores() if local else None, run_dir=str(run_dir),
        schedule=schedule,
    )
    return dict(trainer.fit().metrics or {})


def available_cores() -> int:
    """The cores this process may run on (its affinity, e.g. a container's share), at least 1."""
    return max(1, len(os.sched_getaffinity(0)))


def threads_for(cpus: float) -> int:
    """A trial's torch threads: its CPU share, at least one."""
    return max(1, math.floor(cpus + 1e-9))


# ---------------------------------------------------------------- a search's trial


TRIAL_END_TIMEOUT_S = 60  # how long a stopped trial may take to end before its actor goes to the next


def search_trial(params: dict[str, Any], *, space_path: str, overrides: list[str], max_epochs: int, workers: int,
                 experiment_path: str, use_gpu: bool, resources: dict[str, float], max_failures: int,
                 fixed: dict[str, Any] | None = None, tracked: tuple[str, ...] = ()) -> None:
    """One Tune trial: train the sampled config, in this actor (local mode) or on Train's DDP workers.

    `fixed`: values every trial of the search takes (a PBT search's checkpoint interval); `tracked`: keys the
    trial reports every epoch as `schedule/<key>` (a PBT search's mutated keys).
    """
    # Tune hands this actor to the next trial only if this one's thread ends within
    # TUNE_FUNCTION_THREAD_TIMEOUT_S of being stopped (2 s by default); else the next trial fails with
    # "Trainable runner reuse requires reset_config() ...". A trial stopped at its report ends by unwinding
    # its run (writers closed, networks freed), which took longer on a busy 2-core machine: seen in a
    # realism search. Read by this process when Tune reuses it, so set here.
    os.environ.setdefault("TUNE_FUNCTION_THREAD_TIMEOUT_S", str(TRIAL_END_TIMEOUT_S))
    space = load_space(space_path, overrides)
    if tracked:  # PBT hook: a member's key that its `when` leaves out is None in Tune's config
        params = {key: value for key, value in params.items() if value is not None}
    # The tune section sets each trial's budget and its number of Train workers.
    cfg = space.trial_config({**params, "train.epochs": max_epochs, "train.workers": workers, **(fixed or {})})
    context = tune.get_context()
    local = workers == 1
    storage_path, filesystem = atomic_fs.tune_storage(experiment_path)  # a DDP trial's checkpoints: whole or absent
    trainer = make_trainer(
        cfg,
        "tune" if local else "train",
        logdir=f"{experiment_path}/tensorboard/{context.get_trial_name()}",  # a path or a URI
        run_name=f"train_{context.get_trial_id()}",  # stable per trial: a restarted DDP trial finds its checkpoint
        storage_path=storage_path,
        storage_filesystem=filesystem,
        use_gpu=use_gpu,
        resources_per_worker=None if local else resources,
        max_failures=max_failures,
        callbacks=None if local else [TuneReportCallback()],
        threads=threads_for(resources["CPU"]) if local else None,
        schedule=Schedule(tracked=tuple(tracked)) if tracked else None,
    )
    trainer.fit()


def trial_resources(settings: TuneSettings, use_gpu: bool) -> dict[str, float]:
    """One worker's share: its CPUs and, on GPUs, its GPU fraction."""
    share = {"CPU": settings.resources.cpus}
    if use_gpu:
        share["GPU"] = gpu_fraction(settings)
    return share


def build_trainable(space_path: str, overrides: list[str], settings: TuneSettings, experiment_path: str,
                    use_gpu: bool):
    """The Tune trainable of a search, with what each trial's actor holds (see the module's docstring)."""
    trainable = tune.with_parameters(
        search_trial, space_path=space_path, overrides=overrides, max_epochs=settings.max_epochs,
        workers=settings.resources.workers, experiment_path=experiment_path, use_gpu=use_gpu,
        resources=trial_resources(settings, use_gpu), max_failures=settings.max_failures,
        **population_based_trials(space_path, overrides, settings),
    )
    return tune.with_resources(trainable, actor_resources(settings, use_gpu))


def population_based_trials(space_path: str, overrides: list[str], settings: TuneSettings) -> dict[str, Any]:
    """PBT hook: what search_trial adds to a PBT search's trials (a checkpoint every interval; the mutated keys
    reported every epoch); {} for any other search."""
    if not pbt.is_population_based(settings):
        return {}
    space = load_space(space_path, overrides)
    return {"fixed": pbt.trial_values(settings, space.config.train.checkpoint_every),
            "tracked": tuple(p.key for p in pbt.mutated_params(settings, space.params))}


def actor_resources(settings: TuneSettings, use_gpu: bool) -> dict[str, float]:
    """What a trial's Tune actor holds: a one-process trial's whole share (it trains there); a DDP trial's
    actor only waits for its workers, which hold the CPUs and GPUs."""
    if settings.resources.workers == 1:
        return trial_resources(settings, use_gpu)
    return {"CPU": 0, "memory": DDP_DRIVER_MEMORY}


# ---------------------------------------------------------------- packing


# Trials packed onto one GPU when the space leaves `tune.resources.gpu_fraction`
# unset. Measured through Tune + Train by bench/packing.py on one H100 (wgan's
# base config, n_critic 5, batch 64, 3 epochs of 30 steps per trial): aggregate
# 4,007 images/s for 1 trial, 7,942 for 2 (1.98x), 12,356 for 4 (3.08x),
# 15,513 for 8 (3.87x). Each trial's step is launch-bound (one CPU core feeding
# the GPU), so packing scales until the cores or the GPU run out.
PACKED_TRIALS_PER_GPU = 8
# GPU memory one trial of the shipped spaces is allowed for when packing: the
# CUDA context (~0.5 GiB), the training set held on the device as uint8 (a
# 2,000-image synthetic set is 25 MB; COCO's 83k training crops are 1 GiB),
# networks, Adam state and batch-64 activations (a few hundred MB). An estimate,
# not a measurement; a space that needs more sets gpu_fraction itself.
TRIAL_GPU_MEMORY_BYTES = 3 * 2**30


def gpu_fraction(settings: TuneSettings) -> float:
    """The GPU share of one worker: the space's `gpu_fraction`, else packed (fewer if memory is short)."""
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
    if not torch.cuda.is_available():
        return None
    return min(torch.cuda.mem_get_info(device)[0] for device in range(torch.cuda.device_count()))


def concurrency(settings: TuneSettings, use_gpu: bool) -> int:
    """How many trials run at once: the setting, or what the cluster's CPUs and GPUs hold."""
    if settings.max_concurrent:
        return settings.max_concurrent
    total = ray.cluster_resources()
    workers = settings.resources.workers
    by_cpu = math.floor(total.get("CPU", 1) / (settings.resources.cpus * workers) + 1e-9)
    # A small epsilon: 1 / (1/8) must give 8, not 7.99 rounded down.
    by_gpu = math.floor(total.get("GPU", 0) / (gpu_fraction(settings) * workers) + 1e-9) if use_gpu else math.inf
    return int(max(1, min(by_cpu, by_gpu)))


def wants_gpu(cfg: ExperimentConfig) -> bool:
    """`device: auto` trains on GPUs when the Ray cluster has any."""
    if cfg.train.device == "cpu":
        return False
    if cfg.train.device == "cuda":
        return True
    return ray.cluster_resources().get("GPU", 0) > 0


# ---------------------------------------------------------------- the search


def make_searcher(space: SearchSpace, settings: TuneSettings, max_concurrent: int, *,
                  constraints: tuple[Constraint, ...] = (), journal: str | Path | None = None,
                  study_name: str = "search"):
    """The search's Optuna study through Ray's OptunaSearch (raysearch.searcher.StudySearch): the space's
    define-by-run function, its objectives' scores (the mean of the last epochs: one lucky epoch does not win),
    `constraints` (bounds resolved, on the reported metrics), seeded, the base config first; the study kept in
    `journal` (a file Optuna's tools open; None: in memory). A PBT search has no searcher: its population."""
    if pbt.is_population_based(settings):  # PBT hook: Ray's PBT allows no searcher; the population is fixed
        return pbt_scheduler.population_searcher(starting_population(space, settings))
    # multivariate + group TPE models the joint distribution, conditional parameters included; with several
    # objectives it is Optuna's MOTPE. Random search is the benches' baseline.
    sampler = make_sampler("tpe" if settings.searcher == "optuna" else "random", seed=settings.seed,
                           n_startup_trials=min(10, max(2, settings.num_samples // 3)))
    point = space.base_point()
    searcher = StudySearch(
        space.define_by_run,
        metrics=[score_key(objective.metric) for objective in space.objectives],
        modes=[objective.mode for objective in space.objectives],
        journal_path=journal,
        study_name=study_name,
        max_epochs=settings.max_epochs,
        sampler=sampler,
        points_to_evaluate=[point] if point and settings.searcher == "optuna" else None,
        constraints=[dataclasses.replace(c, metric=score_key(c.metric)) for c in constraints],
    )
    return ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)


def make_scheduler(space: SearchSpace, settings: TuneSettings):
    """ASHA on one objective, MO-ASHA (raysearch.schedulers) on several, or no early stopping.

    Both stop on the trial's own epoch (Tune's training_iteration restarts at 1 after a trial restart), and
    their rungs compare each trial's scores (the mean of its last epochs), not one lucky epoch.
    """
    if pbt.is_population_based(settings):  # PBT hook
        return pbt_scheduler.make_scheduler(space, settings)
    if settings.scheduler == "none":
        return FIFOScheduler()
    grace = min(settings.grace_period, settings.max_epochs)
    if settings.scheduler == "mo_asha":
        return MultiObjectiveASHA(time_attr="epoch", metrics=[score_key(o.metric) for o in space.objectives],
                                  modes=[o.mode for o in space.objectives], max_t=settings.max_epochs,
                                  grace_period=grace, reduction_factor=settings.reduction_factor)
    return ASHAScheduler(time_attr="epoch", metric=score_key(space.metric), mode=space.mode, max_t=settings.max_epochs,
                         grace_period=grace, reduction_factor=settings.reduction_factor)


def run_tuner(space: SearchSpace, settings: TuneSettings, overrides: list[str], storage: str, name: str, *,
              resume: bool, progress=None, verbose: bool = False, constraints: tuple[Constraint, ...] = (),
              journal: str | Path | None = None):
    """Run (or resume) the experiment `storage/name` on the Ray this process is attached to; Tune's ResultGrid.

    A new experiment's Optuna study is named after it and kept in `journal`; a resumed one continues the
    study its searcher was saved with (Tune pickles the searcher with the experiment). A local storage goes
    to Tune as raysearch.atomic_fs's filesystem: a disk that fills up or stops taking writes never leaves a
    truncated file over a whole one (the experiment's state, a checkpoint)."""
    use_gpu = wants_gpu(space.config)
    experiment_path = storage_io.join(storage, name)
    storage_path, filesystem = atomic_fs.tune_storage(storage)
    trainable = build_trainable(str(space.path), overrides, settings, experiment_path, use_gpu)
    if resume:
        # restart_errored would crash OptunaSearch in Ray 2.60; resume_errored continues errored trials.
        tuner = tune.Tuner.restore(storage_io.join(storage_path, name), trainable, resume_unfinished=True,
                                   resume_errored=True, storage_filesystem=filesystem)
    else:
        tuner = tune.Tuner(
            trainable,
            # PBT hook: Tune places a population's members into a param_space holding every searched key.
            param_space=pbt_scheduler.param_space(space) if pbt.is_population_based(settings) else None,
            tune_config=tune.TuneConfig(
                search_alg=make_searcher(space, settings, concurrency(settings, use_gpu), constraints=constraints,
                                         journal=journal, study_name=name),
                scheduler=make_scheduler(space, settings),
                num_samples=settings.num_samples,
                # One-process trials train in their actor, which Tune hands to the next trial: no process start,
                # no imports, the data already loaded. A DDP trial's actor is not reused: ending it is what ends
                # the Train run of a trial the scheduler stops (its controller and workers die with their owner).
                reuse_actors=settings.resources.workers == 1,
                trial_name_creator=lambda trial: f"{space.path.stem}_{trial.trial_id}",
                trial_dirname_creator=lambda trial: f"{space.path.stem}_{trial.trial_id}",
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=storage_path,
                storage_filesystem=filesystem,
                failure_config=tune.FailureConfig(max_failures=settings.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=max(  # PBT hook: a donor's must outlive its copies
                    CHECKPOINTS_TO_KEEP, pbt.CHECKPOINTS_TO_KEEP if pbt.is_population_based(settings) else 0)),
                progress_reporter=progress,
                # PBT hook: the population's results, for its lineage (pbt_scheduler.PopulationLog says why)
                callbacks=[pbt_scheduler.PopulationLog(experiment_path)] if pbt.is_population_based(settings) else None,
                verbose=3 if verbose else 1,  # 1: the table and the experiment's own lines, no per-trial results
            ),
        )
    return tuner.fit()


# ---------------------------------------------------------------- Ray itself


def start_ray(address: str | None, log_to_driver: bool = True, device: str = "auto") -> None:
    """Attach to `address`, or without one to the cluster running on this machine; otherwise (or with `local`)
    start a private local Ray, after checking that `train.device` (`device`) can be served here.

    Never waits on a cluster that is gone (raysearch.cluster_health): an address the user gave (--address,
    RAY_ADDRESS) where nothing answers is a ClusterError naming it; the address a killed `ray start` cluster
    left in Ray's marker file is passed over, with one line saying so, for a private local Ray.

    The local Ray keeps its dashboard: its State API is what Train's placement-group cleaner uses to free
    the resources of a DDP trial the scheduler ended.
    """
    if ray.is_initialized():
        return
    if address and address != "local":
        target = cluster_health.Target(address, "--address")
        cluster_health.check_explicit(target)
        _attach(address, target, log_to_driver)
    elif address is None:
        target = cluster_health.default_target()
        if target is None:
            try:
                ray.init(address="auto", log_to_driver=log_to_driver)
            except ConnectionError:
                pass  # no cluster running here
        elif target.source == "RAY_ADDRESS":
            cluster_health.check_explicit(target)
            _attach("auto", target, log_to_driver)
        else:
            reason = cluster_health.unanswered(target.address)
            if reason is None:
                # "auto", not the address itself: Ray enables token authentication only for a cluster it found.
                _attach("auto", target, log_to_driver)
            else:
                print(f"note: no Ray cluster answers at {target.address} ({reason}), the address {target.source} "
                      "records (a `ray start` cluster that ended without `ray stop`): starting a private local Ray "
                      "here instead (--address ADDR attaches to another cluster)", file=sys.stderr)
    if not ray.is_initialized():
        if device == "cuda":
            cli.require_gpu_here()
        ray.init(address="local", log_to_driver=log_to_driver)
    print(f"Ray: {attached_address()} with {ray.cluster_resources()}", file=sys.stderr)


def _attach(address: str, target: cluster_health.Target, log_to_driver: bool) -> None:
    """ray.init on a cluster that answered the probe; ClusterError (one line) when Ray still cannot join it,
    e.g. without the cluster's authentication token."""
    try:
        ray.init(address=address, log_to_driver=log_to_driver)
    except ConnectionError as err:
        given = "--address" if target.source == "--address" else f"the cluster at {target.address} ({target.source})"
        raise cluster_health.ClusterError(f"{given}: Ray cannot join the cluster at {target.address}: "
                                          f"{_root_cause(err)}") from None


def _root_cause(err: BaseException) -> str:
    """The innermost cause's last line (Ray wraps an authentication refusal in two tracebacks), cut short."""
    while err.__cause__ is not None:
        err = err.__cause__
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    line = lines[-1] if lines else type(err).__name__
    return line if len(line) <= 400 else line[:397] + "..."


def attached_address() -> str | None:
    """The GCS address of the Ray this process is attached to (what the search's cluster watch probes); None
    before `start_ray`."""
    return ray.get_runtime_context().gcs_address if ray.is_initialized() else None
