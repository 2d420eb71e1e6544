#!/usr/bin/env bash
# The GPU figures (a search's overhead per trial and efficiency, throughput and packing, the GPU row of the quality
# bench) in as few device calls as
# possible: each step runs under its own time limit inside one overall deadline, and writes its
# log to $OUT/<step>.log and its JSON line into $OUT/figures.json as soon as it ends, so a call
# cut short still brings back every step that finished.
#
# Once, here:   bash ../shared/gpu/make-site.sh          (.gpu/site.tar.xz: Ray, Optuna, ... for the GPU's Python)
# On the GPU (the device tool: carry [".gpu"], timeout_s 600), two calls cover every step:
#   source .gpu/setup.sh; bash bench/gpu_check.sh                                  # throughput search packing
#   source .gpu/setup.sh; STEPS="overhead quality" bash bench/gpu_check.sh
# Here, without a GPU:  SMOKE=1 bash bench/gpu_check.sh   (every step, tiny budgets, on the CPU: checks the commands)
#
# Step budgets (seconds) come from the H100 runs of 2026-11-23, when a trial's start cost ~30 s there (each
# trial was then a Ray Train run of its own; one-process trials now train in a reused Tune actor).
# The real-photo half of the quality bench is left out: the photos (22 MB) do not fit beside the
# carried Ray site (63.7 MB) under the device tool's 64 MiB.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
SMOKE=${SMOKE:-0}
PY=${PYTHON:-python3}   # the GPU machine's Python 3.12 may have no `python`
STEPS=${STEPS:-"throughput search packing"}
DEADLINE_S=${DEADLINE_S:-560}   # leaves the device call's 600 s some room to send the files back
start_s=$SECONDS
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
figures=$OUT/figures.json
[ -f "$figures" ] || echo '{}' > "$figures"

if [ "$SMOKE" = 1 ]; then
    device=cpu
    throughput=("$PY" bench/throughput.py --device cpu --objectives l2,wgan --train-images 64 --repeats 1 --no-compile)
    search=("$PY" -m raysearch.tune l2 --smoke-test --num-samples 2 --max-epochs 1 --storage "$scratch/runs"
            --name gpu_check --address local)
    packing=("$PY" bench/packing.py --k 1,2 --epochs 1 --steps 2)
    overhead=("$PY" bench/overhead.py --trials 2 --epochs 1)
    quality=("$PY" bench/quality.py --device cpu --only synthetic --epochs 1 --train-images 64 --val-images 32
             --spaces l2,wgan)
else
    device=cuda
    throughput=("$PY" bench/throughput.py --device cuda --batch-size 64 --train-images 8000 --repeats 3)
    # The GPU search of docs/benchmarks.md: 8 trials of 6 epochs, packed on the GPU as the search packs by default.
    search=("$PY" -m raysearch.tune seed001_unet_wgan --num-samples 8 --max-epochs 6 --storage "$scratch/runs"
            --name gpu_check --address local)
    packing=("$PY" bench/packing.py --space wgan --set train.critic_steps=5 --batch-size 64 --steps 30 --epochs 3
             --full-size --k 1,4,8)
    # One more trial's cost, the search's efficiency and the reused actor's memory over 12 trials.
    overhead=("$PY" bench/overhead.py --trials 12 --epochs 2)
    quality=("$PY" bench/quality.py --device cuda --only synthetic --epochs 20 --train-images 0)
fi
declare -A budget_s=([throughput]=150 [search]=130 [packing]=170 [overhead]=170 [quality]=150)

# Merge a step's last JSON line, exit status and wall time into figures.json under "<step>/<key>".
record() {
    "$PY" - "$figures" "$@" <<'PY'
import json, sys
path, step, log, status, wall = sys.argv[1:]
lines = [line for line in open(log, errors="replace").read().splitlines() if line.startswith("{")]
figures = json.load(open(path))
try:
    figures.update({f"{step}/{key}": value for key, value in json.loads(lines[-1]).items()})
except (IndexError, json.JSONDecodeError):
    figures[f"{step}/missing"] = "no JSON line: see the log"
figures[f"{step}/exit"], figures[f"{step}/step_wall_s"] = int(status), int(wall)
json.dump(figures, open(path, "w"), indent=1, sort_keys=True)
PY
}

for step in $STEPS; do
    if [ -z "${budget_s[$step]:-}" ]; then
        echo "unknown step '$step' in STEPS: the steps are throughput search packing overhead quality" >&2; exit 2
    fi
done

echo "== machine"
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
    nproc
    "$PY" -c "import sys, torch, ray, optuna; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda',
torch.cuda.is_available(), 'ray', ray.__version__, 'optuna', optuna.__version__)"
} 2>&1 | tee "$OUT/machine.log"
if [ "$device" = cuda ] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "no CUDA device: nothing measured (SMOKE=1 checks the commands on a CPU)"; exit 1
fi

for step in $STEPS; do
    left=$((DEADLINE_S - (SECONDS - start_s)))
    limit=${budget_s[$step]}
    [ "$SMOKE" = 1 ] && limit=600
    (( limit > left )) && limit=$left
    if (( limit < 30 )); then echo "== $step: skipped, ${left} s left of the deadline"; continue; fi
    declare -n command=$step   # the step's command array
    log=$OUT/$step.log
    if [ "$step" = search ] && [ "$device" = cuda ]; then
        command=("$PY" bench/gpu_busy.py --interval-ms 1000 -- "${command[@]}")
    fi
    echo "== $step (limit ${limit} s): ${command[*]}"
    step_start=$SECONDS
    timeout --kill-after=10 "$limit" "${command[@]}" > "$log" 2>&1
    status=$?
    echo "   exit $status after $((SECONDS - step_start)) s"
    # A step cut off at its limit can leave its private Ray running; on the lent machine every Ray is this script's.
    if (( status == 124 || status == 137 )) && [ "$device" = cuda ]; then "$PY" -m ray.scripts.scripts stop --force > /dev/null 2>&1; fi
    tail -n 15 "$log"
    record "$step" "$log" "$status" "$((SECONDS - step_start))"
    unset -n command
done
echo "== figures ($figures)"
cat "$figures"
