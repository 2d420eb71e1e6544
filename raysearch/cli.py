"""What every `python -m raysearch.*` command shares: a parser whose errors are one line, and the checks
that must run before (or right after) Ray starts.

argparse prints its usage block before an error; the project promises one
line per mistake (`error: ...`, exit status 2), so the usage stays behind
`--help`.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

import torch

from raysearch.errors import ConfigError


class ArgumentParser(argparse.ArgumentParser):
    """argparse.ArgumentParser whose errors are one line, `error: MESSAGE (see --help)`, and exit status 2."""

    def error(self, message: str) -> NoReturn:
        one_line = " ".join(message.split())
        self.exit(2, f"error: {one_line} (see {self.prog} --help)\n")


def realism_alpha(text: str) -> float:
    """argparse type of --alpha, a realism_residual model's trade-off (raysearch.inpaint, raysearch.judge)."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1] (0 = the L2 path, 1 = the realism-trained output), "
                                         f"got {text}")
    return value


ALPHA_HELP = "a realism_residual model's trade-off: 0 = its L2 path, 1 (default) = its realism-trained output"


def judge_seeds(text: str) -> int:
    """argparse type of the realism judge's seeds per row (raysearch.judge, analyze --judge, bench/quality.py)."""
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be >= 2 to give a spread, got {text}")
    return value


# ---------------------------------------------------------------- checks before and right after Ray starts


def check_gpu_before_ray(device: str, address: str | None) -> None:
    """`train.device=cuda` with `--address local` (a local Ray about to start here) needs a GPU here: say so
    before Ray starts. Without an address, `runtime.start_ray` makes the same check once it knows that no
    cluster runs here to attach to."""
    if device == "cuda" and address == "local":
        require_gpu_here()


def require_gpu_here() -> None:
    if not torch.cuda.is_available():
        raise ConfigError("train.device=cuda: this machine has no GPU that torch can use (torch.cuda.is_available() "
                          "is False) and a local Ray would start here; allowed: train.device=auto or cpu, or "
                          "--address of a Ray cluster with GPUs")


def check_gpu_on_cluster(device: str) -> None:
    """Right after attaching to a cluster: say so when `train.device=cuda` finds no GPU in it yet.

    Not an error: an autoscaling cluster (cluster.yaml: GPU workers from 0 when idle) adds its GPU
    nodes only when trials ask for them, so an idle cluster without GPUs is the normal case there.
    """
    import ray  # every command imports this module; Ray (seconds to import) only for those that start it

    if device == "cuda" and ray.cluster_resources().get("GPU", 0) <= 0:
        print(f"note: train.device=cuda and the Ray cluster at {ray.get_runtime_context().gcs_address} has no GPU "
              "yet: trials wait until its autoscaler adds GPU nodes (a cluster that cannot add any never starts them)",
              file=sys.stderr)
