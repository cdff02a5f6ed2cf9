/* test_mesh.c: mesh descriptions (passes/mesh.c, docs/mesh.md):
 *   - the presets: ipu is 1,472 tiles of 624 KiB with its per-cycle figures
 *     resolved by its clock, wafer about 850,000 tiles of 48 KiB, host one
 *     tile per worker thread with the host rates' figures;
 *   - RxC[:MEMORY]: the grid and memory given, the rest the host's;
 *   - a file: every key, units, comments, a preset to start from and
 *     figures overriding it, defaults for what a file may leave out;
 *   - errors are located: file:line:col for a file, --mesh:1:col for the
 *     argument, with the caret under the bad word;
 *   - the fuzz corpus of tests/fuzz/corpus/mesh replays through
 *     fuzz_mesh.c's checks (valid_* seeds parse, bad_* are refused). */
#include "passes/passes.h"
#include "tests/check.h"

#include <math.h>
#include <string.h>

#define FUZZ_ENTRY fuzz_mesh_entry
#include "../fuzz/fuzz_mesh.c"
#undef FUZZ_ENTRY
#include "../fuzz/replay.h"

static HostRates fixed_rates(void)
{
	HostRates h = {0};
	rates_set(&h, "dense.forward", 100e9);
	rates_set(&h, "csr.forward.flops", 40e9);
	rates_set(&h, "transpose.bytes", 20e9);
	rates_set(&h, "cache.l2", 2 << 20);
	rates_set(&h, "cache.l3", 32 << 20);
	snprintf(h.cpu, sizeof h.cpu, "test CPU");
	snprintf(h.source, sizeof h.source, "given");
	return h;
}

static HostRates the_rates;
static int asked;
static int get_rates(void *ctx, const HostRates **out, Diag *d)
{
	(void)ctx;
	(void)d;
	asked++;
	*out = &the_rates;
	return 0;
}
static const MeshHost host4 = {.threads = 4, .get_rates = get_rates};

static void test_presets(void)
{
	Mesh m;
	Diag d;
	diag_init(&d);
	the_rates = fixed_rates();
	asked = 0;
	CHECK(mesh_parse("ipu", &host4, &m, &d) == 0);
	CHECK(m.rows * m.cols == 1472 && m.memory == 624 * 1024);
	CHECK_NEAR(m.dense, 32 * 1.325e9, 1);       /* 32/cycle at 1.325 GHz */
	CHECK_NEAR(m.latency, 1 / 1.325e9, 1e-15);  /* 1 cycle */
	CHECK(m.sparse < m.dense && m.link > 0 && !strcmp(m.name, "ipu"));
	CHECK(asked == 0);   /* a preset of another machine needs no host rates */
	mesh_free(&m);
	CHECK(mesh_parse("wafer", &host4, &m, &d) == 0);
	CHECK(fabs((double)mesh_tiles(&m) - 850000) < 1000 && m.memory == 48 * 1024);
	CHECK(m.sparse == m.dense);   /* the dataflow skips zeros */
	mesh_free(&m);
	CHECK(mesh_parse("host", &host4, &m, &d) == 0);
	CHECK(m.rows == 2 && m.cols == 2 && asked == 1);
	CHECK(m.dense == 100e9 && m.sparse == 40e9 && m.link == 10e9 && m.local == 20e9);
	CHECK(m.memory == (2 << 20) + (32 << 20) / 4);   /* L2 + a worker's share of L3 */
	CHECK(strstr(m.rates, "test CPU") && strstr(m.rates, "given"));
	mesh_free(&m);
	const MeshHost host2 = {.threads = 2, .get_rates = get_rates};
	CHECK(mesh_parse("host", &host2, &m, &d) == 0);
	CHECK(m.rows == 1 && m.cols == 2);
	mesh_free(&m);
	CHECK_MSG(d.nerror == 0, "%s", diag_text(&d));
	diag_free(&d);
}

static void test_grid(void)
{
	Mesh m;
	Diag d;
	diag_init(&d);
	the_rates = fixed_rates();
	CHECK(mesh_parse("2x3:48K", &host4, &m, &d) == 0);
	CHECK(m.rows == 2 && m.cols == 3 && m.memory == 48 * 1024 && m.dense == 100e9);
	CHECK(m.memory_loc.src && m.memory_loc.col == 5);
	mesh_free(&m);
	CHECK(mesh_parse("16x16", &host4, &m, &d) == 0);
	CHECK(m.rows == 16 && m.cols == 16 && m.memory == (2 << 20) + (32 << 20) / 4);
	mesh_free(&m);
	CHECK(mesh_parse("1x1:1M", &host4, &m, &d) == 0 && m.memory == 1 << 20);
	mesh_free(&m);
	CHECK_MSG(d.nerror == 0, "%s", diag_text(&d));
	diag_free(&d);
}

static void test_file(void)
{
	Mesh m;
	Diag d;
	diag_init(&d);
	const char *text =
		"# a small mesh\n"
		"name    tiny\n"
		"tiles   4x8\n"
		"memory  256KiB     # per tile\n"
		"clock   1GHz\n"
		"dense   16/cycle\n"
		"link    2G\n"
		"latency 2ns\n";
	CHECK(mesh_parse_text("tiny.mesh", text, NULL, &m, &d) == 0);
	CHECK(m.rows == 4 && m.cols == 8 && m.memory == 256 * 1024 && !strcmp(m.name, "tiny"));
	CHECK(m.dense == 16e9 && m.sparse == 16e9 && m.link == 2e9);   /* sparse defaults to dense */
	CHECK_NEAR(m.latency, 2e-9, 1e-18);
	CHECK(m.local == 0);   /* no limit */
	CHECK(!strcmp(m.from[MF_DENSE], "tiny.mesh:6"));
	CHECK(m.memory_loc.line == 4 && m.memory_loc.col == 9);
	mesh_free(&m);
	/* a preset to start from, some figures overridden, the name the file's */
	CHECK(mesh_parse_text("big.mesh", "preset ipu\ntiles 64x64\nmemory 1M\n", NULL, &m, &d) == 0);
	CHECK(m.rows == 64 && m.cols == 64 && m.memory == 1 << 20);
	CHECK_NEAR(m.dense, 32 * 1.325e9, 1);
	CHECK(!strcmp(m.name, "big.mesh") && !strncmp(m.from[MF_DENSE], "preset ipu", 10));
	mesh_free(&m);
	CHECK_MSG(d.nerror == 0, "%s", diag_text(&d));
	diag_free(&d);
}

/* The description fails with exactly this first line of diagnostics. */
static void bad(const char *name, const char *text, const char *want)
{
	Mesh m;
	Diag d;
	diag_init(&d);
	the_rates = fixed_rates();
	int rc = name ? mesh_parse_text(name, text, &host4, &m, &d) : mesh_parse(text, &host4, &m, &d);
	CHECK(rc == -1);
	CHECK_MSG(!strncmp(diag_text(&d), want, strlen(want)), "got:\n%s\nwant: %s", diag_text(&d),
		  want);
	diag_free(&d);
}

static void test_errors(void)
{
	bad("a.mesh", "tiles 4x4\nmemroy 1K\n", "a.mesh:2:1: error: unknown key 'memroy'");
	bad("a.mesh", "tiles 4x4\nmemory 1.5\n", "a.mesh:2:8: error: a tile's memory must be");
	bad("a.mesh", "tiles 4x0\n", "a.mesh:1:7: error: a mesh has at least one row");
	bad("a.mesh", "tiles four\n", "a.mesh:1:7: error: 'four': tiles are ROWSxCOLS");
	bad("a.mesh", "tiles 2x2\nmemory 1K\ndense 3Q\nlink 1G\n",
	    "a.mesh:3:7: error: '3Q': a rate is");
	bad("a.mesh", "tiles 2x2\nmemory 1K\ndense 2/cycle\nlink 1G\n",
	    "a.mesh:3:7: error: a figure per cycle needs the clock");
	bad("a.mesh", "tiles 2x2\nmemory 1K\nlink 1G\n", "a.mesh: error: the description gives no "
	    "'dense'");
	bad("a.mesh", "tiles 2x2\ntiles 3x3\n", "a.mesh:2:1: error: 'tiles' is given twice");
	bad("a.mesh", "tiles 2x2 3x3\n", "a.mesh:1:11: error: one value per line");
	bad("a.mesh", "tiles\n", "a.mesh:1:1: error: 'tiles' needs a value");
	bad("a.mesh", "tiles 2x2\npreset ipu\n", "a.mesh:2:1: error: a preset comes first");
	bad("a.mesh", "preset tpu\n", "a.mesh:1:8: error: unknown preset 'tpu'");
	bad("a.mesh", "tiles 2x2\nmemory 1K\ndense 1G\nlink 1G\nlatency 5\n",
	    "a.mesh:5:9: error: '5': a latency is a time");
	bad(NULL, "2x2:48Q", "--mesh:1:5: error: '48Q': a size is");
	bad(NULL, "0x2", "--mesh:1:1: error: a mesh has at least one row");
	bad(NULL, "2x2:", "--mesh:1:5: error: expected the memory per tile");
	bad(NULL, "no/such/file.mesh", "--mesh: error: 'no/such/file.mesh' is no preset");
	/* the caret under the bad word */
	Mesh m;
	Diag d;
	diag_init(&d);
	CHECK(mesh_parse("3x3:12Z", &host4, &m, &d) == -1);
	CHECK_MSG(strstr(diag_text(&d), "    1 | 3x3:12Z\n      |     ^~~"), "%s", diag_text(&d));
	diag_free(&d);
	/* RxC and host need the host rates */
	diag_init(&d);
	CHECK(mesh_parse("2x2", NULL, &m, &d) == -1);
	CHECK(strstr(diag_text(&d), "need the host rates"));
	diag_free(&d);
}

static bool mesh_accepts(const uint8_t *p, size_t n)
{
	Mesh m;
	Diag d;
	diag_init(&d);
	bool ok = mesh_parse_mem("seed.mesh", p, n, NULL, &m, &d) == 0;
	if (ok)
		mesh_free(&m);
	diag_free(&d);
	return ok;
}

static void test_corpus(void)
{
	int nvalid, nbad;
	int n = fuzz_replay("mesh", fuzz_mesh_entry, mesh_accepts, &nvalid, &nbad);
	CHECK(n >= 10 && nvalid >= 4 && nbad >= 6);
}

int main(void)
{
	RUN(test_presets);
	RUN(test_grid);
	RUN(test_file);
	RUN(test_errors);
	RUN(test_corpus);
	return check_report();
}
