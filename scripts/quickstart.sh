#!/usr/bin/env bash
# quickstart.sh: from a fresh Debian 12 machine to a trained model that writes.
# Installs packages, builds mswc, and runs the main job on the bundled GPT
# (models/gpt.msw, 3.3 M parameters): compile, a short training run on
# biomedical text, held-out evaluation, and generation from the result.
# QUICKSTART_STEPS (default 300, about a minute and a half on 2 cores)
# sets the length of the training run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j"$(nproc)" > /dev/null
mswc=build/mswc
run=build/quickstart
steps=${QUICKSTART_STEPS:-300}
rm -rf "$run"
mkdir -p "$run"
bash scripts/corpus.sh "$run/corpus.txt"

echo "== compile models/gpt.msw (forward, batch 16 x seq 128)"
$mswc compile models/gpt.msw -D batch=16 -D seq=128

echo "== train $steps steps (batch 16 x seq 128, AdamW, warm-up + cosine)"
$mswc train models/gpt.msw --data "$run/corpus.txt" --steps "$steps" --batch 16 --seq 128 \
	--lr 1e-3 --warmup 50 --eval-every 100 --out "$run/train"

echo "== held-out loss (nats per byte; ln 256 = 5.55 is chance)"
$mswc eval models/gpt.msw --weights "$run/train/last.safetensors" --data "$run/corpus.txt"

echo "== generate"
$mswc generate models/gpt.msw --weights "$run/train/last.safetensors" \
	--prompt "The patient" -n 200 --temperature 0.8 --top-k 40 --seed 1
echo

echo "== the training step placed on a 16x16 mesh of tiles (docs/mesh.md)"
$mswc place models/gpt.msw --mesh 16x16 --train | sed -n 11,18p
$mswc viz models/gpt.msw --mesh 16x16 --what placement --train -o "$run/place.svg"
echo

echo "== embed: the trained model in a C app (examples/generate.c; libmswrt, no LLVM)"
cmake --install build --prefix "$run/prefix" > /dev/null
$mswc compile models/gpt.msw --aot "$run/aot" --name gen --generate \
	--weights "$run/train/last.safetensors" --embed-weights
cc -std=c11 -O2 -I"$run/aot" "$run/prefix/share/mswc/examples/generate.c" "$run/aot/gen.o" \
	$(PKG_CONFIG_PATH="$run/prefix/lib/pkgconfig" pkg-config --cflags --libs mswrt) -o "$run/generate"
"$run/generate" --prompt "The patient" -n 200 --temperature 0.8 --top-k 40 --seed 1 --window 128
echo
echo "run folder: $run/train (metrics.csv, last.safetensors, checkpoints); the placement: $run/place.svg; the app: $run/generate"
