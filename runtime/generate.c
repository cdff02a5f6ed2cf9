/* generate.c: autoregressive generation over programs compiled in decode
 * mode (docs/generation.md).
 *
 * A decode program runs T new tokens of each of B sequences: inputs
 * `tokens` (i32 [B, T]) and `pos` (the position of each sequence's first new
 * token: an i32 scalar shared by all, or i32[B], one per sequence), an f32
 * output `logits` [B, T, vocab], and RT_SLOT_STATE slots, the KV caches
 * [B, ..., ctx, D] each. A run writes the new keys and values at rows
 * pos .. pos+T-1 of every cache and attends over rows [0, pos+T), so
 * feeding a sequence costs its new positions, not the whole prefix. ctx,
 * the rows of the caches, is the most positions a sequence can have; a
 * position at or beyond it is refused here, before running.
 *
 * Generation uses two programs: the decode program proper (T = 1, B = the
 * sequences decoded together) and optionally a prefill program (B = 1,
 * T > 1) with the same parameters and caches. A sequence's prompt runs
 * through the prefill program in chunks of T (the last one padded with
 * token 0 where the padded rows still fit the cache: they are written past
 * the prompt, where the causal mask hides them and the next real token
 * overwrites them), its cache rows are copied into the sequence's row of
 * the decode program's caches, and decoding goes on from there one token
 * per run, all sequences in the same run. A prompt tail that cannot be
 * padded goes through the decode program a token per run. Either way a
 * row's logits depend only on its own sequence: the kernels compute every
 * output element with the same reduction order whatever the number of rows
 * (rt.h, the kernel contract), so a sequence gets the same tokens alone or
 * batched, with or without prefill (tests/e2e/test_generate.c checks).
 *
 * Sequence b samples with seed + b, counter = the index of its generated
 * token, so (seed, prompt, options) reproduce the text exactly, and one
 * prompt decoded N times gives N different samples. Everything the loop
 * needs is allocated before it starts; nothing is printed: new tokens go to
 * the caller's callback. */
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
	if (!tok || tok->kind != RT_SLOT_INPUT || tok->dtype != RT_I32 || tok->rank != 2 ||
	    tok->dim[0] < 1 || tok->dim[1] < 1)
		return bad_program(d, "has no input 'tokens: i32[batch, seq]'");
	dc->nseq = tok->dim[0];
	dc->seq = tok->dim[1];
	if (!pos || pos->kind != RT_SLOT_INPUT || pos->dtype != RT_I32 ||
	    !(pos->rank == 0 || (pos->rank == 1 && pos->dim[0] == dc->nseq)))
		return bad_program(d, "has no input 'pos: i32[]' or 'pos: i32[batch]'");
	dc->npos = pos->rank == 0 ? 1 : dc->nseq;
	if (dc->npos != dc->nseq)
		return bad_program(d, "decodes several sequences with one shared 'pos: i32[]' (give "
				   "each its own: pos i32[batch])");
	if (!lg || lg->kind != RT_SLOT_OUTPUT || lg->dtype != RT_F32 || lg->rank < 1 ||
	    lg->dim[lg->rank - 1] < 1 ||
	    lg->nbytes != 4 * lg->dim[lg->rank - 1] * dc->nseq * dc->seq)
		return bad_program(d, "has no output 'logits' holding one f32 row per token");
	dc->vocab = lg->dim[lg->rank - 1];
	dc->ctx = -1;
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		if (s->kind != RT_SLOT_STATE)
			continue;
		if (s->rank < 3 || s->dim[0] != dc->nseq)
			return bad_program(d, "has a state that is not [batch, ..., ctx, D]");
		if (dc->ctx < 0 || s->dim[s->rank - 2] < dc->ctx)
			dc->ctx = s->dim[s->rank - 2];
		dc->nstate++;
	}
	if (dc->nstate == 0)
		return bad_program(d, "keeps no KV cache");
	if (dc->ctx < dc->seq)
		return bad_program(d, "has caches shorter than the tokens of one run");
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

const float *rt_decoder_run(rt_Decoder *dc, const int32_t *tok, const int64_t *pos, Diag *d)
{
	for (int64_t b = 0; b < dc->nseq; b++) {
		if (pos[b] < 0 || pos[b] > dc->ctx - dc->seq) {
			diag_error(d, (SrcLoc){0}, "generate: position %lld is outside the context of "
				   "%lld tokens", (long long)(pos[b] + dc->seq - 1), (long long)dc->ctx);
			return NULL;
		}
		for (int64_t t = 0; t < dc->seq; t++) {
			int32_t k = tok[b * dc->seq + t];
			if (k < 0 || k >= dc->vocab) {
				diag_error(d, (SrcLoc){0}, "generate: token %d is outside the vocabulary "
					   "of %lld", k, (long long)dc->vocab);
				return NULL;
			}
		}
	}
	memcpy(dc->tok, tok, (size_t)(dc->nseq * dc->seq) * sizeof *tok);
	for (int64_t b = 0; b < dc->npos; b++)
		dc->pos[b] = (int32_t)pos[b];
	rt_exec_run(dc->e);
	return dc->logits;
}

const float *rt_decoder_step(rt_Decoder *dc, int32_t token, int64_t pos, Diag *d)
{
	if (dc->nseq != 1 || dc->seq != 1) {
		diag_error(d, (SrcLoc){0}, "internal: rt_decoder_step on a program of %lld x %lld "
			   "tokens per run", (long long)dc->nseq, (long long)dc->seq);
		return NULL;
	}
	return rt_decoder_run(dc, &token, &pos, d);
}

/* A cache of the prefill program and its twin in the decode program:
 * rows [0, n) of every [ctx, D] block of the prefill one go to sequence b's
 * blocks of the decode one (the states are [1, ..., C, D] and
 * [B, ..., C', D]; blocks per sequence and D agree). */
typedef struct CachePair {
	float *from, *to;
	int64_t blocks, c_from, c_to, dim;
} CachePair;

static int pair_caches(rt_Decoder *pre, rt_Decoder *dec, CachePair *pair, Diag *d)
{
	const rt_Program *pp = rt_exec_program(pre->e), *pd = rt_exec_program(dec->e);
	uint8_t *ap = rt_exec_arena(pre->e), *ad = rt_exec_arena(dec->e);
	int n = 0;
	if (pre->nseq != 1 || pre->vocab != dec->vocab || pre->nstate != dec->nstate)
		return bad_program(d, "for prefill does not match the decode program (it must be "
				   "the same model with batch 1)");
	for (size_t i = 0; i < pp->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(pp->slot, rt_Slot, i);
		if (s->kind != RT_SLOT_STATE)
			continue;
		const rt_Slot *t = rt_program_find(pd, s->name);
		bool ok = t && t->kind == RT_SLOT_STATE && t->rank == s->rank &&
			  t->dim[s->rank - 1] == s->dim[s->rank - 1];
		for (int k = 1; ok && k < s->rank - 2; k++)
			ok = t->dim[k] == s->dim[k];
		if (!ok)
			return diag_error(d, (SrcLoc){0}, "generate: the prefill program's cache '%s' "
					  "has no twin of the same shape in the decode program",
					  s->name);
		int r = s->rank;
		pair[n++] = (CachePair){
			.from = (float *)(ap + s->offset), .to = (float *)(ad + t->offset),
			.blocks = s->nbytes / 4 / (s->dim[r - 2] * s->dim[r - 1]),
			.c_from = s->dim[r - 2], .c_to = t->dim[r - 2], .dim = s->dim[r - 1],
		};
	}
	return 0;
}

static void copy_caches(const CachePair *pair, int n, int64_t seq, int64_t rows)
{
	for (int i = 0; i < n; i++) {
		const CachePair *c = &pair[i];
		for (int64_t k = 0; k < c->blocks; k++)
			memcpy(c->to + ((seq * c->blocks + k) * c->c_to) * c->dim,
			       c->from + (k * c->c_from) * c->dim,
			       (size_t)(rows * c->dim) * sizeof(float));
	}
}

/* One sequence: its tokens so far (prompt, then generated), which of them
 * the decode caches hold, and the logits after the last one when ready. */
typedef struct Seq {
	int32_t *tok;
	int64_t n;            /* tokens known */
	int64_t first;        /* the cache holds tok[first ..], at positions 0 .. */
	int64_t fed;          /* tok[first .. fed) are in the cache */
	int64_t ngen;
	bool done;
	float *logits;        /* vocab floats: after tok[n-1], valid when fed == n */
} Seq;

typedef struct Gen {
	rt_Decoder dec, pre;
	bool prefill;
	CachePair *pair;
	int npair;
	const rt_GenOpts *o;
	int64_t window, keep;
	int nseq;
	Seq *s;
	int32_t *tok, *chunk;   /* one decode run's tokens; one prefill run's */
	int64_t *pos;
	rt_GenStats *st;
} Gen;

/* Start filling sequence s's cache from tok[first ..): full chunks (and a
 * padded last one where it fits) through the prefill program, then their
 * cache rows into the sequence's rows of the decode program. */
static int fill(Gen *g, int b, int64_t first, Diag *d)
{
	Seq *s = &g->s[b];
	s->first = s->fed = first;
	if (!g->prefill)
		return 0;
	rt_Decoder *p = &g->pre;
	int64_t T = p->seq, npos = 0;
	const float *lg = NULL;
	while (s->n - s->fed >= T || (s->n > s->fed && npos + T <= p->ctx)) {
		int64_t len = s->n - s->fed < T ? s->n - s->fed : T;
		memcpy(g->chunk, s->tok + s->fed, (size_t)len * sizeof *g->chunk);
		memset(g->chunk + len, 0, (size_t)(T - len) * sizeof *g->chunk);
		if (!(lg = rt_decoder_run(p, g->chunk, &npos, d)))
			return -1;
		s->fed += len;
		npos += len;
		g->st->nprefill += len;
		if (s->fed == s->n)
			memcpy(s->logits, lg + (len - 1) * p->vocab, (size_t)p->vocab * sizeof(float));
	}
	copy_caches(g->pair, g->npair, b, npos);
	return 0;
}

/* One run of the decode program: the next token of every sequence that
 * has one to feed; the others (ready or done) feed token 0 at a position
 * their own next write, or their next refill, will overwrite. */
static int step(Gen *g, Diag *d)
{
	rt_Decoder *dc = &g->dec;
	for (int b = 0; b < g->nseq; b++) {
		Seq *s = &g->s[b];
		int64_t at = s->fed - s->first;
		bool feed = !s->done && s->fed < s->n;
		g->tok[b] = feed ? s->tok[s->fed] : 0;
		g->pos[b] = feed || at < dc->ctx ? at : dc->ctx - 1;
	}
	const float *lg = rt_decoder_run(dc, g->tok, g->pos, d);
	if (!lg)
		return -1;
	for (int b = 0; b < g->nseq; b++) {
		Seq *s = &g->s[b];
		if (s->done || s->fed == s->n)
			continue;
		if (++s->fed == s->n)
			memcpy(s->logits, lg + b * dc->vocab, (size_t)dc->vocab * sizeof(float));
	}
	return 0;
}

/* Runs the decode program until every sequence not done has its logits. */
static int catch_up(Gen *g, Diag *d)
{
	for (;;) {
		bool behind = false;
		for (int b = 0; b < g->nseq; b++)
			behind |= !g->s[b].done && g->s[b].fed < g->s[b].n;
		if (!behind)
			return 0;
		if (step(g, d))
			return -1;
	}
}

static int check_lengths(int nseq, const int64_t *nprompt, const rt_GenOpts *o, Diag *d)
{
	for (int b = 0; b < nseq; b++)
		if (nprompt[b] < 1)
			return diag_error(d, (SrcLoc){0}, "generate: prompt %d is empty (give at least "
					  "one token)", b + 1);
	if (o->window < 0 || o->window == 1)
		return diag_error(d, (SrcLoc){0}, "generate: a window of %lld positions is too small",
				  (long long)o->window);
	if (o->max_new < 0)
		return diag_error(d, (SrcLoc){0}, "generate: %lld new tokens", (long long)o->max_new);
	return 0;
}

/* Samples the next token of every sequence not done; starts a refill of
 * those whose window is full. */
static int choose(Gen *g, void *scratch, Diag *d)
{
	const rt_GenOpts *o = g->o;
	for (int b = 0; b < g->nseq; b++) {
		Seq *s = &g->s[b];
		if (s->done)
			continue;
		rt_SampleOpts so = o->sample;
		so.seed += (uint64_t)b;
		int next = rt_sample(s->logits, (int)g->dec.vocab, &so, (uint64_t)s->ngen, scratch);
		if (next < 0)
			return diag_error(d, (SrcLoc){0}, "generate: the logits at position %lld of "
					  "sequence %d hold no finite value (or +inf); the weights "
					  "may be broken", (long long)(s->fed - s->first - 1), b + 1);
		s->tok[s->n++] = next;
		s->ngen++;
		g->st->ngen++;
		if (o->on_token)
			o->on_token(o->user, b, next);
		if (s->ngen == o->max_new) {
			/* The last new token is never fed back. */
			s->done = true;
		} else if (s->fed - s->first == g->window) {
			/* The window is full: keep its last half and go on from
			 * there, re-reading those tokens at positions 0 .. keep-1
			 * (the model only knows positions it was trained at). */
			g->st->nslide++;
			if (fill(g, b, s->n - g->keep, d))
				return -1;
		}
	}
	return 0;
}

int rt_generate_batch(rt_Exec *e, int nseq, const int32_t *const *prompt, const int64_t *nprompt,
		      const rt_GenOpts *o, int32_t *const *out, rt_GenStats *st, Diag *d)
{
	Gen g = {.o = o, .nseq = nseq, .st = st};
	double t0 = 0, t1 = 0;
	memset(st, 0, sizeof *st);
	if (rt_decoder_init(&g.dec, e, d) || check_lengths(nseq, nprompt, o, d))
		return -1;
	if (g.dec.seq != 1)
		return bad_program(d, "for decoding takes more than one token per run");
	if (g.dec.nseq != nseq)
		return diag_error(d, (SrcLoc){0}, "generate: %d prompts for a decode program of "
				  "batch %lld", nseq, (long long)g.dec.nseq);
	if (o->prefill) {
		if (rt_decoder_init(&g.pre, o->prefill, d))
			return -1;
		g.prefill = true;
	}
	g.window = o->window && o->window < g.dec.ctx ? o->window : g.dec.ctx;
	g.keep = g.window / 2;
	/* Everything the loop touches, allocated once: per sequence its tokens
	 * (prompt + new, so a full window can slide) and its logits row. */
	size_t vocab = (size_t)g.dec.vocab;
	g.s = mem_calloc((size_t)nseq, sizeof *g.s);
	g.pair = mem_calloc((size_t)g.dec.nstate, sizeof *g.pair);
	g.tok = mem_alloc((size_t)nseq * sizeof *g.tok);
	g.pos = mem_alloc((size_t)nseq * sizeof *g.pos);
	g.chunk = mem_alloc((size_t)(g.prefill ? g.pre.seq : 1) * sizeof *g.chunk);
	void *scratch = mem_alloc(rt_sample_scratch_size((int)vocab) + 1);
	bool ok = g.s && g.pair && g.tok && g.pos && g.chunk && scratch;
	for (int b = 0; ok && b < nseq; b++) {
		g.s[b].tok = mem_alloc((size_t)(nprompt[b] + o->max_new) * sizeof(int32_t));
		g.s[b].logits = mem_alloc(vocab * sizeof(float));
		ok = g.s[b].tok && g.s[b].logits;
	}
	int rc = -1;
	if (!ok) {
		diag_error(d, (SrcLoc){0}, "out of memory");
		goto done;
	}
	if (g.prefill && pair_caches(&g.pre, &g.dec, g.pair, d))
		goto done;
	g.npair = g.dec.nstate;
	t0 = t1 = now();
	for (int b = 0; b < nseq; b++) {
		Seq *s = &g.s[b];
		memcpy(s->tok, prompt[b], (size_t)nprompt[b] * sizeof(int32_t));
		s->n = nprompt[b];
		st->nprompt += nprompt[b];
		/* A prompt longer than the window: the model sees its last
		 * `keep` tokens, as after a slide. */
		if (fill(&g, b, s->n > g.window ? s->n - g.keep : 0, d))
			goto done;
		s->done = o->max_new == 0;
	}
	if (catch_up(&g, d))
		goto done;
	t1 = now();
	st->prompt_s = t1 - t0;
	for (;;) {
		if (choose(&g, scratch, d))
			goto done;
		bool all_done = true;
		for (int b = 0; b < nseq; b++)
			all_done &= g.s[b].done;
		if (all_done)
			break;
		if (catch_up(&g, d))
			goto done;
	}
	for (int b = 0; b < nseq; b++)
		memcpy(out[b], g.s[b].tok + nprompt[b], (size_t)g.s[b].ngen * sizeof(int32_t));
	rc = 0;
done:
	st->gen_s = t1 > t0 ? now() - t1 : 0;
	for (int b = 0; g.s && b < nseq; b++) {
		mem_free(g.s[b].tok);
		mem_free(g.s[b].logits);
	}
	mem_free(g.s);
	mem_free(g.pair);
	mem_free(g.tok);
	mem_free(g.pos);
	mem_free(g.chunk);
	mem_free(scratch);
	return rc;
}

int rt_generate(rt_Exec *e, const int32_t *prompt, int64_t nprompt, const rt_GenOpts *o,
		int32_t *out, rt_GenStats *st, Diag *d)
{
	return rt_generate_batch(e, 1, &prompt, &nprompt, o, &out, st, d);
}
