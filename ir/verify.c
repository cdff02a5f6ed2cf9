/* verify.c: the structural invariants every pass must preserve.
 *
 *   - every node's op and dtype are known, its operand list lies inside
 *     g->arg, it has the op's arity, and every operand precedes it
 *     (topological order; source ops therefore have none);
 *   - input names are unique among inputs, param names among params, and
 *     every name id is a real string;
 *   - only the flags the op understands are set;
 *   - re-running the op's shape rule on a copy of the node gives the same
 *     dtype and shape, and leaves the attributes as they are (they are
 *     already normalised);
 *   - every output and the loss name a value; the loss is an f32 scalar;
 *   - every gradient pairs a non-frozen param, named once, with a value of
 *     its exact shape and dtype f32;
 *   - an update (adamw) applies its param's own gradient, and each param
 *     and moment is updated in place once at most and read by nothing
 *     after its update.
 *
 * It reports as many problems as the Diag holds rather than stopping at
 * the first, since a broken pass usually breaks several nodes at once.
 * Assumes nothing about the graph: it is run on parsed text as well. */
#include "ir.h"

#include <string.h>

static int check_operands(const Graph *g, ValId v, const Node *n, Diag *d)
{
	if (n->op >= OP_COUNT)
		return diag_error(d, n->loc, "node %%%u has unknown op %u", v, n->op);
	if (n->dtype >= DT_COUNT)
		return diag_error(d, n->loc, "node %%%u (%s) has unknown dtype %u", v,
				  ir_op[n->op].name, n->dtype);
	if ((uint64_t)n->arg + n->narg > g->arg.len)
		return diag_error(d, n->loc, "node %%%u (%s): operand list [%u,+%u) lies outside "
				  "the %zu operand slots", v, ir_op[n->op].name, n->arg, n->narg,
				  g->arg.len);
	int arity = ir_op[n->op].arity;
	if (arity >= 0 ? n->narg != (uint32_t)arity : n->narg == 0)
		return diag_error(d, n->loc, "node %%%u (%s) has %u operands, expected %s%d", v,
				  ir_op[n->op].name, n->narg, arity < 0 ? "at least " : "",
				  arity < 0 ? 1 : arity);
	for (uint32_t i = 0; i < n->narg; i++)
		if (ir_operand(g, n, i) >= v)
			return diag_error(d, n->loc, "node %%%u (%s): operand %u is %%%u, which "
					  "does not come before it", v, ir_op[n->op].name, i,
					  ir_operand(g, n, i));
	if (n->flags & ~ir_flag_mask(n->op))
		return diag_error(d, n->loc, "node %%%u (%s) has flags 0x%x it does not use", v,
				  ir_op[n->op].name, n->flags & ~ir_flag_mask(n->op));
	if (n->name >= g->str.len)
		return diag_error(d, n->loc, "node %%%u (%s) has a bad name id %u", v,
				  ir_op[n->op].name, n->name);
	return 0;
}

/* The shape rule only reads the graph; the cast lets a const graph be
 * checked without copying it. */
static int check_types(const Graph *g, ValId v, const Node *n, Diag *d)
{
	Node copy = *n;
	if (ir_infer_node((Graph *)g, &copy, d))
		return -1;
	char have[160], want[160];
	if (copy.dtype != n->dtype || !ir_shape_eq(&copy.shape, &n->shape)) {
		ir_shape_str(&n->shape, have, sizeof have);
		ir_shape_str(&copy.shape, want, sizeof want);
		return diag_error(d, n->loc, "node %%%u (%s) has type %s%s but its operands give "
				  "%s%s", v, ir_op[n->op].name, ir_dtype_name[n->dtype], have,
				  ir_dtype_name[copy.dtype], want);
	}
	/* Every INT and PERM field, carried or not: a rule may record one for
	 * the kernels (softmax's axis), and that must be normalised too. */
	for (int a = 0; a < ATTR_COUNT; a++)
		if ((ir_attr[a].kind == AK_INT || ir_attr[a].kind == AK_PERM) &&
		    memcmp(ir_attr_cfield(&copy, (AttrId)a), ir_attr_cfield(n, (AttrId)a),
			   ir_attr[a].size))
			return diag_error(d, n->loc, "node %%%u (%s): attributes are not normalised "
				  "(run infer_shapes)", v, ir_op[n->op].name);
	return 0;
}

/* Quadratic, but graphs have thousands of nodes, not millions. */
static int check_unique_name(const Graph *g, ValId v, const Node *n, Diag *d)
{
	if (!(ir_attrs(n) & IRA_NAME))
		return 0;
	for (ValId u = 0; u < v; u++) {
		const Node *m = ir_node(g, u);
		if (m->op == n->op && m->name == n->name)
			return diag_error(d, n->loc, "%s name \"%s\" is used twice (%%%u and %%%u)",
					  ir_op[n->op].name, ir_str(g, n->name), u, v);
	}
	return 0;
}

static int check_results(const Graph *g, Diag *d)
{
	int rc = 0;
	SrcLoc none = {0};
	for (size_t i = 0; i < g->out.len; i++) {
		const Output *o = &VEC_AT(g->out, Output, i);
		if (o->name == 0 || o->name >= g->str.len)
			rc = diag_error(d, none, "output %zu has a bad name id %u", i, o->name);
		else if (o->val >= ir_nnode(g))
			rc = diag_error(d, none, "output \"%s\" is %%%u, not a value",
					ir_str(g, o->name), o->val);
		for (size_t j = 0; j < i; j++)
			if (VEC_AT(g->out, Output, j).name == o->name)
				rc = diag_error(d, none, "output %zu repeats an earlier name", i);
	}
	if (g->loss == VAL_NONE)
		return rc;
	if (g->loss >= ir_nnode(g))
		return diag_error(d, none, "the loss is %%%u, not a value", g->loss);
	const Node *l = ir_node(g, g->loss);
	if (l->dtype != DT_F32 || l->shape.rank != 0)
		return diag_error(d, l->loc, "the loss %%%u must be an f32 scalar", g->loss);
	return rc;
}

static int check_grads(const Graph *g, Diag *d)
{
	int rc = 0;
	SrcLoc none = {0};
	for (size_t i = 0; i < g->grad.len; i++) {
		const GradPair *gp = &VEC_AT(g->grad, GradPair, i);
		if (gp->param >= ir_nnode(g) || ir_node(g, gp->param)->op != OP_PARAM) {
			rc = diag_error(d, none, "gradient %zu is for %%%u, not a param", i,
					gp->param);
			continue;
		}
		const Node *p = ir_node(g, gp->param);
		const char *name = p->name < g->str.len ? ir_str(g, p->name) : "?";
		if (p->flags & NF_FROZEN)
			rc = diag_error(d, p->loc, "param \"%s\" is frozen but has a gradient", name);
		for (size_t j = 0; j < i; j++)
			if (VEC_AT(g->grad, GradPair, j).param == gp->param)
				rc = diag_error(d, p->loc, "param \"%s\" has two gradients", name);
		if (gp->grad >= ir_nnode(g)) {
			rc = diag_error(d, p->loc, "the gradient of param \"%s\" is %%%u, not a value",
					name, gp->grad);
			continue;
		}
		const Node *gn = ir_node(g, gp->grad);
		if (gn->dtype != DT_F32 || !ir_shape_eq(&gn->shape, &p->shape)) {
			char sp[160], sg[160];
			ir_shape_str(&p->shape, sp, sizeof sp);
			ir_shape_str(&gn->shape, sg, sizeof sg);
			rc = diag_error(d, p->loc, "the gradient %%%u of param \"%s\" f32%s is %s%s",
					gp->grad, name, sp, gn->dtype < DT_COUNT ?
					ir_dtype_name[gn->dtype] : "?", sg);
		}
	}
	return rc;
}

/* Each mask belongs to a distinct param, with a target in [0, 1] and a
 * count that matches its bits; each MASK node names a param that has a
 * mask, with the param's shape. */
static int check_masks(const Graph *g, Diag *d)
{
	int rc = 0;
	SrcLoc none = {0};
	for (size_t i = 0; i < g->mask.len; i++) {
		const Mask *m = &VEC_AT(g->mask, Mask, i);
		if (m->param >= ir_nnode(g) || ir_node(g, m->param)->op != OP_PARAM) {
			rc = diag_error(d, none, "mask %zu is for %%%u, not a param", i, m->param);
			continue;
		}
		const Node *p = ir_node(g, m->param);
		const char *name = p->name < g->str.len ? ir_str(g, p->name) : "?";
		int64_t numel = ir_numel(&p->shape);
		for (size_t j = 0; j < i; j++)
			if (VEC_AT(g->mask, Mask, j).param == m->param)
				rc = diag_error(d, p->loc, "param \"%s\" has two masks", name);
		if (!(m->target >= 0 && m->target <= 1) || m->dist >= SD_COUNT)
			rc = diag_error(d, p->loc, "the mask of \"%s\" has a bad target or "
					"distribution", name);
		if (m->nkept < -1 || m->nkept > numel || (m->bits && m->nkept < 0)) {
			rc = diag_error(d, p->loc, "the mask of \"%s\" keeps %lld of %lld", name,
					(long long)m->nkept, (long long)numel);
			continue;
		}
		if (m->bits) {
			int64_t k = 0;
			for (int64_t e = 0; e < numel; e++)
				k += m->bits[e] == 1 ? 1 : m->bits[e] ? numel + 1 : 0;
			if (k != m->nkept)
				rc = diag_error(d, p->loc, "the mask bits of \"%s\" do not give its "
						"count %lld", name, (long long)m->nkept);
		}
	}
	for (ValId v = 0; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		if ((n->op == OP_SPMM || n->op == OP_SDDMM) && n->narg > 0 &&
		    !ir_find_mask(g, ir_operand(g, n, n->narg - 1)))
			rc = diag_error(d, n->loc, "%s %%%u: its weight has no sparsity mask",
					ir_op[n->op].name, v);
		if (n->op != OP_MASK || n->name == 0 || n->name >= g->str.len)
			continue;
		ValId p = ir_find_param(g, ir_str(g, n->name));
		if (p == VAL_NONE || !ir_find_mask(g, p) ||
		    !ir_shape_eq(&ir_node(g, p)->shape, &n->shape))
			rc = diag_error(d, n->loc, "mask %%%u: \"%s\" is not a sparse param of its "
					"shape", v, ir_str(g, n->name));
	}
	return rc;
}

/* The update writes its param and moments in place (adamw), so each is
 * written by one update at most, nothing after it reads them (it would
 * see the new values where the IR means the old), and the gradient it
 * applies is the param's own. */
static int check_update(const Graph *g, Diag *d)
{
	int rc = 0;
	uint32_t n = ir_nnode(g);
	ValId *writer = mem_alloc((n ? n : 1) * sizeof *writer);
	if (!writer)
		return diag_error(d, (SrcLoc){0}, "out of memory");
	for (ValId v = 0; v < n; v++)
		writer[v] = VAL_NONE;
	for (ValId v = 0; v < n; v++) {
		const Node *nd = ir_node(g, v);
		for (uint32_t i = 0; i < nd->narg; i++) {
			ValId x = ir_operand(g, nd, i);
			if (writer[x] != VAL_NONE && writer[x] != v)
				rc = diag_error(d, nd->loc, "%s %%%u reads %%%u after %%%u updated it in "
						"place", ir_op[nd->op].name, v, x, writer[x]);
		}
		if (nd->op != OP_ADAMW && nd->op != OP_ADAMW_MASKED)
			continue;
		for (uint32_t i = 0; i < 4; i++) {
			if (i == 1)
				continue;
			ValId x = ir_operand(g, nd, i);
			if (writer[x] != VAL_NONE)
				rc = diag_error(d, nd->loc, "%s %%%u updates %%%u, which %%%u updates too",
						ir_op[nd->op].name, v, x, writer[x]);
			writer[x] = v;
		}
		ValId p = ir_operand(g, nd, 0), gr = ir_operand(g, nd, 1);
		bool own = false;
		for (size_t i = 0; i < g->grad.len; i++) {
			const GradPair *gp = &VEC_AT(g->grad, GradPair, i);
			own |= gp->param == p && gp->grad == gr;
		}
		if (!own)
			rc = diag_error(d, nd->loc, "%s %%%u: %%%u is not the gradient of its param %%%u",
					ir_op[nd->op].name, v, gr, p);
	}
	mem_free(writer);
	return rc;
}

/* A placement (Graph.place) covers every node with a rectangle inside the
 * mesh; a unit names a node. */
static int check_place(const Graph *g, Diag *d)
{
	if (!g->place.len)
		return 0;
	if (g->place.len != ir_nnode(g) || !g->mesh_rows || !g->mesh_cols ||
	    g->mesh_name >= g->str.len)
		return diag_error(d, (SrcLoc){0}, "the placement covers %zu of %u nodes",
				  g->place.len, ir_nnode(g));
	for (ValId v = 0; v < ir_nnode(g); v++) {
		const Place *p = ir_place(g, v);
		if (!p->rows || !p->cols || p->row + p->rows > g->mesh_rows ||
		    p->col + p->cols > g->mesh_cols)
			return diag_error(d, ir_node(g, v)->loc, "%%%u is placed outside the %ux%u mesh",
					  v, g->mesh_rows, g->mesh_cols);
		if (p->unit != VAL_NONE && p->unit >= ir_nnode(g))
			return diag_error(d, ir_node(g, v)->loc, "%%%u: its unit is no node", v);
	}
	return 0;
}

int ir_verify(const Graph *g, Diag *d)
{
	int rc = 0;
	bool broken = false; /* an operand may have a garbage dtype: skip type checks */
	if (g->str.len == 0 || g->model_name >= g->str.len)
		return diag_error(d, (SrcLoc){0}, "graph has a bad string table");
	for (ValId v = 0; v < ir_nnode(g) && !diag_full(d); v++) {
		const Node *n = ir_node(g, v);
		if (check_operands(g, v, n, d)) {
			rc = -1;
			broken = true;
			continue; /* the later checks would index out of range */
		}
		if (!broken && check_types(g, v, n, d))
			rc = -1;
		if (check_unique_name(g, v, n, d))
			rc = -1;
	}
	if (check_results(g, d))
		rc = -1;
	if (check_grads(g, d))
		rc = -1;
	if (!broken && check_masks(g, d))
		rc = -1;
	if (!broken && check_update(g, d))
		rc = -1;
	if (!broken && check_place(g, d))
		rc = -1;
	return rc;
}
