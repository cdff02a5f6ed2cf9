/* shape.c: the shape and dtype rule of every op.
 *
 * ir_infer_node reads a node's operands (already in the graph) and its
 * attributes, checks every attribute against the operand shapes, and writes
 * the result shape (and dtype where the op decides it). Negative axes and
 * negative slice bounds are normalised in place, so after this runs a node's
 * attributes are in one canonical form: that is what the printer, the hash
 * and the kernels see.
 *
 * It assumes nothing about the node beyond `op` being some number: it is
 * also run on nodes read from untrusted .ir text, so every field is checked
 * before it is used as an index. Errors are located at n->loc and name the
 * shapes involved; on error the node's shape and dtype are unspecified (the
 * builders pop the node again). */
#include "ir.h"

#include <stdio.h>

/* Large enough for "[d0,...,d5]" with 20-digit dims. */
enum { SHAPE_BUF = IR_MAX_RANK * 21 + 3 };

/* A tensor may not exceed 2^40 elements; bounds int64 byte arithmetic with
 * room to spare and keeps a hostile .ir file from overflowing numel. */
#define IR_MAX_NUMEL ((int64_t)1 << 40)

static int fail(Diag *d, const Node *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(Diag *d, const Node *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_verror(d, n->loc, fmt, ap);
	va_end(ap);
	return -1;
}

static const char *opname(const Node *n)
{
	return ir_op[n->op].name;
}

static const Node *arg(const Graph *g, const Node *n, uint32_t i)
{
	return ir_node(g, ir_operand(g, n, i));
}

/* Numpy broadcasting: align trailing axes; each pair must be equal or one
 * of them 1. */
int ir_broadcast(const Shape *a, const Shape *b, Shape *out)
{
	int r = a->rank > b->rank ? a->rank : b->rank;
	if (r > IR_MAX_RANK)
		return -1;
	Shape s = {.rank = (uint8_t)r};
	for (int i = 0; i < r; i++) {
		int ia = a->rank - r + i, ib = b->rank - r + i;
		int64_t da = ia >= 0 ? a->dim[ia] : 1, db = ib >= 0 ? b->dim[ib] : 1;
		if (da != db && da != 1 && db != 1)
			return -1;
		s.dim[i] = da == 1 ? db : da;
	}
	*out = s;
	return 0;
}

/* Normalise an axis in [-rank, rank) to [0, rank). */
static int norm_axis(Diag *d, const Node *n, int64_t *axis, int rank, const Shape *s)
{
	char buf[SHAPE_BUF];
	if (*axis < -rank || *axis >= rank) {
		ir_shape_str(s, buf, sizeof buf);
		return fail(d, n, "%s axis %lld is out of range for shape %s (rank %d)", opname(n),
			    (long long)*axis, buf, rank);
	}
	if (*axis < 0)
		*axis += rank;
	return 0;
}

static int need_f32(Diag *d, const Node *n, const Node *x, const char *what)
{
	if (x->dtype == DT_F32)
		return 0;
	return fail(d, n, "%s needs f32 %s, got %s (insert a cast)", opname(n), what,
		    ir_dtype_name[x->dtype]);
}

/* Every result shape passes through here: rank, positive dims, bounded size. */
static int check_shape(Diag *d, const Node *n, const Shape *s)
{
	if (s->rank > IR_MAX_RANK)
		return fail(d, n, "%s: rank %d exceeds the maximum rank %d", opname(n), s->rank,
			    IR_MAX_RANK);
	int64_t numel = 1;
	for (int i = 0; i < s->rank; i++) {
		if (s->dim[i] < 1)
			return fail(d, n, "%s: dimension %d is %lld; dimensions must be at least 1",
				    opname(n), i, (long long)s->dim[i]);
		if (s->dim[i] > IR_MAX_NUMEL / numel)
			return fail(d, n, "%s: tensor has more than 2^40 elements", opname(n));
		numel *= s->dim[i];
	}
	return 0;
}

static int rule_source(Graph *g, Node *n, Diag *d)
{
	switch (n->op) {
	case OP_PARAM:
		if (n->dtype != DT_F32)
			return fail(d, n, "param must be f32, got %s", ir_dtype_name[n->dtype]);
		if (n->init >= INIT_COUNT)
			return fail(d, n, "param has an unknown initialiser %d", n->init);
		if (n->init == INIT_NORMAL && !(n->value >= 0))
			return fail(d, n, "param normal initialiser needs a std >= 0, got %g",
				    n->value);
		break;
	case OP_CONST:
		if (n->dtype != DT_F32 && n->dtype != DT_I32)
			return fail(d, n, "const must be f32 or i32, got %s",
				    ir_dtype_name[n->dtype]);
		break;
	case OP_MASK:
		if (n->dtype != DT_F32)
			return fail(d, n, "mask must be f32, got %s", ir_dtype_name[n->dtype]);
		break;
	case OP_IOTA:
		if (n->dtype != DT_F32 && n->dtype != DT_I32)
			return fail(d, n, "iota must be f32 or i32, got %s", ir_dtype_name[n->dtype]);
		if (n->shape.rank != 1)
			return fail(d, n, "iota must have rank 1, got rank %d", n->shape.rank);
		n->axis = 0;
		break;
	}
	if (n->dtype == DT_F64)   /* f64 is the update's internal partial sums only */
		return fail(d, n, "%s cannot be f64", opname(n));
	if (ir_attrs(n) & IRA_NAME && (n->name == 0 || n->name >= g->str.len))
		return fail(d, n, "%s needs a name", opname(n));
	return 0;
}

static int rule_unary(Graph *g, Node *n, Diag *d)
{
	const Node *x = arg(g, n, 0);
	if (n->op != OP_CAST && need_f32(d, n, x, "input"))
		return -1;
	if (n->op == OP_CAST && (x->dtype == DT_F64 || n->dtype == DT_F64))
		return fail(d, n, "cast: f64 is only the optimiser's partial sums");
	n->shape = x->shape;
	if (n->op != OP_CAST)
		n->dtype = DT_F32;
	return 0;
}

static int rule_binary(Graph *g, Node *n, Diag *d)
{
	const Node *a = arg(g, n, 0), *b = arg(g, n, 1);
	if (a->dtype != DT_F32 || b->dtype != DT_F32)
		return fail(d, n, "%s needs f32 operands, got %s and %s (insert a cast)",
			    opname(n), ir_dtype_name[a->dtype], ir_dtype_name[b->dtype]);
	if (ir_broadcast(&a->shape, &b->shape, &n->shape)) {
		char sa[SHAPE_BUF], sb[SHAPE_BUF];
		ir_shape_str(&a->shape, sa, sizeof sa);
		ir_shape_str(&b->shape, sb, sizeof sb);
		return fail(d, n, "%s shapes %s and %s do not broadcast", opname(n), sa, sb);
	}
	n->dtype = DT_F32;
	return 0;
}

static int rule_reduce(Graph *g, Node *n, Diag *d)
{
	const Node *x = arg(g, n, 0);
	if (need_f32(d, n, x, "input"))
		return -1;
	if (x->shape.rank == 0)
		return fail(d, n, "%s of a scalar: there is no axis to reduce", opname(n));
	if (norm_axis(d, n, &n->axis, x->shape.rank, &x->shape))
		return -1;
	Shape s = {0};
	for (int i = 0; i < x->shape.rank; i++) {
		if (i != n->axis)
			s.dim[s.rank++] = x->shape.dim[i];
		else if (n->flags & NF_KEEPDIM)
			s.dim[s.rank++] = 1;
	}
	n->shape = s;
	n->dtype = DT_F32;
	return 0;
}

/* A [...,M,K] @ B [...,K,N] -> [...,M,N]; the batch dims broadcast. */
static int rule_matmul(Graph *g, Node *n, Diag *d)
{
	const Node *a = arg(g, n, 0), *b = arg(g, n, 1);
	char sa[SHAPE_BUF], sb[SHAPE_BUF];
	ir_shape_str(&a->shape, sa, sizeof sa);
	ir_shape_str(&b->shape, sb, sizeof sb);
	if (a->dtype != DT_F32 || b->dtype != DT_F32)
		return fail(d, n, "matmul needs f32 operands, got %s and %s (insert a cast)",
			    ir_dtype_name[a->dtype], ir_dtype_name[b->dtype]);
	if (a->shape.rank < 2 || b->shape.rank < 2)
		return fail(d, n, "matmul needs operands of rank 2 or more, got %s and %s", sa, sb);
	int ra = a->shape.rank, rb = b->shape.rank;
	bool ta = n->flags & NF_TRANS_A, tb = n->flags & NF_TRANS_B;
	int64_t m = a->shape.dim[ra - (ta ? 1 : 2)], ka = a->shape.dim[ra - (ta ? 2 : 1)];
	int64_t kb = b->shape.dim[rb - (tb ? 1 : 2)], nn = b->shape.dim[rb - (tb ? 2 : 1)];
	if (ka != kb)
		return fail(d, n, "matmul shapes %s%s and %s%s do not agree: inner dimensions "
			    "%lld and %lld", sa, ta ? " (transposed)" : "", sb,
			    tb ? " (transposed)" : "", (long long)ka, (long long)kb);
	Shape ba = a->shape, bb = b->shape, out;
	ba.rank -= 2;
	bb.rank -= 2;
	if (ir_broadcast(&ba, &bb, &out))
		return fail(d, n, "matmul shapes %s and %s: batch dimensions do not broadcast",
			    sa, sb);
	out.dim[out.rank++] = m;
	out.dim[out.rank++] = nn;
	n->shape = out;
	n->dtype = DT_F32;
	return 0;
}

/* The target shape is the node's own shape, given by the builder. */
static int rule_reshape(Graph *g, Node *n, Diag *d)
{
	const Node *x = arg(g, n, 0);
	if (check_shape(d, n, &n->shape))
		return -1;
	if (ir_numel(&n->shape) != ir_numel(&x->shape)) {
		char sx[SHAPE_BUF], sn[SHAPE_BUF];
		ir_shape_str(&x->shape, sx, sizeof sx);
		ir_shape_str(&n->shape, sn, sizeof sn);
		return fail(d, n, "reshape from %s to %s changes the number of elements "
			    "(%lld to %lld)", sx, sn, (long long)ir_numel(&x->shape),
			    (long long)ir_numel(&n->shape));
	}
	n->dtype = x->dtype;
	return 0;
}

static int rule_permute(Graph *g, Node *n, Diag *d)
{
	const Node *x = arg(g, n, 0);
	int r = x->shape.rank;
	bool seen[IR_MAX_RANK] = {0};
	for (int i = 0; i < r; i++) {
		if (n->perm[i] >= r || seen[n->perm[i]]) {
			char sx[SHAPE_BUF], sp[IR_MAX_RANK * 4 + 3];
			int at = 0;
			for (int j = 0; j < r; j++)
				at += snprintf(sp + at, sizeof sp - (size_t)at, j ? ",%d" : "%d",
					       n->perm[j]);
			ir_shape_str(&x->shape, sx, sizeof sx);
			return fail(d, n, "permute (%s) is not a permutation of the %d axes of %s",
				    sp, r, sx);
		}
		seen[n->perm[i]] = true;
	}
	/* Unused entries are zero, so equal permutes hash and print alike. */
	for (int i = r; i < IR_MAX_RANK; i++)
		n->perm[i] = 0;
	Shape s = {.rank = (uint8_t)r};
	for (int i = 0; i < r; i++)
		s.dim[i] = x->shape.dim[n->perm[i]];
	n->shape = s;
	n->dtype = x->dtype;
	return 0;
}

static int rule_slice(Graph *g, Node *n, Diag *d)
{
	const Node *x = arg(g, n, 0);
	char sx[SHAPE_BUF];
	ir_shape_str(&x->shape, sx, sizeof sx);
	if (x->shape.rank == 0)
		return fail(d, n, "slice of a scalar: there is no axis to slice");
	if (norm_axis(d, n, &n->axis, x->shape.rank, &x->shape))
		return -1;
	int64_t dim = x->shape.dim[n->axis], lo = n->lo, hi = n->hi;
	/* Python-style negative bounds count from the end. */
	if (lo < 0 && lo >= -dim)
		lo += dim;
	if (hi < 0 && hi >= -dim)
		hi += dim;
	if (!(0 <= lo && lo < hi && hi <= dim))
		return fail(d, n, "slice [%lld,%lld) of axis %lld of %s is out of range or empty "
			    "(need 0 <= lo < hi <= %lld)", (long long)n->lo, (long long)n->hi,
			    (long long)n->axis, sx, (long long)dim);
	n->lo = lo;
	n->hi = hi;
	n->shape = x->shape;
	n->shape.dim[n->axis] = hi - lo;
	n->dtype = x->dtype;
	return 0;
}

static int rule_concat(Graph *g, Node *n, Diag *d)
{
	const Node *x = arg(g, n, 0);
	if (x->shape.rank == 0)
		return fail(d, n, "concat of scalars: there is no axis to join");
	if (norm_axis(d, n, &n->axis, x->shape.rank, &x->shape))
		return -1;
	Shape s = x->shape;
	for (uint32_t i = 1; i < n->narg; i++) {
		const Node *y = arg(g, n, i);
		char sx[SHAPE_BUF], sy[SHAPE_BUF];
		ir_shape_str(&x->shape, sx, sizeof sx);
		ir_shape_str(&y->shape, sy, sizeof sy);
		if (y->dtype != x->dtype)
			return fail(d, n, "concat operand %u is %s but operand 0 is %s", i,
				    ir_dtype_name[y->dtype], ir_dtype_name[x->dtype]);
		if (y->shape.rank != x->shape.rank)
			return fail(d, n, "concat operand %u has shape %s, of a different rank "
				    "than operand 0 %s", i, sy, sx);
		for (int k = 0; k < x->shape.rank; k++)
			if (k != n->axis && y->shape.dim[k] != x->shape.dim[k])
				return fail(d, n, "concat operand %u has shape %s, operand 0 has "
					    "%s: they differ on axis %d, not only on axis %lld",
					    i, sy, sx, k, (long long)n->axis);
		s.dim[n->axis] += y->shape.dim[n->axis];
	}
	n->shape = s;
	n->dtype = x->dtype;
	return 0;
}

/* table f32 [V,D], indices i32 [...] -> f32 [...,D] */
static int rule_gather(Graph *g, Node *n, Diag *d)
{
	const Node *t = arg(g, n, 0), *ix = arg(g, n, 1);
	char st[SHAPE_BUF];
	ir_shape_str(&t->shape, st, sizeof st);
	if (t->dtype != DT_F32 || t->shape.rank != 2)
		return fail(d, n, "gather table must be an f32 matrix [V,D], got %s%s",
			    ir_dtype_name[t->dtype], st);
	if (ix->dtype != DT_I32)
		return fail(d, n, "gather indices must be i32, got %s (insert a cast)",
			    ir_dtype_name[ix->dtype]);
	if (ix->shape.rank + 1 > IR_MAX_RANK)
		return fail(d, n, "gather indices of rank %d give a result above the maximum "
			    "rank %d", ix->shape.rank, IR_MAX_RANK);
	n->shape = ix->shape;
	n->shape.dim[n->shape.rank++] = t->shape.dim[1];
	n->dtype = DT_F32;
	return 0;
}

static int rule_causal_mask(Graph *g, Node *n, Diag *d)
{
	const Node *x = arg(g, n, 0);
	char sx[SHAPE_BUF];
	ir_shape_str(&x->shape, sx, sizeof sx);
	if (need_f32(d, n, x, "input"))
		return -1;
	if (x->shape.rank < 2)
		return fail(d, n, "%s needs [...,T,S] scores of rank 2 or more, got %s",
			    opname(n), sx);
	int64_t t = x->shape.dim[x->shape.rank - 2], s = x->shape.dim[x->shape.rank - 1];
	/* With more queries than keys the first rows would be fully masked. */
	if (t > s)
		return fail(d, n, "%s of %s: %lld queries but only %lld keys", opname(n), sx,
			    (long long)t, (long long)s);
	n->shape = x->shape;
	n->dtype = DT_F32;
	return 0;
}

/* Softmax has no axis attribute: it is always the last axis, which the
 * rule records in n->axis for the kernels' convenience. */
/* The sparse products (ops.h): w is a rank-2 param, at (and bt) are
 * feature-major blocks [blocks, features, B]. That w has a mask is the
 * verifier's to check: printed IR lists the masks after the nodes. */
static int check_sparse_operands(Graph *g, Node *n, Diag *d, uint32_t nact)
{
	const Node *w = arg(g, n, n->narg - 1);
	if (w->op != OP_PARAM || w->shape.rank != 2)
		return fail(d, n, "%s: the last operand must be a rank-2 param (a sparse weight)",
			    opname(n));
	for (uint32_t i = 0; i < nact; i++) {
		const Node *a = arg(g, n, i);
		if (a->dtype != DT_F32 || a->shape.rank != 3)
			return fail(d, n, "%s: operand %u must be f32 [blocks, features, rows]",
				    opname(n), i);
	}
	return 0;
}

static int rule_spmm(Graph *g, Node *n, Diag *d)
{
	if (check_sparse_operands(g, n, d, 1))
		return -1;
	const Node *at = arg(g, n, 0), *w = arg(g, n, 1);
	bool tb = n->flags & NF_TRANS_B;
	int64_t in = w->shape.dim[tb ? 1 : 0], out = w->shape.dim[tb ? 0 : 1];
	if (at->shape.dim[1] != in)
		return fail(d, n, "spmm%s: the operand has %lld features, the weight [%lld,%lld] "
			    "needs %lld", tb ? " transb" : "", (long long)at->shape.dim[1],
			    (long long)w->shape.dim[0], (long long)w->shape.dim[1], (long long)in);
	n->shape = (Shape){.rank = 3, .dim = {at->shape.dim[0], out, at->shape.dim[2]}};
	n->dtype = DT_F32;
	return 0;
}

static int rule_sddmm(Graph *g, Node *n, Diag *d)
{
	if (check_sparse_operands(g, n, d, 2))
		return -1;
	const Node *at = arg(g, n, 0), *bt = arg(g, n, 1), *w = arg(g, n, 2);
	if (at->shape.dim[1] != w->shape.dim[0] || bt->shape.dim[1] != w->shape.dim[1] ||
	    at->shape.dim[0] != bt->shape.dim[0] || at->shape.dim[2] != bt->shape.dim[2]) {
		char sa[SHAPE_BUF], sb[SHAPE_BUF], sw[SHAPE_BUF];
		ir_shape_str(&at->shape, sa, sizeof sa);
		ir_shape_str(&bt->shape, sb, sizeof sb);
		ir_shape_str(&w->shape, sw, sizeof sw);
		return fail(d, n, "sddmm: operands %s and %s do not fit the weight %s", sa, sb, sw);
	}
	n->shape = w->shape;
	n->dtype = DT_F32;
	return 0;
}

static int rule_softmax(Graph *g, Node *n, Diag *d)
{
	const Node *x = arg(g, n, 0);
	if (need_f32(d, n, x, "input"))
		return -1;
	if (x->shape.rank == 0)
		return fail(d, n, "softmax of a scalar: there is no axis");
	n->axis = x->shape.rank - 1;
	n->shape = x->shape;
	n->dtype = DT_F32;
	return 0;
}

/* logits f32 [...,V], targets i32 [...] -> f32 scalar */
static int rule_cross_entropy(Graph *g, Node *n, Diag *d)
{
	const Node *l = arg(g, n, 0), *t = arg(g, n, 1);
	char sl[SHAPE_BUF], st[SHAPE_BUF];
	ir_shape_str(&l->shape, sl, sizeof sl);
	ir_shape_str(&t->shape, st, sizeof st);
	if (need_f32(d, n, l, "logits"))
		return -1;
	if (t->dtype != DT_I32)
		return fail(d, n, "cross_entropy targets must be i32, got %s",
			    ir_dtype_name[t->dtype]);
	bool ok = l->shape.rank >= 1 && t->shape.rank == l->shape.rank - 1;
	for (int i = 0; ok && i < t->shape.rank; i++)
		ok = t->shape.dim[i] == l->shape.dim[i];
	if (!ok)
		return fail(d, n, "cross_entropy logits %s and targets %s do not agree: targets "
			    "must be the logits' shape without the last axis", sl, st);
	n->shape = (Shape){0};
	n->dtype = DT_F32;
	return 0;
}

/* The backward kernels' rules. They are built by autodiff, but are also
 * read from .ir text, so they check as much as the forward rules do. */

static int same_shape(Diag *d, const Node *n, const Node *a, const Node *b,
		      const char *what)
{
	if (ir_shape_eq(&a->shape, &b->shape))
		return 0;
	char sa[SHAPE_BUF], sb[SHAPE_BUF];
	ir_shape_str(&a->shape, sa, sizeof sa);
	ir_shape_str(&b->shape, sb, sizeof sb);
	return fail(d, n, "%s %s has shape %s, not %s", opname(n), what, sb, sa);
}

/* softmax_grad y, dy: both the softmax's shape; the row is the last axis,
 * recorded in n->axis as softmax does. */
static int rule_softmax_grad(Graph *g, Node *n, Diag *d)
{
	const Node *y = arg(g, n, 0), *dy = arg(g, n, 1);
	if (need_f32(d, n, y, "y") || need_f32(d, n, dy, "dy") || same_shape(d, n, y, dy, "dy"))
		return -1;
	if (y->shape.rank == 0)
		return fail(d, n, "softmax_grad of a scalar: there is no axis");
	n->axis = y->shape.rank - 1;
	n->shape = y->shape;
	n->dtype = DT_F32;
	return 0;
}

/* cross_entropy_grad logits, targets, dl -> the logits' shape */
static int rule_cross_entropy_grad(Graph *g, Node *n, Diag *d)
{
	const Node *dl = arg(g, n, 2);
	if (need_f32(d, n, dl, "dl"))
		return -1;
	if (dl->shape.rank != 0)
		return fail(d, n, "cross_entropy_grad needs a scalar dl, got rank %d",
			    dl->shape.rank);
	if (rule_cross_entropy(g, n, d))
		return -1;
	n->shape = arg(g, n, 0)->shape;
	return 0;
}

/* gather_grad idx i32 [...], dy f32 [...,D] -> [V,D], V from the node */
static int rule_gather_grad(Graph *g, Node *n, Diag *d)
{
	const Node *ix = arg(g, n, 0), *dy = arg(g, n, 1);
	char si[SHAPE_BUF], sd[SHAPE_BUF], sn[SHAPE_BUF];
	ir_shape_str(&ix->shape, si, sizeof si);
	ir_shape_str(&dy->shape, sd, sizeof sd);
	ir_shape_str(&n->shape, sn, sizeof sn);
	if (check_shape(d, n, &n->shape))
		return -1;
	if (ix->dtype != DT_I32)
		return fail(d, n, "gather_grad indices must be i32, got %s",
			    ir_dtype_name[ix->dtype]);
	if (need_f32(d, n, dy, "dy"))
		return -1;
	bool ok = n->shape.rank == 2 && dy->shape.rank == ix->shape.rank + 1 &&
		  dy->shape.dim[dy->shape.rank - 1] == n->shape.dim[1];
	for (int i = 0; ok && i < ix->shape.rank; i++)
		ok = ix->shape.dim[i] == dy->shape.dim[i];
	if (!ok)
		return fail(d, n, "gather_grad of indices %s and dy %s cannot give %s: dy must be "
			    "the indices' shape plus [D], the result [V,D]", si, sd, sn);
	n->dtype = DT_F32;
	return 0;
}

/* max_grad x, dy: dy is the result of max over `axis` of x, with the axis
 * kept as 1 or dropped; the result has x's shape. */
static int rule_max_grad(Graph *g, Node *n, Diag *d)
{
	const Node *x = arg(g, n, 0), *dy = arg(g, n, 1);
	if (need_f32(d, n, x, "x") || need_f32(d, n, dy, "dy"))
		return -1;
	if (x->shape.rank == 0)
		return fail(d, n, "max_grad of a scalar: there is no axis");
	if (norm_axis(d, n, &n->axis, x->shape.rank, &x->shape))
		return -1;
	Shape keep = x->shape, drop = {0};
	keep.dim[n->axis] = 1;
	for (int i = 0; i < x->shape.rank; i++)
		if (i != n->axis)
			drop.dim[drop.rank++] = x->shape.dim[i];
	if (!ir_shape_eq(&dy->shape, &keep) && !ir_shape_eq(&dy->shape, &drop)) {
		char sx[SHAPE_BUF], sd[SHAPE_BUF];
		ir_shape_str(&x->shape, sx, sizeof sx);
		ir_shape_str(&dy->shape, sd, sizeof sd);
		return fail(d, n, "max_grad dy %s is not the max of %s over axis %lld", sd, sx,
			    (long long)n->axis);
	}
	n->shape = x->shape;
	n->dtype = DT_F32;
	return 0;
}

/* broadcast x -> the node's shape, which x must broadcast to unchanged. */
static int rule_broadcast(Graph *g, Node *n, Diag *d)
{
	const Node *x = arg(g, n, 0);
	if (check_shape(d, n, &n->shape))
		return -1;
	Shape out;
	if (x->shape.rank > n->shape.rank || ir_broadcast(&x->shape, &n->shape, &out) ||
	    !ir_shape_eq(&out, &n->shape)) {
		char sx[SHAPE_BUF], sn[SHAPE_BUF];
		ir_shape_str(&x->shape, sx, sizeof sx);
		ir_shape_str(&n->shape, sn, sizeof sn);
		return fail(d, n, "broadcast: %s does not broadcast to %s", sx, sn);
	}
	n->dtype = x->dtype;
	return 0;
}

/* An i32 scalar operand: the position operands of the decoding ops. */
static int need_i32_scalar(Diag *d, const Node *n, const Node *x, const char *what)
{
	if (x->dtype != DT_I32 || x->shape.rank != 0) {
		char sx[SHAPE_BUF];
		ir_shape_str(&x->shape, sx, sizeof sx);
		return fail(d, n, "%s: %s must be an i32 scalar, got %s%s", opname(n), what,
			    ir_dtype_name[x->dtype], sx);
	}
	return 0;
}

/* A decode offset: an i32 scalar shared by every sequence, or i32[lead],
 * one per index of the leading axis (one per sequence of a batch). */
static int need_offset(Diag *d, const Node *n, const Node *x, int64_t lead, const char *what)
{
	if (x->dtype == DT_I32 && x->shape.rank == 1 && x->shape.dim[0] == lead)
		return 0;
	if (x->dtype != DT_I32 || x->shape.rank != 0) {
		char sx[SHAPE_BUF];
		ir_shape_str(&x->shape, sx, sizeof sx);
		return fail(d, n, "%s: %s must be an i32 scalar or i32[%lld] (one per sequence), got "
			    "%s%s", opname(n), what, (long long)lead, ir_dtype_name[x->dtype], sx);
	}
	return 0;
}

/* cache_write cache [B,...,C,D], x [B,...,T,D], pos i32[] or i32[B] ->
 * cache's shape.
 * The cache must be a state or an earlier write to one: the result aliases
 * the cache's memory, which is only sound for memory nobody else reads
 * after the write except through the result. */
static int rule_cache_write(Graph *g, Node *n, Diag *d)
{
	const Node *c = arg(g, n, 0), *x = arg(g, n, 1);
	char sc[SHAPE_BUF], sx[SHAPE_BUF];
	ir_shape_str(&c->shape, sc, sizeof sc);
	ir_shape_str(&x->shape, sx, sizeof sx);
	if (c->op != OP_STATE && c->op != OP_CACHE_WRITE)
		return fail(d, n, "cache_write needs a state (or a cache_write of one) as its "
			    "cache, got %s", ir_op[c->op].name);
	if (need_f32(d, n, c, "cache") || need_f32(d, n, x, "x") ||
	    need_offset(d, n, arg(g, n, 2), c->shape.rank ? c->shape.dim[0] : 1, "pos"))
		return -1;
	int r = c->shape.rank;
	bool ok = r >= 2 && x->shape.rank == r && x->shape.dim[r - 2] <= c->shape.dim[r - 2];
	for (int i = 0; ok && i < r; i++)
		ok = i == r - 2 || x->shape.dim[i] == c->shape.dim[i];
	if (!ok)
		return fail(d, n, "cache_write of %s into the cache %s: x must be the cache's shape "
			    "with at most as many rows on axis -2", sx, sc);
	n->shape = c->shape;
	n->dtype = DT_F32;
	return 0;
}

/* iota_offset off -> the node's shape, f32 or i32: off i32[] gives [n];
 * off i32[B,1] (one offset per sequence) gives [B,n], row b counting from
 * off[b]. */
static int rule_iota_offset(Graph *g, Node *n, Diag *d)
{
	const Node *o = arg(g, n, 0);
	if (n->dtype != DT_F32 && n->dtype != DT_I32)
		return fail(d, n, "iota_offset must be f32 or i32, got %s", ir_dtype_name[n->dtype]);
	if (n->shape.rank == 2) {
		if (o->dtype != DT_I32 || o->shape.rank != 2 || o->shape.dim[0] != n->shape.dim[0] ||
		    o->shape.dim[1] != 1)
			return fail(d, n, "iota_offset of rank 2 needs an i32[%lld,1] offset",
				    (long long)n->shape.dim[0]);
	} else if (n->shape.rank != 1) {
		return fail(d, n, "iota_offset must have rank 1 or 2, got rank %d", n->shape.rank);
	} else if (need_i32_scalar(d, n, o, "the offset")) {
		return -1;
	}
	return check_shape(d, n, &n->shape);
}

/* causal_mask_offset x [B,...,T,S], off i32[] or i32[B] -> x's shape. Unlike
 * causal_mask, T > S is allowed: which rows are fully masked depends on
 * the offset, known only at run time. */
static int rule_causal_mask_offset(Graph *g, Node *n, Diag *d)
{
	const Node *x = arg(g, n, 0);
	if (need_f32(d, n, x, "input") ||
	    need_offset(d, n, arg(g, n, 1), x->shape.rank ? x->shape.dim[0] : 1, "the offset"))
		return -1;
	if (x->shape.rank < 2) {
		char sx[SHAPE_BUF];
		ir_shape_str(&x->shape, sx, sizeof sx);
		return fail(d, n, "causal_mask_offset needs [...,T,S] scores of rank 2 or more, "
			    "got %s", sx);
	}
	n->shape = x->shape;
	n->dtype = DT_F32;
	return 0;
}

/* sumsq g -> f64[ceil(numel / IR_SUMSQ_CHUNK)], one partial per chunk */
static int rule_sumsq(Graph *g, Node *n, Diag *d)
{
	const Node *x = arg(g, n, 0);
	if (need_f32(d, n, x, "gradient"))
		return -1;
	int64_t numel = ir_numel(&x->shape);
	n->shape.rank = 1;
	n->shape.dim[0] = (numel + IR_SUMSQ_CHUNK - 1) / IR_SUMSQ_CHUNK;
	n->dtype = DT_F64;
	return 0;
}

static int need_hparams(Diag *d, const Node *n, const Node *hp)
{
	if (hp->dtype != DT_F32 || hp->shape.rank != 1 || hp->shape.dim[0] != IR_HP_COUNT ||
	    hp->op != OP_INPUT) {
		char sh[SHAPE_BUF];
		ir_shape_str(&hp->shape, sh, sizeof sh);
		return fail(d, n, "%s needs the optimiser's scalars, an input f32[%d], as hp; got "
			    "%s %s%s", opname(n), IR_HP_COUNT, ir_op[hp->op].name,
			    ir_dtype_name[hp->dtype], sh);
	}
	return 0;
}

/* grad_norm hp, s1..sn -> f32[], the clip factor; s the partials of sumsq.
 * hp must be an input: the node writes the norm into it, which is only
 * sound for memory of its own that lives across the step. */
static int rule_grad_norm(Graph *g, Node *n, Diag *d)
{
	if (n->narg < 2)
		return fail(d, n, "grad_norm needs the scalars and at least one sumsq");
	if (need_hparams(d, n, arg(g, n, 0)))
		return -1;
	for (uint32_t i = 1; i < n->narg; i++) {
		const Node *s = arg(g, n, i);
		if (s->op != OP_SUMSQ)
			return fail(d, n, "grad_norm operand %u must be a sumsq, got %s", i,
				    ir_op[s->op].name);
	}
	n->shape.rank = 0;
	n->dtype = DT_F32;
	return 0;
}

/* adamw p, g, m, v, hp, clip [, mask] -> p's shape. p is a param and m, v
 * are states of its shape: the node writes all three in place, which is
 * only sound for persistent memory that nothing later reads except
 * through the result; the mask is p's MASK. */
static int rule_adamw(Graph *g, Node *n, Diag *d)
{
	const Node *p = arg(g, n, 0);
	static const char *const what[] = {"param", "gradient", "exp_avg", "exp_avg_sq"};
	if (p->op != OP_PARAM)
		return fail(d, n, "%s updates a param, got %s", opname(n), ir_op[p->op].name);
	for (uint32_t i = 0; i < 4; i++) {
		const Node *x = arg(g, n, i);
		if (need_f32(d, n, x, what[i]))
			return -1;
		if (i >= 2 && x->op != OP_STATE)
			return fail(d, n, "%s: the %s must be a state, got %s", opname(n), what[i],
				    ir_op[x->op].name);
		if (!ir_shape_eq(&x->shape, &p->shape)) {
			char sp[SHAPE_BUF], sx[SHAPE_BUF];
			ir_shape_str(&p->shape, sp, sizeof sp);
			ir_shape_str(&x->shape, sx, sizeof sx);
			return fail(d, n, "%s: the %s is %s, the param %s", opname(n), what[i], sx, sp);
		}
	}
	if (need_hparams(d, n, arg(g, n, 4)))
		return -1;
	const Node *c = arg(g, n, 5);
	if (c->op != OP_GRAD_NORM)
		return fail(d, n, "%s: the clip factor must be a grad_norm, got %s", opname(n),
			    ir_op[c->op].name);
	if (n->op == OP_ADAMW_MASKED) {
		const Node *m = arg(g, n, 6);
		if (m->op != OP_MASK || m->name != p->name || !ir_shape_eq(&m->shape, &p->shape))
			return fail(d, n, "adamw_masked needs the param's own mask, got %s",
				    ir_op[m->op].name);
	}
	n->shape = p->shape;
	n->dtype = DT_F32;
	return 0;
}

typedef int (*Rule)(Graph *g, Node *n, Diag *d);

static const Rule rule[] = {
	[OP_INPUT] = rule_source,
	[OP_PARAM] = rule_source,
	[OP_CONST] = rule_source,
	[OP_IOTA] = rule_source,
	[OP_NEG] = rule_unary,
	[OP_EXP] = rule_unary,
	[OP_LOG] = rule_unary,
	[OP_TANH] = rule_unary,
	[OP_SQRT] = rule_unary,
	[OP_RSQRT] = rule_unary,
	[OP_GELU] = rule_unary,
	[OP_RELU] = rule_unary,
	[OP_SILU] = rule_unary,
	[OP_CAST] = rule_unary,
	[OP_ADD] = rule_binary,
	[OP_SUB] = rule_binary,
	[OP_MUL] = rule_binary,
	[OP_DIV] = rule_binary,
	[OP_SUM] = rule_reduce,
	[OP_MEAN] = rule_reduce,
	[OP_MAX] = rule_reduce,
	[OP_MATMUL] = rule_matmul,
	[OP_RESHAPE] = rule_reshape,
	[OP_PERMUTE] = rule_permute,
	[OP_SLICE] = rule_slice,
	[OP_CONCAT] = rule_concat,
	[OP_GATHER] = rule_gather,
	[OP_CAUSAL_MASK] = rule_causal_mask,
	[OP_SOFTMAX] = rule_softmax,
	[OP_CROSS_ENTROPY] = rule_cross_entropy,
	[OP_GELU_GRAD] = rule_binary,
	[OP_SILU_GRAD] = rule_binary,
	[OP_RELU_GRAD] = rule_binary,
	[OP_SOFTMAX_GRAD] = rule_softmax_grad,
	[OP_CROSS_ENTROPY_GRAD] = rule_cross_entropy_grad,
	[OP_GATHER_GRAD] = rule_gather_grad,
	[OP_CAUSAL_MASK_GRAD] = rule_causal_mask,
	[OP_MAX_GRAD] = rule_max_grad,
	[OP_BROADCAST] = rule_broadcast,
	[OP_STATE] = rule_source,
	[OP_MASK] = rule_source,
	[OP_CACHE_WRITE] = rule_cache_write,
	[OP_IOTA_OFFSET] = rule_iota_offset,
	[OP_CAUSAL_MASK_OFFSET] = rule_causal_mask_offset,
	[OP_SPMM] = rule_spmm,
	[OP_SDDMM] = rule_sddmm,
	[OP_SUMSQ] = rule_sumsq,
	[OP_GRAD_NORM] = rule_grad_norm,
	[OP_ADAMW] = rule_adamw,
	[OP_ADAMW_MASKED] = rule_adamw,
};
static_assert(OP_COUNT == 50, "add the new op's shape rule to rule[]");
static_assert(sizeof rule / sizeof rule[0] == OP_COUNT, "rule[] covers every op");

int ir_infer_node(Graph *g, Node *n, Diag *d)
{
	if (n->op >= OP_COUNT)
		return diag_error(d, n->loc, "unknown op %u", n->op);
	if (n->dtype >= DT_COUNT)
		return fail(d, n, "%s: unknown dtype %u", opname(n), n->dtype);
	int arity = ir_op[n->op].arity;
	if (arity >= 0 ? n->narg != (uint32_t)arity : n->narg == 0)
		return fail(d, n, "%s takes %s%d operand%s, got %u", opname(n),
			    arity < 0 ? "at least " : "", arity < 0 ? 1 : arity,
			    arity == 1 || arity < 0 ? "" : "s", n->narg);
	if ((uint64_t)n->arg + n->narg > g->arg.len)
		return fail(d, n, "internal: %s operand list out of range", opname(n));
	for (uint32_t i = 0; i < n->narg; i++)
		if (ir_operand(g, n, i) >= ir_nnode(g))
			return fail(d, n, "internal: operand %u of %s is not a value", i,
				    opname(n));
	if (ir_op[n->op].flags & OPF_SOURCE) {
		if (check_shape(d, n, &n->shape))
			return -1;
	}
	if (rule[n->op](g, n, d))
		return -1;
	return check_shape(d, n, &n->shape);
}
