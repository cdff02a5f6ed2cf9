#!/usr/bin/env bash
# experiment_sparse.sh [OUT_DIR]: MediSwift's claim at small scale
# (docs/experiments.md). Pre-trains models/gpt.msw dense, 50% sparse and
# 75% sparse for the same number of steps on the same text, then fine-tunes
# the 75% model dense for a short run, and prints a markdown table:
# held-out loss (every validation batch), training FLOPs, wall-clock.
#
# EXPERIMENT_STEPS (default 1000) pre-training steps, EXPERIMENT_FT_STEPS
# (default 200) fine-tuning steps, EXPERIMENT_THREADS (default: all cores).
# A run whose checkpoint and time are already in OUT_DIR is not repeated
# (delete the folder to start over). Needs a built mswc (cmake --build build).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
out=${1:-runs/experiment}
steps=${EXPERIMENT_STEPS:-1000}
ft_steps=${EXPERIMENT_FT_STEPS:-200}
threads=${EXPERIMENT_THREADS:-$(nproc)}
mswc=build/mswc
batch=16 seq=128 d=256 layers=4 vocab=256
mkdir -p "$out"
bash scripts/corpus.sh "$out/corpus.txt"

# Training FLOPs per token: 6 per multiply-add weight of a matmul (forward 2,
# backward 4), counting only kept weights of the sparse ones, plus the
# attention products (q k^T and p v: 2 * seq * d multiply-adds per layer
# and token, over the full square as mswc computes them) and the tied LM
# head (d * vocab). Embedding lookups, norms and elementwise work are left
# out (under 1%).
flops() {   # sparsity -> FLOPs per token
	awk -v s="$1" -v d=$d -v L=$layers -v T=$seq -v V=$vocab 'BEGIN {
		w = L * 12 * d * d * (1 - s)
		printf "%.4g", 6 * (w + d * V) + 6 * L * 2 * T * d }'
}

train() {   # name, extra flags...
	local name=$1
	shift
	if [ -f "$out/$name/last.safetensors" ] && [ -f "$out/$name.seconds" ]; then return; fi
	rm -rf "$out/$name"
	local t0=$SECONDS
	$mswc train models/gpt.msw --data "$out/corpus.txt" --batch $batch --seq $seq \
		--lr 1e-3 --warmup 100 --eval-every 0 --threads "$threads" --out "$out/$name" "$@" \
		> "$out/$name.log" 2>&1
	echo $((SECONDS - t0)) > "$out/$name.seconds"
}

heldout() {   # name -> mean loss over every held-out batch (the 5% tail train holds out)
	$mswc eval models/gpt.msw --weights "$out/$1/last.safetensors" --data "$out/corpus.txt" \
		--batch $batch --seq $seq --threads "$threads" 2>&1 |
		sed -n 's/.*loss \([0-9.]*\).*/\1/p' | tail -1
}

for s in 0 0.5 0.75; do
	name=sparse$s
	if [ $s = 0 ]; then train $name --steps "$steps"; else train $name --steps "$steps" --sparsity $s; fi
	echo "pre-trained $name in $(cat "$out/$name.seconds") s"
done
train finetune --steps "$ft_steps" --dense --weights "$out/sparse0.75/last.safetensors" --warmup 20 --lr 3e-4
train dense_more --steps "$ft_steps" --weights "$out/sparse0/last.safetensors" --warmup 20 --lr 3e-4

tokens=$((steps * batch * seq))
ft_tokens=$((ft_steps * batch * seq))
{
	echo "| run | steps | held-out loss (nats/byte) | training FLOPs | wall-clock (s) |"
	echo "|---|---:|---:|---:|---:|"
	for s in 0 0.5 0.75; do
		f=$(awk -v a="$(flops $s)" -v t=$tokens 'BEGIN { printf "%.3g", a * t }')
		label=$([ $s = 0 ] && echo dense || echo "$(awk -v s=$s 'BEGIN{print s*100}')% sparse")
		echo "| $label | $steps | $(heldout sparse$s) | $f | $(cat "$out/sparse$s.seconds") |"
	done
	f=$(awk -v a="$(flops 0)" -v t=$ft_tokens 'BEGIN { printf "%.3g", a * t }')
	echo "| 75% sparse + dense fine-tune | $steps + $ft_steps | $(heldout finetune) | +$f | +$(cat "$out/finetune.seconds") |"
	echo "| dense + the same fine-tune | $steps + $ft_steps | $(heldout dense_more) | +$f | +$(cat "$out/dense_more.seconds") |"
} | tee "$out/table.md"
