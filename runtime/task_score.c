/* task_score.c: classify a task's examples by the likelihood a language
 * model gives each label's text after the prompt.
 *
 * Candidate (example, prompt q, label l) is one row of the forward
 * program's tokens [B, T]: the prompt's last P bytes, then the label's
 * bytes but its last. Label byte j is predicted by the logits at position
 * P - 1 + j, and the candidate's score is
 *     sum_j log softmax(logits[P - 1 + j])[label byte j]
 * (log p(label | prompt)); with `mean`, divided by the label's length;
 * with `pmi`, minus log p(label | the content-free prompt), the template
 * with an empty document and question (domain-conditional PMI, Holtzman
 * et al. 2021), which cancels what the model thinks of a label before it
 * reads anything (a short label's higher likelihood, for one). P is
 * the prompt's length cut to T + 1 - Lmax, Lmax the longest label of the
 * task, so all labels of a prompt are scored after the same text and the
 * comparison between them is fair; cutting keeps the end of the prompt,
 * where the question is. The model must be causal (a row's padding after
 * its candidate changes nothing before it), as every .msw language model
 * is. The log-softmax is computed here, in double, only at the positions a
 * label is read from: a row of V logits per label byte.
 *
 * Rows are filled in candidate order, so the labels of one prompt and the
 * prompts of consecutive examples share a run; the last run may be partly
 * filled (its spare rows keep old tokens and are not read). Everything is
 * allocated before the first run. */
#include "rt.h"

#include <math.h>
#include <string.h>
#include <time.h>

static double seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int64_t rt_task_max_label(const rt_TaskInfo *t)
{
	int64_t m = 0;
	for (int l = 0; l < t->nlabel; l++)
		if ((int64_t)strlen(t->label[l]) > m)
			m = (int64_t)strlen(t->label[l]);
	return m;
}

int64_t rt_task_needed_seq(const rt_TaskSet *s)
{
	const rt_TaskInfo *t = s->info;
	int64_t m = 0, lmax = rt_task_max_label(t);
	for (size_t i = 0; i < s->ex.len; i++)
		for (int q = 0; q < t->nquery; q++) {
			int64_t n = (int64_t)rt_task_prompt(t, rt_task_example(s, (int64_t)i), q, NULL, 0);
			if (n + lmax - 1 > m)
				m = n + lmax - 1;
		}
	return m;
}

void rt_task_scores_free(rt_TaskScores *r)
{
	mem_free(r->score);
	mem_free(r->pred);
	mem_free(r->prior);
	memset(r, 0, sizeof *r);
}

/* log softmax(x[0 .. v))[k], in double. */
static double log_prob(const float *x, int64_t v, int k)
{
	double m = x[0];
	for (int64_t i = 1; i < v; i++)
		if (x[i] > m)
			m = x[i];
	double sum = 0;
	for (int64_t i = 0; i < v; i++)
		sum += exp((double)x[i] - m);
	return (double)x[k] - m - log(sum);
}

typedef struct Row {
	int64_t cand;     /* index into score */
	int64_t p;        /* prompt bytes in the row */
	int label;
} Row;

typedef struct Shape {
	int32_t *tok;
	const float *logits;
	int64_t B, T, V, keep;
} Shape;

/* Every candidate of s into score[] (log p(label | prompt), or its mean
 * over the label's bytes), counting runs and cut prompts into out. */
static int score_set(rt_Exec *e, const Shape *sh, const rt_TaskSet *s, bool mean,
		     const rt_TaskScoreOpts *o, double *score, rt_TaskScores *out, Diag *d)
{
	const rt_TaskInfo *t = s->info;
	int64_t nex = (int64_t)s->ex.len, per = (int64_t)t->nquery * t->nlabel;
	int64_t total = nex * per, pcap = 0, B = sh->B, T = sh->T, V = sh->V, keep = sh->keep;
	for (int64_t i = 0; i < nex; i++)
		for (int q = 0; q < t->nquery; q++) {
			int64_t n = (int64_t)rt_task_prompt(t, rt_task_example(s, i), q, NULL, 0);
			pcap = n > pcap ? n : pcap;
		}
	char *prompt = mem_alloc((size_t)pcap + 1);
	Row *row = mem_calloc((size_t)B, sizeof *row);
	if (!prompt || !row) {
		mem_free(prompt);
		mem_free(row);
		return diag_error(d, (SrcLoc){0}, "out of memory");
	}
	out->prompt_bytes = pcap > out->prompt_bytes ? pcap : out->prompt_bytes;
	int64_t nrow = 0, plen = 0, pq = -1, p = 0;
	for (int64_t c = 0; c < total; c++) {
		int64_t i = c / per, q = (c / t->nlabel) % t->nquery;
		int l = (int)(c % t->nlabel);
		if (i * t->nquery + q != pq) {   /* a new prompt */
			pq = i * t->nquery + q;
			plen = (int64_t)rt_task_prompt(t, rt_task_example(s, i), (int)q, prompt,
						       (size_t)pcap);
			p = plen < keep ? plen : keep;
			out->ntrunc += plen > keep;
		}
		const unsigned char *pb = (const unsigned char *)prompt + (plen - p);
		const unsigned char *lb = (const unsigned char *)t->label[l];
		int64_t L = (int64_t)strlen(t->label[l]);
		int32_t *r = sh->tok + nrow * T;
		for (int64_t k = 0; k < p; k++)
			r[k] = pb[k];
		for (int64_t k = 0; k + 1 < L; k++)
			r[p + k] = lb[k];
		for (int64_t k = p + L - 1; k < T; k++)
			r[k] = 0;
		row[nrow++] = (Row){.cand = c, .p = p, .label = l};
		if (nrow < B && c + 1 < total)
			continue;
		rt_exec_run(e);
		out->nrun++;
		for (int64_t k = 0; k < nrow; k++) {
			const unsigned char *lab = (const unsigned char *)t->label[row[k].label];
			int64_t n = (int64_t)strlen(t->label[row[k].label]);
			double sum = 0;
			for (int64_t j = 0; j < n; j++)
				sum += log_prob(sh->logits + (k * T + row[k].p - 1 + j) * V, V, lab[j]);
			score[row[k].cand] = mean ? sum / (double)n : sum;
		}
		out->ncand += nrow;
		nrow = 0;
		if (o && o->progress)
			o->progress(o->user, c + 1, total);
	}
	mem_free(prompt);
	mem_free(row);
	return 0;
}

const char *const rt_task_norm_name[RT_NORM_COUNT] = {"sum", "mean", "pmi"};

int rt_task_score(rt_Exec *e, const rt_TaskSet *s, const rt_TaskScoreOpts *o,
		  rt_TaskScores *out, Diag *d)
{
	const rt_TaskInfo *t = s->info;
	rt_TaskNorm norm = o ? o->norm : RT_NORM_SUM;
	memset(out, 0, sizeof *out);
	rt_Tensor tok, lg;
	if (rt_exec_tensor(e, "tokens", &tok) || rt_exec_tensor(e, "logits", &lg) ||
	    tok.dtype != RT_I32 || tok.rank != 2 || lg.dtype != RT_F32 || lg.rank != 3 ||
	    lg.dim[0] != tok.dim[0] || lg.dim[1] != tok.dim[1])
		return diag_error(d, (SrcLoc){0}, "scoring a task needs a model with input "
				  "'tokens' i32 [B, T] and output 'logits' f32 [B, T, V]");
	Shape sh = {.tok = tok.data, .logits = lg.data, .B = tok.dim[0], .T = tok.dim[1],
		    .V = lg.dim[2]};
	int64_t lmax = rt_task_max_label(t);
	sh.keep = sh.T + 1 - lmax;
	if (sh.V < 256)
		return diag_error(d, (SrcLoc){0}, "the model's vocabulary has %lld tokens; task "
				  "text is bytes, which needs 256", (long long)sh.V);
	if (sh.keep < 1)
		return diag_error(d, (SrcLoc){0}, "a row of %lld tokens cannot hold a prompt and "
				  "the longest label of %s (%lld bytes)", (long long)sh.T, t->name,
				  (long long)lmax);
	int64_t nex = (int64_t)s->ex.len, per = (int64_t)t->nquery * t->nlabel;
	out->score = mem_calloc(nex ? (size_t)(nex * per) : 1, sizeof *out->score);
	out->pred = mem_calloc(nex ? (size_t)nex : 1, sizeof *out->pred);
	if (norm == RT_NORM_PMI)
		out->prior = mem_calloc((size_t)per, sizeof *out->prior);
	if (!out->score || !out->pred || (norm == RT_NORM_PMI && !out->prior)) {
		rt_task_scores_free(out);
		return diag_error(d, (SrcLoc){0}, "out of memory");
	}
	double t0 = seconds();
	int rc = 0;
	if (norm == RT_NORM_PMI) {
		/* The content-free prompt: the template with no document and no
		 * question, scored once per task; its candidates are not counted
		 * as the examples' (ncand, ntrunc), only its runs. */
		rt_TaskSet prior = {.info = t};
		rt_TaskScores ps = {0};
		arena_init(&prior.arena);
		rc = rt_task_add(&prior, "prior", "", 0, "", 0, RT_SPLIT_ALL, d);
		if (!rc)
			rc = score_set(e, &sh, &prior, false, NULL, out->prior, &ps, d);
		out->nrun += ps.nrun;
		rt_task_free(&prior);
	}
	if (!rc)
		rc = score_set(e, &sh, s, norm == RT_NORM_MEAN, o, out->score, out, d);
	if (rc) {
		rt_task_scores_free(out);
		return -1;
	}
	for (int64_t i = 0; norm == RT_NORM_PMI && i < nex; i++)
		for (int64_t k = 0; k < per; k++)
			out->score[i * per + k] -= out->prior[k];
	for (int64_t i = 0; i < nex; i++)
		out->pred[i] = rt_task_predict(t, out->score + i * per);
	out->seconds = seconds() - t0;
	return 0;
}
