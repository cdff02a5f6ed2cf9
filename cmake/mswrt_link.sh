#!/bin/sh
# mswrt_link.sh OUT.a LD OBJCOPY AR NM OBJECT...: the static libmswrt.
# One relocatable object of the runtime: only what the msw_ functions reach
# (ld -r --gc-sections, rooted at them), and only the msw_ symbols global.
set -eu
out=$1 ld=$2 objcopy=$3 ar=$4 nm=$5
shift 5
roots=$("$nm" -g --defined-only "$@" | awk '$3 ~ /^msw_/ { printf " -u %s", $3 }')
[ -n "$roots" ] || { echo "mswrt_link.sh: no msw_ symbol in the objects" >&2; exit 1; }
tmp=$(dirname "$out")/mswrt.o
"$ld" -r --gc-sections $roots -o "$tmp" "$@"
"$objcopy" -w --keep-global-symbol='msw_*' "$tmp"
rm -f "$out"
"$ar" rcs "$out" "$tmp"
rm -f "$tmp"
