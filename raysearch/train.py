"""`python -m raysearch.train SPACE` (or `--config FILE`): one run of a config, no search.

One worker trains in this process on all its cores (Ray Train's local mode: no
Ray cluster starts); `--workers N` trains with DDP on Ray Train's workers on a
local Ray or `--address`. Checkpoints go to `<logdir>/train/epoch_NNNN`; running
the command again with the same `--logdir` resumes from the latest. Prints the
final validation metrics as one JSON object on the last line, with the gap to
the best classical fill of the same validation images.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from raysearch import cli
from raysearch.baselines import baselines_of, best_baseline
from raysearch.checkpoint import RUN_DIR_CHECKPOINTS, latest_checkpoint, load_checkpoint
from raysearch.config import config_to_dict, list_spaces, load_config, load_space_file
from raysearch.mutations import Schedule, parse_schedule, with_values  # PBT hook: replay a schedule
from raysearch.data.check import check_source
from raysearch.errors import RaysearchError
from raysearch.loop import VAL_HISTORY_KEY, local_worker
from raysearch.storage import open_root
from raysearch.summaries import write_baseline_runs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.ArgumentParser(
        prog="python -m raysearch.train",
        description="Train one run of a search space's base config (or --config FILE) in this process on all its "
        "cores, or with --workers N as DDP on Ray Train's workers. Running it again with the same --logdir resumes. "
        "Prints the final validation metrics as one JSON object on the last line.",
    )
    parser.add_argument("space", nargs="?", help=f"search space name or YAML path ({', '.join(list_spaces())})")
    parser.add_argument("--config", help="a YAML file with a base: section, e.g. an experiment's best_config.yaml")
    parser.add_argument("--data", help="prepared dataset directory or URI (default: the synthetic dataset)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a base value, e.g. --set objective.l2_weight=1e-5 (repeatable)")
    parser.add_argument("--epochs", type=int, help="train.epochs")
    parser.add_argument("--workers", type=int, help="train.workers (Ray Train workers; DDP when > 1)")
    parser.add_argument("--logdir", help="run directory: TensorBoard files and checkpoints (default runs/train/NAME-TIME)")
    parser.add_argument("--address", help="with --workers N > 1: the Ray cluster's address; `local` starts a private "
                        "local Ray (default: the cluster running on this machine, else a local Ray)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    args = parser.parse_args(argv)
    if bool(args.space) == bool(args.config):
        parser.error("give a search space or --config FILE (one of the two)")
    return args


def against_best_fill(final: dict[str, Any], baselines: dict[str, dict[str, float]],
                      metric: str = "val/psnr") -> dict[str, Any]:
    """The JSON keys that place a result against the best classical fill on `metric` (higher is better):
    {"best_fill", "best_fill/<metric>", "<metric>_over_best_fill"}; the last only when the result has `metric`."""
    name, value = best_baseline(baselines, metric, "max")
    keys: dict[str, Any] = {"best_fill": name, f"best_fill/{metric}": value}
    result = final.get(metric)
    if isinstance(result, (int, float)) and not isinstance(result, bool) and math.isfinite(result):
        keys[f"{metric}_over_best_fill"] = result - value
    return keys


def describe_against_best_fill(final: dict[str, Any], metric: str = "val/psnr") -> str:
    """e.g. `val/psnr 17.62 dB: +0.48 dB above the best classical fill (harmonic 17.14 dB)`."""
    gap, name, value = final[f"{metric}_over_best_fill"], final["best_fill"], final[f"best_fill/{metric}"]
    side = "above" if gap >= 0 else "below"
    return (f"{metric} {final[metric]:.2f} dB: {gap:+.2f} dB {side} the best classical fill "
            f"({name} {value:.2f} dB)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data.path={args.data}")
    if args.epochs is not None:
        overrides.append(f"train.epochs={args.epochs}")
    if args.workers is not None:
        overrides.append(f"train.workers={args.workers}")
    name = Path(args.space or args.config).stem
    logdir = Path(args.logdir or f"runs/train/{name}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    distributed = False
    try:
        cfg = load_config(args.space or args.config, overrides)
        schedule = replayed_schedule(args.config, cfg)  # PBT hook: a PBT winner's best_config.yaml
        check_source(cfg.data.path, captions=cfg.captions.enabled)  # before anything runs, and on --dry-run
        distributed = cfg.train.workers > 1
        if not args.dry_run:
            open_root(str(logdir), "--logdir")
            if distributed:
                cli.check_gpu_before_ray(cfg.train.device, args.address)
            else:
                local_worker(cfg)  # train.device=cuda without a GPU here is one line now, not a failed run
            baselines = baselines_of(cfg)  # before training: a data problem here is one line too
    except RaysearchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(yaml.safe_dump({"base": config_to_dict(cfg)}, sort_keys=False), end="")
        return 0
    # Ray (seconds to import) only once the input is checked: --dry-run and a bad flag answer at once.
    from raysearch import runtime
    from raysearch.progress import quiet_ray_logs

    quiet_ray_logs()
    write_baseline_runs(str(logdir), baselines, cfg.train.epochs)  # reference runs beside the run's own
    resumed = latest_checkpoint(logdir / RUN_DIR_CHECKPOINTS)
    if resumed is not None:
        done = finished_run(resumed, cfg.train.epochs)
        if done is not None:  # nothing left to train: say so, and report what the run ended with
            print(f"{logdir} already holds epoch {done['epoch']} of {cfg.train.epochs} ({resumed}); nothing to "
                  "train (give more --epochs to go on, or another --logdir)", file=sys.stderr)
            return print_result(done, baselines, logdir)
        print(f"resuming from {resumed}", file=sys.stderr)
    use_gpu = False
    if distributed:
        try:
            runtime.start_ray(args.address, device=cfg.train.device)
            cli.check_gpu_on_cluster(cfg.train.device)
        except RaysearchError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        use_gpu = runtime.wants_gpu(cfg)
    return print_result(runtime.train_run(cfg, logdir, use_gpu=use_gpu, schedule=schedule), baselines, logdir)


def replayed_schedule(config_file: str | None, cfg) -> Schedule | None:
    """The `schedule:` of a --config file (a PBT winner's best_config.yaml: epoch -> values), checked against `cfg`
    (each change builds a valid config), or None. ConfigError in one line naming the file and entry."""
    if not config_file:
        return None
    _, values = load_space_file(config_file)
    schedule = parse_schedule(values.get("schedule"), config_file)
    for epoch, change in schedule.changes:
        with_values(cfg, schedule.values_at(epoch), f"{config_file}: schedule.{epoch}")
    if schedule.changes:
        print(f"replaying the schedule of {config_file}: " + "; ".join(
            f"from epoch {epoch}: " + ", ".join(f"{k}={v}" for k, v in change.items())
            for epoch, change in schedule.changes), file=sys.stderr)
    return schedule if schedule.changes else None


def finished_run(checkpoint: Path, epochs: int) -> dict[str, Any] | None:
    """A run's last validation metrics and epoch when its latest checkpoint already reached `epochs`, else None."""
    state = load_checkpoint(checkpoint)
    if state["epoch"] < epochs:
        return None
    history = state.get(VAL_HISTORY_KEY) or [{}]
    return {**history[-1], "epoch": state["epoch"], "diverged": 0}


def print_result(metrics: dict[str, Any], baselines: dict[str, dict[str, float]], logdir: Path) -> int:
    """The final validation metrics as one JSON line, with the gap to the best classical fill (also on stderr)."""
    print(f"TensorBoard: tensorboard --logdir {logdir}", file=sys.stderr)
    final = {k: v for k, v in metrics.items()
             if k.startswith("val/") or k in ("epoch", "diverged", "diverged_phase", "diverged_epoch")}
    final.update(against_best_fill(final, baselines))
    if "val/psnr_over_best_fill" in final:
        print(describe_against_best_fill(final), file=sys.stderr)
    print(json.dumps(final, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
