#!/usr/bin/env bash
# run_lit.sh: golden tests for the mswc command line, in the manner of
# LLVM's lit.
#
#   bash tests/lit/run_lit.sh MSWC [--update] [FILTER]
#
# Run from the source root (ctest does). Every tests/lit/**/*.msw starts
# with a line
#   # RUN: compile --emit=ir -D d=8
# giving the arguments after `mswc`; a test in printed IR, *.mswir, starts
# with "; RUN: ..." instead (';' begins an IR comment), so a golden test
# can start at any pass. The test file's path replaces %s; a
# RUN line with neither %s nor another .msw file gets the test file inserted
# after the subcommand. stdout and stderr together must equal the .expected
# file beside the test. Tests under errors/ must exit with status 1 (a user
# error); all others with 0. --update rewrites the .expected files from the
# current output: read every one you regenerate, it is the specification.
# The last line is "N passed, N failed"; the status is 1 if any failed.
set -u

if [ $# -lt 1 ]; then
	echo "usage: run_lit.sh MSWC [--update] [FILTER]" >&2
	exit 2
fi
mswc=$1
shift
update=0
if [ "${1:-}" = "--update" ]; then
	update=1
	shift
fi
filter=${1:-}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 2
# Golden output must not depend on this machine: the sparse cost model
# reads fixed rates (docs/sparsity.md).
export MSW_RATES="$root/tests/fixtures/rates/fixed.txt"

pass=0
fail=0
while IFS= read -r t; do
	case "$t" in *"$filter"*) ;; *) continue ;; esac
	run=$(head -n 1 "$t" | sed -n 's/^[#;] RUN: *//p')
	if [ -z "$run" ]; then
		echo "FAIL $t: the first line must be '# RUN: <mswc arguments>' ('; RUN: ...' in .mswir)"
		fail=$((fail + 1))
		continue
	fi
	if [[ "$run" == *%s* ]]; then
		run=${run//%s/$t}
	elif [[ " $run " != *".msw "* ]]; then
		sub=${run%% *}
		rest=${run#"$sub"}
		run="$sub $t$rest"
	fi
	want_rc=0
	case "$t" in tests/lit/errors/*) want_rc=1 ;; esac
	# shellcheck disable=SC2086  # the RUN line is split into words on purpose
	out=$("$mswc" $run 2>&1)
	rc=$?
	expected=${t%.*}.expected
	if [ "$update" = 1 ]; then
		printf '%s\n' "$out" >"$expected"
	fi
	if [ "$rc" != "$want_rc" ]; then
		echo "FAIL $t: exit status $rc, expected $want_rc"
		printf '%s\n' "$out" | head -n 20
		fail=$((fail + 1))
	elif [ ! -f "$expected" ]; then
		echo "FAIL $t: no $expected (run with --update, then read it)"
		fail=$((fail + 1))
	elif ! diff -u "$expected" <(printf '%s\n' "$out") >/tmp/run_lit.$$.diff; then
		echo "FAIL $t: output differs from $expected"
		cat /tmp/run_lit.$$.diff
		fail=$((fail + 1))
	else
		pass=$((pass + 1))
	fi
done < <(find tests/lit -name '*.msw' -o -name '*.mswir' | LC_ALL=C sort)
rm -f /tmp/run_lit.$$.diff
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
