#!/usr/bin/env bash
# bench_sparse.sh [MSWC]: what weight sparsity buys, measured in one run on
# this machine (docs/performance.md, "Sparse training and inference").
#
# For models/gpt.msw at d=256/4 layers and d=512/8 layers, batch 8 x seq 128,
# one and two threads: `mswc bench sparse` (per-layer products at sparsity
# 0, 0.5, 0.75, 0.9 against mswc's dense matmul and OpenBLAS sgemm, then the
# whole training step and inference forward against the dense model), and
# PyTorch's dense training step and forward on the same model
# (tools/bench_torch.py, Debian's python3-torch). BENCH_LAYERS=0 skips the
# per-layer tables. Long-running: a benchmark, not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
mswc=${1:-build/mswc}
py=/usr/bin/python3
for size in "256 4" "512 8"; do
	set -- $size
	d=$1 layers=$2
	for threads in 1 2; do
		echo "== d=$d layers=$layers threads=$threads"
		layer_opt=()
		if [ "${BENCH_LAYERS:-1}" = 0 ] || [ "$d" != 256 ]; then layer_opt=(--no-layers); fi
		"$mswc" bench sparse models/gpt.msw -D d="$d" -D layers="$layers" -D heads=$((d / 64)) \
			--threads "$threads" --sparsity 0,0.5,0.75,0.9 "${layer_opt[@]}"
		if [ -x "$py" ] && "$py" -c 'import torch' 2>/dev/null; then
			(cd tools && OPENBLAS_NUM_THREADS=1 $py bench_torch.py --d "$d" --layers "$layers" \
				--heads $((d / 64)) --threads "$threads" --batch 8 --seq 128 --repeat 5)
		else
			echo "(PyTorch not installed: no peer numbers)"
		fi
	done
done
