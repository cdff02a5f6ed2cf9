/* fuzz_ir.c: libFuzzer target for the textual IR reader (ir_parse), and
 * for what `mswc compile FILE.mswir --train` does with what it read.
 *
 * Any byte string must either parse, verify and pass fuzz_graph.h's checks
 * (print and read back to the same text and hash; the pipeline succeeds or
 * fails with a message), or fail with a message located in the file
 * ("fuzz.mswir:line:col: error: ..."); never crash, hang, leak or overflow.
 * A graph that parses but does not verify is refused as `mswc compile`
 * refuses it (tools/build.c) and goes no further. Training is on when the
 * graph has a loss, so autodiff runs on whatever the fuzzer builds. Built
 * with -DMSW_FUZZ=ON; the ordinary test run replays tests/fuzz/corpus/ir
 * through the same function (see fuzz_safetensors.c for FUZZ_ENTRY). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_graph.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
int FUZZ_ENTRY(const uint8_t *data, size_t size);
#endif

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	Source src;
	if (source_from_mem(&src, "fuzz.mswir", data, size))
		return 0;
	Graph *g = NULL;
	Diag d;
	diag_init(&d);
	if (ir_parse(&src, &g, &d)) {
		if (g || d.nerror == 0)
			fuzz_fail("ir_parse failed without a message", &d);
		if (strncmp(diag_text(&d), "fuzz.mswir:", 11))
			fuzz_fail("ir_parse's first message has no location", &d);
	} else if (!g || d.nerror) {
		fuzz_fail("ir_parse succeeded with errors or no graph", &d);
	} else if (ir_verify(g, &d) == 0) {
		fuzz_check_graph(g, g->loss != VAL_NONE);
	}
	ir_graph_destroy(g);
	source_free(&src);   /* after the graph: errors quote it */
	diag_free(&d);
	return 0;
}
