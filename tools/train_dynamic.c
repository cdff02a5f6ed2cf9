/* train_dynamic.c: dynamic sparse training for `mswc train --dynamic
 * set|rigl|gradual [--update-every N] [--update-fraction A] [--update-end S]`
 * (docs/sparsity.md, "Dynamic sparsity").
 *
 * The masks are compiled into the program, so a mask update is a
 * recompile: cmd_train runs the trainer in segments that end at multiples
 * of N (each end writes a checkpoint), and between segments
 * dynamic_update rewrites the masks of the newest checkpoint in memory
 * (runtime/regrow.c: drop the kept weights of smallest magnitude, grow as
 * many pruned ones, RigL by the dense gradient, SET at random), after
 * which the next segment compiles with those masks (the kernel cache
 * holds the old patterns' code) and resumes from the checkpoint. The
 * fraction moved decays as RigL's: A/2 (1 + cos(pi step / S)), no update
 * from step S on (default: 3/4 of the steps). RigL's dense gradient comes
 * from a second, dense program (forward and backward only) run on the
 * batch of the next step. `gradual` is gradual magnitude pruning (Zhu and
 * Gupta): the run starts dense (all-kept masks) and at each update drops
 * the smallest weights down to the schedule's sparsity, reaching --sparsity
 * at the last update at or before S. */
#include "tools.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const OptHelp dynamic_options[] = {
	{"--dynamic set|rigl|gradual", "dynamic sparsity: move masks, or prune gradually to "
				       "--sparsity"},
	{"--update-every N", "steps between mask updates (default 100)"},
	{"--update-fraction A", "kept weights moved at step 0, decaying (default 0.3)"},
	{"--update-end S", "no mask update from step S on (default 3/4 of --steps)"},
	{NULL, NULL},
};

int dynamic_option(DynamicOpts *o, int argc, char **argv, int i)
{
	int at = i;
	const char *v;
	long long x;
	if ((v = args_value(argc, argv, &at, "--dynamic"))) {
		o->method = !strcmp(v, "set") ? DYN_SET : !strcmp(v, "rigl") ? DYN_RIGL :
			    !strcmp(v, "gradual") ? DYN_GRADUAL : DYN_NONE;
		if (o->method == DYN_NONE)
			return -usage_error("train", "--dynamic expects set, rigl or gradual, got '%s'",
					    v);
	} else if ((v = args_value(argc, argv, &at, "--update-every"))) {
		if (args_int("train", "--update-every", v, 1, 1LL << 40, &x))
			return -1;
		o->every = x;
	} else if ((v = args_value(argc, argv, &at, "--update-end"))) {
		if (args_int("train", "--update-end", v, 1, 1LL << 40, &x))
			return -1;
		o->end = x;
	} else if ((v = args_value(argc, argv, &at, "--update-fraction"))) {
		char *end;
		double f = strtod(v, &end);
		if (!*v || *end || !(f > 0 && f <= 1))
			return -usage_error("train", "--update-fraction expects a number in (0, 1], "
					    "got '%s'", v);
		o->alpha = f;
	} else {
		return 0;
	}
	return at - i + 1;
}

static int64_t update_end(const DynamicOpts *o, int64_t steps)
{
	return o->end ? o->end : steps * 3 / 4;
}

/* Gradual pruning's last update: the last multiple of N at or before the end. */
static int64_t last_update(const DynamicOpts *o, int64_t steps)
{
	return update_end(o, steps) / o->every * o->every;
}

bool dynamic_due(const DynamicOpts *o, int64_t step, int64_t steps)
{
	if (o->method == DYN_NONE || step <= 0 || step % o->every || step >= steps)
		return false;
	return o->method == DYN_GRADUAL ? step <= last_update(o, steps) : step < update_end(o, steps);
}

int64_t dynamic_next_stop(const DynamicOpts *o, int64_t done, int64_t steps)
{
	if (o->method == DYN_NONE)
		return 0;
	int64_t next = (done / o->every + 1) * o->every;
	return dynamic_due(o, next, steps) ? next : 0;
}

/* A tensor of a file read into memory: its data is ours to change. */
static const rt_Tensor *find(const rt_TensorFile *f, const char *name)
{
	const rt_NamedTensor *t = rt_tensorfile_find(f, name);
	return t ? &t->t : NULL;
}

/* RigL's scores: the dense gradient of the loss at the checkpoint's weights
 * on the batch of step ck->step, from a program compiled without masks. */
typedef struct DenseGrad {
	Build b;
	rt_Pool *pool;
	rt_Exec *e;
	rt_Data data;
} DenseGrad;

static void dense_grad_free(DenseGrad *g)
{
	rt_exec_destroy(g->e);
	rt_pool_destroy(g->pool);
	rt_data_free(&g->data);
	build_free(&g->b);
}

static int dense_grad(DenseGrad *g, const Args *a, const rt_TrainConfig *c, const char *data,
		      rt_Checkpoint *ck, Diag *d)
{
	Args da = *a;
	da.dense = true;
	da.has_sparsity = false;
	da.dist = 0;
	fe_InputShape in[2] = {{.name = "tokens", .rank = 2, .dim = {c->batch, c->seq}},
			       {.name = "targets", .rank = 2, .dim = {c->batch, c->seq}}};
	BuildOptions bo = {.args = &da, .input = in, .ninput = 2, .training = true,
			   .stage = STAGE_PROGRAM, .seed = c->seed};
	if (build_run(&g->b, &bo))
		return -1;
	rt_Tensor tok, tgt;
	if (!(g->pool = rt_pool_create(a->threads)) || rt_exec_create(g->b.prog, g->pool, &g->e, d) ||
	    rt_load_params_from(g->e, &ck->model, ck->dir, RT_LOAD_IGNORE_MASKS, d) ||
	    rt_data_load(data, c->val_fraction, &g->data, d) || rt_exec_tensor(g->e, "tokens", &tok) ||
	    rt_exec_tensor(g->e, "targets", &tgt) ||
	    rt_data_batch(&g->data, c->order, c->seed, ck->step, c->batch, c->seq, tok.data,
			  tgt.data, d))
		return -1;
	rt_exec_run(g->e);
	return 0;
}

int dynamic_update(const DynamicOpts *o, const Args *a, const rt_TrainConfig *c,
		   const char *data, rt_Checkpoint *ck, Diag *d)
{
	double f = o->method == DYN_GRADUAL ?
			   rt_gradual_sparsity(o->target, ck->step, last_update(o, c->steps)) :
			   rt_regrow_fraction(o->alpha, ck->step, update_end(o, c->steps));
	DenseGrad g = {0};
	if (o->method == DYN_RIGL && dense_grad(&g, a, c, data, ck, d)) {
		dense_grad_free(&g);
		return -1;
	}
	int64_t moved = 0, kept = 0;
	int rc = 0;
	for (int i = 0; i < ck->model.ntensor && !rc; i++) {
		rt_NamedTensor *mt = &ck->model.tensor[i];
		if (!rt_is_mask_name(mt->name))
			continue;
		char pname[512], gname[540];
		snprintf(pname, sizeof pname, "%.*s", (int)(strlen(mt->name) - 5), mt->name);
		const rt_Tensor *w = find(&ck->model, pname);
		int64_t n = rt_numel(&mt->t), nkept = 0;
		if (!w || w->dtype != RT_F32 || rt_numel(w) != n || mt->t.dtype != RT_U8) {
			rc = diag_error(d, (SrcLoc){0}, "%s: the mask %s has no f32 weight of its size",
					ck->dir, mt->name);
			break;
		}
		uint8_t *bits = mt->t.data;
		for (int64_t e = 0; e < n; e++)
			nkept += bits[e] != 0;
		const float *score = NULL;
		rt_Tensor gt;
		snprintf(gname, sizeof gname, "%s.grad", pname);
		if (o->method == DYN_RIGL) {
			if (rt_exec_tensor(g.e, gname, &gt) || rt_numel(&gt) != n) {
				rc = diag_error(d, (SrcLoc){0}, "no dense gradient for %s", pname);
				break;
			}
			score = gt.data;
		}
		uint64_t seed = rt_rng_bits(c->seed ^ 0x5e7d1a5e, (uint64_t)ck->step * 1000003u + (uint64_t)i);
		int64_t m = o->method == DYN_GRADUAL ?
				    rt_mask_drop(bits, w->data, n, llround(f * (double)n) - (n - nkept)) :
				    rt_mask_regrow(bits, w->data, score, n, llround(f * (double)nkept), seed);
		if (m < 0) {
			rc = diag_error(d, (SrcLoc){0}, "out of memory");
			break;
		}
		/* moments of dropped weights: zero, as the masked update would make them */
		for (int k = 0; k < 2; k++) {
			snprintf(gname, sizeof gname, "%s%s", pname, k ? ".exp_avg_sq" : ".exp_avg");
			const rt_Tensor *mo = find(&ck->optim, gname);
			for (int64_t e = 0; mo && rt_numel(mo) == n && e < n; e++)
				if (!bits[e])
					((float *)mo->data)[e] = 0.0f;
		}
		moved += m;
		kept += nkept;
	}
	if (!rc && o->method == DYN_GRADUAL)
		fprintf(stderr, "step %lld: gradual pruning to sparsity %.4f dropped %lld of %lld "
			"kept weights\n", (long long)ck->step, f, (long long)moved, (long long)kept);
	else if (!rc)
		fprintf(stderr, "step %lld: %s moved %lld of %lld kept weights (fraction %.3f)\n",
			(long long)ck->step, o->method == DYN_RIGL ? "rigl" : "set", (long long)moved,
			(long long)kept, f);
	dense_grad_free(&g);
	return rc;
}
