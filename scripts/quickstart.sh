#!/usr/bin/env bash
# quickstart.sh: from a fresh Debian 12 machine to a compiled, running model.
# Installs packages, builds mswc, and runs the main job on the bundled GPT:
# compile, initialise weights, encode biomedical text, run the forward pass
# and report the loss on it (training and generation join as they land).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j"$(nproc)" > /dev/null
mswc=build/mswc
run=build/quickstart
mkdir -p "$run"
bash scripts/corpus.sh "$run/corpus.txt"
echo "== compile models/gpt.msw"
$mswc compile models/gpt.msw -D batch=8 -D seq=128
echo "== init"
$mswc init models/gpt.msw -o "$run/init.safetensors" --seed 1
echo "== encode 8 x 128 bytes of the corpus"
$mswc encode "$run/corpus.txt" --batch 8 --seq 128 --offset 4096 \
	-o "$run/tokens.npy" --targets "$run/targets.npy"
echo "== run: forward pass and loss of the untrained model (ln 256 = 5.545 is chance)"
$mswc run models/gpt.msw --weights "$run/init.safetensors" \
	--input tokens="$run/tokens.npy" --input targets="$run/targets.npy" \
	--out "$run/out.safetensors" --repeat 5
echo "outputs written to $run/out.safetensors"
