/* test_fuzz_corpus.c: replay the saved fuzz corpus in the ordinary run.
 *
 * Every file under tests/fuzz/corpus/<target>/ goes through the same entry
 * point the fuzzer calls (the fuzz sources are included here with their
 * entry renamed), so a sanitizer build of the test suite catches a
 * regression on any input the fuzzer ever found interesting. Hand-made
 * seeds are named valid_* or bad_*; for those the outcome is checked too. */
#include "../check.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"

#define FUZZ_ENTRY fuzz_safetensors_entry
#include "../fuzz/fuzz_safetensors.c"
#undef FUZZ_ENTRY
#define FUZZ_ENTRY fuzz_npy_entry
#include "../fuzz/fuzz_npy.c"
#undef FUZZ_ENTRY

#ifndef MSW_SOURCE_DIR
#define MSW_SOURCE_DIR "."
#endif

typedef int (*Entry)(const uint8_t *, size_t);
typedef int (*Loads)(const uint8_t *, size_t);

static int st_loads(const uint8_t *p, size_t n)
{
	rt_TensorFile f;
	Diag d;
	diag_init(&d);
	int ok = rt_safetensors_read_mem("seed", p, n, &f, &d) == 0;
	rt_tensorfile_free(&f);
	diag_free(&d);
	return ok;
}

static int npy_loads(const uint8_t *p, size_t n)
{
	rt_Tensor t;
	Diag d;
	diag_init(&d);
	int ok = rt_npy_read_mem("seed", p, n, &t, &d) == 0;
	rt_tensor_free(&t);
	diag_free(&d);
	return ok;
}

static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	rewind(f);
	uint8_t *p = malloc(len > 0 ? (size_t)len : 1);
	*n = p ? fread(p, 1, (size_t)len, f) : 0;
	fclose(f);
	return p;
}

static int replay(const char *target, Entry entry, Loads loads)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/tests/fuzz/corpus/%s", MSW_SOURCE_DIR, target);
	DIR *dp = opendir(path);
	CHECK_MSG(dp != NULL, "no corpus at %s", path);
	if (!dp)
		return 0;
	int count = 0;
	for (struct dirent *de; (de = readdir(dp));) {
		if (de->d_name[0] == '.')
			continue;
		char file[2048];
		snprintf(file, sizeof file, "%s/%s", path, de->d_name);
		size_t n;
		uint8_t *p = slurp(file, &n);
		CHECK_MSG(p != NULL, "cannot read %s", file);
		if (!p)
			continue;
		CHECK(entry(p, n) == 0);
		if (!strncmp(de->d_name, "valid_", 6))
			CHECK_MSG(loads(p, n), "%s should load", file);
		if (!strncmp(de->d_name, "bad_", 4))
			CHECK_MSG(!loads(p, n), "%s should be rejected", file);
		free(p);
		count++;
	}
	closedir(dp);
	return count;
}

static void test_corpus(void)
{
	int nst = replay("safetensors", fuzz_safetensors_entry, st_loads);
	int nnpy = replay("npy", fuzz_npy_entry, npy_loads);
	printf("replayed %d safetensors and %d npy corpus files\n", nst, nnpy);
	CHECK(nst >= 10 && nnpy >= 10);
}

int main(void)
{
	RUN(test_corpus);
	return check_report();
}
