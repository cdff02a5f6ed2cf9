/* check.h: the tiny test harness every test binary uses.
 *
 *   static void test_something(void) { CHECK(x == 3); CHECK_NEAR(a, b, 1e-6); }
 *   int main(void) { RUN(test_something); return check_report(); }
 *
 * A failed CHECK prints file:line and the expression and counts one failure;
 * the test goes on. check_report prints "N passed, N failed" and returns the
 * exit status. */
#ifndef MSW_CHECK_H
#define MSW_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int check_npass, check_nfail;

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (cond)                                                                  \
			check_npass++;                                                     \
		else {                                                                     \
			check_nfail++;                                                     \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                          \
	} while (0)

#define CHECK_MSG(cond, ...)                                                               \
	do {                                                                               \
		if (cond)                                                                  \
			check_npass++;                                                     \
		else {                                                                     \
			check_nfail++;                                                     \
			fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                      \
			fputc('\n', stderr);                                               \
		}                                                                          \
	} while (0)

#define CHECK_NEAR(a, b, tol)                                                              \
	do {                                                                               \
		double check_a_ = (a), check_b_ = (b);                                     \
		CHECK_MSG(fabs(check_a_ - check_b_) <= (tol), "%.9g vs %.9g (tol %g)",     \
			  check_a_, check_b_, (double)(tol));                              \
	} while (0)

#define RUN(fn)                                                                            \
	do {                                                                               \
		int check_before_ = check_nfail;                                           \
		fn();                                                                      \
		if (check_nfail != check_before_)                                          \
			fprintf(stderr, "  in %s\n", #fn);                                 \
	} while (0)

/* A scratch folder for a test binary that writes files: a new folder
 * /tmp/msw_<tag>_XXXXXX in dir (64 bytes), and its removal with everything
 * in it. A folder that cannot be removed is reported, not a failure. */
static inline int check_tmpdir(char dir[64], const char *tag)
{
	snprintf(dir, 64, "/tmp/msw_%s_XXXXXX", tag);
	return mkdtemp(dir) ? 0 : -1;
}

static inline void check_rmdir(const char *dir)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", dir);
}

static inline int check_report(void)
{
	printf("%d passed, %d failed\n", check_npass, check_nfail);
	return check_nfail ? 1 : 0;
}

#endif
