/* task_predictions.c: the per-example predictions of a task run, for
 * people and for other scorers.
 *
 * TSV (the default): a header line, then per example
 *   id  gold  pred  correct  score...
 * with class sets written as names joined by '|' (BioGPT's HoC files), so
 * the gold and pred columns feed its hard_match_evaluation.py as they are;
 * one score column per candidate, "<label>" or, for HoC,
 * "<hallmark>/yes" and "<hallmark>/no" (log-likelihoods, %.6f). JSON Lines
 * when the name ends in ".jsonl":
 *   {"id": "...", "gold": "yes", "pred": "no", "correct": false,
 *    "scores": {"yes": -1.2, "no": -0.9, "maybe": -3.4}}
 * with lists of names for HoC's sets and {"<hallmark>": {"yes": a, "no": b}}
 * for its scores. A score that is not finite is written nan (TSV) or null
 * (JSON). Written through rt_AtomicFile: a crash leaves the old file. */
#include "rt.h"

#include <math.h>
#include <string.h>

static void tsv_text(FILE *f, const char *s)
{
	for (; *s; s++)
		fputc(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s, f);
}

static void json_text(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void json_num(FILE *f, double x)
{
	if (isfinite(x))
		fprintf(f, "%.6f", x);
	else
		fputs("null", f);
}

/* A class set: "a|b" (TSV), or "a" / ["a", "b"] (JSON; a list for HoC). */
static void set_text(FILE *f, const rt_TaskInfo *t, uint32_t set, bool json)
{
	bool first = true;
	if (json && t->multilabel)
		fputc('[', f);
	for (int c = 0; c < t->nclass; c++) {
		if (!(set >> c & 1))
			continue;
		if (!first)
			fputs(json ? ", " : "|", f);
		if (json)
			json_text(f, t->class_name[c]);
		else
			tsv_text(f, t->class_name[c]);
		first = false;
	}
	if (json && t->multilabel)
		fputc(']', f);
	else if (json && first)
		fputs("null", f);
}

/* A label's name in a header or a key: its text without the leading space. */
static const char *label_name(const rt_TaskInfo *t, int l)
{
	const char *s = t->label[l];
	return s[0] == ' ' ? s + 1 : s;
}

static void tsv_row(FILE *f, const rt_TaskInfo *t, const rt_TaskExample *x, uint32_t pred,
		    const double *score)
{
	tsv_text(f, x->id);
	fputc('\t', f);
	set_text(f, t, x->gold, false);
	fputc('\t', f);
	set_text(f, t, pred, false);
	fprintf(f, "\t%d", pred == x->gold);
	for (int k = 0; k < t->nquery * t->nlabel; k++)
		if (isfinite(score[k]))
			fprintf(f, "\t%.6f", score[k]);
		else
			fputs("\tnan", f);
	fputc('\n', f);
}

static void json_row(FILE *f, const rt_TaskInfo *t, const rt_TaskExample *x, uint32_t pred,
		     const double *score)
{
	fputs("{\"id\": ", f);
	json_text(f, x->id);
	fputs(", \"gold\": ", f);
	set_text(f, t, x->gold, true);
	fputs(", \"pred\": ", f);
	set_text(f, t, pred, true);
	fprintf(f, ", \"correct\": %s, \"scores\": {", pred == x->gold ? "true" : "false");
	for (int q = 0; q < t->nquery; q++) {
		if (t->nquery > 1) {
			fputs(q ? ", " : "", f);
			json_text(f, t->class_name[q]);
			fputs(": {", f);
		}
		for (int l = 0; l < t->nlabel; l++) {
			fputs(l ? ", " : "", f);
			json_text(f, label_name(t, l));
			fputs(": ", f);
			json_num(f, score[q * t->nlabel + l]);
		}
		if (t->nquery > 1)
			fputc('}', f);
	}
	fputs("}}\n", f);
}

int rt_task_write_predictions(const char *path, const rt_TaskSet *s, const rt_TaskScores *r,
			      Diag *d)
{
	const rt_TaskInfo *t = s->info;
	size_t n = strlen(path);
	bool json = n > 6 && !strcmp(path + n - 6, ".jsonl");
	rt_AtomicFile a;
	if (rt_atomic_begin(&a, path, d))
		return -1;
	if (!json) {
		fputs("id\tgold\tpred\tcorrect", a.f);
		for (int q = 0; q < t->nquery; q++)
			for (int l = 0; l < t->nlabel; l++)
				if (t->nquery > 1)
					fprintf(a.f, "\t%s/%s", t->class_name[q], label_name(t, l));
				else
					fprintf(a.f, "\t%s", label_name(t, l));
		fputc('\n', a.f);
	}
	int64_t per = (int64_t)t->nquery * t->nlabel;
	for (size_t i = 0; i < s->ex.len; i++) {
		const rt_TaskExample *x = rt_task_example(s, (int64_t)i);
		if (json)
			json_row(a.f, t, x, r->pred[i], r->score + (int64_t)i * per);
		else
			tsv_row(a.f, t, x, r->pred[i], r->score + (int64_t)i * per);
	}
	if (ferror(a.f)) {
		rt_atomic_abort(&a);
		return rt_file_error(d, path, "writing the predictions failed");
	}
	return rt_atomic_commit(&a, d);
}
