#!/usr/bin/env bash
# The whole GPU check of robench in one call, within 8 minutes on one H100/H200:
#   1. the CUDA test subset (tests that take a device or a precision) with the GPU visible;
#   2. bench_train.py, bench_attack.py (precision table) and bench_matrix.py with --device cuda;
#   3. the packed-suite figure: 8 width-16 ResNet-18 trainings one at a time vs packed 2, 4 and 8 to the GPU by
#      the Ray executor (images/s of the whole study, best packing);
#   4. a reduced Table 4: benchmarks/suites/table4.toml with the fast preset, 1 epoch per model, 500 images per
#      attack, on the Ray executor with 4 trainings per GPU. It needs CIFAR-10 in DATA_DIR (or $ROBENCH_DATA or
#      ~/.cache/robench/data): an offline machine cannot download it, and the step then says so and is skipped.
#
# Usage (from anywhere; run with the robench environment active):
#   benchmarks/gpu_check.sh OUT_DIR [DATA_DIR]
# Everything goes into OUT_DIR: summary.md (one row per step: ok / failed / timed out, seconds, log), env.txt,
# one log per step, RESULTS.md (docs/benchmarks.md after the benchmarks rewrote their GPU sections) and the
# reduced Table 4's matrix. Each step has a time budget (`timeout`); a step over it is recorded as timed out, never
# estimated. Nothing here prints a figure that was not measured in this run.
set -uo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 OUT_DIR [DATA_DIR]" >&2
    exit 2
fi
mkdir -p "$1"
out=$(cd "$1" && pwd)
data=${2:-${ROBENCH_DATA:-$HOME/.cache/robench/data}}
cd "$(dirname "$0")/.." || exit 2
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
total=470   # seconds for all steps: 8 minutes less the set-up
began=$(date +%s)
summary="$out/summary.md"
printf '# robench GPU check, %s\n\n| step | status | seconds | log |\n|---|---|---|---|\n' "$(date -u +%FT%TZ)" \
    >"$summary"

# step NAME BUDGET COMMAND...: run COMMAND with at most BUDGET seconds (less if the total runs short), log to
# OUT/NAME.log, and add its row to the summary.
step() {
    local name=$1 budget=$2
    shift 2
    local left=$((total - ($(date +%s) - began)))
    if [ "$left" -lt 15 ]; then
        printf '| %s | not run: the 8-minute budget is spent | 0 | - |\n' "$name" >>"$summary"
        return
    fi
    [ "$budget" -gt "$left" ] && budget=$left
    echo "== $name (at most ${budget}s)" >&2
    local t0 rc status
    t0=$(date +%s)
    timeout --kill-after=10 "$budget" "$@" >"$out/$name.log" 2>&1
    rc=$?
    case $rc in
        0) status=ok ;;
        124 | 137) status="timed out after ${budget}s" ;;
        *) status="failed (exit $rc)" ;;
    esac
    printf '| %s | %s | %s | %s.log |\n' "$name" "$status" "$(($(date +%s) - t0))" "$name" >>"$summary"
}

{
    nvidia-smi
    python -c "import torch, ray, robench; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
torch.cuda.get_device_name()); print('ray', ray.__version__); print('robench', robench.__file__)"
    nproc
    free -g
} >"$out/env.txt" 2>&1

step tests 60 python -m pytest -q -p no:cacheprovider -k "cuda or gpu or device or precision" tests
step bench_train 75 python benchmarks/bench_train.py --device cuda --width 16 --batch 128 \
    --parts pipeline,defective,loop
step bench_attack 60 python benchmarks/bench_attack.py --device cuda --width 16 --part precision
step bench_matrix 45 python benchmarks/bench_matrix.py --device cuda --width 16 --n 2000 --batch-size 1024
step packed_suite 120 python benchmarks/bench_suite.py --device cuda --packed 2,4,8 --trainings 8 --epochs 3

if [ -d "$data/cifar-10-batches-py" ]; then
    sed -e 's/^preset = "paper"/preset = "fast"\nepochs = 1/' -e 's/^n = 5000/n = 500/' \
        benchmarks/suites/table4.toml >"$out/table4-reduced.toml"
    step table4_reduced 110 robench run "$out/table4-reduced.toml" --workspace "$out/t4" --data-dir "$data" \
        --executor ray --gpus-per-train 0.25 --gpus-per-attack 0.5 --gpus-per-matrix 0.5
    cp "$out/t4/results/table4.csv" "$out/" 2>/dev/null
else
    printf '| table4_reduced | skipped: no CIFAR-10 in %s (pass DATA_DIR; the machine cannot download it) | 0 | - |\n' \
        "$data" >>"$summary"
fi

cp docs/benchmarks.md "$out/RESULTS.md"
printf '\nTotal: %ss.\n' "$(($(date +%s) - began))" >>"$summary"
cat "$summary"
