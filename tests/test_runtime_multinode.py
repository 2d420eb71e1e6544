"""Fault tolerance across nodes: a trial whose node dies resumes from its checkpoint on another node."""

import json
import threading
import time

import pytest

from tests.conftest import SMALL_DATA

pytestmark = [pytest.mark.slow, pytest.mark.ray]  # Ray: one at a time (conftest)


def _trial_actor_node(address: str, deadline: float) -> str | None:
    """The node id of the live Tune trial actor (a function trainable: Tune's ImplicitFunc), once there is one."""
    from ray.util.state import list_actors

    while time.monotonic() < deadline:
        alive = list_actors(address=address, filters=[("state", "=", "ALIVE")])
        actors = [a for a in alive if a.class_name.endswith("ImplicitFunc")]  # e.g. wrap_function.<locals>.ImplicitFunc
        if actors:
            return actors[0].node_id
        time.sleep(0.5)
    return None


def test_trial_resumes_from_its_checkpoint_when_its_node_dies(tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    from raysearch.report import trial_rows
    from raysearch.spaces import load_space
    from raysearch.tune import run_search

    # A head without CPUs (the search's driver only), and two 1-CPU worker nodes for the trial: no custom resources.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]  # add_node from the main thread
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    try:
        overrides = SMALL_DATA + ["train.steps_per_epoch=8", "generator.base_width=8", "generator.max_width=32"]
        space = load_space("l2", overrides)
        import dataclasses

        settings = dataclasses.replace(space.tune, num_samples=1, max_epochs=8, scheduler="none", max_concurrent=1,
                                       max_failures=2)
        experiment = tmp_path / "multinode"
        killed = {}

        def kill_the_trials_node_after_the_first_checkpoint():
            deadline = time.monotonic() + 240
            node_id = _trial_actor_node(cluster.address, deadline)  # the State API takes a moment: ask before the checkpoint
            while time.monotonic() < deadline and not list(experiment.glob("l2_*/checkpoint_*/state.pt")):
                time.sleep(0.1)
            victim = next((n for n in nodes if n.node_id == node_id), None)
            if victim is not None:
                killed["epochs_done"] = len(list(experiment.glob("l2_*/checkpoint_*/state.pt")))
                cluster.remove_node(victim, allow_graceful=False)
                killed["node"] = node_id

        killer = threading.Thread(target=kill_the_trials_node_after_the_first_checkpoint, daemon=True)
        killer.start()
        results = run_search(space, settings, overrides, str(tmp_path), "multinode", resume=False)
        killer.join(timeout=5)
        assert "node" in killed, "the trial's node was never removed"
        assert killed["epochs_done"] < settings.max_epochs, "the trial finished before its node was removed"

        (row,) = trial_rows(results, space, settings)
        assert row.status == "finished" and row.epochs == settings.max_epochs
        # Resumed, not restarted: after the failure, reports continue from the
        # checkpointed epoch instead of starting again at epoch 1.
        (trial_dir,) = [p for p in experiment.iterdir() if (p / "result.json").exists()]
        # Tune's result.json can lose the lines written just before the node died,
        # so the proof is in the lines after it: the first report of the restored
        # actor (iterations_since_restore 1) is past epoch 1, and no epoch repeats.
        reports = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
        epochs = [r["epoch"] for r in reports]
        assert epochs == sorted(set(epochs)) and epochs[-1] == settings.max_epochs, epochs
        restored = [r["epoch"] for r in reports if r["iterations_since_restore"] == 1]
        assert restored and restored[-1] > 1, (restored, epochs)
    finally:
        ray.shutdown()
        cluster.shutdown()
