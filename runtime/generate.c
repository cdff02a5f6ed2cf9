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

int rt_generate(rt_Exec *e, const int32_t *prompt, int64_t nprompt, const rt_GenOpts *o,
		int32_t *out, rt_GenStats *st, Diag *d)
{
	rt_Decoder dc;
	memset(st, 0, sizeof *st);
	if (rt_decoder_init(&dc, e, d))
		return -1;
	if (nprompt < 1)
		return diag_error(d, (SrcLoc){0}, "generate: the prompt is empty (give at least one "
				  "token)");
	if (nprompt > dc.ctx)
		return diag_error(d, (SrcLoc){0}, "generate: the prompt of %lld tokens is longer than "
				  "the context of %lld", (long long)nprompt, (long long)dc.ctx);
	/* The last new token is never fed back, so a sequence fills the
	 * context exactly when nprompt + max_new == ctx. */
	if (o->max_new < 0 || o->max_new > dc.ctx - nprompt)
		return diag_error(d, (SrcLoc){0}, "generate: %lld new tokens after a prompt of %lld "
				  "do not fit the context of %lld", (long long)o->max_new,
				  (long long)nprompt, (long long)dc.ctx);
	void *scratch = mem_alloc(rt_sample_scratch_size((int)dc.vocab) + 1);
	if (!scratch)
		return diag_error(d, (SrcLoc){0}, "out of memory");
	int rc = -1;
	rt_decoder_reset(&dc);
	double t0 = now(), t1 = t0;
	const float *logits = NULL;
	for (int64_t i = 0; i < nprompt; i++)
		if (!(logits = rt_decoder_step(&dc, prompt[i], i, d)))
			goto done;
	st->nprompt = nprompt;
	t1 = now();
	st->prompt_s = t1 - t0;
	for (int64_t i = 0; i < o->max_new; i++) {
		if (i > 0 && !(logits = rt_decoder_step(&dc, out[i - 1], nprompt + i - 1, d)))
			goto done;
		int next = rt_sample(logits, (int)dc.vocab, &o->sample, (uint64_t)i, scratch);
		if (next < 0) {
			diag_error(d, (SrcLoc){0}, "generate: the logits at position %lld hold no finite "
				   "value (or +inf); the weights may be broken",
				   (long long)(nprompt + i - 1));
			goto done;
		}
		out[i] = next;
		st->ngen = i + 1;
		if (o->on_token)
			o->on_token(o->user, next);
	}
	rc = 0;
done:
	st->gen_s = st->nprompt ? now() - t1 : 0;
	mem_free(scratch);
	return rc;
}
