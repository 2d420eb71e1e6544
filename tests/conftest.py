"""Shared fixtures: a per-session synthetic dataset cache, small configs."""

import os
from pathlib import Path

import pytest
import torch

# Loopback ports for the Rays and the sshd tests start: the fault harness's own helpers.
from bench.fault_sandbox import free_ports, listening  # noqa: F401 (re-exported to the tests)

# On a 2-core machine PyTorch's default of 2 intra-op threads stalls
# intermittently on tiny ops (0.4 s for a 2 ms forward); tests use one.
torch.set_num_threads(1)

# Small enough that a trial's epoch is a few steps on a 2-core CPU.
SMALL_DATA = [
    "data.synthetic_train=128",
    "data.synthetic_val=32",
    "data.val_images=32",
    "train.batch_size=16",
    "train.preview_images=4",
]


def pytest_collection_modifyitems(items):
    """Tests that start Ray share one xdist worker, one after another: two Rays on one machine confuse Train's
    state API (and `ray down`'s `ray stop` stops every Ray it can see)."""
    for item in items:
        if item.get_closest_marker("ray"):
            item.add_marker(pytest.mark.xdist_group("ray"))


@pytest.fixture(autouse=True)
def only_marked_tests_start_ray(request, monkeypatch):
    """A test not marked `ray` that calls ray.init fails at once, naming the mark: run beside a Ray test on the
    other worker, it would start the second Ray the mark exists to prevent."""
    if request.node.get_closest_marker("ray"):
        return
    import ray

    def refuse(*args, **kwargs):
        pytest.fail(f"{request.node.nodeid} starts Ray: mark it @pytest.mark.ray (tests/conftest.py)")

    monkeypatch.setattr(ray, "init", refuse)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Every test starts with one torch thread, whatever the test before it set (a bench's main sets 2)."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def dataset_cache(tmp_path_factory):
    """Every test generates the synthetic dataset into one session cache, never into ~/.cache."""
    cache = tmp_path_factory.mktemp("raysearch-cache")
    previous = os.environ.get("RAYSEARCH_CACHE")
    os.environ["RAYSEARCH_CACHE"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("RAYSEARCH_CACHE", None)
    else:
        os.environ["RAYSEARCH_CACHE"] = previous


def tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no output)"


def validated_by_the_loop(state: dict, **data) -> tuple[dict[str, float], torch.Tensor]:
    """The training loop's own validation of a full-state checkpoint (a Trial of its config, `data.*` changed by
    `data`, restored from it): what the fill path (raysearch.fill) must reproduce."""
    from raysearch.config import build_config
    from raysearch.loop import Trial, Worker, validate

    config = {**state["config"], "data": {**state["config"]["data"], **data}}
    trial = Trial(build_config(config), Worker())
    trial.restore({**state, "config": config}, Path("checkpoint"))
    return validate(trial)
