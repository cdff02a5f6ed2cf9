#!/usr/bin/env bash
# run_task_cli.sh MSWC: `mswc eval --task` end to end on a tiny random GPT
# (d 32, 1 layer, ctx 32; `mswc init`), over small task folders written
# here in the three formats of ../shared/data (and, when that folder is
# there, over the real data with --limit).
#   - each task prints its example count, the prompt cut, the gold counts
#     and a table of its metrics with the majority and random baselines
#     beside them; the baselines are the ones worked out by hand for the
#     folders here;
#   - --predictions writes TSV (a header, a row per example) or JSON lines;
#     the same run gives the same bytes; --threads and --batch change
#     neither the predictions nor (threads) the file;
#   - broken task files are errors at file:line:col, exit 1; bad options are
#     usage errors, exit 2;
#   - `mswc train --data` on a task's file or folder warns.
set -u
mswc=$1
source "$(dirname "$0")/lib.sh"
tiny=(-D d=32 -D heads=2 -D layers=1 -D ctx=32)
w=$tmp/w.safetensors
data=$tmp/data
"$mswc" init $model "${tiny[@]}" -o "$w" --seed 1 > /dev/null || bad "mswc init failed"

# --- small task folders: 4 PubMedQA questions (2 of them the test split),
# 3 HoC abstracts, 6 medical abstracts ---
mkdir -p "$data/pubmedqa" "$data/hoc/text" "$data/hoc/labels" "$data/medical-abstracts-tc"
cat > "$data/pubmedqa/ori_pqal.json" <<'EOF'
{
 "11": {"QUESTION": "Does aspirin help?", "CONTEXTS": ["We studied aspirin.", "It helped."],
        "LONG_ANSWER": "Yes.", "final_decision": "yes"},
 "12": {"QUESTION": "Is X safe?", "CONTEXTS": ["Side effects were rare."], "final_decision": "yes"},
 "13": {"QUESTION": "Is Y useful?", "CONTEXTS": ["Results were mixed."], "final_decision": "maybe"},
 "14": {"QUESTION": "Does Z cure it?", "CONTEXTS": ["No effect was seen."], "final_decision": "no"}
}
EOF
printf '{\n  "11": "yes",\n  "13": "maybe"\n}\n' > "$data/pubmedqa/test_ground_truth.json"
printf 'Cells divide .\nThey grow .\n' > "$data/hoc/text/1.txt"
printf '<Sustaining proliferative signaling--Growth<' > "$data/hoc/labels/1.txt"
printf 'Tumours invade .\n' > "$data/hoc/text/2.txt"
printf '<Activating invasion and metastasis--Invasion AND Sustaining proliferative signaling--x' \
	> "$data/hoc/labels/2.txt"
printf 'Nothing here .\n' > "$data/hoc/text/3.txt"
printf '<NULL' > "$data/hoc/labels/3.txt"
{
	echo 'condition_label,medical_abstract'
	echo '1,"Carcinoma of the lung, a case."'
	echo '1,"A second neoplasm."'
	echo '2,"Liver ""disease"" in adults."'
	echo '4,Heart failure.'
	echo '5,"General, pathological."'
	echo '5,"Fever of unknown origin."'
} > "$data/medical-abstracts-tc/medical_tc_test.csv"
ev=("$mswc" eval $model "${tiny[@]}" --weights "$w" --task-data "$data" --threads 2)

num='[01]\.[0-9]{4}'
# --- PubMedQA: the test split is the ground truth's two PMIDs; all is 4.
# Baselines on all 4 (yes yes maybe no): majority yes, accuracy 0.5000,
# macro-F1 (2/3 + 0 + 0) / 3 = 0.2222; random 1/3 and the mean of
# 2p/(1+3p) for p = 1/2, 1/4, 1/4: (0.4 + 2/7 + 2/7) / 3 = 0.3238.
expect 0 "^pubmedqa test: 2 examples, 6 candidates \(3 per example\)" "${ev[@]}" --task pubmedqa
expect 0 "^pubmedqa all: 4 examples, 12 candidates .* in 1 runs of 16 x 32 tokens" \
	"${ev[@]}" --task pubmedqa --split all --predictions "$tmp/p.tsv"
out=$last_out
for pat in "^accuracy +$num +0\.5000 +0\.3333$" "^macro-F1 +$num +0\.2222 +0\.3238$" \
	"^gold: yes 2, no 1, maybe 1$" "^majority class: yes; random: uniform" \
	"^prompts: [0-9]+ of 4 cut from the left to their last 27 bytes" \
	"label score: the sum of its bytes' log-probabilities" "^predictions: $tmp/p.tsv$"; do
	grep -qE -- "$pat" <<<"$out" && ok || { bad "pubmedqa: no /$pat/"; echo "$out"; }
done
if [ "$(head -1 "$tmp/p.tsv")" = "$(printf 'id\tgold\tpred\tcorrect\tyes\tno\tmaybe')" ] &&
	[ "$(wc -l < "$tmp/p.tsv")" -eq 5 ] &&
	awk -F'\t' 'NR > 1 && (NF != 7 || $4 != ($2 == $3)) { exit 1 }' "$tmp/p.tsv"; then
	ok
else
	bad "p.tsv: want a header and 4 rows of 7 fields"; cat "$tmp/p.tsv"
fi
grep -qE $'^11\tyes\t(yes|no|maybe)\t[01]\t-[0-9.]+\t-[0-9.]+\t-[0-9.]+$' "$tmp/p.tsv" && ok ||
	bad "p.tsv: no row for PMID 11"
# the same run, the same bytes; other threads and batches, the same predictions
"${ev[@]}" --task pubmedqa --split all --predictions "$tmp/p2.tsv" > /dev/null
cmp -s "$tmp/p.tsv" "$tmp/p2.tsv" && ok || bad "two runs wrote different predictions"
"${ev[@]}" --task pubmedqa --split all --threads 1 --predictions "$tmp/p3.tsv" > /dev/null
cmp -s "$tmp/p.tsv" "$tmp/p3.tsv" && ok || bad "--threads 1 wrote different predictions"
"${ev[@]}" --task pubmedqa --split all --batch 5 --predictions "$tmp/p4.tsv" > /dev/null
if diff <(cut -f1-4 "$tmp/p.tsv") <(cut -f1-4 "$tmp/p4.tsv") > /dev/null; then ok; else
	bad "--batch 5 predicted differently"; fi
expect 0 "label score: the mean of" "${ev[@]}" --task pubmedqa --norm mean
expect 0 "less that after the content-free prompt" "${ev[@]}" --task hoc --split all --norm pmi
expect 0 "in 6 runs of 1 x 20 tokens" "${ev[@]}" --task pubmedqa --batch 1 --seq 20
expect 0 "^pubmedqa all: 3 examples" "${ev[@]}" --task pubmedqa --split all --limit 3

# --- HoC: gold {sustaining}, {invasion, sustaining}, {empty}: majority
# sustaining gives tp 2 fp 1 fn 2: 4/7 = 0.5714. Random: hallmarks tp 1.5,
# fn 1.5, fp 13.5; empty (q = 2^-10) tp q, fp 2q, fn 1 - q: 0.1580. All ten
# hallmarks for each: tp 3, fp 27, fn 1 (empty): 6/34 = 0.1765. ---
expect 0 "^hoc all: 3 examples, 60 candidates \(20 per example\)" \
	"${ev[@]}" --task hoc --split all --predictions "$tmp/h.jsonl"
out=$last_out
for pat in "^micro-F1 +$num +0\.5714 +0\.1580$" "^majority class: sustaining proliferative signaling" \
	"empty 1$" "activating invasion and metastasis 1," \
	"^every hallmark predicted for every abstract: micro-F1 0\.1765$"; do
	grep -qE -- "$pat" <<<"$out" && ok || { bad "hoc: no /$pat/"; echo "$out"; }
done
grep -q '^accuracy' <<<"$out" && bad "hoc printed an accuracy" || ok
if [ "$(wc -l < "$tmp/h.jsonl")" -eq 3 ] &&
	grep -qE '^\{"id": "2", "gold": \["sustaining proliferative signaling", "activating invasion and metastasis"\], "pred": \[[^]]+\], "correct": (true|false), "scores": \{"sustaining proliferative signaling": \{"yes": -[0-9.]+, "no": -[0-9.]+\}' "$tmp/h.jsonl"; then
	ok
else
	bad "h.jsonl: want 3 JSON lines with sets and per-hallmark scores"; cat "$tmp/h.jsonl"
fi
if command -v python3 > /dev/null; then
	python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$tmp/h.jsonl" &&
		ok || bad "h.jsonl is not JSON lines"
fi

# --- medical abstracts: all 6; majority (neoplasms and general tie: the
# first) accuracy 2/6 = 0.3333, macro-F1 (0.5 + 0 + 0 + 0) / 4 = 0.1250
# (cardiovascular and 3 absent; nervous absent from gold and majority).
# Random: 1/5; per class 2 n_c p / (n p + n_c) with n 6, p 1/5, n_c 2 1 0 1 2
# (the class absent from gold has fp 6/5, so it counts, with F1 0):
# (0.25 + 2/11 + 0 + 2/11 + 0.25) / 5 = 0.1727. ---
expect 0 "^medabstracts all: 6 examples, 30 candidates" "${ev[@]}" --task medabstracts --split all
out=$last_out
for pat in "^accuracy +$num +0\.3333 +0\.2000$" "^macro-F1 +$num +0\.1250 +0\.1727$" \
	"^majority class: neoplasms"; do
	grep -qE -- "$pat" <<<"$out" && ok || { bad "medabstracts: no /$pat/"; echo "$out"; }
done

# --- the real data, when it is here (a few examples of each test split) ---
real=${MSW_DATA:-../shared/data}
if [ -d "$real/pubmedqa" ] && [ -d "$real/hoc" ] && [ -d "$real/medical-abstracts-tc" ]; then
	for t in pubmedqa hoc medabstracts; do
		expect 0 "^$t test: 4 examples" "$mswc" eval $model "${tiny[@]}" --weights "$w" \
			--task $t --task-data "$real" --limit 4
	done
	expect 0 "^pubmedqa test: 500 examples" "$mswc" eval $model "${tiny[@]}" --weights "$w" \
		--task pubmedqa --task-data "$real" --batch 64 --seq 8
else
	echo "($real not found: the real task data is not checked)"
fi

# --- broken task files: exit 1, file:line:col ---
broken() {   # broken TASK FILE CONTENT PATTERN
	local b=$tmp/broken
	rm -rf "$b" && cp -r "$data" "$b" && printf '%s' "$3" > "$b/$2"
	expect 1 "$4" "$mswc" eval $model "${tiny[@]}" --weights "$w" --task-data "$b" --task "$1" \
		--split all
}
broken pubmedqa pubmedqa/ori_pqal.json $'{\n "1": {"QUESTION": "q",,}\n}' \
	"pubmedqa/ori_pqal.json:2:25: error: not valid JSON \(at byte 26\)"
broken pubmedqa pubmedqa/ori_pqal.json '{"11": {"QUESTION": "q", "CONTEXTS": "c", "final_decision": "yes"}}' \
	'ori_pqal.json:1:2: error: entry "11": CONTEXTS must be a non-empty list of strings'
broken pubmedqa pubmedqa/test_ground_truth.json $'{\n "11": "yes",\n "99": "no"\n}' \
	'test_ground_truth.json:3:2: error: PMID "99" is not in .*ori_pqal.json'
broken pubmedqa pubmedqa/test_ground_truth.json '{"11": "y"}' '"11" must be "yes", "no" or "maybe"'
broken hoc hoc/labels/1.txt '<Sustaining proliferative signaling' \
	"hoc/labels/1.txt:1:1: error: holds 1 sentence segments \('<'\) but .*hoc/text/1.txt has 2 lines"
broken hoc hoc/labels/2.txt '<Activating invasion AND Bogus--x' \
	"hoc/labels/2.txt:1:2: error: unknown hallmark 'Activating invasion'"
broken medabstracts medical-abstracts-tc/medical_tc_test.csv $'condition_label,medical_abstract\n1,"ok"\n9,"bad"\n' \
	"medical_tc_test.csv:3:1: error: condition_label must be 1 to 5, got '9'"
broken medabstracts medical-abstracts-tc/medical_tc_test.csv $'condition_label,medical_abstract\n1,"never closed\n' \
	"medical_tc_test.csv:2:3: error: quoted field is not closed"
rm -rf "$tmp/broken/hoc/labels/3.txt"
expect 1 "hoc/labels/3.txt: error: cannot read the labels of" "$mswc" eval $model "${tiny[@]}" \
	--weights "$w" --task-data "$tmp/broken" --task hoc
expect 1 "no such folder: the task data is read from DIR/pubmedqa" "$mswc" eval $model \
	"${tiny[@]}" --weights "$w" --task-data "$tmp/nowhere" --task pubmedqa
# (the hashes of PMIDs 1, 2, 3 put none of them in dev)
expect 1 "the dev split holds no example" "${ev[@]}" --task hoc --split dev
expect 1 "a row of 4 tokens cannot hold a prompt and the longest label of pubmedqa \(6 bytes\)" \
	"${ev[@]}" --task pubmedqa --seq 4
"$mswc" init $model -D d=32 -D heads=2 -D layers=1 -D ctx=32 -D vocab=64 -o "$tmp/v64.safetensors" > /dev/null
expect 1 "vocabulary has 64 tokens; task text is bytes, which needs 256" "$mswc" eval $model \
	-D d=32 -D heads=2 -D layers=1 -D ctx=32 -D vocab=64 --weights "$tmp/v64.safetensors" \
	--task-data "$data" --task pubmedqa
expect 1 "mswir: --task needs a .msw model" "$mswc" eval "$tmp/m.mswir" --weights "$w" \
	--task-data "$data" --task pubmedqa

# --- usage errors: exit 2 ---
expect 2 "--task expects pubmedqa, hoc or medabstracts, got 'pubmed'" "${ev[@]}" --task pubmed
expect 2 "--split expects train, dev, test or all, got 'val'" "${ev[@]}" --task hoc --split val
expect 2 "--norm expects sum, mean or pmi" "${ev[@]}" --task hoc --norm max
expect 2 "--limit expects an integer" "${ev[@]}" --task hoc --limit 0
expect 2 "--split goes with --task" "$mswc" eval $model --weights "$w" --data $text --split dev
expect 2 "--data is for the held-out loss; --task scores a task" "${ev[@]}" --task hoc --data $text
expect 2 "no --data given \(or --task NAME\)" "$mswc" eval $model --weights "$w"
expect 0 "--task NAME" "$mswc" eval --help

# --- pre-training on evaluation text warns ---
expect 0 "warning: --data .*pubmedqa/ori_pqal.json holds .*ori_pqal.json, evaluation data of task 'pubmedqa'" \
	"$mswc" train $model "${tiny[@]}" --data "$data/pubmedqa/ori_pqal.json" --steps 1 --batch 1 \
	--seq 16 --eval-every 0 --out "$tmp/run1"
expect 0 "warning: --data .* holds .*, evaluation data of task '(pubmedqa|hoc|medabstracts)'" \
	"$mswc" train $model "${tiny[@]}" --data "$data" --steps 1 --batch 1 --seq 16 \
	--eval-every 0 --out "$tmp/run2"
expect 0 "^step 1/1" "$mswc" train $model "${tiny[@]}" --data $text --steps 1 --batch 1 \
	--seq 16 --eval-every 0 --out "$tmp/run3"
grep -q "evaluation data" <<<"$last_out" && bad "a plain corpus warned" || ok

finish
