/* structural_hash.c: ir_hash, a 128-bit fingerprint of what a graph computes.
 *
 * The graph is serialised into one canonical byte string and hashed with
 * xxh3-128. Canonical means: integers at fixed widths in little-endian order
 * whatever the host, names by their text (string ids depend on interning
 * order), only the dims below the rank, and only the attributes and flags
 * the op carries (ops.h's attribute column, serialised by ir_attrs_bytes), so
 * a field an op ignores cannot change the hash. Source locations, memory offsets, the arena size, the
 * model name and the -D bindings are left out: two graphs that compute the
 * same thing from different files hash alike, which is what the kernel
 * cache and the round-trip tests want.
 *
 * On out of memory the hash of the empty string is returned; a cache keyed
 * by it merely misses. */
#include "ir.h"

#include <string.h>

typedef struct Buf {
	Vec v;
	bool oom;
} Buf;

static void put(Buf *b, const void *p, size_t n)
{
	if (b->oom || vec_reserve(&b->v, b->v.len + n, 1)) {
		b->oom = true;
		return;
	}
	memcpy((char *)b->v.data + b->v.len, p, n);
	b->v.len += n;
}

static void put_u64(Buf *b, uint64_t x)
{
	uint8_t le[8];
	for (int i = 0; i < 8; i++)
		le[i] = (uint8_t)(x >> (8 * i));
	put(b, le, sizeof le);
}

/* Length first, so "ab"+"c" and "a"+"bc" differ. */
static void put_str(Buf *b, const char *s)
{
	size_t n = strlen(s);
	put_u64(b, n);
	put(b, s, n);
}

static void put_double(Buf *b, double x)
{
	uint64_t bits;
	memcpy(&bits, &x, sizeof bits);
	put_u64(b, bits);
}

static void put_node(Buf *b, const Graph *g, const Node *n)
{
	put_u64(b, n->op);
	put_u64(b, n->dtype);
	put_u64(b, n->flags & ir_flag_mask(n->op));
	put_u64(b, n->shape.rank);
	for (int i = 0; i < n->shape.rank; i++)
		put_u64(b, (uint64_t)n->shape.dim[i]);
	put_u64(b, n->narg);
	for (uint32_t i = 0; i < n->narg; i++)
		put_u64(b, ir_operand(g, n, i));
	if (!b->oom && ir_attrs_bytes(g, n, false, &b->v))
		b->oom = true;
}

Hash128 ir_hash(const Graph *g)
{
	Buf b = {0};
	put_str(&b, "mswc-ir-1");
	put_u64(&b, ir_nnode(g));
	for (ValId v = 0; v < ir_nnode(g); v++)
		put_node(&b, g, ir_node(g, v));
	put_u64(&b, g->out.len);
	for (size_t i = 0; i < g->out.len; i++) {
		const Output *o = &VEC_AT(g->out, Output, i);
		put_str(&b, ir_str(g, o->name));
		put_u64(&b, o->val);
	}
	put_u64(&b, g->loss);
	/* Only when present, so graphs without a backward part keep the hash
	 * they had before gradients existed. */
	if (g->grad.len) {
		put_str(&b, "grad");
		put_u64(&b, g->grad.len);
		for (size_t i = 0; i < g->grad.len; i++) {
			const GradPair *gp = &VEC_AT(g->grad, GradPair, i);
			put_u64(&b, gp->param);
			put_u64(&b, gp->grad);
		}
	}
	/* Masks likewise only when present. The pattern enters through its
	 * hash, which a mask read back from printed IR keeps without its bits,
	 * so print and parse preserve the hash. */
	if (g->mask.len) {
		put_str(&b, "mask");
		put_u64(&b, g->mask.len);
		for (size_t i = 0; i < g->mask.len; i++) {
			const Mask *m = &VEC_AT(g->mask, Mask, i);
			put_u64(&b, m->param);
			put_double(&b, m->target);
			put_u64(&b, m->dist);
			put_u64(&b, (uint64_t)m->nkept);
			if (m->nkept >= 0) {
				put_u64(&b, m->hash.lo);
				put_u64(&b, m->hash.hi);
			}
		}
	}
	Hash128 h = b.oom ? hash128("", 0) : hash128(b.v.data, b.v.len);
	vec_free(&b.v);
	return h;
}
