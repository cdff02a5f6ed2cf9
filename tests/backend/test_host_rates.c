/* test_host_rates.c: the host rates cache (support/rates.c,
 * backend/calibrate.c):
 *   - a written file reads back exactly (every value, the CPU, the path as
 *     source), and only under its own key;
 *   - a damaged file is refused: truncated, one byte changed, a line added,
 *     a bad value, a missing end line;
 *   - the key is stable and the cache path is <dir>/rates-<key>.txt;
 *   - be_host_rates takes a valid file under this host's key without
 *     measuring, and measures (once in the whole suite, about two seconds)
 *     when the file there is damaged, rewriting it with rates the sparse
 *     cost model accepts;
 *   - the CPU model string and the cache sizes are what the machine says. */
#include "backend/backend.h"
#include "passes/passes.h"
#include "tests/check.h"

#include <math.h>
#include <string.h>

static char dir[64];   /* the scratch folder */

static HostRates sample(void)
{
	HostRates r = {0};
	snprintf(r.cpu, sizeof r.cpu, "Test CPU (family 1, model 2, stepping 3)");
	rates_set(&r, "dense.forward", 2.1234567890123457e11);
	rates_set(&r, "csr.forward.dense", 1.0 / 3.0 * 1e-8);
	rates_set(&r, "noise", 0.0123);
	rates_set(&r, "csr.weight-grad.dense", 0.0);   /* the calibrator writes 0s */
	return r;
}

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	static char buf[8192];
	*n = f ? fread(buf, 1, sizeof buf, f) : 0;
	if (f)
		fclose(f);
	return buf;
}

static void spit(const char *path, const char *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (f) {
		fwrite(data, 1, n, f);
		fclose(f);
	}
}

static void test_round_trip(void)
{
	char path[256];
	snprintf(path, sizeof path, "%s/r.txt", dir);
	HostRates w = sample(), r;
	Hash128 key = {1, 2}, other = {1, 3};
	CHECK(rates_write(path, &w, key) == 0);
	CHECK(rates_read(path, &key, &r) == 0);
	CHECK(r.n == 4 && !strcmp(r.cpu, w.cpu) && !strcmp(r.source, path));
	for (int i = 0; i < w.n; i++)
		CHECK(rates_get(&r, w.rate[i].name) == w.rate[i].value);   /* exact */
	CHECK(isnan(rates_get(&r, "absent")));
	CHECK(rates_read(path, &other, &r) == -1);
	CHECK(rates_read(path, NULL, &r) == 0);   /* an explicit file: any key */
	snprintf(path, sizeof path, "%s/none.txt", dir);
	CHECK(rates_read(path, NULL, &r) == -1);
}

static void test_damaged(void)
{
	char path[256];
	snprintf(path, sizeof path, "%s/d.txt", dir);
	HostRates w = sample(), r;
	Hash128 key = {5, 6};
	CHECK(rates_write(path, &w, key) == 0);
	size_t n = 0;
	char good[8192];
	const char *text = slurp(path, &n);
	memcpy(good, text, n);
	CHECK(n > 100);
	spit(path, good, n - 10);   /* truncated */
	CHECK(rates_read(path, &key, &r) == -1);
	char bad[8192];
	memcpy(bad, good, n);
	char *v = strstr(bad, "rate noise 0.01");
	if (v)
		v[14] = '2';   /* a value changed, checksum not */
	spit(path, bad, n);
	CHECK(v && rates_read(path, &key, &r) == -1);
	spit(path, good, n);
	CHECK(rates_read(path, &key, &r) == 0);
	/* the end line must be the last one */
	memcpy(bad, good, n);
	memcpy(bad + n, "rate x 1\n", 9);
	spit(path, bad, n + 9);
	CHECK(rates_read(path, &key, &r) == -1);
	spit(path, "mswc host rates 1\n", 18);
	CHECK(rates_read(path, &key, &r) == -1);
	spit(path, "", 0);
	CHECK(rates_read(path, &key, &r) == -1);
	/* a negative value is refused even if the sum is right: write one
	 * through the writer (0 is a valid rate: sample() holds one) */
	HostRates z = sample();
	rates_set(&z, "noise", -0.5);
	CHECK(rates_write(path, &z, key) == 0);
	CHECK(rates_read(path, &key, &r) == -1);
}

static void test_key(void)
{
	Hash128 a, b;
	CHECK(be_rates_key(&a) == 0 && be_rates_key(&b) == 0);
	CHECK(a.lo == b.lo && a.hi == b.hi);
	char path[512], hex[33];
	CHECK(be_rates_path(dir, a, path, sizeof path) == 0);
	hash128_hex(a, hex);
	char want[512];
	snprintf(want, sizeof want, "%s/rates-%s.txt", dir, hex);
	CHECK(!strcmp(path, want));
	CHECK(be_rates_path(dir, a, path, 8) == -1);
}

static void test_host(void)
{
	Hash128 key;
	char path[512];
	CHECK(be_rates_key(&key) == 0 && be_rates_path(dir, key, path, sizeof path) == 0);
	/* a valid file under this host's key is taken as it is: no measuring */
	HostRates w = sample(), r;
	CHECK(rates_write(path, &w, key) == 0);
	Diag d;
	diag_init(&d);
	CHECK(be_host_rates(&r, dir, false, &d) == 0);
	CHECK(!strcmp(r.source, path) && rates_get(&r, "noise") == 0.0123);
	/* a damaged one is measured again and replaced */
	spit(path, "mswc host rates 1\nkey x\n", 24);
	CHECK(be_host_rates(&r, dir, false, &d) == 0);
	CHECK_MSG(!strncmp(r.source, "measured now", 12), "%s", r.source);
	SparseRates sr;
	CHECK(sparse_rates(&r, &sr) == 0);
	CHECK(sr.dense_flops[SPP_FORWARD] > 1e9 && sr.csr_flops[SPP_WEIGHT_GRAD] > 1e8);
	char cpu[RATES_TEXT_MAX];
	host_cpu_model(cpu, sizeof cpu);
	CHECK(!strcmp(r.cpu, cpu));
	HostRates again;
	CHECK(rates_read(path, &key, &again) == 0);
	CHECK(again.n == r.n && rates_get(&again, "dense.forward") == rates_get(&r, "dense.forward"));
	CHECK(strlen(diag_text(&d)) == 0);
	diag_free(&d);
}

static void test_machine(void)
{
	char cpu[RATES_TEXT_MAX];
	host_cpu_model(cpu, sizeof cpu);
	CHECK(strlen(cpu) > 0);
#if defined(__x86_64__)
	CHECK(strstr(cpu, "(family "));
#endif
	int64_t size[3];
	host_cache_sizes(size);
	CHECK(size[0] >= 4096 && size[1] >= size[0]);   /* any x86 of this century */
}

int main(void)
{
	if (check_tmpdir(dir, "rates")) {
		fprintf(stderr, "cannot make a scratch folder\n");
		return 1;
	}
	RUN(test_round_trip);
	RUN(test_damaged);
	RUN(test_key);
	RUN(test_host);
	RUN(test_machine);
	check_rmdir(dir);
	return check_report();
}
