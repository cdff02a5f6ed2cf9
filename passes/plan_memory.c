/* plan_memory.c: give every value a byte offset in one arena.
 *
 * The arena has two parts. The persistent part comes first: parameters (all
 * together, in node order, so an optimizer can treat them as one flat block),
 * then inputs, then outputs, the loss and the gradients (autodiff). Each
 * persistent value owns its space for the whole run, so a caller may write
 * inputs and read outputs, gradients and parameters between runs. The
 * temporary part follows; temporaries are placed by a greedy walk over the
 * topological node order with a best-fit free list (ggml-alloc's scheme,
 * without its measure pass): a value is allocated when its node runs and
 * released after its last reader has run.
 * A node's output is allocated before its operands are released, so no
 * kernel ever sees its output overlap an input.
 *
 * Views (OPF_VIEW, i.e. RESHAPE) allocate nothing: they take their operand's
 * offset, and the operand stays live until the view's last reader. A
 * CACHE_WRITE is an alias of its cache (operand 0) in the same way: its
 * kernel writes rows of the cache in place, the one place where an output
 * overlaps an input by design. An ADAMW (and ADAMW_MASKED) likewise
 * aliases its param (operand 0), which it updates in place. States
 * (STATE) are persistent like params, so a cache keeps its contents from
 * one run to the next, and so do the optimiser's moments; the optimiser's
 * scalars are an input. With the update in the graph, the arena is the
 * whole training step: its partial sums and clip factor are temporaries
 * like any other, placed in memory the backward pass no longer needs. Aliases
 * form a tree whose root is the one value that owns memory; if any member of
 * the tree is persistent (an output that is a reshape of a temporary), the
 * root becomes persistent.
 *
 * Every buffer's size is rounded up to the alignment (PassOptions.alignment,
 * 64 when 0; a power of two) and is at least one alignment unit, so even
 * empty tensors have distinct offsets. Sizes are checked for overflow. On
 * error nothing in the graph is changed; on success Node.offset is set for
 * every node and g->arena_size is the total.
 *
 * Checked mode (PassOptions.guard, or MSW_CHECK=1) changes the layout so
 * the executor can catch a kernel writing outside its tensors: every
 * buffer is followed by a guard (the guard size rounded up to the
 * alignment) and the arena starts with one, and temporaries are never
 * released, so no buffer ever lands on another's guard. The guard bytes,
 * with the alignment slack after each tensor's last byte, belong to no
 * value at any time; the backend lists them in the program (rt_Guard) and
 * the executor fills and checks them. The arena grows to the sum of all
 * buffers: checked mode is for tests. */
#include "passes.h"

#include <string.h>

/* A free block of the temporary area, [off, off+size). */
typedef struct Block {
	int64_t off, size;
} Block;

typedef struct Plan {
	const Graph *g;
	uint32_t n;
	int64_t align;
	int64_t guard;    /* checked mode: bytes after every buffer, else 0 */
	ValId *root;      /* alias root of each value */
	uint32_t *end;    /* roots: index of the last node that reads any alias */
	uint8_t *persist; /* roots: 1 if the tree holds a persistent value */
	int64_t *size;    /* roots: rounded byte size */
	int64_t *off;     /* every value: the planned offset */
	uint32_t *next;   /* roots ending at the same node, a linked list */
	uint32_t *head;   /* per node: first root whose end is this node */
	Vec free;         /* Block, sorted by offset, coalesced */
	int64_t top;      /* high-water mark of the temporary area */
} Plan;

enum { PLAN_LIMIT_SHIFT = 62 };

static int64_t round_up(int64_t x, int64_t a)
{
	return (x + a - 1) & ~(a - 1);
}

/* Bytes of value v rounded up to the alignment, or -1 if absurdly large. */
static int64_t value_size(const Plan *p, ValId v)
{
	const Node *nd = ir_node(p->g, v);
	const int64_t limit = (int64_t)1 << PLAN_LIMIT_SHIFT;
	int64_t bytes = ir_dtype_size((DType)nd->dtype);
	for (int i = 0; i < nd->shape.rank; i++) {
		int64_t dim = nd->shape.dim[i];
		if (dim < 0 || (dim && bytes > limit / dim))
			return -1;
		bytes *= dim;
	}
	if (bytes == 0)
		bytes = 1;
	return round_up(bytes, p->align);
}

static int is_view(const Graph *g, const Node *nd)
{
	(void)g;
	return ((ir_op[nd->op].flags & OPF_VIEW) && nd->narg == 1) || nd->op == OP_CACHE_WRITE ||
	       nd->op == OP_ADAMW || nd->op == OP_ADAMW_MASKED;
}

/* Alias roots, lifetimes and persistence; nodes are in topological order,
 * so an operand's root is known before its readers are visited. */
static void liveness(Plan *p)
{
	const Graph *g = p->g;
	for (uint32_t v = 0; v < p->n; v++) {
		const Node *nd = ir_node(g, v);
		p->root[v] = is_view(g, nd) ? p->root[ir_operand(g, nd, 0)] : v;
		p->end[v] = v;
		/* A MASK is written once, when the program is bound (runtime). */
		p->persist[v] = nd->op == OP_PARAM || nd->op == OP_INPUT || nd->op == OP_STATE ||
				nd->op == OP_MASK;
	}
	for (uint32_t v = 0; v < p->n; v++) {
		const Node *nd = ir_node(g, v);
		ValId r = p->root[v];
		if (p->end[r] < v)
			p->end[r] = v;
		for (uint32_t i = 0; i < nd->narg; i++) {
			ValId a = p->root[ir_operand(g, nd, i)];
			if (p->end[a] < v)
				p->end[a] = v;
		}
	}
	for (size_t i = 0; i < g->out.len; i++)
		p->persist[p->root[VEC_AT(g->out, Output, i).val]] = 1;
	if (g->loss != VAL_NONE)
		p->persist[p->root[g->loss]] = 1;
	/* The optimizer reads gradients after the step, like outputs. */
	for (size_t i = 0; i < g->grad.len; i++)
		p->persist[p->root[VEC_AT(g->grad, GradPair, i).grad]] = 1;
}

/* Persistent roots, laid out back to back: params, inputs, then the rest
 * (after the arena's first guard in checked mode). */
static int64_t place_persistent(Plan *p)
{
	int64_t at = p->guard;
	for (int pass = 0; pass < 3; pass++) {
		for (uint32_t v = 0; v < p->n; v++) {
			if (p->root[v] != v || !p->persist[v])
				continue;
			int op = ir_node(p->g, v)->op;
			int group = op == OP_PARAM ? 0 : op == OP_INPUT ? 1 : 2;
			if (group != pass)
				continue;
			p->off[v] = at;
			at += p->size[v];
		}
	}
	return at;
}

/* Best fit: the smallest free block that holds size; ties go to the lowest
 * offset. With none, grow the top (absorbing a free block that touches it). */
static int64_t take(Plan *p, int64_t size)
{
	Block *b = p->free.data;
	size_t best = p->free.len;
	for (size_t i = 0; i < p->free.len; i++)
		if (b[i].size >= size && (best == p->free.len || b[i].size < b[best].size))
			best = i;
	if (best < p->free.len) {
		int64_t off = b[best].off;
		b[best].off += size;
		b[best].size -= size;
		if (b[best].size == 0) {
			memmove(&b[best], &b[best + 1], (p->free.len - best - 1) * sizeof *b);
			p->free.len--;
		}
		return off;
	}
	if (p->free.len && b[p->free.len - 1].off + b[p->free.len - 1].size == p->top) {
		int64_t off = b[p->free.len - 1].off;
		p->free.len--;
		p->top = off + size;
		return off;
	}
	int64_t off = p->top;
	p->top += size;
	return off;
}

/* Return a block to the sorted free list, merging with its neighbours. */
static int give_back(Plan *p, int64_t off, int64_t size)
{
	size_t i = 0;
	Block *b = p->free.data;
	while (i < p->free.len && b[i].off < off)
		i++;
	if (i > 0 && b[i - 1].off + b[i - 1].size == off) {
		b[i - 1].size += size;
		if (i < p->free.len && off + size == b[i].off) {
			b[i - 1].size += b[i].size;
			memmove(&b[i], &b[i + 1], (p->free.len - i - 1) * sizeof *b);
			p->free.len--;
		}
		return 0;
	}
	if (i < p->free.len && off + size == b[i].off) {
		b[i].off = off;
		b[i].size += size;
		return 0;
	}
	if (!vec_push(&p->free, sizeof(Block)))
		return -1;
	b = p->free.data;
	memmove(&b[i + 1], &b[i], (p->free.len - 1 - i) * sizeof *b);
	b[i] = (Block){off, size};
	return 0;
}

/* The greedy walk over temporaries; offsets are relative to the start of
 * the temporary area. */
static int place_temporaries(Plan *p)
{
	for (uint32_t v = 0; v < p->n; v++)
		p->head[v] = VAL_NONE;
	for (uint32_t v = p->n; v-- > 0;) {
		if (p->root[v] != v || p->persist[v])
			continue;
		p->next[v] = p->head[p->end[v]];
		p->head[p->end[v]] = v;
	}
	for (uint32_t v = 0; v < p->n; v++) {
		if (p->root[v] == v && !p->persist[v])
			p->off[v] = take(p, p->size[v]);
		if (p->guard)   /* checked mode: nothing is reused */
			continue;
		for (uint32_t r = p->head[v]; r != VAL_NONE; r = p->next[r])
			if (give_back(p, p->off[r], p->size[r]))
				return -1;
	}
	return 0;
}

static void plan_free(Plan *p)
{
	mem_free(p->root);
	mem_free(p->end);
	mem_free(p->persist);
	mem_free(p->size);
	mem_free(p->off);
	mem_free(p->next);
	mem_free(p->head);
	vec_free(&p->free);
}

int pass_plan_memory(Graph *g, const PassOptions *o, Diag *d)
{
	Plan p = {.g = g, .n = ir_nnode(g), .align = o && o->alignment ? o->alignment : 64};
	int rc = -1;
	if (p.align < 0 || (p.align & (p.align - 1)) || p.align > ((int64_t)1 << 20))
		return diag_error(d, (SrcLoc){0}, "plan_memory: alignment %lld is not a power of two",
				  (long long)p.align);
	int64_t guard = o && o->guard ? o->guard : msw_checked() ? PASS_GUARD : 0;
	if (guard > ((int64_t)1 << 20))
		return diag_error(d, (SrcLoc){0}, "plan_memory: a guard of %lld bytes is too large",
				  (long long)guard);
	p.guard = guard > 0 ? round_up(guard, p.align) : 0;
	size_t n = p.n ? p.n : 1;
	p.root = mem_calloc(n, sizeof *p.root);
	p.end = mem_calloc(n, sizeof *p.end);
	p.persist = mem_calloc(n, sizeof *p.persist);
	p.size = mem_calloc(n, sizeof *p.size);
	p.off = mem_calloc(n, sizeof *p.off);
	p.next = mem_calloc(n, sizeof *p.next);
	p.head = mem_calloc(n, sizeof *p.head);
	if (!p.root || !p.end || !p.persist || !p.size || !p.off || !p.next || !p.head)
		goto oom;
	liveness(&p);
	const int64_t limit = (int64_t)1 << PLAN_LIMIT_SHIFT;
	int64_t total = 0;
	for (uint32_t v = 0; v < p.n; v++) {
		if (p.root[v] != v)
			continue;
		p.size[v] = value_size(&p, v);
		if (p.size[v] >= 0)
			p.size[v] += p.guard;
		if (p.size[v] < 0 || p.size[v] > limit - total - p.guard) {
			diag_error(d, ir_node(g, v)->loc, "plan_memory: value %%%u is too large", v);
			goto out;
		}
		total += p.size[v];
	}
	int64_t base = place_persistent(&p);
	if (place_temporaries(&p))
		goto oom;
	/* The greedy top never exceeds the sum of sizes, checked above. */
	for (uint32_t v = 0; v < p.n; v++) {
		ValId r = p.root[v];
		ir_node(g, v)->offset = p.persist[r] ? p.off[r] : base + p.off[r];
	}
	g->arena_size = base + p.top;
	g->arena_guard = p.guard;
	rc = 0;
	goto out;
oom:
	diag_error(d, (SrcLoc){0}, "plan_memory: out of memory");
out:
	plan_free(&p);
	return rc;
}
