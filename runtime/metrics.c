/* metrics.c: the run's metrics.csv, one row per logged step.
 *
 * Header: step,loss,lr,grad_norm,tokens_per_s,val_loss,elapsed_s. Numbers
 * are printed with %.9g (a float32 value reads back exactly); a NaN field
 * is left empty, meaning "not measured at this step". Each row is flushed
 * to the kernel as it is written, so a SIGKILL loses at most the row being
 * written (an OS crash may lose the rows not yet on disk: no fsync per row).
 *
 * Resuming from a checkpoint at step S calls rt_metrics_open with
 * keep_through = S: rows with step <= S stay, later ones (logged after the
 * checkpoint by the run that crashed) go, and so does a last line cut off
 * without its newline. The file is rewritten through rt_AtomicFile, so a
 * crash during the rewrite leaves the old file. A complete line that is not
 * a row, or a different header, is an error rather than data silently
 * thrown away. */
#include "rt.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char header[] = "step,loss,lr,grad_norm,tokens_per_s,val_loss,elapsed_s\n";

enum { MAX_CSV = 1 << 30 };

static int read_all(const char *path, char **text, size_t *len, Diag *d)
{
	rt_Reader r;
	if (rt_reader_open(&r, path, d))
		return -1;
	int rc = -1;
	if (r.size > MAX_CSV)
		rt_file_error(d, path, "too large to rewrite (%llu bytes)",
			      (unsigned long long)r.size);
	else if (!(*text = mem_alloc((size_t)r.size + 1)))
		rt_file_error(d, path, "out of memory");
	else if (rt_reader_read(&r, 0, *text, (size_t)r.size, d)) {
		mem_free(*text);
		*text = NULL;
	} else {
		(*text)[r.size] = 0;
		*len = (size_t)r.size;
		rc = 0;
	}
	rt_reader_close(&r);
	return rc;
}

/* The step of a row (the digits before the first comma), -1 if none. */
static int64_t row_step(const char *line, const char *end)
{
	int64_t v = 0;
	const char *p = line;
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		if (v > (INT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (*p - '0');
	}
	return p > line && p < end && *p == ',' ? v : -1;
}

/* Copy the header and the complete rows with step <= keep_through. */
static int filter(const char *path, const char *text, size_t len, int64_t keep_through,
		  rt_AtomicFile *a, Diag *d)
{
	size_t hl = sizeof header - 1;
	if (len < hl || memcmp(text, header, hl))
		return rt_file_error(d, path, "does not start with the header %.*s", (int)hl - 1,
				     header);
	if (rt_atomic_write(a, header, hl, d))
		return -1;
	int line = 2;   /* the first row */
	for (const char *p = text + hl, *end = text + len; p < end; line++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break;   /* cut off by a crash mid-row */
		int64_t s = row_step(p, nl);
		if (s < 0)
			return rt_file_error(d, path, "line %d is not a metrics row", line);
		if (s <= keep_through && rt_atomic_write(a, p, (size_t)(nl + 1 - p), d))
			return -1;
		p = nl + 1;
	}
	return 0;
}

/* Replace the file with its first rows (or the header alone). */
static int rewrite(const char *path, int64_t keep_through, Diag *d)
{
	char *text = NULL;
	size_t len = 0;
	int fresh = keep_through < 0;
	if (!fresh) {
		FILE *f = fopen(path, "rb");
		fresh = !f && errno == ENOENT;
		if (f)
			fclose(f);
	}
	if (!fresh && read_all(path, &text, &len, d))
		return -1;
	rt_AtomicFile a;
	if (rt_atomic_begin(&a, path, d)) {
		mem_free(text);
		return -1;
	}
	int rc = fresh ? rt_atomic_write(&a, header, sizeof header - 1, d)
		       : filter(path, text, len, keep_through, &a, d);
	mem_free(text);
	if (rc) {
		rt_atomic_abort(&a);
		return -1;
	}
	return rt_atomic_commit(&a, d);
}

int rt_metrics_open(rt_Metrics *m, const char *run_dir, int64_t keep_through, Diag *d)
{
	memset(m, 0, sizeof *m);
	size_t n = strlen(run_dir) + sizeof "/metrics.csv";
	if (!(m->path = mem_alloc(n)))
		return rt_file_error(d, run_dir, "out of memory");
	snprintf(m->path, n, "%s/metrics.csv", run_dir);
	if (rewrite(m->path, keep_through, d))
		goto fail;
	if (!(m->f = fopen(m->path, "ab"))) {
		rt_file_error(d, m->path, "cannot open for appending: %s", strerror(errno));
		goto fail;
	}
	return 0;
fail:
	mem_free(m->path);
	m->path = NULL;
	return -1;
}

static void field(FILE *f, double v)
{
	if (isnan(v))
		fputs(",", f);
	else
		fprintf(f, ",%.9g", v);
}

int rt_metrics_append(rt_Metrics *m, const rt_MetricsRow *r, Diag *d)
{
	if (r->step < 0)
		return rt_file_error(d, m->path, "negative step %lld", (long long)r->step);
	fprintf(m->f, "%lld", (long long)r->step);
	field(m->f, r->loss);
	field(m->f, r->lr);
	field(m->f, r->grad_norm);
	field(m->f, r->tokens_per_s);
	field(m->f, r->val_loss);
	field(m->f, r->elapsed_s);
	fputc('\n', m->f);
	if (fflush(m->f) || ferror(m->f))
		return rt_file_error(d, m->path, "write failed: %s", strerror(errno));
	return 0;
}

int rt_metrics_close(rt_Metrics *m, Diag *d)
{
	int rc = 0;
	if (m->f && fclose(m->f))
		rc = rt_file_error(d, m->path, "close failed: %s", strerror(errno));
	mem_free(m->path);
	memset(m, 0, sizeof *m);
	return rc;
}
