"""Do two disjoint halves of the validation set rank trials alike? Spearman rho per validation size and SWD setting.

Trains `--trials` configurations sampled from a space by the search's own
seeded searcher (the loop directly, no Ray) for `--epochs` short epochs,
generates each one's validation centers once on `--val` images (the loop's
validation: same noise, same batches), then for each validation size N and
SWD setting scores every trial on images [0, N/2) and [N/2, N) and prints
Spearman's rho between the two rankings. The last line is one flat JSON object.

    python bench/rank_stability.py --space wgan --trials 8 --epochs 3 --steps 30 --val 400
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.geometry import hole_of  # noqa: E402
from raysearch import metrics  # noqa: E402
from raysearch.spaces import load_space  # noqa: E402
from raysearch.stability import spearman  # noqa: E402
from raysearch.checkpoint import load_checkpoint  # noqa: E402
from raysearch.data.dataset import as_unit  # noqa: E402
from raysearch.fill import validation_fills  # noqa: E402
from raysearch.loop import run_trial  # noqa: E402
from raysearch.runtime import make_searcher  # noqa: E402

SWD_SETTINGS = {  # name -> (patches_per_image, projections, repeats)
    "swd_default_64p_128x4": (64, 128, 4),
    "swd_32p_128x4": (32, 128, 4),
    "swd_128p_128x4": (128, 128, 4),
    "swd_64p_256x4": (64, 256, 4),
}


def half_rho(outputs, half: int, score) -> float:
    """Spearman's rho between the trials' `score(fake centers, real centers, seed)` on the first and second half."""
    first, second = [], []
    for _, generated, images, seed in outputs:
        for part, into in ((slice(0, half), first), (slice(half, 2 * half), second)):
            into.append(float(score(hole_of(generated[part]), hole_of(images[part]), seed)))
    return spearman(first, second)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="wgan")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30, help="train.steps_per_epoch")
    parser.add_argument("--val", type=int, default=400, help="validation images generated (largest N)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    overrides = [f"data.synthetic_val={args.val}", f"data.val_images={args.val}", f"train.epochs={args.epochs}",
                 f"train.steps_per_epoch={args.steps}", "train.preview_images=0"]
    space = load_space(args.space, overrides)
    settings = dataclasses.replace(space.tune, num_samples=args.trials)
    searcher = make_searcher(space, settings, max_concurrent=args.trials)
    outputs = []  # (name, generated centers in [0, 1], images in [0, 1], seed)
    started = time.perf_counter()
    for index in range(args.trials):
        params = searcher.suggest(f"trial_{index}")
        cfg = space.trial_config(params)
        kept: dict[str, object] = {}

        def report(metrics_, checkpoint_dir, kept=kept):
            if checkpoint_dir is not None:  # the last one is the trial's final state
                kept["state"] = load_checkpoint(checkpoint_dir)

        last = run_trial(cfg, report)
        if last.get("diverged"):
            print(f"trial {index}: diverged, left out", file=sys.stderr)
            continue
        fills = validation_fills(kept["state"])  # the trial's own validation of the final weights
        outputs.append((f"trial_{index}", as_unit(fills.outputs), as_unit(fills.real), cfg.train.seed))
        print(f"trial {index}: val/swd {last['val/swd']:.1f} val/psnr {last['val/psnr']:.2f} "
              f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)

    results: dict[str, float] = {"trials": len(outputs), "epochs": args.epochs, "steps_per_epoch": args.steps}
    sizes = sorted({n for n in (100, 200, args.val) if n <= args.val})
    for n in sizes:
        half = n // 2
        for name, (patches, projections, repeats) in SWD_SETTINGS.items():
            rho = half_rho(outputs, half, lambda fake, real, seed: metrics.sliced_wasserstein(
                fake, real, seed=seed, patches_per_image=patches, projections=projections, repeats=repeats))
            results[f"rho_n{n}_{name}"] = round(rho, 4)
            print(f"N={n:4d} ({half} per half) {name:24s} rho {rho:.3f}", file=sys.stderr)
        for metric in ("psnr", "ssim"):
            rho = half_rho(outputs, half, lambda fake, real, seed: metrics.get_metric(metric)(fake, real))
            results[f"rho_n{n}_{metric}"] = round(rho, 4)
            print(f"N={n:4d} ({half} per half) {metric:24s} rho {rho:.3f}", file=sys.stderr)
    results["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
