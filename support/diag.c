/* diag.c: located diagnostics in GCC format, and the source files they quote.
 *
 *   model.msw:12:7: error: matmul shapes [64,128] and [96,64] do not agree
 *      12 |   y = x @ w
 *         |       ^~~~~
 *
 * Messages accumulate in one text buffer; the caller decides where to print
 * it. After DIAG_MAX_ERRORS errors the rest are only counted. */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int source_from_string(Source *s, const char *name, const char *text)
{
	s->name = mem_strdup(name);
	s->text = mem_strdup(text);
	s->len = strlen(text);
	if (!s->name || !s->text) {
		source_free(s);
		return -1;
	}
	return 0;
}

int source_from_mem(Source *s, const char *name, const void *data, size_t len)
{
	memset(s, 0, sizeof *s);
	s->name = mem_strdup(name);
	s->text = len + 1 > len ? mem_alloc(len + 1) : NULL;
	if (!s->name || !s->text) {
		source_free(s);
		return -1;
	}
	/* Like a file read by source_load: the bytes as they are, NUL bytes
	 * included (the readers report them), and a NUL after the last one. */
	if (len)
		memcpy(s->text, data, len);
	s->text[len] = 0;
	s->len = len;
	return 0;
}

int file_open_regular(const char *path, const char **why)
{
	/* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
	 * writer. The type is checked on the descriptor, not on the name, so
	 * nothing can be swapped in between. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	if (fd < 0) {
		*why = strerror(errno);
		return -1;
	}
	if (fstat(fd, &st)) {
		*why = strerror(errno);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		*why = S_ISDIR(st.st_mode)    ? "is a directory, not a file"
		       : S_ISFIFO(st.st_mode) ? "is a FIFO (named pipe), not a regular file"
		       : S_ISSOCK(st.st_mode) ? "is a socket, not a regular file"
					      : "is a device, not a regular file";
		goto fail;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK)) {
		*why = strerror(errno);
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

int source_load(Source *s, const char *path, const char **why)
{
	const char *dummy;
	why = why ? why : &dummy;
	memset(s, 0, sizeof *s);
	int fd = file_open_regular(path, why);
	if (fd < 0)
		return -1;
	FILE *f = fdopen(fd, "rb");
	if (!f) {
		*why = strerror(errno);
		close(fd);
		return -1;
	}
	Vec buf = {0};
	char chunk[65536];
	size_t n;
	int err = 0;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (vec_reserve(&buf, buf.len + n + 1, 1)) {
			err = ENOMEM;
			break;
		}
		memcpy((char *)buf.data + buf.len, chunk, n);
		buf.len += n;
	}
	if (!err && ferror(f))
		err = errno ? errno : EIO;
	fclose(f);
	if (!err && vec_reserve(&buf, buf.len + 1, 1))
		err = ENOMEM;
	if (!err && !(s->name = mem_strdup(path)))
		err = ENOMEM;
	if (err) {
		vec_free(&buf);
		*why = strerror(err);
		return -1;
	}
	((char *)buf.data)[buf.len] = 0;
	s->text = buf.data;
	s->len = buf.len;
	return 0;
}

void source_free(Source *s)
{
	mem_free(s->name);
	mem_free(s->text);
	memset(s, 0, sizeof *s);
}

void diag_init(Diag *d)
{
	memset(d, 0, sizeof *d);
}

void diag_free(Diag *d)
{
	mem_free(d->text);
	diag_init(d);
}

static void append(Diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void vappend(Diag *d, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return;
	size_t need = d->len + (size_t)n + 1;
	if (need > d->cap) {
		size_t cap = d->cap ? d->cap : 256;
		while (cap < need)
			cap *= 2;
		char *t = mem_realloc(d->text, d->cap, cap);
		if (!t)
			return; /* out of memory: the error count still records it */
		d->text = t;
		d->cap = cap;
	}
	vsnprintf(d->text + d->len, (size_t)n + 1, fmt, ap);
	d->len += (size_t)n;
}

static void append(Diag *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vappend(d, fmt, ap);
	va_end(ap);
}

/* Quote line `loc.line` of the source with a caret under column `loc.col`. */
static void quote(Diag *d, SrcLoc loc)
{
	const char *p = loc.src->text, *end = p + loc.src->len;
	for (uint32_t l = 1; l < loc.line && p < end; p++)
		if (*p == '\n')
			l++;
	const char *eol = p;
	while (eol < end && *eol != '\n' && *eol != '\r')
		eol++;
	int w = (int)(eol - p);
	append(d, "%5u | %.*s\n      | ", loc.line, w, p);
	/* Tabs stay tabs so the caret lines up in a terminal. */
	for (uint32_t c = 1; c < loc.col && (int)c <= w; c++)
		append(d, "%c", p[c - 1] == '\t' ? '\t' : ' ');
	append(d, "^");
	for (uint32_t i = 1; i < loc.len && loc.col + i <= (uint32_t)w; i++)
		append(d, "~");
	append(d, "\n");
}

static void message(Diag *d, SrcLoc loc, const char *kind, const char *fmt, va_list ap)
{
	if (loc.src && loc.line)
		append(d, "%s:%u:%u: %s: ", loc.src->name, loc.line, loc.col, kind);
	else if (loc.src)
		append(d, "%s: %s: ", loc.src->name, kind);
	else
		append(d, "mswc: %s: ", kind);
	vappend(d, fmt, ap);
	append(d, "\n");
	if (loc.src && loc.line && loc.src->text)
		quote(d, loc);
}

int diag_verror(Diag *d, SrcLoc loc, const char *fmt, va_list ap)
{
	d->nerror++;
	if (d->nerror <= DIAG_MAX_ERRORS)
		message(d, loc, "error", fmt, ap);
	else if (d->nerror == DIAG_MAX_ERRORS + 1)
		append(d, "mswc: error: too many errors, stopping\n");
	return -1;
}

int diag_error(Diag *d, SrcLoc loc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_verror(d, loc, fmt, ap);
	va_end(ap);
	return -1;
}

void diag_note(Diag *d, SrcLoc loc, const char *fmt, ...)
{
	if (d->nerror > DIAG_MAX_ERRORS)
		return;
	va_list ap;
	va_start(ap, fmt);
	message(d, loc, "note", fmt, ap);
	va_end(ap);
}

int diag_full(const Diag *d)
{
	return d->nerror >= DIAG_MAX_ERRORS;
}

const char *diag_text(const Diag *d)
{
	return d->text ? d->text : "";
}
