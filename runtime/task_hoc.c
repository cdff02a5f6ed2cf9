/* task_hoc.c: the Hallmarks of Cancer corpus (hoc/ in the data), at the
 * level of whole abstracts, as BLURB and BioGPT use it.
 *
 *   text/<PMID>.txt    one sentence per line
 *   labels/<PMID>.txt  one line "<...<...<..." with a '<' per sentence:
 *                      segment i (after the i-th '<') labels sentence i,
 *                      labels joined by "AND", each
 *                      "Hallmark--Subcategory[--...]"; blank or "NULL": none
 *
 * An abstract's gold set is the union of its sentences' hallmarks (the text
 * before a label's first "--", matched without regard to case), or "empty"
 * when no sentence has one. Its text is the sentences joined by spaces.
 * The files are checked: a label line must start with '<' and have as many
 * segments as the text has lines, and every hallmark must be one of the
 * ten; errors point at file:line:col. */
#include "rt.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { NHALLMARK = 10, EMPTY = 10 };

static bool space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* One label (bytes [a, b) of the labels file): its hallmark's bit, 0 for
 * none ("NULL" or blank), or an error. */
static int label(const Source *lab, size_t a, size_t b, uint32_t *bits, Diag *d)
{
	const char *t = lab->text;
	while (a < b && space(t[a]))
		a++;
	while (b > a && space(t[b - 1]))
		b--;
	if (a == b || (b - a == 4 && !strncmp(t + a, "NULL", 4)))
		return 0;
	size_t e = a;
	while (e < b && !(t[e] == '-' && e + 1 < b && t[e + 1] == '-'))
		e++;
	while (e > a && space(t[e - 1]))
		e--;
	const rt_TaskInfo *info = &rt_tasks[RT_TASK_HOC];
	for (int h = 0; h < NHALLMARK; h++)
		if (strlen(info->class_name[h]) == e - a && !strncasecmp(t + a, info->class_name[h], e - a)) {
			*bits |= 1u << h;
			return 0;
		}
	return rt_task_error(d, lab, a, "unknown hallmark '%.*s' (a label is 'Hallmark--"
			     "Subcategory'; the hallmarks are in docs/tasks.md)", (int)(e - a), t + a);
}

int rt_hoc_parse(const char *pmid, const Source *text, const Source *labels, rt_TaskSet *s,
		 Diag *d)
{
	const char *t = text->text, *l = labels->text;
	if (memchr(t, 0, text->len))
		return rt_task_error(d, text, (size_t)((const char *)memchr(t, 0, text->len) - t),
				     "holds a NUL byte");
	if (memchr(l, 0, labels->len))
		return rt_task_error(d, labels, (size_t)((const char *)memchr(l, 0, labels->len) - l),
				     "holds a NUL byte");
	size_t nline = 0;
	for (size_t i = 0; i < text->len; i++)
		nline += t[i] == '\n';
	nline += text->len && t[text->len - 1] != '\n';
	if (nline == 0)
		return rt_task_error(d, text, 0, "is empty (an abstract has a sentence per line)");
	if (labels->len == 0 || l[0] != '<')
		return rt_task_error(d, labels, 0, "must start with '<' (a '<' before each "
				     "sentence's labels)");
	size_t nseg = 0;
	for (size_t i = 0; i < labels->len; i++)
		nseg += l[i] == '<';
	if (nseg != nline)
		return rt_task_error(d, labels, 0, "holds %zu sentence segments ('<') but %s has "
				     "%zu lines", nseg, text->name, nline);
	uint32_t gold = 0;
	for (size_t a = 1; a <= labels->len;) {
		/* a piece ends at the next '<', "AND", or the end */
		size_t b = a;
		while (b < labels->len && l[b] != '<' && strncmp(l + b, "AND", 3))
			b++;
		if (label(labels, a, b, &gold, d))
			return -1;
		a = b + (b < labels->len && l[b] == '<' ? 1 : 3);
	}
	if (!gold)
		gold = 1u << EMPTY;
	/* the sentences joined by spaces */
	char *joined = mem_alloc(text->len + 1);
	if (!joined)
		return diag_error(d, (SrcLoc){0}, "out of memory");
	size_t n = 0;
	for (size_t i = 0; i < text->len; i++) {
		if (t[i] == '\r' && i + 1 < text->len && t[i + 1] == '\n')
			continue;
		joined[n++] = t[i] == '\n' ? ' ' : t[i];
	}
	while (n && joined[n - 1] == ' ')
		n--;
	int rc = rt_task_add(s, pmid, joined, n, NULL, gold, rt_task_hash_split(pmid, strlen(pmid), false), d);
	mem_free(joined);
	return rc;
}

static int by_name(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	size_t nx = strlen(x), ny = strlen(y);   /* PMIDs: shorter is smaller */
	return nx != ny ? (nx < ny ? -1 : 1) : strcmp(x, y);
}

static int read_doc(const char *dir, const char *name, rt_TaskSet *s, Diag *d)
{
	char tp[4096], lp[4096], pmid[256];
	size_t k = strlen(name) - 4;   /* without ".txt" */
	snprintf(pmid, sizeof pmid, "%.*s", (int)(k < sizeof pmid ? k : sizeof pmid - 1), name);
	snprintf(tp, sizeof tp, "%s/text/%s", dir, name);
	snprintf(lp, sizeof lp, "%s/labels/%s", dir, name);
	Source text = {0}, lab = {0};
	const char *why = NULL;
	int rc = -1;
	if (source_load(&text, tp, &why))
		rt_file_error(d, tp, "cannot read: %s", why ? why : "unknown error");
	else if (source_load(&lab, lp, &why))
		rt_file_error(d, lp, "cannot read the labels of %s: %s", tp, why ? why : "unknown error");
	else
		rc = rt_hoc_parse(pmid, &text, &lab, s, d);
	source_free(&text);
	source_free(&lab);
	return rc;
}

int rt_hoc_read(const char *dir, rt_TaskSet *s, Diag *d)
{
	char tdir[4096];
	snprintf(tdir, sizeof tdir, "%s/text", dir);
	DIR *dp = opendir(tdir);
	if (!dp)
		return rt_file_error(d, tdir, "cannot open folder: %s", strerror(errno));
	Vec names = {0};
	int rc = 0;
	struct dirent *e;
	while (!rc && (e = readdir(dp))) {
		size_t n = strlen(e->d_name);
		if (e->d_name[0] == '.' || n < 5 || strcmp(e->d_name + n - 4, ".txt"))
			continue;
		char **p = vec_push(&names, sizeof *p);
		if (!p || !(*p = mem_strdup(e->d_name)))
			rc = diag_error(d, (SrcLoc){0}, "out of memory");
	}
	closedir(dp);
	if (!rc && names.len == 0)
		rc = rt_file_error(d, tdir, "holds no <PMID>.txt file");
	if (!rc)
		qsort(names.data, names.len, sizeof(char *), by_name);
	for (size_t i = 0; !rc && i < names.len; i++)
		rc = read_doc(dir, VEC_AT(names, char *, i), s, d);
	for (size_t i = 0; i < names.len; i++)
		mem_free(VEC_AT(names, char *, i));
	vec_free(&names);
	return rc;
}
