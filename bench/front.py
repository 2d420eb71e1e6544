"""A search's front read against the classical fills and the fixed models a space ships, on every validation image,
with the realism judge: where its trials sit on the fidelity-realism plane.

For an experiment of several objectives (e.g. `python -m raysearch.tune realism --data BSDS_CROPS`), every front
trial (at its best kept checkpoint) is filled on all the validation images of the search's data and scored:
PSNR (fidelity), `val/swd_band` (the search's realism proxy) and the realism judge's AUC (raysearch.judge, the
same seeds for every row; 0.5 = cannot be told from real). Beside them, on the same images and seeds: the real
centers, the classical fills (mean, harmonic, Telea, Navier-Stokes), the judge's "harmonic + border-matched
noise" control (realism that is only noise: a learned fill must beat it too), and `--model` checkpoints the
space ships (e.g. trained/realism) at each `--alpha`.

Verdicts printed (and in the JSON):
- bar: some front trial strictly better than Telea and Navier-Stokes on both PSNR and the judge's AUC;
- goal: some front trial above the best classical fill's PSNR (harmonic) with a lower AUC than both OpenCV
  fills and than the harmonic + noise control.

    python bench/front.py EXPERIMENT [--model trained/realism] [--alphas 0,0.5,0.8,1] [--judge-seeds 10]
                          [--plane docs/realism_front.png]

The last line is one flat JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as `python bench/front.py`

from raysearch.baselines import BASELINE_NAMES  # noqa: E402
from raysearch.checkpoint import load_checkpoint  # noqa: E402
from raysearch.control_fills import control_fill  # noqa: E402
from raysearch.data.dataset import to_float_images  # noqa: E402
from raysearch.evaluate import score_centers  # noqa: E402
from raysearch.experiment import CHECKPOINT_FILE, open_experiment  # noqa: E402
from raysearch.fill import checkpoint_fills, validation_fills  # noqa: E402
from raysearch.front import read_front  # noqa: E402
from raysearch.judge import DEFAULT_SEEDS, REAL, judge_beside_fills  # noqa: E402
from raysearch.judge import format_table as judge_table  # noqa: E402
from models.geometry import hole_of  # noqa: E402

CONTROL = "harmonic_noise"


def front_fills(location: str) -> tuple[dict, dict[str, torch.Tensor], dict[str, int]]:
    """(the first front trial's ValidationFills, {trial: filled images}, {trial: epoch}) of the experiment's front,
    every trial at its kept checkpoint with the best primary metric, on all its data's validation images."""
    experiment = open_experiment(location)
    baselines, constraints = experiment.fills(lambda line: print(line, file=sys.stderr))
    front = read_front(experiment.rows(constraints), experiment.objectives, baselines)
    if not front.members:
        raise SystemExit(f"error: {location}: no trial on the front yet")
    first, filled, epochs = None, {}, {}
    for row in front.members:
        trial = experiment.trial(row.trial)
        epoch = trial.best_checkpoints(experiment.metric, experiment.mode)[0]
        with experiment.storage.local_dir(trial.checkpoint_dir(epoch)) as local:
            fills = validation_fills(load_checkpoint(local), f"{location}/{trial.checkpoint_dir(epoch)}/"
                                     f"{CHECKPOINT_FILE}", val_images=0)
        first = first or fills
        filled[f"front: {row.trial}" + (" (knee)" if row.trial == front.knee.trial else "")] = fills.filled
        epochs[row.trial] = epoch
    return first, filled, epochs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", help="an experiment of several objectives (directory or URI)")
    parser.add_argument("--model", action="append", default=[], help="a shipped model's checkpoint (repeatable)")
    parser.add_argument("--alphas", default="0,0.5,0.8,1", help="realism-residual alphas of each --model")
    parser.add_argument("--judge-seeds", type=int, default=DEFAULT_SEEDS)
    parser.add_argument("--plane", type=Path, help="draw PSNR against the judge's AUC into this PNG")
    args = parser.parse_args()
    torch.set_num_threads(2)
    reference, methods, epochs = front_fills(args.experiment)
    data = reference.config.data.path
    images, photos, real = reference.images, reference.photos, reference.real
    for model in args.model:
        for alpha in (float(a) for a in args.alphas.split(",")):
            fills = checkpoint_fills(model, data=data, val_images=0, alpha=alpha)
            if not np.array_equal(fills.images, images):
                raise SystemExit(f"error: {model}: other validation images than the experiment's")
            methods[f"{Path(model).name} alpha {alpha:g}"] = fills.filled
    methods[CONTROL] = control_fill(images, CONTROL)
    seed = reference.config.train.seed
    results = judge_beside_fills(images, photos, methods, seeds=args.judge_seeds,
                                 log=lambda line: print(line, file=sys.stderr))
    every = {REAL: real, **{name: control_fill(images, name) for name in BASELINE_NAMES}, **methods}
    scores = {name: score_centers(hole_of(filled), real, seed=seed) for name, filled in every.items()}
    print(f"{len(images)} validation images of {len(np.unique(photos))} photos ({data}), {args.judge_seeds} seeds\n")
    print(judge_table(results))
    print(f"\n{'fill':<40}{'PSNR':>8}{'swd_band':>10}{'judge AUC':>11}")
    for name in results:
        print(f"{name:<40}{scores[name]['val/psnr']:>8.2f}{scores[name]['val/swd_band']:>10.1f}"
              f"{results[name].auc.mean:>11.3f}")
    front_names = [name for name in methods if name.startswith("front: ")]

    def strictly_better(name: str, than: str) -> bool:
        return (scores[name]["val/psnr"] > scores[than]["val/psnr"]
                and results[name].auc.mean < results[than].auc.mean)

    bar = [n for n in front_names if strictly_better(n, "telea") and strictly_better(n, "navier_stokes")]
    harmonic_psnr = scores["harmonic"]["val/psnr"]
    goal = [n for n in front_names if scores[n]["val/psnr"] > harmonic_psnr
            and all(results[n].auc.mean < results[o].auc.mean for o in ("telea", "navier_stokes", CONTROL))]
    print(f"\nbar (strictly better than Telea and Navier-Stokes on PSNR and judge AUC): {bar or 'none'}")
    print(f"goal (above the harmonic fill's PSNR, below both OpenCV fills' and the noise control's AUC): "
          f"{goal or 'none'}")
    if args.plane:
        draw(args.plane, scores, results, front_names)
    figures = {"images": len(images), "photos": int(len(np.unique(photos))), "seeds": args.judge_seeds,
               "front_trials": len(front_names), "bar_met": len(bar), "goal_met": len(goal)}
    for name in results:
        key = name.replace("front: ", "front_").replace(" (knee)", "_knee").replace(" ", "_")
        figures[f"{key}_psnr"] = round(scores[name]["val/psnr"], 3)
        figures[f"{key}_swd_band"] = round(scores[name]["val/swd_band"], 1)
        figures[f"{key}_auc"] = round(results[name].auc.mean, 4)
        figures[f"{key}_auc_std"] = round(results[name].auc.std, 4)
    for trial, epoch in epochs.items():
        figures[f"front_{trial}_epoch"] = epoch
    print(json.dumps(figures))
    return 0


def draw(path: Path, scores, results, front_names: list[str]) -> None:
    """PSNR against the judge's AUC: the front, each shipped model's alpha sweep, the fills and the control."""
    figure, axes = plt.subplots(figsize=(8, 6), dpi=100)
    for name, result in results.items():
        x, y = scores[name]["val/psnr"], result.auc.mean
        if name in front_names:
            style = dict(color="tab:blue", marker="o", s=45)
        elif " alpha " in name:
            style = dict(color="tab:green", marker=".", s=60)
        elif name == REAL:
            continue
        else:
            style = dict(color="tab:red", marker="s", s=45)
        axes.scatter([x], [y], **style)
        axes.errorbar([x], [y], yerr=[[y - result.auc.low], [result.auc.high - y]], color=style["color"],
                      alpha=0.4, linewidth=1)
        axes.annotate(name.replace("front: ", ""), (x, y), textcoords="offset points", xytext=(5, 3), fontsize=7)
    sweeps: dict[str, list[tuple[float, float]]] = {}
    for name, result in results.items():
        if " alpha " in name:
            sweeps.setdefault(name.split(" alpha ")[0], []).append((scores[name]["val/psnr"], result.auc.mean))
    for model, points in sweeps.items():
        xs, ys = zip(*sorted(points))
        axes.plot(xs, ys, "--", color="tab:green", linewidth=1, label=f"{model}: --alpha sweep")
    axes.set_xlabel("PSNR on the hole, dB (higher is more faithful)")
    axes.set_ylabel("realism judge AUC (lower is more realistic; 0.5 = cannot be told from real)")
    axes.scatter([], [], color="tab:blue", label="the search's front")
    axes.scatter([], [], color="tab:red", marker="s", label="classical fills, harmonic + noise control")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


if __name__ == "__main__":
    raise SystemExit(main())
