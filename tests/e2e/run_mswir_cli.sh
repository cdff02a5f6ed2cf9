#!/usr/bin/env bash
# run_mswir_cli.sh MSWC: `mswc compile` on printed IR (.mswir). For a small
# sparse GPT, the IR printed after each pass of the training pipeline,
# compiled again, gives exactly the IR the .msw gives (each pass leaves
# alone what was already done), and a dense one compiles to code and
# trains from its .mswir; options for the frontend, a missing file, bad IR
# and masks without their bits are user errors.
set -u
mswc=$1
source "$(dirname "$0")/lib.sh"
small=(-D vocab=256 -D ctx=8 -D d=16 -D heads=2 -D layers=1 -D batch=2 -D seq=8)

for sp in 0 0.5; do
	"$mswc" compile models/gpt.msw "${small[@]}" --sparsity $sp --train --emit=ir >"$tmp/ref.txt" 2>&1 ||
		bad "compile --emit=ir at sparsity $sp"
	for p in infer_shapes prune autodiff sparse_lower dce plan_memory; do
		f="$tmp/after_$p.mswir"
		"$mswc" compile models/gpt.msw "${small[@]}" --sparsity $sp --train --stop-after=$p \
			>"$f" 2>/dev/null || bad "stop-after=$p"
		# the pipeline's options again; the frontend's are in the IR already
		if "$mswc" compile "$f" --sparsity $sp --train --emit=ir 2>&1 | cmp -s - "$tmp/ref.txt"; then
			ok
		else
			bad "sparsity $sp: the IR printed after $p, compiled again, differs from the .msw's"
		fi
	done
done

# Dense printed IR after autodiff compiles to code (JIT) and trains.
"$mswc" compile models/gpt.msw "${small[@]}" --train --stop-after=autodiff >"$tmp/dense.mswir"
expect 0 "ops, .* parameters" "$mswc" compile "$tmp/dense.mswir" --train
printf 'The patient presented with acute myocardial infarction and was treated.%.0s' {1..8} >"$tmp/text.txt"
expect 0 "step 3" "$mswc" train "$tmp/dense.mswir" --data "$tmp/text.txt" --steps 3 --batch 2 --seq 8 \
	--out "$tmp/run"

expect 1 "-D applies to a .msw model" "$mswc" compile "$tmp/dense.mswir" -D d=8
expect 1 "--decode applies to a .msw model" "$mswc" compile "$tmp/dense.mswir" --decode
expect 1 "cannot read .*no-such.mswir" "$mswc" compile "$tmp/no-such.mswir"
printf 'model "m"\n%%0 = input "x" : f32[2,3]\n%%1 = relu %%7 : f32[2,3]\n' >"$tmp/bad.mswir"
expect 1 "bad.mswir:3:11: error: %7 is used before it is defined" "$mswc" compile "$tmp/bad.mswir"
expect 1 "the mask of '.*' is not in printed IR" "$mswc" compile "$tmp/after_autodiff.mswir" --train

finish
