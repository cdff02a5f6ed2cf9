/* cmd_encode.c: `mswc encode TEXT -o TOKENS.npy [--targets TARGETS.npy]
 *               [--batch B] [--seq T] [--offset O]`
 *
 * The byte-level tokenizer (token = byte value, vocabulary 256) as a
 * command, so token files for `mswc run` can be made without Python. Row i
 * holds the T bytes starting at O + i*T; with --targets, the targets are
 * the same windows shifted by one byte (the next-byte prediction task). */
#include "tools.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

typedef struct EncodeOpts {
	const char *out, *targets;
	long long batch, seq, offset;
} EncodeOpts;

const OptHelp encode_options[] = {
	{"-o, --out FILE", "the tokens, i32 [batch, seq] (required)"},
	{"--targets FILE", "also the targets: the same windows one byte later"},
	{"--batch B", "rows (default 1)"},
	{"--seq T", "tokens per row (default 128)"},
	{"--offset O", "the byte row 0 starts at (default 0)"},
	{NULL, NULL},
};

static int encode_option(Args *a, int argc, char **argv, int i)
{
	EncodeOpts *eo = a->user;
	int at = i;
	const char *v;
	if ((v = args_value(argc, argv, &at, "-o")) || (v = args_value(argc, argv, &at, "--out"))) {
		eo->out = v;
	} else if ((v = args_value(argc, argv, &at, "--targets"))) {
		eo->targets = v;
	} else if ((v = args_value(argc, argv, &at, "--batch"))) {
		if (args_int("encode", "--batch", v, 1, 1 << 20, &eo->batch))
			return -1;
	} else if ((v = args_value(argc, argv, &at, "--seq"))) {
		if (args_int("encode", "--seq", v, 1, 1 << 24, &eo->seq))
			return -1;
	} else if ((v = args_value(argc, argv, &at, "--offset"))) {
		if (args_int("encode", "--offset", v, 0, LLONG_MAX / 2, &eo->offset))
			return -1;
	} else {
		return 0;
	}
	return at - i + 1;
}

/* Write batch x seq byte tokens starting at `start` of the text. */
static int write_tokens(const char *path, const Source *text, const EncodeOpts *eo, long long start,
			Diag *d)
{
	int64_t n = eo->batch * eo->seq;
	int32_t *tok = mem_alloc((size_t)n * sizeof *tok);
	if (!tok)
		return diag_error(d, (SrcLoc){0}, "out of memory");
	for (int64_t i = 0; i < n; i++)
		tok[i] = (unsigned char)text->text[start + i];
	rt_Tensor t = {.dtype = RT_I32, .rank = 2, .dim = {eo->batch, eo->seq}, .data = tok};
	int rc = rt_npy_write(path, &t, d);
	mem_free(tok);
	return rc;
}

int cmd_encode(int argc, char **argv)
{
	EncodeOpts eo = {.batch = 1, .seq = 128};
	Args a = {.cmd = "encode", .user = &eo};
	if (args_parse(&a, argc, argv, encode_option))
		return EXIT_USAGE;
	if (!eo.out)
		return usage_error("encode", "no output file given (-o TOKENS.npy)");
	Source text;
	const char *why;
	if (source_load(&text, a.model, &why)) {
		fprintf(stderr, "%s: error: cannot read: %s\n", a.model, why);
		return EXIT_FAIL;
	}
	Diag d;
	diag_init(&d);
	int rc = EXIT_FAIL;
	long long need = eo.offset + eo.batch * eo.seq + (eo.targets ? 1 : 0);
	if ((long long)text.len < need) {
		fprintf(stderr, "mswc encode: error: %s has %zu bytes; %lld are needed for %lld x %lld "
			"tokens at offset %lld\n", a.model, text.len, need, eo.batch, eo.seq, eo.offset);
		goto done;
	}
	if (write_tokens(eo.out, &text, &eo, eo.offset, &d) ||
	    (eo.targets && write_tokens(eo.targets, &text, &eo, eo.offset + 1, &d))) {
		fputs(diag_text(&d), stderr);
		goto done;
	}
	printf("wrote %s%s%s: %lld x %lld byte tokens from %s\n", eo.out, eo.targets ? " and " : "",
	       eo.targets ? eo.targets : "", eo.batch, eo.seq, a.model);
	rc = 0;
done:
	source_free(&text);
	diag_free(&d);
	return rc;
}
