#!/usr/bin/env bash
# bench_train.sh [MSWC]: training-step time and generation speed, mswc vs
# PyTorch, measured in one run on this machine.
#
# For models/gpt.msw at d=256/4 layers and d=512/8 layers, batch 8 x seq 128,
# one and two threads: the mean time of a training step (forward, backward,
# clipping, AdamW; steps 6..15 of a run, after warm-up) and tokens/s of
# greedy generation with a KV cache (128 tokens). The PyTorch peer is
# tools/bench_torch.py (Debian's python3-torch, same model as an nn.Module).
# Long-running: a benchmark, not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
mswc=${1:-build/mswc}
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bash scripts/corpus.sh "$tmp/corpus.txt" > /dev/null

# mean ms per step over steps 6..15 from metrics.csv (tokens_per_s column)
step_ms() {
	awk -F, -v bt="$1" 'NR > 6 && NR <= 16 { s += bt / $5; n++ } END { printf "%.1f", 1000 * s / n }' "$2"
}

printf '%-12s %7s | %12s %12s %6s | %12s %12s %6s\n' model threads \
	"mswc step" "torch step" ratio "mswc gen" "torch gen" ratio
for size in "256 4" "512 8"; do
	set -- $size
	d=$1 layers=$2
	defs=(-D d="$d" -D layers="$layers" -D heads=$((d / 64)))
	for threads in 1 2; do
		run="$tmp/run-$d-$threads"
		"$mswc" train models/gpt.msw "${defs[@]}" --data "$tmp/corpus.txt" --steps 15 --batch 8 \
			--seq 128 --threads "$threads" --eval-every 0 --save-every 0 --out "$run" > /dev/null 2>&1
		ms=$(step_ms $((8 * 128)) "$run/metrics.csv")
		gen=$("$mswc" generate models/gpt.msw "${defs[@]}" --weights "$run/last.safetensors" \
			--prompt "The" -n 128 --greedy --threads "$threads" 2>&1 >/dev/null |
			sed -n 's/.* tokens, \([0-9.]*\) tokens\/s.*/\1/p')
		torch=$(cd tools && OPENBLAS_NUM_THREADS=1 $py bench_torch.py --d "$d" --layers "$layers" \
			--heads $((d / 64)) --threads "$threads" --batch 8 --seq 128 --repeat 10)
		tms=$(sed -n 's/.*train_step_ms=\([0-9.]*\).*/\1/p' <<<"$torch")
		tgen=$(sed -n 's/.*gen_tokens_per_s=\([0-9.]*\).*/\1/p' <<<"$torch")
		printf '%-12s %7s | %9s ms %9s ms %6.2f | %8s t/s %8s t/s %6.2f\n' \
			"d=$d/L=$layers" "$threads" "$ms" "$tms" "$(awk -v a="$tms" -v b="$ms" 'BEGIN { print a / b }')" \
			"$gen" "$tgen" "$(awk -v a="$gen" -v b="$tgen" 'BEGIN { print a / b }')"
	done
done
echo "ratio > 1: mswc faster (step: torch/mswc time; gen: mswc/torch tokens/s)"
