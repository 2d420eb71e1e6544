"""raysearch/prestart.py: processes started ahead take the next run's actors."""

import os
import threading
import time

import pytest

from raysearch import prestart


def idle_worker_pids() -> set[int]:
    """This test's Ray worker processes that wait for work (Ray titles them `ray::IDLE`)."""
    import ray  # noqa: F401  (puts the psutil Ray ships on sys.path)
    import psutil

    pids = set()
    for process in psutil.Process().children(recursive=True):
        try:
            if " ".join(process.cmdline()).startswith("ray::IDLE"):
                pids.add(process.pid)
        except psutil.Error:
            continue  # ended while we looked
    return pids


@pytest.mark.slow
def test_prestarted_processes_take_the_next_actors_that_share_the_runtime_env(monkeypatch):
    import ray

    from raysearch import ray_adapter

    runtime_env = {"env_vars": {"RAYSEARCH_PRESTART_TEST": "1"}}

    @ray.remote(num_cpus=0)
    class Probe:
        def pid(self) -> int:
            return os.getpid()

    for key, value in {prestart.ENABLE_ENV: "1", **prestart.local_ray_env()}.items():
        monkeypatch.setenv(key, value)  # what start_ray sets when prestarting, undone after the test
    ray_adapter.start_ray("local")
    try:
        template = Probe.options(runtime_env=runtime_env).remote()  # stands in for a Train controller
        ray.get(template.pid.remote())
        before = idle_worker_pids()
        prestart.prestart(template, train_workers=1)  # the controller's environment, 4 + 1 processes
        deadline = time.monotonic() + 90
        while len(idle_worker_pids() - before) < 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        warm = idle_worker_pids() - before
        actors = [Probe.options(runtime_env=runtime_env).remote() for _ in range(5)]
        used = set(ray.get([actor.pid.remote() for actor in actors]))
    finally:
        ray.shutdown()
    assert len(warm) >= 5
    assert used <= warm  # every new actor ran in a process started ahead, none waited for a fresh one


def test_prestart_is_off_unless_asked_for(monkeypatch):
    monkeypatch.delenv(prestart.ENABLE_ENV, raising=False)

    class Controller:
        def __getattr__(self, name):
            raise AssertionError("prestart off must not watch the controller")

    threads = threading.active_count()
    prestart.warm_processes_for_next_run(Controller(), 1, threading.Event())
    assert threading.active_count() == threads
    assert not prestart.enabled()
