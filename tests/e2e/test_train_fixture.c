/* test_train_fixture.c: mswc's trainer against PyTorch.
 *
 * tests/fixtures/gpt_train was made by tools/torch_train_reference.py: the
 * independent GPT-2 of tools/gpt_reference.py, from the weights of
 * tests/fixtures/gpt_small, trained in float64 with torch.optim.AdamW and
 * clip_grad_norm_ for 10 steps on the sequential batches (2 x 16) of
 * text.txt, with the schedule of docs/training.md. This test compiles
 * models/gpt.msw for training (backward graph and AdamW update phase),
 * drives it with the runtime's trainer (the library, not the CLI) on the
 * same data and configuration, and checks
 *   - the schedule: rt_train_lr rounded to f32 equals the reference's lr,
 *     bit for bit (both evaluate the formula in double);
 *   - the gradients of step 1 (forward + backward phases only), per tensor,
 *     normwise relative error < 1e-4;
 *   - the loss of every step (relative 1e-5), the gradient norm before
 *     clipping (relative 1e-4), and the final weights (|got - want| <=
 *     1e-5 + 1e-5 |want| elementwise);
 *   - determinism: 1 and 2 threads give bitwise-identical weights;
 *   - resume: 5 steps, a checkpoint, a fresh executor resumed from it for
 *     the other 5, gives weights and losses bitwise equal to the
 *     uninterrupted run;
 *   - freezing by glob (fe_Options.freeze): no gradient slots for the
 *     frozen parameters, which stay bitwise unchanged while the rest train.
 * The reference is float64, so the differences measure mswc's float32
 * arithmetic alone; float32 PyTorch drifts from it by ~1e-7 in the losses
 * and ~3e-6 in the weights over these steps (torch_train_reference.py
 * --compare-f32), which sets the scale of the tolerances. */
#include "../check.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "frontend/fe.h"
#include "passes/passes.h"
#include "runtime/rt.h"

#define FIXTURE MSW_SOURCE_DIR "/tests/fixtures/gpt_train"
#define WEIGHTS MSW_SOURCE_DIR "/tests/fixtures/gpt_small/weights.safetensors"
#define MODEL MSW_SOURCE_DIR "/models/gpt.msw"

enum { STEPS = 10, BATCH = 2, SEQ = 16 };

static void show_diag(const char *what, Diag *d)
{
	if (d->nerror || d->len)
		fprintf(stderr, "%s:\n%s", what, diag_text(d));
	diag_free(d);
	diag_init(d);
}

/* The configuration torch_train_reference.py uses by default. */
static void fixture_config(rt_TrainConfig *c)
{
	rt_train_defaults(c);
	c->batch = BATCH;
	c->seq = SEQ;
	c->steps = STEPS;
	c->warmup = 3;
	c->schedule = RT_SCHED_COSINE;
	c->lr = 1e-3;
	c->weight_decay = 0.1;
	c->beta1 = 0.9;
	c->beta2 = 0.95;
	c->eps = 1e-8;
	c->clip = 2.5;
	c->order = RT_ORDER_SEQUENTIAL;
	c->val_fraction = 0.05;
}

static int read_npy(const char *name, rt_Tensor *t, int64_t n)
{
	char path[1024];
	Diag d;
	diag_init(&d);
	snprintf(path, sizeof path, "%s/%s", FIXTURE, name);
	int rc = rt_npy_read(path, t, &d);
	CHECK_MSG(rc == 0, "reading %s", path);
	show_diag(path, &d);
	if (rc)
		return -1;
	CHECK_MSG(t->dtype == RT_F32 && rt_numel(t) == n, "%s: %s numel %lld, want f32 %lld", name,
		  rt_dtype_name(t->dtype), (long long)rt_numel(t), (long long)n);
	return t->dtype == RT_F32 && rt_numel(t) == n ? 0 : -1;
}

/* --- without the backend: schedule and configuration --- */

static void test_schedule_matches_reference(void)
{
	rt_TrainConfig c;
	rt_Tensor lrs = {0};
	fixture_config(&c);
	if (read_npy("lrs.npy", &lrs, STEPS))
		return;
	int same = 0;
	for (int s = 0; s < STEPS; s++) {
		float want = ((const float *)lrs.data)[s], got = (float)rt_train_lr(&c, s);
		same += !memcmp(&want, &got, sizeof got);
		if (memcmp(&want, &got, sizeof got))
			fprintf(stderr, "lr of step %d: %.9g, reference %.9g\n", s, got, want);
	}
	CHECK_MSG(same == STEPS, "%d of %d learning rates differ from the reference", STEPS - same,
		  STEPS);
	/* The shape of the schedule: warm-up from lr/warmup, peak, 10% floor. */
	CHECK_NEAR(rt_train_lr(&c, 0), 1e-3 / 3, 1e-18);
	CHECK_NEAR(rt_train_lr(&c, 2), 1e-3, 1e-18);
	CHECK_NEAR(rt_train_lr(&c, STEPS - 1), 1e-4, 1e-18);
	c.schedule = RT_SCHED_CONSTANT;
	CHECK_NEAR(rt_train_lr(&c, STEPS - 1), 1e-3, 0);
	float hp[RT_HP_COUNT];
	fixture_config(&c);
	rt_train_hparams(&c, 1, hp);
	CHECK(hp[RT_HP_BIAS_CORR1] == (float)(1 - 0.9 * 0.9));
	CHECK(hp[RT_HP_BIAS_CORR2] == (float)(1 - 0.95 * 0.95));
	CHECK(hp[RT_HP_CLIP] == 2.5f && hp[RT_HP_WEIGHT_DECAY] == 0.1f && hp[RT_HP_GRAD_NORM] == 0);
	rt_tensor_free(&lrs);
}

static void test_config_json_round_trip(void)
{
	rt_TrainConfig a, b;
	Diag d;
	diag_init(&d);
	fixture_config(&a);
	a.seed = 0xfedcba9876543210ULL;   /* beyond a double's 53 bits */
	a.lr = 0.1 + 0.2;                 /* not a short decimal */
	a.eval_every = 7;
	char *json = rt_train_config_json(&a);
	CHECK(json != NULL);
	if (!json)
		return;
	rt_train_defaults(&b);
	CHECK(rt_train_config_parse(json, &b, &d) == 0);
	show_diag("config", &d);
	CHECK(b.seed == a.seed && b.lr == a.lr && b.batch == a.batch && b.seq == a.seq);
	CHECK(b.order == RT_ORDER_SEQUENTIAL && b.schedule == RT_SCHED_COSINE);
	CHECK(b.clip == a.clip && b.eps == a.eps && b.eval_every == 7 && b.warmup == 3);
	mem_free(json);
	CHECK(rt_train_config_parse("{\"lr\":\"fast\"}", &b, &d) != 0);
	CHECK(rt_train_config_parse("[1]", &b, &d) != 0);
	diag_free(&d);
}

/* --- with the backend --- */

typedef struct Setup {
	fe_Session *fe;
	Graph *g;
	rt_Program *p;
	rt_Data data;
	bool ok;
} Setup;

static Setup setup;

static int compile_training_program(void)
{
	static const fe_Define defs[] = {
		{"vocab", "256"}, {"ctx", "64"}, {"d", "64"}, {"heads", "4"}, {"layers", "2"},
	};
	fe_InputShape in[2] = {{.name = "tokens", .rank = 2, .dim = {BATCH, SEQ}},
			       {.name = "targets", .rank = 2, .dim = {BATCH, SEQ}}};
	fe_Options fo = {.def = defs, .ndef = 5, .input = in, .ninput = 2};
	PassOptions po = {.training = true, .optimizer = true, .verify = true,
			  .alignment = RT_ALIGN};
	be_Options bo = {.opt_level = 3};
	Diag d;
	diag_init(&d);
	int rc = -1;
	if (!(setup.fe = fe_session_create()))
		goto done;
	if (fe_compile_file(setup.fe, MODEL, &fo, &setup.g, &d)) {
		CHECK_MSG(0, "compiling %s", MODEL);
		goto done;
	}
	if (pass_run_pipeline(setup.g, &po, NULL, &d)) {
		CHECK_MSG(0, "pass pipeline (training)");
		goto done;
	}
	if (be_build_program(setup.g, &bo, &setup.p, &d)) {
		CHECK_MSG(0, "be_build_program with the optimiser");
		goto done;
	}
	if (rt_data_load(FIXTURE "/text.txt", 0.05, &setup.data, &d)) {
		CHECK_MSG(0, "rt_data_load(text.txt)");
		goto done;
	}
	rc = 0;
done:
	show_diag("setup", &d);
	return rc;
}

/* An executor on `nthreads` holding the fixture's starting weights. */
static rt_Exec *make_exec(int nthreads, rt_Pool **pool)
{
	Diag d;
	diag_init(&d);
	rt_Exec *e = NULL;
	*pool = rt_pool_create(nthreads);
	if (!*pool || rt_exec_create(setup.p, *pool, &e, &d) || rt_load_params(e, WEIGHTS, &d)) {
		CHECK_MSG(0, "executor with the starting weights");
		rt_exec_destroy(e);
		e = NULL;
	}
	show_diag("exec", &d);
	return e;
}

static double rel_norm(const float *got, const float *want, int64_t n)
{
	double num = 0, den = 0;
	for (int64_t i = 0; i < n; i++) {
		double e = (double)got[i] - want[i];
		num += e * e;
		den += (double)want[i] * want[i];
	}
	return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void test_step1_gradients(void)
{
	if (!setup.ok)
		return;
	rt_Pool *pool;
	rt_Exec *e = make_exec(2, &pool);
	rt_TensorFile want = {0};
	rt_TrainConfig c;
	Diag d;
	diag_init(&d);
	fixture_config(&c);
	if (!e)
		goto done;
	rt_Tensor tok, tgt;
	CHECK(rt_exec_tensor(e, "tokens", &tok) == 0 && rt_exec_tensor(e, "targets", &tgt) == 0);
	CHECK(rt_data_batch(&setup.data, c.order, c.seed, 0, BATCH, SEQ, tok.data, tgt.data, &d) == 0);
	rt_exec_run_phase(e, RT_PHASE_FORWARD);
	rt_exec_run_phase(e, RT_PHASE_BACKWARD);
	if (rt_safetensors_read(FIXTURE "/grads_step1.safetensors", &want, &d)) {
		CHECK_MSG(0, "reading grads_step1.safetensors");
		goto done;
	}
	double worst = 0;
	const char *worst_name = "";
	int ngrad = 0;
	for (int i = 0; i < want.ntensor; i++) {
		char name[256];
		snprintf(name, sizeof name, "%s.grad", want.tensor[i].name);
		rt_Tensor g;
		if (rt_exec_tensor(e, name, &g)) {
			CHECK_MSG(0, "the program has no gradient slot '%s'", name);
			continue;
		}
		CHECK_MSG(rt_numel(&g) == rt_numel(&want.tensor[i].t), "%s: size", name);
		if (rt_numel(&g) != rt_numel(&want.tensor[i].t))
			continue;
		double r = rel_norm(g.data, want.tensor[i].t.data, rt_numel(&g));
		CHECK_MSG(r < 1e-4, "%s: normwise relative error %.3e >= 1e-4", name, r);
		if (!(r <= worst)) {
			worst = r;
			worst_name = want.tensor[i].name;
		}
		ngrad++;
	}
	printf("step-1 gradients: %d tensors, worst normwise rel error %.3e (%s)\n", ngrad, worst,
	       worst_name);
done:
	show_diag("step-1 gradients", &d);
	if (want.ntensor)
		rt_tensorfile_free(&want);
	rt_exec_destroy(e);
	rt_pool_destroy(pool);
}

/* Train from the starting weights: steps [from, to) on a fresh executor,
 * resuming from run_dir's checkpoint when from > 0. Copies out the
 * parameters (all of them, concatenated) and the per-step status. */
typedef struct Run {
	float *w;
	int64_t nw;
	rt_TrainStatus st[STEPS];
} Run;

static int train(int nthreads, const char *run_dir, int64_t from, int64_t to, Run *out)
{
	rt_Pool *pool;
	rt_Exec *e = make_exec(nthreads, &pool);
	rt_Trainer *t = NULL;
	rt_Checkpoint ck;
	bool have_ck = false;
	rt_TrainConfig c;
	Diag d;
	diag_init(&d);
	int rc = -1;
	fixture_config(&c);
	c.steps = STEPS;
	c.run_dir = run_dir;
	c.save_every = run_dir ? 5 : 0;
	if (!e || rt_trainer_create(e, &setup.data, &c, &t, &d)) {
		CHECK_MSG(0, "rt_trainer_create");
		goto done;
	}
	if (from > 0) {
		have_ck = rt_checkpoint_load_latest(run_dir, &ck, &d) == 0;
		CHECK_MSG(have_ck && ck.step == from, "a checkpoint of step %lld", (long long)from);
		if (!have_ck || rt_trainer_resume(t, &ck, &d))
			goto done;
	}
	for (int64_t s = from; s < to; s++) {
		int r = rt_trainer_step(t, &out->st[s], &d);
		CHECK_MSG(r == 0, "rt_trainer_step %lld returned %d", (long long)s, r);
		if (r)
			goto done;
		if (run_dir && (s + 1) % c.save_every == 0 && rt_trainer_save(t, &d)) {
			CHECK_MSG(0, "rt_trainer_save");
			goto done;
		}
	}
	const rt_Program *p = rt_exec_program(e);
	out->nw = 0;
	for (size_t i = 0; i < p->slot.len; i++)
		if (VEC_AT(p->slot, rt_Slot, i).kind == RT_SLOT_PARAM)
			out->nw += VEC_AT(p->slot, rt_Slot, i).nbytes / 4;
	out->w = mem_alloc(sizeof(float) * (size_t)out->nw);
	if (!out->w)
		goto done;
	int64_t at = 0;
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		if (s->kind != RT_SLOT_PARAM)
			continue;
		memcpy(out->w + at, (char *)rt_exec_arena(e) + s->offset, (size_t)s->nbytes);
		at += s->nbytes / 4;
	}
	rc = 0;
done:
	show_diag("train", &d);
	if (have_ck)
		rt_checkpoint_free(&ck);
	rt_trainer_destroy(t);
	rt_exec_destroy(e);
	rt_pool_destroy(pool);
	return rc;
}

static Run full1;   /* 1 thread, uninterrupted: compared with everything else */

static void test_train_matches_torch(void)
{
	if (!setup.ok)
		return;
	rt_Tensor losses = {0}, norms = {0};
	rt_TensorFile want = {0};
	Diag d;
	diag_init(&d);
	if (read_npy("losses.npy", &losses, STEPS) || read_npy("grad_norms.npy", &norms, STEPS) ||
	    train(1, NULL, 0, STEPS, &full1))
		goto done;
	double worst_loss = 0, worst_norm = 0;
	for (int s = 0; s < STEPS; s++) {
		double wl = ((const float *)losses.data)[s], wn = ((const float *)norms.data)[s];
		double rl = fabs(full1.st[s].loss - wl) / fabs(wl);
		double rn = fabs(full1.st[s].grad_norm - wn) / fabs(wn);
		printf("step %2d: loss %.7f (torch %.7f, rel %.2e)  grad norm %.5f (torch %.5f, rel "
		       "%.2e)\n", s + 1, full1.st[s].loss, wl, rl, full1.st[s].grad_norm, wn, rn);
		CHECK_MSG(rl < 1e-5, "step %d: loss rel error %.3e >= 1e-5", s + 1, rl);
		CHECK_MSG(rn < 1e-4, "step %d: grad norm rel error %.3e >= 1e-4", s + 1, rn);
		worst_loss = fmax(worst_loss, rl);
		worst_norm = fmax(worst_norm, rn);
	}
	if (rt_safetensors_read(FIXTURE "/final.safetensors", &want, &d)) {
		CHECK_MSG(0, "reading final.safetensors");
		goto done;
	}
	/* Parameters in slot order, matched by name. */
	const rt_Program *p = setup.p;
	int64_t at = 0, nbad = 0;
	double worst = 0;
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		if (s->kind != RT_SLOT_PARAM)
			continue;
		const rt_NamedTensor *nt = rt_tensorfile_find(&want, s->name);
		int64_t n = s->nbytes / 4;
		CHECK_MSG(nt && rt_numel(&nt->t) == n, "final weights: '%s'", s->name);
		for (int64_t k = 0; nt && rt_numel(&nt->t) == n && k < n; k++) {
			double w = ((const float *)nt->t.data)[k], g = full1.w[at + k];
			double err = fabs(g - w);
			worst = fmax(worst, err);
			nbad += !(err <= 1e-5 + 1e-5 * fabs(w));
		}
		at += n;
	}
	printf("torch fixture: losses worst rel %.2e, grad norms worst rel %.2e, final weights "
	       "worst abs %.2e\n", worst_loss, worst_norm, worst);
	CHECK_MSG(nbad == 0, "%lld final weights differ by more than 1e-5 + 1e-5 |w|",
		  (long long)nbad);
done:
	show_diag("fixture", &d);
	rt_tensor_free(&losses);
	rt_tensor_free(&norms);
	if (want.ntensor)
		rt_tensorfile_free(&want);
}

static void test_threads_bitwise(void)
{
	if (!setup.ok || !full1.w)
		return;
	Run r2 = {0};
	if (train(2, NULL, 0, STEPS, &r2))
		return;
	CHECK(r2.nw == full1.nw);
	CHECK_MSG(r2.nw == full1.nw && !memcmp(r2.w, full1.w, sizeof(float) * (size_t)r2.nw),
		  "1 and 2 threads train different weights");
	for (int s = 0; s < STEPS; s++)
		CHECK_MSG(!memcmp(&r2.st[s].loss, &full1.st[s].loss, sizeof(double)),
			  "step %d: loss differs between 1 and 2 threads", s + 1);
	mem_free(r2.w);
}

static void test_resume_bitwise(void)
{
	if (!setup.ok || !full1.w)
		return;
	char dir[] = "/tmp/msw_train_resume_XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char run[sizeof dir + 8];
	snprintf(run, sizeof run, "%s/run", dir);
	Run a = {0}, b = {0};
	if (train(1, run, 0, 5, &a) == 0 && train(1, run, 5, STEPS, &b) == 0) {
		CHECK(b.nw == full1.nw);
		CHECK_MSG(b.nw == full1.nw && !memcmp(b.w, full1.w, sizeof(float) * (size_t)b.nw),
			  "resumed at step 5: weights differ from the uninterrupted run");
		for (int s = 0; s < STEPS; s++) {
			double l = s < 5 ? a.st[s].loss : b.st[s].loss;
			CHECK_MSG(!memcmp(&l, &full1.st[s].loss, sizeof l), "step %d: loss differs after "
				  "resume: %.9g vs %.9g", s + 1, l, full1.st[s].loss);
		}
	}
	mem_free(a.w);
	mem_free(b.w);
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

/* --freeze: the frontend freezes parameters by glob; they get no gradient,
 * no moments, no update, and the others still train. */
static void test_freeze(void)
{
	static const fe_Define defs[] = {
		{"vocab", "256"}, {"ctx", "64"}, {"d", "64"}, {"heads", "4"}, {"layers", "2"},
	};
	static const char *const freeze[] = {"h.0.*", "wpe.weight"}, *const none[] = {"nothing.*"};
	fe_InputShape in[2] = {{.name = "tokens", .rank = 2, .dim = {BATCH, SEQ}},
			       {.name = "targets", .rank = 2, .dim = {BATCH, SEQ}}};
	fe_Options fo = {.def = defs, .ndef = 5, .input = in, .ninput = 2, .freeze = none,
			 .nfreeze = 1};
	PassOptions po = {.training = true, .optimizer = true, .verify = true,
			  .alignment = RT_ALIGN};
	be_Options bo = {.opt_level = 3};
	fe_Session *fe = fe_session_create();
	Graph *g = NULL;
	rt_Program *p = NULL;
	rt_Pool *pool = NULL;
	rt_Exec *e = NULL;
	rt_Trainer *t = NULL;
	rt_TensorFile w0 = {0};
	Diag d;
	diag_init(&d);
	CHECK(fe_compile_file(fe, MODEL, &fo, &g, &d) != 0 && !g);
	CHECK(strstr(diag_text(&d), "'nothing.*' matches no parameter") != NULL);
	diag_free(&d);
	diag_init(&d);
	fo.freeze = freeze;
	fo.nfreeze = 2;
	if (fe_compile_file(fe, MODEL, &fo, &g, &d) || pass_run_pipeline(g, &po, NULL, &d) ||
	    be_build_program(g, &bo, &p, &d) || !(pool = rt_pool_create(2)) ||
	    rt_exec_create(p, pool, &e, &d) || rt_load_params(e, WEIGHTS, &d) ||
	    rt_safetensors_read(WEIGHTS, &w0, &d)) {
		CHECK_MSG(0, "compiling and loading with --freeze");
		goto done;
	}
	CHECK(!rt_program_find(p, "h.0.attn.c_attn.weight.grad"));
	CHECK(!rt_program_find(p, "h.0.ln_1.weight.exp_avg"));
	CHECK(!rt_program_find(p, "wpe.weight.grad"));
	CHECK(rt_program_find(p, "h.1.attn.c_attn.weight.grad") != NULL);
	rt_TrainConfig c;
	rt_TrainStatus st;
	fixture_config(&c);
	if (rt_trainer_create(e, &setup.data, &c, &t, &d)) {
		CHECK_MSG(0, "rt_trainer_create (frozen)");
		goto done;
	}
	CHECK(rt_trainer_step(t, &st, &d) == 0 && rt_trainer_step(t, &st, &d) == 0);
	int nfrozen = 0, nsame = 0, ntrained = 0, nmoved = 0;
	for (int i = 0; i < w0.ntensor; i++) {
		rt_Tensor now;
		const char *name = w0.tensor[i].name;
		if (rt_exec_tensor(e, name, &now))
			continue;
		bool same = !memcmp(now.data, w0.tensor[i].t.data, (size_t)rt_nbytes(&now));
		if (!strncmp(name, "h.0.", 4) || !strcmp(name, "wpe.weight")) {
			nfrozen++;
			nsame += same;
		} else {
			ntrained++;
			nmoved += !same;
		}
	}
	CHECK_MSG(nfrozen == 13 && nsame == nfrozen, "%d of %d frozen tensors unchanged", nsame,
		  nfrozen);
	CHECK_MSG(ntrained == 15 && nmoved == ntrained, "%d of %d trained tensors changed", nmoved,
		  ntrained);
done:
	show_diag("freeze", &d);
	if (w0.ntensor)
		rt_tensorfile_free(&w0);
	rt_trainer_destroy(t);
	rt_exec_destroy(e);
	rt_pool_destroy(pool);
	rt_program_destroy(p);
	ir_graph_destroy(g);
	fe_session_destroy(fe);
}

int main(void)
{
	RUN(test_schedule_matches_reference);
	RUN(test_config_json_round_trip);
	setup.ok = compile_training_program() == 0;
	RUN(test_step1_gradients);
	RUN(test_train_matches_torch);
	RUN(test_threads_bitwise);
	RUN(test_resume_bitwise);
	if (setup.ok)
		RUN(test_freeze);
	mem_free(full1.w);
	rt_data_free(&setup.data);
	rt_program_destroy(setup.p);
	ir_graph_destroy(setup.g);
	if (setup.fe)
		fe_session_destroy(setup.fe);
	return check_report();
}
