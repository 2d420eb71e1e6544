"""The thin layer that runs `raysearch.train.run_trial` as a Ray Train TorchTrainer.

Ray Train owns the workers (DDP when there are several), the checkpoints in
persistent storage and the restarts after a worker dies; the loop only sees a
`report` callable and the checkpoint directory to resume from. A trainer whose
`RunConfig(name, storage_path)` matches an earlier run finds that run's latest
checkpoint on its own (Train V2), which is how restarted trials resume.
"""

from __future__ import annotations

import os
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from raysearch.constants import DRIVER_RESOURCE, DRIVER_SLOTS
from raysearch.config import ExperimentConfig, build_config, config_to_dict
from raysearch.train import Runtime, run_trial

# Full-state checkpoints are small (a few MB); keep a couple so a corrupt latest
# one is not the only copy.
CHECKPOINTS_TO_KEEP = 2


def train_worker(loop_config: dict[str, Any]) -> None:
    """Entry point of every Ray Train worker: rebuild the config, resume, run the loop."""
    cfg = build_config(loop_config["config"], source="trial config")
    context = ray.train.get_context()
    runtime = Runtime(
        rank=context.get_world_rank(),
        world_size=context.get_world_size(),
        device=ray.train.torch.get_device(),
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
) -> TorchTrainer:
    """A TorchTrainer for one trial; `name` must be stable across restarts of the trial."""
    return TorchTrainer(
        train_worker,
        train_loop_config={"config": config_to_dict(cfg), "logdir": logdir},
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
        ray.init(address="local", resources={DRIVER_RESOURCE: DRIVER_SLOTS}, log_to_driver=log_to_driver)
    print(f"Ray: {ray.get_runtime_context().gcs_address} with {ray.cluster_resources()}", file=sys.stderr)
