#!/usr/bin/env bash
# run_train_cli.sh MSWC: `mswc train` and `mswc eval` end to end on a tiny GPT
# (d 32, 2 layers, 20 steps of 2 x 16 tokens).
#   - a run writes metrics.csv (a row per step) and last.safetensors, which
#     `mswc run --weights` and `mswc eval` read;
#   - resuming from the step-10 checkpoint gives a last.safetensors
#     byte-identical to the uninterrupted run's, and the same losses;
#   - a run killed with SIGKILL and resumed ends byte-identical too;
#   - Ctrl-C (SIGINT) stops after the step with a checkpoint, exit 130;
#   - a diverging run stops at the first NaN, naming the kernel, exit 1;
#   - bad options give a message and exit status 2 (a usage error).
set -u
mswc=$1
source "$(dirname "$0")/lib.sh"
cfg=(--data "$text" --batch 2 --seq 16 --steps 20 --lr 3e-3 --warmup 5 --eval-every 10
	--eval-batches 2 --threads 2)


same_file() {   # same_file A B WHAT
	if cmp -s "$1" "$2"; then ok; else bad "$3: $1 and $2 differ"; fi
}

# step,loss of the rows with step > $2 (timing columns differ between runs)
losses() { awk -F, -v from="$2" 'NR > 1 && $1 > from { print $1 "," $2 }' "$1/metrics.csv"; }

# --- bad usage: exit 2 and a message, before anything is compiled or written ---
expect 2 "no --data" "$mswc" train $model
expect 2 "--schedule expects cosine or constant" "$mswc" train $model --data $text --schedule linear
expect 2 "--order expects random or sequential" "$mswc" train $model --data $text --order shuffled
expect 2 "--lr expects a number" "$mswc" train $model --data $text --lr fast
expect 2 "--batch expects an integer" "$mswc" train $model --data $text --batch 0
expect 2 "--clip expects a number" "$mswc" train $model --data $text --clip -1
expect 2 "unknown option '--bogus'" "$mswc" train $model --data $text --bogus
expect 1 "no checkpoint to resume" "$mswc" train $model --data $text --resume "$tmp/none"
expect 1 "cannot open|no-such" "$mswc" train $model "${small[@]}" --data "$tmp/no-such.txt" \
	--batch 2 --seq 16 --out "$tmp/x"
expect 1 "--freeze 'nothing\.\*' matches no parameter" "$mswc" train $model "${small[@]}" \
	--data $text --batch 2 --seq 16 --freeze 'nothing.*' --out "$tmp/x"
expect 2 "no --weights" "$mswc" eval $model --data $text
expect 2 "no --data" "$mswc" eval $model --weights x.safetensors

# --- an uninterrupted run ---
expect 0 "^step 1/20 loss [0-9.]+ lr" "$mswc" train $model "${small[@]}" "${cfg[@]}" \
	--save-every 10 --out "$tmp/a"
[ -s "$tmp/a/last.safetensors" ] && ok || bad "no last.safetensors"
[ -d "$tmp/a/ckpt-10" ] && [ -d "$tmp/a/ckpt-20" ] && ok || bad "no ckpt-10 and ckpt-20"
if head -1 "$tmp/a/metrics.csv" | grep -q '^step,loss,' && [ "$(wc -l <"$tmp/a/metrics.csv")" -eq 21 ]; then
	ok
else
	bad "metrics.csv: want a step,loss,... header and 20 rows"; head -3 "$tmp/a/metrics.csv"
fi
first=$(awk -F, 'NR == 2 { print $2 }' "$tmp/a/metrics.csv")
last=$(awk -F, 'NR == 21 { print $2 }' "$tmp/a/metrics.csv")
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }' && ok || bad "loss did not fall: $first -> $last"
expect 1 "already holds a training run" "$mswc" train $model "${small[@]}" "${cfg[@]}" --out "$tmp/a"

# --- the weights are usable elsewhere ---
expect 0 "loss [0-9.]+ perplexity [0-9.]+" "$mswc" eval $model "${small[@]}" \
	--weights "$tmp/a/last.safetensors" --data $text --batch 2 --seq 16
expect 0 "loss [0-9.]+ perplexity .*whole data" "$mswc" eval $model "${small[@]}" \
	--weights "$tmp/a/last.safetensors" --data $text --batch 2 --seq 16 --all
expect 0 "2 x 16 byte tokens" "$mswc" encode $text --batch 2 --seq 16 -o "$tmp/t.npy" --targets "$tmp/y.npy"
expect 0 "loss = [0-9.]+" "$mswc" run $model "${small[@]}" --weights "$tmp/a/last.safetensors" \
	--input tokens="$tmp/t.npy" --input targets="$tmp/y.npy"

# --- starting from weights, frozen parameters, decay on everything ---
expect 0 "from --weights" "$mswc" train $model "${small[@]}" --data $text --batch 2 --seq 16 \
	--steps 3 --weights "$tmp/a/last.safetensors" --freeze 'h.0.*' --freeze wpe.weight \
	--decay-all --order sequential --schedule constant --out "$tmp/w"
[ -s "$tmp/w/last.safetensors" ] && ok || bad "no last.safetensors from --weights"
expect 0 "total [0-9.]+ ms/run over [0-9]+ runs" "$mswc" train $model "${small[@]}" --data $text \
	--batch 2 --seq 16 --steps 2 --profile --out "$tmp/p"

# --- resume from the step-10 checkpoint: the same bytes at step 20 ---
mkdir -p "$tmp/c"
cp -r "$tmp/a/ckpt-10" "$tmp/c/"
expect 0 "batch 2 x seq 16, resumed" "$mswc" train $model "${small[@]}" --data $text --threads 1 \
	--resume "$tmp/c"
same_file "$tmp/a/last.safetensors" "$tmp/c/last.safetensors" "resumed at step 10"
same_file "$tmp/a/ckpt-20/optim.safetensors" "$tmp/c/ckpt-20/optim.safetensors" "moments after resume"
[ "$(losses "$tmp/a" 10)" = "$(losses "$tmp/c" 10)" ] && ok || bad "losses of steps 11-20 differ after resume"
expect 0 "already at step 20" "$mswc" train $model "${small[@]}" --data $text --resume "$tmp/c"

# --- SIGKILL in the middle of a run, then resume ---
# 200 steps with a checkpoint every 5: long enough that the kill lands in
# the middle; compared with the same run left alone.
long=("${small[@]}" --data $text --batch 2 --seq 16 --steps 200 --lr 1e-3 --warmup 10
	--eval-every 50 --eval-batches 1 --threads 2)
expect 0 "done: step 200" "$mswc" train $model "${long[@]}" --out "$tmp/r"
"$mswc" train $model "${long[@]}" --save-every 5 --out "$tmp/k" >"$tmp/k.log" 2>&1 &
pid=$!
for _ in $(seq 1200); do
	[ -d "$tmp/k/ckpt-20" ] && break
	sleep 0.02
done
kill -KILL $pid 2>/dev/null
wait $pid 2>/dev/null
if grep -q "done:" "$tmp/k.log"; then bad "the run finished before SIGKILL"; else ok; fi
expect 0 "done: step 200" "$mswc" train $model "${small[@]}" --data $text --resume "$tmp/k"
same_file "$tmp/r/last.safetensors" "$tmp/k/last.safetensors" "killed and resumed"
[ "$(losses "$tmp/r" 0)" = "$(losses "$tmp/k" 0)" ] && ok || bad "metrics.csv losses differ after kill + resume"

# --- a run that blows up: stop at the first non-finite value, naming the kernel ---
expect 1 "the first non-finite value is the output of kernel k[0-9]+_[a-z_]+" "$mswc" train $model \
	"${small[@]}" --data $text --batch 2 --seq 16 --steps 50 --lr 1000 --warmup 0 --clip 0 \
	--eval-every 0 --save-every 1 --out "$tmp/nan"
if [ -f "$tmp/nan/LATEST" ]; then
	s=$(sed 's/ckpt-//' "$tmp/nan/LATEST")
	rows=$(($(wc -l <"$tmp/nan/metrics.csv") - 1))
	[ "$rows" -eq "$s" ] && ok || bad "after a non-finite step: checkpoint $s, $rows metrics rows"
else
	bad "no checkpoint before the non-finite step"
fi

# --- Ctrl-C: finish the step, checkpoint, exit 130 ---
"$mswc" train $model "${small[@]}" "${cfg[@]}" --steps 100000 --eval-every 0 --out "$tmp/i" \
	>"$tmp/i.log" 2>&1 &
pid=$!
for _ in $(seq 600); do
	[ -f "$tmp/i/metrics.csv" ] && [ "$(wc -l <"$tmp/i/metrics.csv")" -ge 4 ] && break
	sleep 0.05
done
kill -INT $pid
wait $pid
rc=$?
if [ $rc -eq 130 ] && grep -q "interrupted: checkpoint of step" "$tmp/i.log" && [ -f "$tmp/i/LATEST" ]; then
	ok
else
	bad "SIGINT: exit $rc"; tail -5 "$tmp/i.log"
fi

finish
