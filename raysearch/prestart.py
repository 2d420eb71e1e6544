"""Warm processes for the next trial's Ray Train actors, started while this trial trains.

Each trial's Train run starts its actors in fresh processes, one after another on
the trial's critical path: the controller, then the worker with its
synchronisation actor, placement-group cleaner and dataset manager; Tune adds a
report queue. Each process pays a Python start, Ray's import and (the Train
ones) Train's import: seconds per trial on a small machine (bench/overhead.py).
Ray never gives a process that has run one actor to another, so the next trial
cannot reuse these. So once this trial's worker group is training, its driver
asks its node's raylet to start as many idle processes with the same runtime
environments (the raylet's PrestartWorkers call); the next trial's actors are
placed on them instead of waiting for new ones. `PRELOAD_MODULES`, which
`start_ray` hands to a local Ray, has those processes import Train's modules
while they wait.

All of it is best effort: if anything here fails (another Ray version, a
cluster that forbids it), the next trial starts its processes as before.

Off unless `RAYSEARCH_PRESTART=1`: on a 2-core machine the processes' start-up
competes with the running trial's loop for the same cores, and the loop slows by
more than the start-up saves (README, "Test": bench/overhead.py --prestart). It
is meant for nodes with idle cores, such as a GPU node, where
bench/gpu_check.sh measures it.
"""

from __future__ import annotations

import logging
import os
import threading

import ray

logger = logging.getLogger(__name__)

# `RAY_preload_python_modules` while prestarting: what every worker process of a local Ray imports
# before it takes work. Train's controller module brings in what all of Train's actors import
# (0.7 s on 2 cores).
PRELOAD_MODULES = "ray.train.v2._internal.execution.controller.controller"
# How long an unused warm process waits for the next trial (the raylet ends it after that).
KEEP_ALIVE_S = 300
# `1` turns prestarting on (bench/overhead.py --prestart measures it).
ENABLE_ENV = "RAYSEARCH_PRESTART"
# Train's actors per run besides its workers: the controller, the synchronisation actor, the
# placement-group cleaner and the dataset manager.
TRAIN_ACTORS_BESIDE_WORKERS = 4


def enabled() -> bool:
    return os.environ.get(ENABLE_ENV, "0") == "1"


def local_ray_env() -> dict[str, str]:
    """What a local Ray started by raysearch needs for prestarting (on a cluster: the env of `ray start`)."""
    return {
        # The processes started ahead import Train's modules while they wait.
        "RAY_preload_python_modules": PRELOAD_MODULES,
        # The raylet starts at most this many processes at once and drops prestart requests beyond it
        # (Ray's default: the node's CPU count, 2 here, fewer than one trial's processes).
        "RAY_worker_maximum_startup_concurrency": str(max(os.cpu_count() or 1, 8)),
    }


def warm_processes_for_next_run(controller, train_workers: int, finished: threading.Event) -> None:
    """In the background: once `controller`'s run is training, prestart processes for the next run's actors."""
    if not enabled():
        return

    from ray.train.v2._internal.execution.controller.state import RunningState

    def wait_then_prestart() -> None:
        try:
            while not isinstance(ray.get(controller.get_state.remote(), timeout=10), RunningState):
                if finished.wait(timeout=0.25):
                    return  # the run ended before it trained: nothing to prepare
            prestart(controller, train_workers)
        except Exception as err:  # the controller was killed, or Ray refused: an optimisation only
            logger.debug("prestarting processes for the next trial failed: %r", err)

    threading.Thread(target=wait_then_prestart, name="raysearch-prestart", daemon=True).start()


def prestart(controller, train_workers: int) -> None:
    """Ask this node's raylet for idle processes with the runtime environments of Train's and Tune's actors."""
    from ray.core.generated import common_pb2, node_manager_pb2, runtime_environment_pb2

    context = ray.get_runtime_context()
    train_env = serialized_runtime_env(controller._actor_id.hex())
    plan = [(train_env, TRAIN_ACTORS_BESIDE_WORKERS + train_workers)]
    if context.get_actor_id():  # a Tune trial driver: its next trial's report queue has its environment
        plan.append((serialized_runtime_env(context.get_actor_id()), 1))
    stub = raylet_stub(context.get_node_id())
    for runtime_env, count in plan:
        stub.PrestartWorkers(node_manager_pb2.PrestartWorkersRequest(
            language=common_pb2.Language.PYTHON,
            job_id=bytes.fromhex(context.get_job_id()),
            runtime_env_info=runtime_environment_pb2.RuntimeEnvInfo(serialized_runtime_env=runtime_env),
            keep_alive_duration_secs=KEEP_ALIVE_S,
            num_workers=count,
        ), timeout=10)


def serialized_runtime_env(actor_id: str) -> str:
    """The runtime environment an actor's process was started with, as Ray serialised it (what the pool matches)."""
    from ray.core.generated import gcs_pb2

    accessor = ray._private.state.state._connect_and_get_accessor()
    return gcs_pb2.ActorTableData.FromString(accessor.get_actor_info(ray.ActorID.from_hex(actor_id))).serialized_runtime_env


def raylet_stub(node_id: str):
    from ray._private.grpc_utils import init_grpc_channel
    from ray.core.generated import node_manager_pb2_grpc

    node = next(n for n in ray.nodes() if n["NodeID"] == node_id)
    channel = init_grpc_channel(f"{node['NodeManagerAddress']}:{node['NodeManagerPort']}")
    return node_manager_pb2_grpc.NodeManagerServiceStub(channel)
