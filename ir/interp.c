/* interp.c: the reference interpreter, the oracle every kernel is tested
 * against.
 *
 * Plain, slow and meant to be obviously correct: every op loops over its
 * output elements, turns the linear index into coordinates, and reads its
 * operands by index arithmetic straight from the op's definition in ops.h.
 * There are no fast paths, no fusion and no aliasing; a RESHAPE copies.
 * Values are doubles whatever the dtype (integers are exact below 2^53), so
 * the oracle carries less rounding error than any f32 kernel it judges.
 *
 * Assumes a graph the shape rules accepted (ir_verify passes): shapes are
 * trusted here, data is not, so an out-of-range gather index or loss target
 * is an error located at the node. On failure every buffer this file
 * allocated is released and its slot set to NULL, so ir_interp_free is safe
 * either way. */
#include "ir.h"

#include <math.h>
#include <string.h>

static bool caller_owned(const Node *n)
{
	return n->op == OP_INPUT || n->op == OP_PARAM || n->op == OP_STATE;
}

/* Coordinates of linear index i in shape s (row-major). */
static void unravel(const Shape *s, int64_t i, int64_t *c)
{
	for (int k = s->rank - 1; k >= 0; k--) {
		c[k] = i % s->dim[k];
		i /= s->dim[k];
	}
}

/* Linear index in s of the coordinates c of a (broadcast) result of rank
 * `rank`: s is aligned with the trailing axes, and axes of size 1 repeat. */
static int64_t ravel_bcast(const Shape *s, const int64_t *c, int rank)
{
	int64_t at = 0;
	for (int k = 0; k < s->rank; k++) {
		int64_t ck = c[rank - s->rank + k];
		at = at * s->dim[k] + (s->dim[k] == 1 ? 0 : ck);
	}
	return at;
}

static int64_t ravel(const Shape *s, const int64_t *c)
{
	return ravel_bcast(s, c, s->rank);
}

static double gelu(double x)
{
	const double k = sqrt(2.0 / M_PI);
	return 0.5 * x * (1.0 + tanh(k * (x + 0.044715 * x * x * x)));
}

/* d/dx of gelu above: 0.5(1 + tanh u) + 0.5 x (1 - tanh^2 u) u', with
 * u = k(x + 0.044715 x^3). */
static double gelu_grad(double x)
{
	const double k = sqrt(2.0 / M_PI);
	double t = tanh(k * (x + 0.044715 * x * x * x));
	return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3 * 0.044715 * x * x);
}

static double silu_grad(double x)
{
	double s = 1.0 / (1.0 + exp(-x));
	return s * (1.0 + x * (1.0 - s));
}

static double unary(Op op, DType to, double x)
{
	switch (op) {
	case OP_NEG: return -x;
	case OP_EXP: return exp(x);
	case OP_LOG: return log(x);
	case OP_TANH: return tanh(x);
	case OP_SQRT: return sqrt(x);
	case OP_RSQRT: return 1.0 / sqrt(x);
	case OP_GELU: return gelu(x);
	case OP_RELU: return x > 0 ? x : 0.0;
	case OP_SILU: return x / (1.0 + exp(-x));
	case OP_CAST: return to == DT_F32 ? x : trunc(x);
	default: assert(!"not a unary op"); return 0;
	}
}

static double binary(Op op, double a, double b)
{
	switch (op) {
	case OP_ADD: return a + b;
	case OP_SUB: return a - b;
	case OP_MUL: return a * b;
	case OP_DIV: return a / b;
	/* the backward kernels: a is the forward input x, b the gradient dy */
	case OP_GELU_GRAD: return b * gelu_grad(a);
	case OP_SILU_GRAD: return b * silu_grad(a);
	case OP_RELU_GRAD: return a > 0 ? b : 0.0;
	default: assert(!"not a binary op"); return 0;
	}
}

/* The operand values of node n, by position. */
typedef struct Ctx {
	const Graph *g;
	double **val;
	Diag *d;
} Ctx;

static const Node *opnd(const Ctx *x, const Node *n, uint32_t i)
{
	return ir_node(x->g, ir_operand(x->g, n, i));
}

static const double *in(const Ctx *x, const Node *n, uint32_t i)
{
	return x->val[ir_operand(x->g, n, i)];
}

static void run_binary(const Ctx *x, const Node *n, double *out)
{
	const Node *a = opnd(x, n, 0), *b = opnd(x, n, 1);
	const double *va = in(x, n, 0), *vb = in(x, n, 1);
	int64_t c[IR_MAX_RANK];
	for (int64_t i = 0; i < ir_numel(&n->shape); i++) {
		unravel(&n->shape, i, c);
		out[i] = binary(n->op, va[ravel_bcast(&a->shape, c, n->shape.rank)],
				vb[ravel_bcast(&b->shape, c, n->shape.rank)]);
	}
}

/* View x as [outer, len, inner] around the axis; keepdim does not change
 * the layout of the result. */
static void run_reduce(const Ctx *x, const Node *n, double *out)
{
	const Shape *s = &opnd(x, n, 0)->shape;
	const double *v = in(x, n, 0);
	int64_t outer = 1, inner = 1, len = s->dim[n->axis];
	for (int k = 0; k < n->axis; k++)
		outer *= s->dim[k];
	for (int k = (int)n->axis + 1; k < s->rank; k++)
		inner *= s->dim[k];
	for (int64_t o = 0; o < outer; o++)
		for (int64_t i = 0; i < inner; i++) {
			double acc = n->op == OP_MAX ? -INFINITY : 0.0;
			for (int64_t k = 0; k < len; k++) {
				double e = v[(o * len + k) * inner + i];
				acc = n->op == OP_MAX ? (e > acc ? e : acc) : acc + e;
			}
			out[o * inner + i] = n->op == OP_MEAN ? acc / (double)len : acc;
		}
}

/* out[b..., m, j] = sum_k A[b..., m, k] * B[b..., k, j], where the batch
 * coordinates b broadcast into each operand and the transpose flags only
 * change where A(m,k) and B(k,j) are stored; with skipzeros a term whose
 * A(m,k) is 0 is left out, B(k,j) unread. */
static void run_matmul(const Ctx *x, const Node *n, double *out)
{
	const Node *a = opnd(x, n, 0), *b = opnd(x, n, 1);
	const double *va = in(x, n, 0), *vb = in(x, n, 1);
	bool ta = n->flags & NF_TRANS_A, tb = n->flags & NF_TRANS_B;
	bool skip = n->flags & NF_SKIPZEROS;
	int r = n->shape.rank;
	int64_t m = n->shape.dim[r - 2], nn = n->shape.dim[r - 1];
	int64_t kk = a->shape.dim[a->shape.rank - (ta ? 2 : 1)];
	Shape ba = a->shape, bb = b->shape;
	ba.rank -= 2;
	bb.rank -= 2;
	int64_t c[IR_MAX_RANK];
	for (int64_t i = 0; i < ir_numel(&n->shape); i++) {
		unravel(&n->shape, i, c);
		int64_t row = c[r - 2], col = c[r - 1];
		const double *A = va + ravel_bcast(&ba, c, r - 2) * m * kk;
		const double *B = vb + ravel_bcast(&bb, c, r - 2) * kk * nn;
		double acc = 0;
		for (int64_t k = 0; k < kk; k++) {
			double ea = ta ? A[k * m + row] : A[row * kk + k];
			if (skip && ea == 0)
				continue;
			double eb = tb ? B[col * kk + k] : B[k * nn + col];
			acc += ea * eb;
		}
		out[i] = acc;
	}
}

/* The mask bits of the sparse products' weight (their last operand), or an
 * error when the printed IR this graph came from carried none. */
static const uint8_t *weight_mask(const Ctx *x, const Node *n)
{
	ValId w = ir_operand(x->g, n, n->narg - 1);
	const Mask *m = ir_find_mask(x->g, w);
	if (!m || !m->bits) {
		diag_error(x->d, n->loc, "the mask of \"%s\" is to be supplied (the IR text "
			   "carries no mask bits)", ir_str(x->g, ir_node(x->g, w)->name));
		return NULL;
	}
	return m->bits;
}

/* spmm, per block b: out[b, j, m] = sum_i (W*mask)(i, j) at[b, i, m], with
 * W(i, j) = W[i][j], or W[j][i] with transb (ops.h). */
static int run_spmm(const Ctx *x, const Node *n, double *out)
{
	const uint8_t *bits = weight_mask(x, n);
	if (!bits)
		return -1;
	const Node *w = opnd(x, n, 1);
	const double *at = in(x, n, 0), *vw = in(x, n, 1);
	bool tb = n->flags & NF_TRANS_B;
	int64_t nb = n->shape.dim[0], J = n->shape.dim[1], B = n->shape.dim[2];
	int64_t I = opnd(x, n, 0)->shape.dim[1], N = w->shape.dim[1];
	for (int64_t b = 0; b < nb; b++)
		for (int64_t j = 0; j < J; j++)
			for (int64_t m = 0; m < B; m++) {
				double acc = 0;
				for (int64_t i = 0; i < I; i++) {
					int64_t e = tb ? j * N + i : i * N + j;
					acc += bits[e] ? vw[e] * at[(b * I + i) * B + m] : 0.0;
				}
				out[(b * J + j) * B + m] = acc;
			}
	return 0;
}

/* sddmm: out[k, n] = mask[k][n] ? sum_b sum_m at[b, k, m] bt[b, n, m] : 0. */
static int run_sddmm(const Ctx *x, const Node *n, double *out)
{
	const uint8_t *bits = weight_mask(x, n);
	if (!bits)
		return -1;
	const double *at = in(x, n, 0), *bt = in(x, n, 1);
	const Shape *sa = &opnd(x, n, 0)->shape;
	int64_t K = n->shape.dim[0], N = n->shape.dim[1], nb = sa->dim[0], B = sa->dim[2];
	for (int64_t k = 0; k < K; k++)
		for (int64_t j = 0; j < N; j++) {
			double acc = 0;
			for (int64_t b = 0; b < nb && bits[k * N + j]; b++)
				for (int64_t m = 0; m < B; m++)
					acc += at[(b * K + k) * B + m] * bt[(b * N + j) * B + m];
			out[k * N + j] = acc;
		}
	return 0;
}

static void run_permute(const Ctx *x, const Node *n, double *out)
{
	const Node *a = opnd(x, n, 0);
	const double *v = in(x, n, 0);
	int64_t c[IR_MAX_RANK], ic[IR_MAX_RANK];
	for (int64_t i = 0; i < ir_numel(&n->shape); i++) {
		unravel(&n->shape, i, c);
		for (int k = 0; k < n->shape.rank; k++)
			ic[n->perm[k]] = c[k];
		out[i] = v[ravel(&a->shape, ic)];
	}
}

static void run_slice(const Ctx *x, const Node *n, double *out)
{
	const Node *a = opnd(x, n, 0);
	const double *v = in(x, n, 0);
	int64_t c[IR_MAX_RANK];
	for (int64_t i = 0; i < ir_numel(&n->shape); i++) {
		unravel(&n->shape, i, c);
		c[n->axis] += n->lo;
		out[i] = v[ravel(&a->shape, c)];
	}
}

static void run_concat(const Ctx *x, const Node *n, double *out)
{
	int64_t c[IR_MAX_RANK];
	for (int64_t i = 0; i < ir_numel(&n->shape); i++) {
		unravel(&n->shape, i, c);
		uint32_t j = 0;
		/* Walk past the operands that end before this coordinate. */
		while (c[n->axis] >= opnd(x, n, j)->shape.dim[n->axis]) {
			c[n->axis] -= opnd(x, n, j)->shape.dim[n->axis];
			j++;
		}
		out[i] = in(x, n, j)[ravel(&opnd(x, n, j)->shape, c)];
	}
}

static int run_gather(const Ctx *x, const Node *n, double *out)
{
	const Node *t = opnd(x, n, 0);
	const double *table = in(x, n, 0), *idx = in(x, n, 1);
	int64_t rows = t->shape.dim[0], width = t->shape.dim[1];
	for (int64_t i = 0; i < ir_numel(&n->shape); i++) {
		double r = idx[i / width];
		if (!(r >= 0 && r < (double)rows))
			return diag_error(x->d, n->loc, "gather index %g at position %lld is out of "
					  "range for a table of %lld rows", r,
					  (long long)(i / width), (long long)rows);
		out[i] = table[(int64_t)r * width + i % width];
	}
	return 0;
}

static void run_causal_mask(const Ctx *x, const Node *n, double *out)
{
	const double *v = in(x, n, 0);
	int r = n->shape.rank;
	int64_t t = n->shape.dim[r - 2], s = n->shape.dim[r - 1];
	int64_t c[IR_MAX_RANK];
	for (int64_t i = 0; i < ir_numel(&n->shape); i++) {
		unravel(&n->shape, i, c);
		/* Query i sits at position i + (S - T) among the S keys. */
		out[i] = c[r - 1] > c[r - 2] + (s - t) ? -INFINITY : v[i];
	}
}

/* The decode mask: query i sits at position off + i, off read at run time. */
static void run_causal_mask_offset(const Ctx *x, const Node *n, double *out)
{
	const double *v = in(x, n, 0), *offs = in(x, n, 1);
	bool each = opnd(x, n, 1)->shape.rank == 1;   /* one offset per sequence */
	int r = n->shape.rank;
	int64_t c[IR_MAX_RANK];
	for (int64_t i = 0; i < ir_numel(&n->shape); i++) {
		unravel(&n->shape, i, c);
		double off = offs[each ? c[0] : 0];
		out[i] = (double)c[r - 1] > (double)c[r - 2] + off ? -INFINITY : v[i];
	}
}

/* The write goes into the buffer of the state at the root of the chain of
 * writes (the caller's), which is what makes it persist from one ir_interp
 * call to the next, as the compiled program's in-place write does; the
 * result is a copy of the new cache, as the interpreter never aliases. */
static int run_cache_write(const Ctx *x, const Node *n, double *out)
{
	ValId root = ir_operand(x->g, n, 0);
	while (ir_node(x->g, root)->op == OP_CACHE_WRITE)
		root = ir_operand(x->g, ir_node(x->g, root), 0);
	double *cache = x->val[root];
	const double *v = in(x, n, 1), *ps = in(x, n, 2);
	const Shape *cs = &n->shape, *xs = &opnd(x, n, 1)->shape;
	int r = cs->rank;
	int64_t C = cs->dim[r - 2], T = xs->dim[r - 2], D = cs->dim[r - 1];
	int64_t outer = ir_numel(xs) / (T * D);
	/* pos i32[B]: block o belongs to sequence o / (outer / B) */
	int64_t per = opnd(x, n, 2)->shape.rank == 1 ? outer / cs->dim[0] : outer;
	for (int64_t o = 0; o < outer; o++) {
		double pos = ps[o / per];
		if (!(pos >= 0 && pos + (double)T <= (double)C))
			return diag_error(x->d, n->loc, "cache_write at position %g of %lld rows does "
					  "not fit a cache of %lld", pos, (long long)T, (long long)C);
		memcpy(cache + (o * C + (int64_t)pos) * D, v + o * T * D, (size_t)(T * D) * sizeof *v);
	}
	memcpy(out, cache, (size_t)ir_numel(cs) * sizeof *out);
	return 0;
}

/* The update (ops.h). Like a cache_write, the in-place writes go into the
 * caller's buffers (hp, the param, its moment states), so they persist
 * from one ir_interp call to the next as in the compiled program; each
 * result is a copy. Everything in double, from the f32 scalars in hp. */
static void run_sumsq(const Ctx *x, const Node *n, double *out)
{
	const double *v = in(x, n, 0);
	int64_t numel = ir_numel(&opnd(x, n, 0)->shape);
	for (int64_t c = 0; c < n->shape.dim[0]; c++) {
		double s = 0;
		for (int64_t i = c * IR_SUMSQ_CHUNK; i < numel && i < (c + 1) * IR_SUMSQ_CHUNK; i++)
			s += v[i] * v[i];
		out[c] = s;
	}
}

static void run_grad_norm(const Ctx *x, const Node *n, double *out)
{
	double *hp = x->val[ir_operand(x->g, n, 0)], s = 0;
	for (uint32_t k = 1; k < n->narg; k++) {
		const double *part = in(x, n, k);
		for (int64_t i = 0; i < opnd(x, n, k)->shape.dim[0]; i++)
			s += part[i];
	}
	double norm = sqrt(s), clip = hp[IR_HP_CLIP], c = clip / (norm + 1e-6);
	hp[IR_HP_GRAD_NORM] = norm;
	/* c < 1 is false for a NaN norm: the factor stays 1 */
	out[0] = clip > 0 && c < 1 ? c : 1.0;
}

static void run_adamw(const Ctx *x, const Node *n, double *out)
{
	double *p = x->val[ir_operand(x->g, n, 0)], *m = x->val[ir_operand(x->g, n, 2)];
	double *v = x->val[ir_operand(x->g, n, 3)];
	const double *g = in(x, n, 1), *hp = in(x, n, 4), clip = in(x, n, 5)[0];
	const double *mask = n->op == OP_ADAMW_MASKED ? in(x, n, 6) : NULL;
	double lr = hp[IR_HP_LR], b1 = hp[IR_HP_BETA1], b2 = hp[IR_HP_BETA2];
	double bc1 = hp[IR_HP_BIAS_CORR1], bc2 = hp[IR_HP_BIAS_CORR2];
	for (int64_t i = 0; i < ir_numel(&n->shape); i++) {
		double gi = g[i] * clip, pi = p[i];
		if (n->flags & NF_DECAY)
			pi *= 1 - lr * hp[IR_HP_WEIGHT_DECAY];
		double mi = b1 * m[i] + (1 - b1) * gi, vi = b2 * v[i] + (1 - b2) * gi * gi;
		pi -= lr / bc1 * mi / (sqrt(vi) / sqrt(bc2) + hp[IR_HP_EPS]);
		if (mask && mask[i] == 0)
			pi = mi = vi = 0;
		out[i] = p[i] = pi;
		m[i] = mi;
		v[i] = vi;
	}
}

/* Subtracting the row maximum keeps exp from overflowing; it cancels out. */
static void run_softmax(const Ctx *x, const Node *n, double *out)
{
	const double *v = in(x, n, 0);
	int64_t len = n->shape.dim[n->shape.rank - 1];
	int64_t rows = ir_numel(&n->shape) / len;
	for (int64_t r = 0; r < rows; r++) {
		const double *row = v + r * len;
		double mx = -INFINITY, sum = 0;
		for (int64_t k = 0; k < len; k++)
			mx = row[k] > mx ? row[k] : mx;
		for (int64_t k = 0; k < len; k++)
			sum += out[r * len + k] = exp(row[k] - mx);
		for (int64_t k = 0; k < len; k++)
			out[r * len + k] /= sum;
	}
}


/* One row of logits for cross-entropy and its gradient: checks the target
 * and returns the row's max and sum of exp(x - max) (log-sum-exp pieces). */
static int ce_row(const Ctx *x, const Node *n, const double *row, int64_t v, double t, int64_t r,
		  double *mx, double *sum)
{
	if (!(t >= 0 && t < (double)v))
		return diag_error(x->d, n->loc, "%s target %g at row %lld is out of range for %lld "
				  "classes", ir_op[n->op].name, t, (long long)r, (long long)v);
	*mx = -INFINITY;
	*sum = 0;
	for (int64_t k = 0; k < v; k++)
		*mx = row[k] > *mx ? row[k] : *mx;
	for (int64_t k = 0; k < v; k++)
		*sum += exp(row[k] - *mx);
	return 0;
}

/* mean over rows of logsumexp(row) - row[target] */
static int run_cross_entropy(const Ctx *x, const Node *n, double *out)
{
	const Node *l = opnd(x, n, 0);
	const double *logits = in(x, n, 0), *target = in(x, n, 1);
	int64_t v = l->shape.dim[l->shape.rank - 1];
	int64_t rows = ir_numel(&l->shape) / v;
	double total = 0;
	for (int64_t r = 0; r < rows; r++) {
		const double *row = logits + r * v;
		double mx = 0, sum = 0;
		if (ce_row(x, n, row, v, target[r], r, &mx, &sum))
			return -1;
		total += mx + log(sum) - row[(int64_t)target[r]];
	}
	out[0] = total / (double)rows;
	return 0;
}

/* y * (dy - sum(dy * y)) per row of the last axis */
static void run_softmax_grad(const Ctx *x, const Node *n, double *out)
{
	const double *y = in(x, n, 0), *dy = in(x, n, 1);
	int64_t len = n->shape.dim[n->shape.rank - 1];
	int64_t rows = ir_numel(&n->shape) / len;
	for (int64_t r = 0; r < rows; r++) {
		double dot = 0;
		for (int64_t k = 0; k < len; k++)
			dot += dy[r * len + k] * y[r * len + k];
		for (int64_t k = 0; k < len; k++)
			out[r * len + k] = y[r * len + k] * (dy[r * len + k] - dot);
	}
}

/* (softmax(row) - onehot(target)) * dl / rows */
static int run_cross_entropy_grad(const Ctx *x, const Node *n, double *out)
{
	const double *logits = in(x, n, 0), *target = in(x, n, 1), *dl = in(x, n, 2);
	int64_t v = n->shape.dim[n->shape.rank - 1];
	int64_t rows = ir_numel(&n->shape) / v;
	double scale = dl[0] / (double)rows;
	for (int64_t r = 0; r < rows; r++) {
		const double *row = logits + r * v;
		double mx = 0, sum = 0;
		if (ce_row(x, n, row, v, target[r], r, &mx, &sum))
			return -1;
		for (int64_t k = 0; k < v; k++)
			out[r * v + k] = (exp(row[k] - mx) / sum - (k == (int64_t)target[r])) * scale;
	}
	return 0;
}

/* Rows are added in index order, so repeated indices sum the same way on
 * every run. */
static int run_gather_grad(const Ctx *x, const Node *n, double *out)
{
	const double *idx = in(x, n, 0), *dy = in(x, n, 1);
	int64_t rows = n->shape.dim[0], width = n->shape.dim[1];
	int64_t nidx = ir_numel(&opnd(x, n, 0)->shape);
	memset(out, 0, (size_t)(rows * width) * sizeof *out);
	for (int64_t i = 0; i < nidx; i++) {
		double r = idx[i];
		if (!(r >= 0 && r < (double)rows))
			return diag_error(x->d, n->loc, "gather_grad index %g at position %lld is "
					  "out of range for a table of %lld rows", r, (long long)i,
					  (long long)rows);
		for (int64_t k = 0; k < width; k++)
			out[(int64_t)r * width + k] += dy[i * width + k];
	}
	return 0;
}

static void run_causal_mask_grad(const Ctx *x, const Node *n, double *out)
{
	const double *v = in(x, n, 0);
	int r = n->shape.rank;
	int64_t t = n->shape.dim[r - 2], s = n->shape.dim[r - 1];
	int64_t c[IR_MAX_RANK];
	for (int64_t i = 0; i < ir_numel(&n->shape); i++) {
		unravel(&n->shape, i, c);
		out[i] = c[r - 1] > c[r - 2] + (s - t) ? 0.0 : v[i];
	}
}

/* The same [outer, len, inner] view as run_reduce; dy holds one value per
 * (outer, inner) whether or not the max kept its axis. */
static void run_max_grad(const Ctx *x, const Node *n, double *out)
{
	const double *v = in(x, n, 0), *dy = in(x, n, 1);
	const Shape *s = &n->shape;
	int64_t outer = 1, inner = 1, len = s->dim[n->axis];
	for (int k = 0; k < n->axis; k++)
		outer *= s->dim[k];
	for (int k = (int)n->axis + 1; k < s->rank; k++)
		inner *= s->dim[k];
	memset(out, 0, (size_t)ir_numel(s) * sizeof *out);
	for (int64_t o = 0; o < outer; o++)
		for (int64_t i = 0; i < inner; i++) {
			int64_t best = 0;
			for (int64_t k = 1; k < len; k++)
				if (v[(o * len + k) * inner + i] > v[(o * len + best) * inner + i])
					best = k;
			out[(o * len + best) * inner + i] = dy[o * inner + i];
		}
}

static void run_broadcast(const Ctx *x, const Node *n, double *out)
{
	const Node *a = opnd(x, n, 0);
	const double *v = in(x, n, 0);
	int64_t c[IR_MAX_RANK];
	for (int64_t i = 0; i < ir_numel(&n->shape); i++) {
		unravel(&n->shape, i, c);
		out[i] = v[ravel_bcast(&a->shape, c, n->shape.rank)];
	}
}

static int run_node(const Ctx *x, const Node *n, double *out)
{
	int64_t numel = ir_numel(&n->shape);
	unsigned fl = ir_op[n->op].flags;
	if (fl & OPF_UNARY) {
		const double *v = in(x, n, 0);
		for (int64_t i = 0; i < numel; i++)
			out[i] = unary(n->op, n->dtype, v[i]);
		return 0;
	}
	if (fl & OPF_BINARY) {
		run_binary(x, n, out);
		return 0;
	}
	if (fl & OPF_REDUCE) {
		run_reduce(x, n, out);
		return 0;
	}
	switch (n->op) {
	case OP_CONST:
		for (int64_t i = 0; i < numel; i++)
			out[i] = n->dtype == DT_F32 ? n->value : trunc(n->value);
		return 0;
	case OP_MASK: {
		ValId p = ir_find_param(x->g, ir_str(x->g, n->name));
		const Mask *m = p == VAL_NONE ? NULL : ir_find_mask(x->g, p);
		if (!m || !m->bits)
			return diag_error(x->d, n->loc, "the mask of \"%s\" is to be supplied (the "
					  "IR text carries no mask bits)", ir_str(x->g, n->name));
		for (int64_t i = 0; i < numel; i++)
			out[i] = m->bits[i] ? 1.0 : 0.0;
		return 0;
	}
	case OP_IOTA:
		for (int64_t i = 0; i < numel; i++)
			out[i] = (double)i;
		return 0;
	case OP_MATMUL: run_matmul(x, n, out); return 0;
	case OP_SPMM: return run_spmm(x, n, out);
	case OP_SDDMM: return run_sddmm(x, n, out);
	case OP_RESHAPE: memcpy(out, in(x, n, 0), (size_t)numel * sizeof *out); return 0;
	case OP_PERMUTE: run_permute(x, n, out); return 0;
	case OP_SLICE: run_slice(x, n, out); return 0;
	case OP_CONCAT: run_concat(x, n, out); return 0;
	case OP_GATHER: return run_gather(x, n, out);
	case OP_CAUSAL_MASK: run_causal_mask(x, n, out); return 0;
	case OP_SOFTMAX: run_softmax(x, n, out); return 0;
	case OP_CROSS_ENTROPY: return run_cross_entropy(x, n, out);
	case OP_SOFTMAX_GRAD: run_softmax_grad(x, n, out); return 0;
	case OP_CROSS_ENTROPY_GRAD: return run_cross_entropy_grad(x, n, out);
	case OP_GATHER_GRAD: return run_gather_grad(x, n, out);
	case OP_CAUSAL_MASK_GRAD: run_causal_mask_grad(x, n, out); return 0;
	case OP_MAX_GRAD: run_max_grad(x, n, out); return 0;
	case OP_BROADCAST: run_broadcast(x, n, out); return 0;
	case OP_CACHE_WRITE: return run_cache_write(x, n, out);
	case OP_IOTA_OFFSET: {
		/* [n] from one offset, or [B,n] from one per row */
		int64_t len = n->shape.dim[n->shape.rank - 1];
		for (int64_t i = 0; i < numel; i++)
			out[i] = in(x, n, 0)[n->shape.rank == 2 ? i / len : 0] + (double)(i % len);
		return 0;
	}
	case OP_CAUSAL_MASK_OFFSET: run_causal_mask_offset(x, n, out); return 0;
	case OP_SUMSQ: run_sumsq(x, n, out); return 0;
	case OP_GRAD_NORM: run_grad_norm(x, n, out); return 0;
	case OP_ADAMW: case OP_ADAMW_MASKED: run_adamw(x, n, out); return 0;
	}
	return diag_error(x->d, n->loc, "internal: the interpreter has no rule for %s",
			  ir_op[n->op].name);
}

int ir_interp(const Graph *g, double **val, Diag *d)
{
	Ctx x = {g, val, d};
	for (ValId v = 0; v < ir_nnode(g); v++)
		if (!caller_owned(ir_node(g, v)))
			val[v] = NULL;
	for (ValId v = 0; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		if (caller_owned(n)) {
			if (!val[v]) {
				diag_error(d, n->loc, "%s \"%s\" has no value", ir_op[n->op].name,
					   ir_str(g, n->name));
				goto fail;
			}
			continue;
		}
		val[v] = mem_alloc((size_t)ir_numel(&n->shape) * sizeof(double));
		if (!val[v]) {
			diag_error(d, n->loc, "out of memory");
			goto fail;
		}
		if (run_node(&x, n, val[v]))
			goto fail;
	}
	return 0;
fail:
	ir_interp_free(g, val);
	return -1;
}

void ir_interp_free(const Graph *g, double **val)
{
	for (ValId v = 0; v < ir_nnode(g); v++)
		if (!caller_owned(ir_node(g, v))) {
			mem_free(val[v]);
			val[v] = NULL;
		}
}
