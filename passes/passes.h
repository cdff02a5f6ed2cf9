/* passes.h: graph-to-graph passes, one file each, all with one signature.
 *
 * A pass takes the graph and options and either succeeds, leaving a graph
 * the verifier accepts, or fails with a diagnostic and leaves the graph
 * unchanged. pipeline.c lists them in order. */
#ifndef MSW_PASSES_H
#define MSW_PASSES_H

#include <stdio.h>

#include "../ir/ir.h"
#include "mesh.h"
#include "sparse.h"

/* prune.c's inputs beyond the graph (docs/sparsity.md). */
typedef enum PruneMethod {
	PRUNE_RANDOM,         /* seeded ranking: the masks of static sparse training */
	PRUNE_MAGNITUDE,      /* keep the largest |w| of the given weights */
} PruneMethod;
typedef struct PruneTensor {
	const char *name;     /* the param's name */
	const void *data;     /* weights: f32; masks: u8, nonzero = kept */
	int64_t numel;
} PruneTensor;
typedef struct PruneOptions {
	double sparsity;      /* >= 0: the target of every covered param (with no
	                       * sparsity statement: of the default coverage);
	                       * < 0: the model's own statements */
	int dist;             /* a SparseDist overriding the model's, or -1 */
	bool dense;           /* drop every mask (dense fine-tuning) */
	PruneMethod method;
	uint64_t seed;        /* PRUNE_RANDOM */
	const PruneTensor *weights;   /* PRUNE_MAGNITUDE: one per covered param */
	int nweights;
	const PruneTensor *masks;     /* supplied masks (a checkpoint's): they win */
	int nmasks;
} PruneOptions;
/* The defaults: the model's statements, random masks with seed 0. */
void pass_prune_defaults(PruneOptions *po);

typedef struct PassOptions {
	bool keep_loss;      /* keep the loss (evaluation: `mswc run` with targets) */
	bool training;       /* keep the loss and build the backward graph */
	bool verify;         /* run ir_verify after every pass (default in debug) */
	int64_t alignment;   /* plan_memory: byte alignment of every buffer (64) */
	int64_t guard;       /* plan_memory: checked mode's guard bytes after every
	                      * buffer; 0: PASS_GUARD when msw_checked() (MSW_CHECK=1),
	                      * else none; < 0: none */
	const PruneOptions *prune;   /* prune: NULL = pass_prune_defaults */
	SparseFormat sparse_format;  /* sparse_lower; 0 (zeroed options) is SPF_MASKED,
	                              * the tools use SPF_AUTO */
	/* The cost models' rates of this machine (support.h): `rates` when
	 * set, else asked of get_rates(rates_ctx, ...) the first time a model
	 * needs them (the tools measure or read the cache there), else none. */
	const HostRates *rates;
	int (*get_rates)(void *ctx, const HostRates **out, Diag *d);
	void *rates_ctx;
	FILE *explain;       /* if set, cost models print their inputs and decisions here */
	bool optimizer;      /* optimize: with training, append the AdamW update */
	bool decay_all;      /* optimize: weight decay on every param, not only
	                      * where ir_param_decays says so */
	const Mesh *mesh;    /* place: the mesh to place the step on; NULL: no placement */
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

/* optimize.c: when training with the optimiser and the graph has
 * gradients, append the update (docs/training.md): sumsq per gradient,
 * grad_norm (global norm, clip factor), adamw / adamw_masked per param,
 * with the scalars as the input "optim.hparams" and the moments as states
 * "<p>.exp_avg", "<p>.exp_avg_sq". No-op otherwise, or when the graph
 * already has its update. */
int pass_optimize(Graph *g, const PassOptions *o, Diag *d);

/* prune.c: sparsity masks (docs/sparsity.md). Settles which params are
 * sparse and at what target (the model's statements, overridden by
 * o->prune), decides every pending mask's pattern (supplied masks first,
 * then seeded random or magnitude ranking, exactly round(target * numel)
 * zeros per param, ERK spreading its group's target), and rewrites the
 * graph so every reader of a sparse param W reads mul(W, mask W) instead.
 * Runs before autodiff, so gradients come out masked. A graph without
 * masks and without a sparsity override is left exactly as it is. */
int pass_prune(Graph *g, const PassOptions *o, Diag *d);
/* One line per mask: name, numel, kept, achieved and target sparsity; then
 * the total over the covered params. Prints nothing for a dense graph. */
void pass_prune_report(const Graph *g, FILE *f);
/* The ERK densities of n params of shapes dims[i][0..rank[i]) for an
 * overall sparsity target (the RigL rule, capped at 1 and redistributed).
 * Exported for tests and tools. */
int pass_erk_density(const Shape *shape, int n, double target, double *density);

/* sparse_lower.c: the products of each sparse weight W (the forward
 * matmul, and when training the input and weight gradients autodiff
 * built) become spmm / sddmm kernels in the feature-major layout, with
 * transposes around them shared between products, in the format the cost
 * model (or o->sparse_format) picks per weight and product. Products left
 * masked keep reading mul(W, mask). No-op for a dense graph. */
int pass_sparse_lower(Graph *g, const PassOptions *o, Diag *d);

/* dce.c: drop nodes that reach no output (nor the loss, the gradients and
 * the update when training). */
int pass_dce(Graph *g, const PassOptions *o, Diag *d);

/* plan_memory.c: give every value of the whole step, forward to update, a
 * byte offset in one arena. Parameters, inputs, states (the optimiser's
 * moments), outputs, the loss and the gradients get their own space for
 * the whole run; temporaries reuse space once their last reader has run;
 * views and in-place updates alias their operand. Sets Node.offset and
 * g->arena_size, the size of everything a step touches. In checked mode
 * (o->guard) no buffer reuses another's space and each is followed by a
 * guard of at least o->guard bytes (g->arena_guard) that no value owns. */
enum { PASS_GUARD = 256 };   /* checked mode's default guard: four zmm stores */
int pass_plan_memory(Graph *g, const PassOptions *o, Diag *d);

/* place.c: with o->mesh, give every node of the step a rectangle of the
 * mesh's tiles (docs/mesh.md): one per weight and what belongs to it,
 * sized by its work (kept entries for a sparse weight) and bounded below
 * by its memory, laid out in the order of the step so consumers sit next
 * to producers; Graph.place records it. A placement that does not fit a
 * tile's memory is refused with the buffers on the fullest tile. No-op
 * without a mesh. */
int pass_place(Graph *g, const PassOptions *o, Diag *d);

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
