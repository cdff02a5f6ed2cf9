/* build.c: the compile flow every subcommand shares.
 *
 *   .msw --frontend--> Graph --pipeline--> planned Graph --backend--> rt_Program
 *   .mswir --ir_parse--^
 *
 * A model file whose name ends in .mswir is printed IR (`--emit=ir`,
 * `--stop-after=PASS`): it is read back and verified instead of compiled
 * by the frontend, and the whole pipeline runs on it, each pass leaving
 * alone what an earlier run already did, so a golden test can start at
 * any pass. Its shapes are fixed, so options that feed the frontend (-D,
 * --decode, --freeze) are refused for it.
 * Stops at the stage the caller asks for; times each stage for the summary
 * of `mswc compile`; prints diagnostics to stderr and turns them into the
 * exit status (1 for the user's errors). */
#include "tools.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int report(Build *b, int status)
{
	fputs(diag_text(&b->diag), stderr);
	return status;
}

/* With auto_loss, keep the loss only when the caller supplied every
 * input the model declares (e.g. tokens and targets for `mswc run`). */
static bool wants_loss(const Graph *g, const BuildOptions *o)
{
	if (o->loss)
		return g->loss != VAL_NONE;
	if (!o->auto_loss)
		return o->training;
	if (g->loss == VAL_NONE)
		return false;
	for (ValId v = 0; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		if (n->op != OP_INPUT)
			continue;
		bool given = false;
		for (int i = 0; i < o->ninput; i++)
			given |= !strcmp(o->input[i].name, ir_str(g, n->name));
		if (!given)
			return false;
	}
	return true;
}

static bool is_printed_ir(const char *path)
{
	size_t n = strlen(path);
	return n > 6 && !strcmp(path + n - 6, ".mswir");
}

/* The model from printed IR; errors are located in the .mswir file, which
 * b->irsrc keeps for the diagnostics. */
static int read_printed_ir(Build *b, const BuildOptions *o)
{
	const char *path = o->args->model, *what = NULL;
	if (o->args->ndef)
		what = "-D";
	else if (o->decode)
		what = "--decode";
	else if (o->nfreeze)
		what = "--freeze";
	if (what)
		return diag_error(&b->diag, (SrcLoc){0}, "%s: %s applies to a .msw model; printed "
				  "IR has its shapes and program fixed", path, what);
	const char *why = NULL;
	if (source_load(&b->irsrc, path, &why))
		return diag_error(&b->diag, (SrcLoc){0}, "cannot read %s: %s", path, why);
	/* The reader checks each node's shape rule; the verifier the rest
	 * (unique names, outputs, masks), as every pass's input must. */
	if (ir_parse(&b->irsrc, &b->g, &b->diag))
		return -1;
	if (ir_verify(b->g, &b->diag))
		return diag_error(&b->diag, (SrcLoc){&b->irsrc, 0, 0, 0}, "the IR read is not "
				  "a valid graph");
	return 0;
}

static int run_frontend(Build *b, const BuildOptions *o)
{
	double t0 = now_seconds();
	if (is_printed_ir(o->args->model)) {
		int rc = read_printed_ir(b, o);
		b->t_frontend = now_seconds() - t0;
		return rc;
	}
	b->fe = fe_session_create();
	if (!b->fe)
		return diag_error(&b->diag, (SrcLoc){0}, "out of memory");
	fe_Options fo = {
		.def = o->args->def,
		.ndef = o->args->ndef,
		.input = o->input,
		.ninput = o->ninput,
		.decode = o->decode,
		.freeze = o->freeze,
		.nfreeze = o->nfreeze,
	};
	int rc = fe_compile_file(b->fe, o->args->model, &fo, &b->g, &b->diag);
	b->t_frontend = now_seconds() - t0;
	return rc;
}

/* The host rates, at most once per process (bench sparse builds many
 * programs): the file named by $MSW_RATES when set (the test suite's fixed
 * rates, so golden output never depends on this machine), else the cache
 * beside the kernel cache, else measured now and cached. */
static HostRates host_rates;
static int host_rates_state;   /* 0 not yet, 1 have them, -1 failed */

int tools_host_rates(const HostRates **out, bool remeasure, Diag *d)
{
	*out = NULL;
	if (host_rates_state && !remeasure) {
		*out = host_rates_state > 0 ? &host_rates : NULL;
		return host_rates_state > 0 ? 0 : -1;
	}
	const char *file = getenv("MSW_RATES");
	int rc;
	if (file && *file && !remeasure) {
		rc = rates_read(file, NULL, &host_rates);
		if (rc)
			diag_error(d, (SrcLoc){0}, "MSW_RATES: '%s' is not a host rates file "
				   "(see `mswc bench calibrate`)", file);
	} else {
		char *dir = be_cache_default_dir();
		rc = be_host_rates(&host_rates, dir, remeasure, d);
		mem_free(dir);
	}
	host_rates_state = rc ? -1 : 1;
	*out = rc ? NULL : &host_rates;
	return rc;
}

static int rates_cb(void *ctx, const HostRates **out, Diag *d)
{
	(void)ctx;
	return tools_host_rates(out, false, d);
}

int tools_mesh(const char *spec, int threads, Mesh *m)
{
	Diag d;
	diag_init(&d);
	MeshHost host = {.threads = threads, .get_rates = rates_cb};
	int rc = mesh_parse(spec, &host, m, &d);
	fputs(diag_text(&d), stderr);
	diag_free(&d);
	return rc;
}

static int run_passes(Build *b, const BuildOptions *o)
{
	const Args *a = o->args;
	PruneOptions pr;
	pass_prune_defaults(&pr);
	pr.sparsity = a->has_sparsity ? a->sparsity : -1;
	pr.dist = a->dist - 1;
	pr.dense = a->dense;
	pr.method = o->method;
	pr.seed = o->seed;
	pr.masks = a->dense ? NULL : o->masks;
	pr.nmasks = a->dense ? 0 : o->nmasks;
	pr.weights = o->weights;
	pr.nweights = o->nweights;
	PassOptions po = {.keep_loss = wants_loss(b->g, o), .training = o->training,
			  .optimizer = o->optimizer, .decay_all = o->decay_all,
			  .alignment = RT_ALIGN, .guard = o->unchecked ? -1 : 0, .prune = &pr,
			  .sparse_format = (SparseFormat)(a->sparse_format - 1),
			  .get_rates = rates_cb, .mesh = o->mesh};
	/* the cost model's inputs and choices go with the dump of its pass */
	if (o->dump_after && (!strcmp(o->dump_after, "sparse_lower") || !strcmp(o->dump_after, "all")))
		po.explain = stderr;
	/* and so do the placement's, with --dump-after=place */
	if (o->mesh && (o->explain || (o->dump_after && !strcmp(o->dump_after, "place"))))
		po.explain = stderr;
#ifndef NDEBUG
	po.verify = true;
#endif
	PipelineOptions pl = {
		.dump_after = o->dump_after,
		.stop_after = o->stop_after,
		.dump = stderr,
		.seconds = b->t_pass,
	};
	int rc = pass_run_pipeline(b->g, &po, &pl, &b->diag);
	if (rc == 1)
		b->stopped = true;
	return rc < 0 ? -1 : 0;
}

int build_run(Build *b, const BuildOptions *o)
{
	memset(b, 0, sizeof *b);
	diag_init(&b->diag);
	if (run_frontend(b, o))
		return report(b, EXIT_FAIL);
	if (run_passes(b, o))
		return report(b, EXIT_FAIL);
	if (b->stopped || o->stage == STAGE_GRAPH)
		return 0;
	/* Printed IR records a mask's count and hash, not its bits: such a
	 * graph prints, but code cannot be made for it. */
	for (size_t i = 0; b->irsrc.text && i < b->g->mask.len; i++) {
		const Mask *m = &VEC_AT(b->g->mask, Mask, i);
		if (!m->bits && m->nkept >= 0) {
			diag_error(&b->diag, ir_node(b->g, m->param)->loc, "the mask of '%s' is not in "
				   "printed IR (only its count and hash are); compile the .msw "
				   "model to run it", ir_str(b->g, ir_node(b->g, m->param)->name));
			return report(b, EXIT_FAIL);
		}
	}
	double t0 = now_seconds();
	/* The kernel cache, except when the module is to be printed: a cached
	 * module is never optimised. */
	char *cache = o->stage == STAGE_PROGRAM ? be_cache_default_dir() : NULL;
	be_Options bo = {.opt_level = 3, .cache_dir = cache, .cpu = o->cpu, .features = o->features};
	int rc = be_compile(b->g, &bo, &b->mod, &b->diag);
	mem_free(cache);
	if (rc)
		return report(b, EXIT_FAIL);
	b->t_codegen = now_seconds() - t0;
	if (o->stage == STAGE_MODULE)
		return 0;
	t0 = now_seconds();
	if (be_jit(b->mod, b->g, &b->prog, &b->diag))
		return report(b, EXIT_FAIL);
	b->t_jit = now_seconds() - t0;
	return 0;
}

int sparse_tensors(const rt_TensorFile *f, const char *path, bool masks, PruneTensor **out,
		   int *n, Diag *d)
{
	*n = 0;
	*out = mem_calloc(f->ntensor ? (size_t)f->ntensor : 1, sizeof **out);
	if (!*out)
		return diag_error(d, (SrcLoc){0}, "out of memory");
	for (int i = 0; i < f->ntensor; i++) {
		const rt_NamedTensor *t = &f->tensor[i];
		bool is_mask = rt_is_mask_name(t->name);
		if (masks && is_mask && rt_mask_validate(path, t, d))
			goto fail;
		if (masks ? !is_mask : t->t.dtype != RT_F32)
			continue;
		size_t len = strlen(t->name) - (is_mask && masks ? 5 : 0);
		char *name = mem_alloc(len + 1);
		if (!name) {
			diag_error(d, (SrcLoc){0}, "out of memory");
			goto fail;
		}
		memcpy(name, t->name, len);
		name[len] = 0;
		(*out)[*n].name = name;
		(*out)[*n].data = t->t.data;
		(*out)[*n].numel = rt_numel(&t->t);
		(*n)++;
	}
	return 0;
fail:
	sparse_tensors_free(*out, *n);
	*out = NULL;
	*n = 0;
	return -1;
}

int weights_read(const char *path, const Args *a, rt_TensorFile *f, PruneTensor **masks,
		 int *nmasks, Diag *d)
{
	*masks = NULL;
	*nmasks = 0;
	if (rt_safetensors_read(path, f, d))
		return -1;
	if (!a->dense && sparse_tensors(f, path, true, masks, nmasks, d)) {
		rt_tensorfile_free(f);
		return -1;
	}
	return 0;
}

int64_t weights_train_seq(const rt_TensorFile *f)
{
	long long seq = 0;
	if (f->metadata_json) {
		cJSON *meta = cJSON_Parse(f->metadata_json);
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, "mswc.train_seq");
		if (cJSON_IsString(v))
			seq = strtoll(v->valuestring, NULL, 10);
		cJSON_Delete(meta);
	}
	return seq > 1 ? seq : 0;
}

int64_t build_vocab(const Graph *g, const char *input)
{
	uint32_t n = ir_nnode(g);
	bool *from = mem_calloc(n ? n : 1, sizeof *from);
	int64_t vocab = 0;
	if (!from)
		return 0;
	for (ValId v = 0; v < n; v++) {
		const Node *x = ir_node(g, v);
		const Node *a0 = x->narg > 0 ? ir_node(g, ir_operand(g, x, 0)) : NULL;
		bool idx1 = x->narg > 1 && from[ir_operand(g, x, 1)];
		int64_t rows = 0;
		if (x->op == OP_INPUT)
			from[v] = x->name && !strcmp(ir_str(g, x->name), input);
		else if (x->op == OP_RESHAPE || x->op == OP_PERMUTE || x->op == OP_SLICE ||
			 x->op == OP_BROADCAST)
			from[v] = from[ir_operand(g, x, 0)];   /* the same ids, moved */
		else if (x->op == OP_GATHER && idx1)
			rows = a0->shape.dim[0];                /* rows of the table */
		else if (x->op == OP_CROSS_ENTROPY && idx1)
			rows = a0->shape.dim[a0->shape.rank - 1];  /* classes of the logits */
		if (rows > 0 && (vocab == 0 || rows < vocab))
			vocab = rows;
	}
	mem_free(from);
	return vocab;
}

void sparse_tensors_free(PruneTensor *t, int n)
{
	for (int i = 0; t && i < n; i++)
		mem_free((char *)t[i].name);
	mem_free(t);
}

int data_vocab_check(const char *path, const rt_Data *data, const Graph *g, Diag *d)
{
	rt_Tensor t = {.dtype = RT_I32, .rank = 1, .dim = {data->ntok}, .data = data->tok};
	int64_t v = build_vocab(g, "tokens"), vt = build_vocab(g, "targets");
	if (vt > 0 && (v == 0 || vt < v))
		v = vt;
	return rt_tokens_check(path, &t, v, d);
}

int start_exec(Build *b, int threads, rt_Pool **pool, rt_Exec **e)
{
	*e = NULL;
	if (!(*pool = rt_pool_create(threads)))
		diag_error(&b->diag, (SrcLoc){0}, "cannot start %d threads", threads);
	else if (!rt_exec_create(b->prog, *pool, e, &b->diag))
		return 0;
	/* The arena is sized by the model and its -D values: running out of
	 * memory is the user's to fix, like any other input error. */
	return EXIT_FAIL;
}

void build_free(Build *b)
{
	rt_program_destroy(b->prog);
	be_module_destroy(b->mod);
	ir_graph_destroy(b->g);
	fe_session_destroy(b->fe);   /* after the graph: SrcLocs point into it */
	source_free(&b->irsrc);
	diag_free(&b->diag);
	memset(b, 0, sizeof *b);
}
