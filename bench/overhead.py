"""Seconds of overhead per trial: the Tune + Train path versus the same loop run directly.

One small search (the `l2` space on a tiny dataset, random sampling, one trial
at a time, no scheduler) runs on a private local Ray; then every configuration
it trained is trained again by `raysearch.train.run_trial` called in this
process (one thread, as a Ray Train worker with 1 CPU has). Both arms train the
same models for the same epochs.

Where a trial's time goes comes from timestamps Ray records itself: the actor
table (when each trial driver, Train controller and worker became alive and
died) and Ray Train's structured controller/worker logs (worker group start,
training function launch, each checkpoint, shutdown). The direct arm times its
own data load (building the Trial) and first epoch.

    flock /tmp/raysearch-ray.lock python bench/overhead.py [--trials 3] [--epochs 2] [--ray-defaults]

`overhead_per_trial_s` spreads the whole search over its trials, so it also
carries what a search pays once (the first trial driver's start, the search's
set-up and its end); `steady_overhead_per_trial_s` is what each trial after the
first costs beyond the direct loop (the median of their phases' sums).

`cpu_s_per_trial` is the whole machine's busy CPU time during the search per
trial (this machine runs nothing else), `direct_cpu_s_per_trial` the direct
loop's; their difference over the core count, `overhead_floor_s`, is the least
overhead any overlap of Ray's process starts could reach on this machine.

`--ray-defaults` starts Ray with Ray's own defaults instead of the settings
`raysearch.ray_adapter.start_ray` applies, to show what those settings save;
`--prestart` turns on `raysearch.prestart`. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

SMALL = [
    "data.synthetic_train=256", "data.synthetic_val=32", "data.val_images=32", "train.batch_size=16",
    "train.steps_per_epoch=4", "train.preview_images=4",
]

# An idle Ray's background CPU: sampled for IDLE_SAMPLE_S once IDLE_SETTLE_S have passed after its start.
IDLE_SETTLE_S, IDLE_SAMPLE_S = 3.0, 5.0

# Controller/worker log messages of Ray Train 2.60 that mark a trial's phases.
GROUP_REQUESTED = "Attempting to start training worker group"
GROUP_STARTED = "Worker group startup completed"
LOOP_LAUNCHED = "Launching training function"
CHECKPOINT_SAVED = "Checkpoint successfully created"
SHUTTING_DOWN = "Shutting down"


def train_log_events(session_dir: Path) -> dict[str, dict[str, float]]:
    """Per Train run name: the time (s since the epoch) of the first GROUP_*/LOOP_* and last checkpoint/shutdown."""
    events: dict[str, dict[str, float]] = {}
    for path in sorted((session_dir / "logs" / "train").glob("ray-train-sys-*.log")):
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # continuation lines of multi-line messages
            run, message, when = record.get("run_name"), str(record.get("message", "")), record["timestamp_ns"] / 1e9
            if not run:
                continue
            marks = events.setdefault(run, {})
            for key, text in (("group_requested", GROUP_REQUESTED), ("group_started", GROUP_STARTED),
                              ("loop_launched", LOOP_LAUNCHED), ("shutting_down", SHUTTING_DOWN)):
                if text in message and key not in marks:
                    marks[key] = when
            if CHECKPOINT_SAVED in message:
                marks["last_checkpoint"] = max(marks.get("last_checkpoint", 0.0), when)
    return events


def actor_lifetimes(class_name: str) -> list[tuple[float, float]]:
    """(alive, dead) times in s of every actor of `class_name`, from Ray's GCS actor table, by start time."""
    import ray

    table = ray._private.state.actors()  # the GCS table: works without the dashboard
    spans = [(a["StartTime"] / 1e3, a["EndTime"] / 1e3) for a in table.values()
             if a["ActorClassName"] == class_name and a["StartTime"]]
    return sorted(spans)


def search_phases(search_start: float, session_dir: Path) -> list[dict[str, float]]:
    """Seconds per phase of every trial, in the order the trials ran (one at a time).

    A driver start (an ImplicitFunc actor) is counted only for the trials that
    started one: with `TuneConfig(reuse_actors=True)` Tune runs the next trial in
    the previous trial's driver.
    """
    drivers = actor_lifetimes("ImplicitFunc")  # Tune's function trainable: the trial driver
    controllers = actor_lifetimes("TrainController")
    runs = sorted(train_log_events(session_dir).values(), key=lambda marks: marks.get("group_requested", 0))
    phases, previous_end = [], search_start
    for (controller_alive, controller_dead), marks in zip(controllers, runs):
        if not {"group_requested", "group_started", "loop_launched", "last_checkpoint"} <= marks.keys():
            continue  # a trial that did not finish (interrupted)
        started = [alive for alive, _ in drivers if previous_end <= alive <= controller_alive]
        driver_alive = started[0] if started else previous_end
        phases.append({
            "tune_schedules_and_starts_driver": driver_alive - previous_end,
            "driver_builds_trainer_and_controller_starts": controller_alive - driver_alive,
            "train_controller_setup": marks["group_requested"] - controller_alive,
            "worker_start": marks["group_started"] - marks["group_requested"],
            "loop_in_worker": marks["last_checkpoint"] - marks["loop_launched"],
            "teardown": controller_dead - marks["last_checkpoint"],
        })
        previous_end = controller_dead
    return phases


def actors_started() -> dict[str, int]:
    """How many actors (each a Python process) of every class the search started."""
    import ray

    return dict(collections.Counter(actor["ActorClassName"] for actor in ray._private.state.actors().values()))


def machine_busy_cpu_s() -> float:
    """CPU seconds all cores have spent busy since boot (every process: Ray's, Tune's, the loop's), from /proc/stat."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in stat.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def direct_run(cfg) -> dict[str, float]:
    """The same trial trained in this process: data load, first epoch, total (s) and its CPU seconds."""
    from raysearch import train

    marks: list[float] = []
    cpu_start = time.process_time()
    start = time.perf_counter()
    original = train.Trial.__init__

    def timed_init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        marks.append(time.perf_counter())

    train.Trial.__init__ = timed_init
    try:
        with tempfile.TemporaryDirectory() as logdir:
            train.run_trial(cfg, lambda metrics, checkpoint: marks.append(time.perf_counter()), logdir=Path(logdir))
    finally:
        train.Trial.__init__ = original
    return {"data_load": marks[0] - start, "first_epoch": marks[1] - marks[0], "total": time.perf_counter() - start,
            "cpu": time.process_time() - cpu_start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--ray-defaults", action="store_true",
                        help="start Ray with Ray's defaults, not raysearch's local-Ray settings")
    parser.add_argument("--prestart", action="store_true",
                        help="prestart the next trial's processes while a trial trains (raysearch/prestart.py)")
    args = parser.parse_args()

    import ray
    import torch

    from raysearch import prestart, ray_adapter
    from raysearch.spaces import load_space
    from raysearch.train import run_trial
    from raysearch.tune import run_search

    space = load_space("l2", SMALL)
    settings = dataclasses.replace(space.tune, num_samples=args.trials, max_epochs=args.epochs, scheduler="none",
                                   searcher="random", max_concurrent=1, max_failures=0)
    torch.set_num_threads(1)  # what a Ray Train worker holding 1 CPU gets (OMP_NUM_THREADS=1)
    run_trial(space.trial_config({"train.epochs": 1}), lambda metrics, checkpoint: None)  # makes the dataset

    if args.ray_defaults:
        for key, value in ray_adapter.RAY_DEFAULTS.items():
            os.environ[key] = value
    if args.prestart:
        os.environ[prestart.ENABLE_ENV] = "1"
    start = time.perf_counter()
    ray_adapter.start_ray("local")
    startup = time.perf_counter() - start
    session_dir = Path(ray._private.worker._global_node.get_session_dir_path())
    # What an idle Ray (GCS, raylet, dashboard and their agents) keeps busy, once its start has settled.
    time.sleep(IDLE_SETTLE_S)
    idle_start = machine_busy_cpu_s()
    time.sleep(IDLE_SAMPLE_S)
    idle_cpu_per_s = (machine_busy_cpu_s() - idle_start) / IDLE_SAMPLE_S
    with tempfile.TemporaryDirectory() as storage:
        search_start = time.time()
        start, cpu_start = time.perf_counter(), machine_busy_cpu_s()
        results = run_search(space, settings, SMALL, storage, "overhead", "local", resume=False)
        searched = (time.perf_counter() - start) / args.trials
        searched_cpu = (machine_busy_cpu_s() - cpu_start) / args.trials
        phases = search_phases(search_start, session_dir)
        for number, phase in enumerate(phases, 1):
            print(f"trial {number}: " + ", ".join(f"{key} {value:.2f}" for key, value in phase.items()), flush=True)
        actors = actors_started()
    errors = [r.error for r in results if r.error]
    ray.shutdown()
    assert not errors, errors

    # The direct arm: the same configurations, the same epochs, in this process.
    configs = [space.trial_config({**r.config, "train.epochs": args.epochs}) for r in results]
    direct_runs = [direct_run(cfg) for cfg in configs]
    direct = statistics.mean(run["total"] for run in direct_runs)
    direct_cpu = statistics.mean(run["cpu"] for run in direct_runs)
    # The CPU work a trial adds beyond its loop, spread over every core, is a floor under its overhead
    # that no scheduling of Ray's processes can go below on this machine.
    cores = os.cpu_count() or 1
    floor = (searched_cpu - direct_cpu) / cores

    median = {key: statistics.median(p[key] for p in phases) for key in phases[0]} if phases else {}
    # A search pays its first driver's start and its own set-up and ending once, not per trial: the trials
    # after the first, each from the previous one's end to its own, say what one more trial costs.
    later = [sum(p.values()) - direct for p in phases[1:]]
    steady = statistics.median(later) if later else None
    print(f"\n{args.trials} trials x {args.epochs} epochs of the l2 space's U-Nets (same configs in both arms), "
          f"one trial at a time, {'Ray defaults' if args.ray_defaults else 'raysearch settings'}"
          f"{', next trial prestarted' if args.prestart else ''}")
    print(f"direct loop           {direct:7.2f} s/trial  (data load {statistics.median(r['data_load'] for r in direct_runs):.2f} s, "
          f"first epoch {statistics.median(r['first_epoch'] for r in direct_runs):.2f} s)")
    print(f"Tune + Train          {searched:7.2f} s/trial")
    print(f"overhead per trial    {searched - direct:7.2f} s")
    if steady is not None:
        print(f"  one more trial      {steady:7.2f} s  (median over trials 2-{len(phases)}: the search's "
              f"once-only costs left out)")
    print(f"CPU per trial         {searched_cpu:7.2f} s through Tune + Train (the whole machine: Ray's, Tune's and the "
          f"loop's processes), {direct_cpu:.2f} s directly: {searched_cpu - direct_cpu:.2f} CPU s more, "
          f"{floor:.2f} s on {cores} cores at best")
    print(f"                      of which an idle Ray's background: {idle_cpu_per_s:.2f} CPU s per second, "
          f"{idle_cpu_per_s * searched:.2f} per trial")
    print(f"Ray start-up, once    {startup:7.2f} s")
    print("where a trial's time goes through Tune + Train (median over trials, s):")
    for key, value in median.items():
        print(f"  {key:<46}{value:7.2f}")
    print("actors (Python processes) started by the search: "
          + ", ".join(f"{name} {count}" for name, count in sorted(actors.items())))
    summary = {"overhead_per_trial_s": round(searched - direct, 2),
               "steady_overhead_per_trial_s": round(steady, 2) if steady is not None else None,
               "tune_train_per_trial_s": round(searched, 2),
               "direct_per_trial_s": round(direct, 3), "ray_startup_s": round(startup, 2),
               "cpu_s_per_trial": round(searched_cpu, 2), "direct_cpu_s_per_trial": round(direct_cpu, 2),
               "overhead_floor_s": round(floor, 2), "idle_ray_cpu_s_per_s": round(idle_cpu_per_s, 3),
               "ray_defaults": args.ray_defaults, "prestart": prestart.enabled(), "trials": args.trials, "epochs": args.epochs,
               **{f"phase_{key}_s": round(value, 2) for key, value in median.items()},
               "processes_per_trial": round(sum(actors.values()) / args.trials, 2)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
