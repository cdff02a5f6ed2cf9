/* pipeline.c: the passes in order, readable top to bottom.
 *
 * No pass manager: a table of (name, function) run in sequence, the
 * verifier after each pass when asked, and hooks to dump the IR after a
 * pass or stop there (--dump-after, --stop-after). */
#include "passes.h"

#include <string.h>
#include <time.h>

const PassEntry pass_pipeline[] = {
	{"infer_shapes", pass_infer_shapes},
	{"prune", pass_prune},
	{"autodiff", pass_autodiff},
	{"optimize", pass_optimize},
	{"sparse_lower", pass_sparse_lower},
	{"dce", pass_dce},
	{"plan_memory", pass_plan_memory},
	{"place", pass_place},   /* only with a mesh */
};
const int pass_npipeline = sizeof pass_pipeline / sizeof pass_pipeline[0];

const PassEntry *pass_find(const char *name)
{
	for (int i = 0; i < pass_npipeline; i++)
		if (!strcmp(pass_pipeline[i].name, name))
			return &pass_pipeline[i];
	return NULL;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int dump(const Graph *g, const char *pass, FILE *f)
{
	char *text = ir_print(g);
	if (!text)
		return -1;
	fprintf(f, "; IR after %s\n%s", pass, text);
	mem_free(text);
	return 0;
}

int pass_run_pipeline(Graph *g, const PassOptions *o, const PipelineOptions *po, Diag *d)
{
	FILE *out = po && po->dump ? po->dump : stderr;
	for (int i = 0; i < pass_npipeline; i++) {
		const PassEntry *p = &pass_pipeline[i];
		double t0 = now();
		if (p->fn(g, o, d))
			return -1;
		if (po && po->seconds)
			po->seconds[i] = now() - t0;
		if (o->verify && ir_verify(g, d)) {
			diag_error(d, (SrcLoc){0}, "internal: IR invalid after pass %s", p->name);
			return -1;
		}
		if (po && po->dump_after &&
		    (!strcmp(po->dump_after, "all") || !strcmp(po->dump_after, p->name)))
			if (dump(g, p->name, out))
				return diag_error(d, (SrcLoc){0}, "out of memory");
		if (po && po->stop_after && !strcmp(po->stop_after, p->name))
			return 1;
	}
	return 0;
}
