#!/usr/bin/env bash
# run_generate_cli.sh MSWC: `mswc generate` end to end on a tiny GPT made by
# `mswc init`: the prompt and exactly -n new bytes on stdout and the speed
# on stderr; one seed, one text; greedy is deterministic; -n beyond the
# window slides (docs/generation.md); prefill gives the same bytes as a
# token per run; bad options exit with status 1; `mswc bench decode` prints
# its tables.
set -u
mswc=$1
source "$(dirname "$0")/lib.sh"
tiny=(-D d=32 -D heads=2 -D layers=2 -D ctx=32)


"$mswc" init models/gpt.msw "${tiny[@]}" -o "$tmp/w.safetensors" --seed 3 >/dev/null 2>&1 \
	&& ok || bad "mswc init failed"
gen=("$mswc" generate models/gpt.msw "${tiny[@]}" --weights "$tmp/w.safetensors")

# stdout: the prompt, then exactly -n bytes; stderr: count and speed.
"${gen[@]}" --prompt "The patient" -n 12 --temperature 0.8 --top-k 40 --seed 7 \
	>"$tmp/a.out" 2>"$tmp/a.err"
rc=$?
[ "$rc" -eq 0 ] && ok || { bad "generate exit $rc"; cat "$tmp/a.err"; }
[ "$(wc -c <"$tmp/a.out")" -eq $((11 + 12)) ] && ok || bad "stdout has $(wc -c <"$tmp/a.out") bytes, want 23"
[ "$(head -c 11 "$tmp/a.out")" = "The patient" ] && ok || bad "stdout does not start with the prompt"
grep -qE "^12 tokens, [0-9.]+ tokens/s" "$tmp/a.err" && ok || { bad "no 'N tokens, X tokens/s' on stderr"; cat "$tmp/a.err"; }

# The same seed gives the same bytes; another seed other bytes.
"${gen[@]}" --prompt "The patient" -n 12 --temperature 0.8 --top-k 40 --seed 7 >"$tmp/b.out" 2>/dev/null
cmp -s "$tmp/a.out" "$tmp/b.out" && ok || bad "the same seed gave different text"
"${gen[@]}" --prompt "The patient" -n 12 --temperature 0.8 --top-k 40 --seed 8 >"$tmp/c.out" 2>/dev/null
cmp -s "$tmp/a.out" "$tmp/c.out" && bad "seeds 7 and 8 gave the same text" || ok
# Greedy ignores the seed; --temperature 0 is greedy too; threads do not matter.
"${gen[@]}" --prompt "abc" -n 10 --greedy --seed 1 >"$tmp/g1.out" 2>/dev/null
"${gen[@]}" --prompt "abc" -n 10 --temperature 0 --seed 2 --threads 2 >"$tmp/g2.out" 2>/dev/null
cmp -s "$tmp/g1.out" "$tmp/g2.out" && ok || bad "greedy runs differ"
expect 0 "5 tokens" "${gen[@]}" --prompt "x" -n 5 --top-p 0.9 --temperature 1.2
printf 'Patient notes:' >"$tmp/p.txt"
expect 0 "^Patient notes:" "${gen[@]}" --prompt-file "$tmp/p.txt" -n 3

# -n beyond the context of 32: the window slides to its last half (16) when
# full, so 10 + 100 bytes come out. The caches fill after 22 new tokens, so
# the slides come after new tokens 23, 40, 57, 74 and 91 (every 17: 16
# re-read plus one new); the 100th is never fed back. 5 slides.
"${gen[@]}" --prompt "0123456789" -n 100 --greedy >"$tmp/slide.out" 2>"$tmp/slide.err"
rc=$?
[ "$rc" -eq 0 ] && ok || { bad "sliding generate exit $rc"; cat "$tmp/slide.err"; }
grep -q "window 32, slid 5 times" "$tmp/slide.err" && ok || { bad "no slide count"; cat "$tmp/slide.err"; }
[ "$(wc -c <"$tmp/slide.out")" -eq 110 ] && ok || bad "sliding output has $(wc -c <"$tmp/slide.out") bytes, want 110"
# A smaller window slides sooner; a window below 2 is refused.
expect 0 "window 8, slid" "${gen[@]}" --prompt "abc" -n 20 --window 8 --greedy
expect 2 "--window expects an integer" "${gen[@]}" --prompt "x" --window 1

# Prefill (default chunks of 32, here capped at the window of 32) gives the
# bytes of feeding the prompt a token per run, with sliding too.
"${gen[@]}" --prompt "0123456789" -n 100 --greedy --prefill 0 >"$tmp/slide0.out" 2>"$tmp/slide0.err"
cmp -s "$tmp/slide.out" "$tmp/slide0.out" && ok || bad "--prefill 0 changed the greedy text"
grep -qE "10 tokens in [0-9.]+ ms; prefilled [0-9]+ tokens, prompt and window slides, in chunks of 32" "$tmp/slide.err" && ok || { bad "no prefill count"; cat "$tmp/slide.err"; }
grep -q "prefilled 0 tokens, prompt and window slides, in chunks of 1;" "$tmp/slide0.err" && ok || { bad "--prefill 0 still prefilled"; cat "$tmp/slide0.err"; }
"${gen[@]}" --prompt "The patient" -n 40 --temperature 0.8 --top-k 40 --seed 7 --prefill 4 >"$tmp/p4.out" 2>/dev/null
"${gen[@]}" --prompt "The patient" -n 40 --temperature 0.8 --top-k 40 --seed 7 --prefill 0 >"$tmp/p0.out" 2>/dev/null
cmp -s "$tmp/p4.out" "$tmp/p0.out" && ok || bad "--prefill 4 changed the sampled text"
expect 2 "--prefill expects an integer" "${gen[@]}" --prompt "x" --prefill -2

# Batches: two prompts of different lengths decode together, each printed
# after a header and equal to its text alone; --batch N samples one prompt
# N times, sequence b with seed + b.
"${gen[@]}" --prompt "The patient" --prompt "Aspirin 81 mg daily" -n 30 --temperature 0.8 --seed 7 \
	>"$tmp/b2.out" 2>"$tmp/b2.err" && ok || { bad "batch of two failed"; cat "$tmp/b2.err"; }
"${gen[@]}" --prompt "The patient" -n 30 --temperature 0.8 --seed 7 >"$tmp/s1.out" 2>/dev/null
"${gen[@]}" --prompt "Aspirin 81 mg daily" -n 30 --temperature 0.8 --seed 8 >"$tmp/s2.out" 2>/dev/null
{ printf '==> sequence 1 <==\n'; cat "$tmp/s1.out"; printf '\n\n==> sequence 2 <==\n'; cat "$tmp/s2.out"; printf '\n'; } >"$tmp/b2.want"
cmp -s "$tmp/b2.out" "$tmp/b2.want" && ok || bad "batched sequences differ from their texts alone"
grep -q "60 tokens, .*2 sequences" "$tmp/b2.err" && ok || { bad "no batch count"; cat "$tmp/b2.err"; }
printf 'The patient\n\nAspirin 81 mg daily\n' >"$tmp/prompts.txt"
"${gen[@]}" --prompts "$tmp/prompts.txt" -n 30 --temperature 0.8 --seed 7 >"$tmp/pf.out" 2>/dev/null
cmp -s "$tmp/pf.out" "$tmp/b2.want" && ok || bad "--prompts differs from two --prompt"
"${gen[@]}" --prompt "abc" --batch 3 -n 20 --seed 1 >"$tmp/b3.out" 2>/dev/null
[ "$(grep -c '^==> sequence' "$tmp/b3.out")" -eq 3 ] && ok || bad "--batch 3 did not print 3 sequences"
expect 2 "--batch 3 with 2 prompts" "${gen[@]}" --prompt "a" --prompt "b" --batch 3
expect 2 "--batch expects an integer" "${gen[@]}" --prompt "a" --batch 0
printf "\n\n" >"$tmp/empty.txt"
expect 1 "no prompt in the file" "${gen[@]}" --prompts "$tmp/empty.txt"

# Usage errors: exit status 2 and a message; bad files: 1.
expect 2 "no --weights" "$mswc" generate models/gpt.msw --prompt "x"
expect 2 "exactly one of --prompt" "${gen[@]}"
expect 2 "exactly one of --prompt" "${gen[@]}" --prompt "x" --prompt-file "$tmp/p.txt"
expect 2 "exactly one of --prompt" "${gen[@]}" --prompt-file "$tmp/p.txt" --prompts "$tmp/p.txt"
expect 2 "prompt is empty" "${gen[@]}" --prompt ""
expect 2 "-n expects an integer" "${gen[@]}" --prompt "x" -n -3
expect 2 "--temperature expects a number" "${gen[@]}" --prompt "x" --temperature hot
expect 2 "--top-p expects a number" "${gen[@]}" --prompt "x" --top-p 1.5
expect 2 "--top-p 0 keeps nothing" "${gen[@]}" --prompt "x" --top-p 0
expect 2 "--top-k expects an integer" "${gen[@]}" --prompt "x" --top-k -1
expect 2 "unknown option '--frobnicate'" "${gen[@]}" --prompt "x" --frobnicate
# A prompt longer than the window: the model reads its last half.
expect 0 "prompt: 40 tokens" "${gen[@]}" --prompt "$(printf 'a%.0s' {1..40})" -n 3
expect 1 "no-such-file" "${gen[@]}" --prompt-file "$tmp/no-such-file"
expect 1 "wte.weight|shape" "$mswc" generate models/gpt.msw -D d=64 -D heads=2 -D layers=2 -D ctx=32 \
	--weights "$tmp/w.safetensors" --prompt "x"
# --decode for compile: the IR has the caches; with --train it is refused.
expect 0 "state \"h.1.attn.cache.v\"" "$mswc" compile models/gpt.msw "${tiny[@]}" -D seq=1 --decode --emit=ir
expect 2 "--train and --decode" "$mswc" compile models/gpt.msw --decode --train

# mswc bench decode on a tiny model (a 16 MiB bandwidth buffer instead of
# 4 x L3, 4 tokens per window, compressed rows rather than unrolled sparse
# kernels, which take LLVM seconds): the CPU on the first line, every
# table's header, with a sparse checkpoint its sparse row and ratio;
# --sparsity 0.75 draws the same masks (seed 1, as `mswc init`); PyTorch is
# skipped, not fatal, when absent.
"$mswc" init models/gpt.msw -D d=64 -D layers=1 --sparsity 0.75 --sparse-format csr \
	-o "$tmp/s75.safetensors" >/dev/null 2>&1 && ok || bad "mswc init --sparsity failed"
bench=("$mswc" bench decode models/gpt.msw -D d=64 -D layers=1 --prompt 8 -n 4 --reps 1
       --buffer-mib 16 --threads 2 --sparse-format csr)
"${bench[@]}" --weights "$tmp/s75.safetensors" >"$tmp/bench.out" 2>&1 && ok ||
	{ bad "bench decode failed"; cat "$tmp/bench.out"; }
head -1 "$tmp/bench.out" | grep -qE "^mswc bench decode: models/gpt.msw -D d=64 -D layers=1 on .+, 1 and 2 threads" \
	&& ok || bad "bench decode: no CPU on the first line"
for pat in "^caches \(as the machine reports them\): L1d" "^dense: 0\.08 M weights; a token reads" \
	"^s=0\.75: .* 4 of them on sparse kernels" \
	"^read bandwidth: a sum over the buffer, GB/s" "^16 MiB \(--buffer-mib\) +[0-9.]+ +[0-9.]+$" \
	"^batch-1 decode, ms/token" "^model +threads +P=8 +P=16 +P=24 +mean +floor +/floor +/cached$" \
	"^dense +1( +[0-9.]+){7}$" "^s=0\.75 +2( +[0-9.]+){7}$" \
	"^sparse/dense decode time \(s=0\.75 over dense\): [0-9.]+ at 1 thread, [0-9.]+ at 2 threads" \
	"^prefill: one run over a 128-token prompt, tokens/s" "^batched decode, tokens/s" \
	"^dense +16 +[0-9]+ +[0-9]+$" "^s=0\.75 +4 +[0-9]+ +[0-9]+$"; do
	grep -qE -- "$pat" "$tmp/bench.out" && ok || { bad "bench decode: no /$pat/"; cat "$tmp/bench.out"; }
done
expect 0 "^s=0\.75 +1 " "${bench[@]}" --sparsity 0.75
MSW_TORCH_BENCH="$tmp/no-such-script.py" expect 0 "PyTorch: skipped: .*no-such-script" "${bench[@]}" --torch
expect 2 "do not fit the context of 256" "${bench[@]}" --prompt 254
expect 2 "unknown option '--frobnicate'" "${bench[@]}" --frobnicate

finish
