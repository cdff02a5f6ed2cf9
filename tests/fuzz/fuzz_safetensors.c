/* fuzz_safetensors.c: libFuzzer target for the safetensors reader.
 *
 * Any byte string must either load (and then satisfy the reader's
 * guarantees: data aligned, names sorted and unique) or fail with a
 * message; never crash, hang, leak or read out of bounds. Built with
 * -DMSW_FUZZ=ON (clang, -fsanitize=fuzzer); the ordinary test run replays
 * tests/fuzz/corpus/safetensors through the same function, renamed by
 * defining FUZZ_ENTRY before including this file. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
int FUZZ_ENTRY(const uint8_t *data, size_t size);
#endif

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	rt_TensorFile f;
	Diag d;
	diag_init(&d);
	if (rt_safetensors_read_mem("fuzz.safetensors", data, size, &f, &d) == 0) {
		for (int i = 0; i < f.ntensor; i++) {
			const rt_Tensor *t = &f.tensor[i].t;
			if ((uintptr_t)t->data % RT_ALIGN)
				abort();
			if (i && strcmp(f.tensor[i - 1].name, f.tensor[i].name) >= 0)
				abort();
			if (rt_tensorfile_find(&f, f.tensor[i].name) != &f.tensor[i])
				abort();
			/* touch every byte, so ASan sees any bad extent */
			volatile uint8_t sink = 0;
			const uint8_t *p = t->data;
			for (int64_t k = 0; k < rt_nbytes(t); k++)
				sink ^= p[k];
			(void)sink;
		}
		rt_tensorfile_free(&f);
	} else if (d.nerror == 0 || f.tensor || f.blob) {
		abort(); /* a failure must say why and leave nothing behind */
	}
	diag_free(&d);
	return 0;
}
