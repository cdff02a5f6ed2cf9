/* task_medabs.c: the Medical Abstracts text classification corpus
 * (medical-abstracts-tc/ in the data): medical_tc_test.csv,
 *
 *   condition_label,medical_abstract
 *   3,"Obstructive sleep apnea following ... "
 *
 * CSV as RFC 4180 has it: a field may be quoted, a quote inside doubled,
 * and a quoted field may hold commas and line breaks; lines end in LF or
 * CRLF. The label is 1-5 (neoplasms, digestive system, nervous system,
 * cardiovascular, general pathological conditions: medical_tc_labels.csv).
 * An example's id is its data row's number (1 = the first after the
 * header); its split is a hash of the abstract, so the 118 abstracts that
 * appear twice (with two different labels) land in one split. Errors point
 * at file:line:col. */
#include "rt.h"

#include <stdio.h>
#include <string.h>

static const char header[] = "condition_label,medical_abstract";

/* One field starting at *at, unquoted into buf; *at is left on the byte
 * after it (a ',', a line end, or the end). */
static int field(const Source *src, size_t *at, Vec *buf, Diag *d)
{
	const char *t = src->text;
	size_t i = *at, n = src->len;
	buf->len = 0;
	if (i < n && t[i] == '"') {
		size_t open = i++;
		for (;;) {
			if (i == n)
				return rt_task_error(d, src, open, "quoted field is not closed");
			if (t[i] == '"') {
				if (i + 1 < n && t[i + 1] == '"') {
					i++;
				} else {
					i++;
					break;
				}
			}
			char *c = vec_push(buf, 1);
			if (!c)
				return diag_error(d, (SrcLoc){0}, "out of memory");
			*c = t[i++];
		}
		if (i < n && t[i] != ',' && t[i] != '\n' && !(t[i] == '\r' && i + 1 < n && t[i + 1] == '\n'))
			return rt_task_error(d, src, i, "a quoted field must end at a ',' or the "
					     "line's end");
	} else {
		for (; i < n && t[i] != ',' && t[i] != '\n' && t[i] != '\r'; i++) {
			if (t[i] == '"')
				return rt_task_error(d, src, i, "a quote inside an unquoted field");
			char *c = vec_push(buf, 1);
			if (!c)
				return diag_error(d, (SrcLoc){0}, "out of memory");
			*c = t[i];
		}
		if (i < n && t[i] == '\r' && !(i + 1 < n && t[i + 1] == '\n'))
			return rt_task_error(d, src, i, "a carriage return that does not end a line");
	}
	char *z = vec_push(buf, 1);   /* NUL-terminated, not counted */
	if (!z)
		return diag_error(d, (SrcLoc){0}, "out of memory");
	buf->len--;
	*at = i;
	return 0;
}

/* Past the line end at *at (LF or CRLF); false if *at is not at one. */
static bool line_end(const Source *src, size_t *at)
{
	const char *t = src->text;
	if (*at < src->len && t[*at] == '\r')
		++*at;
	if (*at < src->len && t[*at] == '\n') {
		++*at;
		return true;
	}
	return *at == src->len;
}

int rt_medabs_parse(const Source *csv, rt_TaskSet *s, Diag *d)
{
	const char *t = csv->text;
	const char *nul = memchr(t, 0, csv->len);
	if (nul)
		return rt_task_error(d, csv, (size_t)(nul - t), "holds a NUL byte");
	size_t at = strlen(header);
	if (strncmp(t, header, at) || !line_end(csv, &at))
		return rt_task_error(d, csv, 0, "the first line must be the header '%s'", header);
	Vec lab = {0}, abs = {0};
	int rc = -1;
	for (long row = 1; at < csv->len; row++) {
		size_t start = at;
		if (field(csv, &at, &lab, d))
			goto done;
		if (at >= csv->len || t[at] != ',') {
			rt_task_error(d, csv, at, "a row is 'label,abstract'; this one has one field");
			goto done;
		}
		at++;
		size_t abs_at = at;
		if (field(csv, &at, &abs, d))
			goto done;
		if (at < csv->len && t[at] == ',') {
			rt_task_error(d, csv, at, "a row is 'label,abstract'; this one has more fields");
			goto done;
		}
		line_end(csv, &at);
		const char *l = lab.data;
		if (lab.len != 1 || l[0] < '1' || l[0] > '5') {
			rt_task_error(d, csv, start, "condition_label must be 1 to 5, got '%.*s'",
				      (int)(lab.len < 40 ? lab.len : 40), lab.len ? l : "");
			goto done;
		}
		if (abs.len == 0) {
			rt_task_error(d, csv, abs_at, "the abstract is empty");
			goto done;
		}
		char id[32];
		snprintf(id, sizeof id, "%ld", row);
		if (rt_task_add(s, id, abs.data, abs.len, NULL, 1u << (l[0] - '1'),
				rt_task_hash_split(abs.data, abs.len, false), d))
			goto done;
	}
	if (s->ex.len == 0) {
		rt_task_error(d, csv, at, "holds no row after the header");
		goto done;
	}
	rc = 0;
done:
	vec_free(&lab);
	vec_free(&abs);
	return rc;
}

int rt_medabs_read(const char *dir, rt_TaskSet *s, Diag *d)
{
	char path[4096];
	const char *why = NULL;
	snprintf(path, sizeof path, "%s/medical_tc_test.csv", dir);
	Source csv = {0};
	if (source_load(&csv, path, &why))
		return rt_file_error(d, path, "cannot read: %s", why ? why : "unknown error");
	int rc = rt_medabs_parse(&csv, s, d);
	source_free(&csv);
	return rc;
}
