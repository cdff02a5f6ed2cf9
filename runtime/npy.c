/* npy.c: NumPy .npy files, read and written.
 *
 * Layout: "\x93NUMPY", major, minor, header length (u16 for v1, u32 for v2
 * and v3), then a Python dict literal with exactly the keys 'descr',
 * 'fortran_order' and 'shape', then the raw C-order data.
 *
 * Reading treats the file as hostile: the version must be 1.0, 2.0 or 3.0,
 * the header length must fit in the file (and in 1 MiB), the dict must
 * parse with each key once, fortran_order must be False, the shape a tuple
 * of at most RT_MAX_RANK non-negative ints, and the data must be exactly
 * numel * itemsize bytes: no truncation, no trailing bytes. Dtypes '<f4',
 * '<i4' and '|u1' load as they are; '<f8' converts to f32 and '<i8' to i32,
 * refusing values outside the i32 range. Sizes are checked before anything
 * is allocated, so a header claiming a huge shape costs nothing. Every
 * error names the file and the problem.
 *
 * Writing produces a v1.0 header padded with spaces to a multiple of 64
 * bytes, like numpy, through the atomic temporary-file-and-rename path. */
#include "rt.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

enum { NPY_MAX_HEADER = 1 << 20, NPY_CHUNK = 8192 };

typedef enum NpyKind { NPY_F4, NPY_I4, NPY_U1, NPY_F8, NPY_I8 } NpyKind;

static const struct {
	const char *descr;
	NpyKind kind;
	int size;
	rt_DType to;
} npy_types[] = {
	{"<f4", NPY_F4, 4, RT_F32}, {"<i4", NPY_I4, 4, RT_I32}, {"|u1", NPY_U1, 1, RT_U8},
	{"<u1", NPY_U1, 1, RT_U8},  {"<f8", NPY_F8, 8, RT_F32}, {"<i8", NPY_I8, 8, RT_I32},
};

/* The parsed header dict. */
typedef struct NpyHeader {
	int type;       /* index into npy_types, -1 until seen */
	int fortran;    /* -1 until seen */
	int rank;       /* -1 until seen */
	int64_t dim[RT_MAX_RANK];
} NpyHeader;

typedef struct Lex {
	const char *start, *p, *end;
	const char *file;
	Diag *d;
} Lex;

static void skip_ws(Lex *l)
{
	while (l->p < l->end && isspace((unsigned char)*l->p))
		l->p++;
}

static int expect(Lex *l, char c)
{
	skip_ws(l);
	if (l->p >= l->end || *l->p != c)
		return rt_file_error(l->d, l->file, "npy header: expected '%c' at byte %d of "
				     "the header", c, (int)(l->p - l->start));
	l->p++;
	return 0;
}

/* string := '...' | "..." without escapes */
static int parse_string(Lex *l, char *buf, size_t n)
{
	skip_ws(l);
	if (l->p >= l->end || (*l->p != '\'' && *l->p != '"'))
		return rt_file_error(l->d, l->file, "npy header: expected a quoted string");
	char q = *l->p++;
	size_t i = 0;
	while (l->p < l->end && *l->p != q) {
		if (i + 1 >= n || *l->p == '\\')
			return rt_file_error(l->d, l->file, "npy header: string too long or escaped");
		buf[i++] = *l->p++;
	}
	if (l->p >= l->end)
		return rt_file_error(l->d, l->file, "npy header: unterminated string");
	l->p++;
	buf[i] = 0;
	return 0;
}

static int parse_bool(Lex *l, int *out)
{
	skip_ws(l);
	size_t left = (size_t)(l->end - l->p);
	if (left >= 4 && !memcmp(l->p, "True", 4)) {
		l->p += 4;
		*out = 1;
		return 0;
	}
	if (left >= 5 && !memcmp(l->p, "False", 5)) {
		l->p += 5;
		*out = 0;
		return 0;
	}
	return rt_file_error(l->d, l->file, "npy header: fortran_order must be True or False");
}

static int parse_int(Lex *l, int64_t *out)
{
	skip_ws(l);
	if (l->p >= l->end || !isdigit((unsigned char)*l->p))
		return rt_file_error(l->d, l->file, "npy header: shape entries must be "
				     "non-negative integers");
	int64_t v = 0;
	while (l->p < l->end && isdigit((unsigned char)*l->p)) {
		if (v > (INT64_MAX - 9) / 10)
			return rt_file_error(l->d, l->file, "npy header: shape entry too large");
		v = v * 10 + (*l->p++ - '0');
	}
	if (l->p < l->end && *l->p == 'L')   /* Python 2 long */
		l->p++;
	*out = v;
	return 0;
}

/* tuple := '(' ')' | '(' int ',' ')' | '(' int (',' int)+ [','] ')' */
static int parse_shape(Lex *l, NpyHeader *h)
{
	if (expect(l, '('))
		return -1;
	h->rank = 0;
	int comma = 0;
	for (;;) {
		skip_ws(l);
		if (l->p < l->end && *l->p == ')') {
			l->p++;
			break;
		}
		if (h->rank > 0 && !comma)
			return rt_file_error(l->d, l->file, "npy header: expected ',' in shape");
		if (h->rank == RT_MAX_RANK)
			return rt_file_error(l->d, l->file, "npy header: shape has more than %d "
					     "dimensions", RT_MAX_RANK);
		if (parse_int(l, &h->dim[h->rank]))
			return -1;
		h->rank++;
		skip_ws(l);
		comma = l->p < l->end && *l->p == ',';
		if (comma)
			l->p++;
	}
	if (h->rank == 1 && !comma)
		return rt_file_error(l->d, l->file, "npy header: a one-element shape needs a "
				     "trailing comma, as in (3,)");
	return 0;
}

static int parse_value(Lex *l, const char *key, NpyHeader *h)
{
	if (!strcmp(key, "descr")) {
		char descr[32];
		if (h->type >= 0 || parse_string(l, descr, sizeof descr))
			return h->type >= 0 ? rt_file_error(l->d, l->file, "npy header: "
							    "duplicate key 'descr'") : -1;
		for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
			if (!strcmp(descr, npy_types[i].descr))
				h->type = (int)i;
		if (h->type < 0)
			return rt_file_error(l->d, l->file, "unsupported dtype '%s'%s (supported: "
					     "<f4 <i4 |u1 <f8 <i8)", descr,
					     descr[0] == '>' ? ", big-endian" : "");
		return 0;
	}
	if (!strcmp(key, "fortran_order")) {
		if (h->fortran >= 0)
			return rt_file_error(l->d, l->file, "npy header: duplicate key "
					     "'fortran_order'");
		if (parse_bool(l, &h->fortran))
			return -1;
		if (h->fortran)
			return rt_file_error(l->d, l->file, "fortran_order True is not supported; "
					     "save a C-contiguous array");
		return 0;
	}
	if (!strcmp(key, "shape")) {
		if (h->rank >= 0)
			return rt_file_error(l->d, l->file, "npy header: duplicate key 'shape'");
		return parse_shape(l, h);
	}
	return rt_file_error(l->d, l->file, "npy header: unknown key '%s'", key);
}

/* dict := '{' (string ':' value ',')* [string ':' value] '}' */
static int parse_header(const char *text, size_t n, const char *file, NpyHeader *h, Diag *d)
{
	Lex l = {text, text, text + n, file, d};
	h->type = h->fortran = h->rank = -1;
	if (expect(&l, '{'))
		return -1;
	for (;;) {
		skip_ws(&l);
		if (l.p < l.end && *l.p == '}') {
			l.p++;
			break;
		}
		char key[32];
		if (parse_string(&l, key, sizeof key) || expect(&l, ':') ||
		    parse_value(&l, key, h))
			return -1;
		skip_ws(&l);
		if (l.p < l.end && *l.p == ',')
			l.p++;
		else if (l.p >= l.end || *l.p != '}')
			return rt_file_error(d, file, "npy header: expected ',' or '}'");
	}
	skip_ws(&l);
	if (l.p != l.end)
		return rt_file_error(d, file, "npy header: junk after the dict");
	if (h->type < 0 || h->fortran < 0 || h->rank < 0)
		return rt_file_error(d, file, "npy header: needs 'descr', 'fortran_order' and "
				     "'shape'");
	return 0;
}

/* Converting reads for the 8-byte types, in chunks. */
static int read_convert(rt_Reader *r, uint64_t off, NpyKind kind, void *out, int64_t n,
			Diag *d)
{
	unsigned char buf[NPY_CHUNK];
	for (int64_t i = 0; i < n;) {
		int64_t k = n - i < NPY_CHUNK / 8 ? n - i : NPY_CHUNK / 8;
		if (rt_reader_read(r, off + (uint64_t)i * 8, buf, (size_t)k * 8, d))
			return -1;
		for (int64_t j = 0; j < k; j++) {
			if (kind == NPY_F8) {
				double v;
				memcpy(&v, buf + j * 8, 8);
				((float *)out)[i + j] = (float)v;
			} else {
				int64_t v;
				memcpy(&v, buf + j * 8, 8);
				if (v < INT32_MIN || v > INT32_MAX)
					return rt_file_error(d, r->name, "element %lld is %lld, "
							     "outside the i32 range",
							     (long long)(i + j), (long long)v);
				((int32_t *)out)[i + j] = (int32_t)v;
			}
		}
		i += k;
	}
	return 0;
}

static int read_npy(rt_Reader *r, rt_Tensor *out, Diag *d)
{
	const char *file = r->name;
	unsigned char pre[12];
	char *text = NULL;
	memset(out, 0, sizeof *out);
	if (r->size < 10 || rt_reader_read(r, 0, pre, 10, d))
		return rt_file_error(d, file, "not a .npy file: too short");
	if (memcmp(pre, "\x93NUMPY", 6))
		return rt_file_error(d, file, "not a .npy file: bad magic");
	if (pre[6] < 1 || pre[6] > 3 || pre[7] != 0)
		return rt_file_error(d, file, "unsupported .npy version %d.%d", pre[6], pre[7]);
	uint64_t hlen, start;
	if (pre[6] == 1) {
		hlen = pre[8] | (uint64_t)pre[9] << 8;
		start = 10;
	} else {
		if (rt_reader_read(r, 10, pre + 10, 2, d))
			return -1;
		hlen = pre[8] | (uint64_t)pre[9] << 8 | (uint64_t)pre[10] << 16 |
		       (uint64_t)pre[11] << 24;
		start = 12;
	}
	if (hlen > r->size - start || hlen > NPY_MAX_HEADER)
		return rt_file_error(d, file, "npy header length %llu does not fit the file "
				     "(%llu bytes)", (unsigned long long)hlen,
				     (unsigned long long)r->size);
	text = mem_alloc(hlen + 1);
	if (!text)
		return rt_file_error(d, file, "out of memory");
	NpyHeader h;
	if (rt_reader_read(r, start, text, hlen, d) ||
	    parse_header(text, hlen, file, &h, d))
		goto fail;
	int size = npy_types[h.type].size;
	uint64_t avail = r->size - start - hlen;
	/* Bound the product before multiplying, so a hostile shape cannot
	 * overflow; zero dims are skipped, so (2^40, 2^40, 0) is refused too
	 * rather than left to overflow whoever multiplies the dims later. */
	const int64_t limit = ((int64_t)1 << 62) / size;
	int64_t numel = 1, prod = 1;
	for (int i = 0; i < h.rank; i++) {
		if (h.dim[i] == 0) {
			numel = 0;
			continue;
		}
		if (prod > limit / h.dim[i]) {
			rt_file_error(d, file, "shape is too large");
			goto fail;
		}
		prod *= h.dim[i];
	}
	numel = numel ? prod : 0;
	if ((uint64_t)numel * (uint64_t)size != avail) {
		rt_file_error(d, file, "data is %llu bytes but the shape and dtype '%s' need "
			      "%llu", (unsigned long long)avail, npy_types[h.type].descr,
			      (unsigned long long)numel * (unsigned long long)size);
		goto fail;
	}
	out->dtype = npy_types[h.type].to;
	out->rank = h.rank;
	memcpy(out->dim, h.dim, sizeof h.dim);
	size_t nbytes = (size_t)numel * (size_t)rt_dtype_size(out->dtype);
	out->data = mem_aligned(nbytes ? nbytes : 1, RT_ALIGN);
	if (!out->data) {
		rt_file_error(d, file, "out of memory for %zu bytes", nbytes);
		goto fail;
	}
	NpyKind kind = npy_types[h.type].kind;
	uint64_t off = start + hlen;
	int rc = kind == NPY_F8 || kind == NPY_I8 ? read_convert(r, off, kind, out->data, numel, d)
						  : rt_reader_read(r, off, out->data, nbytes, d);
	if (rc)
		goto fail;
	mem_free(text);
	return 0;
fail:
	mem_free(text);
	rt_tensor_free(out);
	return -1;
}

int rt_npy_read(const char *path, rt_Tensor *out, Diag *d)
{
	rt_Reader r;
	memset(out, 0, sizeof *out);
	if (rt_reader_open(&r, path, d))
		return -1;
	int rc = read_npy(&r, out, d);
	rt_reader_close(&r);
	return rc;
}

int rt_npy_read_mem(const char *name, const void *data, size_t len, rt_Tensor *out, Diag *d)
{
	rt_Reader r;
	rt_reader_mem(&r, name, data, len);
	return read_npy(&r, out, d);
}

/* "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" padded with
 * spaces and a final newline so the data starts at a multiple of 64. */
static size_t format_header(const rt_Tensor *t, char *buf, size_t n)
{
	static const char *const descr[RT_DTYPE_COUNT] = {"<f4", "<i4", "|u1"};
	size_t at = (size_t)snprintf(buf, n, "{'descr': '%s', 'fortran_order': False, 'shape': (",
				     descr[t->dtype]);
	for (int i = 0; i < t->rank; i++)
		at += (size_t)snprintf(buf + at, n - at, "%s%lld", i ? ", " : "",
				       (long long)t->dim[i]);
	at += (size_t)snprintf(buf + at, n - at, "%s), }", t->rank == 1 ? "," : "");
	while ((10 + at + 1) % 64)
		buf[at++] = ' ';
	buf[at++] = '\n';
	return at;
}

int rt_npy_write(const char *path, const rt_Tensor *t, Diag *d)
{
	if ((unsigned)t->dtype >= RT_DTYPE_COUNT || t->rank < 0 || t->rank > RT_MAX_RANK)
		return rt_file_error(d, path, "cannot write: bad dtype or rank");
	for (int i = 0; i < t->rank; i++)
		if (t->dim[i] < 0)
			return rt_file_error(d, path, "cannot write: negative dimension");
	char header[256];
	unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
	size_t hlen = format_header(t, header, sizeof header);
	pre[8] = (unsigned char)(hlen & 0xff);
	pre[9] = (unsigned char)(hlen >> 8);
	rt_AtomicFile a;
	if (rt_atomic_begin(&a, path, d))
		return -1;
	if (rt_atomic_write(&a, pre, sizeof pre, d) || rt_atomic_write(&a, header, hlen, d) ||
	    rt_atomic_write(&a, t->data, (size_t)rt_nbytes(t), d)) {
		rt_atomic_abort(&a);
		return -1;
	}
	return rt_atomic_commit(&a, d);
}
