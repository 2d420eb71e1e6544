"""Is a trained generator short of data or of capacity? Its gain on photos it trained on against photos it never saw.

A checkpoint's generator (its weight average where the run keeps one, as validation uses) fills
and is scored exactly as its validation did (raysearch.fill, raysearch.evaluate), once on a
seeded sample of the images the run trained on (as prepared: no augmentation) and once on its validation subset; the classical
fills (`raysearch.baselines`) are scored on the same images. Each split reports the
model's gain over its best fill, and `generalisation_gap` is the train gain minus the val gain
(in dB for PSNR):

- a small gap and a small train gain: the network cannot fit even the photos it saw, so more
  steps, width or kernel are the levers;
- a train gain well above the val gain: it fits what it saw and does not carry it over, so
  more distinct photos are.

    python bench/generalisation.py CHECKPOINT [--train-images 400] [--data DATA] [--metric val/psnr]

CHECKPOINT is a checkpoint directory (holding state.pt); `--data` points at the dataset when it
has moved since the run. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python bench/generalisation.py`

from raysearch.checkpoint import load_checkpoint  # noqa: E402
from raysearch.baselines import baselines_for, score_fills  # noqa: E402
from raysearch.data.dataset import to_float_images  # noqa: E402
from raysearch.errors import RaysearchError  # noqa: E402
from raysearch.data.splits import load_split  # noqa: E402
from raysearch.evaluate import score_centers  # noqa: E402
from raysearch.fill import generator_outputs, trained_generator, validation_fills, validation_noise  # noqa: E402

SAMPLE_SEED = 0  # which training images are scored: the same ones on every call
HIGHER_IS_BETTER = ("val/psnr", "val/ssim")  # the metrics a "gain" over the best fill is read on


def training_sample(count: int, available: int) -> np.ndarray:
    """Sorted indices of `count` distinct training images (all of them when `count` is 0 or too many)."""
    if count <= 0 or count >= available:
        return np.arange(available)
    return np.sort(np.random.default_rng(SAMPLE_SEED).choice(available, count, replace=False))


def split_figures(values: dict[str, float], fills: dict[str, dict[str, float]], images: int,
                  metric: str) -> dict[str, Any]:
    """The generator's `metric` (from its `values`), the best classical fill's, and the gain."""
    best_fill = max(fills, key=lambda name: fills[name][metric])
    return {"images": images, "model": values[metric], "best_fill": best_fill,
            "best_fill_value": fills[best_fill][metric], "gain": values[metric] - fills[best_fill][metric]}


def measure(state: dict[str, Any], train_images: int, metric: str, where: str = "checkpoint") -> dict[str, Any]:
    """{"train": split_figures, "val": split_figures} of a loaded checkpoint (`where` names it in errors).

    The val side is the trial's own validation beside the dataset's cached fills; the training
    sample has neither, so both are computed here, the same way."""
    val = validation_fills(state, where)
    cfg, seed = val.config, val.config.train.seed
    _, generator = trained_generator(state, where)
    split = load_split(cfg.data, "train", cfg.captions.enabled)
    index = torch.from_numpy(training_sample(train_images, len(split.images)))
    train = split.images[index]
    images = to_float_images(train)
    noise = validation_noise(cfg, len(train), images.device)
    outputs = generator_outputs(generator, cfg, images, split.tokens[index], noise)
    return {
        "train": split_figures(score_centers(outputs, images, seed), score_fills(train.numpy(), seed), len(train),
                               metric),
        "val": split_figures(score_centers(val.outputs, val.real, seed), baselines_for(cfg.data, seed),
                             len(val.real), metric),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a checkpoint directory (holding state.pt)")
    parser.add_argument("--train-images", type=int, default=400,
                        help="how many training images to score, drawn with a fixed seed (0 = all)")
    parser.add_argument("--data", help="the dataset, when it is no longer where the run read it")
    parser.add_argument("--metric", default="val/psnr", choices=HIGHER_IS_BETTER, help="the metric compared")
    args = parser.parse_args(argv)

    try:
        state = load_checkpoint(args.checkpoint)
        if args.data:
            state["config"]["data"]["path"] = args.data
        figures = measure(state, args.train_images, args.metric, str(args.checkpoint))
    except RaysearchError as err:  # a checkpoint or dataset that does not fit: one line, as the CLIs print it
        print(f"error: {err}", file=sys.stderr)
        return 2
    for split in ("train", "val"):
        f = figures[split]
        print(f"{split:5s} {f['images']:5d} images: model {f['model']:.3f}, {f['best_fill']} fill "
              f"{f['best_fill_value']:.3f}, gain {f['gain']:+.3f}")
    result = {
        "metric": args.metric,
        "epoch": state.get("epoch"),
        **{f"{split}_{key}": value for split in ("train", "val") for key, value in figures[split].items()},
        "generalisation_gap": figures["train"]["gain"] - figures["val"]["gain"],
    }
    print(f"generalisation gap (train gain - val gain): {result['generalisation_gap']:+.3f}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
