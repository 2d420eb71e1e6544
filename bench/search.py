"""Optuna TPE + ASHA versus random search, at the same budget of trial-epochs.

A small `l2` search over the synthetic data (a narrow U-Net; learning rate over
four decades, kernel size, width, output activation, lr decay), each method
given the same number of trial-epochs, over several searcher seeds. For each
method and seed it prints the best val/psnr reached and the trial-epochs it
needed to reach random search's final best. Goal: TPE + ASHA gets there with
at most 1/3 of the trial-epochs.

Random search runs every trial to max_epochs (budget / max_epochs trials);
TPE + ASHA keeps starting trials until the budget is spent (ASHA stops the
poor ones early, so it tries more configurations).

    python bench/search.py [--seeds 3] [--budget 60] [--max-epochs 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import ray
import yaml
from ray import tune
from ray.tune.stopper import Stopper

from raysearch.runtime import build_trainable, concurrency, make_scheduler, make_searcher, start_ray
from raysearch.spaces import load_space

SPACE = {
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


class TrialEpochBudget(Stopper):
    """Ends the experiment once `budget` epoch results have arrived, whatever the trials."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.seen = 0

    def __call__(self, trial_id, result) -> bool:
        self.seen += 1
        return False

    def stop_all(self) -> bool:
        return self.seen >= self.budget


def run(space_path: Path, method: str, seed: int, budget: int, max_epochs: int, storage: str) -> list[float]:
    """Run one search; return the metric of every epoch report in arrival order."""
    space = load_space(str(space_path))
    random = method == "random"
    settings = dataclasses.replace(
        space.tune, seed=seed, max_epochs=max_epochs, searcher="random" if random else "optuna",
        scheduler="none" if random else "asha", grace_period=1, reduction_factor=3,
        num_samples=budget // max_epochs if random else budget, max_failures=0,
    )
    tuner = tune.Tuner(
        build_trainable(str(space_path), [], settings, f"{storage}/{method}-{seed}", use_gpu=False),
        tune_config=tune.TuneConfig(
            search_alg=make_searcher(space, settings, concurrency(settings, use_gpu=False)),
            scheduler=make_scheduler(space, settings),
            num_samples=settings.num_samples,
        ),
        run_config=tune.RunConfig(name=f"{method}-{seed}", storage_path=storage, stop=TrialEpochBudget(budget), verbose=0),
    )
    results = tuner.fit()
    reports = []
    for result in results:
        frame = result.metrics_dataframe
        if frame is not None and space.metric in frame:
            reports += list(zip(frame["timestamp"], frame["epoch"], frame[space.metric]))
    reports.sort(key=lambda report: (report[0], report[1]))  # arrival order across trials
    return [metric for _, _, metric in reports][:budget]


def epochs_to_reach(values: list[float], target: float) -> int | None:
    best = float("-inf")
    for spent, value in enumerate(values, 1):
        best = max(best, value)
        if best >= target:
            return spent
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=60, help="trial-epochs per method and seed")
    parser.add_argument("--max-epochs", type=int, default=5)
    args = parser.parse_args()

    start_ray("local", log_to_driver=False)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        space_path = Path(tmp) / "bench_search.yaml"
        space_path.write_text(yaml.safe_dump(SPACE, sort_keys=False))
        for seed in range(args.seeds):
            random = run(space_path, "random", seed, args.budget, args.max_epochs, f"{tmp}/runs")
            tpe = run(space_path, "tpe_asha", seed, args.budget, args.max_epochs, f"{tmp}/runs")
            target = max(random)
            rows.append((seed, target, epochs_to_reach(random, target), len(random),
                         max(tpe), epochs_to_reach(tpe, target), len(tpe)))
    ray.shutdown()

    print(f"\nval/psnr (max), budget {args.budget} trial-epochs per method, trials of up to {args.max_epochs} "
          "epochs (CPU)")
    print(f"{'seed':>4} {'random best':>12} {'reached after':>14} {'TPE+ASHA best':>14} {'reached random best after':>25}")
    fractions = []
    for seed, random_best, random_needed, random_used, tpe_best, tpe_needed, tpe_used in rows:
        reached = f"{tpe_needed} trial-epochs" if tpe_needed else f"not in {tpe_used}"
        print(f"{seed:>4} {random_best:>12.3f} {random_needed:>8} of {random_used:<3} {tpe_best:>14.3f} {reached:>25}")
        fractions.append(tpe_needed / random_needed if tpe_needed else float("inf"))
    mean = sum(fractions) / len(fractions)
    print(f"TPE+ASHA needed {mean:.2f} of random search's trial-epochs to reach random's best "
          f"(mean over seeds; goal <= 0.33)")


if __name__ == "__main__":
    main()
