/* test_trainer.c: the training loop of runtime/trainer.c on a program built
 * by hand, without the compiler.
 *
 * The program has the shape the backend gives a training program: a
 * parameter "w" f32[8], inputs tokens/targets i32[B,T], a loss, "w.grad",
 * the moments "w.exp_avg" / "w.exp_avg_sq" and "optim.hparams", in three
 * phases. Its kernels are plain C: the loss is the mean of
 * (w[token % 8] - target / 256)^2, the backward kernel its exact gradient,
 * the update kernel AdamW with clipping as docs/training.md specifies. A
 * "poison" kernel in the forward phase writes NaN when the test asks, so
 * the NaN hunt has something to find. What is checked is the trainer's
 * plumbing: the loss decreases, hparams reach the program, evaluation
 * leaves weights alone, checkpoint + resume are bitwise identical to an
 * uninterrupted run, metrics.csv has a row per step, a non-finite loss
 * stops the step before the update and names the poison kernel, and the
 * callback stops the run with a checkpoint. */
#include "../check.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"

enum { B = 2, T = 4, NW = 8 };
/* arena layout, in bytes */
enum {
	OFF_W = 0, OFF_G = 64, OFF_M = 128, OFF_V = 192, OFF_HP = 256, OFF_TOK = 320,
	OFF_TGT = 384, OFF_LOSS = 448, OFF_POISON = 512, ARENA = 576
};

static volatile int poison;

static void k_poison(void *const *buf, int64_t lo, int64_t hi)
{
	*(float *)buf[0] = poison ? NAN : 0.0f;
}

static void k_loss(void *const *buf, int64_t lo, int64_t hi)
{
	const float *w = buf[1], *p = buf[4];
	const int32_t *tok = buf[2], *tgt = buf[3];
	float s = 0;
	for (int i = 0; i < B * T; i++) {
		float e = w[tok[i] % NW] - (float)tgt[i] / 256;
		s += e * e;
	}
	*(float *)buf[0] = s / (B * T) + p[0];
}

static void k_grad(void *const *buf, int64_t lo, int64_t hi)
{
	float *g = buf[0];
	const float *w = buf[1];
	const int32_t *tok = buf[2], *tgt = buf[3];
	memset(g, 0, sizeof(float) * NW);
	for (int i = 0; i < B * T; i++)
		g[tok[i] % NW] += 2 * (w[tok[i] % NW] - (float)tgt[i] / 256) / (B * T);
}

static void k_adamw(void *const *buf, int64_t lo, int64_t hi)
{
	float *w = buf[0], *m = buf[2], *v = buf[3], *hp = buf[4];
	const float *g = buf[1];
	float ss = 0;
	for (int i = 0; i < NW; i++)
		ss += g[i] * g[i];
	float norm = sqrtf(ss), scale = 1;
	hp[RT_HP_GRAD_NORM] = norm;
	if (hp[RT_HP_CLIP] > 0 && norm > hp[RT_HP_CLIP])
		scale = hp[RT_HP_CLIP] / (norm + 1e-6f);
	for (int i = 0; i < NW; i++) {
		float gi = g[i] * scale;
		w[i] *= 1 - hp[RT_HP_LR] * hp[RT_HP_WEIGHT_DECAY];
		m[i] = hp[RT_HP_BETA1] * m[i] + (1 - hp[RT_HP_BETA1]) * gi;
		v[i] = hp[RT_HP_BETA2] * v[i] + (1 - hp[RT_HP_BETA2]) * gi * gi;
		float denom = sqrtf(v[i]) / sqrtf(hp[RT_HP_BIAS_CORR2]) + hp[RT_HP_EPS];
		w[i] -= hp[RT_HP_LR] / hp[RT_HP_BIAS_CORR1] * m[i] / denom;
	}
}

static void add_slot(rt_Program *p, const char *name, rt_SlotKind kind, rt_DType dt, int rank,
		     int64_t d0, int64_t d1, int64_t off)
{
	rt_Slot s = {.name = (char *)name, .kind = kind, .dtype = dt, .rank = rank,
		     .dim = {d0, d1}, .offset = off, .decay = true};
	rt_Tensor t = {.dtype = dt, .rank = rank, .dim = {d0, d1}};
	s.nbytes = rt_nbytes(&t);
	CHECK(rt_program_add_slot(p, &s) == 0);
}

static rt_Program *make_program(void)
{
	rt_Program *p = rt_program_create();
	p->arena_size = ARENA;
	add_slot(p, "w", RT_SLOT_PARAM, RT_F32, 1, NW, 0, OFF_W);
	add_slot(p, "w.grad", RT_SLOT_GRAD, RT_F32, 1, NW, 0, OFF_G);
	add_slot(p, "w.exp_avg", RT_SLOT_OPTIM, RT_F32, 1, NW, 0, OFF_M);
	add_slot(p, "w.exp_avg_sq", RT_SLOT_OPTIM, RT_F32, 1, NW, 0, OFF_V);
	add_slot(p, "optim.hparams", RT_SLOT_HPARAMS, RT_F32, 1, RT_HP_COUNT, 0, OFF_HP);
	add_slot(p, "tokens", RT_SLOT_INPUT, RT_I32, 2, B, T, OFF_TOK);
	add_slot(p, "targets", RT_SLOT_INPUT, RT_I32, 2, B, T, OFF_TGT);
	add_slot(p, "loss", RT_SLOT_LOSS, RT_F32, 0, 0, 0, OFF_LOSS);
	int64_t a_poison[] = {OFF_POISON};
	int64_t a_loss[] = {OFF_LOSS, OFF_W, OFF_TOK, OFF_TGT, OFF_POISON};
	int64_t a_grad[] = {OFF_G, OFF_W, OFF_TOK, OFF_TGT};
	int64_t a_upd[] = {OFF_W, OFF_G, OFF_M, OFF_V, OFF_HP};
	CHECK(rt_program_add_step(p, k_poison, 1, a_poison, 1, "k0_poison", 1) == 0);
	CHECK(rt_program_add_step(p, k_loss, 1, a_loss, 5, "k1_loss", 1) == 0);
	CHECK(rt_program_add_step(p, k_grad, 1, a_grad, 4, "k2_grad", 1) == 0);
	CHECK(rt_program_add_step(p, k_adamw, 1, a_upd, 5, "k3_adamw", 1) == 0);
	for (size_t i = 0; i < p->step.len; i++) {
		rt_Step *st = &VEC_AT(p->step, rt_Step, i);
		st->out_dtype = RT_F32;
		st->out_nbytes = i == 0 || i == 1 ? 4 : 4 * NW;
	}
	p->phase_start[RT_PHASE_FORWARD] = 0;
	p->phase_start[RT_PHASE_BACKWARD] = 2;
	p->phase_start[RT_PHASE_UPDATE] = 3;
	p->phase_start[RT_PHASE_COUNT] = 4;
	return p;
}

static rt_Program *prog;
static rt_Data data;

static void config(rt_TrainConfig *c, const char *run)
{
	rt_train_defaults(c);
	c->batch = B;
	c->seq = T;
	c->steps = 12;
	c->warmup = 2;
	c->lr = 0.05;
	c->eval_every = 4;
	c->eval_batches = 2;
	c->save_every = 4;
	c->run_dir = run;
}

typedef struct Result {
	float w[NW];
	double loss[64];
	int rc;
} Result;

static int collect(void *user, const rt_TrainStatus *st)
{
	Result *r = user;
	r->loss[st->step - 1] = st->loss;
	return 0;
}

static int stop_at_6(void *user, const rt_TrainStatus *st)
{
	collect(user, st);
	return st->step == 6;
}

/* A run on a fresh executor; resumes when the run folder has a checkpoint. */
static void run(const char *dir, rt_TrainCallback cb, Result *r)
{
	rt_TrainConfig c;
	rt_Exec *e = NULL;
	rt_Trainer *t = NULL;
	rt_Checkpoint ck;
	Diag d;
	diag_init(&d);
	config(&c, dir);
	r->rc = -9;
	CHECK(rt_exec_create(prog, NULL, &e, &d) == 0);
	float *w = (float *)((char *)rt_exec_arena(e) + OFF_W);
	for (int i = 0; i < NW; i++)
		w[i] = 0.1f * (float)i;
	CHECK(rt_trainer_create(e, &data, &c, &t, &d) == 0);
	int have = dir ? rt_checkpoint_load_latest(dir, &ck, &d) : 1;
	CHECK(have >= 0);
	if (have == 0) {
		CHECK(rt_trainer_resume(t, &ck, &d) == 0);
		rt_checkpoint_free(&ck);
	}
	if (t)
		r->rc = rt_trainer_run(t, cb, r, &d);
	memcpy(r->w, w, sizeof r->w);
	if (d.nerror)
		fprintf(stderr, "%s", diag_text(&d));
	rt_trainer_destroy(t);
	rt_exec_destroy(e);
	diag_free(&d);
}

static Result plain;

static void test_loss_decreases(void)
{
	run(NULL, collect, &plain);
	CHECK(plain.rc == 0);
	CHECK_MSG(plain.loss[11] < plain.loss[0] * 0.8, "loss %.6f -> %.6f", plain.loss[0],
		  plain.loss[11]);
}

static int count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	int n = 0, ch;
	if (!f)
		return -1;
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

static void test_interrupt_and_resume_bitwise(void)
{
	char dir[] = "/tmp/msw_trainer_XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char runp[64], path[128];
	snprintf(runp, sizeof runp, "%s/run", dir);
	Result a = {0}, b = {0};
	run(runp, stop_at_6, &a);
	CHECK_MSG(a.rc == 1, "stopped by the callback: rc %d", a.rc);
	rt_Checkpoint ck;
	Diag d;
	diag_init(&d);
	CHECK(rt_checkpoint_load_latest(runp, &ck, &d) == 0 && ck.step == 6);
	rt_checkpoint_free(&ck);
	run(runp, collect, &b);
	CHECK(b.rc == 0);
	CHECK_MSG(!memcmp(b.w, plain.w, sizeof b.w), "resumed weights differ");
	for (int s = 0; s < 12; s++)
		CHECK_MSG((s < 6 ? a.loss[s] : b.loss[s]) == plain.loss[s], "step %d loss", s + 1);
	snprintf(path, sizeof path, "%s/metrics.csv", runp);
	CHECK_MSG(count_lines(path) == 13, "metrics.csv has %d lines, want header + 12",
		  count_lines(path));
	snprintf(path, sizeof path, "%s/last.safetensors", runp);
	rt_TensorFile f;
	CHECK(rt_safetensors_read(path, &f, &d) == 0);
	const rt_NamedTensor *nt = rt_tensorfile_find(&f, "w");
	CHECK(nt && !memcmp(nt->t.data, plain.w, sizeof plain.w));
	rt_tensorfile_free(&f);
	diag_free(&d);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

static void test_nonfinite_names_kernel(void)
{
	rt_TrainConfig c;
	rt_Exec *e = NULL;
	rt_Trainer *t = NULL;
	rt_TrainStatus st;
	Diag d;
	diag_init(&d);
	config(&c, NULL);
	CHECK(rt_exec_create(prog, NULL, &e, &d) == 0);
	CHECK(rt_trainer_create(e, &data, &c, &t, &d) == 0);
	if (!t)
		return;
	CHECK(rt_trainer_step(t, &st, &d) == 0);
	float before[NW];
	memcpy(before, (char *)rt_exec_arena(e) + OFF_W, sizeof before);
	poison = 1;
	CHECK(rt_trainer_step(t, &st, &d) == 1);
	poison = 0;
	CHECK_MSG(strstr(diag_text(&d), "k0_poison") && strstr(diag_text(&d), "step 2"),
		  "message: %s", diag_text(&d));
	CHECK(!memcmp(before, (char *)rt_exec_arena(e) + OFF_W, sizeof before));
	CHECK(rt_trainer_step_count(t) == 1);
	/* Evaluation leaves weights alone. */
	double vl = rt_trainer_eval(t, 0, &d);
	CHECK(isfinite(vl));
	CHECK(!memcmp(before, (char *)rt_exec_arena(e) + OFF_W, sizeof before));
	rt_trainer_destroy(t);
	rt_exec_destroy(e);
	diag_free(&d);
}

static void test_rejects_forward_only_program(void)
{
	rt_Program *p = make_program();
	memset(p->phase_start, 0, sizeof p->phase_start);
	rt_TrainConfig c;
	rt_Exec *e = NULL;
	rt_Trainer *t = NULL;
	Diag d;
	diag_init(&d);
	config(&c, NULL);
	CHECK(rt_exec_create(p, NULL, &e, &d) == 0);
	CHECK(rt_trainer_create(e, &data, &c, &t, &d) != 0 && !t);
	CHECK(strstr(diag_text(&d), "update phase") != NULL);
	c.batch = 3;   /* the program's inputs are [2, 4] */
	p->phase_start[RT_PHASE_COUNT] = 4;
	p->phase_start[RT_PHASE_UPDATE] = 3;
	CHECK(rt_trainer_create(e, &data, &c, &t, &d) != 0 && !t);
	rt_exec_destroy(e);
	rt_program_destroy(p);
	diag_free(&d);
}

int main(void)
{
	char text[4096];
	for (size_t i = 0; i < sizeof text; i++)
		text[i] = (char)('a' + (i * 7 + i / 13) % 26);
	Diag d;
	diag_init(&d);
	CHECK(rt_data_from_bytes(text, sizeof text, 0.1, &data, &d) == 0);
	prog = make_program();
	RUN(test_loss_decreases);
	RUN(test_interrupt_and_resume_bitwise);
	RUN(test_nonfinite_names_kernel);
	RUN(test_rejects_forward_only_program);
	rt_program_destroy(prog);
	rt_data_free(&data);
	diag_free(&d);
	return check_report();
}
