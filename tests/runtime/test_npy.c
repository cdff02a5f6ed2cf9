/* test_npy.c: .npy round trips, hand-built files as numpy writes them, and
 * the rejection of malformed files with errors that name the problem. */
#include "../check.h"

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

/* A file exactly as numpy 1.x would write it, with the given header dict
 * and raw data; version 1 or 2. */
static size_t build(unsigned char *out, int version, const char *dict, const void *data,
		    size_t n)
{
	size_t pre = version == 1 ? 10 : 12, hl = strlen(dict);
	memcpy(out, "\x93NUMPY", 6);
	out[6] = (unsigned char)version;
	out[7] = 0;
	size_t padded = hl + 1;
	while ((pre + padded) % 64)
		padded++;
	if (version == 1) {
		out[8] = (unsigned char)padded;
		out[9] = (unsigned char)(padded >> 8);
	} else {
		out[8] = (unsigned char)padded;
		out[9] = (unsigned char)(padded >> 8);
		out[10] = out[11] = 0;
	}
	memcpy(out + pre, dict, hl);
	memset(out + pre + hl, ' ', padded - hl - 1);
	out[pre + padded - 1] = '\n';
	memcpy(out + pre + padded, data, n);
	return pre + padded + n;
}

static void test_round_trip(void)
{
	Diag d;
	diag_init(&d);
	float data[6] = {1, -2, 3.5f, 0, 1e30f, -1e-30f};
	rt_Tensor t = {.dtype = RT_F32, .rank = 2, .dim = {2, 3}, .data = data}, u;
	CHECK(rt_npy_write(tmp_path("a.npy"), &t, &d) == 0);
	CHECK(rt_npy_read(tmp_path("a.npy"), &u, &d) == 0);
	CHECK(u.dtype == RT_F32 && u.rank == 2 && u.dim[0] == 2 && u.dim[1] == 3);
	CHECK(u.data && memcmp(u.data, data, sizeof data) == 0);
	CHECK((uintptr_t)u.data % RT_ALIGN == 0);
	rt_tensor_free(&u);

	int32_t iv[3] = {-7, 0, 2147483647};
	rt_Tensor ti = {.dtype = RT_I32, .rank = 1, .dim = {3}, .data = iv};
	CHECK(rt_npy_write(tmp_path("i.npy"), &ti, &d) == 0);
	CHECK(rt_npy_read(tmp_path("i.npy"), &u, &d) == 0);
	CHECK(u.dtype == RT_I32 && u.rank == 1 && memcmp(u.data, iv, sizeof iv) == 0);
	rt_tensor_free(&u);

	uint8_t bv = 200;
	rt_Tensor tb = {.dtype = RT_U8, .rank = 0, .data = &bv};
	CHECK(rt_npy_write(tmp_path("b.npy"), &tb, &d) == 0);
	CHECK(rt_npy_read(tmp_path("b.npy"), &u, &d) == 0);
	CHECK(u.dtype == RT_U8 && u.rank == 0 && *(uint8_t *)u.data == 200);
	rt_tensor_free(&u);

	rt_Tensor te = {.dtype = RT_F32, .rank = 2, .dim = {0, 5}, .data = data};
	CHECK(rt_npy_write(tmp_path("e.npy"), &te, &d) == 0);
	CHECK(rt_npy_read(tmp_path("e.npy"), &u, &d) == 0);
	CHECK(u.rank == 2 && u.dim[0] == 0 && u.dim[1] == 5);
	rt_tensor_free(&u);
	CHECK(access(tmp_path("a.npy.tmp"), F_OK) != 0);
	CHECK(d.nerror == 0);
	diag_free(&d);
}

/* What we write is what numpy writes: header layout checked byte by byte. */
static void test_written_header(void)
{
	Diag d;
	diag_init(&d);
	float data[3] = {0};
	rt_Tensor t = {.dtype = RT_F32, .rank = 1, .dim = {3}, .data = data};
	CHECK(rt_npy_write(tmp_path("h.npy"), &t, &d) == 0);
	FILE *f = fopen(tmp_path("h.npy"), "rb");
	unsigned char buf[256] = {0};
	size_t n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	CHECK(n == 128 + 12);
	const char *want = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
	CHECK(memcmp(buf + 10, want, strlen(want)) == 0);
	CHECK(buf[127] == 10 && buf[8] == 118 && buf[9] == 0);
	diag_free(&d);
}

static int read_bytes(const unsigned char *b, size_t n, rt_Tensor *t, Diag *d)
{
	return rt_npy_read_mem("mem.npy", b, n, t, d);
}

static void test_numpy_variants(void)
{
	unsigned char buf[512];
	Diag d;
	diag_init(&d);
	rt_Tensor t;
	double dv[2] = {1.5, -2.25};
	size_t n = build(buf, 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", dv,
			 sizeof dv);
	CHECK(read_bytes(buf, n, &t, &d) == 0);
	CHECK(t.dtype == RT_F32 && ((float *)t.data)[0] == 1.5f && ((float *)t.data)[1] == -2.25f);
	rt_tensor_free(&t);

	int64_t lv[3] = {1, -5, 2147483647};
	n = build(buf, 1, "{\"descr\":\"<i8\",\"shape\":(1,3),\"fortran_order\":False}", lv,
		  sizeof lv);
	CHECK(read_bytes(buf, n, &t, &d) == 0);
	CHECK(t.dtype == RT_I32 && t.rank == 2 && ((int32_t *)t.data)[1] == -5);
	rt_tensor_free(&t);

	uint8_t u8[4] = {1, 2, 3, 4};
	n = build(buf, 3, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2)}", u8, 4);
	CHECK(read_bytes(buf, n, &t, &d) == 0);
	CHECK(t.dtype == RT_U8 && t.dim[1] == 2 && ((uint8_t *)t.data)[3] == 4);
	rt_tensor_free(&t);
	CHECK(d.nerror == 0);
	diag_free(&d);
}

/* Each malformed input fails, leaves no data, and mentions `why`. */
static void reject(const unsigned char *b, size_t n, const char *why)
{
	Diag d;
	diag_init(&d);
	rt_Tensor t;
	int rc = read_bytes(b, n, &t, &d);
	CHECK_MSG(rc == -1, "accepted, expected: %s", why);
	CHECK(t.data == NULL);
	CHECK_MSG(strstr(diag_text(&d), why) != NULL, "'%s' not in: %s", why, diag_text(&d));
	CHECK(strstr(diag_text(&d), "mem.npy") != NULL);
	diag_free(&d);
}

static void test_malformed(void)
{
	unsigned char buf[512], bad[512];
	float fv[4] = {1, 2, 3, 4};
	const char *ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }";
	size_t n = build(buf, 1, ok, fv, sizeof fv);

	reject(buf, 5, "too short");
	memcpy(bad, buf, n);
	bad[1] = 'X';
	reject(bad, n, "bad magic");
	memcpy(bad, buf, n);
	bad[6] = 4;
	reject(bad, n, "version");
	reject(buf, n - 1, "data is 15 bytes");          /* truncated data */
	memcpy(bad, buf, n);
	bad[n] = 0;
	reject(bad, n + 1, "data is 17 bytes");          /* trailing byte */
	memcpy(bad, buf, n);
	bad[8] = 0xff;
	bad[9] = 0xff;
	reject(bad, n, "header length");                 /* past EOF */
	reject(buf, 40, "header length");

	struct {
		const char *dict, *why;
	} cases[] = {
		{"{'descr': '<f4', 'fortran_order': True, 'shape': (4,), }", "fortran_order"},
		{"{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }", "big-endian"},
		{"{'descr': '<c8', 'fortran_order': False, 'shape': (4,), }", "unsupported dtype"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (4), }", "trailing comma"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (-4,), }", "non-negative"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,4), }",
		 "more than 6"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': "
		 "(4294967296, 4294967296, 4294967296), }", "too large"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': "
		 "(4294967296, 4294967296, 0), }", "too large"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (5, 2), }", "need 40"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }",
		 "too large"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", "need 8"},
		{"{'descr': '<f4', 'fortran_order': False}", "needs 'descr'"},
		{"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4,)}",
		 "duplicate"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': 1}", "unknown key"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), } junk", "junk"},
		{"['descr', '<f4']", "expected '{'"},
		{"{'descr: '<f4'}", "expected ':'"},
		{"{'descr': '<f4' 'fortran_order': False}", "expected ',' or '}'"},
		{"{'descr': '<f4', 'fortran_order': Fals", "True or False"},
		{"{'descr': '<f4", "string too long"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		n = build(bad, 1, cases[i].dict, fv, sizeof fv);
		reject(bad, n, cases[i].why);
	}
	int64_t big[2] = {1, (int64_t)1 << 40};
	n = build(bad, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", big, 16);
	reject(bad, n, "outside the i32 range");
}

static void test_missing_file(void)
{
	Diag d;
	diag_init(&d);
	rt_Tensor t;
	CHECK(rt_npy_read(tmp_path("nope.npy"), &t, &d) == -1);
	CHECK(strstr(diag_text(&d), "nope.npy: error: cannot read: No such file") != NULL);
	CHECK(rt_npy_read(dir, &t, &d) == -1);
	CHECK(strstr(diag_text(&d), "cannot read: is a directory, not a file") != NULL);
	diag_free(&d);
}

static void test_oom(void)
{
	float fv[4] = {1, 2, 3, 4};
	rt_Tensor t = {.dtype = RT_F32, .rank = 1, .dim = {4}, .data = fv}, u;
	Diag d;
	diag_init(&d);
	CHECK(rt_npy_write(tmp_path("o.npy"), &t, &d) == 0);
	int failed = 0;
	for (long k = 1; k <= 4; k++) {
		mem_fail_after(k);
		int rc = rt_npy_read(tmp_path("o.npy"), &u, &d);
		mem_fail_after(0);
		failed += rc != 0;
		if (rc == 0)
			rt_tensor_free(&u);
		else
			CHECK(u.data == NULL);
	}
	CHECK(failed >= 2);
	diag_free(&d);
}

int main(void)
{
	if (check_tmpdir(dir, "test_npy"))
		return 1;
	RUN(test_round_trip);
	RUN(test_written_header);
	RUN(test_numpy_variants);
	RUN(test_malformed);
	RUN(test_missing_file);
	RUN(test_oom);
	check_rmdir(dir);
	return check_report();
}
