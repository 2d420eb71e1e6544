"""What every `python -m raysearch.*` command shares: a parser whose errors are one line, and the checks
that must run before (or right after) Ray starts.

argparse prints its usage block before an error; the project promises one
line per mistake (`error: ...`, exit status 2), so the usage stays behind
`--help`.
"""

from __future__ import annotations

import argparse
import os
from typing import NoReturn

from raysearch.errors import ConfigError


class ArgumentParser(argparse.ArgumentParser):
    """argparse.ArgumentParser whose errors are one line, `error: MESSAGE (see --help)`, and exit status 2."""

    def error(self, message: str) -> NoReturn:
        one_line = " ".join(message.split())
        self.exit(2, f"error: {one_line} (see {self.prog} --help)\n")


# ---------------------------------------------------------------- checks before and right after Ray starts


def check_gpu_before_ray(device: str, address: str | None) -> None:
    """`train.device=cuda` with a local Ray about to start here needs a GPU here: say so before Ray starts."""
    if device != "cuda" or not _starts_local_ray(address):
        return
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("train.device=cuda: this machine has no GPU that torch can use (torch.cuda.is_available() "
                          "is False) and a local Ray would start here; allowed: train.device=auto or cpu, or "
                          "--address of a Ray cluster with GPUs")


def check_gpu_on_cluster(device: str) -> None:
    """Right after attaching to a cluster: `train.device=cuda` needs GPUs in it, or every trial waits forever."""
    import ray

    if device == "cuda" and ray.cluster_resources().get("GPU", 0) <= 0:
        raise ConfigError(f"train.device=cuda: the Ray cluster at {ray.get_runtime_context().gcs_address} has no GPU; "
                          "allowed: train.device=auto or cpu, or a cluster with GPUs")


def _starts_local_ray(address: str | None) -> bool:
    """Whether ray_adapter.start_ray(address) would start a new local Ray rather than attach to a cluster."""
    if address == "local":
        return True
    if address:
        return False
    if os.environ.get("RAY_ADDRESS"):
        return False
    # What ray.init(address="auto") does to find a cluster running on this machine (start_ray tries that first).
    from ray._private.services import get_ray_address_from_environment

    try:
        get_ray_address_from_environment("auto", None)
    except ConnectionError:
        return True
    return False
