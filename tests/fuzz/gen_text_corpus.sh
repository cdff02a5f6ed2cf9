#!/usr/bin/env bash
# gen_text_corpus.sh: write the seed corpora of the text fuzz targets.
#
#   bash tests/fuzz/gen_text_corpus.sh MSWC
#
# Run from the source root. corpus/msw gets every lit test and every model
# (a lit test whose RUN line names models/gpt.msw becomes that model with
# the test's RUN line on top, which fuzz_msw.c reads for -D, --train and
# --decode); tests/lit/ir's models once more with --train. corpus/ir gets
# the printed IR of each valid one after every pass of the pipeline (the
# training pipeline where the model has a loss), and the .mswir lit tests.
# Seeds are named valid_* (must be accepted) or bad_* (must be refused),
# which tests/frontend/test_fuzz_text.c checks; files the fuzzers add are
# named by their SHA-1 and kept. Deterministic: rerunning rewrites the
# same bytes.
set -eu
mswc=$1
msw=tests/fuzz/corpus/msw
ir=tests/fuzz/corpus/ir
mkdir -p "$msw" "$ir"

passes="infer_shapes prune autodiff sparse_lower dce plan_memory"

# seed NAME RUNLINE SOURCE...: the RUN line, then the sources' text
seed() {
	local out=$1 run=$2
	shift 2
	{ printf '%s\n' "$run"; cat "$@"; } >"$out"
}

# printed NAME FILE ARGS...: the IR after each pass, for a valid model
printed() {
	local name=$1 file=$2
	shift 2
	for p in $passes; do
		"$mswc" compile "$file" "$@" --stop-after=$p >"$ir/valid_${name}_$p.mswir"
	done
}

for t in tests/lit/ir/*.msw tests/lit/errors/*.msw; do
	name=$(basename "$t" .msw)
	run=$(head -n 1 "$t")
	case "$t" in tests/lit/errors/*) kind=bad ;; *) kind=valid ;; esac
	file=$t
	skip=2   # the test's own RUN line is replaced by $run
	if [[ "$run" == *models/gpt.msw* ]]; then
		file=models/gpt.msw
		skip=1
		run=${run/models\/gpt.msw /}
	fi
	seed "$msw/${kind}_$name" "$run" <(tail -n +$skip "$file")
	[ $kind = valid ] || continue
	# the RUN line's arguments, through the pipeline
	args=${run#\# RUN: compile }
	args=${args/--emit=ir/}
	# shellcheck disable=SC2086
	printed "$name" "$file" $args
	if [[ "$args" != *--decode* ]]; then
		seed "$msw/valid_${name}_train" "${run/--emit=ir/--emit=ir --train}" <(tail -n +$skip "$file")
		# shellcheck disable=SC2086
		printed "${name}_train" "$file" $args --train
	fi
done
small="-D vocab=16 -D ctx=8 -D d=8 -D heads=2 -D layers=1 -D batch=2 -D seq=4"
seed "$msw/valid_model_gpt" "# RUN: compile --emit=ir" models/gpt.msw
seed "$msw/valid_model_gpt_small_train" "# RUN: compile --emit=ir --train $small" models/gpt.msw
seed "$msw/bad_model_prelude" "# RUN: compile --emit=ir" models/prelude.msw   # no model in it
# shellcheck disable=SC2086
printed gpt_small_train models/gpt.msw --train $small
# bad: the reader itself refuses it (its message is located in the file)
for t in tests/lit/*/*.mswir; do
	kind=valid
	grep -q "^$t:" "${t%.*}.expected" && kind=bad
	cp "$t" "$ir/${kind}_lit_$(basename "$t")"
done
