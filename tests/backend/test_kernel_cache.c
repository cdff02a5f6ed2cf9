/* test_kernel_cache.c: the on-disk kernel cache (backend/kernel_cache.c).
 *
 *   - a first compile misses and stores one object; a second compile of
 *     the same graph hits, and its program computes the same bits;
 *   - a different mask (the pattern is compiled in) is a different key;
 *   - a damaged cache file is ignored: the compile misses, succeeds, and
 *     replaces it;
 *   - no folder, no cache: nothing is written. */
#include "backend/backend.h"
#include "harness.h"
#include "passes/passes.h"
#include "tests/check.h"

#include <dirent.h>
#include <string.h>

enum { K = 48, N = 40, M = 64 };

static uint8_t bits_a[K * N], bits_b[K * N];

static Graph *graph(const uint8_t *bits)
{
	Diag d;
	diag_init(&d);
	Graph *g = ir_graph_create();
	Shape sw = SH(K, N);
	ValId w = ir_param(g, "w", &sw, INIT_ZEROS, 0, (SrcLoc){0}, &d);
	Mask *m = ir_set_mask(g, w, 0.5, SD_UNIFORM);
	ValId at = in(g, "at", DT_F32, SH(1, K, M));
	ValId y = m && !ir_mask_set_bits(m, bits, K * N) ? ir_spmm(g, at, w, 0, (SrcLoc){0}, &d) :
							     VAL_NONE;
	PassOptions po = {.alignment = 64};
	if (y == VAL_NONE || ir_set_output(g, "y", y) || pass_plan_memory(g, &po, &d)) {
		fprintf(stderr, "%s", diag_text(&d));
		ir_graph_destroy(g);
		g = NULL;
	}
	diag_free(&d);
	return g;
}

/* Compile (with the cache in dir, or none), run on fixed data, copy y out. */
static int compile_run(const uint8_t *bits, const char *dir, bool *hit, float *y)
{
	Graph *g = graph(bits);
	Diag d;
	diag_init(&d);
	be_Options o = {.opt_level = 2, .cache_dir = dir};
	be_Module *m = NULL;
	rt_Program *p = NULL;
	rt_Pool *pool = rt_pool_create(1);
	rt_Exec *e = NULL;
	rt_Tensor at, w, out;
	int rc = -1;
	if (!g || be_compile(g, &o, &m, &d))
		goto done;
	*hit = be_cache_hit(m);
	if (be_jit(m, g, &p, &d) || !pool || rt_exec_create(p, pool, &e, &d) ||
	    rt_exec_tensor(e, "at", &at) || rt_exec_tensor(e, "w", &w) || rt_exec_tensor(e, "y", &out))
		goto done;
	uint64_t s = 7;
	for (int64_t i = 0; i < rt_numel(&at); i++)
		((float *)at.data)[i] = (float)harness_urand(&s) - 0.5f;
	for (int64_t i = 0; i < rt_numel(&w); i++)
		((float *)w.data)[i] = (float)harness_urand(&s) - 0.5f;
	rt_exec_run(e);
	memcpy(y, out.data, (size_t)rt_nbytes(&out));
	rc = 0;
done:
	if (rc)
		fprintf(stderr, "%s", diag_text(&d));
	rt_exec_destroy(e);
	rt_pool_destroy(pool);
	rt_program_destroy(p);
	be_module_destroy(m);
	ir_graph_destroy(g);
	diag_free(&d);
	return rc;
}

/* The cache files in dir (*.o), and the path of the last one. */
static int count_files(const char *dir, char *last, size_t n)
{
	DIR *dp = opendir(dir);
	int k = 0;
	struct dirent *de;
	while (dp && (de = readdir(dp)))
		if (strstr(de->d_name, ".o")) {
			k++;
			snprintf(last, n, "%s/%s", dir, de->d_name);
		}
	if (dp)
		closedir(dp);
	return k;
}

static void test_cache(void)
{
	uint64_t s = 11;
	for (int i = 0; i < K * N; i++) {
		bits_a[i] = harness_urand(&s) < 0.5;
		bits_b[i] = bits_a[i];
	}
	bits_b[7] ^= 1;   /* one entry moved: another pattern */
	char dir[64], sub[128], file[512];
	if (check_tmpdir(dir, "kcache")) {
		CHECK_MSG(0, "scratch folder");
		return;
	}
	snprintf(sub, sizeof sub, "%s/made/by/the/cache", dir);   /* created on demand */
	static float y1[N * M], y2[N * M], y3[N * M], y4[N * M];
	bool hit = true;
	CHECK(compile_run(bits_a, sub, &hit, y1) == 0 && !hit);
	CHECK(count_files(sub, file, sizeof file) == 1);
	CHECK(compile_run(bits_a, sub, &hit, y2) == 0 && hit);
	CHECK_MSG(!memcmp(y1, y2, sizeof y1), "the cached object computes other bits");
	CHECK(compile_run(bits_b, sub, &hit, y3) == 0 && !hit);
	CHECK(count_files(sub, file, sizeof file) == 2);
	CHECK(memcmp(y1, y3, sizeof y1) != 0);

	/* Damage every cache file: the next compile misses and rewrites. */
	DIR *dp = opendir(sub);
	struct dirent *de;
	while (dp && (de = readdir(dp))) {
		if (!strstr(de->d_name, ".o"))
			continue;
		snprintf(file, sizeof file, "%s/%s", sub, de->d_name);
		FILE *f = fopen(file, "r+b");
		if (f) {
			fseek(f, 100, SEEK_SET);
			int c = fgetc(f);
			fseek(f, 100, SEEK_SET);
			fputc(c ^ 0x5a, f);
			fclose(f);
		}
	}
	if (dp)
		closedir(dp);
	CHECK(compile_run(bits_a, sub, &hit, y4) == 0 && !hit);
	CHECK(!memcmp(y1, y4, sizeof y1));
	CHECK(compile_run(bits_a, sub, &hit, y4) == 0 && hit);
	CHECK(!memcmp(y1, y4, sizeof y1));

	/* Without a folder nothing is cached. */
	CHECK(compile_run(bits_a, NULL, &hit, y4) == 0 && !hit);
	CHECK(!memcmp(y1, y4, sizeof y1));
	check_rmdir(dir);
}

int main(void)
{
	RUN(test_cache);
	return check_report();
}
