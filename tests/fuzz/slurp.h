/* slurp.h: a whole file in memory, for the fuzz targets and their replay
 * (no dependency on the test macros, so a fuzz target can include it). */
#ifndef MSW_TESTS_FUZZ_SLURP_H
#define MSW_TESTS_FUZZ_SLURP_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The bytes of path (malloc'ed; *n of them), or NULL. */
static uint8_t *fuzz_slurp(const char *path, size_t *n)
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

#endif
