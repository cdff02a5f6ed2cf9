/* score.c: the log-likelihood of lines of text under an embedded model.
 *
 *   mswc compile models/gpt.msw --aot out --name model --weights W.safetensors
 *   cc -std=c11 -Iout score.c out/model.o $(pkg-config --cflags --libs mswrt) -o score
 *   ./score [--weights W.safetensors] [--threads N] [--dump PREFIX] [FILE]
 *
 * Reads lines from FILE (or stdin) and prints, for each, the log-likelihood
 * of its bytes after the first under the byte-level model, in nats, the
 * number of bytes predicted, and the line:
 *
 *   -95.123456	32	The patient presented with acute ...
 *
 * The model's program has fixed shapes (model.h: MODEL_TOKENS_DIM0 rows of
 * MODEL_TOKENS_DIM1 tokens), so a line is cut into windows of T bytes,
 * each scored on its own (the next byte of each position from the logits,
 * in double precision), and the rows of one run hold windows of several
 * lines. Positions past the end of a line are padded and not counted: the
 * model is causal, so they do not change the positions before them.
 * Without --weights the model's embedded weights are used (compile with
 * --embed-weights). --dump PREFIX appends each run's raw logits and loss
 * (f32, little-endian) to PREFIX.logits and PREFIX.loss, for comparing
 * with `mswc run` bit for bit. */
#define _POSIX_C_SOURCE 200809L   /* getline */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

enum { B = MODEL_TOKENS_DIM0, T = MODEL_TOKENS_DIM1, V = MODEL_LOGITS_DIM2 };

typedef struct Row {
	int line;     /* index of the line, -1 for an unused row */
	int n;        /* positions of the window that predict a byte of the line */
} Row;

typedef struct Scorer {
	msw_Model *m;
	int32_t tokens[B * T], targets[B * T];
	float logits[MODEL_LOGITS_NUMEL], loss;
	Row row[B];
	int nrow;
	double *ll;   /* per line */
	int *count;
	FILE *dump_logits, *dump_loss;
} Scorer;

static int fail(msw_Model *m, int rc, const char *what)
{
	fprintf(stderr, "score: %s: %s\n%s", what, msw_strerror(rc), m ? msw_errmsg(m) : "");
	return 1;
}

/* Runs the rows filled so far and adds their log-likelihoods. */
static int flush(Scorer *s)
{
	if (s->nrow == 0)
		return 0;
	for (int r = s->nrow; r < B; r++) {
		memset(s->tokens + r * T, 0, sizeof(int32_t) * T);
		memset(s->targets + r * T, 0, sizeof(int32_t) * T);
		s->row[r].line = -1;
	}
	struct model_inputs in = {s->tokens, s->targets};
	struct model_outputs out = {s->logits, &s->loss};
	int rc = model_run(s->m, &in, &out);
	if (rc)
		return fail(s->m, rc, "run");
	if (s->dump_logits) {
		fwrite(s->logits, sizeof s->logits, 1, s->dump_logits);
		fwrite(&s->loss, sizeof s->loss, 1, s->dump_loss);
	}
	for (int r = 0; r < s->nrow; r++)
		for (int t = 0; t < s->row[r].n; t++) {
			const float *x = s->logits + ((size_t)r * T + (size_t)t) * V;
			double max = x[0], sum = 0;
			for (int v = 1; v < V; v++)
				max = x[v] > max ? x[v] : max;
			for (int v = 0; v < V; v++)
				sum += exp(x[v] - max);
			s->ll[s->row[r].line] += x[s->targets[r * T + t]] - max - log(sum);
			s->count[s->row[r].line]++;
		}
	s->nrow = 0;
	return 0;
}

/* Queues the windows of one line: window k holds bytes [kT, kT + T) and
 * predicts bytes [kT + 1, kT + T + 1). */
static int add_line(Scorer *s, int line, const unsigned char *text, size_t len)
{
	for (size_t at = 0; at + 1 < len; at += T) {
		if (s->nrow == B && flush(s))
			return 1;
		int r = s->nrow++;
		size_t n = len - 1 - at < (size_t)T ? len - 1 - at : (size_t)T;
		for (int t = 0; t < T; t++) {
			s->tokens[r * T + t] = at + (size_t)t < len ? text[at + (size_t)t] : 0;
			s->targets[r * T + t] = (size_t)t < n ? text[at + (size_t)t + 1] : 0;
		}
		s->row[r].line = line;
		s->row[r].n = (int)n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *weights = NULL, *path = NULL, *dump = NULL;
	msw_Options opts = {0};
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--weights") && i + 1 < argc)
			weights = argv[++i];
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			opts.threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--dump") && i + 1 < argc)
			dump = argv[++i];
		else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "usage: score [--weights W.safetensors] [--threads N] "
					"[--dump PREFIX] [FILE]\n");
			return 2;
		} else
			path = argv[i];
	}
	if (msw_abi_version() != MSW_ABI_VERSION) {
		fprintf(stderr, "score: built for runtime ABI %d, linked with %d\n", MSW_ABI_VERSION,
			msw_abi_version());
		return 1;
	}
	FILE *f = path ? fopen(path, "rb") : stdin;
	if (!f) {
		fprintf(stderr, "score: %s: %s\n", path, strerror(errno));
		return 1;
	}
	/* The lines, all read first: the rows of one run may hold several.
	 * Static, so an early error return leaves them reachable (a leak
	 * checker then does not count them) without a cleanup path. */
	static char **lines;
	static size_t *len;
	size_t cap = 0;
	int nline = 0;
	char *buf = NULL;
	size_t bufcap = 0;
	ssize_t got;
	while ((got = getline(&buf, &bufcap, f)) >= 0) {
		if (got > 0 && buf[got - 1] == '\n')
			got--;
		if ((size_t)nline == cap) {
			cap = cap ? 2 * cap : 64;
			lines = realloc(lines, cap * sizeof *lines);
			len = realloc(len, cap * sizeof *len);
			if (!lines || !len)
				return fprintf(stderr, "score: out of memory\n"), 1;
		}
		lines[nline] = malloc((size_t)got + 1);
		if (!lines[nline])
			return fprintf(stderr, "score: out of memory\n"), 1;
		memcpy(lines[nline], buf, (size_t)got);
		lines[nline][got] = 0;
		len[nline++] = (size_t)got;
	}
	free(buf);
	if (path)
		fclose(f);

	static Scorer s;
	int rc = model_create(&opts, &s.m);
	if (rc)
		return fail(s.m, rc, "cannot create the model");
	if (weights && (rc = msw_load_weights(s.m, weights)))
		return fail(s.m, rc, "cannot load the weights");
	if (!weights && !MODEL_EMBEDDED_WEIGHTS) {
		fprintf(stderr, "score: the model has no embedded weights; give --weights\n");
		return 2;
	}
	if (dump) {
		char p[4096];
		snprintf(p, sizeof p, "%s.logits", dump);
		s.dump_logits = fopen(p, "wb");
		snprintf(p, sizeof p, "%s.loss", dump);
		s.dump_loss = fopen(p, "wb");
		if (!s.dump_logits || !s.dump_loss)
			return fprintf(stderr, "score: %s: %s\n", p, strerror(errno)), 1;
	}
	s.ll = calloc((size_t)nline + 1, sizeof *s.ll);
	s.count = calloc((size_t)nline + 1, sizeof *s.count);
	if (!s.ll || !s.count)
		return fprintf(stderr, "score: out of memory\n"), 1;
	for (int i = 0; i < nline; i++)
		if (add_line(&s, i, (const unsigned char *)lines[i], len[i]))
			return 1;
	if (flush(&s))
		return 1;
	double total = 0;
	long ntotal = 0;
	for (int i = 0; i < nline; i++) {
		printf("%.6f\t%d\t%s\n", s.ll[i], s.count[i], lines[i]);
		total += s.ll[i];
		ntotal += s.count[i];
		free(lines[i]);
	}
	fprintf(stderr, "%d lines, %ld bytes predicted, %.4f nats per byte\n", nline, ntotal,
		ntotal ? -total / (double)ntotal : 0.0);
	if (s.dump_logits && (fclose(s.dump_logits) || fclose(s.dump_loss)))
		return fprintf(stderr, "score: cannot write the dump\n"), 1;
	free(lines);
	free(len);
	free(s.ll);
	free(s.count);
	model_destroy(s.m);
	return 0;
}
