/* check.c: whether checked mode is on.
 *
 * Checked mode (docs/testing.md, docs/runtime.md) is for finding kernels
 * that write outside their tensors, which sanitizers cannot see inside
 * JIT-compiled code: plan_memory leaves bytes no tensor owns around every
 * buffer and the executor fills them with canaries and verifies them after
 * every step. It is switched on by MSW_CHECK in the environment (any value
 * but "" and "0"), read each time so a test can set it with setenv. */
#include "support.h"

#include <stdlib.h>
#include <string.h>

int msw_checked(void)
{
	const char *s = getenv("MSW_CHECK");
	return s && *s && strcmp(s, "0") != 0;
}
