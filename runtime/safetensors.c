/* safetensors.c: the Hugging Face safetensors format, read and written.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON, then
 * the byte buffer. The JSON maps each tensor name to {"dtype", "shape",
 * "data_offsets": [begin, end]} (offsets relative to the buffer), plus an
 * optional "__metadata__" object of string values.
 *
 * Reading treats the file as hostile and validates everything before it
 * allocates tensor memory: N within the file (and 100 MB, the reference
 * limit), the header is UTF-8, the JSON parses and only trailing spaces
 * follow it, every entry is an object with exactly those three keys, the
 * dtype is known, the shape has at most RT_MAX_RANK non-negative integer
 * dims (no overflow), offsets are integers with begin <= end <= buffer size
 * and end - begin equal to numel * dtype size, names are unique, and the
 * ranges sorted by offset tile the buffer exactly: no overlap, no hole,
 * nothing left over. F32, I32
 * and U8 load as they are; BOOL loads as U8; F16, BF16 and F64 convert to
 * F32 and I64 to I32 (values outside the i32 range are an error). Each
 * tensor's data lands RT_ALIGN-aligned in one blob owned by the
 * rt_TensorFile; tensors are listed sorted by name.
 *
 * Writing produces the bytes the reference implementation writes: compact
 * JSON with "__metadata__" first, tensors ordered by dtype (F32, I32, U8,
 * the reference's descending dtype order) then by name, data laid out in
 * that order, header padded with spaces to a multiple of 8. The file goes
 * through rt_AtomicFile (temporary, fsync, rename, fsync folder).
 *
 * cJSON allocates through mem_* (its hooks are pointed there), so the
 * allocation-failure tests reach the JSON parser too. */
#include "rt.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_HEADER ((uint64_t)100 << 20)
#define ST_MAX_INT 9007199254740992.0 /* 2^53: JSON numbers above are inexact */

enum { CHUNK = 16384 };

typedef enum Conv { CONV_NONE, CONV_F16, CONV_BF16, CONV_F64, CONV_I64 } Conv;

static const struct {
	const char *name;
	int size;       /* bytes per element in the file */
	rt_DType to;
	Conv conv;
} st_types[] = {
	{"F32", 4, RT_F32, CONV_NONE},  {"I32", 4, RT_I32, CONV_NONE},
	{"U8", 1, RT_U8, CONV_NONE},    {"BOOL", 1, RT_U8, CONV_NONE},
	{"F16", 2, RT_F32, CONV_F16},   {"BF16", 2, RT_F32, CONV_BF16},
	{"F64", 8, RT_F32, CONV_F64},   {"I64", 8, RT_I32, CONV_I64},
};
enum { NTYPE = sizeof st_types / sizeof st_types[0] };

/* Known to the format but not loadable here: a clearer error than "unknown". */
static const char *const st_unsupported[] = {"I8", "I16", "U16", "U32", "U64", "F8_E5M2",
					     "F8_E4M3"};

typedef struct Entry {
	const char *name;    /* points into the cJSON tree */
	int type;            /* index into st_types */
	int rank;
	int64_t dim[RT_MAX_RANK];
	uint64_t begin, end; /* in the buffer */
	uint64_t out;        /* offset of the converted data in the blob */
} Entry;

static void json_hooks(void)
{
	static cJSON_Hooks hooks = {mem_alloc, mem_free};
	cJSON_InitHooks(&hooks);
}

/* --- reading --- */

static int fault(char *why, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fault(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return -1;
}

/* The first fault of s[0, n) as UTF-8 (RFC 3629: no overlong forms, no
 * UTF-16 surrogates, nothing above U+10FFFF): -1 with its offset in *at and
 * what it is in why, or 0 if the bytes are UTF-8. cJSON copies the bytes of
 * strings as they come, so this is the only check they get. */
static int utf8_fault(const unsigned char *s, size_t n, size_t *at, char *why, size_t nwhy)
{
	static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
	for (size_t i = 0; i < n;) {
		unsigned c = s[i];
		int len = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
		uint32_t cp = c & (0xffu >> (len + 1));
		*at = i;
		if (len == 1) {
			i++;
			continue;
		}
		if (!len)
			return fault(why, nwhy, "byte 0x%02X continues a sequence that never started",
				     c);
		if (c >= 0xf8)
			return fault(why, nwhy, "byte 0x%02X never occurs in UTF-8", c);
		for (int k = 1; k < len; k++) {
			if (i + (size_t)k >= n || (s[i + k] & 0xc0) != 0x80)
				return fault(why, nwhy, "a %d-byte sequence (lead byte 0x%02X) ends "
					     "after %d byte%s", len, c, k, k > 1 ? "s" : "");
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < least[len])
			return fault(why, nwhy, "overlong %d-byte encoding of U+%04X", len,
				     (unsigned)cp);
		if (cp >= 0xd800 && cp <= 0xdfff)
			return fault(why, nwhy, "UTF-16 surrogate U+%04X", (unsigned)cp);
		if (cp > 0x10ffff)
			return fault(why, nwhy, "U+%X is above U+10FFFF", (unsigned)cp);
		i += (size_t)len;
	}
	return 0;
}

/* Where the JSON string holding byte `at` starts (after its quote), or
 * SIZE_MAX if no string holds it. */
static size_t string_start(const char *text, size_t at)
{
	size_t start = SIZE_MAX;
	bool in = false, esc = false;
	for (size_t i = 0; i < at; i++) {
		if (in && esc)
			esc = false;
		else if (in && text[i] == '\\')
			esc = true;
		else if (text[i] == '"' && (in = !in))
			start = i + 1;
	}
	return in ? start : SIZE_MAX;
}

/* The header is UTF-8 (the format and JSON both require it): otherwise an
 * error with the offset, the fault and the string it is in (bytes outside
 * printable ASCII shown as \xNN), so a bad tensor name reads as one rather
 * than as a parameter that is missing. */
static int check_utf8(const char *file, const char *text, size_t len, Diag *d)
{
	size_t at;
	char why[80], quote[96];
	if (!utf8_fault((const unsigned char *)text, len, &at, why, sizeof why))
		return 0;
	size_t q = 0, i = string_start(text, at);
	if (i == SIZE_MAX)
		return rt_file_error(d, file, "header byte %zu (file byte %zu) is not UTF-8: %s",
				     at, at + 8, why);
	for (bool esc = false; i < len && (esc || text[i] != '"') && q + 5 < sizeof quote; i++) {
		unsigned char c = (unsigned char)text[i];
		esc = !esc && c == '\\';
		q += (size_t)snprintf(quote + q, sizeof quote - q,
				      c < 0x20 || c > 0x7e ? "\\x%02X" : "%c", c);
	}
	return rt_file_error(d, file, "header byte %zu (file byte %zu) is not UTF-8: %s, in "
			     "the string \"%s%s", at, at + 8, why, quote,
			     i < len && text[i] == '"' ? "\"" : "...");
}

static int get_uint(const cJSON *j, uint64_t *out)
{
	if (!cJSON_IsNumber(j))
		return -1;
	double v = j->valuedouble;
	if (!(v >= 0) || v > ST_MAX_INT || v != (double)(uint64_t)v)
		return -1;
	*out = (uint64_t)v;
	return 0;
}

static int parse_dtype(const char *file, const char *name, const cJSON *j, Entry *e, Diag *d)
{
	if (!cJSON_IsString(j))
		return rt_file_error(d, file, "tensor '%s': dtype must be a string", name);
	for (int i = 0; i < NTYPE; i++)
		if (!strcmp(j->valuestring, st_types[i].name)) {
			e->type = i;
			return 0;
		}
	for (size_t i = 0; i < sizeof st_unsupported / sizeof st_unsupported[0]; i++)
		if (!strcmp(j->valuestring, st_unsupported[i]))
			return rt_file_error(d, file, "tensor '%s': dtype %s is not supported "
					     "(F32, I32, U8, BOOL, F16, BF16, F64, I64 are)", name,
					     j->valuestring);
	return rt_file_error(d, file, "tensor '%s': unknown dtype \"%.32s\"", name, j->valuestring);
}

static int parse_shape(const char *file, const char *name, const cJSON *j, Entry *e, Diag *d)
{
	if (!cJSON_IsArray(j))
		return rt_file_error(d, file, "tensor '%s': shape must be an array", name);
	int rank = cJSON_GetArraySize(j);
	if (rank > RT_MAX_RANK)
		return rt_file_error(d, file, "tensor '%s': shape has %d dimensions, at most %d "
				     "supported", name, rank, RT_MAX_RANK);
	e->rank = 0;
	for (const cJSON *x = j->child; x; x = x->next) {
		uint64_t v;
		if (get_uint(x, &v))
			return rt_file_error(d, file, "tensor '%s': shape entries must be "
					     "non-negative integers", name);
		e->dim[e->rank++] = (int64_t)v;
	}
	return 0;
}

static int parse_offsets(const char *file, const char *name, const cJSON *j, Entry *e, Diag *d)
{
	if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != 2 || get_uint(j->child, &e->begin) ||
	    get_uint(j->child->next, &e->end))
		return rt_file_error(d, file, "tensor '%s': data_offsets must be [begin, end], "
				     "two non-negative integers", name);
	if (e->begin > e->end)
		return rt_file_error(d, file, "tensor '%s': data_offsets begin %" PRIu64 " is "
				     "past end %" PRIu64, name, e->begin, e->end);
	return 0;
}

/* One tensor entry: exactly dtype, shape and data_offsets, each once. */
static int parse_entry(const char *file, const cJSON *j, Entry *e, Diag *d)
{
	const char *name = j->string;
	const cJSON *dtype = NULL, *shape = NULL, *offsets = NULL;
	if (!cJSON_IsObject(j))
		return rt_file_error(d, file, "tensor '%s': entry must be an object", name);
	for (const cJSON *f = j->child; f; f = f->next) {
		const cJSON **slot = !strcmp(f->string, "dtype")	  ? &dtype
				     : !strcmp(f->string, "shape")	  ? &shape
				     : !strcmp(f->string, "data_offsets") ? &offsets
									  : NULL;
		if (!slot)
			return rt_file_error(d, file, "tensor '%s': unexpected key \"%.32s\"", name,
					     f->string);
		if (*slot)
			return rt_file_error(d, file, "tensor '%s': duplicate key \"%s\"", name,
					     f->string);
		*slot = f;
	}
	if (!dtype || !shape || !offsets)
		return rt_file_error(d, file, "tensor '%s': needs dtype, shape and data_offsets",
				     name);
	e->name = name;
	return parse_dtype(file, name, dtype, e, d) || parse_shape(file, name, shape, e, d) ||
			       parse_offsets(file, name, offsets, e, d)
		       ? -1
		       : 0;
}

static int check_metadata(const char *file, const cJSON *j, Diag *d)
{
	if (!cJSON_IsObject(j))
		return rt_file_error(d, file, "__metadata__ must be an object");
	for (const cJSON *f = j->child; f; f = f->next)
		if (!cJSON_IsString(f))
			return rt_file_error(d, file, "__metadata__ value \"%.32s\" must be a "
					     "string", f->string);
	return 0;
}

/* Offsets inside the buffer, and the byte count matching the shape. The
 * element count is bounded before it is multiplied, so a hostile shape
 * cannot overflow. */
static int check_size(const char *file, const Entry *e, uint64_t buffer, Diag *d)
{
	const uint64_t limit = (uint64_t)1 << 62;
	uint64_t numel = 1, size = (uint64_t)st_types[e->type].size;
	if (e->end > buffer)
		return rt_file_error(d, file, "tensor '%s': data_offsets end %" PRIu64 " is past "
				     "the %" PRIu64 "-byte buffer (truncated file?)", e->name,
				     e->end, buffer);
	/* zero dims skipped: (2^40, 2^40, 0) is refused rather than left to
	 * overflow whoever multiplies the dims later */
	uint64_t prod = 1;
	for (int i = 0; i < e->rank; i++) {
		if (e->dim[i] == 0) {
			numel = 0;
			continue;
		}
		if (prod > limit / size / (uint64_t)e->dim[i])
			return rt_file_error(d, file, "tensor '%s': shape is too large", e->name);
		prod *= (uint64_t)e->dim[i];
	}
	numel = numel ? prod : 0;
	if (e->end - e->begin != numel * size)
		return rt_file_error(d, file, "tensor '%s': data_offsets span %" PRIu64 " bytes "
				     "but the shape and dtype %s need %" PRIu64, e->name,
				     e->end - e->begin, st_types[e->type].name, numel * size);
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const Entry *)a)->name, ((const Entry *)b)->name);
}

static int by_offset(const void *a, const void *b)
{
	const Entry *x = a, *y = b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Names unique; ranges tile [0, buffer) exactly. Sorts e by offset. */
static int check_layout(const char *file, Entry *e, int n, uint64_t buffer, Diag *d)
{
	qsort(e, (size_t)n, sizeof *e, by_name);
	for (int i = 1; i < n; i++)
		if (!strcmp(e[i - 1].name, e[i].name))
			return rt_file_error(d, file, "duplicate tensor name '%s'", e[i].name);
	qsort(e, (size_t)n, sizeof *e, by_offset);
	uint64_t at = 0;
	for (int i = 0; i < n; i++) {
		if (e[i].begin < at)
			return rt_file_error(d, file, "tensor '%s' [%" PRIu64 ", %" PRIu64 ") "
					     "overlaps tensor '%s' ending at %" PRIu64, e[i].name,
					     e[i].begin, e[i].end, e[i - 1].name, at);
		if (e[i].begin > at)
			return rt_file_error(d, file, "hole in the buffer: bytes [%" PRIu64 ", %"
					     PRIu64 ") belong to no tensor", at, e[i].begin);
		at = e[i].end;
	}
	if (at != buffer)
		return rt_file_error(d, file, "hole in the buffer: bytes [%" PRIu64 ", %" PRIu64
				     ") belong to no tensor", at, buffer);
	return 0;
}

static float half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
	uint32_t bits;
	if (exp == 0x1f)
		bits = sign | 0x7f800000u | man << 13;
	else if (exp)
		bits = sign | (exp + 112) << 23 | man << 13;
	else if (!man)
		bits = sign;
	else {  /* subnormal: normalise */
		int e = -1;
		do {
			man <<= 1;
			e++;
		} while (!(man & 0x400));
		bits = sign | (uint32_t)(112 - e) << 23 | (man & 0x3ff) << 13;
	}
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

static int convert(const char *file, const Entry *e, const unsigned char *in, int64_t k,
		   int64_t first, void *out, Diag *d)
{
	for (int64_t i = 0; i < k; i++) {
		const unsigned char *p = in + i * st_types[e->type].size;
		switch (st_types[e->type].conv) {
		case CONV_F16:
			((float *)out)[first + i] = half_to_float((uint16_t)(p[0] | p[1] << 8));
			break;
		case CONV_BF16: {
			uint32_t bits = (uint32_t)(p[0] | p[1] << 8) << 16;
			memcpy((float *)out + first + i, &bits, 4);
			break;
		}
		case CONV_F64: {
			double v;
			memcpy(&v, p, 8);
			((float *)out)[first + i] = (float)v;
			break;
		}
		case CONV_I64: {
			int64_t v;
			memcpy(&v, p, 8);
			if (v < INT32_MIN || v > INT32_MAX)
				return rt_file_error(d, file, "tensor '%s': element %" PRId64 " is %"
						     PRId64 ", outside the i32 range", e->name,
						     first + i, v);
			((int32_t *)out)[first + i] = (int32_t)v;
			break;
		}
		case CONV_NONE:
			break;
		}
	}
	return 0;
}

static int read_data(rt_Reader *r, uint64_t base, const Entry *e, void *out, Diag *d)
{
	int size = st_types[e->type].size;
	if (st_types[e->type].conv == CONV_NONE)
		return rt_reader_read(r, base + e->begin, out, e->end - e->begin, d);
	unsigned char buf[CHUNK];
	int64_t n = (int64_t)((e->end - e->begin) / (uint64_t)size), per = CHUNK / size;
	for (int64_t i = 0; i < n; i += per) {
		int64_t k = n - i < per ? n - i : per;
		if (rt_reader_read(r, base + e->begin + (uint64_t)(i * size), buf,
				   (size_t)(k * size), d) ||
		    convert(r->name, e, buf, k, i, out, d))
			return -1;
	}
	return 0;
}

/* Lay the tensors out in one aligned blob and read them in file order. */
static int load(rt_Reader *r, uint64_t base, Entry *e, int n, rt_TensorFile *out, Diag *d)
{
	uint64_t total = 0;
	for (int i = 0; i < n; i++) {
		uint64_t bytes = (e[i].end - e[i].begin) / (uint64_t)st_types[e[i].type].size *
				 (uint64_t)rt_dtype_size(st_types[e[i].type].to);
		e[i].out = total;
		total += (bytes + RT_ALIGN - 1) / RT_ALIGN * RT_ALIGN;
	}
	out->blob = mem_aligned(total ? total : 1, RT_ALIGN);
	out->tensor = mem_calloc(n ? (size_t)n : 1, sizeof *out->tensor);
	if (!out->blob || !out->tensor)
		return rt_file_error(d, r->name, "out of memory for %" PRIu64 " bytes of tensors",
				     total);
	for (int i = 0; i < n; i++) {
		rt_NamedTensor *t = &out->tensor[i];
		t->name = mem_strdup(e[i].name);
		if (!t->name)
			return rt_file_error(d, r->name, "out of memory");
		out->ntensor = i + 1;
		t->t.dtype = st_types[e[i].type].to;
		t->t.rank = e[i].rank;
		memcpy(t->t.dim, e[i].dim, sizeof t->t.dim);
		t->t.data = (char *)out->blob + e[i].out;
		if (read_data(r, base, &e[i], t->t.data, d))
			return -1;
	}
	return 0;
}

static int by_tensor_name(const void *a, const void *b)
{
	return strcmp(((const rt_NamedTensor *)a)->name, ((const rt_NamedTensor *)b)->name);
}

/* Header text is NUL-terminated by the caller; JSON then only spaces. */
static int parse_header(rt_Reader *r, const char *text, uint64_t len, uint64_t buffer,
			rt_TensorFile *out, Diag *d)
{
	const char *file = r->name, *end = NULL;
	Entry *e = NULL;
	int rc = -1;
	size_t deep = rt_json_too_deep(text, (size_t)len);
	if (deep != SIZE_MAX)
		return rt_file_error(d, file, "header nests arrays and objects deeper than the "
				     "JSON parser's limit of %d levels (at byte %zu)",
				     RT_JSON_MAX_DEPTH, deep);
	json_hooks();
	cJSON *root = cJSON_ParseWithLengthOpts(text, (size_t)len, &end, 0);
	if (!root) {
		size_t at = end && end >= text ? (size_t)(end - text) : 0;
		rt_file_error(d, file, "header is not valid JSON (near byte %zu)", at);
		goto out;
	}
	for (; end < text + len; end++)
		if (*end != ' ') {
			rt_file_error(d, file, "junk after the header JSON at byte %zu",
				      (size_t)(end - text));
			goto out;
		}
	if (!cJSON_IsObject(root)) {
		rt_file_error(d, file, "header must be a JSON object");
		goto out;
	}
	int n = 0;
	for (const cJSON *j = root->child; j; j = j->next)
		n++;
	e = mem_calloc((size_t)n + 1, sizeof *e);
	if (!e) {
		rt_file_error(d, file, "out of memory");
		goto out;
	}
	int ne = 0;
	const cJSON *meta = NULL;
	for (const cJSON *j = root->child; j; j = j->next) {
		if (!strcmp(j->string, "__metadata__")) {
			if (meta) {
				rt_file_error(d, file, "duplicate __metadata__");
				goto out;
			}
			meta = j;
			if (check_metadata(file, j, d))
				goto out;
			continue;
		}
		if (parse_entry(file, j, &e[ne], d) || check_size(file, &e[ne], buffer, d))
			goto out;
		ne++;
	}
	if (check_layout(file, e, ne, buffer, d) || load(r, 8 + len, e, ne, out, d))
		goto out;
	if (meta) {
		char *s = cJSON_PrintUnformatted(meta);
		out->metadata_json = s ? mem_strdup(s) : NULL;
		cJSON_free(s);
		if (!out->metadata_json) {
			rt_file_error(d, file, "out of memory");
			goto out;
		}
	}
	qsort(out->tensor, (size_t)out->ntensor, sizeof *out->tensor, by_tensor_name);
	rc = 0;
out:
	mem_free(e);
	cJSON_Delete(root);
	return rc;
}

static int read_st(rt_Reader *r, rt_TensorFile *out, Diag *d)
{
	unsigned char lenbuf[8];
	memset(out, 0, sizeof *out);
	if (r->size < 8 || rt_reader_read(r, 0, lenbuf, 8, d))
		return rt_file_error(d, r->name, "not a safetensors file: shorter than 8 bytes");
	uint64_t len = 0;
	for (int i = 7; i >= 0; i--)
		len = len << 8 | lenbuf[i];
	if (len > r->size - 8 || len > ST_MAX_HEADER)
		return rt_file_error(d, r->name, "header length %" PRIu64 " does not fit the "
				     "%" PRIu64 "-byte file", len, r->size);
	if (len < 2)
		return rt_file_error(d, r->name, "header length %" PRIu64 " is too short for "
				     "a JSON object", len);
	char *text = mem_alloc((size_t)len + 1);
	if (!text)
		return rt_file_error(d, r->name, "out of memory");
	int rc = rt_reader_read(r, 8, text, (size_t)len, d);
	if (rc == 0) {
		text[len] = 0;
		if (text[0] != '{')
			rc = rt_file_error(d, r->name, "header must start with '{'");
		else if (memchr(text, 0, (size_t)len))
			rc = rt_file_error(d, r->name, "header contains a NUL byte");
		else if (check_utf8(r->name, text, (size_t)len, d))
			rc = -1;
		else
			rc = parse_header(r, text, len, r->size - 8 - len, out, d);
	}
	mem_free(text);
	if (rc)
		rt_tensorfile_free(out);
	return rc;
}

int rt_safetensors_read(const char *path, rt_TensorFile *out, Diag *d)
{
	rt_Reader r;
	memset(out, 0, sizeof *out);
	if (rt_reader_open(&r, path, d))
		return -1;
	int rc = read_st(&r, out, d);
	rt_reader_close(&r);
	return rc;
}

int rt_safetensors_read_mem(const char *name, const void *data, size_t len,
			    rt_TensorFile *out, Diag *d)
{
	rt_Reader r;
	rt_reader_mem(&r, name, data, len);
	return read_st(&r, out, d);
}

void rt_tensorfile_free(rt_TensorFile *f)
{
	if (!f)
		return;
	for (int i = 0; i < f->ntensor; i++)
		mem_free(f->tensor[i].name);
	mem_free(f->tensor);
	mem_free(f->metadata_json);
	mem_aligned_free(f->blob);
	memset(f, 0, sizeof *f);
}

const rt_NamedTensor *rt_tensorfile_find(const rt_TensorFile *f, const char *name)
{
	rt_NamedTensor key = {.name = (char *)name};
	return bsearch(&key, f->tensor, (size_t)f->ntensor, sizeof *f->tensor, by_tensor_name);
}

/* --- writing --- */

typedef struct Buf {
	char *p;
	size_t len, cap;
	int oom;
} Buf;

static void put(Buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (b->len + n + 1 > cap)
			cap *= 2;
		char *p = mem_realloc(b->p, b->cap, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void puts_(Buf *b, const char *s)
{
	put(b, s, strlen(s));
}

/* A JSON string as serde_json writes it: quotes, backslashes and control
 * characters escaped, everything else (UTF-8 included) as is. */
static void put_string(Buf *b, const char *s)
{
	puts_(b, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];
		const char *short_esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n"
				      : c == '\r' ? "\\r" : c == '\t' ? "\\t" : c == '\b' ? "\\b"
				      : c == '\f' ? "\\f" : NULL;
		if (short_esc)
			puts_(b, short_esc);
		else if (c < 0x20) {
			snprintf(esc, sizeof esc, "\\u%04x", c);
			puts_(b, esc);
		} else
			put(b, s, 1);
	}
	puts_(b, "\"");
}

static int type_rank(rt_DType t)
{
	return t == RT_F32 ? 0 : t == RT_I32 ? 1 : 2;
}

static int by_dtype_name(const void *a, const void *b, void *base)
{
	const rt_NamedTensor *t = base;
	const rt_NamedTensor *x = &t[*(const int *)a], *y = &t[*(const int *)b];
	int rx = type_rank(x->t.dtype), ry = type_rank(y->t.dtype);
	return rx != ry ? rx - ry : strcmp(x->name, y->name);
}

static int check_tensors(const char *path, const rt_NamedTensor *t, int n, Diag *d)
{
	for (int i = 0; i < n; i++) {
		if (!t[i].name || !t[i].name[0] || !strcmp(t[i].name, "__metadata__"))
			return rt_file_error(d, path, "cannot write a tensor named \"%s\"",
					     t[i].name ? t[i].name : "(null)");
		if ((unsigned)t[i].t.dtype >= RT_DTYPE_COUNT || t[i].t.rank < 0 ||
		    t[i].t.rank > RT_MAX_RANK)
			return rt_file_error(d, path, "tensor '%s': bad dtype or rank", t[i].name);
		for (int k = 0; k < t[i].t.rank; k++)
			if (t[i].t.dim[k] < 0)
				return rt_file_error(d, path, "tensor '%s': negative dimension",
						     t[i].name);
	}
	return 0;
}

/* Metadata given as JSON text: must be an object of strings; re-emitted
 * compactly in its own key order. */
static int put_metadata(Buf *b, const char *path, const char *json, Diag *d)
{
	json_hooks();
	cJSON *m = cJSON_Parse(json);
	if (!m)
		return rt_file_error(d, path, "metadata is not valid JSON");
	if (check_metadata(path, m, d)) {
		cJSON_Delete(m);
		return -1;
	}
	puts_(b, "\"__metadata__\":{");
	for (const cJSON *f = m->child; f; f = f->next) {
		put_string(b, f->string);
		puts_(b, ":");
		put_string(b, f->valuestring);
		if (f->next)
			puts_(b, ",");
	}
	puts_(b, "}");
	cJSON_Delete(m);
	return 0;
}

static int build_header(Buf *b, const char *path, const rt_NamedTensor *t, const int *order,
			int n, const char *metadata_json, Diag *d)
{
	static const char *const names[RT_DTYPE_COUNT] = {"F32", "I32", "U8"};
	puts_(b, "{");
	if (metadata_json) {
		if (put_metadata(b, path, metadata_json, d))
			return -1;
		if (n)
			puts_(b, ",");
	}
	uint64_t at = 0;
	for (int k = 0; k < n; k++) {
		const rt_NamedTensor *x = &t[order[k]];
		char num[64];
		if (k && !strcmp(x->name, t[order[k - 1]].name))
			return rt_file_error(d, path, "duplicate tensor name '%s'", x->name);
		put_string(b, x->name);
		puts_(b, ":{\"dtype\":\"");
		puts_(b, names[x->t.dtype]);
		puts_(b, "\",\"shape\":[");
		for (int i = 0; i < x->t.rank; i++) {
			snprintf(num, sizeof num, "%s%" PRId64, i ? "," : "", x->t.dim[i]);
			puts_(b, num);
		}
		uint64_t bytes = (uint64_t)rt_nbytes(&x->t);
		snprintf(num, sizeof num, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", at,
			 at + bytes);
		puts_(b, num);
		at += bytes;
		if (k + 1 < n)
			puts_(b, ",");
	}
	puts_(b, "}");
	while (!b->oom && b->len % 8)
		puts_(b, " ");
	return b->oom ? rt_file_error(d, path, "out of memory") : 0;
}

int rt_safetensors_write(const char *path, const rt_NamedTensor *t, int n,
			 const char *metadata_json, Diag *d)
{
	Buf b = {0};
	int *order = NULL, rc = -1;
	if (n < 0 || check_tensors(path, t, n, d))
		return -1;
	order = mem_calloc(n ? (size_t)n : 1, sizeof *order);
	if (!order)
		return rt_file_error(d, path, "out of memory");
	for (int i = 0; i < n; i++)
		order[i] = i;
	qsort_r(order, (size_t)n, sizeof *order, by_dtype_name, (void *)t);
	if (build_header(&b, path, t, order, n, metadata_json, d))
		goto out;
	unsigned char len[8];
	for (int i = 0; i < 8; i++)
		len[i] = (unsigned char)((uint64_t)b.len >> (8 * i));
	rt_AtomicFile a;
	if (rt_atomic_begin(&a, path, d))
		goto out;
	int bad = rt_atomic_write(&a, len, 8, d) || rt_atomic_write(&a, b.p, b.len, d);
	for (int k = 0; k < n && !bad; k++)
		bad = rt_atomic_write(&a, t[order[k]].t.data, (size_t)rt_nbytes(&t[order[k]].t), d);
	if (bad) {
		rt_atomic_abort(&a);
		goto out;
	}
	rc = rt_atomic_commit(&a, d);
out:
	mem_free(order);
	mem_free(b.p);
	return rc;
}
