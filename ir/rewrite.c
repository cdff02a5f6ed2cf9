/* rewrite.c: the one way passes change the graph (besides appending).
 *
 * A rewrite is a batch: between ir_rw_begin and ir_rw_commit a pass appends
 * nodes with the ordinary builders, says where they go (ir_rw_place: right
 * before an existing node, or at the end), which values replace which
 * (ir_rw_replace) and which nodes go (ir_rw_remove). The commit then builds
 * the new node and operand arrays in one go: the final order, every operand
 * redirected to the latest replacement that precedes its reader, outputs,
 * the loss and the gradient values redirected to the final replacement,
 * params named by gradients and masks renumbered. It checks that the result
 * is topological and that no removed node is still read; on any failure
 * (or ir_rw_abort) the graph is exactly as it was at ir_rw_begin, since the
 * old arrays are swapped out only at the very end.
 *
 * "Precedes its reader" is what makes one rule serve every pass: prune
 * replaces W by mul(W, mask) placed right after W, and the mul itself, the
 * one reader before the replacement, keeps reading W; sparse_lower replaces
 * a matmul by nodes placed before it, so all its readers move over.
 *
 * Use lists are not stored: ir_uses computes them when a pass wants them,
 * so no rewrite has to patch them. */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

int ir_uses(const Graph *g, Uses *u, Diag *d)
{
	uint32_t n = ir_nnode(g);
	u->start = mem_calloc((size_t)n + 1, sizeof *u->start);
	u->user = mem_alloc((g->arg.len ? g->arg.len : 1) * sizeof *u->user);
	if (!u->start || !u->user) {
		ir_uses_free(u);
		return diag_error(d, (SrcLoc){0}, "out of memory");
	}
	for (ValId v = 0; v < n; v++) {
		const Node *nd = ir_node(g, v);
		for (uint32_t i = 0; i < nd->narg; i++)
			u->start[ir_operand(g, nd, i) + 1]++;
	}
	for (uint32_t v = 0; v < n; v++)
		u->start[v + 1] += u->start[v];
	uint32_t *fill = mem_alloc(((size_t)n + 1) * sizeof *fill);
	if (!fill) {
		ir_uses_free(u);
		return diag_error(d, (SrcLoc){0}, "out of memory");
	}
	memcpy(fill, u->start, ((size_t)n + 1) * sizeof *fill);
	for (ValId v = 0; v < n; v++) {   /* readers in order; a node reading twice is listed twice */
		const Node *nd = ir_node(g, v);
		for (uint32_t i = 0; i < nd->narg; i++)
			u->user[fill[ir_operand(g, nd, i)]++] = v;
	}
	mem_free(fill);
	return 0;
}

void ir_uses_free(Uses *u)
{
	mem_free(u->start);
	mem_free(u->user);
	u->start = NULL;
	u->user = NULL;
}

int ir_rw_begin(Graph *g, Rewrite *rw, Diag *d)
{
	memset(rw, 0, sizeof *rw);
	rw->g = g;
	rw->n0 = ir_nnode(g);
	rw->narg0 = g->arg.len;
	rw->removed = mem_calloc(rw->n0 ? rw->n0 : 1, sizeof *rw->removed);
	if (!rw->removed)
		return diag_error(d, (SrcLoc){0}, "out of memory");
	return 0;
}

int ir_rw_place(Rewrite *rw, ValId at, Diag *d)
{
	while (rw->place.len < ir_nnode(rw->g) - rw->n0) {
		ValId *p = vec_push(&rw->place, sizeof *p);
		if (!p)
			return diag_error(d, (SrcLoc){0}, "out of memory");
		*p = at < rw->n0 ? at : VAL_NONE;
	}
	return 0;
}

int ir_rw_replace(Rewrite *rw, ValId v, ValId w, Diag *d)
{
	RwRepl *p = vec_push(&rw->repl, sizeof *p);
	if (!p)
		return diag_error(d, (SrcLoc){0}, "out of memory");
	p->from = v;
	p->to = w;
	return 0;
}

void ir_rw_remove(Rewrite *rw, ValId v)
{
	if (v < rw->n0)
		rw->removed[v] = true;
}

static void rw_free(Rewrite *rw)
{
	vec_free(&rw->place);
	vec_free(&rw->repl);
	mem_free(rw->removed);
	rw->removed = NULL;
}

void ir_rw_abort(Rewrite *rw)
{
	rw->g->node.len = rw->n0;
	rw->g->arg.len = rw->narg0;
	rw_free(rw);
}

/* New nodes sort by the old node they precede (the end last), then in the
 * order they were appended. */
typedef struct Slot {
	uint64_t key;
	ValId v;
} Slot;

static int slot_cmp(const void *a, const void *b)
{
	const Slot *x = a, *y = b;
	return x->key < y->key ? -1 : x->key > y->key;
}

int ir_rw_commit(Rewrite *rw, Diag *d)
{
	Graph *g = rw->g;
	uint32_t n = ir_nnode(g), nnew = n - rw->n0;
	if (ir_rw_place(rw, VAL_NONE, d)) {   /* unplaced new nodes go at the end */
		ir_rw_abort(rw);
		return -1;
	}
	ValId *pos = mem_alloc((n ? n : 1) * sizeof *pos);
	ValId *order = mem_alloc((n ? n : 1) * sizeof *order);
	ValId *repl = mem_alloc((n ? n : 1) * sizeof *repl);
	Slot *slot = mem_alloc((nnew ? nnew : 1) * sizeof *slot);
	Vec node = {0}, arg = {0};
	if (!pos || !order || !repl || !slot)
		goto oom;
	for (uint32_t i = 0; i < nnew; i++) {
		ValId at = VEC_AT(rw->place, ValId, i);
		slot[i].key = (uint64_t)(at == VAL_NONE ? rw->n0 : at) << 32 | i;
		slot[i].v = rw->n0 + i;
	}
	qsort(slot, nnew, sizeof *slot, slot_cmp);
	uint32_t k = 0, s = 0, kept = 0;
	for (ValId v = 0; v <= rw->n0; v++) {
		while (s < nnew && slot[s].key >> 32 == v)
			order[k++] = slot[s++].v;
		if (v < rw->n0)
			order[k++] = v;
	}
	for (ValId v = 0; v < n; v++)
		repl[v] = v;
	for (size_t i = 0; i < rw->repl.len; i++) {
		ValId a = VEC_AT(rw->repl, RwRepl, i).from, b = VEC_AT(rw->repl, RwRepl, i).to;
		if (a >= n || b >= n || a == b) {
			diag_error(d, (SrcLoc){0}, "internal: rewrite replaces %%%u by %%%u", a, b);
			goto fail;
		}
		repl[a] = b;
	}
	/* pos: the index in the final order, VAL_NONE for removed nodes. */
	for (uint32_t i = 0; i < n; i++) {
		ValId u = order[i];
		pos[u] = u < rw->n0 && rw->removed[u] ? VAL_NONE : kept++;
	}
	if (vec_reserve(&node, kept ? kept : 1, sizeof(Node)) ||
	    vec_reserve(&arg, g->arg.len ? g->arg.len : 1, sizeof(ValId)))
		goto oom;
	for (uint32_t i = 0; i < n; i++) {
		ValId u = order[i];
		if (pos[u] == VAL_NONE)
			continue;
		const Node *old = ir_node(g, u);
		Node nd = *old;
		nd.arg = (uint32_t)arg.len;
		for (uint32_t j = 0; j < old->narg; j++) {
			ValId a = ir_operand(g, old, j);
			/* Follow the replacements that come before the reader. */
			for (uint32_t hop = 0; repl[a] != a && pos[repl[a]] != VAL_NONE &&
			     pos[repl[a]] < pos[u] && hop < n; hop++)
				a = repl[a];
			if (pos[a] == VAL_NONE || pos[a] >= pos[u]) {
				diag_error(d, old->loc, "internal: after the rewrite %s %%%u reads %%%u, "
					   "which %s", ir_op[old->op].name, u, a, pos[a] == VAL_NONE ?
					   "was removed" : "does not come before it");
				goto fail;
			}
			VEC_AT(arg, ValId, arg.len++) = pos[a];
		}
		VEC_AT(node, Node, node.len++) = nd;
	}
	/* Outputs, the loss and gradients read the final replacement. */
#define FINAL(x)                                                                \
	do {                                                                    \
		for (uint32_t hop = 0; repl[x] != (x) && hop < n; hop++)        \
			x = repl[x];                                            \
	} while (0)
	for (size_t i = 0; i < g->out.len; i++) {
		ValId x = VEC_AT(g->out, Output, i).val;
		FINAL(x);
		if (x >= n || pos[x] == VAL_NONE)
			goto dangling;
	}
	ValId loss = g->loss;
	if (loss != VAL_NONE) {
		FINAL(loss);
		if (loss >= n || pos[loss] == VAL_NONE)
			goto dangling;
	}
	for (size_t i = 0; i < g->grad.len; i++) {
		const GradPair *gp = &VEC_AT(g->grad, GradPair, i);
		ValId x = gp->grad;
		FINAL(x);
		if (x >= n || gp->param >= n || pos[x] == VAL_NONE || pos[gp->param] == VAL_NONE)
			goto dangling;
	}
	for (size_t i = 0; i < g->mask.len; i++) {
		ValId p = VEC_AT(g->mask, Mask, i).param;
		if (p >= n || pos[p] == VAL_NONE)
			goto dangling;
	}
	/* Nothing can fail from here on. */
	for (size_t i = 0; i < g->out.len; i++) {
		ValId x = VEC_AT(g->out, Output, i).val;
		FINAL(x);
		VEC_AT(g->out, Output, i).val = pos[x];
	}
	if (loss != VAL_NONE)
		g->loss = pos[loss];
	for (size_t i = 0; i < g->grad.len; i++) {
		GradPair *gp = &VEC_AT(g->grad, GradPair, i);
		ValId x = gp->grad;
		FINAL(x);
		gp->grad = pos[x];
		gp->param = pos[gp->param];
	}
#undef FINAL
	for (size_t i = 0; i < g->mask.len; i++) {
		Mask *m = &VEC_AT(g->mask, Mask, i);
		m->param = pos[m->param];
	}
	vec_free(&g->node);
	vec_free(&g->arg);
	g->node = node;
	g->arg = arg;
	ir_clear_place(g);   /* the nodes moved: place again */
	mem_free(pos);
	mem_free(order);
	mem_free(repl);
	mem_free(slot);
	rw_free(rw);
	return 0;
dangling:
	diag_error(d, (SrcLoc){0}, "internal: after the rewrite an output, the loss, a gradient "
		   "or a mask names a removed node");
	goto fail;
oom:
	diag_error(d, (SrcLoc){0}, "out of memory");
fail:
	vec_free(&node);
	vec_free(&arg);
	mem_free(pos);
	mem_free(order);
	mem_free(repl);
	mem_free(slot);
	ir_rw_abort(rw);
	return -1;
}
