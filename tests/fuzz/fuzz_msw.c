/* fuzz_msw.c: libFuzzer target for the .msw frontend (lexer, parser,
 * evaluator, lowering to IR), with the shipped prelude loaded as
 * `mswc compile` loads it.
 *
 * The input is a .msw file. If its first line is a lit RUN line
 * ("# RUN: compile --emit=ir -D d=8 --train"), its -D options, --train and
 * --decode apply as on the command line, so the seeds from tests/lit keep
 * their meaning and the fuzzer can mutate the hyperparameters too. Any
 * input must either compile to a graph that passes fuzz_graph.h's checks
 * or fail with located messages (the first one "fuzz.msw:..." or
 * "prelude.msw:...", or a bad -D value's); never crash, hang, leak or overflow. Built with
 * -DMSW_FUZZ=ON; the ordinary test run replays tests/fuzz/corpus/msw
 * through the same function (see fuzz_safetensors.c for FUZZ_ENTRY). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/fe.h"
#include "fuzz_graph.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
int FUZZ_ENTRY(const uint8_t *data, size_t size);
#endif

enum { FUZZ_MAX_DEFINES = 16 };

/* The options of a leading RUN line; names and values point into buf. */
typedef struct FuzzRun {
	char buf[512];
	fe_Define def[FUZZ_MAX_DEFINES];
	int ndef;
	bool train, decode;
} FuzzRun;

static void fuzz_run_line(const uint8_t *data, size_t size, FuzzRun *r)
{
	static const char tag[] = "# RUN:";
	memset(r, 0, sizeof *r);
	if (size < sizeof tag - 1 || memcmp(data, tag, sizeof tag - 1))
		return;
	size_t n = 0;
	for (size_t i = sizeof tag - 1; i < size && data[i] != '\n' && n + 1 < sizeof r->buf; i++)
		r->buf[n++] = data[i] ? (char)data[i] : ' ';
	bool want_def = false;
	for (char *save = NULL, *w = strtok_r(r->buf, " \t\r", &save); w;
	     w = strtok_r(NULL, " \t\r", &save)) {
		if (!strcmp(w, "-D")) {
			want_def = true;
			continue;
		}
		if (!strncmp(w, "-D", 2))
			w += 2, want_def = true;
		if (want_def) {
			want_def = false;
			char *eq = strchr(w, '=');
			/* args.c refuses these before the frontend runs */
			if (!eq || eq == w || !eq[1] || r->ndef == FUZZ_MAX_DEFINES)
				continue;
			*eq = 0;
			r->def[r->ndef++] = (fe_Define){w, eq + 1};
		} else if (!strcmp(w, "--train")) {
			r->train = true;
		} else if (!strcmp(w, "--decode")) {
			r->decode = true;
		}
	}
	if (r->train && r->decode)   /* cmd_compile refuses the pair */
		r->decode = false;
}

/* A message about the source names it; only one about a -D option (a
 * command-line value, not a place in a file) may have no location. */
static bool fuzz_located(const char *text, const FuzzRun *r)
{
	return !strncmp(text, "fuzz.msw:", 9) || !strncmp(text, "prelude.msw:", 12) ||
	       (r->ndef && !strncmp(text, "mswc: error: bad hyperparameter", 31));
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	FuzzRun r;
	fuzz_run_line(data, size, &r);
	fe_Options o = {.def = r.def, .ndef = r.ndef, .decode = r.decode};
	fe_Session *s = fe_session_create();
	if (!s)
		return 0;
	Graph *g = NULL;
	Diag d;
	diag_init(&d);
	if (fe_compile_mem(s, "fuzz.msw", data, size, &o, &g, &d)) {
		if (g || d.nerror == 0)
			fuzz_fail("the frontend failed without a message", &d);
		if (!fuzz_located(diag_text(&d), &r))
			fuzz_fail("the frontend's first message has no location", &d);
	} else {
		if (!g || d.nerror)
			fuzz_fail("the frontend succeeded with errors or no graph", &d);
		PassOptions po = {.training = r.train};
		if (pass_infer_shapes(g, &po, &d))
			fuzz_fail("the frontend's graph fails shape inference", &d);
		fuzz_check_graph(g, r.train);
	}
	ir_graph_destroy(g);
	fe_session_destroy(s);   /* after the graph: its SrcLocs point into it */
	diag_free(&d);
	return 0;
}
