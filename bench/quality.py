"""Inpainting quality after a fixed budget: the classical fills, `l2` and each GAN space's base config.

For the synthetic default data and for real photos (BSDS500 crops prepared by
`prepare --images`), trains every space's base config for the same budget with
the loop itself (no Ray: the figures are the model's, not the scheduler's) and
prints, beside the four classical fills scored on the same validation subset,
each model's PSNR, SSIM, seam and SWD: the final epoch's and the trial's score
(the mean of its last epochs, what the search ranks by). Then the rank-stability
figure: Spearman's rho between the rankings of every trained generator (each
epoch's checkpoint of each space, so the ranking has more than a handful of
entries) on two disjoint halves of the validation subset, by SWD and by PSNR.
With `--judge`, the realism judge (raysearch/judge.py) on every validation image:
the real centers, the classical fills and each space's final generator, the same
seeds for every row (`<data>/<name>/judge_auc` and its per-seed std).

    python bench/quality.py                                   # CPU: small budget (~25 min on 2 cores)
    python bench/quality.py --device cuda --epochs 40 --train-images 0   # GPU: full budget

The last line is one flat JSON object: `<data>/<model>/<metric>` for every row and metric, and
`<data>/rank_rho_swd`, `<data>/rank_rho_psnr`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.geometry import mask_context  # noqa: E402
from raysearch import cli  # noqa: E402
from raysearch.checkpoint import load_checkpoint  # noqa: E402
from raysearch.config import load_config  # noqa: E402
from raysearch.constants import score_key  # noqa: E402
from raysearch.baselines import BASELINE_NAMES, baselines_for, filled_images  # noqa: E402
from raysearch.data.cache import cache_root  # noqa: E402
from raysearch.data.prepare import prepare_photos  # noqa: E402
from raysearch.stability import half_scores, spearman  # noqa: E402
from raysearch.fill import checkpoint_fills  # noqa: E402
from raysearch.judge import DEFAULT_SEEDS, judge_beside_fills  # noqa: E402
from raysearch.judge import format_table as judge_table  # noqa: E402
from raysearch.loop import run_trial  # noqa: E402
from raysearch.pictures import image_grid, labelled  # noqa: E402

SPACES = ("l2", "realism", "dcgan", "wgan", "wgan_gp")
COLUMNS = ("val/psnr", "val/ssim", "val/seam", "val/swd", "val/swd_band")
PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "photos" / "bsds500"


def real_photos(args: argparse.Namespace) -> str:
    """The prepared real-photo dataset: --real, else BSDS500 crops prepared once into the cache."""
    if args.real:
        return args.real
    out = cache_root() / "bsds500-c8v4"
    prepare_photos(args.photos, out, crops=8, val_crops=4, log=lambda line: print(line, file=sys.stderr))
    return str(out)


def train_space(space: str, overrides: list[str], keep: Path) -> tuple[dict[str, float], list[Path]]:
    """Train a space's base config; its last report and a copy of every epoch's checkpoint."""
    cfg = load_config(space, overrides)
    last: dict[str, float] = {}
    kept: list[Path] = []

    def report(metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        last.clear()
        last.update(metrics)
        if checkpoint_dir is not None:
            target = keep / f"{space}-epoch{metrics['epoch']:03d}"
            shutil.copytree(checkpoint_dir, target)
            kept.append(target)

    run_trial(cfg, report)
    return last, kept


def rank_rhos(checkpoints: list[Path], metrics: tuple[str, ...]) -> dict[str, float]:
    """Spearman's rho of each metric between the two validation halves, over `checkpoints` (each scored once)."""
    halves = [half_scores(load_checkpoint(path)) for path in checkpoints]
    return {metric: spearman([h.first[metric] for h in halves], [h.second[metric] for h in halves])
            for metric in metrics}


def draw_grid(path: Path, rows: dict[str, dict[str, float]], finals: dict[str, Path], count: int = 8) -> None:
    """Context, truth, each classical fill and each space's final generator on the same validation images."""
    tiles, labels = [], []
    for space, checkpoint in finals.items():
        fills = checkpoint_fills(checkpoint, val_images=None)  # the subset the run validated on
        images = fills.real[:count]
        if not tiles:
            tiles += [mask_context(images), images]
            labels += [("context", ""), ("ground truth", "")]
            for fill in BASELINE_NAMES:
                tiles.append(filled_images(fills.images[:count], fill))
                labels.append((f"fill: {fill}", _figures(rows[fill])))
        tiles.append(fills.filled[:count])
        labels.append((space, _figures(rows[space])))
    path.parent.mkdir(parents=True, exist_ok=True)
    labelled(image_grid(tiles), labels).save(path)
    print(f"grid: {path}", file=sys.stderr)


def _figures(row: dict[str, float]) -> str:
    return f"{row['val/psnr']:.2f} dB  swd {row['val/swd']:.0f}"


def measure(data_name: str, data_path: str | None, args: argparse.Namespace, figures: dict[str, float]) -> None:
    common = [f"train.epochs={args.epochs}", f"train.device={args.device}", f"data.val_images={args.val_images}",
              f"data.train_images={args.train_images}", "train.preview_images=0", "train.checkpoint_every=1"]
    if data_path:
        common.append(f"data.path={data_path}")
    base = load_config("l2", common)
    rows: dict[str, dict[str, float]] = dict(baselines_for(base.data, base.train.seed))
    with tempfile.TemporaryDirectory(prefix="raysearch-quality-") as tmp:
        checkpoints: list[Path] = []
        finals: dict[str, Path] = {}
        for space in args.spaces:
            started = time.perf_counter()
            last, kept = train_space(space, common, Path(tmp))
            checkpoints += kept
            finals[space] = kept[-1]
            rows[space] = {key: last[key] for key in COLUMNS} | {
                f"score/{key}": last[score_key(key)] for key in COLUMNS if score_key(key) in last
            }
            rows[space]["train_s"] = time.perf_counter() - started
            print(f"{data_name}: {space} trained in {rows[space]['train_s']:.0f} s", file=sys.stderr)
        for metric, rho in rank_rhos(checkpoints, ("val/swd", "val/psnr")).items():
            figures[f"{data_name}/rank_rho_{metric.split('/')[1]}"] = round(rho, 3)
        figures[f"{data_name}/rank_generators"] = len(checkpoints)
        if args.grid and data_name == "real":
            draw_grid(args.grid, rows, finals)
        if args.judge:
            fills = {space: checkpoint_fills(path, val_images=0) for space, path in finals.items()}
            first = next(iter(fills.values()))
            judged = judge_beside_fills(first.images, first.photos, {space: f.filled for space, f in fills.items()},
                                        seeds=args.judge_seeds, log=lambda line: print(line, file=sys.stderr))
            print(f"\n{data_name}: the realism judge ({args.judge_seeds} seeds, {len(first.images)} images)\n"
                  f"{judge_table(judged)}")
            for name, result in judged.items():
                figures[f"{data_name}/{name}/judge_auc"] = round(result.auc.mean, 4)
                figures[f"{data_name}/{name}/judge_auc_std"] = round(result.auc.std, 4)
    print(f"\n{data_name} ({args.epochs} epochs, device {args.device}):")
    print(f"{'':<20}" + "".join(f"{c:>12}" for c in COLUMNS) + f"{'score/psnr':>12}{'score/swd':>12}")
    for name, row in rows.items():
        kind = "fill" if name in BASELINE_NAMES else "model"
        cells = "".join(f"{row[c]:>12.3f}" for c in COLUMNS)
        scores = "".join(f"{row.get(f'score/{c}', float('nan')):>12.3f}" for c in ("val/psnr", "val/swd"))
        print(f"{name:<14}{kind:>6}{cells}{scores}")
        for key, value in row.items():
            figures[f"{data_name}/{name}/{key.replace('val/', '')}"] = round(value, 4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--epochs", type=int, default=6, help="epochs per model (default 6: the CPU budget)")
    parser.add_argument("--train-images", type=int, default=800, help="training images per epoch (0 = all)")
    parser.add_argument("--val-images", type=int, default=200, help="the validation subset (as data.val_images)")
    parser.add_argument("--spaces", default=",".join(SPACES), help="comma-separated spaces whose base configs to train")
    parser.add_argument("--photos", type=Path, default=PHOTOS, help="a folder of photos with train/ and val/")
    parser.add_argument("--real", help="an already prepared real-photo dataset (instead of --photos)")
    parser.add_argument("--only", choices=("synthetic", "real"), help="measure one dataset only")
    parser.add_argument("--grid", type=Path, help="write a PNG: fills and each space's final generator, real photos")
    parser.add_argument("--judge", action="store_true", help="judge the fills and each final generator (slow: ~25 s "
                                                             "of CPU per row at 10 seeds)")
    parser.add_argument("--judge-seeds", type=cli.judge_seeds, default=DEFAULT_SEEDS)
    args = parser.parse_args()
    args.spaces = [s for s in args.spaces.split(",") if s]
    if args.device == "cpu":
        torch.set_num_threads(max(1, torch.get_num_threads()))
    figures: dict[str, float] = {}
    if args.only != "real":
        measure("synthetic", None, args, figures)
    if args.only != "synthetic":
        measure("real", real_photos(args), args, figures)
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
