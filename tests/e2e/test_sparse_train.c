/* test_sparse_train.c: static sparse training through the library
 * (docs/sparsity.md, "Training semantics").
 *
 * A tiny GPT compiled with --sparsity 0.75 (random masks, seed 1):
 *   - equivalence, in every sparse format (masked dense matmuls, compressed
 *     rows, unrolled): its logits and loss equal those of the dense model
 *     whose weights have the mask applied (relative 1e-5), even when the
 *     sparse model's stored weights are garbage at pruned positions;
 *   - gradients: the sparse kernels' weight and input gradients give every
 *     param's gradient within 1e-5 (normwise relative) of the masked dense
 *     program's, and exactly 0.0 at pruned positions;
 *   - init: every covered param is exactly 75% zero, at the pruned places;
 *   - training through the compressed-row kernels, 10 AdamW steps with weight decay and clipping: after every
 *     step each covered param is still exactly round(0.75 numel) zeros, all
 *     at pruned positions, and the gradients there are exactly zero;
 *   - the masked update: pruned weights and moments forced non-zero before
 *     a step are exactly zero after it;
 *   - checkpoints carry "<param>.mask" (U8, 1 = kept) equal to the masks. */
#include "../check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "frontend/fe.h"
#include "passes/passes.h"
#include "runtime/rt.h"

#define MODEL MSW_SOURCE_DIR "/models/gpt.msw"

enum { BATCH = 2, SEQ = 8, STEPS = 10 };

static const fe_Define defs[] = {
	{"vocab", "256"}, {"ctx", "16"}, {"d", "32"}, {"heads", "2"}, {"layers", "2"},
};

static void show(Diag *d)
{
	if (d->len)
		fprintf(stderr, "%s", diag_text(d));
	diag_free(d);
	diag_init(d);
}

typedef struct Built {
	fe_Session *fe;
	Graph *g;
	rt_Program *p;
} Built;

static int build(Built *b, double sparsity, bool training, SparseFormat format)
{
	memset(b, 0, sizeof *b);
	fe_InputShape in[2] = {{.name = "tokens", .rank = 2, .dim = {BATCH, SEQ}},
			       {.name = "targets", .rank = 2, .dim = {BATCH, SEQ}}};
	fe_Options fo = {.def = defs, .ndef = 5, .input = in, .ninput = 2};
	PruneOptions pr;
	pass_prune_defaults(&pr);
	pr.sparsity = sparsity;
	pr.seed = 1;
	PassOptions po = {.training = training, .optimizer = training, .keep_loss = true,
			  .verify = true, .alignment = RT_ALIGN, .prune = &pr, .sparse_format = format};
	be_Options bo = {.opt_level = 2};
	Diag d;
	diag_init(&d);
	int rc = -1;
	if ((b->fe = fe_session_create()) && fe_compile_file(b->fe, MODEL, &fo, &b->g, &d) == 0 &&
	    pass_run_pipeline(b->g, &po, NULL, &d) == 0 && be_build_program(b->g, &bo, &b->p, &d) == 0)
		rc = 0;
	CHECK_MSG(rc == 0, "building the %s model", sparsity >= 0 ? "sparse" : "dense");
	show(&d);
	diag_free(&d);
	return rc;
}

static void built_free(Built *b)
{
	rt_program_destroy(b->p);
	ir_graph_destroy(b->g);
	fe_session_destroy(b->fe);
}

static float *slot(rt_Exec *e, const char *name, int64_t *n)
{
	rt_Tensor t;
	if (rt_exec_tensor(e, name, &t))
		return NULL;
	if (n)
		*n = rt_numel(&t);
	return t.data;
}

static void fill_batch(rt_Exec *e)
{
	rt_Tensor tok, tgt;
	CHECK(rt_exec_tensor(e, "tokens", &tok) == 0 && rt_exec_tensor(e, "targets", &tgt) == 0);
	for (int i = 0; i < BATCH * SEQ; i++) {
		((int32_t *)tok.data)[i] = (i * 37 + 11) % 256;
		((int32_t *)tgt.data)[i] = (i * 53 + 5) % 256;
	}
}

/* Sets the pruned entries of every sparse param (and, with moments, of
 * its AdamW moments) to a non-zero value. */
static void poison_pruned(rt_Exec *e, const Graph *g, bool moments)
{
	char name[512];
	for (size_t i = 0; i < g->mask.len; i++) {
		const Mask *m = &VEC_AT(g->mask, Mask, i);
		const char *pn = ir_str(g, ir_node(g, m->param)->name);
		const char *what[3] = {"", ".exp_avg", ".exp_avg_sq"};
		for (int k = 0; k < (moments ? 3 : 1); k++) {
			snprintf(name, sizeof name, "%s%s", pn, what[k]);
			int64_t n = 0;
			float *x = slot(e, name, &n);
			CHECK(x != NULL);
			for (int64_t j = 0; x && j < n; j++)
				if (!m->bits[j])
					x[j] = 0.25f + 0.001f * (float)(j % 7);
		}
	}
}

/* The number of spmm / sddmm steps of a program. */
static int sparse_steps(const rt_Program *p)
{
	int n = 0;
	for (size_t i = 0; i < p->step.len; i++) {
		const char *name = VEC_AT(p->step, rt_Step, i).name;
		n += strstr(name, "_spmm") || strstr(name, "_sddmm");
	}
	return n;
}

static void check_equivalence(SparseFormat format)
{
	Built sp = {0}, de = {0};
	if (build(&sp, 0.75, false, format) || build(&de, -1, false, SPF_MASKED))
		goto out;
	/* 2 layers x 4 weights, one forward product each */
	CHECK_MSG(sparse_steps(sp.p) == (format == SPF_MASKED ? 0 : 8), "%s: %d sparse kernels",
		  sparse_format_name[format], sparse_steps(sp.p));
	CHECK(sp.g->mask.len == 8 && de.g->mask.len == 0);
	rt_Pool *pool = rt_pool_create(1);
	rt_Exec *es = NULL, *ed = NULL;
	Diag d;
	diag_init(&d);
	if (!pool || rt_exec_create(sp.p, pool, &es, &d) || rt_exec_create(de.p, pool, &ed, &d)) {
		CHECK_MSG(0, "executors");
		goto done;
	}
	CHECK(rt_init_params(es, 1) == 0);
	/* The dense model gets the sparse one's (masked) weights. */
	for (size_t i = 0; i < de.p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(de.p->slot, rt_Slot, i);
		if (s->kind != RT_SLOT_PARAM)
			continue;
		int64_t n = 0, m = 0;
		float *src = slot(es, s->name, &n), *dst = slot(ed, s->name, &m);
		CHECK(src && dst && n == m);
		if (src && dst && n == m)
			memcpy(dst, src, (size_t)n * 4);
	}
	/* Garbage at the sparse model's pruned places must not matter. */
	poison_pruned(es, sp.g, false);
	fill_batch(es);
	fill_batch(ed);
	rt_exec_run(es);
	rt_exec_run(ed);
	int64_t n = 0, m = 0;
	const float *ls = slot(es, "logits", &n), *ld = slot(ed, "logits", &m);
	CHECK(ls && ld && n == m && n == BATCH * SEQ * 256);
	double worst = 0, scale = 0;
	for (int64_t i = 0; ls && ld && i < n; i++) {
		worst = fmax(worst, fabs((double)ls[i] - ld[i]));
		scale = fmax(scale, fabs((double)ld[i]));
	}
	CHECK_MSG(worst <= 1e-5 * scale, "%s: logits differ by %g (scale %g)",
		  sparse_format_name[format], worst, scale);
	float loss_s = *slot(es, "loss", NULL), loss_d = *slot(ed, "loss", NULL);
	CHECK_MSG(fabs(loss_s - loss_d) <= 1e-5 * fabs(loss_d), "%s: loss %.9g vs %.9g",
		  sparse_format_name[format], loss_s, loss_d);
	CHECK(isfinite(loss_s) && loss_s > 0);
done:
	show(&d);
	rt_exec_destroy(es);
	rt_exec_destroy(ed);
	rt_pool_destroy(pool);
out:
	built_free(&sp);
	built_free(&de);
}

static void test_equivalence(void)
{
	for (int f = SPF_MASKED; f < SPF_COUNT; f++)
		check_equivalence((SparseFormat)f);
}

/* Every covered param: exactly round(0.75 numel) zeros, all pruned ones. */
static int check_invariant(rt_Exec *e, const Graph *g, bool grads)
{
	int ok = 1;
	char name[512];
	for (size_t i = 0; i < g->mask.len; i++) {
		const Mask *m = &VEC_AT(g->mask, Mask, i);
		const char *pn = ir_str(g, ir_node(g, m->param)->name);
		int64_t numel = ir_numel(&ir_node(g, m->param)->shape), zeros, bad;
		ok &= rt_sparsity_check(e, pn, &zeros, &bad) == 0 && bad == 0 &&
		      zeros == (int64_t)llround(0.75 * (double)numel) && m->nkept == numel - zeros;
		if (!grads)
			continue;
		snprintf(name, sizeof name, "%s.grad", pn);
		int64_t n = 0;
		const float *gr = slot(e, name, &n);
		ok &= gr && n == numel;
		for (int64_t j = 0; gr && j < n; j++)
			ok &= m->bits[j] || gr[j] == 0.0f;
	}
	return ok;
}

/* One forward and backward (no update) of the masked program and of
 * `format`, from the same weights and batch: every gradient slot agrees,
 * and the sparse kernels' weight gradients are 0.0 at pruned positions. */
static void check_gradients(SparseFormat format)
{
	Built ref = {0}, sp = {0};
	if (build(&ref, 0.75, true, SPF_MASKED) || build(&sp, 0.75, true, format))
		goto out;
	CHECK(sparse_steps(sp.p) == 8 * 3);   /* forward, input and weight gradients */
	rt_Pool *pool = rt_pool_create(2);
	rt_Exec *er = NULL, *es = NULL;
	Diag d;
	diag_init(&d);
	if (!pool || rt_exec_create(ref.p, pool, &er, &d) || rt_exec_create(sp.p, pool, &es, &d) ||
	    rt_init_params(er, 3) || rt_init_params(es, 3)) {
		CHECK_MSG(0, "executors");
		goto done;
	}
	fill_batch(er);
	fill_batch(es);
	rt_exec_run_phase(er, RT_PHASE_FORWARD);
	rt_exec_run_phase(er, RT_PHASE_BACKWARD);
	rt_exec_run_phase(es, RT_PHASE_FORWARD);
	rt_exec_run_phase(es, RT_PHASE_BACKWARD);
	int nslot = 0;
	for (size_t i = 0; i < ref.p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(ref.p->slot, rt_Slot, i);
		if (s->kind != RT_SLOT_GRAD)
			continue;
		int64_t n = 0, m = 0;
		const float *gr = slot(er, s->name, &n), *gs = slot(es, s->name, &m);
		CHECK_MSG(gr && gs && n == m, "%s", s->name);
		double num = 0, den = 0;
		for (int64_t j = 0; gr && gs && n == m && j < n; j++) {
			num += ((double)gs[j] - gr[j]) * ((double)gs[j] - gr[j]);
			den += (double)gr[j] * gr[j];
		}
		double err = den > 0 ? sqrt(num / den) : sqrt(num);
		CHECK_MSG(err <= 1e-5, "%s: %s differs by %.3g (normwise relative)",
			  sparse_format_name[format], s->name, err);
		nslot++;
	}
	CHECK(nslot > 8);
	CHECK_MSG(check_invariant(es, sp.g, true), "%s: pruned gradients", sparse_format_name[format]);
done:
	show(&d);
	rt_exec_destroy(er);
	rt_exec_destroy(es);
	rt_pool_destroy(pool);
out:
	built_free(&ref);
	built_free(&sp);
}

static void test_gradients(void)
{
	check_gradients(SPF_CSR);
	check_gradients(SPF_UNROLLED);
}

static void test_training(void)
{
	Built b;
	if (build(&b, 0.75, true, SPF_CSR)) {
		built_free(&b);
		return;
	}
	static const char text[] = "the quick brown fox jumps over the lazy dog; "
				   "pack my box with five dozen liquor jugs. ";
	char buf[4096];
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = text[i % (sizeof text - 1)];
	rt_Data data = {0};
	rt_TrainConfig c;
	rt_train_defaults(&c);
	c.batch = BATCH;
	c.seq = SEQ;
	c.steps = STEPS;
	c.warmup = 2;
	c.lr = 3e-3;
	c.weight_decay = 0.1;
	c.clip = 1.0;
	c.eval_every = 0;
	c.run_dir = NULL;
	Diag d;
	diag_init(&d);
	rt_Pool *pool = rt_pool_create(2);
	rt_Exec *e = NULL;
	rt_Trainer *t = NULL;
	if (rt_data_from_bytes(buf, sizeof buf, 0.1, &data, &d) || !pool ||
	    rt_exec_create(b.p, pool, &e, &d) || rt_init_params(e, 1) ||
	    rt_trainer_create(e, &data, &c, &t, &d)) {
		CHECK_MSG(0, "trainer setup");
		goto out;
	}
	CHECK_MSG(check_invariant(e, b.g, false), "after init");
	/* Force the pruned weights and moments off zero: the masked update
	 * must bring them back to exactly zero in one step. */
	poison_pruned(e, b.g, true);
	double first = 0, last = 0;
	int good = 0;
	for (int s = 0; s < STEPS; s++) {
		rt_TrainStatus st;
		if (rt_trainer_step(t, &st, &d)) {
			CHECK_MSG(0, "step %d", s);
			break;
		}
		good += check_invariant(e, b.g, true);
		if (s == 0) {
			int zero = 1;
			char name[512];
			for (size_t i = 0; i < b.g->mask.len; i++) {
				const Mask *m = &VEC_AT(b.g->mask, Mask, i);
				const char *pn = ir_str(b.g, ir_node(b.g, m->param)->name);
				for (int k = 0; k < 2; k++) {
					snprintf(name, sizeof name, "%s%s", pn, k ? ".exp_avg_sq" : ".exp_avg");
					int64_t n = 0;
					const float *x = slot(e, name, &n);
					for (int64_t j = 0; x && j < n; j++)
						zero &= m->bits[j] || x[j] == 0.0f;
					zero &= x != NULL;
				}
			}
			CHECK_MSG(zero, "moments at pruned places after the first step");
			first = st.loss;
		}
		last = st.loss;
	}
	CHECK_MSG(good == STEPS, "the sparsity invariant held after %d of %d steps", good, STEPS);
	CHECK_MSG(isfinite(last) && last < first, "loss %g -> %g", first, last);
	/* Saved weights carry the masks beside them. */
	char path[] = "/tmp/msw_sparse_XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	if (fd >= 0) {
		close(fd);
		rt_TensorFile f;
		CHECK(rt_save_params(e, path, &d) == 0 && rt_safetensors_read(path, &f, &d) == 0);
		const Mask *m = &VEC_AT(b.g->mask, Mask, 0);
		char name[512];
		snprintf(name, sizeof name, "%s.mask", ir_str(b.g, ir_node(b.g, m->param)->name));
		const rt_NamedTensor *nt = rt_tensorfile_find(&f, name);
		CHECK_MSG(nt && nt->t.dtype == RT_U8 && rt_numel(&nt->t) ==
			  ir_numel(&ir_node(b.g, m->param)->shape) &&
			  !memcmp(nt->t.data, m->bits, (size_t)rt_numel(&nt->t)), "%s", name);
		/* And they load back into the same program. */
		CHECK(rt_load_params(e, path, &d) == 0);
		rt_tensorfile_free(&f);
		remove(path);
	}
out:
	show(&d);
	rt_trainer_destroy(t);
	rt_exec_destroy(e);
	rt_pool_destroy(pool);
	rt_data_free(&data);
	built_free(&b);
}

int main(void)
{
	RUN(test_equivalence);
	RUN(test_gradients);
	RUN(test_training);
	return check_report();
}
