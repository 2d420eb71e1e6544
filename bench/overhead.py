"""What the runner costs: a search's trials against the same trainings run directly, in one run.

One small search (the `l2` space on a tiny dataset, random sampling, no
scheduler, `--concurrency` trials at a time) runs on a private local Ray, each
trial holding cores/concurrency CPUs; then every configuration it trained is
trained again by `raysearch.loop.run_trial` in this process with the same torch
thread count. Both arms train the same models for the same epochs.

Figures (the last line is one flat JSON object):

- `overhead_per_trial_s`: (the search's wall time x concurrency - the direct
  arm's seconds) / trials: everything the runner adds, spread over the trials
  (the first actor's start included);
- `steady_overhead_per_trial_s` (concurrency 1): the median, over trials 2..N,
  of the time between one trial's end and the next one's, minus that trial's
  direct time: what one more trial costs once the search runs;
- `search_efficiency`: the direct arm's seconds / (the search's wall time x
  concurrency): the share of the trials' slots spent training (1.0 = no cost);
- `actor_rss_mb_after_first` / `_after_last`: the resident memory of the
  process that ran the first trial, read when its first trial ended and when
  the last trial it ran ended (a reused actor must not grow);
- `processes_started`: the actors the search started (each a Python process),
  from Ray's State API;
- `cpu_s_per_trial` and `direct_cpu_s_per_trial`: the whole machine's busy CPU
  seconds per trial during the search (this machine runs nothing else), and
  the direct arm's.

Trial ends and process memory come from a Tune callback in this driver
(`on_trial_complete`), read from /proc; no private Ray API.

    python bench/overhead.py --trials 12 --epochs 2                 # one trial at a time
    python bench/overhead.py --trials 12 --epochs 2 --concurrency 2  # both cores, one trial each
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as `python bench/overhead.py`

import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune import Callback  # noqa: E402
from ray.util.state import list_actors  # noqa: E402

from raysearch import runtime  # noqa: E402
from raysearch.loop import run_trial, trial_process_scope  # noqa: E402
from raysearch.spaces import Resources, load_space  # noqa: E402

SMALL = [
    "data.synthetic_train=256", "data.synthetic_val=32", "data.val_images=32", "train.batch_size=16",
    "train.steps_per_epoch=4", "train.preview_images=4",
]


def machine_busy_cpu_s() -> float:
    """CPU seconds all cores have spent busy since boot (every process: Ray's, Tune's, the loop's), from /proc/stat."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in stat.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def resident_mb(pid: int) -> float | None:
    """A process's resident memory (MB) from /proc, or None once it has gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024
    except (FileNotFoundError, StopIteration):
        return None


def trial_end_recorder():
    """A Tune callback recording, per trial, when it completed (this driver's clock) and the RSS of its process."""
    class TrialEnds(Callback):
        def __init__(self) -> None:
            self.ends: list[dict] = []

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            pid = (trial.last_result or {}).get("pid")
            rss = resident_mb(pid) if pid else None
            self.ends.append({"trial": trial.trial_id, "at": time.perf_counter(), "pid": pid, "rss": rss})

    return TrialEnds()


def direct_run(cfg, threads: int) -> dict[str, float]:
    """The same training in this process with the trial's thread count: seconds and CPU seconds."""
    cpu_start, start = time.process_time(), time.perf_counter()
    with tempfile.TemporaryDirectory() as logdir, trial_process_scope(threads):
        run_trial(cfg, lambda metrics, checkpoint: None, logdir=Path(logdir))
    return {"total": time.perf_counter() - start, "cpu": time.process_time() - cpu_start}


def run_search(space, settings, storage: str, recorder):
    """The search through raysearch's runtime (what `python -m raysearch.tune` runs), with `recorder` attached."""
    trainable = runtime.build_trainable(str(space.path), SMALL, settings, f"{storage}/overhead", use_gpu=False)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=runtime.make_searcher(space, settings, settings.max_concurrent),
                                    num_samples=settings.num_samples, reuse_actors=True),
        run_config=tune.RunConfig(name="overhead", storage_path=storage, callbacks=[recorder], verbose=0),
    )
    return tuner.fit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=1, help="trials at a time (each holds cores/concurrency)")
    args = parser.parse_args()

    cores = runtime.available_cores()
    cpus = cores / args.concurrency
    threads = runtime.threads_for(cpus)
    space = load_space("l2", SMALL)
    settings = dataclasses.replace(space.tune, num_samples=args.trials, max_epochs=args.epochs, scheduler="none",
                                   searcher="random", max_concurrent=args.concurrency, max_failures=0,
                                   resources=Resources(cpus=cpus))
    run_trial(space.trial_config({"train.epochs": 1}), lambda metrics, checkpoint: None)  # makes the dataset

    start = time.perf_counter()
    runtime.start_ray("local", log_to_driver=False)
    startup = time.perf_counter() - start
    recorder = trial_end_recorder()
    with tempfile.TemporaryDirectory() as storage:
        start, cpu_start = time.perf_counter(), machine_busy_cpu_s()
        results = run_search(space, settings, storage, recorder)
        wall = time.perf_counter() - start
        searched_cpu = (machine_busy_cpu_s() - cpu_start) / args.trials
        actors = collections.Counter(actor.class_name for actor in list_actors(limit=10_000))
    errors = [r.error for r in results if r.error]
    ray.shutdown()
    assert not errors, errors

    # The direct arm: the same configurations, the same epochs and threads, in this process, in the order they ran.
    by_id = {r.metrics["trial_id"]: r for r in results}
    order = [end["trial"] for end in recorder.ends]
    configs = [space.trial_config({**by_id[trial_id].config, "train.epochs": args.epochs}) for trial_id in order]
    direct_runs = [direct_run(cfg, threads) for cfg in configs]
    direct_total = sum(run["total"] for run in direct_runs)
    direct_cpu = statistics.mean(run["cpu"] for run in direct_runs)

    efficiency = direct_total / (wall * args.concurrency)
    overhead = (wall * args.concurrency - direct_total) / args.trials
    steady = None
    if args.concurrency == 1 and len(recorder.ends) > 1:
        gaps = [later["at"] - earlier["at"] - run["total"]
                for earlier, later, run in zip(recorder.ends, recorder.ends[1:], direct_runs[1:])]
        steady = statistics.median(gaps)
    first_pid = recorder.ends[0]["pid"]
    same_actor = [end for end in recorder.ends if end["pid"] == first_pid and end["rss"]]
    rss_first, rss_last = same_actor[0]["rss"], same_actor[-1]["rss"]

    print(f"\n{args.trials} trials x {args.epochs} epochs of the l2 space's U-Nets, {args.concurrency} at a time, "
          f"{cpus:g} CPUs ({threads} torch threads) each, on {cores} cores")
    print(f"direct loop             {direct_total / args.trials:7.2f} s/trial")
    print(f"search                  {wall * args.concurrency / args.trials:7.2f} s/trial "
          f"(wall {wall:.1f} s x {args.concurrency} slots)")
    print(f"overhead per trial      {overhead:7.2f} s")
    if steady is not None:
        print(f"  one more trial        {steady:7.2f} s  (median over trials 2-{args.trials})")
    print(f"search efficiency       {efficiency:7.3f}  (direct seconds / slot seconds)")
    print(f"CPU per trial           {searched_cpu:7.2f} s in the search (whole machine), {direct_cpu:.2f} s directly")
    print(f"actor {first_pid} RSS          {rss_first:7.1f} MB after its first trial, {rss_last:.1f} MB after its "
          f"{len(same_actor)}th")
    print(f"Ray start-up, once      {startup:7.2f} s")
    print("actors started: " + ", ".join(f"{name} {count}" for name, count in sorted(actors.items())))
    print(json.dumps({
        "trials": args.trials, "epochs": args.epochs, "concurrency": args.concurrency, "cores": cores,
        "direct_per_trial_s": round(direct_total / args.trials, 3),
        "search_per_trial_s": round(wall * args.concurrency / args.trials, 3),
        "overhead_per_trial_s": round(overhead, 3),
        "steady_overhead_per_trial_s": round(steady, 3) if steady is not None else None,
        "search_efficiency": round(efficiency, 4),
        "actor_rss_mb_after_first": round(rss_first, 1), "actor_rss_mb_after_last": round(rss_last, 1),
        "actor_trials": len(same_actor),
        "cpu_s_per_trial": round(searched_cpu, 2), "direct_cpu_s_per_trial": round(direct_cpu, 2),
        "ray_startup_s": round(startup, 2), "processes_started": sum(actors.values()),
    }))


if __name__ == "__main__":
    main()
