/* cmd_generate.c: `mswc generate MODEL.msw --weights W.safetensors
 *                 (--prompt TEXT... | --prompt-file F | --prompts F) [--batch N]
 *                 [-n N] [--temperature T]
 *                 [--top-k K] [--top-p P] [--seed S] [--greedy] [--threads N]
 *                 [--window W] [--prefill T] [--profile] [-D name=value]...`
 *
 * Compiles the model in decode mode (one token per run, KV caches as
 * persistent state; docs/generation.md) with tokens bound to [1, 1], and
 * a second time with tokens [1, T] for the prompt (--prefill, default 32;
 * 0 or 1 feeds the prompt a token per run), loads the weights into both,
 * and continues the prompt. Tokens are bytes: the prompt's
 * bytes are its tokens and each new token is written to stdout as one byte
 * as soon as it is chosen, after the prompt itself, with no newline added.
 * The count and the speed (new tokens per second, the prompt excluded) go
 * to stderr.
 *
 * The model sees at most W positions: --window, or by default the sequence
 * length the weights were trained at (the "mswc.train_seq" metadata that
 * `mswc train` writes), or else the model's context. When the window is
 * full it slides by half (rt_generate), so -n is not bounded by the context
 * and positions the model never trained at are never used. Masks in the
 * weights file are compiled into both programs, as for `mswc run`.
 *
 * Several prompts (--prompt given more than once, or --prompts F: one per
 * line) or --batch N (N samples of one prompt, sequence b with seed + b)
 * decode together: the decode program gets batch N and one position per
 * sequence (pos i32[N]); each sequence is printed when all are done, after
 * a line "==> sequence b <==", and is the text it gets alone. */
#include "tools.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_PROMPTS = 1024 };

typedef struct GenOpts {
	const char *weights, *prompt_file, *prompts_file;
	const char *prompt[MAX_PROMPTS];
	int nprompt;
	long long n, top_k, seed, window, prefill, batch;
	double temperature, top_p;
	bool greedy, profile;
} GenOpts;

static int get_double(const char *opt, const char *s, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (!*s || *end || errno || !(v >= lo && v <= hi))
		return usage_error("generate", "%s expects a number in [%g, %g], got '%s'", opt, lo, hi,
				   s);
	*out = v;
	return 0;
}

const OptHelp generate_options[] = {
	{"--weights FILE", "the parameters (required)"},
	{"--prompt TEXT", "the text to continue; again for more sequences in one batch"},
	{"--prompt-file F", "the prompt from a file"},
	{"--prompts F", "one prompt per line, decoded together"},
	{"--batch N", "N samples of one prompt (seeds S, S+1, ...)"},
	{"-n N", "new tokens (default 100)"},
	{"--temperature T", "sampling temperature (default 1; 0 is greedy)"},
	{"--top-k K", "sample among the K likeliest (default 0: all)"},
	{"--top-p P", "sample within the likeliest tokens of mass P (default 1)"},
	{"--seed S", "sampling seed (default 0)"},
	{"--greedy", "always the likeliest token"},
	{"--window W", "positions the model sees (default: the trained seq, else ctx)"},
	{"--prefill T", "prompt tokens per run (default 32; 0 or 1: one at a time)"},
	{"--profile", "time each kernel"},
	{NULL, NULL},
};

static int gen_option(Args *a, int argc, char **argv, int i)
{
	GenOpts *go = a->user;
	int at = i;
	const char *v;
	if ((v = args_value(argc, argv, &at, "--weights"))) {
		go->weights = v;
	} else if ((v = args_value(argc, argv, &at, "--prompt"))) {
		if (go->nprompt == MAX_PROMPTS)
			return -usage_error("generate", "more than %d prompts", MAX_PROMPTS);
		go->prompt[go->nprompt++] = v;
	} else if ((v = args_value(argc, argv, &at, "--prompt-file"))) {
		go->prompt_file = v;
	} else if ((v = args_value(argc, argv, &at, "--prompts"))) {
		go->prompts_file = v;
	} else if ((v = args_value(argc, argv, &at, "--batch"))) {
		if (args_int("generate", "--batch", v, 1, MAX_PROMPTS, &go->batch))
			return -1;
	} else if ((v = args_value(argc, argv, &at, "-n"))) {
		if (args_int("generate", "-n", v, 0, 1LL << 30, &go->n))
			return -1;
	} else if ((v = args_value(argc, argv, &at, "--temperature"))) {
		if (get_double("--temperature", v, 0, 1e6, &go->temperature))
			return -1;
	} else if ((v = args_value(argc, argv, &at, "--window"))) {
		if (args_int("generate", "--window", v, 2, 1LL << 30, &go->window))
			return -1;
	} else if ((v = args_value(argc, argv, &at, "--prefill"))) {
		if (args_int("generate", "--prefill", v, 0, 1LL << 20, &go->prefill))
			return -1;
	} else if ((v = args_value(argc, argv, &at, "--top-k"))) {
		if (args_int("generate", "--top-k", v, 0, 1LL << 30, &go->top_k))
			return -1;
	} else if ((v = args_value(argc, argv, &at, "--top-p"))) {
		if (get_double("--top-p", v, 0, 1, &go->top_p))
			return -1;
		if (go->top_p == 0)
			return -usage_error("generate", "--top-p 0 keeps nothing; give a number in "
					    "(0, 1]");
	} else if ((v = args_value(argc, argv, &at, "--seed"))) {
		if (args_int("generate", "--seed", v, 0, INT64_MAX, &go->seed))
			return -1;
	} else if (!strcmp(argv[i], "--greedy")) {
		go->greedy = true;
	} else if (!strcmp(argv[i], "--profile")) {
		go->profile = true;
	} else {
		return 0;
	}
	return at - i + 1;
}

/* The prompts: text[i] of len[i] bytes (mem_free each and the arrays). */
typedef struct Prompts {
	char **text;
	size_t *len;
	int n;
} Prompts;

static void prompts_free(Prompts *p)
{
	for (int i = 0; i < p->n; i++)
		mem_free(p->text[i]);
	mem_free(p->text);
	mem_free(p->len);
}

static int add_prompt(Prompts *p, const char *s, size_t len, Diag *d)
{
	if (p->n == MAX_PROMPTS)
		return diag_error(d, (SrcLoc){0}, "generate: more than %d prompts", MAX_PROMPTS);
	char *t = mem_alloc(len + 1);
	if (!t)
		return diag_error(d, (SrcLoc){0}, "out of memory");
	memcpy(t, s, len);
	t[len] = 0;
	p->text[p->n] = t;
	p->len[p->n++] = len;
	return 0;
}

/* --prompt (each one prompt), --prompt-file (the whole file, one prompt)
 * or --prompts (one prompt per line, without its newline; empty lines are
 * skipped). */
static int read_prompts(const GenOpts *go, Prompts *p, Diag *d)
{
	p->text = mem_calloc(MAX_PROMPTS, sizeof *p->text);
	p->len = mem_calloc(MAX_PROMPTS, sizeof *p->len);
	if (!p->text || !p->len)
		return diag_error(d, (SrcLoc){0}, "out of memory");
	for (int i = 0; i < go->nprompt; i++)
		if (add_prompt(p, go->prompt[i], strlen(go->prompt[i]), d))
			return -1;
	const char *path = go->prompt_file ? go->prompt_file : go->prompts_file;
	if (!path)
		return 0;
	rt_Reader r;
	if (rt_reader_open(&r, path, d))
		return -1;
	size_t len = (size_t)r.size;
	char *all = mem_alloc(len + 1);
	int rc = !all ? diag_error(d, (SrcLoc){0}, "out of memory") : rt_reader_read(&r, 0, all, len, d);
	rt_reader_close(&r);
	if (rc == 0 && go->prompt_file)
		rc = add_prompt(p, all, len, d);
	for (size_t i = 0; rc == 0 && go->prompts_file && i < len;) {
		size_t j = i;
		while (j < len && all[j] != '\n')
			j++;
		if (j > i)
			rc = add_prompt(p, all + i, j - i, d);
		i = j + 1;
	}
	if (rc == 0 && go->prompts_file && p->n == 0)
		rc = diag_error(d, (SrcLoc){0}, "%s: no prompt in the file (one per line)", path);
	mem_free(all);
	return rc;
}

static void put_byte(int32_t tok)
{
	if (tok < 256)
		putchar(tok);
	else
		printf("<%d>", tok);
}

/* One sequence streams; a batch is printed when it is done. */
static void put_token(void *user, int seq, int32_t tok)
{
	(void)user;
	(void)seq;
	put_byte(tok);
	fflush(stdout);
}

/* The prompt's program: the model in decode mode again, with T tokens
 * per run, bound to the same pool and loaded with the same weights. */
static int build_prefill(const BuildOptions *main, int64_t T, rt_Pool *pool,
			 const rt_TensorFile *wf, const char *path, Build *bp, rt_Exec **e)
{
	fe_InputShape shape = {.name = "tokens", .rank = 2, .dim = {1, T}};
	BuildOptions bo = *main;
	bo.input = &shape;
	bo.ninput = 1;
	int rc = build_run(bp, &bo);
	if (rc)
		return rc;
	if (rt_exec_create(bp->prog, pool, e, &bp->diag))
		rc = EXIT_FAIL;   /* out of memory, as in start_exec */
	else if (rt_load_params_from(*e, wf, path, 0, &bp->diag))
		rc = EXIT_FAIL;
	if (rc)
		fputs(diag_text(&bp->diag), stderr);
	return rc;
}

static int generate(const GenOpts *go, const BuildOptions *bo, Build *b,
		    const rt_TensorFile *wf, const Prompts *pr, int nseq)
{
	rt_Pool *pool;
	rt_Exec *e, *pe = NULL;
	Build bp = {0};
	bool have_bp = false;
	int32_t **prompt = NULL, **out = NULL;
	int64_t *np = NULL;
	rt_Decoder dc;
	int rc = start_exec(b, bo->args->threads, &pool, &e);
	if (rc)
		goto done;
	rc = EXIT_FAIL;
	if (rt_load_params_from(e, wf, go->weights, 0, &b->diag) || rt_decoder_init(&dc, e, &b->diag))
		goto done;
	int64_t n = go->n, window = go->window ? go->window : weights_train_seq(wf);
	if (window <= 0 || window > dc.ctx)
		window = dc.ctx;
	int64_t chunk = go->prefill < window ? go->prefill : window;
	if (chunk > 1) {
		have_bp = true;
		if ((rc = build_prefill(bo, chunk, pool, wf, go->weights, &bp, &pe)))
			goto quiet;
		rc = EXIT_FAIL;
	}
	prompt = mem_calloc((size_t)nseq, sizeof *prompt);
	out = mem_calloc((size_t)nseq, sizeof *out);
	np = mem_calloc((size_t)nseq, sizeof *np);
	bool ok = prompt && out && np;
	for (int q = 0; ok && q < nseq; q++) {
		const char *text = pr->text[pr->n == 1 ? 0 : q];
		np[q] = (int64_t)pr->len[pr->n == 1 ? 0 : q];
		prompt[q] = mem_alloc((size_t)np[q] * sizeof **prompt);
		out[q] = mem_alloc((size_t)(n ? n : 1) * sizeof **out);
		ok = prompt[q] && out[q];
		for (int64_t i = 0; ok && i < np[q]; i++)
			prompt[q][i] = (unsigned char)text[i];
		rt_Tensor pt = {.dtype = RT_I32, .rank = 1, .dim = {np[q]}, .data = prompt[q]};
		const char *src = go->prompt_file ? go->prompt_file
				  : go->prompts_file ? go->prompts_file : "--prompt";
		if (ok && rt_tokens_check(src, &pt, dc.vocab, &b->diag))
			goto done;
	}
	if (!ok) {
		diag_error(&b->diag, (SrcLoc){0}, "out of memory");
		goto done;
	}
	rt_GenOpts o = {
		.sample = {.temperature = go->greedy ? 0 : go->temperature, .top_k = (int)go->top_k,
			   .top_p = go->top_p, .seed = (uint64_t)go->seed},
		.max_new = n,
		.window = window,
		.prefill = pe,
		.on_token = nseq == 1 ? put_token : NULL,
	};
	if (nseq == 1) {
		fwrite(pr->text[0], 1, pr->len[0], stdout);
		fflush(stdout);
	}
	rt_GenStats st;
	rt_exec_profile(e, go->profile);
	int grc = rt_generate_batch(e, nseq, (const int32_t *const *)prompt, np, &o, out, &st,
				    &b->diag);
	for (int q = 0; grc == 0 && nseq > 1 && q < nseq; q++) {
		printf("%s==> sequence %d <==\n", q ? "\n" : "", q + 1);
		fwrite(pr->text[pr->n == 1 ? 0 : q], 1, (size_t)np[q], stdout);
		for (int64_t i = 0; i < n; i++)
			put_byte(out[q][i]);
		putchar('\n');
	}
	fflush(stdout);
	if (grc)
		goto done;
	fprintf(stderr, "\n%lld tokens, %.1f tokens/s (prompt: %lld tokens in %.1f ms; prefilled %lld "
		"tokens, prompt and window slides, in chunks of %lld; window %lld, slid %lld times; %d sequences; %d threads)\n",
		(long long)st.ngen, st.gen_s > 0 ? (double)st.ngen / st.gen_s : 0.0,
		(long long)st.nprompt, 1e3 * st.prompt_s, (long long)st.nprefill,
		(long long)(pe ? chunk : 1), (long long)window, (long long)st.nslide, nseq,
		rt_pool_size(pool));
	if (go->profile)
		rt_exec_print_profile(e, stderr);
	rc = 0;
done:
	if (rc)
		fputs(diag_text(&b->diag), stderr);
quiet:
	for (int q = 0; q < nseq; q++) {
		if (prompt)
			mem_free(prompt[q]);
		if (out)
			mem_free(out[q]);
	}
	mem_free(prompt);
	mem_free(out);
	mem_free(np);
	rt_exec_destroy(pe);
	if (have_bp)
		build_free(&bp);
	rt_exec_destroy(e);
	rt_pool_destroy(pool);
	return rc;
}

int cmd_generate(int argc, char **argv)
{
	GenOpts go = {.n = 100, .temperature = 1.0, .top_p = 1.0, .prefill = 32};
	Args a = {.cmd = "generate", .user = &go};
	if (args_parse(&a, argc, argv, gen_option))
		return EXIT_USAGE;
	if (!go.weights)
		return usage_error("generate", "no --weights given (make some with 'mswc init')");
	if ((go.nprompt > 0) + !!go.prompt_file + !!go.prompts_file != 1)
		return usage_error("generate", "give exactly one of --prompt TEXT (one or more), "
				   "--prompt-file F and --prompts F");
	Diag d;
	diag_init(&d);
	Prompts pr = {0};
	rt_TensorFile wf = {0};
	PruneTensor *masks = NULL;
	int nmasks = 0, rc = EXIT_FAIL;
	if (read_prompts(&go, &pr, &d) || weights_read(go.weights, &a, &wf, &masks, &nmasks, &d)) {
		fputs(diag_text(&d), stderr);
		goto out;
	}
	for (int i = 0; i < pr.n; i++)
		if (pr.len[i] == 0) {
			rc = usage_error("generate", "the prompt is empty; give at least one byte");
			goto out;
		}
	if (go.batch && pr.n > 1 && go.batch != pr.n) {
		rc = usage_error("generate", "--batch %lld with %d prompts (give one prompt, or as "
				 "many as the batch)", go.batch, pr.n);
		goto out;
	}
	int nseq = go.batch ? (int)go.batch : pr.n;
	/* One position per sequence, so prompts of different lengths decode
	 * together, each at its own position. */
	fe_InputShape shape[2] = {{.name = "tokens", .rank = 2, .dim = {nseq, 1}},
				  {.name = "pos", .rank = 1, .dim = {nseq}}};
	BuildOptions bo = {.args = &a, .input = shape, .ninput = 2, .decode = true,
			   .stage = STAGE_PROGRAM, .masks = masks, .nmasks = nmasks};
	Build b;
	rc = build_run(&b, &bo);
	if (rc == 0)
		rc = generate(&go, &bo, &b, &wf, &pr, nseq);
	build_free(&b);
out:
	sparse_tensors_free(masks, nmasks);
	rt_tensorfile_free(&wf);
	prompts_free(&pr);
	diag_free(&d);
	return rc;
}
