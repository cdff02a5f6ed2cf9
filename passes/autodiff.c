/* autodiff.c: reverse-mode differentiation of the loss, as more IR.
 *
 * When training and the graph has a loss, this pass appends the backward
 * graph to the forward one, so one program computes both and the backward
 * nodes go through the same later passes and kernels. It seeds d(loss) = 1,
 * walks the forward nodes from the loss back to the first, and for each node
 * that both reaches the loss and depends on a trainable param applies the
 * op's backward rule (docs/autodiff.md has the table), adding the
 * contributions to each operand's gradient; a value read several times sums
 * its readers' contributions with ADD, in reverse node order. The gradient
 * of every non-frozen param is recorded in g->grad, in param order, with the
 * param's exact shape: a param the loss does not depend on gets a CONST
 * zero. Frozen params get no entry, though gradients still flow past them to
 * whatever else needs one.
 *
 * Assumes a graph the verifier accepts, with normalised attributes (run
 * after infer_shapes). A graph that already has gradients (IR printed after
 * this pass and read back) is left alone. Backward nodes keep the location
 * of the forward node they come from, so a failure points at its .msw line.
 * On failure the node and operand arrays are cut back to their old lengths
 * and g->grad is untouched, so the graph is exactly as it was. */
#include "passes.h"

#include <string.h>

typedef struct AD {
	Graph *g;
	Diag *d;
	ValId *grad;    /* forward node -> its gradient so far, or VAL_NONE */
	bool *need;     /* forward node depends on a trainable param */
} AD;

/* Builders that pass an earlier failure along: an operand of VAL_NONE means
 * an error is already in the Diag, so a rule can chain calls and check once. */
static bool bad2(ValId a, ValId b)
{
	return a == VAL_NONE || b == VAL_NONE;
}

static const Node *N(const AD *A, ValId v)
{
	return ir_node(A->g, v);
}

static ValId un(AD *A, Op op, ValId x, SrcLoc loc)
{
	return x == VAL_NONE ? VAL_NONE : ir_unary(A->g, op, x, loc, A->d);
}

static ValId bin(AD *A, Op op, ValId a, ValId b, SrcLoc loc)
{
	return bad2(a, b) ? VAL_NONE : ir_binary(A->g, op, a, b, loc, A->d);
}

static ValId scalar(AD *A, double value, SrcLoc loc)
{
	Shape s = {0};
	return ir_const(A->g, value, DT_F32, &s, loc, A->d);
}

static ValId zeros(AD *A, const Shape *s, SrcLoc loc)
{
	return ir_const(A->g, 0.0, DT_F32, s, loc, A->d);
}

static ValId reshape(AD *A, ValId x, const Shape *s, SrcLoc loc)
{
	if (x == VAL_NONE)
		return VAL_NONE;
	if (ir_shape_eq(&N(A, x)->shape, s))
		return x;
	return ir_reshape(A->g, x, s, loc, A->d);
}

static ValId reduce(AD *A, Op op, ValId x, int64_t axis, bool keepdim, SrcLoc loc)
{
	return x == VAL_NONE ? VAL_NONE : ir_reduce(A->g, op, x, axis, keepdim, loc, A->d);
}

static ValId matmul(AD *A, ValId a, ValId b, unsigned flags, SrcLoc loc)
{
	return bad2(a, b) ? VAL_NONE : ir_matmul(A->g, a, b, flags, loc, A->d);
}

static ValId grad_op(AD *A, Op op, ValId a, ValId b, SrcLoc loc)
{
	ValId args[2] = {a, b};
	return bad2(a, b) ? VAL_NONE : ir_grad_op(A->g, op, args, 2, loc, A->d);
}

/* Sum a gradient of a broadcast result back to the shape of the operand
 * that was broadcast: axes the operand lacks are flattened into one leading
 * axis and summed away in one reduction; axes where it had 1 are summed with
 * keepdim. No reshape is needed after that. */
static ValId reduce_to(AD *A, ValId x, const Shape *to, SrcLoc loc)
{
	if (x == VAL_NONE)
		return VAL_NONE;
	Shape s = N(A, x)->shape;
	if (ir_shape_eq(&s, to))
		return x;
	int lead = s.rank - to->rank;
	if (lead > 0) {
		Shape f = {.rank = (uint8_t)(to->rank + 1), .dim = {1}};
		for (int i = 0; i < lead; i++)
			f.dim[0] *= s.dim[i];
		for (int i = 0; i < to->rank; i++)
			f.dim[i + 1] = s.dim[lead + i];
		x = reduce(A, OP_SUM, reshape(A, x, &f, loc), 0, false, loc);
	}
	for (int i = 0; i < to->rank && x != VAL_NONE; i++)
		if (to->dim[i] == 1 && N(A, x)->shape.dim[i] != 1)
			x = reduce(A, OP_SUM, x, i, true, loc);
	return x;
}

/* Adds contribution c to the gradient of value u. Every rule hands over a
 * gradient of u's exact shape; anything else is a bug in the rule. */
static int contribute(AD *A, ValId u, ValId c, SrcLoc loc)
{
	if (c == VAL_NONE)
		return -1;
	const Node *to = N(A, u), *cn = N(A, c);
	if (cn->dtype != DT_F32 || !ir_shape_eq(&cn->shape, &to->shape)) {
		char su[160], sc[160];
		ir_shape_str(&to->shape, su, sizeof su);
		ir_shape_str(&cn->shape, sc, sizeof sc);
		return diag_error(A->d, loc, "internal: autodiff built a gradient %s for %%%u %s (%s)",
				  sc, u, su, ir_op[to->op].name);
	}
	if (A->grad[u] == VAL_NONE) {
		A->grad[u] = c;
		return 0;
	}
	ValId sum = bin(A, OP_ADD, A->grad[u], c, loc);
	if (sum == VAL_NONE)
		return -1;
	A->grad[u] = sum;
	return 0;
}

/* Y = op(A) op(B), op a transpose when the flag says so. With A' = op(A),
 * B' = op(B): dA' = dY B'^T and dB' = A'^T dY, written with transpose flags
 * on the stored operands instead of permutes. Batch axes that an operand
 * broadcast over are summed away by reduce_to, except in the common case of
 * a weight matrix times a batch of activations (B without batch, A not
 * transposed): there the batch is folded into the rows, so dB is one matmul
 * [K, B*T] x [B*T, N] rather than a batch of products summed afterwards. */
static int matmul_rule(AD *A, const Node *n, ValId dy)
{
	ValId a = ir_operand(A->g, n, 0), b = ir_operand(A->g, n, 1);
	bool ta = n->flags & NF_TRANS_A, tb = n->flags & NF_TRANS_B;
	/* dB' = A'^T dY with A as the first operand keeps A's zeros there, so
	 * it skips them too (masked probabilities: dv of a masked key) */
	unsigned sz = n->flags & NF_SKIPZEROS;
	Shape sa = N(A, a)->shape, sb = N(A, b)->shape;
	SrcLoc loc = n->loc;
	if (A->need[a]) {
		ValId t;
		if (!ta)
			t = matmul(A, dy, b, tb ? 0 : NF_TRANS_B, loc);
		else
			t = matmul(A, b, dy, tb ? NF_TRANS_A | NF_TRANS_B : NF_TRANS_B, loc);
		if (contribute(A, a, reduce_to(A, t, &sa, loc), loc))
			return -1;
	}
	if (A->need[b]) {
		Shape bb = sb;
		bb.rank -= 2;
		ValId t;
		if (!ta && sa.rank > 2 && ir_numel(&bb) == 1) {
			int64_t k = sa.dim[sa.rank - 1], nn = n->shape.dim[n->shape.rank - 1];
			Shape fa = {2, {ir_numel(&sa) / k, k}};
			Shape fy = {2, {ir_numel(&n->shape) / nn, nn}};
			ValId af = reshape(A, a, &fa, loc), yf = reshape(A, dy, &fy, loc);
			t = tb ? matmul(A, yf, af, NF_TRANS_A, loc) : matmul(A, af, yf, NF_TRANS_A | sz, loc);
			t = reshape(A, t, &sb, loc);
		} else {
			if (!tb)
				t = matmul(A, a, dy, (ta ? 0 : NF_TRANS_A) | sz, loc);
			else
				t = matmul(A, dy, a, ta ? NF_TRANS_A | NF_TRANS_B : NF_TRANS_A, loc);
			t = reduce_to(A, t, &sb, loc);
		}
		if (contribute(A, b, t, loc))
			return -1;
	}
	return 0;
}

/* slice: the gradient is dy with zeros where the slice cut; concat with
 * zero constants is that, and reuses an existing kernel. */
static ValId unslice(AD *A, const Node *n, const Shape *full, ValId dy)
{
	ValId part[3];
	uint32_t k = 0;
	Shape z = *full;
	if (n->lo > 0) {
		z.dim[n->axis] = n->lo;
		part[k++] = zeros(A, &z, n->loc);
	}
	part[k++] = dy;
	if (n->hi < full->dim[n->axis]) {
		z.dim[n->axis] = full->dim[n->axis] - n->hi;
		part[k++] = zeros(A, &z, n->loc);
	}
	for (uint32_t i = 0; i < k; i++)
		if (part[i] == VAL_NONE)
			return VAL_NONE;
	return k == 1 ? dy : ir_concat(A->g, part, k, n->axis, n->loc, A->d);
}

/* Applies the backward rule of node v, whose gradient dy is complete (every
 * reader of v comes after it and has been done). Contributes only to the
 * operands that need a gradient. */
static int backward(AD *A, ValId v)
{
	Graph *g = A->g;
	const Node nd = *ir_node(g, v); /* a copy: building may move the array */
	const Node *n = &nd;
	ValId dy = A->grad[v];
	SrcLoc loc = n->loc;
	ValId x = n->narg ? ir_operand(g, n, 0) : VAL_NONE;
	ValId c = VAL_NONE;
	switch (n->op) {
	case OP_NEG: c = un(A, OP_NEG, dy, loc); break;
	case OP_EXP: c = bin(A, OP_MUL, dy, v, loc); break;
	case OP_LOG: c = bin(A, OP_DIV, dy, x, loc); break;
	case OP_TANH: /* dy (1 - y^2) */
		c = bin(A, OP_MUL, dy, bin(A, OP_SUB, scalar(A, 1, loc),
					   bin(A, OP_MUL, v, v, loc), loc), loc);
		break;
	case OP_SQRT: /* dy / (2 y) */
		c = bin(A, OP_DIV, bin(A, OP_MUL, dy, scalar(A, 0.5, loc), loc), v, loc);
		break;
	case OP_RSQRT: /* -x^(-3/2) / 2 = -y / (2x) */
		c = bin(A, OP_MUL, bin(A, OP_DIV, bin(A, OP_MUL, dy, v, loc), x, loc),
			scalar(A, -0.5, loc), loc);
		break;
	case OP_GELU: c = grad_op(A, OP_GELU_GRAD, x, dy, loc); break;
	case OP_RELU: c = grad_op(A, OP_RELU_GRAD, x, dy, loc); break;
	case OP_SILU: c = grad_op(A, OP_SILU_GRAD, x, dy, loc); break;
	case OP_CAST: /* need[v] implies f32 -> f32, an identity */
		c = dy;
		break;
	case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: {
		/* Each side's contribution, at the result's shape, then summed
		 * over the axes that side was broadcast along. */
		ValId a = x, b = ir_operand(g, n, 1);
		bool na = A->need[a], nb = A->need[b];
		Shape sa = N(A, a)->shape, sb = N(A, b)->shape;
		ValId ca = VAL_NONE, cb = VAL_NONE, t;
		switch (n->op) {
		case OP_ADD:
			ca = dy;
			cb = nb ? reduce_to(A, dy, &sb, loc) : VAL_NONE;
			break;
		case OP_SUB: /* negate after reducing: fewer elements */
			ca = dy;
			cb = nb ? un(A, OP_NEG, reduce_to(A, dy, &sb, loc), loc) : VAL_NONE;
			break;
		case OP_MUL: /* x * x: one product, contributed twice */
			ca = na ? bin(A, OP_MUL, dy, b, loc) : VAL_NONE;
			cb = nb ? reduce_to(A, a == b ? ca : bin(A, OP_MUL, dy, a, loc), &sb, loc)
				: VAL_NONE;
			break;
		default: /* d(a/b)/db = -(a/b)/b = -y/b, and t = dy/b serves both */
			t = bin(A, OP_DIV, dy, b, loc);
			ca = t;
			cb = nb ? un(A, OP_NEG, reduce_to(A, bin(A, OP_MUL, t, v, loc), &sb, loc),
				     loc) : VAL_NONE;
			break;
		}
		if (na && contribute(A, a, reduce_to(A, ca, &sa, loc), loc))
			return -1;
		if (nb && contribute(A, b, cb, loc))
			return -1;
		return 0;
	}
	case OP_SUM: case OP_MEAN: {
		Shape xs = N(A, x)->shape, keep = xs;
		keep.dim[n->axis] = 1;
		c = dy;
		if (n->op == OP_MEAN) /* scale the small side, before broadcasting */
			c = bin(A, OP_MUL, c, scalar(A, 1.0 / (double)xs.dim[n->axis], loc), loc);
		c = reshape(A, c, &keep, loc);
		if (c != VAL_NONE)
			c = ir_broadcast_to(g, c, &xs, loc, A->d);
		break;
	}
	case OP_BROADCAST: {
		Shape xs = N(A, x)->shape;
		c = reduce_to(A, dy, &xs, loc);
		break;
	}
	case OP_MAX: c = ir_max_grad(g, x, dy, n->axis, loc, A->d); break;
	case OP_MATMUL: return matmul_rule(A, n, dy);
	case OP_RESHAPE: {
		Shape xs = N(A, x)->shape;
		c = reshape(A, dy, &xs, loc);
		break;
	}
	case OP_PERMUTE: {
		uint8_t inv[IR_MAX_RANK] = {0};
		for (int i = 0; i < n->shape.rank; i++)
			inv[n->perm[i]] = (uint8_t)i;
		c = ir_permute(g, dy, inv, loc, A->d);
		break;
	}
	case OP_SLICE: {
		Shape full = N(A, x)->shape;
		c = unslice(A, n, &full, dy);
		break;
	}
	case OP_CONCAT: {
		int64_t at = 0;
		for (uint32_t i = 0; i < n->narg; i++) {
			ValId u = ir_operand(g, n, i);
			int64_t len = N(A, u)->shape.dim[n->axis];
			if (A->need[u]) {
				c = n->narg == 1 ? dy : ir_slice(g, dy, n->axis, at, at + len, loc, A->d);
				if (contribute(A, u, c, loc))
					return -1;
			}
			at += len;
		}
		return 0;
	}
	case OP_GATHER: /* the table only: indices are integers */
		c = ir_gather_grad(g, ir_operand(g, n, 1), dy, N(A, x)->shape.dim[0], loc, A->d);
		break;
	case OP_CAUSAL_MASK: {
		ValId arg = dy;
		c = ir_grad_op(g, OP_CAUSAL_MASK_GRAD, &arg, 1, loc, A->d);
		break;
	}
	case OP_SOFTMAX: c = grad_op(A, OP_SOFTMAX_GRAD, v, dy, loc); break;
	case OP_CROSS_ENTROPY: {
		ValId args[3] = {x, ir_operand(g, n, 1), dy};
		c = ir_grad_op(g, OP_CROSS_ENTROPY_GRAD, args, 3, loc, A->d);
		break;
	}
	default:
		/* Sources have no operands, and the backward kernels are never
		 * differentiated: there is no second-order autodiff. */
		return diag_error(A->d, loc, "autodiff: %s has no backward rule",
				  ir_op[n->op].name);
	}
	return contribute(A, x, c, loc);
}

/* need[v]: v is a trainable param, or an f32 value computed from one. Only
 * f32 values carry gradients, so a cast to i32 stops the flow. */
static void mark_need(const Graph *g, bool *need, uint32_t n)
{
	for (ValId v = 0; v < n; v++) {
		const Node *nd = ir_node(g, v);
		if (nd->op == OP_PARAM) {
			need[v] = !(nd->flags & NF_FROZEN);
			continue;
		}
		if (nd->dtype != DT_F32)
			continue;
		for (uint32_t i = 0; i < nd->narg && !need[v]; i++)
			need[v] = need[ir_operand(g, nd, i)];
	}
}

/* live[v]: the loss reads v, directly or through other nodes. */
static void mark_live(const Graph *g, bool *live)
{
	live[g->loss] = true;
	for (ValId v = g->loss + 1; v-- > 0;) {
		const Node *nd = ir_node(g, v);
		if (!live[v])
			continue;
		for (uint32_t i = 0; i < nd->narg; i++)
			live[ir_operand(g, nd, i)] = true;
	}
}

int pass_autodiff(Graph *g, const PassOptions *o, Diag *d)
{
	if (!o->training || g->loss == VAL_NONE || g->grad.len)
		return 0;
	uint32_t n = ir_nnode(g);
	size_t nnode0 = g->node.len, narg0 = g->arg.len;
	if (g->loss >= n)
		return diag_error(d, (SrcLoc){0}, "internal: the loss is not a value");
	const Node *ln = ir_node(g, g->loss);
	if (ln->dtype != DT_F32 || ln->shape.rank != 0)
		return diag_error(d, ln->loc, "autodiff: the loss must be an f32 scalar");
	AD A = {g, d, NULL, NULL};
	bool *live = mem_calloc(n, sizeof *live);
	A.need = mem_calloc(n, sizeof *A.need);
	A.grad = mem_alloc(n * sizeof *A.grad);
	Vec grads = {0};
	if (!live || !A.need || !A.grad) {
		diag_error(d, (SrcLoc){0}, "out of memory");
		goto fail;
	}
	for (ValId v = 0; v < n; v++)
		A.grad[v] = VAL_NONE;
	mark_need(g, A.need, n);
	mark_live(g, live);
	if (A.need[g->loss] && (A.grad[g->loss] = scalar(&A, 1.0, ln->loc)) == VAL_NONE)
		goto fail;
	for (ValId v = g->loss + 1; v-- > 0;)
		if (live[v] && A.need[v] && A.grad[v] != VAL_NONE && ir_node(g, v)->narg &&
		    backward(&A, v))
			goto fail;
	for (ValId v = 0; v < n; v++) {
		const Node *p = ir_node(g, v);
		if (p->op != OP_PARAM || (p->flags & NF_FROZEN))
			continue;
		ValId gv = A.grad[v];
		if (gv == VAL_NONE) {
			Shape s = p->shape;
			gv = zeros(&A, &s, p->loc);
			if (gv == VAL_NONE)
				goto fail;
		}
		GradPair *gp = vec_push(&grads, sizeof *gp);
		if (!gp) {
			diag_error(d, (SrcLoc){0}, "out of memory");
			goto fail;
		}
		gp->param = v;
		gp->grad = gv;
	}
	/* Nothing can fail from here on. */
	vec_free(&g->grad);
	g->grad = grads;
	mem_free(live);
	mem_free(A.need);
	mem_free(A.grad);
	return 0;
fail:
	g->node.len = nnode0;
	g->arg.len = narg0;
	vec_free(&grads);
	mem_free(live);
	mem_free(A.need);
	mem_free(A.grad);
	return -1;
}
