/* test_safetensors.c: the safetensors reader and writer.
 *
 * Round trips; a file assembled byte by byte from the format's description
 * (so the reader is not only checked against our own writer); the exact
 * bytes the writer produces; conversions from F16/BF16/F64/I64; and one
 * malformed input per validation rule (UTF-8 among them), each rejected
 * with a message that names the problem. */
#include "../check.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/rt.h"

static char dir[64];

static const char *tmp_path(const char *name)
{
	static char buf[128];
	snprintf(buf, sizeof buf, "%s/%s", dir, name);
	return buf;
}

/* 8-byte little-endian length, the header, then the buffer. */
static size_t build(unsigned char *out, const char *header, const void *data, size_t n)
{
	uint64_t len = strlen(header);
	for (int i = 0; i < 8; i++)
		out[i] = (unsigned char)(len >> (8 * i));
	memcpy(out + 8, header, len);
	memcpy(out + 8 + len, data, n);
	return 8 + len + n;
}

static void test_round_trip(void)
{
	Diag d;
	diag_init(&d);
	float w[6] = {1, 2, 3, 4, 5, -6.5f};
	int32_t idx[3] = {7, -8, 9};
	uint8_t mask[5] = {1, 0, 1, 1, 0};
	rt_NamedTensor t[3] = {
		{"wte.weight", {.dtype = RT_F32, .rank = 2, .dim = {2, 3}, .data = w}},
		{"ids", {.dtype = RT_I32, .rank = 1, .dim = {3}, .data = idx}},
		{"h.0.mask", {.dtype = RT_U8, .rank = 1, .dim = {5}, .data = mask}},
	};
	CHECK(rt_safetensors_write(tmp_path("a.safetensors"), t, 3, "{\"step\":\"12\"}", &d) == 0);
	rt_TensorFile f;
	CHECK(rt_safetensors_read(tmp_path("a.safetensors"), &f, &d) == 0);
	CHECK(f.ntensor == 3);
	CHECK(f.metadata_json && !strcmp(f.metadata_json, "{\"step\":\"12\"}"));
	const rt_NamedTensor *x = rt_tensorfile_find(&f, "wte.weight");
	CHECK(x && x->t.dtype == RT_F32 && x->t.rank == 2 && x->t.dim[1] == 3);
	CHECK(x && memcmp(x->t.data, w, sizeof w) == 0);
	CHECK(x && (uintptr_t)x->t.data % RT_ALIGN == 0);
	x = rt_tensorfile_find(&f, "ids");
	CHECK(x && x->t.dtype == RT_I32 && memcmp(x->t.data, idx, sizeof idx) == 0);
	x = rt_tensorfile_find(&f, "h.0.mask");
	CHECK(x && x->t.dtype == RT_U8 && memcmp(x->t.data, mask, sizeof mask) == 0);
	CHECK(rt_tensorfile_find(&f, "nope") == NULL);
	/* listed sorted by name */
	CHECK(!strcmp(f.tensor[0].name, "h.0.mask") && !strcmp(f.tensor[2].name, "wte.weight"));
	rt_tensorfile_free(&f);

	/* empty file and zero-size tensors */
	rt_NamedTensor z[2] = {
		{"empty", {.dtype = RT_F32, .rank = 2, .dim = {0, 4}, .data = w}},
		{"scalar", {.dtype = RT_F32, .rank = 0, .data = w}},
	};
	CHECK(rt_safetensors_write(tmp_path("z.safetensors"), z, 2, NULL, &d) == 0);
	CHECK(rt_safetensors_read(tmp_path("z.safetensors"), &f, &d) == 0);
	CHECK(f.ntensor == 2 && f.metadata_json == NULL);
	x = rt_tensorfile_find(&f, "scalar");
	CHECK(x && x->t.rank == 0 && *(float *)x->t.data == 1);
	rt_tensorfile_free(&f);
	CHECK(rt_safetensors_write(tmp_path("n.safetensors"), NULL, 0, NULL, &d) == 0);
	CHECK(rt_safetensors_read(tmp_path("n.safetensors"), &f, &d) == 0 && f.ntensor == 0);
	rt_tensorfile_free(&f);
	CHECK(d.nerror == 0);
	if (d.nerror)
		fprintf(stderr, "%s", diag_text(&d));
	diag_free(&d);
}

/* The writer's bytes, spelled out: F32 before I32 before U8, then by name;
 * compact JSON; "__metadata__" first; padding with spaces to 8. */
static void test_exact_bytes(void)
{
	Diag d;
	diag_init(&d);
	float b[2] = {1, 2};
	int32_t c[1] = {3};
	uint8_t a[3] = {4, 5, 6};
	float z[1] = {7};
	rt_NamedTensor t[4] = {
		{"b", {.dtype = RT_F32, .rank = 1, .dim = {2}, .data = b}},
		{"a", {.dtype = RT_U8, .rank = 2, .dim = {1, 3}, .data = a}},
		{"c", {.dtype = RT_I32, .rank = 1, .dim = {1}, .data = c}},
		{"a\"q", {.dtype = RT_F32, .rank = 0, .data = z}},
	};
	CHECK(rt_safetensors_write(tmp_path("x.safetensors"), t, 4, "{\"format\":\"pt\"}", &d) == 0);
	const char *want_header =
		"{\"__metadata__\":{\"format\":\"pt\"},"
		"\"a\\\"q\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
		"\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},"
		"\"c\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[12,16]},"
		"\"a\":{\"dtype\":\"U8\",\"shape\":[1,3],\"data_offsets\":[16,19]}}";
	size_t hl = strlen(want_header), padded = (hl + 7) / 8 * 8;
	unsigned char want[512], got[512];
	memset(want, ' ', sizeof want);
	for (int i = 0; i < 8; i++)
		want[i] = (unsigned char)((uint64_t)padded >> (8 * i));
	memcpy(want + 8, want_header, hl);
	unsigned char *p = want + 8 + padded;
	memcpy(p, z, 4);
	memcpy(p + 4, b, 8);
	memcpy(p + 12, c, 4);
	memcpy(p + 16, a, 3);
	size_t wantn = 8 + padded + 19;
	FILE *f = fopen(tmp_path("x.safetensors"), "rb");
	size_t n = f ? fread(got, 1, sizeof got, f) : 0;
	if (f)
		fclose(f);
	CHECK(n == wantn);
	CHECK(memcmp(got, want, wantn) == 0);
	if (n == wantn && memcmp(got, want, wantn))
		fprintf(stderr, "got header: %.*s\n", (int)padded, got + 8);
	diag_free(&d);
}

static int read_bytes(const unsigned char *b, size_t n, rt_TensorFile *f, Diag *d)
{
	return rt_safetensors_read_mem("mem.safetensors", b, n, f, d);
}

/* Built by hand from the spec, with keys in an unusual order, whitespace,
 * metadata last and data not in name order. */
static void test_hand_built(void)
{
	unsigned char buf[1024];
	uint8_t data[4 + 8 + 2 + 2 + 8];
	int32_t i32 = -42;
	float f2[2] = {0.25f, -3};
	uint16_t half = 0x3c00;       /* 1.0 */
	uint16_t bf = 0xc040;         /* -3.0 */
	double f64 = 1e-3;
	memcpy(data, &i32, 4);
	memcpy(data + 4, f2, 8);
	memcpy(data + 12, &half, 2);
	memcpy(data + 14, &bf, 2);
	memcpy(data + 16, &f64, 8);
	const char *h = "{ \"z\" : {\"shape\": [1], \"data_offsets\": [0, 4], \"dtype\": \"I32\"},\n"
			"  \"y\": {\"dtype\":\"F32\",\"shape\":[2,1],\"data_offsets\":[4,12]},"
			"\"h\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[12,14]},"
			"\"bf\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[14,16]},"
			"\"d\":{\"dtype\":\"F64\",\"shape\":[1,1],\"data_offsets\":[16,24]},"
			"\"__metadata__\":{\"a\":\"b\"}}   ";
	size_t n = build(buf, h, data, sizeof data);
	rt_TensorFile f;
	Diag d;
	diag_init(&d);
	CHECK(read_bytes(buf, n, &f, &d) == 0);
	if (d.nerror)
		fprintf(stderr, "%s", diag_text(&d));
	CHECK(f.ntensor == 5);
	const rt_NamedTensor *t = rt_tensorfile_find(&f, "z");
	CHECK(t && t->t.dtype == RT_I32 && *(int32_t *)t->t.data == -42);
	t = rt_tensorfile_find(&f, "y");
	CHECK(t && t->t.rank == 2 && t->t.dim[0] == 2 && ((float *)t->t.data)[1] == -3);
	t = rt_tensorfile_find(&f, "h");
	CHECK(t && t->t.dtype == RT_F32 && t->t.rank == 0 && *(float *)t->t.data == 1.0f);
	t = rt_tensorfile_find(&f, "bf");
	CHECK(t && *(float *)t->t.data == -3.0f);
	t = rt_tensorfile_find(&f, "d");
	CHECK(t && *(float *)t->t.data == 1e-3f);
	CHECK(f.metadata_json && !strcmp(f.metadata_json, "{\"a\":\"b\"}"));
	rt_tensorfile_free(&f);
	diag_free(&d);
}

static void test_half_values(void)
{
	/* 0, -0, max, min subnormal, min normal, inf, 0.333 */
	uint16_t h[7] = {0x0000, 0x8000, 0x7bff, 0x0001, 0x0400, 0x7c00, 0x3555};
	float want[7] = {0, -0.0f, 65504, 5.9604645e-8f, 6.1035156e-5f, INFINITY, 0.33325195f};
	unsigned char buf[256];
	size_t n = build(buf, "{\"h\":{\"dtype\":\"F16\",\"shape\":[7],\"data_offsets\":[0,14]}}", h,
			 sizeof h);
	rt_TensorFile f;
	Diag d;
	diag_init(&d);
	CHECK(read_bytes(buf, n, &f, &d) == 0);
	for (int i = 0; i < 7 && f.ntensor; i++)
		CHECK_MSG(((float *)f.tensor[0].t.data)[i] == want[i], "half %04x", h[i]);
	rt_tensorfile_free(&f);
	uint16_t nan = 0x7e00;
	n = build(buf, "{\"h\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]}}", &nan, 2);
	CHECK(read_bytes(buf, n, &f, &d) == 0);
	CHECK(f.ntensor == 1 && isnan(*(float *)f.tensor[0].t.data));
	rt_tensorfile_free(&f);
	int64_t l[2] = {5, INT32_MIN};
	n = build(buf, "{\"l\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", l, 16);
	CHECK(read_bytes(buf, n, &f, &d) == 0);
	CHECK(f.ntensor == 1 && ((int32_t *)f.tensor[0].t.data)[1] == INT32_MIN);
	rt_tensorfile_free(&f);
	diag_free(&d);
}

static void reject(const unsigned char *b, size_t n, const char *why)
{
	Diag d;
	diag_init(&d);
	rt_TensorFile f;
	int rc = read_bytes(b, n, &f, &d);
	CHECK_MSG(rc == -1, "accepted, expected: %s", why);
	CHECK(f.tensor == NULL && f.blob == NULL && f.ntensor == 0);
	CHECK_MSG(strstr(diag_text(&d), why) != NULL, "'%s' not in: %s", why, diag_text(&d));
	CHECK(strstr(diag_text(&d), "mem.safetensors: error:") != NULL);
	diag_free(&d);
}

static void reject_header(const char *header, size_t datalen, const char *why)
{
	static unsigned char buf[4096], data[256];
	size_t n = build(buf, header, data, datalen);
	reject(buf, n, why);
}

static void test_malformed(void)
{
	unsigned char buf[256];
	float v[2] = {1, 2};
	const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
	size_t n = build(buf, ok, v, 8);
	rt_TensorFile f;
	Diag d;
	diag_init(&d);
	CHECK(read_bytes(buf, n, &f, &d) == 0);
	rt_tensorfile_free(&f);
	diag_free(&d);

	reject(buf, 5, "shorter than 8 bytes");
	unsigned char bad[256];
	memcpy(bad, buf, n);
	bad[0] = 0xff;                                 /* header length past EOF */
	reject(bad, n, "does not fit");
	memcpy(bad, buf, n);
	bad[7] = 0x80;                                 /* 2^63 */
	reject(bad, n, "does not fit");
	reject(buf, n - 1, "truncated file");          /* data cut short */
	memcpy(bad, buf, n);
	bad[n] = 0;
	reject(bad, n + 1, "hole in the buffer");      /* a trailing byte nobody owns */

	reject_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8,
		      "not valid JSON");
	reject_header("[1,2]", 0, "start with '{'");
	reject_header("{}x", 0, "junk after");
	reject_header("{\"a\":[]}", 0, "must be an object");
	reject_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8,
		      "unexpected key");
	reject_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "needs dtype");
	reject_header("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],"
		      "\"data_offsets\":[0,8]}}", 8, "duplicate key");
	reject_header("{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
		      "unknown dtype");
	reject_header("{\"a\":{\"dtype\":\"U16\",\"shape\":[4],\"data_offsets\":[0,8]}}", 8,
		      "not supported");
	reject_header("{\"a\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
		      "dtype must be a string");
	reject_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
		      "non-negative integers");
	reject_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8,
		      "non-negative integers");
	reject_header("{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8,
		      "shape must be an array");
	reject_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,2],"
		      "\"data_offsets\":[0,8]}}", 8, "7 dimensions");
	reject_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
		      "\"data_offsets\":[0,8]}}", 8, "too large");
	reject_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,0],"
		      "\"data_offsets\":[0,0]}}", 0, "too large");
	reject_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,8]}}", 8,
		      "non-negative integers");
	reject_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
		      "need 12");
	reject_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", 8,
		      "two non-negative integers");
	reject_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8,
		      "past end");
	reject_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 8,
		      "past the 8-byte buffer");
	reject_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		      "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
		      "overlaps");
	reject_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
		      "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12,
		      "hole in the buffer: bytes [4, 8)");
	reject_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
		      "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
		      "duplicate tensor name 'a'");
	reject_header("{\"__metadata__\":{\"k\":1}}", 0, "must be a string");
	reject_header("{\"__metadata__\":[]}", 0, "__metadata__ must be an object");
	reject_header("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate __metadata__");
	int64_t big = (int64_t)1 << 40;
	n = build(bad, "{\"l\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", &big, 8);
	reject(bad, n, "outside the i32 range");
	/* Deep nesting: cJSON's limit keeps the stack safe, and the message names
	 * the limit rather than calling the text invalid JSON. 1000 levels are
	 * the parser's (so this entry fails for being an array), 1001 are not;
	 * brackets in strings do not count. */
	static char deep[3100];
	char *p = deep + sprintf(deep, "{\"[[\\\"{\":");
	memset(p, '[', 999);
	memset(p + 999, ']', 999);
	strcpy(p + 1998, "}");
	reject_header(deep, 0, "entry must be an object");
	memset(p, '[', 1000);
	memset(p + 1000, ']', 1000);
	strcpy(p + 2000, "}");
	reject_header(deep, 0, "header nests arrays and objects deeper than the JSON parser's "
		      "limit of 1000 levels (at byte 1008)");
	memset(deep, '[', 3000);
	deep[0] = '{';
	reject_header(deep, 0, "limit of 1000 levels (at byte 1000)");
}

/* The header is UTF-8: names and metadata in any script load; each kind of
 * malformed sequence is refused with its offset, and the string it is in. */
static void test_utf8(void)
{
	unsigned char buf[512];
	float v[2] = {1, 2};
	/* U+00E9, U+20AC, U+1D11E and the last code point, U+10FFFF */
	const char *ok = "{\"w\xC3\xA9\xE2\x82\xAC\xF0\x9D\x84\x9E\":{\"dtype\":\"F32\","
			 "\"shape\":[2],\"data_offsets\":[0,8]},"
			 "\"__metadata__\":{\"k\xE2\x82\xAC\":\"\xF4\x8F\xBF\xBF\"}}";
	size_t n = build(buf, ok, v, 8);
	rt_TensorFile f;
	Diag d;
	diag_init(&d);
	CHECK(read_bytes(buf, n, &f, &d) == 0);
	CHECK(f.ntensor == 1 && !strcmp(f.tensor[0].name, "w\xC3\xA9\xE2\x82\xAC\xF0\x9D\x84\x9E"));
	rt_tensorfile_free(&f);
	diag_free(&d);

#define ENTRY "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"
	/* a tensor name: the whole message */
	reject_header("{\"h.0\xC0\xAF.w" ENTRY, 8, "mem.safetensors: error: header byte 5 (file "
		      "byte 13) is not UTF-8: overlong 2-byte encoding of U+002F, in the string "
		      "\"h.0\\xC0\\xAF.w\"");
	reject_header("{\"a\xE0\x80\xAF" ENTRY, 8, "byte 3 (file byte 11) is not UTF-8: overlong "
		      "3-byte encoding of U+002F");
	reject_header("{\"a\xF0\x80\x80\xAF" ENTRY, 8, "overlong 4-byte encoding of U+002F");
	reject_header("{\"a\xED\xA0\x80" ENTRY, 8, "UTF-16 surrogate U+D800");
	reject_header("{\"ab\xE2\x82" ENTRY, 8, "byte 4 (file byte 12) is not UTF-8: a 3-byte "
		      "sequence (lead byte 0xE2) ends after 2 bytes, in the string \"ab\\xE2\\x82\"");
	reject_header("{\"a\xF4\x90\x80\x80" ENTRY, 8, "U+110000 is above U+10FFFF");
	reject_header("{\"a\xF5\x80\x80\x80" ENTRY, 8, "U+140000 is above U+10FFFF");
	reject_header("{\"a\x80" ENTRY, 8, "byte 0x80 continues a sequence that never started");
	reject_header("{\"a\xFF" ENTRY, 8, "byte 0xFF never occurs in UTF-8");
#undef ENTRY
	/* __metadata__ keys and values; an escaped quote does not end the string */
	reject_header("{\"__metadata__\":{\"k\xFF\":\"v\"}}", 0, "byte 19 (file byte 27) is "
		      "not UTF-8: byte 0xFF never occurs in UTF-8, in the string \"k\\xFF\"");
	reject_header("{\"__metadata__\":{\"k\":\"a\\\"b\xED\xBF\xBF\"}}", 0,
		      "UTF-16 surrogate U+DFFF, in the string \"a\\\"b\\xED\\xBF\\xBF\"");
	/* outside any string, and cut short by the end of the header */
	reject_header("{}\xE2", 0, "header byte 2 (file byte 10) is not UTF-8: a 3-byte sequence "
		      "(lead byte 0xE2) ends after 1 byte");
}

static void test_write_errors(void)
{
	Diag d;
	diag_init(&d);
	float v = 1;
	rt_NamedTensor t[2] = {
		{"x", {.dtype = RT_F32, .rank = 0, .data = &v}},
		{"x", {.dtype = RT_F32, .rank = 0, .data = &v}},
	};
	CHECK(rt_safetensors_write(tmp_path("dup.safetensors"), t, 2, NULL, &d) == -1);
	CHECK(strstr(diag_text(&d), "duplicate tensor name") != NULL);
	CHECK(access(tmp_path("dup.safetensors"), F_OK) != 0);
	CHECK(rt_safetensors_write(tmp_path("m.safetensors"), t, 1, "{\"a\":2}", &d) == -1);
	CHECK(rt_safetensors_write(tmp_path("m.safetensors"), t, 1, "{bad", &d) == -1);
	t[0].name = "__metadata__";
	CHECK(rt_safetensors_write(tmp_path("m.safetensors"), t, 1, NULL, &d) == -1);
	CHECK(rt_safetensors_write("/nonexistent/dir/x.safetensors", t + 1, 1, NULL, &d) == -1);
	CHECK(strstr(diag_text(&d), "/nonexistent/dir/x.safetensors: error: cannot create") != NULL);
	diag_free(&d);
}

/* The atomic write replaces an existing file and leaves no temporary. */
static void test_atomic(void)
{
	Diag d;
	diag_init(&d);
	float v1 = 1, v2 = 2;
	rt_NamedTensor t = {"x", {.dtype = RT_F32, .rank = 0, .data = &v1}};
	CHECK(rt_safetensors_write(tmp_path("c.safetensors"), &t, 1, NULL, &d) == 0);
	t.t.data = &v2;
	CHECK(rt_safetensors_write(tmp_path("c.safetensors"), &t, 1, NULL, &d) == 0);
	rt_TensorFile f;
	CHECK(rt_safetensors_read(tmp_path("c.safetensors"), &f, &d) == 0);
	CHECK(f.ntensor == 1 && *(float *)f.tensor[0].t.data == 2);
	rt_tensorfile_free(&f);
	int ntmp = 0;
	DIR *dp = opendir(dir);
	for (struct dirent *de; dp && (de = readdir(dp));)
		ntmp += strstr(de->d_name, ".tmp.") != NULL;
	if (dp)
		closedir(dp);
	CHECK(ntmp == 0);
	diag_free(&d);
}

/* Every allocation failure comes back as an error with nothing leaked. */
static void test_oom(void)
{
	Diag d;
	diag_init(&d);
	float w[4] = {1, 2, 3, 4};
	rt_NamedTensor t[2] = {
		{"a", {.dtype = RT_F32, .rank = 1, .dim = {4}, .data = w}},
		{"b", {.dtype = RT_F32, .rank = 1, .dim = {2}, .data = w}},
	};
	CHECK(rt_safetensors_write(tmp_path("o.safetensors"), t, 2, "{\"k\":\"v\"}", &d) == 0);
	int fails = 0;
	for (long k = 1; k <= 40; k++) {
		rt_TensorFile f;
		mem_fail_after(k);
		int rc = rt_safetensors_read(tmp_path("o.safetensors"), &f, &d);
		mem_fail_after(0);
		fails += rc != 0;
		if (rc == 0)
			CHECK(f.ntensor == 2);
		rt_tensorfile_free(&f);
		mem_fail_after(k);
		rc = rt_safetensors_write(tmp_path("o2.safetensors"), t, 2, "{\"k\":\"v\"}", &d);
		mem_fail_after(0);
		fails += rc != 0;
	}
	CHECK(fails > 10);
	diag_free(&d);
}

int main(void)
{
	if (check_tmpdir(dir, "test_st"))
		return 1;
	RUN(test_round_trip);
	RUN(test_exact_bytes);
	RUN(test_hand_built);
	RUN(test_half_values);
	RUN(test_malformed);
	RUN(test_utf8);
	RUN(test_write_errors);
	RUN(test_atomic);
	RUN(test_oom);
	check_rmdir(dir);
	return check_report();
}
