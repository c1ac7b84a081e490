#!/usr/bin/env bash
# The CUDA check of `specc train` (issue 15), for anyone with a GPU: about 2 minutes on one
# modern GPU, under 5 in any case. On a machine without CUDA it says so and exits 0.
#
#   bench/gpu_check.sh [DATA_DIR]          (or: make gpu-check DATA_DIR=...)
#
# 1. trains the MNIST CNN (specs/mnist_cnn.yaml, all 60,000 images) for one epoch on
#    cuda:0 in fp32, bf16 (when the GPU supports it) and fp16 (gradient scaler);
# 2. with two or more GPUs, the same epoch as 2-rank DDP over nccl (--nproc 2);
# 3. crosschecks the fp32 run (Keras, PyTorch and ONNX agree on the trained weights);
# 4. prints test accuracy, samples/s and epoch seconds of each run (from run.json).
# Outputs go to $OUT (default out/gpu_check). Exit status: 0 when every step passed (or
# there is no CUDA device), else the failing command's.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${PYTHON:-}" ]]; then PY=$PYTHON
elif [[ -x .venv/bin/python ]]; then PY=.venv/bin/python
else PY=python3; fi
OUT=${OUT:-out/gpu_check}
DATA=()
if [[ $# -ge 1 && -n "$1" ]]; then DATA=(--data-dir "$1"); fi

if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "gpu_check: no CUDA device (torch is not installed for $PY); nothing to check"
    exit 0
fi
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
if [[ "$GPUS" == "0" ]]; then
    echo "gpu_check: no CUDA device (torch $("$PY" -c 'import torch; print(torch.__version__)') sees none); nothing to check"
    exit 0
fi
BF16=$("$PY" -c "import torch; print(int(torch.cuda.is_bf16_supported()))")
echo "gpu_check: $GPUS CUDA device(s): $("$PY" -c 'import torch; print(torch.cuda.get_device_name(0))')"
rm -rf "$OUT"
mkdir -p "$OUT"

train() {  # name, extra args...
    local name=$1
    shift
    echo "gpu_check: train $name"
    "$PY" -m specc train specs/mnist_cnn.yaml --backend pytorch --epochs 1 --quiet \
        --out "$OUT/$name" "${DATA[@]}" "$@"
}

RUNS=(fp32)
train fp32 --device cuda --precision fp32
if [[ "$BF16" == "1" ]]; then
    train bf16 --device cuda --precision bf16
    RUNS+=(bf16)
fi
train fp16 --device cuda --precision fp16
RUNS+=(fp16)
if [[ "$GPUS" -ge 2 ]]; then
    train ddp2 --device cuda --nproc 2
    RUNS+=(ddp2)
else
    echo "gpu_check: one GPU: skipping 2-GPU DDP"
fi

echo "gpu_check: crosscheck the fp32 run"
"$PY" -m specc crosscheck specs/mnist_cnn.yaml --run "$OUT/fp32"

"$PY" - "$OUT" "${RUNS[@]}" <<'PYEOF'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
print(f"{'run':6} {'device':34} {'ranks':>5} {'test acc':>8} {'samples/s':>10} {'epoch s':>8}")
for name in sys.argv[2:]:
    run = json.loads((out / name / "run.json").read_text())
    metrics = json.loads((out / name / "metrics.json").read_text())
    print(
        f"{name:6} {run['device'][:34]:34} {run['world_size']:>5} "
        f"{metrics.get('accuracy', float('nan')):8.4f} {run['samples_per_second']:10.1f} "
        f"{run['train_seconds']:8.2f}"
    )
    for rank in run.get("per_rank", []):
        if run["world_size"] > 1:
            print(f"{'':6}   rank {rank['rank']}: {rank['samples_per_second']} samples/s")
    if metrics.get("accuracy", 1.0) < 0.9:
        sys.exit(f"gpu_check: {name}: test accuracy {metrics['accuracy']:.4f} < 0.9 after an epoch")
print("gpu_check: all CUDA checks passed")
PYEOF
