"""Seconds of overhead per trial: the Tune + Train path versus the loop run directly.

A trivial model (the `l2` space with a tiny U-Net and a few steps per epoch)
trains the same epochs twice: N trials of `raysearch.train.run_trial` called
in this process, then an N-trial `raysearch.tune` search (one trial at a time,
no scheduler) on a local Ray. Ray's own start-up is timed separately.

    python bench/overhead.py [--trials 4] [--epochs 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

SMALL = [
    "data.synthetic_train=256", "data.synthetic_val=32", "data.val_images=32", "train.batch_size=16",
    "train.steps_per_epoch=4", "train.preview_images=4", "generator.base_width=8", "generator.max_width=32",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    import ray
    import torch

    from raysearch.spaces import load_space
    from raysearch.train import run_trial
    from raysearch.ray_adapter import start_ray
    from raysearch.tune import run_search

    space = load_space("l2", SMALL)
    settings = dataclasses.replace(space.tune, num_samples=args.trials, max_epochs=args.epochs, scheduler="none",
                                   searcher="random", max_concurrent=1, max_failures=0)
    cfg = space.trial_config({"train.epochs": args.epochs})

    # Ray Train workers get one thread (OMP_NUM_THREADS=1); so does the direct run.
    torch.set_num_threads(1)
    run_trial(cfg, lambda metrics, checkpoint: None)  # generates the dataset and warms up
    start = time.perf_counter()
    for _ in range(args.trials):
        with tempfile.TemporaryDirectory() as logdir:
            run_trial(cfg, lambda metrics, checkpoint: None, logdir=Path(logdir))
    direct = (time.perf_counter() - start) / args.trials

    start = time.perf_counter()
    start_ray("local")
    startup = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as storage:
        start = time.perf_counter()
        results = run_search(space, settings, SMALL, storage, "overhead", "local", resume=False)
        searched = (time.perf_counter() - start) / args.trials
    errors = [r.error for r in results if r.error]
    ray.shutdown()
    assert not errors, errors

    print(f"\n{args.trials} trials x {args.epochs} epochs of a tiny l2 U-Net, one trial at a time (CPU)")
    print(f"direct loop          {direct:7.2f} s/trial")
    print(f"Tune + Train         {searched:7.2f} s/trial")
    print(f"overhead per trial   {searched - direct:7.2f} s  ({searched / direct:.1f}x the direct time)")
    print(f"Ray start-up, once   {startup:7.2f} s")


if __name__ == "__main__":
    main()
