/* test_fuzz_text.c: replay the text readers' fuzz corpora in the ordinary
 * run (the binary readers' are tests/runtime/test_fuzz_corpus.c).
 *
 * Every file under tests/fuzz/corpus/msw/ goes through fuzz_msw.c's entry
 * point and every file under tests/fuzz/corpus/ir/ through fuzz_ir.c's,
 * included here with their entries renamed, so a sanitizer build of the
 * suite catches a regression on any input a fuzzer ever found interesting
 * (and the checks those entries make abort the test). Seeds made from the
 * project's own files are named valid_* (must compile or parse) or bad_*
 * (must be refused with a message); for those the outcome is checked too.
 * A crash the fuzzer found and that was fixed is kept as crash_<what>. */
#include "../check.h"

#include <string.h>

#define FUZZ_ENTRY fuzz_msw_entry
#include "../fuzz/fuzz_msw.c"
#undef FUZZ_ENTRY
#define FUZZ_ENTRY fuzz_ir_entry
#include "../fuzz/fuzz_ir.c"
#undef FUZZ_ENTRY

#include "../fuzz/replay.h"

static bool msw_accepts(const uint8_t *p, size_t n)
{
	FuzzRun r;
	fuzz_run_line(p, n, &r);
	fe_Options o = {.def = r.def, .ndef = r.ndef, .decode = r.decode};
	fe_Session *s = fe_session_create();
	Graph *g = NULL;
	Diag d;
	diag_init(&d);
	bool ok = s && fe_compile_mem(s, "seed.msw", p, n, &o, &g, &d) == 0;
	ir_graph_destroy(g);
	fe_session_destroy(s);
	diag_free(&d);
	return ok;
}

static bool ir_accepts(const uint8_t *p, size_t n)
{
	Source src;
	if (source_from_mem(&src, "seed.mswir", p, n))
		return false;
	Graph *g = NULL;
	Diag d;
	diag_init(&d);
	bool ok = ir_parse(&src, &g, &d) == 0 && ir_verify(g, &d) == 0;
	ir_graph_destroy(g);
	source_free(&src);
	diag_free(&d);
	return ok;
}

static void test_corpus(void)
{
	int vm, bm, vi, bi;
	int nmsw = fuzz_replay("msw", fuzz_msw_entry, msw_accepts, &vm, &bm);
	int nir = fuzz_replay("ir", fuzz_ir_entry, ir_accepts, &vi, &bi);
	printf("replayed %d msw (%d valid, %d bad seeds) and %d ir (%d valid, %d bad seeds) "
	       "corpus files\n", nmsw, vm, bm, nir, vi, bi);
	/* The seeds are there: every lit test and model, and their printed IR. */
	CHECK(vm >= 5 && bm >= 40 && vi >= 10);
}

/* The harness itself: a RUN line's options reach the frontend. */
static void test_run_line(void)
{
	static const char src[] = "# RUN: compile --emit=ir -D d=6 -Dbatch=3 --train -D bad\n";
	FuzzRun r;
	fuzz_run_line((const uint8_t *)src, sizeof src - 1, &r);
	CHECK(r.ndef == 2 && r.train && !r.decode);
	CHECK(r.ndef == 2 && !strcmp(r.def[0].name, "d") && !strcmp(r.def[0].value, "6") &&
	      !strcmp(r.def[1].name, "batch") && !strcmp(r.def[1].value, "3"));
	fuzz_run_line((const uint8_t *)"model m() {}", 12, &r);
	CHECK(r.ndef == 0 && !r.train);
}

int main(void)
{
	RUN(test_run_line);
	RUN(test_corpus);
	return check_report();
}
