/* fuzz_program.c: libFuzzer target for the program description reader
 * (runtime/program_file.c), which reads what an ahead-of-time object
 * carries.
 *
 * Any byte string must either read or fail with a message; never crash,
 * hang, leak or read out of bounds. What reads must write back to the
 * same bytes (the format has one spelling of each program), and binding
 * it and creating an executor must succeed or fail cleanly: the executor's
 * own checks (offsets inside the arena, slot sizes) are the second line.
 * Built with -DMSW_FUZZ=ON; the ordinary test run replays
 * tests/fuzz/corpus/program through the same function (see
 * fuzz_safetensors.c for the FUZZ_ENTRY renaming). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
int FUZZ_ENTRY(const uint8_t *data, size_t size);
#endif

static void fuzz_program_noop(void *const *buf, int64_t lo, int64_t hi)
{
	(void)buf;
	(void)lo;
	(void)hi;
}

static rt_KernelFn fuzz_program_stub(void *user, const char *symbol, uint32_t index, Diag *d)
{
	(void)user;
	(void)symbol;
	(void)index;
	(void)d;
	return fuzz_program_noop;
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	rt_Program *p;
	Diag d;
	diag_init(&d);
	if (rt_program_read("fuzz", data, size, &p, &d) == 0) {
		uint8_t *back;
		size_t n;
		if (rt_program_write(p, &back, &n, &d) || n != size || memcmp(back, data, n))
			abort();
		mem_free(back);
		rt_Exec *e = NULL;
		/* Arenas of up to 64 MiB only: a fuzzer easily asks for terabytes. */
		if (rt_program_bind(p, fuzz_program_stub, NULL, &d) == 0 && p->arena_size < (1 << 26) &&
		    rt_exec_create(p, NULL, &e, &d) == 0)
			rt_exec_destroy(e);
		rt_program_destroy(p);
	} else if (d.nerror == 0 || p) {
		abort();
	}
	diag_free(&d);
	return 0;
}
