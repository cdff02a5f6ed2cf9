#!/usr/bin/env bash
# run_embed_cli.sh MSWC: embedding a model in an app (docs/embedding.md),
# from the installed tree, as a user would:
#   - cmake --install of the build (bin/mswc, include/msw.h, lib/libmswrt.a,
#     lib/pkgconfig/mswrt.pc); libmswrt holds no LLVM symbol, exports only
#     msw_ symbols, and calls no exit/abort/printf;
#   - the installed mswc compiles a tiny GPT with --aot (weights embedded),
#     examples/score.c builds with plain cc and pkg-config and links no LLVM;
#     its logits and loss equal `mswc run`'s on the same weights and tokens
#     bit for bit, dense and 75% sparse, with 1 and 2 threads;
#   - the generated header and msw.h compile as C (-std=c11 -Wall -Wextra
#     -Werror) and as C++; tests/e2e/embed_api.c drives the API into its
#     errors (bad shapes, null pointers, another model's weights, a
#     truncated file);
#   - a generation object (--generate: decode and prefill programs) and
#     examples/generate.c give mswc generate's text byte for byte, greedy
#     and sampled, dense and sparse, with sliding windows;
#   - --target-cpu x86-64-v3 and x86-64-v4 objects run here; bad options
#     are usage errors.
set -u
mswc=$1
source "$(dirname "$0")/lib.sh"
build=$(dirname "$mswc")
prefix=$tmp/prefix
tiny=(-D d=32 -D heads=2 -D layers=1 -D ctx=32)

cmake --install "$build" --prefix "$prefix" >/dev/null 2>"$tmp/install.err" && ok || { bad "cmake --install"; cat "$tmp/install.err"; }
for f in bin/mswc include/msw.h lib/libmswrt.a lib/pkgconfig/mswrt.pc share/mswc/examples/score.c share/mswc/models/gpt.msw; do
	[ -e "$prefix/$f" ] && ok || bad "not installed: $f"
done
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
pkg-config --exists mswrt && ok || bad "pkg-config does not find mswrt"
cflags=$(pkg-config --cflags mswrt)
libs=$(pkg-config --libs mswrt)
imswc=$prefix/bin/mswc
lib=$prefix/lib/libmswrt.a

# The runtime library: no LLVM, only msw_ symbols defined globally, no exits.
syms=$(nm "$lib")
grep -qi llvm <<<"$syms" && bad "libmswrt.a mentions LLVM: $(grep -i llvm <<<"$syms" | head -3)" || ok
others=$(nm -g --defined-only "$lib" | awk 'NF == 3 && $3 !~ /^msw_/')
[ -z "$others" ] && ok || bad "libmswrt.a exports more than msw_: $(head -3 <<<"$others")"
nm -g --defined-only "$lib" | grep -q " T msw_create$" && ok || bad "libmswrt.a lacks msw_create"
calls=$(nm -u "$lib" | awk '{print $2}' | grep -xE 'exit|_exit|abort|printf|puts|putchar|perror' || true)
[ -z "$calls" ] && ok || bad "libmswrt.a calls $calls"
if [ -e "$build/libmswrt.so" ]; then
	dyn=$(nm -D --defined-only "$build/libmswrt.so" | awk 'NF == 3 && $3 !~ /^msw_/ && $2 != "A"')
	[ -z "$dyn" ] && ok || bad "libmswrt.so exports more than msw_: $(head -3 <<<"$dyn")"
fi

# A tiny model, dense and 75% sparse, and a line of exactly seq + 1 = 33 bytes.
expect 0 "wrote" "$imswc" init "$prefix/share/mswc/models/gpt.msw" "${tiny[@]}" -o "$tmp/w.safetensors" --seed 5
expect 0 "wrote" "$imswc" init "$prefix/share/mswc/models/gpt.msw" "${tiny[@]}" -o "$tmp/ws.safetensors" --seed 6 --sparsity 0.75
expect 0 "wrote" "$imswc" init "$prefix/share/mswc/models/gpt.msw" "${tiny[@]}" -o "$tmp/ws7.safetensors" --seed 7 --sparsity 0.75
expect 0 "wrote" "$imswc" init "$prefix/share/mswc/models/gpt.msw" -D d=64 -D heads=2 -D layers=1 -D ctx=32 -o "$tmp/other.safetensors"
head -c 100 "$tmp/w.safetensors" > "$tmp/cut.safetensors"
printf 'The patient presented with acute!' > "$tmp/line.txt"
printf '\n' >> "$tmp/line.txt"
expect 0 "1 x 32 byte tokens" "$imswc" encode "$tmp/line.txt" --batch 1 --seq 32 -o "$tmp/t.npy" --targets "$tmp/y.npy"

# tensor FILE NAME OUT: the bytes of tensor NAME of a safetensors file.
tensor() {
	local n hdr offs
	n=$(od -An -tu8 -N8 "$1" | tr -d ' ')
	hdr=$(dd if="$1" bs=1 skip=8 count="$n" 2>/dev/null)
	offs=$(grep -o "\"$2\":{[^}]*}" <<<"$hdr" | grep -o 'data_offsets":\[[0-9]*,[0-9]*' | grep -o '[0-9]*,[0-9]*$')
	tail -c +$((8 + n + ${offs%,*} + 1)) "$1" | head -c $((${offs#*,} - ${offs%,*})) > "$3"
}

# same WEIGHTS SUFFIX SCORE-ARGS...: score's logits and loss equal mswc run's.
same() {
	local w=$1 s=$2
	shift 2
	expect 0 "loss = " "$imswc" run "$prefix/share/mswc/models/gpt.msw" "${tiny[@]}" --weights "$w" \
		--input tokens="$tmp/t.npy" --input targets="$tmp/y.npy" --out "$tmp/run$s.safetensors"
	tensor "$tmp/run$s.safetensors" logits "$tmp/run$s.logits"
	tensor "$tmp/run$s.safetensors" loss "$tmp/run$s.loss"
	expect 0 "	32	The patient" "$@" --dump "$tmp/score$s" "$tmp/line.txt"
	[ "$(wc -c < "$tmp/run$s.logits")" -eq 32768 ] && ok || bad "no logits in mswc run's output"
	cmp -s "$tmp/run$s.logits" "$tmp/score$s.logits" && ok || bad "score's logits differ from mswc run's ($s)"
	cmp -s "$tmp/run$s.loss" "$tmp/score$s.loss" && ok || bad "score's loss differs from mswc run's ($s)"
}

# Dense, weights embedded; the example built as the README says.
expect 0 "wrote .*model.o .*weights embedded.* and .*model.h" "$imswc" compile "$prefix/share/mswc/models/gpt.msw" "${tiny[@]}" \
	--aot "$tmp/out" --name model --weights "$tmp/w.safetensors" --embed-weights
cc -std=c11 -Wall -Wextra -Werror -O2 $cflags -I"$tmp/out" "$prefix/share/mswc/examples/score.c" "$tmp/out/model.o" \
	$libs -o "$tmp/score" 2>"$tmp/cc.err" && ok || { bad "score does not build"; cat "$tmp/cc.err"; }
(ldd "$tmp/score"; nm "$tmp/score") | grep -qi llvm && bad "score links LLVM" || ok
same "$tmp/w.safetensors" d "$tmp/score"
same "$tmp/w.safetensors" d2 "$tmp/score" --threads 2
expect 0 "1 lines, 32 bytes predicted" "$tmp/score" "$tmp/line.txt"

# 75% sparse, weights from the file at run time; its masks compiled in.
expect 0 "wrote .*sparse/model.o" "$imswc" compile "$prefix/share/mswc/models/gpt.msw" "${tiny[@]}" \
	--aot "$tmp/sparse" --name model --weights "$tmp/ws.safetensors"
grep -q "MODEL_EMBEDDED_WEIGHTS 0" "$tmp/sparse/model.h" && ok || bad "sparse header says weights are embedded"
grep -qE '"h.0.mlp.c_fc.weight", 2, \{32, 128\}, 4096, 10[0-9][0-9]\}' "$tmp/sparse/model.h" && ok || bad "the parameter table lacks the kept counts of a 75% sparse weight"
cc -std=c11 -O2 $cflags -I"$tmp/sparse" "$prefix/share/mswc/examples/score.c" "$tmp/sparse/model.o" $libs -o "$tmp/score_sparse" \
	&& ok || bad "sparse score does not build"
same "$tmp/ws.safetensors" s "$tmp/score_sparse" --weights "$tmp/ws.safetensors"
expect 2 "no embedded weights" "$tmp/score_sparse" "$tmp/line.txt"
expect 1 "mask .* is not the one the model was compiled with" \
	"$tmp/score_sparse" --weights "$tmp/ws7.safetensors" "$tmp/line.txt"

# The API's errors, and the headers as C and as C++.
cc -std=c11 -Wall -Wextra -Werror $cflags -I"$tmp/sparse" tests/e2e/embed_api.c "$tmp/sparse/model.o" $libs -o "$tmp/embed_api" \
	2>"$tmp/cc.err" && ok || { bad "embed_api does not build"; cat "$tmp/cc.err"; }
expect 0 " 0 failed" "$tmp/embed_api" "$tmp/ws.safetensors" "$tmp/other.safetensors" "$tmp/cut.safetensors"
if command -v c++ >/dev/null; then
	printf '#include "model.h"\nint main() { msw_Model *m = 0; int rc = model_create(0, &m); model_destroy(m);\n  return rc + (model_params()[0].rank > 0 ? 0 : 1); }\n' > "$tmp/app.cc"
	c++ -std=c++11 -Wall -Wextra -Werror $cflags -I"$tmp/out" "$tmp/app.cc" "$tmp/out/model.o" $libs -o "$tmp/app_cc" \
		2>"$tmp/cc.err" && ok || { bad "the headers do not compile as C++"; cat "$tmp/cc.err"; }
	"$tmp/app_cc" && ok || bad "the C++ app fails"
fi

# Generation: decode and prefill programs in one object; examples/generate.c
# writes mswc generate's bytes: greedy, sampled, windows that slide (100
# tokens at ctx 32), a prompt longer than the context, 2 threads, sparse.
expect 0 "decode and prefill programs, .*weights embedded" "$imswc" compile "$prefix/share/mswc/models/gpt.msw" "${tiny[@]}" \
	--aot "$tmp/gen" --name gen --generate --weights "$tmp/w.safetensors" --embed-weights
cc -std=c11 -Wall -Wextra -Werror -O2 $cflags -I"$tmp/gen" "$prefix/share/mswc/examples/generate.c" "$tmp/gen/gen.o" \
	$libs -o "$tmp/generate" 2>"$tmp/cc.err" && ok || { bad "generate does not build"; cat "$tmp/cc.err"; }
expect 0 "decode and prefill" "$imswc" compile "$prefix/share/mswc/models/gpt.msw" "${tiny[@]}" \
	--aot "$tmp/gens" --name gen --generate --weights "$tmp/ws.safetensors" --prefill 8
cc -std=c11 -O2 $cflags -I"$tmp/gens" "$prefix/share/mswc/examples/generate.c" "$tmp/gens/gen.o" $libs -o "$tmp/generate_sparse" \
	&& ok || bad "sparse generate does not build"
long="The patient presented with acute myocardial infarction and was treated at once."
gen_same() {   # WEIGHTS APP OPTIONS...
	local w=$1 app=$2
	shift 2
	"$app" "$@" > "$tmp/gen_app.txt" 2>"$tmp/gen_app.err" || { bad "$app $*: $(cat "$tmp/gen_app.err")"; return; }
	"$imswc" generate "$prefix/share/mswc/models/gpt.msw" "${tiny[@]}" --weights "$w" "$@" > "$tmp/gen_mswc.txt" 2>/dev/null
	cmp -s "$tmp/gen_app.txt" "$tmp/gen_mswc.txt" && ok || bad "generate $* differs from mswc generate's"
}
gen_same "$tmp/w.safetensors" "$tmp/generate" --prompt "The patient" --greedy -n 60
gen_same "$tmp/w.safetensors" "$tmp/generate" --prompt "The patient" --seed 3 --temperature 0.8 --top-k 20
gen_same "$tmp/w.safetensors" "$tmp/generate" --prompt "$long" --seed 4 --top-p 0.9 -n 40 --threads 2
gen_same "$tmp/ws.safetensors" "$tmp/generate_sparse" --weights "$tmp/ws.safetensors" --prompt "$long" --seed 5 -n 50
gen_same "$tmp/w.safetensors" "$tmp/generate" --prompt "The patient" --seed 6 --window 16 -n 40
expect 2 "no embedded weights" "$tmp/generate_sparse" --prompt "x"
expect 2 "--prefill goes with --generate" "$imswc" compile models/gpt.msw --aot "$tmp/x" --prefill 8

# Other targets run on this CPU (and are refused by one lacking their
# features: tests/runtime/test_program_file.c checks that on made-up masks).
for t in x86-64-v3 x86-64-v4; do
	grep -q avx512f /proc/cpuinfo || [ "$t" != x86-64-v4 ] || continue
	expect 0 "target $t" "$imswc" compile "$prefix/share/mswc/models/gpt.msw" "${tiny[@]}" --aot "$tmp/$t" --name model \
		--target-cpu "$t" --weights "$tmp/w.safetensors" --embed-weights
	cc -std=c11 -O2 $cflags -I"$tmp/$t" "$prefix/share/mswc/examples/score.c" "$tmp/$t/model.o" $libs -o "$tmp/score_$t" \
		&& ok || bad "score for $t does not build"
	expect 0 "1 lines, 32 bytes predicted, 5\.[4-7]" "$tmp/score_$t" "$tmp/line.txt"
done

# Usage errors.
expect 2 "--target-cpu expects" "$imswc" compile models/gpt.msw --aot "$tmp/x" --target-cpu pentium
expect 2 "--embed-weights needs --weights" "$imswc" compile models/gpt.msw --aot "$tmp/x" --embed-weights
expect 2 "must be a C identifier" "$imswc" compile models/gpt.msw --aot "$tmp/x" --name 3d-model
expect 2 "go with --aot" "$imswc" compile models/gpt.msw --name model
expect 2 "does not go with --emit" "$imswc" compile models/gpt.msw --aot "$tmp/x" --emit=ir
expect 1 "wte.weight" "$imswc" compile models/gpt.msw "${tiny[@]}" --aot "$tmp/x" --weights "$tmp/other.safetensors"
finish
