#!/usr/bin/env bash
# run_mesh_cli.sh MSWC: the mesh from the command line (docs/mesh.md), on a
# small GPT (d 32, 2 layers) and the default one:
#   - compile --mesh --dump-after=place prints the mesh and every node's
#     tiles, the same twice; the placement read back from printed IR and
#     placed again is the same; without --mesh nothing changes (no place
#     line in the summary) and --dump-after=place is refused;
#   - place prints the mesh's figures (host: the rates and where they came
#     from), tiles used, memory per tile, the predicted step, the busiest
#     link and a line per unit, for presets, RxC:MEM and a file; a sparse
#     model places and predicts less; too little memory is refused (exit 1)
#     with the buffers on the fullest tile; bad descriptions are located;
#   - viz writes SVG (with the expected labels), PNG and dot source, for the
#     graph and the placement; bad options exit 2.
set -u
mswc=$1
source "$(dirname "$0")/lib.sh"

# --- compile --mesh ---
expect 0 'mesh "4x4:4M" rows=4 cols=4' "$mswc" compile $model "${small[@]}" --train \
	--mesh 4x4:4M --dump-after=place --emit=ir
grep -qE '^place %0(\.\.%[0-9]+)? tiles=\([0-9]+,[0-9]+\)\.\.\([0-9]+,[0-9]+\) unit=%' <<<"$last_out" &&
	ok || bad "no place line for %0"
"$mswc" compile $model "${small[@]}" --train --mesh 4x4:4M --stop-after=place >"$tmp/a.mswir" 2>&1
"$mswc" compile $model "${small[@]}" --train --mesh 4x4:4M --stop-after=place >"$tmp/b.mswir" 2>&1
cmp -s "$tmp/a.mswir" "$tmp/b.mswir" && ok || bad "the placement differs between two runs"
grep -c '^place ' "$tmp/a.mswir" | grep -qv '^0$' && ok || bad "--stop-after=place printed no place lines"
# read back, placed again: the same placement
"$mswc" compile "$tmp/a.mswir" --train --mesh 4x4:4M --stop-after=place >"$tmp/c.mswir" 2>&1
diff <(grep -E '^(mesh|place) ' "$tmp/a.mswir") <(grep -E '^(mesh|place) ' "$tmp/c.mswir") >/dev/null &&
	ok || bad "placing printed IR again gave another placement"
expect 2 "the place pass runs only with --mesh" "$mswc" compile $model --dump-after=place
expect 0 "plan_memory" "$mswc" compile $model "${small[@]}"
grep -q "^  place " <<<"$last_out" && bad "compile without --mesh reports a place pass" || ok
expect 2 "--mesh needs a value" "$mswc" compile $model --mesh

# --- place ---
expect 0 "predicted step" "$mswc" place $model --mesh ipu --sparsity 0.75
for pat in "mesh ipu: 32 x 46 = 1472 tiles" "memory +624 KiB" "on [0-9]+ of 1472 tiles" \
	"memory per tile +max" "busiest link" "h\.0\.mlp\.c_fc\.weight +h\.0 " "masked 25%"; do
	grep -qE -- "$pat" <<<"$last_out" && ok || bad "place --mesh ipu: no /$pat/"
done
expect 0 "phases end at +forward" "$mswc" place $model "${small[@]}" --train --mesh 8x8:1M
dense_step=$(grep -oE 'predicted step +[0-9.]+ [mun]?s' <<<"$last_out")
expect 0 "sparse 10%" "$mswc" place $model "${small[@]}" --train --mesh wafer --sparsity 0.9
expect 0 "host rates measured on fixed rates for the test suite" "$mswc" place $model \
	"${small[@]}" --mesh host --threads 2
grep -qE "mesh host: 1 x 2 = 2 tiles" <<<"$last_out" && ok || bad "host with 2 threads is not 1 x 2"
grep -qE "dense +115 GFLOP/s +measured: dense.forward" <<<"$last_out" && ok ||
	bad "host: the dense rate is not the measured one"
printf '# a test mesh\nname small\ntiles 6x6\nmemory 2M\nclock 1G\ndense 8/cycle\nlink 4/cycle\nlatency 1cycle\n' \
	>"$tmp/small.mesh"
expect 0 "mesh small: 6 x 6 = 36 tiles" "$mswc" place $model "${small[@]}" --train --mesh "$tmp/small.mesh"
grep -qE "dense +8.00 GFLOP/s +.*small.mesh:6" <<<"$last_out" && ok || bad "a file's figure says where it came from"
expect 0 "explain|work .* on one tile" "$mswc" place $model "${small[@]}" --mesh 4x4:4M --explain
# too little memory: refused at compile time, the buffers listed
expect 1 "error: the step does not fit on mesh '2x2:16K': tile \([0-9]+,[0-9]+\) holds" "$mswc" place \
	$model "${small[@]}" --train --mesh 2x2:16K
grep -qE 'note: [0-9.]+ [KMG]?i?B on this tile: (weight|activation|optimiser moment|gradient)' <<<"$last_out" &&
	ok || bad "the refusal lists no buffers"
grep -qE -- '--mesh:1:5: error' <<<"$last_out" && ok || bad "the refusal is not located at the memory"
expect 1 "does not fit" "$mswc" compile $model "${small[@]}" --train --mesh 2x2:16K
# bad descriptions
printf 'tiles 4x4\nmemory 1M\ndense 1G\nlink 1Q\n' >"$tmp/bad.mesh"
expect 1 "bad.mesh:4:6: error: '1Q': a rate is" "$mswc" place $model --mesh "$tmp/bad.mesh"
expect 1 "mesh:1:1: error: a mesh has at least one row and one column" "$mswc" place $model --mesh 4x0
expect 1 "is no preset \(host, ipu, wafer\)" "$mswc" place $model --mesh tpu
expect 2 "no mesh given" "$mswc" place $model

# --- viz ---
expect 0 "wrote" "$mswc" viz $model --train --what graph -o "$tmp/graph.svg"
[ -s "$tmp/graph.svg" ] && ok || bad "viz graph: empty SVG"
for pat in "<svg" "forward" "backward" "update" "h\.0" "attn\.c_attn" "global gradient norm"; do
	grep -qE "$pat" "$tmp/graph.svg" && ok || bad "graph.svg has no /$pat/"
done
expect 0 "wrote" "$mswc" viz $model --sparsity 0.75 --what graph -o "$tmp/graph-sparse.svg"
grep -q "25% kept" "$tmp/graph-sparse.svg" && ok || bad "graph-sparse.svg has no density"
expect 0 "wrote" "$mswc" viz $model --train --mesh 16x16:1M --what placement -o "$tmp/place.svg"
for pat in "<svg" "h\.3" "mlp\.c_fc" "tiles" "predicted step" "busiest link"; do
	grep -qE "$pat" "$tmp/place.svg" && ok || bad "place.svg has no /$pat/"
done
expect 0 "wrote" "$mswc" viz $model "${small[@]}" --mesh 4x4:4M --what placement -o "$tmp/place.png"
[ "$(head -c 4 "$tmp/place.png" | od -An -c | tr -d ' ')" = "211PNG" ] && ok || bad "place.png is no PNG"
expect 0 "digraph" "$mswc" viz $model "${small[@]}" --emit=dot
expect 0 "wrote|" "$mswc" viz $model "${small[@]}" -o "$tmp/g.dot"
grep -q "digraph" "$tmp/g.dot" && ok || bad "-o g.dot wrote no dot source"
expect 2 "--what placement needs --mesh" "$mswc" viz $model --what placement -o "$tmp/x.svg"
expect 2 "does not end in" "$mswc" viz $model -o "$tmp/x.txt"
expect 2 "--what expects graph or placement" "$mswc" viz $model --what heat -o "$tmp/x.svg"
expect 2 "give -o" "$mswc" viz $model
finish
