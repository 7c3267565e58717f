#!/usr/bin/env bash
# Copyright (c) mmvan contributors. All rights reserved.
# VAN on one CUDA GPU, in about 5 minutes: the GPU's name, each depth-wise
# kernel's share of the memory bandwidth (VAN-b2 stage 1 and 3), training
# steps of mmvan (Triton), mmvan (Triton, fusions off; b2 only), mmvan
# (Triton, channels-last; b2 only), mmvan (PyTorch's ops), mmpretrain and
# mmpretrain channels-last in fp32 and with --amp (bf16), for VAN-b2 at
# batch 32 and VAN-b0 at batch 64, and folded inference against
# mmpretrain at batch 32 and 1.
#
#   bash tools/analysis_tools/gpu_check.sh [PYTHON]
#
# Without a CUDA GPU the first step says so and the script exits 2. A step
# that fails on a GPU does not stop the others (device time is scarce):
# the last lines name the failed steps, and the exit status is 1.
set -uo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${1:-python}
TOOLS=tools/analysis_tools
B0=configs/van/van-b0_8xb128_in1k.py
B2=configs/van/van-b2_8xb128_in1k.py
FAILED=()

step() {  # step NAME COMMAND...: run it, time it, remember a failure
    local name=$1 start=$SECONDS status
    shift
    "$@"
    status=$?
    echo "[gpu_check] $name: exit $status after $((SECONDS - start)) s"
    if [ "$status" -ne 0 ]; then
        FAILED+=("$name (exit $status)")
    fi
    return "$status"
}

BANDWIDTH=("$PYTHON" "$TOOLS/kernel_bandwidth.py" --batch-size 32
    --dtypes fp32 bf16)
if ! "$PYTHON" -c 'import sys, torch
sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    "${BANDWIDTH[@]}"  # its one error line says why
    exit 2
fi
step "kernel bandwidth" "${BANDWIDTH[@]}"
# The table of benchmark.py --train, for the paths the targets name.
for spec in "$B2 32 mmvan-unfused mmvan-cl" "$B0 64"; do
    set -- $spec
    step "train steps $(basename "$1") batch $2" \
        "$PYTHON" "$TOOLS/train_speed.py" "$1" --device cuda --batch-size "$2" \
        --contenders mmvan "${@:3}" mmvan-torch mmpretrain mmpretrain-cl \
        --precisions fp32 amp --iters 10 --warmup 3
done
for batch in 32 1; do
    step "folded inference batch $batch" \
        "$PYTHON" "$TOOLS/benchmark.py" "$B2" --device cuda --deploy \
        --batch-size "$batch" --compare mmpretrain --repeats 20 --warmup 5
done
if [ ${#FAILED[@]} -ne 0 ]; then
    echo "[gpu_check] failed: ${FAILED[*]}" >&2
    exit 1
fi
echo "[gpu_check] all steps ran"
