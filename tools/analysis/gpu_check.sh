#!/usr/bin/env bash
# Copyright (c) mmaction_tdx contributors. All rights reserved.
#
# The GPU check in one command, on a GPU machine without network:
#
#   tools/analysis/gpu_check.sh [WHEELS_DIR] [gpu_check.py options]
#
# Installs this package and its dependencies from the wheels in WHEELS_DIR
# (default: ../wheels beside the clone; nothing is downloaded: pip runs
# with --no-index), then runs tools/analysis/gpu_check.py under an 8-minute
# limit: fp16 AMP forward/backward of TDN and TDRL (and bf16 for TDN), one
# MMEngine Runner iteration with AmpOptimWrapper, a 1-process NCCL DDP step,
# ONNX export on CUDA tensors, and the CUDA benchmark (eager and compiled,
# fp16 and bf16, batch 8 and 16); the benchmark table is printed last and
# everything is written to work_dirs/gpu_check.json.
#
# Prepare WHEELS_DIR on a machine with network, same Python version and
# platform as the GPU machine (see docs/benchmark.md, "GPU check"):
#
#   pip wheel --wheel-dir ../wheels -c requirements/constraints.txt \
#       mmengine mmcv-lite mmaction2 decord onnx onnxruntime
#
# This package runs from the clone itself (PYTHONPATH), not installed.
# (torch itself: the GPU machine's CUDA build is used as installed; add a
# CUDA torch wheel to the folder if it has none.) With no WHEELS_DIR present
# the script assumes the environment is already complete.
#
# --smoke runs the CPU check at a tiny size (what `make test` runs).
set -euo pipefail

cd "$(dirname "$0")/../.."
WHEELS="../wheels"
if [[ $# -gt 0 && "$1" != -* ]]; then
    WHEELS="$1"
    shift
fi
PYTHON="${PYTHON:-python}"

if [[ -d "$WHEELS" ]]; then
    echo "gpu_check.sh: installing from $WHEELS (no index)"
    "$PYTHON" -m pip install --no-index --find-links "$WHEELS" \
        mmengine mmcv-lite mmaction2 decord onnx onnxruntime
else
    echo "gpu_check.sh: no wheel folder $WHEELS; using the environment as is"
fi

"$PYTHON" -c "import torch; print('torch', torch.__version__, 'CUDA', \
torch.version.cuda, 'devices', torch.cuda.device_count())"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# 8 minutes in all; the benchmark starts no cell after --budget seconds.
exec timeout 480 "$PYTHON" tools/analysis/gpu_check.py "$@"
