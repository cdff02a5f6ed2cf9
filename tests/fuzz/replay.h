/* replay.h: the saved fuzz corpora replayed by the ordinary test run
 * (tests/runtime/test_fuzz_corpus.c for the binary readers,
 * tests/frontend/test_fuzz_text.c for the text ones). Include after
 * ../check.h.
 *
 * fuzz_replay sends every file of tests/fuzz/corpus/<target>/ through the
 * fuzzer's entry point, so a sanitizer build of the suite catches a
 * regression on any input a fuzzer ever found interesting. Seeds named
 * valid_* must be accepted by `accepts` and bad_* refused; their counts go
 * to *nvalid and *nbad. Returns the number of files replayed. */
#ifndef MSW_TESTS_FUZZ_REPLAY_H
#define MSW_TESTS_FUZZ_REPLAY_H

#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slurp.h"

#ifndef MSW_SOURCE_DIR
#define MSW_SOURCE_DIR "."
#endif

typedef int (*FuzzEntry)(const uint8_t *, size_t);
typedef bool (*FuzzAccepts)(const uint8_t *, size_t);


static int fuzz_replay(const char *target, FuzzEntry entry, FuzzAccepts accepts, int *nvalid,
		       int *nbad)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/tests/fuzz/corpus/%s", MSW_SOURCE_DIR, target);
	DIR *dp = opendir(path);
	CHECK_MSG(dp != NULL, "no corpus at %s", path);
	*nvalid = *nbad = 0;
	if (!dp)
		return 0;
	int count = 0;
	for (struct dirent *de; (de = readdir(dp));) {
		if (de->d_name[0] == '.')
			continue;
		char file[2048];
		snprintf(file, sizeof file, "%s/%s", path, de->d_name);
		size_t n;
		uint8_t *p = fuzz_slurp(file, &n);
		CHECK_MSG(p != NULL, "cannot read %s", file);
		if (!p)
			continue;
		CHECK(entry(p, n) == 0);
		if (!strncmp(de->d_name, "valid_", 6)) {
			CHECK_MSG(accepts(p, n), "%s should be accepted", file);
			(*nvalid)++;
		}
		if (!strncmp(de->d_name, "bad_", 4)) {
			CHECK_MSG(!accepts(p, n), "%s should be refused", file);
			(*nbad)++;
		}
		free(p);
		count++;
	}
	closedir(dp);
	return count;
}

#endif
