/* file.c: the byte plumbing under the tensor file readers and writers.
 *
 * An rt_Reader reads ranges of an untrusted input, either a file or a
 * memory buffer (the fuzz targets use the latter), and knows its exact
 * size up front, so format readers can check every length against the size
 * before they allocate or read anything. A short read is an error naming
 * the file, never a crash.
 *
 * rt_AtomicFile writes a file so that a crash never leaves a half-written
 * one: bytes go to "<path>.tmp.<pid>" in the same folder, then fflush,
 * fsync(file), rename over path, fsync(folder). Until the rename the old
 * file is untouched; rt_atomic_abort removes the temporary.
 *
 * rt_json_too_deep finds JSON nested beyond cJSON's limit before cJSON
 * does, since cJSON reports it as any other parse failure. */
#include "rt.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int rt_file_error(Diag *d, const char *path, const char *fmt, ...)
{
	Source src = {.name = (char *)(path ? path : "<memory>")};
	SrcLoc loc = {.src = &src};
	va_list ap;
	va_start(ap, fmt);
	diag_verror(d, loc, fmt, ap);
	va_end(ap);
	return -1;
}

static_assert(RT_JSON_MAX_DEPTH == CJSON_NESTING_LIMIT, "rt.h states cJSON's nesting limit");

size_t rt_json_too_deep(const char *text, size_t len)
{
	size_t depth = 0;
	bool in = false, esc = false;
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (in && esc)
			esc = false;
		else if (in) {
			esc = c == '\\';
			in = c != '"';
		} else if (c == '"')
			in = true;
		else if ((c == '[' || c == '{') && ++depth > RT_JSON_MAX_DEPTH)
			return i;
		else if ((c == ']' || c == '}') && depth)
			depth--;
	}
	return SIZE_MAX;
}

int rt_reader_open(rt_Reader *r, const char *path, Diag *d)
{
	memset(r, 0, sizeof *r);
	r->name = path;
	const char *why;
	struct stat st;
	int fd = file_open_regular(path, &why);
	if (fd < 0)
		return rt_file_error(d, path, "cannot read: %s", why);
	if (fstat(fd, &st) || !(r->f = fdopen(fd, "rb"))) {
		rt_file_error(d, path, "cannot read: %s", strerror(errno));
		close(fd);
		return -1;
	}
	r->size = (uint64_t)st.st_size;
	return 0;
}

void rt_reader_mem(rt_Reader *r, const char *name, const void *data, size_t len)
{
	memset(r, 0, sizeof *r);
	r->name = name;
	r->mem = data;
	r->size = len;
}

void rt_reader_close(rt_Reader *r)
{
	if (r->f)
		fclose(r->f);
	r->f = NULL;
}

int rt_reader_read(rt_Reader *r, uint64_t off, void *buf, size_t n, Diag *d)
{
	if (off > r->size || n > r->size - off)
		return rt_file_error(d, r->name, "truncated: needs %llu bytes at offset %llu, "
				     "file has %llu", (unsigned long long)n,
				     (unsigned long long)off, (unsigned long long)r->size);
	if (r->mem) {
		memcpy(buf, r->mem + off, n);
		return 0;
	}
	if (off != r->pos && fseeko(r->f, (off_t)off, SEEK_SET))
		return rt_file_error(d, r->name, "seek failed: %s", strerror(errno));
	if (fread(buf, 1, n, r->f) != n)
		return rt_file_error(d, r->name, "read failed at offset %llu%s%s",
				     (unsigned long long)off, ferror(r->f) ? ": " : "",
				     ferror(r->f) ? strerror(errno) : " (file shrank?)");
	r->pos = off + n;
	return 0;
}

int rt_atomic_begin(rt_AtomicFile *a, const char *path, Diag *d)
{
	memset(a, 0, sizeof *a);
	size_t n = strlen(path) + 32;
	a->path = path;
	a->tmp = mem_alloc(n);
	if (!a->tmp)
		return rt_file_error(d, path, "out of memory");
	snprintf(a->tmp, n, "%s.tmp.%ld", path, (long)getpid());
	a->f = fopen(a->tmp, "wb");
	if (!a->f) {
		rt_file_error(d, path, "cannot create %s: %s", a->tmp, strerror(errno));
		mem_free(a->tmp);
		a->tmp = NULL;
		return -1;
	}
	return 0;
}

int rt_atomic_write(rt_AtomicFile *a, const void *p, size_t n, Diag *d)
{
	if (n && fwrite(p, 1, n, a->f) != n)
		return rt_file_error(d, a->path, "write to %s failed: %s", a->tmp, strerror(errno));
	return 0;
}

void rt_atomic_abort(rt_AtomicFile *a)
{
	if (a->f)
		fclose(a->f);
	if (a->tmp)
		unlink(a->tmp);
	mem_free(a->tmp);
	memset(a, 0, sizeof *a);
}

/* The folder part of path, for the fsync that makes the rename durable. */
static int sync_folder(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[4096];
	if (!slash)
		strcpy(dir, ".");
	else if (slash == path)
		strcpy(dir, "/");
	else {
		size_t n = (size_t)(slash - path);
		if (n >= sizeof dir)
			return -1;
		memcpy(dir, path, n);
		dir[n] = 0;
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

int rt_atomic_commit(rt_AtomicFile *a, Diag *d)
{
	FILE *f = a->f;
	a->f = NULL;
	if (fflush(f) || fsync(fileno(f))) {
		rt_file_error(d, a->path, "writing %s failed: %s", a->tmp, strerror(errno));
		fclose(f);
		goto fail;
	}
	if (fclose(f)) {
		rt_file_error(d, a->path, "closing %s failed: %s", a->tmp, strerror(errno));
		goto fail;
	}
	if (rename(a->tmp, a->path)) {
		rt_file_error(d, a->path, "cannot rename %s into place: %s", a->tmp,
			      strerror(errno));
		goto fail;
	}
	mem_free(a->tmp);
	a->tmp = NULL;
	if (sync_folder(a->path))
		return rt_file_error(d, a->path, "written, but syncing its folder failed: %s",
				     strerror(errno));
	return 0;
fail:
	rt_atomic_abort(a);
	return -1;
}
