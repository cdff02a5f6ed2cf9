/* generate.c: autoregressive generation over a program compiled in decode
 * mode (docs/generation.md).
 *
 * A decode program takes one new token per run: inputs `tokens` (i32, one
 * element) and `pos` (i32 scalar, the token's position), an f32 output
 * `logits` whose last axis is the vocabulary, and RT_SLOT_STATE slots, the
 * KV caches, [..., ctx, D] each. A run writes the token's keys and values at
 * row pos of every cache and attends over rows [0, pos], so feeding tokens
 * at positions 0, 1, 2, ... costs one position per token, not the whole
 * prefix. ctx, the rows of the caches, is the most positions a sequence
 * can have; a position at or beyond it is refused here, before running.
 *
 * The loop feeds the prompt token by token (the same program serves the
 * prompt and the continuation), then samples each next token from the last
 * logits with rt_sample, drawing with counter = the index of the generated
 * token, so (seed, prompt, options) reproduce the text exactly. Everything
 * the loop needs is allocated before it starts; nothing is printed: new
 * tokens go to the caller's callback. */
#include "rt.h"

#include <string.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bad_program(Diag *d, const char *what)
{
	return diag_error(d, (SrcLoc){0}, "generate: the program %s (compile the model in decode "
			  "mode, with a kv_cache in its attention)", what);
}

int rt_decoder_init(rt_Decoder *dc, rt_Exec *e, Diag *d)
{
	memset(dc, 0, sizeof *dc);
	dc->e = e;
	const rt_Program *p = rt_exec_program(e);
	const rt_Slot *tok = rt_program_find(p, "tokens"), *pos = rt_program_find(p, "pos");
	const rt_Slot *lg = rt_program_find(p, "logits");
	if (!tok || tok->kind != RT_SLOT_INPUT || tok->dtype != RT_I32 || tok->nbytes != 4)
		return bad_program(d, "has no input 'tokens' of one i32 element");
	if (!pos || pos->kind != RT_SLOT_INPUT || pos->dtype != RT_I32 || pos->rank != 0)
		return bad_program(d, "has no input 'pos: i32[]'");
	if (!lg || lg->kind != RT_SLOT_OUTPUT || lg->dtype != RT_F32 || lg->rank < 1 ||
	    lg->nbytes != 4 * lg->dim[lg->rank - 1])
		return bad_program(d, "has no output 'logits' holding one row of f32");
	dc->vocab = lg->dim[lg->rank - 1];
	dc->ctx = -1;
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		if (s->kind != RT_SLOT_STATE)
			continue;
		if (s->rank < 2)
			return bad_program(d, "has a state of rank < 2");
		if (dc->ctx < 0 || s->dim[s->rank - 2] < dc->ctx)
			dc->ctx = s->dim[s->rank - 2];
		dc->nstate++;
	}
	if (dc->nstate == 0)
		return bad_program(d, "keeps no KV cache");
	if (dc->vocab > INT32_MAX)
		return bad_program(d, "has more than 2^31 logits");
	uint8_t *arena = rt_exec_arena(e);
	dc->tok = (int32_t *)(arena + tok->offset);
	dc->pos = (int32_t *)(arena + pos->offset);
	dc->logits = (const float *)(arena + lg->offset);
	return 0;
}

void rt_decoder_reset(rt_Decoder *dc)
{
	const rt_Program *p = rt_exec_program(dc->e);
	uint8_t *arena = rt_exec_arena(dc->e);
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		if (s->kind == RT_SLOT_STATE)
			memset(arena + s->offset, 0, (size_t)s->nbytes);
	}
}

const float *rt_decoder_step(rt_Decoder *dc, int32_t token, int64_t pos, Diag *d)
{
	if (pos < 0 || pos >= dc->ctx) {
		diag_error(d, (SrcLoc){0}, "generate: position %lld is outside the context of %lld "
			   "tokens", (long long)pos, (long long)dc->ctx);
		return NULL;
	}
	if (token < 0 || token >= dc->vocab) {
		diag_error(d, (SrcLoc){0}, "generate: token %d is outside the vocabulary of %lld",
			   token, (long long)dc->vocab);
		return NULL;
	}
	*dc->tok = token;
	*dc->pos = (int32_t)pos;
	rt_exec_run(dc->e);
	return dc->logits;
}

/* Reset the caches and feed seq[0 .. n) at positions 0 .. n-1; returns the
 * logits after the last one. */
static const float *refill(rt_Decoder *dc, const int32_t *seq, int64_t n, Diag *d)
{
	const float *logits = NULL;
	rt_decoder_reset(dc);
	for (int64_t i = 0; i < n; i++)
		if (!(logits = rt_decoder_step(dc, seq[i], i, d)))
			return NULL;
	return logits;
}

static int check_lengths(const rt_Decoder *dc, int64_t nprompt, const rt_GenOpts *o, Diag *d)
{
	if (nprompt < 1)
		return diag_error(d, (SrcLoc){0}, "generate: the prompt is empty (give at least one "
				  "token)");
	if (o->window < 0 || o->window == 1)
		return diag_error(d, (SrcLoc){0}, "generate: a window of %lld positions is too small",
				  (long long)o->window);
	if (o->max_new < 0)
		return diag_error(d, (SrcLoc){0}, "generate: %lld new tokens", (long long)o->max_new);
	return 0;
}

int rt_generate(rt_Exec *e, const int32_t *prompt, int64_t nprompt, const rt_GenOpts *o,
		int32_t *out, rt_GenStats *st, Diag *d)
{
	rt_Decoder dc;
	memset(st, 0, sizeof *st);
	if (rt_decoder_init(&dc, e, d) || check_lengths(&dc, nprompt, o, d))
		return -1;
	int64_t window = o->window && o->window < dc.ctx ? o->window : dc.ctx;
	int64_t keep = window / 2;
	/* The whole sequence, so a full window can slide: prompt, then the new
	 * tokens. Allocated once, like the sampling scratch. */
	int32_t *seq = mem_alloc((size_t)(nprompt + o->max_new) * sizeof *seq);
	void *scratch = seq ? mem_alloc(rt_sample_scratch_size((int)dc.vocab) + 1) : NULL;
	if (!scratch) {
		mem_free(seq);
		return diag_error(d, (SrcLoc){0}, "out of memory");
	}
	memcpy(seq, prompt, (size_t)nprompt * sizeof *seq);
	int rc = -1;
	double t0 = now(), t1 = t0;
	/* A prompt longer than the window: the model sees its last `keep`
	 * tokens, as after a slide. */
	int64_t first = nprompt > window ? nprompt - keep : 0, n = nprompt;
	int64_t npos = n - first;   /* tokens in the caches */
	const float *logits = refill(&dc, seq + first, npos, d);
	if (!logits)
		goto done;
	st->nprompt = nprompt;
	t1 = now();
	st->prompt_s = t1 - t0;
	for (int64_t i = 0; i < o->max_new; i++) {
		int next = rt_sample(logits, (int)dc.vocab, &o->sample, (uint64_t)i, scratch);
		if (next < 0) {
			diag_error(d, (SrcLoc){0}, "generate: the logits at position %lld hold no finite "
				   "value (or +inf); the weights may be broken", (long long)(npos - 1));
			goto done;
		}
		out[i] = seq[n++] = next;
		st->ngen = i + 1;
		if (o->on_token)
			o->on_token(o->user, next);
		if (i + 1 == o->max_new)
			break;
		if (npos < window) {
			logits = rt_decoder_step(&dc, next, npos++, d);
		} else {
			/* The window is full: keep its last half and go on from there,
			 * re-reading those tokens at positions 0 .. keep-1 (the
			 * model only knows positions it was trained at). */
			npos = keep;
			st->nslide++;
			logits = refill(&dc, seq + n - keep, keep, d);
		}
		if (!logits)
			goto done;
	}
	rc = 0;
done:
	st->gen_s = st->nprompt ? now() - t1 : 0;
	mem_free(scratch);
	mem_free(seq);
	return rc;
}
