"""Population Based Training against the same population trained without exploitation, and against TPE + ASHA,
at equal trial-epochs, on real photos (BSDS500 crops), over several seeds.

A small WGAN space (narrow U-Net and critic, short epochs) whose searched keys
are all ones a running trial can take (learning rates, critic steps,
adversarial weight, clip), scored by `score/val/swd` (lower is better: the
mean of a trial's last 3 epochs, what every scheduler here ranks by). Arms, each
given population x epochs trial-epochs:

- `pbt`: the space's seeded population of P members under scheduler pbt
  (synchronous; the bottom quarter copies the top quarter every interval);
- `fixed`: the same P members, every one trained to the end, nothing copied;
- `tpe_asha`: Optuna's TPE + ASHA from the same space, trials started until the
  trial-epochs are spent (ASHA stops poor ones early).

Then PBT's winner: its schedule replayed from scratch by the loop (what
`raysearch.train --config best_config.yaml` runs) against its final values held
fixed from the first epoch, one process each. And the cost of an exploit: the
report after a copy (Tune pauses the trial, its reused actor restarts the
train function, which builds the trial and restores the donor's checkpoint,
then trains the epoch) against a plain epoch's report, from Tune's
`time_this_iter_s`.

    python bench/pbt.py [--seeds 3] [--population 6] [--epochs 6] [--interval 2] [--steps 12]

Prints a table per seed and one flat JSON object on its last line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
import torch
import yaml
from ray import tune
from ray.tune.schedulers import FIFOScheduler
from ray.tune.stopper import Stopper

from raysearch.config import load_config
from raysearch.constants import score_key
from raysearch.data.cache import cache_root
from raysearch.data.prepare import prepare_photos
from raysearch.lineage import COPIED_FROM, POPULATION_LOG, read_population_log, result_histories, schedule_of
from raysearch.loop import run_trial
from raysearch.mutations import with_values
from raysearch.pbt_scheduler import param_space, population_searcher
from raysearch.population import starting_population
from raysearch.runtime import build_trainable, concurrency, make_scheduler, make_searcher, run_tuner, start_ray
from raysearch.spaces import load_space

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "photos" / "bsds500"
METRIC = "val/swd"


def space_file(data: str, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "description": "bench/pbt.py: a small WGAN on BSDS500 crops",
        "base": {
            "data": {"path": data, "val_images": 64, "augment": "flip"},
            "generator": {"name": "unet", "kernel_size": 3, "base_width": 16, "max_width": 64, "norm": "batch",
                          "output_activation": "tanh", "input_fill": "harmonic", "mask_channel": True,
                          "aligned_output": True, "residual": True},
            "critic": {"name": "conv", "input": "whole", "kernel_size": 3, "base_width": 16, "max_width": 64,
                       "depth": 3, "norm": "batch", "pooling": "strided"},
            "objective": {"name": "wgan", "l2_weight": 1.0, "adv_weight": 500.0, "clip": 0.01},
            "optim": {"name": "adam", "generator_lr": 1.0e-4, "critic_lr": 1.0e-4, "betas": [0.5, 0.999]},
            "train": {"epochs": args.epochs, "batch_size": 16, "critic_steps": 2, "steps_per_epoch": args.steps,
                      "preview_images": 0, "ema_decay": 0.99},
        },
        "search": {
            "optim.generator_lr": {"loguniform": [1.0e-5, 1.0e-3]},
            "optim.critic_lr": {"loguniform": [1.0e-5, 1.0e-3]},
            "train.critic_steps": {"int": [1, 5]},
            "objective.adv_weight": {"loguniform": [100.0, 3000.0]},
            "objective.clip": {"loguniform": [0.005, 0.1]},
        },
        "metric": METRIC,
        "mode": "min",
        "tune": {"num_samples": args.population, "max_epochs": args.epochs, "scheduler": "pbt", "searcher": "random",
                 "max_concurrent": 2, "max_failures": 0, "pbt": {"interval": args.interval, "synch": True}},
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


def best_score(results) -> tuple[float, str]:
    """The lowest last-reported score over the trials, and its trial."""
    scored = [(r.metrics.get(score_key(METRIC), math.inf), Path(r.path).name) for r in results if r.metrics]
    return min(scored)


def trial_epochs(results) -> int:
    return sum(len(r.metrics_dataframe) for r in results if r.metrics_dataframe is not None)


def run_arm(space_path: Path, arm: str, seed: int, storage: str) -> tuple[Any, float]:
    space = load_space(str(space_path))
    settings = dataclasses.replace(space.tune, seed=seed)
    started = time.perf_counter()
    if arm == "pbt":
        results = run_tuner(space, settings, [], storage, f"pbt-{seed}", resume=False)
        return results, time.perf_counter() - started
    budget = settings.num_samples * settings.max_epochs
    if arm == "fixed":  # the PBT arm's own members, nothing copied
        search = population_searcher(starting_population(space, settings))
        scheduler, samples, space_values, stop = FIFOScheduler(), settings.num_samples, param_space(space), None
    else:
        settings = dataclasses.replace(settings, scheduler="asha", searcher="optuna", grace_period=1,
                                       reduction_factor=3, num_samples=budget)
        search = make_searcher(space, settings, concurrency(settings, use_gpu=False))
        scheduler, samples, space_values, stop = make_scheduler(space, settings), budget, None, TrialEpochBudget(budget)
    pbt_settings = space.tune  # the trials of all arms train alike (checkpoints, reported keys)
    trainable = build_trainable(str(space_path), [], pbt_settings, f"{storage}/{arm}-{seed}", use_gpu=False)
    tuner = tune.Tuner(
        trainable, param_space=space_values,
        tune_config=tune.TuneConfig(search_alg=search, scheduler=scheduler, num_samples=samples, reuse_actors=True),
        run_config=tune.RunConfig(name=f"{arm}-{seed}", storage_path=storage, stop=stop, verbose=0),
    )
    results = tuner.fit()
    return results, time.perf_counter() - started


def population_log(storage: str, seed: int) -> dict[str, list[dict[str, Any]]]:
    """The PBT arm's population log (every report; Tune's result.json of a paused trial can lose lines)."""
    return read_population_log((Path(storage) / f"pbt-{seed}" / POPULATION_LOG).read_text())


def exploit_costs(population: dict[str, list[dict[str, Any]]], fixed_results) -> dict[str, float]:
    """Median seconds of the report after an exploit and after a trial's own restore (synchronous PBT pauses
    everyone at each interval) in the PBT arm, and of a plain epoch's report in the fixed arm (same trials, never
    paused), from Tune's time_this_iter_s: the restart of the train function in the reused actor, the trial's
    build and its checkpoint's restore, then the epoch."""
    copied = [r["time_this_iter_s"] for h in population.values() for r in h if COPIED_FROM in r]
    own = [r["time_this_iter_s"] for h in population.values() for r in h
           if COPIED_FROM not in r and r.get("iterations_since_restore") == 1 and r.get("epoch", 1) > 1]
    plain = [r["time_this_iter_s"] for h in result_histories(fixed_results).values() for r in h
             if r.get("iterations_since_restore", 1) > 1]
    median = lambda values: statistics.median(values) if values else math.nan  # noqa: E731
    return {"epoch_s": median(plain), "after_copy_s": median(copied), "after_own_restore_s": median(own),
            "copies": len(copied)}


def replay(space_path: Path, results, population: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    """PBT's winner: its schedule replayed from scratch, against its final values fixed from the start."""
    space = load_space(str(space_path))
    score, winner = best_score(results)
    schedule = schedule_of(winner, population)
    final = next(r for r in results if Path(r.path).name == winner).config
    base = space.trial_config({k: v for k, v in final.items() if v is not None})
    runs = {"schedule": (with_values(base, schedule.values_at(0), "bench"), schedule),
            "final_fixed": (base, None)}
    scores = {}
    for name, (cfg, plan) in runs.items():
        last: dict[str, Any] = {}
        run_trial(cfg, lambda metrics, _: last.update(metrics), schedule=plan)
        scores[name] = last[score_key(METRIC)]
    scores["changes"] = len(schedule.changes) - 1
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--population", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--interval", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12, help="steps (critic cycles) per epoch")
    parser.add_argument("--photos", default=str(PHOTOS))
    parser.add_argument("--no-replay", action="store_true", help="skip replaying PBT winners' schedules")
    args = parser.parse_args()

    data = cache_root() / "bsds500-c8v4"
    prepare_photos(args.photos, data, crops=8, val_crops=4, log=lambda line: print(line, file=sys.stderr))
    start_ray("local", log_to_driver=False)
    torch.set_num_threads(2)
    rows, costs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        space_path = Path(tmp) / "bench_pbt.yaml"
        space_path.write_text(yaml.safe_dump(space_file(str(data), args), sort_keys=False))
        for seed in range(args.seeds):
            row: dict[str, Any] = {"seed": seed}
            arms = {}
            for arm in ("pbt", "fixed", "tpe_asha"):
                arms[arm], seconds = run_arm(space_path, arm, seed, f"{tmp}/runs")
                row[arm], row[f"{arm}_trial"] = best_score(arms[arm])
                row[f"{arm}_trial_epochs"], row[f"{arm}_s"] = trial_epochs(arms[arm]), seconds
            population = population_log(f"{tmp}/runs", seed)
            row["pbt_trial_epochs"] = sum(len(history) for history in population.values())
            costs.append(exploit_costs(population, arms["fixed"]))
            if not args.no_replay:
                row.update({f"replay_{k}": v for k, v in replay(space_path, arms["pbt"], population).items()})
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    ray.shutdown()

    print(f"\nscore/{METRIC} (lower is better), population {args.population} x {args.epochs} epochs of {args.steps} "
          f"steps = {args.population * args.epochs} trial-epochs per arm; 2 trials at a time (2-core CPU)")
    print(f"{'seed':>4} {'PBT':>8} {'fixed':>8} {'TPE+ASHA':>9} {'replayed schedule':>18} {'final fixed':>12}")
    for row in rows:
        print(f"{row['seed']:>4} {row['pbt']:>8.2f} {row['fixed']:>8.2f} {row['tpe_asha']:>9.2f} "
              f"{row.get('replay_schedule', math.nan):>18.2f} {row.get('replay_final_fixed', math.nan):>12.2f}")
    summary: dict[str, Any] = {"seeds": args.seeds, "population": args.population, "epochs": args.epochs,
                               "interval": args.interval, "steps": args.steps}
    for key in ("pbt", "fixed", "tpe_asha", "replay_schedule", "replay_final_fixed", "pbt_s", "fixed_s", "tpe_asha_s"):
        values = [row[key] for row in rows if key in row]
        if values:
            summary[f"{key}_mean"] = statistics.mean(values)
            summary[f"{key}_min"], summary[f"{key}_max"] = min(values), max(values)
    summary["pbt_beats_fixed"] = sum(row["pbt"] < row["fixed"] for row in rows)
    summary["pbt_beats_tpe_asha"] = sum(row["pbt"] < row["tpe_asha"] for row in rows)
    if not args.no_replay:
        summary["schedule_beats_final_fixed"] = sum(row["replay_schedule"] < row["replay_final_fixed"] for row in rows)
    for key in ("epoch_s", "after_copy_s", "after_own_restore_s"):
        values = [c[key] for c in costs if not math.isnan(c[key])]
        summary[f"exploit_{key}"] = statistics.median(values) if values else None
    summary["exploits"] = sum(c["copies"] for c in costs)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
