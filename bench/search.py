"""What a searcher and a stopper buy, at the same budget of trial-epochs, over several searcher seeds.

`--objectives 2` (the default): a GAN search over two objectives, fidelity (`val/psnr`, max) against the
realism proxy (`val/swd_band`, min), under the GAN floor (PSNR at most 1 dB under the best classical fill),
on real photos (the BSDS500 crops of ../shared/photos, prepared once into the cache; `--data DIR` for
another prepared dataset). Three methods, each given the same trial-epochs:

- `random`: Optuna's random sampler, every trial trained to max_epochs;
- `motpe`: Optuna's multi-objective TPE (raysearch.searcher.StudySearch), every trial trained to max_epochs;
- `motpe_moasha`: the same with the multi-objective successive halving (raysearch.schedulers), which stops
  dominated trials at its rungs and so tries more configurations.

The answer of a search is the front of its feasible *finished* trials (what `python -m raysearch.tune`
reports): after every trial-epoch spent (in the order results arrived), the hypervolume of that front against
the worst classical fill on each axis (raysearch.front). Figure: the trial-epochs each method needed to reach
random search's final hypervolume, as a fraction of random's budget (goal <= 1/3, bar <= 1/2).

`--objectives 1`: the single-metric case, TPE + ASHA against random on a small `l2` search of the synthetic
data (val/psnr), as measured before: the fraction of random's trial-epochs TPE + ASHA needed to reach random's
best.

Also measured: the time the searcher and the stopper spent in the driver (every call Tune made to them,
timed by delegating wrappers) against the search's wall time (goal <= 1%).

    python bench/search.py [--objectives 2] [--seeds 3] [--budget 60] [--max-epochs 6] [--methods ...]

The last line is one flat JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import ray
import yaml
from ray import tune
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher
from ray.tune.stopper import Stopper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as `python bench/search.py`

from raysearch.baselines import baselines_of  # noqa: E402
from raysearch.constants import score_key  # noqa: E402
from raysearch.data.cache import cache_root  # noqa: E402
from raysearch.data.prepare import prepare_photos  # noqa: E402
from raysearch.frontier import hypervolume, nondominated_fronts  # noqa: E402
from raysearch.front import reference_point  # noqa: E402
from raysearch.runtime import build_trainable, concurrency, make_scheduler, make_searcher, start_ray  # noqa: E402
from raysearch.spaces import SearchSpace, load_space  # noqa: E402

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "photos" / "bsds500"

SINGLE = {
    "description": "bench/search.py: a small l2 search",
    "base": {
        "data": {"synthetic_train": 512, "synthetic_val": 64, "val_images": 64},
        "generator": {"name": "unet", "base_width": 8, "max_width": 64},
        "objective": {"name": "l2"},
        "optim": {"generator_lr": 1.0e-3, "betas": [0.9, 0.999]},
        "train": {"batch_size": 32, "preview_images": 0},
    },
    "search": {
        "optim.generator_lr": {"loguniform": [1.0e-5, 1.0e-1]},
        "generator.kernel_size": {"choice": [3, 5]},
        "generator.base_width": {"choice": [4, 8]},
        "generator.output_activation": {"choice": ["tanh", "none", "sigmoid"]},
        "optim.lr_decay": {"uniform": [0.5, 1.0]},
    },
    "metric": "val/psnr",
    "mode": "max",
}

# The dcgan space's trade-off (nsgan + L2 on the l2 space's generator), narrowed to what a 2-core CPU trains in
# seconds an epoch: a quarter-width U-Net, 20 steps of 32 crops per epoch, 100 validation crops.
DOUBLE = {
    "description": "bench/search.py: the fidelity-realism trade-off of a small nsgan + L2 search on real photos",
    "base": {
        "data": {"augment": "dihedral", "val_images": 100},
        "generator": {"name": "unet", "kernel_size": 3, "base_width": 8, "max_width": 64, "norm": "batch",
                      "activation": "leaky_relu", "up_activation": "relu", "output_activation": "tanh",
                      "input_fill": "harmonic", "mask_channel": True, "aligned_output": True, "residual": True},
        "critic": {"name": "conv", "input": "whole", "kernel_size": 5, "base_width": 16, "max_width": 64,
                   "depth": 4, "norm": "batch", "pooling": "strided"},
        "objective": {"name": "nsgan", "l2_weight": 1.0, "adv_weight": 1.0, "label_smoothing": 0.1},
        "optim": {"name": "adam", "generator_lr": 2.0e-4, "critic_lr": 2.0e-4, "betas": [0.5, 0.999]},
        "train": {"batch_size": 32, "steps_per_epoch": 20, "preview_images": 0, "critic_steps": 1,
                  "generator_steps": 1},
    },
    "search": {
        "objective.adv_weight": {"loguniform": [0.03, 30.0]},
        "optim.generator_lr": {"loguniform": [3.0e-5, 3.0e-3]},
        "optim.critic_lr": {"loguniform": [3.0e-5, 3.0e-3]},
        "objective.label_smoothing": {"uniform": [0.0, 0.3]},
        "train.generator_steps": {"int": [1, 3]},
    },
    "objectives": {"val/psnr": "max", "val/swd_band": "min"},
}

METHODS = {1: ("random", "tpe_asha"), 2: ("random", "motpe", "motpe_moasha")}


class TrialEpochBudget(Stopper):
    """Ends the experiment once `budget` trial-epochs have been reported, whatever the trials.

    Counts each (trial, epoch) once: Tune hands the stopper a function trainable's last result twice (its
    report, then the same result marked done), which a plain count of calls would take for another epoch.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.seen: set[tuple[str, int]] = set()

    def __call__(self, trial_id, result) -> bool:
        if "epoch" in result:
            self.seen.add((trial_id, int(result["epoch"])))
        return False

    def stop_all(self) -> bool:
        return len(self.seen) >= self.budget


class Clock:
    """Seconds spent inside the calls Tune makes to a searcher or scheduler (in the driver)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def time(self, call, *args, **kwargs):
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1


class TimedSearcher(Searcher):
    """Delegates every Searcher call to `inner`, timing it (Tune's public Searcher API)."""

    def __init__(self, inner: Searcher, clock: Clock) -> None:
        super().__init__(metric=inner.metric, mode=inner.mode)
        self.inner, self.clock = inner, clock

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return self.clock.time(self.inner.set_search_properties, metric, mode, config, **spec)

    def suggest(self, trial_id):
        return self.clock.time(self.inner.suggest, trial_id)

    def on_trial_result(self, trial_id, result) -> None:
        self.clock.time(self.inner.on_trial_result, trial_id, result)

    def on_trial_complete(self, trial_id, result=None, error=False) -> None:
        self.clock.time(self.inner.on_trial_complete, trial_id, result=result, error=error)

    def save(self, checkpoint_path: str) -> None:
        self.clock.time(self.inner.save, checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.inner.restore(checkpoint_path)


class TimedScheduler(TrialScheduler):
    """Delegates every TrialScheduler call to `inner`, timing it (Tune's public TrialScheduler API)."""

    def __init__(self, inner: TrialScheduler, clock: Clock) -> None:
        self.inner, self.clock = inner, clock

    @property
    def metric(self):
        return self.inner.metric

    @property
    def supports_buffered_results(self) -> bool:
        return self.inner.supports_buffered_results

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return self.inner.set_search_properties(metric, mode, **spec)

    def on_trial_add(self, tune_controller, trial):
        return self.clock.time(self.inner.on_trial_add, tune_controller, trial)

    def on_trial_error(self, tune_controller, trial):
        return self.clock.time(self.inner.on_trial_error, tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result):
        return self.clock.time(self.inner.on_trial_result, tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result):
        return self.clock.time(self.inner.on_trial_complete, tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial):
        return self.clock.time(self.inner.on_trial_remove, tune_controller, trial)

    def choose_trial_to_run(self, tune_controller):
        return self.clock.time(self.inner.choose_trial_to_run, tune_controller)

    def debug_string(self) -> str:
        return self.inner.debug_string()


def settings_for(space: SearchSpace, method: str, seed: int, budget: int, max_epochs: int, grace_period: int):
    """Each method's tune settings: random and MOTPE run every trial to max_epochs (budget / max_epochs
    trials); the stoppers keep starting trials until the budget is spent, their first rung at `grace_period`."""
    stops = method in ("tpe_asha", "motpe_moasha")
    scheduler = "none" if not stops else ("asha" if method == "tpe_asha" else "mo_asha")
    return dataclasses.replace(
        space.tune, seed=seed, max_epochs=max_epochs, searcher="random" if method == "random" else "optuna",
        scheduler=scheduler, grace_period=grace_period, reduction_factor=3, max_failures=0,
        num_samples=budget if stops else budget // max_epochs, max_concurrent=0,
    )


def run(space_path: Path, method: str, seed: int, budget: int, max_epochs: int, grace_period: int, storage: str):
    """One search; (every epoch report in arrival order as (trial, epoch, scores), wall s, searcher s, stopper s)."""
    space = load_space(str(space_path))
    settings = settings_for(space, method, seed, budget, max_epochs, grace_period)
    fills = baselines_of(space.config)
    search_clock, stop_clock = Clock(), Clock()
    searcher = make_searcher(space, settings, concurrency(settings, use_gpu=False), constraints=space.bounds(fills),
                             journal=f"{storage}/{method}-{seed}.journal", study_name=f"{method}-{seed}")
    tuner = tune.Tuner(
        build_trainable(str(space_path), [], settings, f"{storage}/{method}-{seed}", use_gpu=False),
        tune_config=tune.TuneConfig(search_alg=TimedSearcher(searcher, search_clock),
                                    scheduler=TimedScheduler(make_scheduler(space, settings), stop_clock),
                                    num_samples=settings.num_samples, reuse_actors=True),
        run_config=tune.RunConfig(name=f"{method}-{seed}", storage_path=storage, stop=TrialEpochBudget(budget),
                                  verbose=0),
    )
    started = time.perf_counter()
    results = tuner.fit()
    wall = time.perf_counter() - started
    keys = [score_key(o.metric) for o in space.objectives]
    reports = []
    for result in results:
        frame = result.metrics_dataframe
        if frame is None or not all(key in frame for key in keys):
            continue
        for _, line in frame.iterrows():
            reports.append((line["timestamp"], line["epoch"], result.path, [line[key] for key in keys]))
    reports.sort(key=lambda report: (report[0], report[1]))  # arrival order across trials
    return [(trial, int(epoch), scores) for _, epoch, trial, scores in reports][:budget], wall, \
        search_clock.seconds, stop_clock.seconds


def hypervolume_curve(reports, space: SearchSpace, max_epochs: int) -> list[float]:
    """After each trial-epoch spent: the hypervolume of the front of the feasible trials finished so far."""
    fills = baselines_of(space.config)
    reference = reference_point(space.objectives, fills)
    directions = [o.mode for o in space.objectives]
    constraints = space.bounds(fills)
    names = [o.metric for o in space.objectives]
    finished: list[list[float]] = []
    curve = []
    for _, epoch, scores in reports:
        values = dict(zip(names, scores))
        feasible = all(c.holds(values.get(c.metric)) for c in constraints)
        if epoch >= max_epochs and feasible and all(math.isfinite(v) for v in scores):
            finished.append(list(scores))
        front = [finished[i] for i in nondominated_fronts(finished, directions)[0]] if finished else []
        curve.append(hypervolume(front, directions, [value for _, value in reference.values()]) if front else 0.0)
    return curve


def best_curve(reports, mode: str) -> list[float]:
    """After each trial-epoch spent: the best value reported so far (the single-metric figure)."""
    best, curve = -math.inf if mode == "max" else math.inf, []
    for _, _, (value,) in reports:
        best = max(best, value) if mode == "max" else min(best, value)
        curve.append(best)
    return curve


def epochs_to_reach(curve: list[float], target: float, mode: str = "max") -> int | None:
    for spent, value in enumerate(curve, 1):
        if (value >= target if mode == "max" else value <= target) and value != 0.0:
            return spent
    return None


def real_photos(data: str | None) -> str:
    """A prepared real-photo dataset: --data, else BSDS500's crops prepared once into the cache."""
    if data:
        return data
    if not (PHOTOS / "train").is_dir():
        raise SystemExit(f"error: no --data and no BSDS500 photos at {PHOTOS}")
    out = cache_root() / "bsds500-c8v4"
    prepare_photos(PHOTOS, out, crops=8, val_crops=4, log=lambda line: print(line, file=sys.stderr))
    return str(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objectives", type=int, choices=(1, 2), default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=60, help="trial-epochs per method and seed")
    parser.add_argument("--max-epochs", type=int, default=6)
    parser.add_argument("--grace-period", type=int, help="the stoppers' first rung (default: 1 for one objective, as "
                        "measured before; 2 for two, since a GAN's epoch-1 scores say little of its epoch 6)")
    parser.add_argument("--methods", help=f"comma-separated (default: all of {METHODS})")
    parser.add_argument("--data", help="a prepared dataset (two objectives; default: BSDS500 crops)")
    args = parser.parse_args()
    methods = args.methods.split(",") if args.methods else list(METHODS[args.objectives])
    grace = args.grace_period or (1 if args.objectives == 1 else 2)
    document = dict(DOUBLE if args.objectives == 2 else SINGLE)
    if args.objectives == 2:
        document["base"] = {**document["base"], "data": {**document["base"]["data"], "path": real_photos(args.data)}}

    start_ray("local", log_to_driver=False)
    figures: dict[str, float] = {"objectives": args.objectives, "budget": args.budget, "max_epochs": args.max_epochs,
                                 "seeds": args.seeds, "grace_period": grace}
    curves: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        space_path = Path(tmp) / "bench_search.yaml"
        space_path.write_text(yaml.safe_dump(document, sort_keys=False))
        space = load_space(str(space_path))
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for method in methods:
                reports, wall, searcher_s, stopper_s = run(space_path, method, seed, args.budget, args.max_epochs,
                                                           grace, f"{tmp}/runs")
                curve = (hypervolume_curve(reports, space, args.max_epochs) if args.objectives == 2
                         else best_curve(reports, space.mode))
                curves[(method, seed)] = curve
                figures[f"{method}_seed{seed}_final"] = round(curve[-1], 4) if curve else 0.0
                figures[f"{method}_seed{seed}_trial_epochs"] = len(curve)
                figures[f"{method}_seed{seed}_wall_s"] = round(wall, 1)
                figures[f"{method}_seed{seed}_driver_share"] = round((searcher_s + stopper_s) / wall, 5)
                print(f"seed {seed} {method}: final {curve[-1] if curve else 0:.4g} after {len(curve)} trial-epochs, "
                      f"{wall:.0f} s, searcher {searcher_s:.2f} s + stopper {stopper_s:.2f} s in the driver",
                      file=sys.stderr)
    ray.shutdown()

    what = "hypervolume" if args.objectives == 2 else f"best {space.metric}"
    baseline = "random"
    for method in methods:
        if method == baseline:
            continue
        fractions = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            target = curves[(baseline, seed)][-1] if curves[(baseline, seed)] else 0.0
            reached = epochs_to_reach(curves[(method, seed)], target)
            fraction = reached / len(curves[(baseline, seed)]) if reached and target else math.inf
            fractions.append(fraction)
            figures[f"{method}_seed{seed}_fraction_of_random"] = round(fraction, 3) if math.isfinite(fraction) \
                else -1
        finite = [f for f in fractions if math.isfinite(f)]
        figures[f"{method}_reached_random_in"] = len(finite)
        figures[f"{method}_mean_fraction"] = round(sum(finite) / len(finite), 3) if finite else -1
        print(f"{method}: reached random's final {what} in {len(finite)} of {len(fractions)} seeds, with "
              f"{', '.join(f'{f:.2f}' if math.isfinite(f) else 'never' for f in fractions)} of random's trial-epochs",
              file=sys.stderr)
    shares = [v for k, v in figures.items() if k.endswith("_driver_share")]
    figures["driver_share_max"] = max(shares) if shares else 0.0
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
