#!/usr/bin/env bash
# run_sparse_cli.sh MSWC: static sparsity from the command line on a tiny
# GPT (d 32, 2 layers: per layer c_attn [32,96], attn.c_proj [32,32], c_fc
# [32,128], mlp.c_proj [128,32]; docs/sparsity.md).
#   - init --sparsity 0.75: exactly 75% zeros per covered param (the
#     report), masks saved as "<name>.mask" beside the weights, the same
#     file for the same seed and another for another seed; erk reported;
#   - compile --emit=ir prints the mask lines;
#   - train --sparsity: the trained weights are still exactly 75% zero,
#     checkpoints and last.safetensors hold the masks, resume keeps them;
#   - masks in --weights win over --sparsity; --dense drops them (no masks
#     in what it saves);
#   - prune --method magnitude --sparsity 0.9: round(0.9 numel) zeros per
#     param, and training from the pruned file keeps them;
#   - the sparse kernels: --dump-after=sparse_lower shows spmm / sddmm for
#     every product with --sparse-format csr and none with masked; training
#     through them keeps exactly 75% zeros; the kernel cache hits on the
#     second compile; `mswc bench sparse` runs;
#   - dynamic sparsity: --dynamic rigl|set moves weights at every
#     --update-every step before the update end and keeps exactly 75% zeros;
#     --dynamic gradual starts dense and ends at exactly the target;
#   - bad options: exit 1 with a message.
set -u
mswc=$1
source "$(dirname "$0")/lib.sh"
cfg=(--data "$text" --batch 2 --seq 16 --lr 3e-3 --warmup 2 --eval-every 0 --threads 2)


# count PATTERN N WHAT: lines of the last output matching PATTERN.
count() {
	local n
	n=$(grep -cE -- "$1" <<<"$last_out")
	if [ "$n" -eq "$2" ]; then ok; else bad "$3: $n lines match /$1/, want $2"; echo "$last_out" | tail -20; fi
}

# masks_in FILE N: the safetensors header names N mask tensors.
masks_in() {
	local n
	n=$(head -c 100000 "$1" | grep -aoE '"h\.[0-9]+\.(attn|mlp)\.c_[a-z]+\.weight\.mask"' | sort -u | wc -l)
	if [ "$n" -eq "$2" ]; then ok; else bad "$1 holds $n masks, want $2"; fi
}

# --- bad usage ---
expect 2 "--sparsity expects a fraction" "$mswc" init $model --sparsity 1.5 -o "$tmp/x.safetensors"
expect 2 "--distribution expects uniform or erk" "$mswc" init $model --sparsity 0.5 \
	--distribution gaussian -o "$tmp/x.safetensors"
expect 2 "--dense drops the masks" "$mswc" init $model --sparsity 0.5 --dense -o "$tmp/x.safetensors"
expect 2 "no weights given" "$mswc" prune $model --sparsity 0.5 -o "$tmp/x.safetensors"
expect 2 "--method expects magnitude or random" "$mswc" prune $model --method biggest \
	--weights w -o "$tmp/x.safetensors"

# --- init ---
expect 0 "total: .* sparsity 75\.00%" "$mswc" init $model "${small[@]}" --sparsity 0.75 \
	-o "$tmp/w1.safetensors" --seed 1
count "sparsity 75\.00% \(target 75\.00%, uniform\)" 8 "init: exact 75% per param"
count "h\.0\.attn\.c_attn\.weight +\[32,96\] +kept 768/3072" 1 "init: c_attn count"
count "h\.1\.mlp\.c_fc\.weight +\[32,128\] +kept 1024/4096" 1 "init: c_fc count"
masks_in "$tmp/w1.safetensors" 8
expect 0 "wrote" "$mswc" init $model "${small[@]}" --sparsity 0.75 -o "$tmp/w1b.safetensors" --seed 1
cmp -s "$tmp/w1.safetensors" "$tmp/w1b.safetensors" && ok || bad "init: same seed, different files"
expect 0 "wrote" "$mswc" init $model "${small[@]}" --sparsity 0.75 -o "$tmp/w2.safetensors" --seed 2
cmp -s "$tmp/w1.safetensors" "$tmp/w2.safetensors" && bad "init: seeds 1 and 2 give one file" || ok
expect 0 "erk" "$mswc" init $model "${small[@]}" --sparsity 0.75 --distribution erk \
	-o "$tmp/we.safetensors"
count "h\.0\.attn\.c_proj\.weight +\[32,32\] +kept 384/1024 .*erk" 1 "init: erk density of c_proj"
expect 0 "wrote" "$mswc" init $model "${small[@]}" -o "$tmp/dense.safetensors" --seed 3
masks_in "$tmp/dense.safetensors" 0

# --- the IR ---
expect 0 'mask "h\.0\.attn\.c_attn\.weight" 0\.75 uniform kept=768 numel=3072 xxh3=[0-9a-f]{32}' \
	"$mswc" compile $model "${small[@]}" --sparsity 0.75 --emit=ir
expect 0 '= mask "h\.1\.mlp\.c_proj\.weight" : f32\[128,32\]' \
	"$mswc" compile $model "${small[@]}" --sparsity 0.75 --emit=ir

# --- training ---
expect 0 "done: step 5" "$mswc" train $model "${small[@]}" "${cfg[@]}" --steps 5 \
	--sparsity 0.75 --seed 1 --out "$tmp/s"
count "zeros 2304/3072 \(75\.00%\)" 2 "train: c_attn exactly 75% zero after training"
count "zeros [0-9]+/[0-9]+ \(75\.00%\)" 8 "train: every covered param exactly 75% zero"
masks_in "$tmp/s/last.safetensors" 8
masks_in "$tmp/s/ckpt-5/model.safetensors" 8
expect 0 "done: step 8" "$mswc" train $model "${small[@]}" "${cfg[@]}" --steps 8 --resume "$tmp/s"
count "zeros [0-9]+/[0-9]+ \(75\.00%\)" 8 "resume: still exactly 75% zero"
# masks in the starting weights win over --sparsity
expect 0 "done: step 3" "$mswc" train $model "${small[@]}" "${cfg[@]}" --steps 3 \
	--weights "$tmp/w1.safetensors" --sparsity 0.5 --out "$tmp/fromw"
count "sparsity 75\.00% \(target 75\.00%" 8 "--weights masks win over --sparsity 0.5"
# eval (like run and generate) compiles the masks of --weights too, whatever
# --sparsity says (it used to refuse them as "not the ones compiled with")
expect 0 "loss [0-9.]+ perplexity" "$mswc" eval $model "${small[@]}" \
	--sparsity 0.5 --weights "$tmp/w1.safetensors" --data "$text" --batch 2 --seq 16
# dense fine-tuning from the sparse checkpoint
expect 0 "done: step 3" "$mswc" train $model "${small[@]}" "${cfg[@]}" --steps 3 --dense \
	--weights "$tmp/s/last.safetensors" --out "$tmp/dn"
count "zeros in the trained sparse weights" 0 "--dense: no sparse weights"
masks_in "$tmp/dn/last.safetensors" 0

# --- one-shot magnitude pruning ---
expect 0 "pruned by magnitude" "$mswc" prune $model "${small[@]}" --weights "$tmp/dense.safetensors" \
	--sparsity 0.9 --method magnitude -o "$tmp/p.safetensors"
count "attn\.c_attn\.weight +\[32,96\] +kept 307/3072" 2 "prune: round(0.9 * 3072) zeros"
count "attn\.c_proj\.weight +\[32,32\] +kept 102/1024" 2 "prune: round(0.9 * 1024) zeros"
count "mlp\.c_(fc|proj)\.weight +\[[0-9,]+\] +kept 410/4096" 4 "prune: round(0.9 * 4096) zeros"
masks_in "$tmp/p.safetensors" 8
expect 0 "done: step 2" "$mswc" train $model "${small[@]}" "${cfg[@]}" --steps 2 \
	--weights "$tmp/p.safetensors" --out "$tmp/pt"
count "zeros 2765/3072" 2 "training from the pruned file keeps its zeros"
expect 2 "nothing to prune" "$mswc" prune $model "${small[@]}" --weights "$tmp/dense.safetensors" \
	-o "$tmp/q.safetensors"
# the pruned file is an ordinary checkpoint for a dense program too
expect 0 "loss [0-9.]+ perplexity" "$mswc" eval $model "${small[@]}" --weights "$tmp/p.safetensors" \
	--data "$text" --batch 2 --seq 16

# --- the sparse kernels ---
expect 2 "--sparse-format expects auto, masked, csr or unrolled" "$mswc" compile $model \
	--sparse-format dense
expect 0 "spmm" "$mswc" compile $model "${small[@]}" --sparsity 0.75 --train --sparse-format csr \
	--dump-after=sparse_lower --stop-after=sparse_lower
count "= spmm %[0-9]+, %[0-9]+ :" 8 "a forward spmm per sparse weight"
count "= spmm %[0-9]+, %[0-9]+ transb :" 8 "an input-gradient spmm per sparse weight"
count "= sddmm " 8 "a weight-gradient sddmm per sparse weight"
expect 0 "IR after sparse_lower" "$mswc" compile $model "${small[@]}" --sparsity 0.75 --train \
	--sparse-format masked --dump-after=sparse_lower --stop-after=sparse_lower
count "spmm|sddmm" 0 "masked: no sparse kernels"
# the cost model shows its rates (here the suite's fixed ones) and every decision
expect 0 "; sparse rates on fixed rates for the test suite" "$mswc" compile $model "${small[@]}" \
	--sparsity 0.75 --train --dump-after=sparse_lower --stop-after=sparse_lower
count "^; h\.[01]\.(attn|mlp)\.c_[a-z]+\.weight \[[0-9]+,[0-9]+\] kept [0-9]+ \(75\.0% sparse\) M 32 (forward|input-grad|weight-grad) +masked [0-9.]+ ms csr [0-9.]+ ms .* -> (masked|csr|unrolled)$" 24 \
	"a decision per weight and product, with its predicted times"
printf 'mswc host rates 1\nkey 00\n' >"$tmp/bad-rates.txt"
MSW_RATES="$tmp/bad-rates.txt" expect 1 "MSW_RATES: .* is not a host rates file" "$mswc" compile $model \
	"${small[@]}" --sparsity 0.75
expect 0 "done: step 3" "$mswc" train $model "${small[@]}" "${cfg[@]}" --steps 3 --sparsity 0.75 \
	--sparse-format csr --out "$tmp/csr"
count "zeros 2304/3072" 2 "csr kernels keep exactly 75% zeros"
export MSW_CACHE_DIR="$tmp/kcache"
expect 0 "jit" "$mswc" compile $model "${small[@]}" --sparsity 0.9 --sparse-format csr
count "kernel cache hit" 0 "first compile misses the cache"
expect 0 "kernel cache hit" "$mswc" compile $model "${small[@]}" --sparsity 0.9 --sparse-format csr
export MSW_CACHE_DIR="$tmp/kernel-cache"
expect 0 "whole model" "$mswc" bench sparse $model "${small[@]}" --sparsity 0.5 --batch 2 --seq 32 \
	--reps 1 --threads 1
count "^ +32 x 96 +(forward|input-grad|weight-grad) +0\.50" 3 "bench: the three products"

# --- dynamic sparsity (updates at steps 4 and 8; the update end is 3/4 of 12) ---
expect 2 "--dynamic expects set, rigl or gradual" "$mswc" train $model "${small[@]}" "${cfg[@]}" \
	--dynamic magnitude --out "$tmp/dx"
for m in rigl set; do
	expect 0 "done: step 12" "$mswc" train $model "${small[@]}" "${cfg[@]}" --steps 12 \
		--sparsity 0.75 --dynamic $m --update-every 4 --out "$tmp/dyn-$m"
	count "step [48]: $m moved [1-9][0-9]* of 6144 kept weights" 2 "$m: two mask updates"
	count "zeros 2304/3072" 6 "$m: exactly 75% zeros after each of the three segments"
	masks_in "$tmp/dyn-$m/last.safetensors" 8
done
# gradual magnitude pruning: dense at the start, exactly 90% at the last update (step 8)
expect 0 "done: step 12" "$mswc" train $model "${small[@]}" "${cfg[@]}" --steps 12 \
	--sparsity 0.9 --dynamic gradual --update-every 4 --out "$tmp/gradual"
count "step [48]: gradual pruning to sparsity" 2 "gradual: two pruning steps"
count "c_attn\.weight +zeros 0/3072" 2 "gradual: the first segment is dense"
count "c_attn\.weight +zeros 2765/3072" 2 "gradual: round(0.9 * 3072) zeros at the end"
expect 2 "gradual prunes towards --sparsity" "$mswc" train $model "${small[@]}" "${cfg[@]}" \
	--steps 4 --dynamic gradual --out "$tmp/gradual2"

finish
