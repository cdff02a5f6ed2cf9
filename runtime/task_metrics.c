/* task_metrics.c: accuracy, macro-F1 and micro-F1, and the baselines
 * printed beside them, as pure functions of gold and predicted class sets.
 *
 * Everything goes through per-class counts (tp, fp, fn): the model's
 * counts come from its predictions, a random guesser's are expected counts
 * computed in closed form, and both are scored by the same F1 functions, so
 * a baseline can never be computed by different arithmetic than the score
 * beside it. The definitions follow scikit-learn's f1_score (zero_division
 * 0), which PubMedQA's and BioGPT's evaluation scripts call; tests compare
 * them with hand-computed examples (tests/runtime/test_task_metrics.c). */
#include "rt.h"

#include <string.h>

double rt_f1(rt_Counts c)
{
	double den = 2 * c.tp + c.fp + c.fn;
	return den > 0 ? 2 * c.tp / den : 0;
}

void rt_class_counts(const uint32_t *gold, const uint32_t *pred, int64_t n, int nclass,
		     rt_Counts *out)
{
	memset(out, 0, sizeof *out * (size_t)nclass);
	for (int64_t i = 0; i < n; i++)
		for (int c = 0; c < nclass; c++) {
			bool g = gold[i] >> c & 1, p = pred[i] >> c & 1;
			out[c].tp += g && p;
			out[c].fp += !g && p;
			out[c].fn += g && !p;
		}
}

double rt_accuracy(const uint32_t *gold, const uint32_t *pred, int64_t n)
{
	int64_t hit = 0;
	for (int64_t i = 0; i < n; i++)
		hit += gold[i] == pred[i];
	return n > 0 ? (double)hit / (double)n : 0;
}

double rt_macro_f1(const rt_Counts *c, int nclass)
{
	double sum = 0;
	int k = 0;
	for (int i = 0; i < nclass; i++)
		if (c[i].tp + c[i].fp + c[i].fn > 0) {   /* in gold or predicted */
			sum += rt_f1(c[i]);
			k++;
		}
	return k ? sum / k : 0;
}

double rt_micro_f1(const rt_Counts *c, int nclass)
{
	rt_Counts t = {0, 0, 0};
	for (int i = 0; i < nclass; i++) {
		t.tp += c[i].tp;
		t.fp += c[i].fp;
		t.fn += c[i].fn;
	}
	return rt_f1(t);
}

int rt_majority_class(const uint32_t *gold, int64_t n, int nclass)
{
	int best = -1;
	int64_t most = 0;
	for (int c = 0; c < nclass; c++) {
		int64_t k = 0;
		for (int64_t i = 0; i < n; i++)
			k += gold[i] >> c & 1;
		if (k > most) {
			most = k;
			best = c;
		}
	}
	return best;
}

void rt_random_counts(const uint32_t *gold, int64_t n, int nclass, const double *p,
		      rt_Counts *out)
{
	for (int c = 0; c < nclass; c++) {
		int64_t k = 0;
		for (int64_t i = 0; i < n; i++)
			k += gold[i] >> c & 1;
		out[c].tp = (double)k * p[c];
		out[c].fp = (double)(n - k) * p[c];
		out[c].fn = (double)k * (1 - p[c]);
	}
}

void rt_task_report(const rt_TaskSet *s, const uint32_t *pred, rt_TaskReport *r)
{
	const rt_TaskInfo *t = s->info;
	int64_t n = (int64_t)s->ex.len;
	int nc = t->nclass;
	memset(r, 0, sizeof *r);
	r->n = n;
	uint32_t *gold = mem_calloc(n ? (size_t)n : 1, sizeof *gold);
	uint32_t *maj = mem_calloc(n ? (size_t)n : 1, sizeof *maj);
	if (!gold || !maj)
		goto done;   /* out of memory: all zero, the caller's counts say n */
	for (int64_t i = 0; i < n; i++) {
		gold[i] = rt_task_example(s, i)->gold;
		for (int c = 0; c < nc; c++)
			r->count[c] += gold[i] >> c & 1;
	}
	r->majority = rt_majority_class(gold, n, nc);
	for (int64_t i = 0; i < n; i++)
		maj[i] = r->majority >= 0 ? 1u << r->majority : 0;
	/* The random guesser: uniform over the classes, or (HoC) a coin per
	 * hallmark, the last class ("empty") only when every coin said no. */
	double p[RT_TASK_MAX_CLASS];
	for (int c = 0; c < nc; c++)
		p[c] = t->multilabel ? (c == nc - 1 ? 1.0 / (double)(1u << (nc - 1)) : 0.5)
				     : 1.0 / nc;
	rt_Counts cm[RT_TASK_MAX_CLASS], cj[RT_TASK_MAX_CLASS], cr[RT_TASK_MAX_CLASS];
	rt_class_counts(gold, pred, n, nc, cm);
	rt_class_counts(gold, maj, n, nc, cj);
	rt_random_counts(gold, n, nc, p, cr);
	r->accuracy = rt_accuracy(gold, pred, n);
	r->maj_accuracy = rt_accuracy(gold, maj, n);
	/* Expected accuracy: sum over classes of P(gold c) P(guess c) = 1/K
	 * for single labels; for sets, P(all 11 coins right) is negligible and
	 * not reported. */
	r->rnd_accuracy = t->multilabel ? 0 : 1.0 / nc;
	r->macro_f1 = rt_macro_f1(cm, nc);
	r->maj_macro_f1 = rt_macro_f1(cj, nc);
	r->rnd_macro_f1 = rt_macro_f1(cr, nc);
	if (t->multilabel) {
		for (int64_t i = 0; i < n; i++)
			maj[i] = (1u << (nc - 1)) - 1;   /* every class but "empty" */
		rt_Counts ca[RT_TASK_MAX_CLASS];
		rt_class_counts(gold, maj, n, nc, ca);
		r->all_micro_f1 = rt_micro_f1(ca, nc);
	}
	r->micro_f1 = rt_micro_f1(cm, nc);
	r->maj_micro_f1 = rt_micro_f1(cj, nc);
	r->rnd_micro_f1 = rt_micro_f1(cr, nc);
done:
	mem_free(gold);
	mem_free(maj);
}
