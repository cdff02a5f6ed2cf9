/* generate.c: continue a prompt with an embedded model.
 *
 *   mswc compile models/gpt.msw --aot out --name gen --generate --weights W.safetensors --embed-weights
 *   cc -std=c11 -Iout generate.c out/gen.o $(pkg-config --cflags --libs mswrt) -o generate
 *   ./generate [--weights W] [--threads N] [-n N] [--temperature T] [--top-k K] [--top-p P]
 *              [--seed S] [--greedy] [--window W] --prompt TEXT
 *
 * Tokens are bytes: the prompt's bytes are its tokens, and the output is
 * the prompt followed by each new token as one byte, written as soon as it
 * is chosen (no newline added); the count and the speed go to stderr. The
 * defaults are mswc generate's (100 tokens, temperature 1, all of top-k and
 * top-p, seed 0, a window of the whole context), and with the same options
 * and weights the output is mswc generate's, byte for byte. For weights
 * trained at a shorter sequence than the context, give that as --window
 * (mswc generate reads it from the checkpoint). */
#define _POSIX_C_SOURCE 200809L   /* clock_gettime */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gen.h"

static void put_token(void *user, int32_t token)
{
	(void)user;
	if (token < 256)
		putchar(token);
	else
		printf("<%d>", (int)token);
	fflush(stdout);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	const char *weights = NULL, *prompt = NULL;
	long n = 100;
	msw_Options opts = {0};
	msw_GenOptions g = {.temperature = 1.0, .top_p = 1.0, .on_token = put_token};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--greedy")) {
			g.temperature = 0;
			continue;
		}
		if (!v || a[0] != '-') {
			fprintf(stderr, "usage: generate [--weights W] [--threads N] [-n N] [--temperature T] "
					"[--top-k K] [--top-p P] [--seed S] [--greedy] [--window W] --prompt TEXT\n");
			return 2;
		}
		i++;
		if (!strcmp(a, "--weights"))
			weights = v;
		else if (!strcmp(a, "--prompt"))
			prompt = v;
		else if (!strcmp(a, "--threads"))
			opts.threads = atoi(v);
		else if (!strcmp(a, "-n"))
			n = atol(v);
		else if (!strcmp(a, "--temperature"))
			g.temperature = atof(v);
		else if (!strcmp(a, "--top-k"))
			g.top_k = atoi(v);
		else if (!strcmp(a, "--top-p"))
			g.top_p = atof(v);
		else if (!strcmp(a, "--seed"))
			g.seed = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--window"))
			g.window = atol(v);
		else {
			fprintf(stderr, "generate: unknown option %s\n", a);
			return 2;
		}
	}
	if (!prompt || !*prompt || n < 0) {
		fprintf(stderr, "generate: give a non-empty --prompt TEXT (and -n >= 0)\n");
		return 2;
	}
	msw_Model *m;
	int rc = gen_create(&opts, &m);
	if (!rc && weights)
		rc = msw_load_weights(m, weights);
	if (!rc && !weights && !GEN_EMBEDDED_WEIGHTS) {
		fprintf(stderr, "generate: the model has no embedded weights; give --weights\n");
		gen_destroy(m);
		return 2;
	}
	size_t np = strlen(prompt);
	int32_t *tok = malloc(np * sizeof *tok), *out = malloc((size_t)(n ? n : 1) * sizeof *out);
	if (!rc && (!tok || !out)) {
		fprintf(stderr, "generate: out of memory\n");
		return 1;
	}
	for (size_t i = 0; !rc && i < np; i++)
		tok[i] = (unsigned char)prompt[i];
	double t0 = now();
	if (!rc) {
		fwrite(prompt, 1, np, stdout);
		fflush(stdout);
		rc = gen_generate(m, tok, (int64_t)np, n, &g, out);
	}
	double dt = now() - t0;
	if (rc) {
		fprintf(stderr, "generate: %s\n%s", msw_strerror(rc), msw_errmsg(m));
	} else {
		fprintf(stderr, "\n%ld tokens in %.1f ms (prompt %zu tokens included)\n", n, 1e3 * dt,
			np);
	}
	free(tok);
	free(out);
	gen_destroy(m);
	return rc ? 1 : 0;
}
