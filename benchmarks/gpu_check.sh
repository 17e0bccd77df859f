#!/usr/bin/env bash
# The GPU check a lent device runs (device tool): under 8 minutes on one GPU; writes results/benchmarks/gpu_check.json.
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)" || { echo "no CUDA device"; exit 3; }
timeout 450 python benchmarks/gpu_check.py "$@"
