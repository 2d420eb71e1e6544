"""The GPU benches without a GPU: bench/gpu_busy.py on a stand-in nvidia-smi, bench/gpu_check.sh in its CPU smoke mode."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bench.gpu_busy import Samples, summarise

ROOT = Path(__file__).resolve().parent.parent


def fake_nvidia_smi(tmp_path: Path, lines: list[str]) -> Path:
    """An executable that prints `lines` (one sample's lines, one per GPU) every 20 ms, as `nvidia-smi -lms` does."""
    script = tmp_path / "nvidia-smi"
    script.write_text(f"#!{sys.executable}\nimport sys, time\nwhile True:\n"
                      f"    print({chr(10).join(lines)!r}, flush=True)\n    time.sleep(0.02)\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def run_bench(nvidia_smi: Path, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "bench/gpu_busy.py", "--interval-ms", "20", "--nvidia-smi", str(nvidia_smi),
                           "--", *command], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})


def test_busy_fraction_and_utilisation_follow_the_samples():
    samples = Samples()
    for line in ["0, 0, 100", "0, 50, 900", "0, 0, 100", "0, 30, 300", "0, 0, 100", "[N/A]", ""]:
        samples.add_line(line)
    summary = summarise(samples, wall_s=2.0, returncode=0)
    assert summary["samples"] == 5 and summary["gpus"] == 1
    assert summary["gpu_busy_fraction"] == pytest.approx(2 / 5)
    assert summary["gpu_mean_utilisation"] == pytest.approx(16.0)
    # The busy window runs from the first busy sample to the last: 50, 0, 30.
    assert summary["gpu_busy_window_utilisation"] == pytest.approx(80 / 3, abs=0.05)
    assert summary["gpu_peak_memory_mib"] == 900


def test_every_gpu_of_a_sample_counts_and_one_busy_gpu_makes_the_sample_busy():
    samples = Samples()
    for line in ["0, 0, 1", "1, 40, 1", "0, 0, 1", "1, 0, 1"]:
        samples.add_line(line)
    summary = summarise(samples, wall_s=1.0, returncode=0)
    assert summary["samples"] == 2 and summary["gpus"] == 2
    assert summary["gpu_busy_fraction"] == pytest.approx(0.5)
    assert summary["gpu_mean_utilisation"] == pytest.approx(10.0)


def test_the_bench_samples_while_the_command_runs_and_passes_its_exit_status(tmp_path):
    done = run_bench(fake_nvidia_smi(tmp_path, ["0, 60, 2048"]), sys.executable, "-c",
                     "import time, sys; print('the command ran'); time.sleep(0.5); sys.exit(3)")
    assert done.returncode == 3, done.stderr
    assert "the command ran" in done.stdout
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["returncode"] == 3 and summary["samples"] >= 5
    assert summary["gpu_busy_fraction"] == 1.0 and summary["gpu_mean_utilisation"] == 60.0
    assert summary["gpu_peak_memory_mib"] == 2048 and summary["wall_s"] >= 0.5


def test_an_idle_gpu_is_never_busy(tmp_path):
    done = run_bench(fake_nvidia_smi(tmp_path, ["0, 0, 10"]), sys.executable, "-c", "import time; time.sleep(0.3)")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["gpu_busy_fraction"] == 0.0 and summary["gpu_busy_window_utilisation"] == 0.0


def test_a_machine_without_nvidia_smi_gets_one_clear_error(tmp_path):
    done = run_bench(tmp_path / "no-such-nvidia-smi", sys.executable, "-c", "pass")
    assert done.returncode == 2
    assert "no-such-nvidia-smi" in done.stderr and "NVIDIA GPU" in done.stderr


def run_check(tmp_path: Path, steps: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OUT": str(tmp_path), "SMOKE": "1", "STEPS": steps}
    return subprocess.run(["bash", "bench/gpu_check.sh"], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def test_the_device_script_rejects_an_unknown_step_before_measuring_anything(tmp_path):
    done = run_check(tmp_path, "throughput thruput")
    assert done.returncode == 2
    assert "unknown step 'thruput'" in done.stderr and "throughput search packing overhead quality" in done.stderr
    assert not (tmp_path / "throughput.log").exists()


@pytest.mark.slow
def test_the_device_script_records_each_step_s_json_line_and_exit_status(tmp_path):
    done = run_check(tmp_path, "throughput")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert figures["throughput/exit"] == 0
    assert figures["throughput/device"] == "cpu"
    assert figures["throughput/l2_raysearch_over_bare"] > 0 and figures["throughput/wgan_raysearch_over_bare"] > 0
    assert (tmp_path / "throughput.log").read_text().strip().splitlines()[-1].startswith("{")
    assert "torch" in (tmp_path / "machine.log").read_text()
