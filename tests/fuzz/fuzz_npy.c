/* fuzz_npy.c: libFuzzer target for the .npy reader.
 *
 * Any byte string must either load (data aligned, exactly numel elements
 * readable) or fail with a message; never crash, hang, leak or read out of
 * bounds. Built with -DMSW_FUZZ=ON; the ordinary test run replays
 * tests/fuzz/corpus/npy through the same function (see fuzz_safetensors.c
 * for the FUZZ_ENTRY renaming). */
#include <stdint.h>
#include <stdlib.h>

#include "runtime/rt.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
int FUZZ_ENTRY(const uint8_t *data, size_t size);
#endif

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	rt_Tensor t;
	Diag d;
	diag_init(&d);
	if (rt_npy_read_mem("fuzz.npy", data, size, &t, &d) == 0) {
		if ((uintptr_t)t.data % RT_ALIGN || t.rank < 0 || t.rank > RT_MAX_RANK)
			abort();
		volatile uint8_t sink = 0;
		const uint8_t *p = t.data;
		for (int64_t k = 0; k < rt_nbytes(&t); k++)
			sink ^= p[k];
		(void)sink;
		rt_tensor_free(&t);
	} else if (d.nerror == 0 || t.data) {
		abort();
	}
	diag_free(&d);
	return 0;
}
