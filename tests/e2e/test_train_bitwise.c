/* test_train_bitwise.c: training is bitwise what it was.
 *
 * A regression fixture, and the one kind of test here whose expected
 * values come from the code itself: tests/fixtures/train_bitwise/hashes.txt
 * was recorded from the training step as it was before the optimiser
 * became IR (the update phase then built by backend/emit_optim.c, commit
 * 01a12e6), and every later version of the compiler must reproduce it bit
 * for bit. It does not say the numbers are right: test_train_fixture.c
 * checks the same trainer against PyTorch with tolerances. It says a
 * refactoring changed nothing, which tolerances cannot.
 *
 * Configurations: models/gpt.msw at the size of the PyTorch fixture (vocab
 * 256, ctx 64, d 64, 4 heads, 2 layers) from tests/fixtures/gpt_small's
 * weights, the trainer library on sequential 2 x 16 batches of
 * tests/fixtures/gpt_train/text.txt, 10 steps, the PyTorch fixture's
 * optimiser settings (lr 1e-3, warm-up 3, cosine, wd 0.1, clip 2.5); dense,
 * and 75% sparse (uniform random masks, seed 1, the masked kernels); each
 * on 1 and 2 threads. Recorded per configuration: the xxh3-128 of the ten
 * losses (as doubles) and the ten gradient norms, and of every parameter,
 * "<p>.exp_avg" and "<p>.exp_avg_sq" after the last step. 1 and 2 threads
 * must both match the one recorded set.
 *
 * The code is compiled for a fixed target (haswell: AVX2 and FMA, 8 f32
 * lanes), not the host, because vector width decides the order of sums:
 * the fixture then holds on every x86-64 host with AVX2 and FMA, and the
 * test says it skips elsewhere. MSW_BITWISE_HOST=1 uses the host target
 * instead (with MSW_BITWISE_FILE=path naming the hashes to compare with),
 * and MSW_BITWISE_RECORD=path writes the hashes to path instead of
 * checking them; both are for checking a change on one machine. */
#include "../check.h"

#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "frontend/fe.h"
#include "passes/passes.h"
#include "runtime/rt.h"

#define HASHES MSW_SOURCE_DIR "/tests/fixtures/train_bitwise/hashes.txt"
#define TEXT MSW_SOURCE_DIR "/tests/fixtures/gpt_train/text.txt"
#define WEIGHTS MSW_SOURCE_DIR "/tests/fixtures/gpt_small/weights.safetensors"
#define MODEL MSW_SOURCE_DIR "/models/gpt.msw"

enum { STEPS = 10, BATCH = 2, SEQ = 16 };

static void show(const char *what, Diag *d)
{
	if (d->nerror || d->len)
		fprintf(stderr, "%s:\n%s", what, diag_text(d));
	diag_free(d);
	diag_init(d);
}

static void config(rt_TrainConfig *c)
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
	c->save_every = 0;
}

/* The hashes as "<config> <what> <hex>" lines, what = losses, norms or a
 * slot name. */
typedef struct Lines {
	char *text;
	size_t len, cap;
} Lines;

static void add_line(Lines *l, const char *cfg, const char *what, const void *p, size_t n)
{
	char hex[33], line[640];
	hash128_hex(hash128(p, n), hex);
	int k = snprintf(line, sizeof line, "%s %s %s\n", cfg, what, hex);
	if (k < 0 || (size_t)k >= sizeof line)
		return;
	if (l->len + (size_t)k + 1 > l->cap) {
		size_t cap = (l->cap ? 2 * l->cap : 4096) + (size_t)k;
		char *t = mem_alloc(cap);
		if (!t)
			return;
		if (l->text)
			memcpy(t, l->text, l->len + 1);
		mem_free(l->text);
		l->text = t;
		l->cap = cap;
	}
	memcpy(l->text + l->len, line, (size_t)k + 1);
	l->len += (size_t)k;
}

static const be_Options *target(void)
{
	static const be_Options fixed = {.opt_level = 3, .cpu = "haswell",
					 .features = "+avx2,+fma,+avx,+sse4.2"};
	static const be_Options host = {.opt_level = 3};
	const char *h = getenv("MSW_BITWISE_HOST");
	return h && *h && strcmp(h, "0") ? &host : &fixed;
}

/* Compile the training program, dense (sparsity < 0) or sparse. */
static int build(double sparsity, fe_Session **fe, Graph **g, rt_Program **p)
{
	static const fe_Define defs[] = {
		{"vocab", "256"}, {"ctx", "64"}, {"d", "64"}, {"heads", "4"}, {"layers", "2"},
	};
	fe_InputShape in[2] = {{.name = "tokens", .rank = 2, .dim = {BATCH, SEQ}},
			       {.name = "targets", .rank = 2, .dim = {BATCH, SEQ}}};
	fe_Options fo = {.def = defs, .ndef = 5, .input = in, .ninput = 2};
	PruneOptions pr;
	pass_prune_defaults(&pr);
	pr.sparsity = sparsity;
	pr.seed = 1;
	PassOptions po = {.training = true, .optimizer = true, .verify = true,
			  .alignment = RT_ALIGN, .prune = &pr, .sparse_format = SPF_MASKED};
	be_Options bo = *target();
	Diag d;
	diag_init(&d);
	int rc = -1;
	*g = NULL;
	*p = NULL;
	if ((*fe = fe_session_create()) && fe_compile_file(*fe, MODEL, &fo, g, &d) == 0 &&
	    pass_run_pipeline(*g, &po, NULL, &d) == 0 && be_build_program(*g, &bo, p, &d) == 0)
		rc = 0;
	CHECK_MSG(rc == 0, "building the %s training program", sparsity < 0 ? "dense" : "sparse");
	show("build", &d);
	return rc;
}

/* Ten steps on nthreads; the hashes go to l under the name cfg. */
static void train(const rt_Program *p, const rt_Data *data, int nthreads, const char *cfg,
		  Lines *l)
{
	rt_Pool *pool = rt_pool_create(nthreads);
	rt_Exec *e = NULL;
	rt_Trainer *t = NULL;
	rt_TrainConfig c;
	double loss[STEPS], norm[STEPS];
	Diag d;
	diag_init(&d);
	config(&c);
	if (!pool || rt_exec_create(p, pool, &e, &d) || rt_load_params(e, WEIGHTS, &d) ||
	    rt_trainer_create(e, data, &c, &t, &d)) {
		CHECK_MSG(0, "%s: executor and trainer", cfg);
		goto done;
	}
	for (int s = 0; s < STEPS; s++) {
		rt_TrainStatus st;
		if (rt_trainer_step(t, &st, &d)) {
			CHECK_MSG(0, "%s: step %d", cfg, s + 1);
			goto done;
		}
		loss[s] = st.loss;
		norm[s] = st.grad_norm;
	}
	add_line(l, cfg, "losses", loss, sizeof loss);
	add_line(l, cfg, "norms", norm, sizeof norm);
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		if (s->kind == RT_SLOT_PARAM || s->kind == RT_SLOT_OPTIM)
			add_line(l, cfg, s->name, (char *)rt_exec_arena(e) + s->offset,
				 (size_t)s->nbytes);
	}
done:
	show(cfg, &d);
	rt_trainer_destroy(t);
	rt_exec_destroy(e);
	rt_pool_destroy(pool);
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *t = NULL;
	if (fseek(f, 0, SEEK_END) == 0) {
		long n = ftell(f);
		if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (t = mem_alloc((size_t)n + 1))) {
			if (fread(t, 1, (size_t)n, f) != (size_t)n) {
				mem_free(t);
				t = NULL;
			} else {
				t[n] = 0;
			}
		}
	}
	fclose(f);
	return t;
}

/* Every line of got must be in want and the other way round; each
 * difference is reported by name. The thread count is not part of the
 * name: "dense.t2 x" is compared with "dense x". */
static int compare(const char *want, const char *got, const char *suffix, const char *path)
{
	int nline = 0, nbad = 0;
	for (const char *s = got; *s;) {
		const char *e = strchr(s, '\n');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		char line[640];
		if (n >= sizeof line)
			n = sizeof line - 1;
		memcpy(line, s, n);
		line[n] = 0;
		/* drop the suffix from the config name */
		char *sp = strchr(line, ' ');
		size_t sl = strlen(suffix);
		if (sl && sp && (size_t)(sp - line) > sl && !strncmp(sp - sl, suffix, sl))
			memmove(sp - sl, sp, strlen(sp) + 1);
		char key[660];
		snprintf(key, sizeof key, "\n%s\n", line);
		bool found = strstr(want, key) != NULL ||
			     (!strncmp(want, key + 1, strlen(key + 1)));
		if (!found) {
			fprintf(stderr, "differs from the recorded fixture: %s%s\n", line, suffix);
			nbad++;
		}
		nline++;
		s = e ? e + 1 : s + n;
	}
	CHECK_MSG(nbad == 0, "%d of %d hashes (%s) differ from %s", nbad, nline,
		  *suffix ? "2 threads" : "1 thread", path);
	CHECK(nline > 0);
	return nbad == 0 && nline > 0 ? 0 : -1;
}

static int count_lines(const char *t)
{
	int n = 0;
	for (; *t; t++)
		n += *t == '\n';
	return n;
}

static void test_bitwise(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	if (target()->cpu && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) {
		printf("skipped: the host cannot run the fixture's AVX2+FMA code\n");
		return;
	}
#else
	if (target()->cpu) {
		printf("skipped: the fixture is x86-64 code (AVX2+FMA)\n");
		return;
	}
#endif
	const char *record = getenv("MSW_BITWISE_RECORD");
	const char *file = getenv("MSW_BITWISE_FILE");
	rt_Data data = {0};
	Diag d;
	diag_init(&d);
	if (rt_data_load(TEXT, 0.05, &data, &d)) {
		CHECK_MSG(0, "loading %s", TEXT);
		show("data", &d);
		return;
	}
	Lines one = {0}, two = {0};
	static const struct {
		const char *name;
		double sparsity;
	} cfgs[] = {{"dense", -1}, {"sparse75", 0.75}};
	for (int i = 0; i < 2; i++) {
		fe_Session *fe;
		Graph *g;
		rt_Program *p;
		char t2[32];
		snprintf(t2, sizeof t2, "%s.t2", cfgs[i].name);
		if (build(cfgs[i].sparsity, &fe, &g, &p) == 0) {
			train(p, &data, 1, cfgs[i].name, &one);
			train(p, &data, 2, t2, &two);
		}
		rt_program_destroy(p);
		ir_graph_destroy(g);
		fe_session_destroy(fe);
	}
	CHECK(one.text && two.text);
	if (!one.text || !two.text)
		goto done;
	if (record) {
		FILE *f = fopen(record, "wb");
		CHECK_MSG(f && fwrite(one.text, 1, one.len, f) == one.len && fclose(f) == 0,
			  "writing %s", record);
		printf("recorded %d hashes to %s\n", count_lines(one.text), record);
		compare(one.text, two.text, ".t2", "the 1-thread run");
		goto done;
	}
	char *want = read_text(file ? file : HASHES);
	CHECK_MSG(want != NULL, "reading %s", file ? file : HASHES);
	if (want) {
		const char *path = file ? file : HASHES;
		int bad = compare(want, one.text, "", path) | compare(want, two.text, ".t2", path);
		CHECK_MSG(count_lines(want) == count_lines(one.text),
			  "the fixture has %d hashes, the run %d", count_lines(want),
			  count_lines(one.text));
		if (!bad && count_lines(want) == count_lines(one.text))
				printf("%d hashes (losses, gradient norms, weights, both moments; dense and "
			       "75%% sparse) bitwise equal to the fixture on 1 and 2 threads\n",
			       count_lines(one.text));
	}
	mem_free(want);
done:
	mem_free(one.text);
	mem_free(two.text);
	rt_data_free(&data);
}

int main(void)
{
	RUN(test_bitwise);
	return check_report();
}
