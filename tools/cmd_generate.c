/* cmd_generate.c: `mswc generate MODEL.msw --weights W.safetensors
 *                 (--prompt TEXT | --prompt-file F) [-n N] [--temperature T]
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
 * and positions the model never trained at are never used. */
#include "tools.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct GenOpts {
	const char *weights, *prompt, *prompt_file;
	long long n, top_k, seed, window, prefill;
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

static int gen_option(Args *a, int argc, char **argv, int i)
{
	GenOpts *go = a->user;
	int at = i;
	const char *v;
	if ((v = args_value(argc, argv, &at, "--weights"))) {
		go->weights = v;
	} else if ((v = args_value(argc, argv, &at, "--prompt"))) {
		go->prompt = v;
	} else if ((v = args_value(argc, argv, &at, "--prompt-file"))) {
		go->prompt_file = v;
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

/* The prompt's bytes, from the option or the file (mem_free it). */
static int read_prompt(const GenOpts *go, char **text, size_t *len, Diag *d)
{
	if (go->prompt) {
		*len = strlen(go->prompt);
		*text = mem_alloc(*len + 1);
		if (!*text)
			return diag_error(d, (SrcLoc){0}, "out of memory");
		memcpy(*text, go->prompt, *len + 1);
		return 0;
	}
	rt_Reader r;
	if (rt_reader_open(&r, go->prompt_file, d))
		return -1;
	*len = (size_t)r.size;
	*text = mem_alloc(*len + 1);
	int rc = !*text ? diag_error(d, (SrcLoc){0}, "out of memory") :
			  rt_reader_read(&r, 0, *text, *len, d);
	rt_reader_close(&r);
	return rc;
}

/* The sequence length the weights were trained at, from the metadata
 * `mswc train` writes into its checkpoints; 0 if the file does not say. */
static int64_t trained_window(const rt_TensorFile *f)
{
	long long seq = 0;
	if (f->metadata_json) {
		cJSON *meta = cJSON_Parse(f->metadata_json);
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, "mswc.train_seq");
		if (cJSON_IsString(v))
			seq = strtoll(v->valuestring, NULL, 10);
		cJSON_Delete(meta);
	}
	return seq > 1 ? seq : 0;
}

static void put_token(void *user, int seq, int32_t tok)
{
	(void)user;
	(void)seq;
	if (tok < 256)
		putchar(tok);
	else
		printf("<%d>", tok);
	fflush(stdout);
}

/* The prompt's program: the model in decode mode again, with T tokens
 * per run, bound to the same pool and loaded with the same weights. */
static int build_prefill(const Args *a, int64_t T, rt_Pool *pool, const rt_TensorFile *wf,
			 const char *path, Build *bp, rt_Exec **e)
{
	fe_InputShape shape = {.name = "tokens", .rank = 2, .dim = {1, T}};
	BuildOptions bo = {.args = a, .input = &shape, .ninput = 1, .decode = true,
			   .stage = STAGE_PROGRAM};
	int rc = build_run(bp, &bo);
	if (rc)
		return rc;
	if (rt_exec_create(bp->prog, pool, e, &bp->diag))
		rc = EXIT_INTERNAL;
	else if (rt_load_params_from(*e, wf, path, 0, &bp->diag))
		rc = EXIT_USER;
	if (rc)
		fputs(diag_text(&bp->diag), stderr);
	return rc;
}

static int generate(const GenOpts *go, const Args *a, Build *b, const char *text, size_t len)
{
	rt_Pool *pool = rt_pool_create(a->threads);
	rt_Exec *e = NULL, *pe = NULL;
	rt_TensorFile wf = {0};
	Build bp = {0};
	bool have_bp = false;
	int32_t *prompt = NULL, *out = NULL;
	rt_Decoder dc;
	int rc = EXIT_INTERNAL;
	if (!pool || rt_exec_create(b->prog, pool, &e, &b->diag))
		goto done;
	rc = EXIT_USER;
	if (rt_safetensors_read(go->weights, &wf, &b->diag) ||
	    rt_load_params_from(e, &wf, go->weights, 0, &b->diag) || rt_decoder_init(&dc, e, &b->diag))
		goto done;
	int64_t n = go->n, window = go->window ? go->window : trained_window(&wf);
	if (window <= 0 || window > dc.ctx)
		window = dc.ctx;
	int64_t chunk = go->prefill < window ? go->prefill : window;
	if (chunk > 1) {
		have_bp = true;
		if ((rc = build_prefill(a, chunk, pool, &wf, go->weights, &bp, &pe)))
			goto quiet;
		rc = EXIT_USER;
	}
	prompt = mem_alloc((len ? len : 1) * sizeof *prompt);
	out = mem_alloc((size_t)(n ? n : 1) * sizeof *out);
	if (!prompt || !out) {
		rc = EXIT_INTERNAL;
		diag_error(&b->diag, (SrcLoc){0}, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < len; i++) {
		prompt[i] = (unsigned char)text[i];
		if (prompt[i] >= dc.vocab) {
			diag_error(&b->diag, (SrcLoc){0}, "prompt byte %zu (%d) is outside the "
				   "vocabulary of %lld", i, prompt[i], (long long)dc.vocab);
			goto done;
		}
	}
	rt_GenOpts o = {
		.sample = {.temperature = go->greedy ? 0 : go->temperature, .top_k = (int)go->top_k,
			   .top_p = go->top_p, .seed = (uint64_t)go->seed},
		.max_new = n,
		.window = window,
		.prefill = pe,
		.on_token = put_token,
	};
	fwrite(text, 1, len, stdout);
	fflush(stdout);
	rt_GenStats st;
	rt_exec_profile(e, go->profile);
	int grc = rt_generate(e, prompt, (int64_t)len, &o, out, &st, &b->diag);
	fflush(stdout);
	if (grc)
		goto done;
	fprintf(stderr, "\n%lld tokens, %.1f tokens/s (prompt: %lld tokens in %.1f ms, %lld of them "
		"in chunks of %lld; window %lld, slid %lld times; %d threads)\n", (long long)st.ngen,
		st.gen_s > 0 ? (double)st.ngen / st.gen_s : 0.0, (long long)st.nprompt,
		1e3 * st.prompt_s, (long long)st.nprefill, (long long)(pe ? chunk : 1),
		(long long)window, (long long)st.nslide, rt_pool_size(pool));
	if (go->profile)
		rt_exec_print_profile(e, stderr);
	rc = 0;
done:
	if (rc)
		fputs(diag_text(&b->diag), stderr);
quiet:
	mem_free(prompt);
	mem_free(out);
	rt_exec_destroy(pe);
	if (have_bp)
		build_free(&bp);
	rt_exec_destroy(e);
	rt_tensorfile_free(&wf);
	rt_pool_destroy(pool);
	return rc;
}

int cmd_generate(int argc, char **argv)
{
	GenOpts go = {.n = 100, .temperature = 1.0, .top_p = 1.0, .prefill = 32};
	Args a = {.cmd = "generate", .user = &go};
	if (args_parse(&a, argc, argv, gen_option))
		return EXIT_USER;
	if (!go.weights)
		return usage_error("generate", "no --weights given (make some with 'mswc init')");
	if (!go.prompt == !go.prompt_file)
		return usage_error("generate", "give exactly one of --prompt TEXT and --prompt-file F");
	Diag d;
	diag_init(&d);
	char *text = NULL;
	size_t len = 0;
	int rc = EXIT_USER;
	if (read_prompt(&go, &text, &len, &d)) {
		fputs(diag_text(&d), stderr);
		goto out;
	}
	if (len == 0) {
		rc = usage_error("generate", "the prompt is empty; give at least one byte");
		goto out;
	}
	fe_InputShape shape = {.name = "tokens", .rank = 2, .dim = {1, 1}};
	BuildOptions bo = {.args = &a, .input = &shape, .ninput = 1, .decode = true,
			   .stage = STAGE_PROGRAM};
	Build b;
	rc = build_run(&b, &bo);
	if (rc == 0)
		rc = generate(&go, &a, &b, text, len);
	build_free(&b);
out:
	mem_free(text);
	diag_free(&d);
	return rc;
}
