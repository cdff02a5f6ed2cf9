/* test_task_score.c: scoring by label likelihood (runtime/task_score.c)
 * on the gpt_small fixture (models/gpt.msw at vocab 256, ctx 64, d 64,
 * 4 heads, 2 layers, weights from tests/fixtures/gpt_small).
 *
 *   - every candidate's score equals log p(label | prompt) computed here
 *     from scratch: the prompt cut by hand to its last T + 1 - Lmax bytes,
 *     followed by the label, run alone through a program of another shape
 *     ([1, 64]), the log-softmax taken in double at each label byte
 *     (within 1e-4: the shapes differ, so the sums are rounded apart);
 *   - with --norm mean the score is that sum over the label's bytes; with
 *     pmi, the sum less log p(label | "\nQuestion: \nAnswer:"), the
 *     content-free prompt, computed the same way;
 *   - rows per run (1, 4, 7) change nothing but rounding: the same
 *     predictions, scores within 1e-5; the run count is ceil(cands / B);
 *   - prompts that fit are not cut, and the cut ones are counted;
 *   - a window too short for the longest label is an error. */
#include "../check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "frontend/fe.h"
#include "passes/passes.h"
#include "runtime/rt.h"

#define MODEL_PATH MSW_SOURCE_DIR "/models/gpt.msw"
#define WEIGHTS MSW_SOURCE_DIR "/tests/fixtures/gpt_small/weights.safetensors"

typedef struct Run {
	Graph *g;
	rt_Program *p;
	rt_Pool *pool;
	rt_Exec *e;
} Run;

static void show(const char *what, Diag *d)
{
	if (d->len)
		fprintf(stderr, "%s:\n%s", what, diag_text(d));
}

/* gpt.msw at the fixture's size, tokens [batch, seq], logits out. */
static int build(Run *r, fe_Session *s, int64_t batch, int64_t seq)
{
	static const fe_Define defs[] = {
		{"vocab", "256"}, {"ctx", "64"}, {"d", "64"}, {"heads", "4"}, {"layers", "2"},
	};
	fe_InputShape in[1] = {{.name = "tokens", .rank = 2, .dim = {batch, seq}}};
	fe_Options fo = {.def = defs, .ndef = 5, .input = in, .ninput = 1};
	PassOptions po = {.verify = true, .alignment = RT_ALIGN};
	memset(r, 0, sizeof *r);
	Diag d;
	diag_init(&d);
	int rc = fe_compile_file(s, MODEL_PATH, &fo, &r->g, &d) ||
		 pass_run_pipeline(r->g, &po, NULL, &d) || be_build_program(r->g, NULL, &r->p, &d);
	if (!rc) {
		r->pool = rt_pool_create(2);
		rc = rt_exec_create(r->p, r->pool, &r->e, &d) || rt_load_params(r->e, WEIGHTS, &d);
	}
	CHECK_MSG(rc == 0, "building [%lld, %lld]", (long long)batch, (long long)seq);
	show("build", &d);
	diag_free(&d);
	return rc ? -1 : 0;
}

static void destroy(Run *r)
{
	rt_exec_destroy(r->e);
	rt_pool_destroy(r->pool);
	rt_program_destroy(r->p);
	ir_graph_destroy(r->g);
}

/* PubMedQA-shaped examples: a long abstract (cut at T = 32), a short one
 * (not cut), and one in between. */
static void make_set(rt_TaskSet *s)
{
	static const char *text[] = {
		"Background: the patients were followed for ten years after the operation, "
		"and the outcome was recorded at every visit by two observers.",
		"Short.",
		"Results were mixed across sites.",
	};
	static const char *question[] = {"Is surgery better?", "Does it work?", "Is it safe?"};
	memset(s, 0, sizeof *s);
	s->info = &rt_tasks[RT_TASK_PUBMEDQA];
	arena_init(&s->arena);
	Diag d;
	diag_init(&d);
	for (int i = 0; i < 3; i++) {
		char id[8];
		snprintf(id, sizeof id, "%d", i + 1);
		CHECK(rt_task_add(s, id, text[i], strlen(text[i]), question[i], 1u << i,
				  RT_SPLIT_TEST, &d) == 0);
	}
	diag_free(&d);
}

/* log p(label | the last `keep` bytes of prompt), from a [1, 64] program. */
static double reference(Run *ref, const char *prompt, int64_t keep, const char *label)
{
	int64_t plen = (int64_t)strlen(prompt), p = plen < keep ? plen : keep;
	int64_t L = (int64_t)strlen(label);
	char seq[128];
	memcpy(seq, prompt + plen - p, (size_t)p);
	memcpy(seq + p, label, (size_t)L);
	rt_Tensor tok, lg;
	CHECK(rt_exec_tensor(ref->e, "tokens", &tok) == 0 && rt_exec_tensor(ref->e, "logits", &lg) == 0);
	int32_t *t = tok.data;
	for (int64_t k = 0; k < 64; k++)
		t[k] = k < p + L - 1 ? (unsigned char)seq[k] : ' ';
	rt_exec_run(ref->e);
	const float *x = lg.data;
	int64_t V = lg.dim[2];
	double sum = 0;
	for (int64_t j = 0; j < L; j++) {
		const float *row = x + (p - 1 + j) * V;
		double m = -INFINITY, z = 0;
		for (int64_t v = 0; v < V; v++)
			m = row[v] > m ? row[v] : m;
		for (int64_t v = 0; v < V; v++)
			z += exp(row[v] - m);
		sum += row[(unsigned char)label[j]] - m - log(z);
	}
	return sum;
}

static void test_against_reference(void)
{
	fe_Session *s = fe_session_create();
	rt_TaskSet set;
	make_set(&set);
	Run run, ref;
	if (build(&run, s, 4, 32) || build(&ref, s, 1, 64)) {
		fe_session_destroy(s);
		rt_task_free(&set);
		return;
	}
	const rt_TaskInfo *t = set.info;
	Diag d;
	diag_init(&d);
	rt_TaskScores sum, mean, pmi;
	rt_TaskScoreOpts om = {.norm = RT_NORM_MEAN}, op = {.norm = RT_NORM_PMI};
	CHECK(rt_task_score(run.e, &set, NULL, &sum, &d) == 0);
	CHECK(rt_task_score(run.e, &set, &om, &mean, &d) == 0);
	CHECK(rt_task_score(run.e, &set, &op, &pmi, &d) == 0);
	show("score", &d);
	int64_t keep = 32 + 1 - rt_task_max_label(t);   /* " maybe": 6 bytes -> 27 */
	CHECK(keep == 27);
	char prompt[512];
	for (int i = 0; i < 3 && sum.score; i++) {
		size_t n = rt_task_prompt(t, rt_task_example(&set, i), 0, prompt, sizeof prompt - 1);
		prompt[n] = 0;
		for (int l = 0; l < t->nlabel; l++) {
			double want = reference(&ref, prompt, keep, t->label[l]);
			double got = sum.score[i * t->nlabel + l];
			CHECK_MSG(fabs(got - want) < 1e-4, "example %d label %d: %.6f vs %.6f", i, l,
				  got, want);
			CHECK_NEAR(mean.score[i * t->nlabel + l], got / (double)strlen(t->label[l]),
				   1e-12);
			double prior = reference(&ref, "\nQuestion: \nAnswer:", keep, t->label[l]);
			CHECK_MSG(fabs(pmi.score[i * t->nlabel + l] - (want - prior)) < 2e-4,
				  "pmi: example %d label %d", i, l);
			if (i == 0)
				CHECK_NEAR(pmi.prior[l], prior, 1e-4);
		}
	}
	/* every prompt is longer than 27 bytes, the shortest being
	 * "Short.\nQuestion: Does it work?\nAnswer:" (38) */
	CHECK(sum.ncand == 9 && sum.nrun == 3 && sum.ntrunc == 3);
	CHECK(!sum.prior && pmi.ncand == 9 && pmi.nrun == 4 && pmi.ntrunc == 3);
	rt_task_scores_free(&sum);
	rt_task_scores_free(&mean);
	rt_task_scores_free(&pmi);
	diag_free(&d);
	destroy(&run);
	destroy(&ref);
	rt_task_free(&set);
	fe_session_destroy(s);
}

static void test_batch_invariance(void)
{
	fe_Session *s = fe_session_create();
	rt_TaskSet set;
	make_set(&set);
	rt_TaskScores r[3];
	int64_t rows[3] = {1, 4, 7};
	Diag d;
	diag_init(&d);
	for (int k = 0; k < 3; k++) {
		Run run;
		memset(&r[k], 0, sizeof r[k]);
		if (build(&run, s, rows[k], 48))
			continue;
		CHECK(rt_task_score(run.e, &set, NULL, &r[k], &d) == 0);
		CHECK(r[k].nrun == (9 + rows[k] - 1) / rows[k]);
		CHECK(r[k].ntrunc == 2);   /* T 48 keeps 43 bytes: the 38 of "Short." fit */
		destroy(&run);
	}
	show("score", &d);
	for (int k = 1; k < 3 && r[0].score && r[k].score; k++)
		for (int i = 0; i < 9; i++) {
			CHECK_NEAR(r[k].score[i], r[0].score[i], 1e-5);
			if (i < 3)
				CHECK(r[k].pred[i] == r[0].pred[i]);
		}
	for (int k = 0; k < 3; k++)
		rt_task_scores_free(&r[k]);
	diag_free(&d);
	rt_task_free(&set);
	fe_session_destroy(s);
}

static void test_errors(void)
{
	fe_Session *s = fe_session_create();
	rt_TaskSet set;
	make_set(&set);
	Run run;
	Diag d;
	diag_init(&d);
	rt_TaskScores r;
	if (!build(&run, s, 2, 4)) {   /* 4 tokens: no room after " maybe" */
		CHECK(rt_task_score(run.e, &set, NULL, &r, &d) == -1);
		CHECK(strstr(diag_text(&d), "cannot hold a prompt and the longest label of "
			     "pubmedqa (6 bytes)"));
		destroy(&run);
	}
	rt_task_free(&set);
	diag_free(&d);
	fe_session_destroy(s);
}

int main(void)
{
	RUN(test_against_reference);
	RUN(test_batch_invariance);
	RUN(test_errors);
	return check_report();
}
