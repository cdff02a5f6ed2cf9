#!/usr/bin/env bash
# run_cli.sh MSWC: the command line end to end on a small GPT.
# compile (summary, --emit, --stop-after), init, encode, run (with and
# without targets), and that bad usage gives a message and exit status 2.
set -u
mswc=$1
source "$(dirname "$0")/lib.sh"


expect 0 "usage: mswc" "$mswc" help
expect 2 "unknown command 'frobnicate'" "$mswc" frobnicate
expect 2 "no model file given" "$mswc" compile
expect 2 "unknown option '--bogus'" "$mswc" compile models/gpt.msw --bogus
expect 2 "--emit expects ir, llvm or asm" "$mswc" compile models/gpt.msw --emit=pdf
expect 2 "unknown pass 'nope'" "$mswc" compile models/gpt.msw --stop-after=nope
expect 2 "-D expects name=value" "$mswc" compile models/gpt.msw -D d
expect 1 "no-such.msw" "$mswc" compile no-such.msw

expect 0 "ops, .* parameters" "$mswc" compile models/gpt.msw "${small[@]}" -D seq=16
expect 0 "param \"h.1.mlp.c_proj.weight\"" "$mswc" compile models/gpt.msw "${small[@]}" --emit=ir
expect 0 "define .*matmul" "$mswc" compile models/gpt.msw "${small[@]}" -D seq=8 --emit=llvm
expect 0 "IR after infer_shapes" "$mswc" compile models/gpt.msw "${small[@]}" --dump-after=infer_shapes --stop-after=infer_shapes

expect 0 "wrote .*w.safetensors" "$mswc" init models/gpt.msw "${small[@]}" -o "$tmp/w.safetensors" --seed 3
expect 2 "no output file given" "$mswc" init models/gpt.msw
printf 'The patient presented with acute myocardial infarction and was treated.%.0s' {1..4} > "$tmp/text.txt"
expect 0 "2 x 16 byte tokens" "$mswc" encode "$tmp/text.txt" --batch 2 --seq 16 -o "$tmp/t.npy" --targets "$tmp/y.npy"
expect 1 "bytes are needed|are needed" "$mswc" encode "$tmp/text.txt" --batch 64 --seq 64 -o "$tmp/x.npy"

expect 0 "forward: .* ms" "$mswc" run models/gpt.msw "${small[@]}" --weights "$tmp/w.safetensors" \
	--input tokens="$tmp/t.npy" --out "$tmp/out.safetensors"
[ -s "$tmp/out.safetensors" ] && ok || bad "run wrote no output file"
# With targets the loss is computed; an untrained GPT-2 init is near chance, ln(256) = 5.545.
expect 0 "loss = 5\.[4-6]" "$mswc" run models/gpt.msw "${small[@]}" --weights "$tmp/w.safetensors" \
	--input tokens="$tmp/t.npy" --input targets="$tmp/y.npy" --threads 2
expect 2 "no --weights" "$mswc" run models/gpt.msw --input tokens="$tmp/t.npy"
expect 1 "no such input|no input of that name" "$mswc" run models/gpt.msw "${small[@]}" --weights "$tmp/w.safetensors" \
	--input tokens="$tmp/t.npy" --input nonsense="$tmp/t.npy"
# Weights of another size must be refused, naming the tensor.
expect 1 "wte.weight|shape" "$mswc" run models/gpt.msw -D d=64 -D heads=2 -D layers=2 -D ctx=32 \
	--weights "$tmp/w.safetensors" --input tokens="$tmp/t.npy"
echo "not a safetensors file" > "$tmp/junk.safetensors"
expect 1 "junk.safetensors" "$mswc" run models/gpt.msw "${small[@]}" --weights "$tmp/junk.safetensors" \
	--input tokens="$tmp/t.npy"

finish
