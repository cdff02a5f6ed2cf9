/* fuzz_mesh.c: libFuzzer target for mesh descriptions (passes/mesh.c,
 * docs/mesh.md), the text `--mesh FILE` reads.
 *
 * Any byte string must either give a mesh whose figures are usable (at
 * least one tile of at least a byte, positive finite dense, sparse and
 * link rates, finite non-negative local bandwidth, latency and clock), or
 * fail with a message located in the file ("fuzz.mesh..."); never crash,
 * hang, leak or overflow. There are no host rates, so `preset host` must
 * fail too, with a message. Built with -DMSW_FUZZ=ON; the ordinary test
 * run replays tests/fuzz/corpus/mesh through the same function
 * (tests/passes/test_mesh.c; see fuzz_safetensors.c for FUZZ_ENTRY). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
int FUZZ_ENTRY(const uint8_t *data, size_t size);
#endif

static void mesh_fail(const char *why, const Diag *d)
{
	fprintf(stderr, "fuzz_mesh: %s\n%s", why, diag_text(d));
	abort();
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	Mesh m;
	Diag d;
	diag_init(&d);
	if (mesh_parse_mem("fuzz.mesh", data, size, NULL, &m, &d)) {
		if (d.nerror == 0)
			mesh_fail("mesh_parse failed without a message", &d);
		if (strncmp(diag_text(&d), "fuzz.mesh", 9))
			mesh_fail("mesh_parse's first message has no location", &d);
	} else {
		bool ok = m.rows >= 1 && m.cols >= 1 && mesh_tiles(&m) <= MESH_MAX_TILES &&
			  m.memory >= 1 && m.dense > 0 && m.sparse > 0 && m.link > 0 &&
			  isfinite(m.dense) && isfinite(m.sparse) && isfinite(m.link) &&
			  isfinite(m.local) && m.local >= 0 && isfinite(m.latency) &&
			  m.latency >= 0 && isfinite(m.clock) && m.clock >= 0 && d.nerror == 0;
		if (!ok)
			mesh_fail("a mesh with unusable figures", &d);
		FILE *f = fopen("/dev/null", "w");
		if (f) {
			mesh_print(f, &m);
			fclose(f);
		}
		mesh_free(&m);
	}
	diag_free(&d);
	return 0;
}
