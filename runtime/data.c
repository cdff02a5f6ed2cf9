/* data.c: the training corpus as a token stream, and the windows the
 * trainer reads from it.
 *
 * Loading: a file, or a folder read recursively: every regular file whose
 * name does not start with '.' (so .git and editor droppings stay out),
 * ordered by its path relative to the folder compared bytewise (what
 * `find . -type f | LC_ALL=C sort` prints), concatenated with nothing in
 * between. The tokenizer is byte-level: token = byte value, vocabulary 256.
 * Symbolic links are followed; folders nest at most MAX_DEPTH deep, which
 * also stops link cycles. Tokens are stored as int32 (4 bytes per byte of
 * text) so a later tokenizer can feed the same windows.
 *
 * Split: the validation part is the tail, nval = floor(ntok * val_fraction)
 * tokens; the training part is the head. Nothing is shuffled at load time.
 *
 * Windows are seq + 1 tokens; a batch row is tokens = window[0:seq],
 * targets = window[1:seq+1]. Where window (step, row) starts depends only
 * on (order, seed, step, row, batch, seq) and the split, never on state
 * kept between calls, so a run resumes bit-exactly from its step number:
 *
 *   sequential: W = (ntrain - 1) / seq whole windows start at multiples of
 *               seq (consecutive windows share one token, so every token
 *               is a target once per pass); window (step, row) is number
 *               (step * batch + row) mod W. Past the end it wraps.
 *   random:     start = bits(bits(key, step), row) mod (ntrain - seq), with
 *               key = rt_init_key(seed, "data.train") and bits = rt_rng_bits;
 *               every start that leaves a whole window is possible.
 *
 * Validation windows start at ntrain + j * seq, j = 0, 1, ... (the val
 * split's own windows, in order, targets never overlapping); only whole
 * batches are served. */
#include "rt.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { MAX_DEPTH = 32, CHUNK = 65536 };

/* --- loading --- */

static int list_files(const char *dir, int depth, Vec *out, Diag *d);

static int join(char **out, const char *a, const char *b, Diag *d)
{
	size_t n = strlen(a) + strlen(b) + 2;
	*out = mem_alloc(n);
	if (!*out)
		return rt_file_error(d, a, "out of memory");
	snprintf(*out, n, "%s/%s", a, b);
	return 0;
}

/* One folder entry: a file is listed, a folder is walked. */
static int visit(const char *dir, const char *name, int depth, Vec *out, Diag *d)
{
	char *path;
	struct stat st;
	if (join(&path, dir, name, d))
		return -1;
	if (stat(path, &st)) {
		rt_file_error(d, path, "cannot stat: %s", strerror(errno));
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		int rc = list_files(path, depth + 1, out, d);
		mem_free(path);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		mem_free(path);
		return 0;
	}
	char **slot = vec_push(out, sizeof *slot);
	if (!slot) {
		rt_file_error(d, path, "out of memory");
		goto fail;
	}
	*slot = path;
	return 0;
fail:
	mem_free(path);
	return -1;
}

static int list_files(const char *dir, int depth, Vec *out, Diag *d)
{
	if (depth > MAX_DEPTH)
		return rt_file_error(d, dir, "folders nest more than %d deep (a link cycle?)",
				     MAX_DEPTH);
	DIR *dp = opendir(dir);
	if (!dp)
		return rt_file_error(d, dir, "cannot open folder: %s", strerror(errno));
	int rc = 0;
	struct dirent *e;
	while (!rc && (e = readdir(dp)))
		if (e->d_name[0] != '.')
			rc = visit(dir, e->d_name, depth, out, d);
	closedir(dp);
	return rc;
}

static int by_path(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_paths(Vec *v)
{
	for (size_t i = 0; i < v->len; i++)
		mem_free(VEC_AT(*v, char *, i));
	vec_free(v);
}

/* Append file `path` (size bytes, known from its reader) as tokens at tok. */
static int read_tokens(rt_Reader *r, int32_t *tok, uint8_t *buf, Diag *d)
{
	for (uint64_t at = 0; at < r->size;) {
		size_t n = r->size - at < CHUNK ? (size_t)(r->size - at) : CHUNK;
		if (rt_reader_read(r, at, buf, n, d))
			return -1;
		for (size_t i = 0; i < n; i++)
			tok[at + i] = buf[i];
		at += n;
	}
	return 0;
}

static int split(rt_Data *dt, double val_fraction, const char *name, Diag *d)
{
	if (!(val_fraction >= 0 && val_fraction < 1))
		return rt_file_error(d, name, "validation fraction %g is not in [0, 1)",
				     val_fraction);
	int64_t nval = (int64_t)floor((double)dt->ntok * val_fraction);
	dt->ntrain = dt->ntok - nval;
	return 0;
}

/* Every path's size is summed before anything is read, so the tokens are
 * one allocation; a file that changes size meanwhile is an error. */
static int load_paths(Vec *paths, const char *name, double val_fraction, rt_Data *out, Diag *d)
{
	uint8_t *buf = NULL;
	uint64_t total = 0;
	for (size_t i = 0; i < paths->len; i++) {
		struct stat st;
		const char *p = VEC_AT(*paths, char *, i);
		if (stat(p, &st))
			return rt_file_error(d, p, "cannot stat: %s", strerror(errno));
		total += (uint64_t)st.st_size;
	}
	if (total > (uint64_t)INT64_MAX / 8)
		return rt_file_error(d, name, "corpus too large");
	out->tok = mem_alloc(total ? (size_t)total * sizeof *out->tok : 1);
	buf = mem_alloc(CHUNK);
	if (!out->tok || !buf) {
		rt_file_error(d, name, "out of memory for %llu tokens", (unsigned long long)total);
		goto fail;
	}
	for (size_t i = 0; i < paths->len; i++) {
		rt_Reader r;
		if (rt_reader_open(&r, VEC_AT(*paths, char *, i), d))
			goto fail;
		int rc = (uint64_t)out->ntok + r.size > total
				 ? rt_file_error(d, r.name, "grew while the corpus was read")
				 : read_tokens(&r, out->tok + out->ntok, buf, d);
		out->ntok += (int64_t)r.size;
		rt_reader_close(&r);
		if (rc)
			goto fail;
	}
	out->nfile = (int)paths->len;
	mem_free(buf);
	return split(out, val_fraction, name, d);
fail:
	mem_free(buf);
	rt_data_free(out);
	return -1;
}

int rt_data_load(const char *path, double val_fraction, rt_Data *out, Diag *d)
{
	memset(out, 0, sizeof *out);
	Vec paths = {0};
	struct stat st;
	if (stat(path, &st))
		return rt_file_error(d, path, "cannot open: %s", strerror(errno));
	int rc;
	if (S_ISDIR(st.st_mode))
		rc = list_files(path, 0, &paths, d);
	else {
		char **slot = vec_push(&paths, sizeof *slot);
		rc = !slot || !(*slot = mem_strdup(path)) ? rt_file_error(d, path, "out of memory")
							  : 0;
	}
	if (!rc && !paths.len)
		rc = rt_file_error(d, path, "no files to read");
	if (!rc) {
		/* Every path shares the prefix `path/`, so sorting the full paths
		 * sorts the relative ones. */
		qsort(paths.data, paths.len, sizeof(char *), by_path);
		rc = load_paths(&paths, path, val_fraction, out, d);
	}
	free_paths(&paths);
	return rc;
}

int rt_data_from_bytes(const void *bytes, size_t n, double val_fraction, rt_Data *out, Diag *d)
{
	memset(out, 0, sizeof *out);
	out->tok = mem_alloc(n ? n * sizeof *out->tok : 1);
	if (!out->tok)
		return rt_file_error(d, "<memory>", "out of memory");
	for (size_t i = 0; i < n; i++)
		out->tok[i] = ((const uint8_t *)bytes)[i];
	out->ntok = (int64_t)n;
	if (split(out, val_fraction, "<memory>", d)) {
		rt_data_free(out);
		return -1;
	}
	return 0;
}

void rt_data_free(rt_Data *dt)
{
	mem_free(dt->tok);
	memset(dt, 0, sizeof *dt);
}

/* --- windows --- */

int64_t rt_data_window(const rt_Data *dt, rt_Order order, uint64_t seed, int64_t step,
		       int64_t row, int64_t batch, int64_t seq)
{
	if (seq < 1 || batch < 1 || step < 0 || row < 0 || row >= batch || dt->ntrain < seq + 1)
		return -1;
	if (order == RT_ORDER_SEQUENTIAL) {
		/* 128-bit so step * batch cannot wrap before the modulus */
		unsigned __int128 w = (uint64_t)((dt->ntrain - 1) / seq);
		unsigned __int128 k = ((unsigned __int128)step * (uint64_t)batch + (uint64_t)row) % w;
		return (int64_t)k * seq;
	}
	uint64_t key = rt_init_key(seed, "data.train");
	uint64_t h = rt_rng_bits(rt_rng_bits(key, (uint64_t)step), (uint64_t)row);
	return (int64_t)(h % (uint64_t)(dt->ntrain - seq));
}

static void fill_row(const int32_t *w, int64_t seq, int32_t *tokens, int32_t *targets)
{
	memcpy(tokens, w, (size_t)seq * sizeof *w);
	memcpy(targets, w + 1, (size_t)seq * sizeof *w);
}

int rt_data_batch(const rt_Data *dt, rt_Order order, uint64_t seed, int64_t step, int64_t batch,
		  int64_t seq, int32_t *tokens, int32_t *targets, Diag *d)
{
	if (seq < 1 || batch < 1 || step < 0)
		return rt_file_error(d, "data", "bad batch %lld x %lld at step %lld",
				     (long long)batch, (long long)seq, (long long)step);
	if (dt->ntrain < seq + 1)
		return rt_file_error(d, "data", "the training split has %lld tokens, a window "
				     "needs %lld", (long long)dt->ntrain, (long long)seq + 1);
	for (int64_t i = 0; i < batch; i++) {
		int64_t at = rt_data_window(dt, order, seed, step, i, batch, seq);
		fill_row(dt->tok + at, seq, tokens + i * seq, targets + i * seq);
	}
	return 0;
}

int64_t rt_data_val_batches(const rt_Data *dt, int64_t batch, int64_t seq)
{
	int64_t nval = dt->ntok - dt->ntrain;
	if (seq < 1 || batch < 1 || nval < seq + 1)
		return 0;
	return (nval - 1) / seq / batch;
}

int rt_data_val_batch(const rt_Data *dt, int64_t index, int64_t batch, int64_t seq,
		      int32_t *tokens, int32_t *targets, Diag *d)
{
	if (index < 0 || index >= rt_data_val_batches(dt, batch, seq))
		return rt_file_error(d, "data", "validation batch %lld of %lld x %lld does not "
				     "exist (the split holds %lld)", (long long)index,
				     (long long)batch, (long long)seq,
				     (long long)rt_data_val_batches(dt, batch, seq));
	for (int64_t i = 0; i < batch; i++) {
		int64_t at = dt->ntrain + (index * batch + i) * seq;
		fill_row(dt->tok + at, seq, tokens + i * seq, targets + i * seq);
	}
	return 0;
}
