/* passes.h: graph-to-graph passes, one file each, all with one signature.
 *
 * A pass takes the graph and options and either succeeds, leaving a graph
 * the verifier accepts, or fails with a diagnostic and leaves the graph
 * unchanged. pipeline.c lists them in order. */
#ifndef MSW_PASSES_H
#define MSW_PASSES_H

#include <stdio.h>

#include "../ir/ir.h"

typedef struct PassOptions {
	bool keep_loss;      /* keep the loss (evaluation: `mswc run` with targets) */
	bool training;       /* keep the loss and build the backward graph */
	bool verify;         /* run ir_verify after every pass (default in debug) */
	int64_t alignment;   /* plan_memory: byte alignment of every buffer (64) */
} PassOptions;

typedef int (*PassFn)(Graph *g, const PassOptions *o, Diag *d);

/* infer_shapes.c: recompute every node's shape and dtype (after parsing
 * printed IR or after a rewrite); errors point at the node's .msw line. */
int pass_infer_shapes(Graph *g, const PassOptions *o, Diag *d);

/* autodiff.c: when training and the graph has a loss, append the backward
 * graph (reverse mode) and record in g->grad the gradient of the loss with
 * respect to every non-frozen param (docs/autodiff.md). No-op otherwise, or
 * when g->grad is already filled (IR printed after autodiff, read back). */
int pass_autodiff(Graph *g, const PassOptions *o, Diag *d);

/* dce.c: drop nodes that reach no output (nor the loss when training). */
int pass_dce(Graph *g, const PassOptions *o, Diag *d);

/* plan_memory.c: give every value a byte offset in one arena. Parameters,
 * inputs, outputs and the loss get their own space for the whole run;
 * temporaries reuse space once their last reader has run; views alias their
 * operand. Sets Node.offset and g->arena_size. */
int pass_plan_memory(Graph *g, const PassOptions *o, Diag *d);

/* pipeline.c */
typedef struct PassEntry {
	const char *name;
	PassFn fn;
} PassEntry;
extern const PassEntry pass_pipeline[];
extern const int pass_npipeline;
const PassEntry *pass_find(const char *name);
typedef struct PipelineOptions {
	const char *dump_after;   /* pass name, or "all" */
	const char *stop_after;   /* pass name */
	FILE *dump;               /* where dumps go (stderr if NULL) */
	double *seconds;          /* if set, pass_npipeline entries: time per pass */
} PipelineOptions;
/* Returns 0, 1 if it stopped early at stop_after, or -1 with errors. */
int pass_run_pipeline(Graph *g, const PassOptions *o, const PipelineOptions *po, Diag *d);

#endif
