"""The thin layer that runs `raysearch.train.run_trial` as a Ray Train run (one worker, or DDP workers).

Ray Train owns the workers (DDP when there are several), the checkpoints in
persistent storage and the restarts after a worker dies; the loop only sees a
`report` callable and the checkpoint directory to resume from. A trainer whose
`RunConfig(name, storage_path)` matches an earlier run finds that run's latest
checkpoint on its own (Train V2), which is how restarted trials resume.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import ray.train
from ray.train import BackendConfig, Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

from raysearch import prestart
from raysearch.constants import DRIVER_RESOURCE, DRIVER_SLOTS
from raysearch.config import ExperimentConfig, build_config, config_to_dict

# Full-state checkpoints are small (a few MB); keep a couple so a corrupt latest
# one is not the only copy.
CHECKPOINTS_TO_KEEP = 2


def train_worker(loop_config: dict[str, Any]) -> None:
    """Entry point of every Ray Train worker: rebuild the config, resume, run the loop."""
    import ray.train.torch
    import torch

    from raysearch.train import Runtime, run_trial

    cfg = build_config(loop_config["config"], source="trial config")
    context = ray.train.get_context()
    device = ray.train.torch.get_device()
    if device.type == "cuda":
        torch.cuda.set_device(device)  # what TorchConfig does, which a one-worker trial runs without
    runtime = Runtime(
        rank=context.get_world_rank(),
        world_size=context.get_world_size(),
        device=device,
        prepare_model=ray.train.torch.prepare_model,
    )

    def report(metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        checkpoint = Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        name = f"epoch_{metrics['epoch']:04d}" if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=name)

    latest = ray.train.get_checkpoint()
    logdir = loop_config["logdir"]  # a local path or a storage URI
    with latest.as_directory() if latest else nullcontext(None) as directory:
        run_trial(cfg, report, checkpoint=Path(directory) if directory else None, logdir=logdir, runtime=runtime)


class StoppableRun:
    """A trainer mixin that keeps its Train controller's handle, so the run can be ended from outside.

    Tune reuses a trial's driver process for the next trial (reuse_actors, which
    saves a process start and the imports per trial). A trial that ASHA stops
    then no longer dies with its process, so its Train run must be ended here:
    `fit_until(stop_event)` kills the controller once the event is set; its
    workers die with it and Train's PlacementGroupCleaner frees their resources.
    Killing is the only way in: a controller waiting for Tune to take its report
    never runs `abort`.

    `_initialize_and_run_controller` is Ray 2.60's own (pinned in pyproject.toml),
    with the handle kept, and with `prestart`'s watcher when prestarting is on.
    """

    _controller = None
    _stopped = False

    def _initialize_and_run_controller(self, **controller_init_kwargs):
        from ray._common.constants import RAY_WARN_BLOCKING_GET_INSIDE_ASYNC_ENV_VAR
        from ray.train.v2._internal.constants import (
            DEFAULT_RAY_WARN_BLOCKING_GET_INSIDE_ASYNC_VALUE, get_env_vars_to_propagate)
        from ray.train.v2._internal.execution.controller import TrainController

        env_vars = get_env_vars_to_propagate()
        env_vars.setdefault(RAY_WARN_BLOCKING_GET_INSIDE_ASYNC_ENV_VAR, DEFAULT_RAY_WARN_BLOCKING_GET_INSIDE_ASYNC_VALUE)
        controller_class = ray.remote(
            num_cpus=0,
            label_selector={ray._raylet.RAY_NODE_ID_KEY: ray.get_runtime_context().get_node_id()},
            runtime_env={"env_vars": env_vars},
        )(TrainController)
        self._controller = controller_class.remote(**controller_init_kwargs)
        if self._stopped:  # stopped while the controller was being created
            ray.kill(self._controller)
        run_ended = threading.Event()
        prestart.warm_processes_for_next_run(self._controller, self.scaling_config.num_workers, run_ended)
        try:
            ray.get(self._controller.run.remote())
            return ray.get(self._controller.get_result.remote())
        finally:
            run_ended.set()

    def fit_until(self, stop: threading.Event):
        """fit(), ended early once `stop` is set: the run is killed and None returned instead of its Result."""
        finished = threading.Event()

        def watch() -> None:
            while not stop.wait(timeout=0.5):
                if finished.is_set():
                    return
            if not finished.is_set():
                self._stop()

        threading.Thread(target=watch, name="raysearch-run-stop-watcher", daemon=True).start()
        try:
            return self.fit()
        except ray.exceptions.RayActorError:
            if not self._stopped:
                raise
            return None  # stopped from outside: a normal end
        finally:
            finished.set()

    def _stop(self) -> None:
        self._stopped = True
        if self._controller is not None:
            ray.kill(self._controller)


class OneWorkerTrainer(StoppableRun, DataParallelTrainer):
    pass


def build_trainer(
    cfg: ExperimentConfig,
    *,
    name: str,
    storage_path: str,
    logdir: str | None,
    use_gpu: bool,
    resources_per_worker: dict[str, float] | None = None,
    max_failures: int = 2,
    callbacks: list | None = None,
) -> StoppableRun:
    """A Ray Train trainer for one trial; `name` must be stable across restarts of the trial.

    Several workers train with DDP, so they get a TorchTrainer (its TorchConfig
    sets up the torch process group). One worker needs no process group: it gets
    Ray Train's DataParallelTrainer with the no-op backend, which spares every
    trial the group's set-up round trips and keeps torch out of the Train
    controller's process (importing torch there cost about 1 s per trial on 2
    cores, bench/overhead.py). Train still owns the worker, its checkpoints and
    its restarts.
    """
    if cfg.train.workers > 1:
        from ray.train.torch import TorchTrainer

        class DDPTrainer(StoppableRun, TorchTrainer):
            pass

        trainer_class, backend = DDPTrainer, {}
    else:
        trainer_class, backend = OneWorkerTrainer, {"backend_config": BackendConfig()}
    return trainer_class(
        train_worker,
        train_loop_config={"config": config_to_dict(cfg), "logdir": logdir},
        **backend,
        scaling_config=ScalingConfig(
            num_workers=cfg.train.workers, use_gpu=use_gpu, resources_per_worker=resources_per_worker
        ),
        run_config=RunConfig(
            name=name,
            storage_path=storage_path,
            failure_config=FailureConfig(max_failures=max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=CHECKPOINTS_TO_KEEP),
            callbacks=callbacks,
        ),
    )


def wants_gpu(cfg: ExperimentConfig) -> bool:
    """`device: auto` trains on GPUs when the Ray cluster has any."""
    if cfg.train.device == "cpu":
        return False
    if cfg.train.device == "cuda":
        return True
    return ray.cluster_resources().get("GPU", 0) > 0


# What `start_ray` sets for the private local Ray it starts (the processes of that
# Ray inherit the environment; Train propagates these to its controller and
# workers). On a cluster, set the same variables in the environment of
# `ray start` on every node (cluster.yaml). Measured by bench/overhead.py.
LOCAL_RAY_ENV = {
    # Train's controller notices a finished worker group at its next health check,
    # every 2 s by default: idle time at the end of every trial. The poll is cheap.
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
    # The preemption watcher is one more actor process per trial (a Python start
    # and Ray import, seconds on a small machine) that watches for node drains,
    # which a single local node never has.
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
}
# Ray's own defaults for the same settings (bench/overhead.py --ray-defaults).
RAY_DEFAULTS = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "2.0", "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "1"}


def start_ray(address: str | None, log_to_driver: bool = True) -> None:
    """Attach to `address` or a running cluster; otherwise (or with `local`) start a private local Ray.

    Only a Ray this process starts can declare the driver resource; a cluster
    declares it on its head node (cluster.yaml). The local Ray keeps its
    dashboard: Train's PlacementGroupCleaner finds dead controllers through the
    dashboard's State API (without it, placement groups of stopped trials leak).
    """
    if ray.is_initialized():
        return
    if address and address != "local":
        ray.init(address=address, log_to_driver=log_to_driver)
    elif address is None:
        try:
            ray.init(address="auto", log_to_driver=log_to_driver)
        except ConnectionError:
            pass  # no cluster running here
    if not ray.is_initialized():
        for key, value in LOCAL_RAY_ENV.items():
            os.environ.setdefault(key, value)
        if prestart.enabled():
            for key, value in prestart.local_ray_env().items():
                os.environ.setdefault(key, value)
        ray.init(address="local", resources={DRIVER_RESOURCE: DRIVER_SLOTS}, log_to_driver=log_to_driver)
    print(f"Ray: {ray.get_runtime_context().gcs_address} with {ray.cluster_resources()}", file=sys.stderr)
