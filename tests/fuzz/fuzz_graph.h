/* fuzz_graph.h: what the text-reader fuzz targets check on a graph they
 * were given (fuzz_msw.c, fuzz_ir.c; the replay test includes both).
 *
 * A graph the frontend or ir_parse accepted must satisfy the IR's own
 * promises, so any failure here is a bug and aborts: the verifier accepts
 * it; the printed text reads back (ir_parse) into a graph that prints to
 * the same text and hashes alike; and the rest of the pipeline, the path
 * `mswc compile --train --emit=ir` takes, either succeeds (leaving a graph
 * that verifies and still round-trips) or fails with a message. The
 * pipeline runs only on small graphs: its passes allocate per element (the
 * masks, the arena plan's tables), and a model of a billion weights is not
 * a bug for the fuzzer to report as running out of memory. */
#ifndef MSW_FUZZ_GRAPH_H
#define MSW_FUZZ_GRAPH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "passes/passes.h"

/* Elements summed over every node, above which the pipeline is skipped. */
enum { FUZZ_PIPELINE_MAX_ELEMS = 1 << 20 };

/* An invariant broken: say which and what the diagnostics were, then die
 * so libFuzzer saves the input. */
static void fuzz_fail(const char *what, const Diag *d)
{
	fprintf(stderr, "fuzz: %s\n%s", what, d ? diag_text(d) : "");
	abort();
}

/* print(g) reads back into a graph with the same text and hash. */
static void fuzz_round_trip(const Graph *g)
{
	char *text = ir_print(g);
	if (!text)
		return;   /* out of memory: nothing to check */
	Source src;
	Diag d;
	diag_init(&d);
	if (source_from_string(&src, "printed.mswir", text)) {
		mem_free(text);
		return;
	}
	Graph *back = NULL;
	if (ir_parse(&src, &back, &d))
		fuzz_fail("the printed IR does not read back", &d);
	char *again = ir_print(back);
	if (again && strcmp(text, again)) {
		fprintf(stderr, "fuzz: printed:\n%s\nread back and printed:\n%s\n", text, again);
		abort();
	}
	Hash128 h1 = ir_hash(g), h2 = ir_hash(back);
	if (h1.lo != h2.lo || h1.hi != h2.hi)
		fuzz_fail("the graph read back hashes differently", NULL);
	mem_free(again);
	ir_graph_destroy(back);
	source_free(&src);
	mem_free(text);
	diag_free(&d);
}

static int64_t fuzz_elems(const Graph *g)
{
	int64_t n = 0;
	for (ValId v = 0; v < ir_nnode(g); v++) {
		n += ir_numel(&ir_node(g, v)->shape);
		if (n > FUZZ_PIPELINE_MAX_ELEMS)
			break;
	}
	return n;
}

/* g verified; round trip, then the rest of the pipeline when small. */
static void fuzz_check_graph(Graph *g, bool training)
{
	Diag d;
	diag_init(&d);
	if (ir_verify(g, &d))
		fuzz_fail("the graph does not verify", &d);
	fuzz_round_trip(g);
	if (fuzz_elems(g) > FUZZ_PIPELINE_MAX_ELEMS) {
		diag_free(&d);
		return;
	}
	PassOptions po = {.training = training, .keep_loss = training, .verify = true,
			  .alignment = 64};
	int rc = pass_run_pipeline(g, &po, NULL, &d);
	if (rc < 0 && d.nerror == 0)
		fuzz_fail("the pipeline failed without a message", &d);
	/* A pass that breaks the graph is caught by the verifier between
	 * passes and reported as internal: that is a bug, not bad input. */
	if (rc < 0 && strstr(diag_text(&d), "internal"))
		fuzz_fail("a pass reported an internal error", &d);
	if (rc == 0) {
		if (ir_verify(g, &d))
			fuzz_fail("the graph does not verify after the pipeline", &d);
		fuzz_round_trip(g);
	}
	diag_free(&d);
}

#endif
