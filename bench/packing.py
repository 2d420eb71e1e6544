"""Aggregate images/s of K trials sharing one device, through the real search path (Tune + Train).

For each K, one search of K identical trials (a space's base config, one
pinned search value, random searcher, no scheduler, K at a time) runs on a
private local Ray, each trial's Ray Train worker holding 1/K of the device:
`gpu_fraction` 1/K of one GPU when there is one, else `cpus` (CPU count)/K.
Images trained are summed from every epoch's report (`train/images_per_s` x
`train/epoch_s`, counted by what `train_epoch` trained); the window is the
search's whole wall time (`Tuner.fit`, on a Ray already started), so the trial
actors' starts and staggered starts count against packing as they do in a real
search. The ratio is to K = 1.

    flock /tmp/raysearch-ray.lock python bench/packing.py --k 1,2 --epochs 2     # CPU, short
    python bench/packing.py --space wgan --set train.critic_steps=5 --batch-size 64   # a GPU

The last line is one JSON object: `packed_<K>_over_1` and `packed_<K>_images_per_s`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

# Run as `python bench/packing.py`: the repository root, not bench/, must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ray  # noqa: E402

from raysearch import runtime  # noqa: E402
from raysearch.loop import phase_cycle, run_trial  # noqa: E402
from raysearch.spaces import Resources, load_space  # noqa: E402

SMALL_NETS = ["generator.base_width=16", "generator.max_width=64", "critic.base_width=16", "critic.max_width=64"]


def pinned_space(space_name: str, directory: Path) -> Path:
    """A copy of a shipped space whose search has one value (its base learning rate): every trial trains alike."""
    source = load_space(space_name, []).path
    values = yaml.safe_load(source.read_text())
    lr = values["base"]["optim"]["generator_lr"]
    values["search"] = {"optim.generator_lr": {"choice": [lr]}}
    path = directory / f"packing_{source.stem}.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def images_for_steps(cfg, steps: int) -> int:
    """Training images that hold `steps` cycles of the adversarial phase cycle (one batch each without a critic)."""
    return steps * len(phase_cycle(cfg, cfg.objective.adversarial)) * cfg.train.batch_size


def packed_rate(space_path: Path, overrides: list[str], k: int, epochs: int, use_gpu: bool, total_cpus: float,
                storage: str) -> float:
    """Aggregate images/s of K trials at once, each worker holding 1/K of the device."""
    space = load_space(str(space_path), overrides)
    resources = Resources(cpus=total_cpus / k if not use_gpu else 1.0, gpu_fraction=1.0 / k, workers=1)
    settings = dataclasses.replace(space.tune, num_samples=k, max_epochs=epochs, scheduler="none",
                                   searcher="random", max_concurrent=k, max_failures=0, resources=resources)
    start = time.perf_counter()
    results = runtime.run_tuner(space, settings, overrides, storage, f"packing_{k}", resume=False)
    window = time.perf_counter() - start
    errors = [r.error for r in results if r.error]
    assert not errors, errors
    images = sum(float((frame["train/images_per_s"] * frame["train/epoch_s"]).sum())
                 for frame in (r.metrics_dataframe for r in results))
    return images / window


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", default="1,2,4,8", help="trials per device to measure, comma-separated")
    parser.add_argument("--space", default="l2", help="a shipped search space (its base config is trained)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8, help="train.steps_per_epoch (cycles)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--full-size", action="store_true", help="the space's own network widths (default: narrow)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    overrides = [
        "data.synthetic_val=32", "data.val_images=32", "train.preview_images=0",
        f"train.batch_size={args.batch_size}", f"train.steps_per_epoch={args.steps}",
        *([] if args.full_size else SMALL_NETS), *args.overrides,
    ]
    ks = [int(k) for k in args.k.split(",")]
    with tempfile.TemporaryDirectory() as directory:
        space_path = pinned_space(args.space, Path(directory))
        # The data holds exactly --steps cycles per epoch: an epoch trains only the batches the data holds.
        train_images = images_for_steps(load_space(str(space_path), overrides).trial_config({}), args.steps)
        overrides = [f"data.synthetic_train={train_images}", *overrides]
        # Make the synthetic dataset before timing anything.
        run_trial(load_space(str(space_path), overrides).trial_config({"train.epochs": 1}),
                  lambda metrics, checkpoint: None)
        runtime.start_ray("local")
        use_gpu = ray.cluster_resources().get("GPU", 0) > 0
        total_cpus = ray.cluster_resources().get("CPU", 1)
        rates = {}
        for k in ks:
            start = time.perf_counter()
            try:
                rates[k] = packed_rate(space_path, overrides, k, args.epochs, use_gpu, total_cpus, directory)
            except (KeyboardInterrupt, AssertionError, KeyError) as err:  # interrupted or a trial failed
                print(f"K={k}: not measured ({type(err).__name__}: {err})", flush=True)
                break
            print(f"K={k}: {rates[k]:.1f} images/s aggregate ({time.perf_counter() - start:.0f} s wall)", flush=True)
        ray.shutdown()

    device = "gpu" if use_gpu else f"cpu ({total_cpus:g} cores)"
    print(f"\n{args.space} base config, batch {args.batch_size}, {args.epochs} epochs x {args.steps} steps "
          f"({train_images} training images), on one {device}")
    print(f"{'K':>3}{'images/s':>12}{'x one trial':>13}")
    summary: dict[str, object] = {"device": device, "space": args.space, "batch_size": args.batch_size,
                                  "train_images": train_images, "steps": args.steps, "epochs": args.epochs}
    for k, rate in rates.items():
        ratio = rate / rates[1] if 1 in rates else float("nan")
        print(f"{k:>3}{rate:>12.1f}{ratio:>13.2f}")
        summary[f"packed_{k}_images_per_s"] = round(rate, 1)
        if k != 1 and 1 in rates:
            summary[f"packed_{k}_over_1"] = round(ratio, 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
