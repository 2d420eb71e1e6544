"""Does each realism metric see what a person sees? Every control fill through every metric, with spreads.

Rows: the controls of raysearch/control_fills.py (the real centers, the mean fill, the harmonic fill,
the harmonic fill plus noise matched to the context's band energies, a pasted patch of context,
Telea, Navier-Stokes), two model-like fills (the real center blurred, Gaussian sigma 1 and 2
pixels: what an L2 generator tends towards, graded) and any `--checkpoint` generator.

Columns:
- the judge (raysearch/judge.py): held-out AUC and log-loss, mean ± std over `--seeds` seeds,
  all rows with the same seeds (paired);
- the per-epoch metrics (raysearch/metrics.py, as `Trial.validate` computes them) and three
  unregistered candidates (`swd_window`, `swd_band_window`: the two SWDs on the 48x48 window of
  hole and ring, so the seam is inside the patches; `band_energy`: the mean over the center's
  Laplacian levels of |log(fill's RMS / real's RMS)|), each mean ± std over `--halves` draws of
  a random half of the photos (200 of the 400 BSDS val crops: the size a trial validates on),
  draw d with metric seed d;
- `swd_floor` rows: the SWDs between the real centers of two disjoint halves of the photos,
  the noise floor a fill's SWD is read against.

Then how well each cheap metric agrees with the judge: Spearman's rho, across every row but
`real`, between the metric (signed so that higher = more realistic) and the judge's AUC (lower =
more realistic); the judge's paired differences for the pairs a person would order; and how
stable the judge's ranking is over seeds.

    python bench/judge_controls.py --data /work/data/bsds64 [--seeds 10] [--checkpoint DIR ...] [--grid PNG]

The last line is one flat JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.geometry import hole_of, paste_center  # noqa: E402
from raysearch import metrics  # noqa: E402
from raysearch.control_fills import CONTROL_NAMES, control_fill  # noqa: E402
from raysearch.data.dataset import as_unit, to_uint8_images  # noqa: E402
from raysearch.data.prepared import PreparedDataset  # noqa: E402
from raysearch.errors import RaysearchError  # noqa: E402
from raysearch.evaluate import PREFIX, score_centers  # noqa: E402
from raysearch.fill import checkpoint_fills  # noqa: E402
from raysearch.judge import DEFAULT_SEEDS, REAL, JudgeResult, Spread, judge, paired_difference, windows  # noqa: E402
from raysearch.stability import spearman  # noqa: E402

BLUR_SIGMAS = (1.0, 2.0)
EPOCH_METRICS = ("psnr", "ssim", "seam", "swd", "swd_band")
CANDIDATES = ("swd_window", "swd_band_window", "band_energy")
HIGHER_IS_BETTER = {"psnr", "ssim"}  # every other metric here: lower is more realistic (seam: closer to 0)
# The orderings a person makes at a glance, checked seed by seed: (more realistic, less realistic).
PAIRS = (("telea", "harmonic"), ("navier_stokes", "harmonic"), ("harmonic", "mean"), ("pasted", "mean"),
         ("telea", "navier_stokes"), ("harmonic", "pasted"), ("harmonic_noise", "telea"), ("blur1", "blur2"))


def blurred_center(real: torch.Tensor, sigma: float) -> torch.Tensor:
    """The images with the hole replaced by the real image Gaussian-blurred (sigma pixels): a graded,
    model-like fill (the L2 optimum is a blur of the plausible centers)."""
    radius = int(3 * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=real.dtype)
    kernel = torch.exp(-x.square() / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).view(1, 1, 1, -1)
    channels = real.shape[1]
    blurred = F.pad(real, (radius,) * 4, mode="reflect")
    blurred = F.conv2d(blurred, kernel.expand(channels, 1, 1, -1), groups=channels)
    blurred = F.conv2d(blurred, kernel.transpose(-1, -2).expand(channels, 1, -1, 1), groups=channels)
    return paste_center(real, hole_of(blurred))


def draw_grid(path: Path, rows: dict[str, torch.Tensor], index: np.ndarray) -> None:
    """A PNG: one labelled row per fill, the images at `index`, at their own size (64 px)."""
    label_width, side = 150, 64
    grid = Image.new("RGB", (label_width + len(index) * side, len(rows) * side), "white")
    draw = ImageDraw.Draw(grid)
    for row, (name, images) in enumerate(rows.items()):
        pixels = to_uint8_images(images[torch.as_tensor(index)]).numpy()
        for column, image in enumerate(pixels):
            grid.paste(Image.fromarray(image), (label_width + column * side, row * side))
        draw.text((4, row * side + side // 2 - 6), name[:24], fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)


def band_energy(fake: torch.Tensor, real: torch.Tensor) -> float:
    """Mean over the centers' Laplacian detail levels (32, 16, 8) of |log(RMS of the fill / RMS of the real)|."""
    errors = []
    for f, r in zip(metrics.laplacian_pyramid(fake, 4)[:3], metrics.laplacian_pyramid(real, 4)[:3]):
        errors.append(abs(float(torch.log(f.square().mean().sqrt().clamp_min(1e-8) / r.square().mean().sqrt()))))
    return sum(errors) / len(errors)


def cheap_metrics(filled: torch.Tensor, real: torch.Tensor, seed: int) -> dict[str, float]:
    """The per-epoch metrics (scored as validation scores them) and the candidates, of float [-1, 1] 64x64 images."""
    scored = score_centers(hole_of(filled), real, seed=seed)
    values = {name.removeprefix(PREFIX): value for name, value in scored.items()}
    # The candidates take [0, 1], as the metrics do.
    fake_window, real_window = as_unit(windows(filled)), as_unit(windows(real))
    values["swd_window"] = float(metrics.sliced_wasserstein(fake_window, real_window, seed=seed))
    values["swd_band_window"] = float(metrics.sliced_wasserstein_band(fake_window, real_window, seed=seed))
    values["band_energy"] = band_energy(as_unit(hole_of(filled)), as_unit(hole_of(real)))
    return values


def photo_halves(photos: np.ndarray, draws: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """`draws` random (seeded) splits of the images into two halves by photo, each cut to the same count."""
    distinct = np.unique(photos)
    halves = []
    for draw in range(draws):
        chosen = np.random.default_rng(draw).permutation(distinct)[: len(distinct) // 2]
        first, second = np.flatnonzero(np.isin(photos, chosen)), np.flatnonzero(~np.isin(photos, chosen))
        count = min(len(first), len(second))
        halves.append((first[:count], second[:count]))
    return halves


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a prepared dataset (its val split is used)")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="judge seeds per row")
    parser.add_argument("--halves", type=int, default=5, help="random photo halves for the cheap metrics' spread")
    parser.add_argument("--val-images", type=int, default=0, help="the first N val images (0 = all)")
    parser.add_argument("--checkpoint", action="append", default=[], help="a checkpoint directory (repeatable)")
    parser.add_argument("--grid", type=Path, help="also draw every row's fills of 8 photos into this PNG")
    args = parser.parse_args(argv)
    # This project's machine has 2 cores shared with other work: with 2 intra-op threads a
    # contended step ran ~10x slower than with 1 (measured for this bench).
    torch.set_num_threads(1)
    started, started_cpu = time.perf_counter(), time.process_time()
    try:
        dataset = PreparedDataset(args.data)
        count = dataset.count("val") if args.val_images == 0 else args.val_images
        images = np.array(dataset.images("val")[:count])
        photos = np.asarray(dataset.image_ids("val")[:count])
        rows = {name: control_fill(images, name) for name in CONTROL_NAMES}
        real = rows[REAL]
        for sigma in BLUR_SIGMAS:
            rows[f"blur{sigma:g}"] = blurred_center(real, sigma)
        for directory in args.checkpoint:
            fills = checkpoint_fills(directory, data=args.data, val_images=count)
            rows["/".join(Path(directory).resolve().parts[-2:])] = fills.filled  # e.g. trial/checkpoint
    except RaysearchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.grid:
        draw_grid(args.grid, rows, np.unique(photos, return_index=True)[1][::12][:8])  # 8 photos, spread out
    print(f"{args.data}: {count} val images of {len(np.unique(photos))} photos; judge {args.seeds} seeds, "
          f"cheap metrics over {args.halves} photo halves", file=sys.stderr)

    judged: dict[str, JudgeResult] = {}
    cheap: dict[str, dict[str, Spread]] = {}
    halves = photo_halves(photos, args.halves)
    for name, filled in rows.items():
        judged[name] = judge(real, filled, photos, seeds=args.seeds)
        draws = [cheap_metrics(filled[first], real[first], seed) for seed, (first, _) in enumerate(halves)]
        cheap[name] = {key: Spread.of([draw[key] for draw in draws]) for key in (*EPOCH_METRICS, *CANDIDATES)}
        print(f"  {name}: AUC {judged[name].auc.describe()}, swd {cheap[name]['swd'].mean:.1f}, "
              f"swd_band {cheap[name]['swd_band'].mean:.1f} ({judged[name].cpu_seconds:.0f} s CPU judging)",
              file=sys.stderr)
    floor = {}
    for key, fn in (("swd", metrics.sliced_wasserstein), ("swd_band", metrics.sliced_wasserstein_band)):
        floor[key] = Spread.of([float(fn(as_unit(hole_of(real[first])), as_unit(hole_of(real[second])), seed=seed))
                                for seed, (first, second) in enumerate(halves)])

    columns = (*EPOCH_METRICS, *CANDIDATES)
    cell = lambda spread: f"{spread.mean:>9.4g} ±{spread.std:<6.2g}"  # noqa: E731 - 17 characters
    header = f"{'fill':<24}{'judge AUC':>17}{'judge log-loss':>17}" + "".join(f"{c:>17}" for c in columns)
    lines = [header]
    for name in rows:
        lines.append(f"{name:<24}{cell(judged[name].auc)}{cell(judged[name].log_loss)}"
                     + "".join(cell(cheap[name][c]) for c in columns))
    lines.append(f"{'floor: real/other photos':<24}{'':>34}{'':>51}{cell(floor['swd'])}{cell(floor['swd_band'])}")
    print("\n".join(lines))

    # Agreement with the judge, every row but `real` (its per-epoch figures compare the real centers with
    # themselves: perfect by construction on every metric).
    others = [name for name in rows if name != REAL]
    judge_realism = [-judged[name].auc.mean for name in others]
    rho = {}
    for c in columns:
        sign = 1.0 if c in HIGHER_IS_BETTER else -1.0
        values = [sign * (abs(cheap[name][c].mean) if c == "seam" else cheap[name][c].mean) for name in others]
        rho[c] = spearman(values, judge_realism)
    print("\nagreement with the judge (Spearman rho over the rows but real; 1 = same order):")
    print("  " + ", ".join(f"{c} {rho[c]:+.2f}" for c in columns))

    print("\njudge, paired by seed (AUC of the first minus the second; negative = the first is judged more real):")
    paired = {}
    for first, second in PAIRS:
        if first in judged and second in judged:
            spread = paired_difference(judged[first], judged[second])
            paired[f"{first}-{second}"] = spread
            share = sum(v < 0 for v in spread.values) / len(spread.values)
            print(f"  {first:>15} - {second:<15}{spread.describe():>32}   first judged more real in "
                  f"{share:.0%} of seeds")

    # Ranking stability: each seed's ranking of the rows against the mean ranking.
    per_seed = [[judged[name].auc.values[s] for name in rows] for s in range(args.seeds)]
    mean_ranking = [judged[name].auc.mean for name in rows]
    stability = Spread.of([spearman(seed_values, mean_ranking) for seed_values in per_seed])
    print(f"\njudge ranking, each seed against the mean (Spearman rho): {stability.describe()}")
    seconds, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    print(f"{seconds:.0f} s wall, {cpu:.0f} s CPU; judging {np.mean([r.cpu_seconds for r in judged.values()]):.1f} s "
          f"CPU per row ({args.seeds} seeds)")

    figures: dict[str, float] = {"images": count, "photos": int(len(np.unique(photos))), "seeds": args.seeds,
                                 "halves": args.halves, "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
                                 "judge_cpu_seconds_per_row": round(float(np.mean([r.cpu_seconds for r in judged.values()])), 2),
                                 "judge_rank_stability_rho": stability.mean}
    for name in rows:
        for figure in ("auc", "log_loss"):
            spread = getattr(judged[name], figure)
            figures[f"{name}/judge_{figure}"] = spread.mean
            figures[f"{name}/judge_{figure}_std"] = spread.std
        for c in columns:
            figures[f"{name}/{c}"] = cheap[name][c].mean
            figures[f"{name}/{c}_std"] = cheap[name][c].std
    for key, spread in floor.items():
        figures[f"floor/{key}"], figures[f"floor/{key}_std"] = spread.mean, spread.std
    for c in columns:
        figures[f"rho/{c}"] = rho[c]
    for key, spread in paired.items():
        figures[f"paired_auc/{key}"], figures[f"paired_auc/{key}_std"] = spread.mean, spread.std
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
