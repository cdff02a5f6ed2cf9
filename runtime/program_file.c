/* program_file.c: a program's description as bytes, and back.
 *
 * The description is everything of an rt_Program but its code: the arena
 * size, the phases, the kernel symbols, the steps (symbol, task count,
 * operand offsets, output metadata, name, flops), and the slots (masks
 * included, one bit per element). An ahead-of-time object carries it as
 * constant data beside the kernels (backend/aot.c), and the runtime reads
 * it without LLVM or the IR. Little-endian, fixed-width fields, in this
 * order (str = u32 length, then that many bytes, no NUL):
 *
 *   "MSWPROG\0"  u32 version (1)
 *   u32 nkernel, nstep, nslot   u64 nargoff   i64 arena_size
 *   u32 phase_start[RT_PHASE_COUNT + 1]
 *   nkernel x str symbol
 *   nargoff x i64 offset
 *   nstep x { u32 kernel, arg0, narg; u8 out_dtype, out_masks, 0, 0;
 *             i64 ntask, out_nbytes; f64 flops; str name }
 *   nslot x { str name; u8 kind, dtype, rank, init, frozen, decay, has_bits, 0;
 *             i32 param; f64 init_std; i64 dim[rank], offset, nbytes, vocab;
 *             has_bits: ceil(numel / 8) bytes, element k at bit k % 8 of byte k / 8 }
 *
 * and nothing after. The steps' operands follow each other in the offset
 * table (arg0 of a step is the sum of narg before it, and they use the
 * whole table); the zero bytes and the bits past a mask's end must be zero.
 * So a description has one spelling: what reads writes back the same.
 * Reading trusts nothing: every count is bounded by the
 * bytes left before anything is allocated for it, every index, dtype,
 * kind and rank is checked, and a mask's bits must fit its slot; the
 * offsets are checked against the arena by rt_exec_create. */
#include "rt.h"

#include <math.h>
#include <string.h>

static const char MAGIC[8] = "MSWPROG";
enum { VERSION = 1, MAX_STR = 1 << 16 };

/* ---- writing ---- */

typedef struct Out {
	Vec b;
	int bad;
} Out;

static void put(Out *o, const void *p, size_t n)
{
	if (o->bad || vec_reserve(&o->b, o->b.len + n, 1)) {
		o->bad = 1;
		return;
	}
	memcpy((char *)o->b.data + o->b.len, p, n);
	o->b.len += n;
}

static void put_u(Out *o, uint64_t x, int n)
{
	uint8_t b[8];
	for (int i = 0; i < n; i++)
		b[i] = (uint8_t)(x >> (8 * i));
	put(o, b, (size_t)n);
}

static void put_f64(Out *o, double x)
{
	uint64_t u;
	memcpy(&u, &x, sizeof u);
	put_u(o, u, 8);
}

static void put_str(Out *o, const char *s)
{
	size_t n = strlen(s);
	put_u(o, n, 4);
	put(o, s, n);
}

static int64_t slot_numel(const rt_Slot *s)
{
	int64_t n = 1;
	for (int i = 0; i < s->rank; i++)
		n *= s->dim[i];
	return n;
}

int rt_program_write(const rt_Program *p, uint8_t **out, size_t *len, Diag *d)
{
	*out = NULL;
	*len = 0;
	Out o = {{0}, 0};
	for (size_t i = 0; i < p->step.len; i++) {
		const rt_Step *st = &VEC_AT(p->step, rt_Step, i);
		if (st->kernel == RT_NO_KERNEL)
			return diag_error(d, (SrcLoc){0}, "program: step %zu (%s) names no kernel "
					  "symbol, so the program cannot be described", i, st->name);
	}
	put(&o, MAGIC, sizeof MAGIC);
	put_u(&o, VERSION, 4);
	put_u(&o, p->kernel.len, 4);
	put_u(&o, p->step.len, 4);
	put_u(&o, p->slot.len, 4);
	put_u(&o, p->argoff.len, 8);
	put_u(&o, (uint64_t)p->arena_size, 8);
	for (int i = 0; i <= RT_PHASE_COUNT; i++)
		put_u(&o, p->phase_start[i], 4);
	for (size_t i = 0; i < p->kernel.len; i++)
		put_str(&o, VEC_AT(p->kernel, char *, i));
	for (size_t i = 0; i < p->argoff.len; i++)
		put_u(&o, (uint64_t)VEC_AT(p->argoff, int64_t, i), 8);
	for (size_t i = 0; i < p->step.len; i++) {
		const rt_Step *st = &VEC_AT(p->step, rt_Step, i);
		put_u(&o, st->kernel, 4);
		put_u(&o, st->arg0, 4);
		put_u(&o, st->narg, 4);
		uint8_t b[4] = {st->out_dtype, st->out_masks, 0, 0};
		put(&o, b, 4);
		put_u(&o, (uint64_t)st->ntask, 8);
		put_u(&o, (uint64_t)st->out_nbytes, 8);
		put_f64(&o, st->flops);
		put_str(&o, st->name);
	}
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		put_str(&o, s->name);
		uint8_t b[8] = {s->kind, s->dtype, s->rank, s->init, s->frozen, s->decay, s->bits != NULL, 0};
		put(&o, b, 8);
		put_u(&o, (uint32_t)s->param, 4);
		put_f64(&o, s->init_std);
		for (int k = 0; k < s->rank; k++)
			put_u(&o, (uint64_t)s->dim[k], 8);
		put_u(&o, (uint64_t)s->offset, 8);
		put_u(&o, (uint64_t)s->nbytes, 8);
		put_u(&o, (uint64_t)s->vocab, 8);
		if (s->bits) {
			int64_t n = slot_numel(s);
			for (int64_t k = 0; k < n; k += 8) {
				uint8_t byte = 0;
				for (int j = 0; j < 8 && k + j < n; j++)
					byte |= (uint8_t)((s->bits[k + j] != 0) << j);
				put(&o, &byte, 1);
			}
		}
	}
	if (o.bad) {
		vec_free(&o.b);
		return diag_error(d, (SrcLoc){0}, "out of memory describing the program");
	}
	*out = o.b.data;
	*len = o.b.len;
	return 0;
}

/* ---- reading ---- */

typedef struct In {
	const char *name;
	const uint8_t *p;
	size_t len, at;
	Diag *d;
	int bad;
} In;

static int fault(In *in, const char *what)
{
	if (!in->bad)
		rt_file_error(in->d, in->name, "program description: %s (at byte %zu of %zu)", what,
			      in->at, in->len);
	in->bad = 1;
	return -1;
}

static bool have(In *in, size_t n)
{
	if (in->bad)
		return false;
	if (n > in->len - in->at) {
		fault(in, "cut short");
		return false;
	}
	return true;
}

static uint64_t get_u(In *in, int n)
{
	if (!have(in, (size_t)n))
		return 0;
	uint64_t x = 0;
	for (int i = 0; i < n; i++)
		x |= (uint64_t)in->p[in->at + (size_t)i] << (8 * i);
	in->at += (size_t)n;
	return x;
}

static int64_t get_i64(In *in)
{
	return (int64_t)get_u(in, 8);
}

static double get_f64(In *in)
{
	uint64_t u = get_u(in, 8);
	double x;
	memcpy(&x, &u, sizeof x);
	return x;
}

static const uint8_t *get_bytes(In *in, size_t n)
{
	if (!have(in, n))
		return NULL;
	const uint8_t *b = in->p + in->at;
	in->at += n;
	return b;
}

/* A string into buf (NUL-terminated), refused if empty, longer than the
 * buffer or holding a NUL. */
static int get_str(In *in, char *buf, size_t n, const char *what)
{
	uint64_t k = get_u(in, 4);
	const uint8_t *b = in->bad ? NULL : k >= n ? NULL : get_bytes(in, (size_t)k);
	if (in->bad)
		return -1;
	if (!b || k == 0 || memchr(b, 0, (size_t)k)) {
		char msg[96];
		snprintf(msg, sizeof msg, "a bad %s (empty, too long or holding a NUL)", what);
		return fault(in, msg);
	}
	memcpy(buf, b, (size_t)k);
	buf[k] = 0;
	return 0;
}

/* A count of items of at least `size` bytes each: no more than the bytes
 * left could hold. */
static uint64_t get_count(In *in, int n, size_t size, const char *what)
{
	uint64_t c = get_u(in, n);
	if (!in->bad && c > (in->len - in->at) / size) {
		char msg[96];
		snprintf(msg, sizeof msg, "%llu %s do not fit in the bytes left", (unsigned long long)c,
			 what);
		fault(in, msg);
		return 0;
	}
	return c;
}

static int read_steps(In *in, rt_Program *p, uint64_t nstep, uint64_t nkernel, const int64_t *off,
		      uint64_t nargoff, char *buf, size_t nbuf)
{
	uint64_t next = 0;   /* the steps' operands follow each other in the table */
	for (uint64_t i = 0; i < nstep && !in->bad; i++) {
		uint32_t kernel = (uint32_t)get_u(in, 4), arg0 = (uint32_t)get_u(in, 4);
		uint32_t narg = (uint32_t)get_u(in, 4);
		const uint8_t *b = get_bytes(in, 4);
		int64_t ntask = get_i64(in), out_nbytes = get_i64(in);
		double flops = get_f64(in);
		if (get_str(in, buf, nbuf, "step name"))
			return -1;
		if (kernel >= nkernel || narg == 0 || arg0 != next || next + narg > nargoff || ntask < 0 ||
		    out_nbytes < 0 || b[0] >= RT_DTYPE_COUNT || b[1] > 1 || b[2] || b[3] ||
		    !isfinite(flops))
			return fault(in, "a step with a bad kernel, operand range, task count or output");
		const char *sym = VEC_AT(p->kernel, char *, kernel);
		if (rt_program_add_symbol_step(p, sym, ntask, off + arg0, narg, buf, flops))
			return fault(in, "out of memory");
		rt_Step *st = &VEC_AT(p->step, rt_Step, p->step.len - 1);
		st->out_nbytes = out_nbytes;
		st->out_dtype = b[0];
		st->out_masks = b[1];
		next += narg;
	}
	if (!in->bad && next != nargoff)
		return fault(in, "operand offsets that no step uses");
	return in->bad ? -1 : 0;
}

static int read_slot(In *in, rt_Program *p, uint64_t nslot, char *buf, size_t nbuf)
{
	rt_Slot s;
	memset(&s, 0, sizeof s);
	if (get_str(in, buf, nbuf, "slot name"))
		return -1;
	const uint8_t *b = get_bytes(in, 8);
	int32_t param = (int32_t)(uint32_t)get_u(in, 4);
	double init_std = get_f64(in);
	if (in->bad)
		return -1;
	if (b[0] > RT_SLOT_MASK || b[1] >= RT_DTYPE_COUNT || b[2] > RT_MAX_RANK || b[3] > 3 ||
	    b[4] > 1 || b[5] > 1 || b[6] > 1 || b[7] || (b[6] && b[0] != RT_SLOT_MASK) ||
	    param < -1 || (int64_t)param >= (int64_t)nslot || !isfinite(init_std))
		return fault(in, "a slot with a bad kind, dtype, rank, initialiser or param");
	s.name = buf;
	s.kind = b[0];
	s.dtype = b[1];
	s.rank = b[2];
	s.init = b[3];
	s.frozen = b[4];
	s.decay = b[5];
	s.param = param;
	s.init_std = init_std;
	int64_t numel = 1;
	for (int k = 0; k < s.rank; k++) {
		s.dim[k] = get_i64(in);
		if (s.dim[k] < 0 || (s.dim[k] > 0 && numel > INT64_MAX / 8 / s.dim[k]))
			return fault(in, "a slot with a negative or enormous dimension");
		numel *= s.dim[k];
	}
	s.offset = get_i64(in);
	s.nbytes = get_i64(in);
	s.vocab = get_i64(in);
	if (in->bad)
		return -1;
	if (s.vocab < 0)
		return fault(in, "a slot with a negative vocabulary");
	uint8_t *bits = NULL;
	if (b[6]) {
		const uint8_t *packed = get_bytes(in, (size_t)((numel + 7) / 8));
		if (!packed)
			return -1;
		if (numel % 8 && packed[numel / 8] >> (numel % 8))
			return fault(in, "mask bits past the end of the mask");
		/* numel <= 8 * the bytes left, so this is bounded by the input */
		bits = mem_alloc(numel ? (size_t)numel : 1);
		if (!bits)
			return fault(in, "out of memory");
		for (int64_t k = 0; k < numel; k++)
			bits[k] = (packed[k / 8] >> (k % 8)) & 1;
		s.bits = bits;
	}
	int rc = rt_program_add_slot(p, &s);
	mem_free(bits);
	if (rc)
		return fault(in, "a slot that does not fit (name used twice, or mask bits that do "
			     "not match the shape), or out of memory");
	return 0;
}

int rt_program_read(const char *name, const void *data, size_t len, rt_Program **out, Diag *d)
{
	*out = NULL;
	In in = {.name = name, .p = data, .len = data ? len : 0, .d = d};
	char buf[4096];
	int64_t *off = NULL;
	rt_Program *p = rt_program_create();
	if (!p)
		return rt_file_error(d, name, "out of memory");
	const uint8_t *magic = get_bytes(&in, sizeof MAGIC);
	if (magic && memcmp(magic, MAGIC, sizeof MAGIC))
		fault(&in, "not a program description (bad magic)");
	uint64_t version = get_u(&in, 4);
	if (!in.bad && version != VERSION) {
		char msg[96];
		snprintf(msg, sizeof msg, "format version %llu; this runtime reads version %d",
			 (unsigned long long)version, VERSION);
		fault(&in, msg);
	}
	uint64_t nkernel = get_count(&in, 4, 4, "kernels");
	uint64_t nstep = get_count(&in, 4, 40, "steps");
	uint64_t nslot = get_count(&in, 4, 40, "slots");
	uint64_t nargoff = get_count(&in, 8, 8, "operand offsets");
	p->arena_size = get_i64(&in);
	for (int i = 0; i <= RT_PHASE_COUNT; i++)
		p->phase_start[i] = (uint32_t)get_u(&in, 4);
	if (in.bad)
		goto fail;
	if (p->arena_size < 0)
		fault(&in, "a negative arena size");
	bool phased = p->phase_start[RT_PHASE_COUNT] != 0;
	for (int i = 0; phased && i < RT_PHASE_COUNT; i++)
		if (p->phase_start[i] > p->phase_start[i + 1])
			fault(&in, "phases out of order");
	if (phased && (p->phase_start[0] != 0 || p->phase_start[RT_PHASE_COUNT] != nstep))
		fault(&in, "phases that do not cover the steps");
	for (uint64_t k = 0; k < nkernel && !in.bad; k++) {
		if (get_str(&in, buf, sizeof buf, "kernel symbol"))
			break;
		size_t before = p->kernel.len;
		char *copy = mem_strdup(buf);
		char **slot = copy ? vec_push(&p->kernel, sizeof *slot) : NULL;
		if (!slot) {
			mem_free(copy);
			fault(&in, "out of memory");
			break;
		}
		*slot = copy;
		for (size_t j = 0; j < before; j++)
			if (!strcmp(VEC_AT(p->kernel, char *, j), copy))
				fault(&in, "a kernel symbol listed twice");
	}
	if (in.bad)
		goto fail;
	off = mem_alloc(nargoff ? (size_t)nargoff * sizeof *off : 1);
	if (!off) {
		fault(&in, "out of memory");
		goto fail;
	}
	for (uint64_t i = 0; i < nargoff; i++)
		off[i] = get_i64(&in);
	if (read_steps(&in, p, nstep, nkernel, off, nargoff, buf, sizeof buf))
		goto fail;
	for (uint64_t i = 0; i < nslot; i++)
		if (read_slot(&in, p, nslot, buf, sizeof buf))
			goto fail;
	if (in.at != in.len)
		fault(&in, "bytes left after the last slot");
	if (in.bad)
		goto fail;
	mem_free(off);
	*out = p;
	return 0;
fail:
	mem_free(off);
	rt_program_destroy(p);
	return -1;
}
