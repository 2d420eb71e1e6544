"""How busy a command keeps the GPU: `nvidia-smi` sampled from the command's start to its end.

    python bench/gpu_busy.py -- python -m raysearch.tune seed001_unet_wgan --num-samples 8 --max-epochs 6

The goal for a search is the GPU busy at least half the time (docs/benchmarks.md). `nvidia-smi`'s
`utilization.gpu` is the percentage of its last sample period in which a kernel ran;
one process (`-lms`) streams it for every GPU every `--interval-ms`. A sample is
busy when any GPU's utilisation is above 0. Printed: the busy fraction of the
samples, the mean utilisation (over GPUs and samples) of the whole run and of its
busy window (first to last busy sample: the search's start-up and end left out),
the peak memory used, the wall time and the command's exit status. The command's
own output passes through. The last line is one flat JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

QUERY = "index,utilization.gpu,memory.used"


@dataclass
class Samples:
    """Per sample (one `nvidia-smi` line per GPU, grouped by sample): utilisation % and memory MiB of each GPU."""

    utilisation: list[list[float]] = field(default_factory=list)
    memory_mib: list[list[float]] = field(default_factory=list)

    def add_line(self, line: str) -> None:
        parts = [part.strip() for part in line.split(",")]
        if len(parts) != 3 or not all(part.replace(".", "", 1).isdigit() for part in parts):
            return  # a header, a blank line or "[N/A]": not a sample
        index, utilisation, memory = int(parts[0]), float(parts[1]), float(parts[2])
        if index == 0 or not self.utilisation:  # GPU 0's line starts a new sample
            self.utilisation.append([])
            self.memory_mib.append([])
        self.utilisation[-1].append(utilisation)
        self.memory_mib[-1].append(memory)


def sample_in_background(nvidia_smi: str, interval_ms: int) -> tuple[subprocess.Popen, Samples, threading.Thread]:
    samples = Samples()
    sampler = subprocess.Popen([nvidia_smi, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits",
                                f"-lms={interval_ms}"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def read() -> None:
        for line in sampler.stdout:
            samples.add_line(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return sampler, samples, reader


def summarise(samples: Samples, wall_s: float, returncode: int) -> dict[str, object]:
    per_sample = [statistics.fmean(gpus) for gpus in samples.utilisation]
    busy = [i for i, gpus in enumerate(samples.utilisation) if max(gpus) > 0]
    window = per_sample[busy[0]:busy[-1] + 1] if busy else []
    return {
        "samples": len(per_sample),
        "gpus": max((len(gpus) for gpus in samples.utilisation), default=0),
        "gpu_busy_fraction": round(len(busy) / len(per_sample), 3) if per_sample else float("nan"),
        "gpu_mean_utilisation": round(statistics.fmean(per_sample), 1) if per_sample else float("nan"),
        "gpu_busy_window_utilisation": round(statistics.fmean(window), 1) if window else 0.0,
        "gpu_peak_memory_mib": max((max(gpus) for gpus in samples.memory_mib), default=0.0),
        "wall_s": round(wall_s, 1),
        "returncode": returncode,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     usage="%(prog)s [--interval-ms MS] [--nvidia-smi PATH] -- COMMAND ...")
    parser.add_argument("--interval-ms", type=int, default=500, help="sample period (default 500 ms)")
    parser.add_argument("--nvidia-smi", default="nvidia-smi", help="the nvidia-smi to run")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given: put it after --, e.g. -- python -m raysearch.tune l2")
    if shutil.which(args.nvidia_smi) is None:
        parser.error(f"--nvidia-smi {args.nvidia_smi!r} was not found: this bench needs an NVIDIA GPU and its driver")

    sampler, samples, reader = sample_in_background(args.nvidia_smi, args.interval_ms)
    start = time.perf_counter()
    try:
        returncode = subprocess.call(command)
    finally:
        wall_s = time.perf_counter() - start
        sampler.terminate()
        sampler.wait()
        reader.join(timeout=5)
    summary = summarise(samples, wall_s, returncode)
    print(f"\n{' '.join(command)}: {summary['wall_s']} s, exit {returncode}; GPU busy in "
          f"{summary['gpu_busy_fraction']} of {summary['samples']} samples ({args.interval_ms} ms), mean utilisation "
          f"{summary['gpu_mean_utilisation']}% ({summary['gpu_busy_window_utilisation']}% over the busy window), "
          f"peak memory {summary['gpu_peak_memory_mib']:.0f} MiB")
    print(json.dumps(summary))
    return returncode


if __name__ == "__main__":
    sys.exit(main())
