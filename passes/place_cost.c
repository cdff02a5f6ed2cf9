/* place_cost.c: what the step costs on a mesh (docs/mesh.md, "Cost model").
 *
 * The units. A weight (a param of rank >= 2) stays on its tiles with
 * everything that belongs to it: its mask, its moments and its update,
 * every product that reads it, its gradient. Every other node joins the
 * unit of its largest operand (the data it reads most of is already
 * there; of two alike, the later one's: it just ran), and a source the
 * unit of its first reader. The units are found
 * by structure, never by names, and deterministically.
 *
 * A sparse weight (one with a decided mask) is stored compressed when its
 * products are faster so on the mesh (density < sparse rate / dense rate):
 * then every tensor of its shape in its unit holds the kept entries only
 * (the weight with a 32-bit index per entry, its gradient and moments
 * without), and its products do 2 flops per kept entry and row at the
 * sparse rate. Otherwise it is dense, mask and all.
 *
 * A node on a rectangle of r x c tiles computes 1/(r c) of its work, at
 * the dense or sparse rate, or at the tile's memory bandwidth when it
 * moves more bytes than it computes (the longer of the two). Its shards
 * then exchange what the split makes them share:
 *   x @ W, x @ W^T, x^T @ dy   W split K by rows and N by columns: x's
 *                              columns are broadcast along a row of tiles,
 *                              partial sums reduced along a column
 *   a product of activations   rows split; B broadcast when there are more
 *                              tiles than batch slices
 *   gather, gather_grad        rows of the table meet the rows of indices
 *   reductions across rows     partial results combined
 *   permute                    all-to-all
 * each as bytes over the links that carry them plus (r + c - 2) hops of
 * latency. Between nodes on different tiles, the producer's result moves
 * to the consumer's tiles: its shards pair up in row-major order, each
 * pair's bytes go by dimension-ordered routes (along the row, then the
 * column), and the transfer takes its most loaded link's bytes over the
 * bandwidth plus its longest route's hops times the latency; an operand
 * smaller than the result and broadcast over its rows (a bias) is copied
 * to every tile. (At most 256 pairs are routed per transfer, evenly
 * sampled, each with its own share of the bytes.)
 *
 * The step is a list schedule in node order: a node starts when its
 * operands have arrived and every tile it uses is free, and holds those
 * tiles for its compute and exchange. Sources and views cost nothing. The
 * predicted step is the last finish; the critical path, walked back from
 * it, splits it into compute, transfers and waiting for busy tiles.
 *
 * Memory per tile is the peak, over the step, of the bytes live on it:
 * params, moments, masks and inputs for the whole step, every other value
 * (fills included)
 * from its node until its last reader (a view or an in-place update keeps
 * its operand's buffer alive), each tile holding its even share. */
#include "passes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const place_kind_name[PK_KIND_COUNT] = {
	"free", "local", "reduce", "shuffle", "x@W", "x@W^T", "x^T@dy", "matmul", "gather",
};

/* --- units --- */

/* The param v is, looking through reshapes, permutes and its mask
 * product mul(p, mask), or VAL_NONE. */
static ValId chain_param(const Graph *g, ValId v)
{
	for (int hop = 0; hop < 16; hop++) {
		const Node *n = ir_node(g, v);
		if (n->op == OP_PARAM)
			return v;
		if (n->op == OP_RESHAPE || n->op == OP_PERMUTE)
			v = ir_operand(g, n, 0);
		else if (n->op == OP_MUL && ir_node(g, ir_operand(g, n, 1))->op == OP_MASK)
			v = ir_operand(g, n, 0);
		else if (n->op == OP_MUL && ir_node(g, ir_operand(g, n, 0))->op == OP_MASK)
			v = ir_operand(g, n, 1);
		else
			return VAL_NONE;
	}
	return VAL_NONE;
}

static bool weight_of(const Graph *g, ValId v, ValId p)
{
	return chain_param(g, v) == p;
}

/* The weight a node reads as one (a product's W, a gather's table, the
 * param an update writes, or the chain to it), or VAL_NONE. */
static ValId read_weight(const Graph *g, const Node *n, const bool *anchor)
{
	uint32_t lo = 0, hi = n->narg;
	switch (n->op) {
	case OP_MATMUL: hi = 2; break;
	case OP_SPMM: lo = 1; hi = 2; break;
	case OP_SDDMM: lo = 2; hi = 3; break;
	case OP_GATHER: case OP_ADAMW: case OP_ADAMW_MASKED: hi = 1; break;
	case OP_RESHAPE: case OP_PERMUTE: case OP_MUL: break;
	default: return VAL_NONE;
	}
	for (uint32_t i = lo; i < hi && i < n->narg; i++) {
		ValId p = chain_param(g, ir_operand(g, n, i));
		if (p != VAL_NONE && anchor[p])
			return p;
	}
	return VAL_NONE;
}

typedef struct Order {
	ValId first;  /* first reader, or the param itself */
	ValId p;
} Order;

static int order_cmp(const void *a, const void *b)
{
	const Order *x = a, *y = b;
	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	return x->p < y->p ? -1 : x->p > y->p;
}

/* The gradient of p and what it is summed and masked from: through adds,
 * mask products and reshapes to the products that make it. */
static void claim_grad(const Graph *g, ValId v, uint32_t u, uint32_t *unit_of, int depth)
{
	if (depth > 32 || unit_of[v] != UINT32_MAX)
		return;
	const Node *n = ir_node(g, v);
	if (ir_op[n->op].flags & OPF_SOURCE)
		return;
	unit_of[v] = u;
	if (n->op == OP_ADD || n->op == OP_RESHAPE)
		for (uint32_t i = 0; i < n->narg; i++)
			claim_grad(g, ir_operand(g, n, i), u, unit_of, depth + 1);
	else if (n->op == OP_MUL)
		for (uint32_t i = 0; i < 2; i++) {
			ValId x = ir_operand(g, n, i);
			if (ir_node(g, x)->op != OP_MASK)
				claim_grad(g, x, u, unit_of, depth + 1);
		}
}

static int unit_cmp(const void *a, const void *b)
{
	const Order *x = a, *y = b;
	return x->first < y->first ? -1 : x->first > y->first;
}

int place_units(const Graph *g, const Mesh *m, PlaceUnit **units_out, int *nunit_out,
		uint32_t **unit_of_out, Diag *d)
{
	uint32_t n = ir_nnode(g), n1 = n ? n : 1;
	*units_out = NULL;
	*nunit_out = 0;
	if (unit_of_out)
		*unit_of_out = NULL;
	bool *anchor = mem_calloc(n1, sizeof *anchor);
	uint32_t *unit_of = mem_alloc(n1 * sizeof *unit_of);
	uint32_t *anchor_unit = mem_alloc(n1 * sizeof *anchor_unit);
	Order *ord = mem_alloc(n1 * sizeof *ord);
	uint8_t *phase = mem_alloc(n1);
	bool *act = NULL;   /* per unit: a unit of activations */
	PlaceUnit *units = NULL;
	uint32_t *remap = NULL;
	Uses uses = {0};
	if (!anchor || !unit_of || !anchor_unit || !ord || !phase || ir_uses(g, &uses, d) ||
	    place_phases(g, phase, d))
		goto oom;
	int nunit = 0;
	for (ValId v = 0; v < n; v++) {
		const Node *x = ir_node(g, v);
		unit_of[v] = anchor_unit[v] = UINT32_MAX;
		if (x->op == OP_PARAM && x->shape.rank >= 2) {
			anchor[v] = true;
			ValId first = v;
			for (uint32_t k = uses.start[v]; k < uses.start[v + 1]; k++)
				if (uses.user[k] > v) {
					first = uses.user[k];
					break;
				}
			ord[nunit++] = (Order){first, v};
		}
	}
	qsort(ord, (size_t)nunit, sizeof *ord, order_cmp);
	/* at most one unit per node */
	units = mem_calloc(n1, sizeof *units);
	act = mem_calloc(n1, sizeof *act);
	if (!units || !act)
		goto oom;
	for (int u = 0; u < nunit; u++) {
		ValId p = ord[u].p;
		anchor_unit[p] = (uint32_t)u;
		unit_of[p] = (uint32_t)u;
		const Mask *mk = ir_find_mask(g, p);
		int64_t numel = ir_numel(&ir_node(g, p)->shape);
		units[u] = (PlaceUnit){.anchor = p, .weight = p, .is_weight = true, .density = 1,
				       .numel = numel};
		if (mk && mk->nkept >= 0 && numel > 0) {
			units[u].density = (double)mk->nkept / (double)numel;
			units[u].sparse = m ? units[u].density < m->sparse / m->dense
					    : units[u].density < 1;
		}
	}
	/* the weight's own: its mask, what reads it, its moments */
	for (ValId v = 0; v < n; v++) {
		const Node *x = ir_node(g, v);
		if (unit_of[v] != UINT32_MAX)
			continue;
		if (x->op == OP_MASK) {
			ValId p = ir_find_param(g, ir_str(g, x->name));
			if (p != VAL_NONE && anchor[p])
				unit_of[v] = anchor_unit[p];
			continue;
		}
		ValId p = read_weight(g, x, anchor);
		if (p == VAL_NONE)
			continue;
		unit_of[v] = anchor_unit[p];
		if (x->op == OP_ADAMW || x->op == OP_ADAMW_MASKED)
			for (uint32_t i = 2; i < 4; i++)
				unit_of[ir_operand(g, x, i)] = anchor_unit[p];
	}
	for (size_t i = 0; i < g->grad.len; i++) {
		const GradPair *gp = &VEC_AT(g->grad, GradPair, i);
		if (anchor[gp->param])
			claim_grad(g, gp->grad, anchor_unit[gp->param], unit_of, 0);
	}
	/* the rest: the unit of the largest operand (for a backward node, of
	 * its largest forward one); a forward product of activations none of
	 * which is in such a unit yet starts one; sources take the unit of
	 * their first reader; until nothing changes */
	for (int round = 0; round < 8; round++) {
		bool changed = false;
		for (ValId v = 0; v < n; v++) {
			const Node *x = ir_node(g, v);
			if (unit_of[v] != UINT32_MAX || (ir_op[x->op].flags & OPF_SOURCE))
				continue;
			bool fwd_only = false;
			for (uint32_t i = 0; phase[v] == 1 && i < x->narg; i++) {
				ValId o = ir_operand(g, x, i);
				fwd_only |= phase[o] == 0 && unit_of[o] != UINT32_MAX &&
					    !(ir_op[ir_node(g, o)->op].flags & OPF_SOURCE);
			}
			int64_t best = -1;
			bool from_act = false;
			for (uint32_t i = 0; i < x->narg; i++) {
				ValId o = ir_operand(g, x, i);
				int64_t b = ir_nbytes(g, o);
				if (unit_of[o] == UINT32_MAX || (fwd_only && phase[o] != 0))
					continue;
				from_act |= act[unit_of[o]];
				/* ties: the latest producer, which just ran (the
				 * residual stream moves on with the layers) */
				if (b >= best) {
					best = b;
					unit_of[v] = unit_of[o];
				}
			}
			if (x->op == OP_MATMUL && phase[v] == 0 && round == 0 && !from_act &&
			    unit_of[v] != UINT32_MAX) {
				uint32_t near = unit_of[v];
				units[nunit] = (PlaceUnit){.anchor = v, .weight = units[near].weight,
							   .density = 1};
				act[nunit] = true;
				unit_of[v] = (uint32_t)nunit++;
			}
			changed |= unit_of[v] != UINT32_MAX;
		}
		for (ValId v = n; v-- > 0;) {
			if (unit_of[v] != UINT32_MAX)
				continue;
			for (uint32_t k = uses.start[v]; k < uses.start[v + 1]; k++)
				if (unit_of[uses.user[k]] != UINT32_MAX) {
					unit_of[v] = unit_of[uses.user[k]];
					changed = true;
					break;
				}
		}
		if (!changed)
			break;
	}
	if (nunit == 0) {   /* no weights, no products: one unit holds everything */
		nunit = 1;
		units[0] = (PlaceUnit){.anchor = VAL_NONE, .weight = VAL_NONE, .density = 1};
	}
	/* anything still loose (nothing it touches has a unit): its neighbour's */
	for (ValId v = 0; v < n; v++)
		if (unit_of[v] == UINT32_MAX) {
			uint32_t u = 0;
			for (ValId w = v; w-- > 0;)
				if (unit_of[w] != UINT32_MAX) {
					u = unit_of[w];
					break;
				}
			unit_of[v] = u;
		}
	/* in step order: by the first node that is not a source */
	for (int u = 0; u < nunit; u++)
		ord[u] = (Order){UINT32_MAX, (ValId)u};
	for (ValId v = n; v-- > 0;)
		if (!(ir_op[ir_node(g, v)->op].flags & OPF_SOURCE) || ord[unit_of[v]].first == UINT32_MAX)
			ord[unit_of[v]].first = v;
	qsort(ord, (size_t)nunit, sizeof *ord, unit_cmp);
	remap = mem_alloc((size_t)nunit * sizeof *remap);
	PlaceUnit *sorted = mem_alloc((size_t)nunit * sizeof *sorted);
	if (!remap || !sorted) {
		mem_free(sorted);
		goto oom;
	}
	for (int u = 0; u < nunit; u++) {
		sorted[u] = units[ord[u].p];
		remap[ord[u].p] = (uint32_t)u;
	}
	for (ValId v = 0; v < n; v++)
		unit_of[v] = remap[unit_of[v]];
	mem_free(units);
	units = sorted;
	ir_uses_free(&uses);
	mem_free(anchor);
	mem_free(anchor_unit);
	mem_free(ord);
	mem_free(phase);
	mem_free(act);
	mem_free(remap);
	*units_out = units;
	*nunit_out = nunit;
	if (unit_of_out)
		*unit_of_out = unit_of;
	else
		mem_free(unit_of);
	return 0;
oom:
	ir_uses_free(&uses);
	mem_free(anchor);
	mem_free(unit_of);
	mem_free(anchor_unit);
	mem_free(ord);
	mem_free(phase);
	mem_free(act);
	mem_free(units);
	mem_free(remap);
	if (!d->nerror)
		diag_error(d, (SrcLoc){0}, "out of memory");
	return -1;
}

/* --- one node's cost --- */

/* flops per element of the elementwise ops (a rough count: a transcendental
 * is several multiply-adds) */
static double elem_flops(Op op)
{
	switch (op) {
	case OP_EXP: case OP_LOG: case OP_TANH: return 10;
	case OP_GELU: case OP_SILU: case OP_GELU_GRAD: case OP_SILU_GRAD: return 15;
	case OP_SQRT: case OP_RSQRT: case OP_DIV: return 4;
	case OP_SOFTMAX: case OP_SOFTMAX_GRAD: case OP_CROSS_ENTROPY:
	case OP_CROSS_ENTROPY_GRAD: return 5;
	case OP_ADAMW: case OP_ADAMW_MASKED: return 12;
	case OP_SUMSQ: return 2;
	case OP_RESHAPE: case OP_PERMUTE: case OP_SLICE: case OP_CONCAT: case OP_BROADCAST:
	case OP_CAST: case OP_GATHER: case OP_GATHER_GRAD: case OP_CACHE_WRITE: return 0;
	default: return 1;
	}
}

/* Bytes of v on the mesh: a tensor of a sparse unit's weight shape holds
 * the kept entries (the weight itself an index for each too). */
static double mesh_bytes(const Graph *g, ValId v, const PlaceUnit *u)
{
	const Node *n = ir_node(g, v);
	double b = (double)ir_nbytes(g, v);
	if (!u || !u->sparse || ir_numel(&n->shape) != u->numel)
		return b;
	if (n->op == OP_MASK)
		return 0;   /* the index is the mask */
	return b * u->density * (v == u->anchor ? 2 : 1);
}

void place_node_cost(const Graph *g, ValId v, const PlaceUnit *units, const uint32_t *unit_of,
		     NodeCost *c)
{
	const Node *n = ir_node(g, v);
	const PlaceUnit *u = &units[unit_of[v]];
	memset(c, 0, sizeof *c);
	double numel = (double)ir_numel(&n->shape);
	double out = mesh_bytes(g, v, u), in = 0;
	for (uint32_t i = 0; i < n->narg; i++)
		in += mesh_bytes(g, ir_operand(g, n, i), &units[unit_of[ir_operand(g, n, i)]]);
	unsigned fl = ir_op[n->op].flags;
	if (fl & OPF_SOURCE) {
		c->kind = PK_FREE;
		c->out_bytes = out;
		return;
	}
	if (fl & OPF_VIEW) {
		c->kind = PK_FREE;
		return;
	}
	c->kind = PK_LOCAL;
	c->out_bytes = out;
	c->bytes = in + out;
	/* in-place writers: the result is the operand's memory */
	if (n->op == OP_ADAMW || n->op == OP_ADAMW_MASKED || n->op == OP_CACHE_WRITE)
		c->out_bytes = 0;
	double scale = u->sparse && numel == (double)u->numel ? u->density : 1;
	c->flops = elem_flops((Op)n->op) * numel * scale;
	ValId a0 = n->narg ? ir_operand(g, n, 0) : VAL_NONE;
	const Node *an = a0 != VAL_NONE ? ir_node(g, a0) : NULL;
	switch (n->op) {
	case OP_SUMSQ:
		c->flops = 2 * (double)ir_numel(&an->shape) *
			   (u->sparse && ir_numel(&an->shape) == u->numel ? u->density : 1);
		break;
	case OP_GRAD_NORM:
		c->flops = in / 8;
		break;
	case OP_SUM: case OP_MEAN: case OP_MAX:
		c->flops = (double)ir_numel(&an->shape);
		if (n->axis != an->shape.rank - 1) {
			c->kind = PK_REDUCE;
			c->comm_a = out;
		}
		break;
	case OP_CROSS_ENTROPY:
		c->flops = 5 * (double)ir_numel(&an->shape);
		c->kind = PK_REDUCE;
		c->comm_a = 4;
		break;
	case OP_PERMUTE:
		c->kind = PK_SHUFFLE;
		c->comm_a = out;
		break;
	case OP_GATHER:
	case OP_GATHER_GRAD: {
		bool table = n->op == OP_GATHER_GRAD || (u->anchor != VAL_NONE &&
							 weight_of(g, a0, u->anchor));
		if (table) {
			c->kind = PK_GATHER;
			c->comm_a = n->op == OP_GATHER ? out
				    : mesh_bytes(g, ir_operand(g, n, 1), &units[unit_of[ir_operand(g, n, 1)]]);
		}
		break;
	}
	case OP_MATMUL: {
		ValId b0 = ir_operand(g, n, 1);
		const Node *bn = ir_node(g, b0);
		bool ta = n->flags & NF_TRANS_A, tb = n->flags & NF_TRANS_B;
		int64_t kc = ta ? an->shape.dim[an->shape.rank - 2] : an->shape.dim[an->shape.rank - 1];
		c->flops = 2 * numel * (double)kc;
		double abytes = mesh_bytes(g, a0, &units[unit_of[a0]]);
		double bbytes = mesh_bytes(g, b0, &units[unit_of[b0]]);
		bool wa = u->anchor != VAL_NONE && weight_of(g, a0, u->anchor);
		bool wb = u->anchor != VAL_NONE && weight_of(g, b0, u->anchor);
		if (wa || wb) {
			c->kind = tb ? PK_INPUT_GRAD : PK_FORWARD;
			c->comm_a = wb ? abytes : bbytes;
			c->comm_b = out;
			c->sparse = u->sparse;
		} else if (u->anchor != VAL_NONE && numel == (double)u->numel && ta) {
			c->kind = PK_WEIGHT_GRAD;
			c->comm_a = abytes;
			c->comm_b = bbytes;
			c->sparse = u->sparse;
		} else {
			c->kind = PK_MATMUL;
			int64_t m = n->shape.dim[n->shape.rank - 2], nn = n->shape.dim[n->shape.rank - 1];
			c->comm_a = bbytes;
			c->comm_b = numel / (double)(m * nn);   /* batch slices */
			(void)bn;
		}
		if (c->sparse)
			c->flops *= u->density;
		break;
	}
	case OP_SPMM: {
		/* at [G,I,B] -> [G,J,B]: per block (W*mask)^T at or (W*mask) at */
		int64_t rows = n->shape.dim[0] * n->shape.dim[2];
		c->kind = n->flags & NF_TRANS_B ? PK_INPUT_GRAD : PK_FORWARD;
		c->flops = 2 * (double)rows * (double)u->numel * (u->sparse ? u->density : 1);
		c->sparse = u->sparse;
		c->comm_a = mesh_bytes(g, a0, &units[unit_of[a0]]);
		c->comm_b = out;
		break;
	}
	case OP_SDDMM: {
		int64_t rows = an->shape.dim[0] * an->shape.dim[2];
		ValId b0 = ir_operand(g, n, 1);
		c->kind = PK_WEIGHT_GRAD;
		c->flops = 2 * (double)rows * (double)u->numel * (u->sparse ? u->density : 1);
		c->sparse = u->sparse;
		c->comm_a = mesh_bytes(g, a0, &units[unit_of[a0]]);
		c->comm_b = mesh_bytes(g, b0, &units[unit_of[b0]]);
		break;
	}
	default:
		break;
	}
}

double place_compute_time(const NodeCost *c, const Mesh *m, int64_t tiles)
{
	if (c->kind == PK_FREE || tiles < 1)
		return 0;
	double k = (double)tiles;
	double t = c->flops / (k * (c->sparse ? m->sparse : m->dense));
	if (m->local > 0 && c->bytes / (k * m->local) > t)
		t = c->bytes / (k * m->local);
	return t;
}

/* The bytes over each link of the rectangle's rows (h) and columns (v) that
 * the exchange between shards moves. */
static void exchange_bytes(const NodeCost *c, uint32_t rows, uint32_t cols, double *h, double *v)
{
	double r = rows, k = (double)rows * cols, mn = rows < cols ? rows : cols;
	*h = *v = 0;
	if (k <= 1)
		return;
	switch (c->kind) {
	case PK_FORWARD: *h = c->comm_a / r; *v = c->comm_b / cols; break;
	case PK_INPUT_GRAD: *v = c->comm_a / cols; *h = c->comm_b / r; break;
	case PK_WEIGHT_GRAD: *h = c->comm_a / r; *v = c->comm_b / cols; break;
	case PK_GATHER: *h = *v = c->comm_a / mn; break;
	case PK_SHUFFLE: *h = *v = c->comm_a / (2 * mn); break;
	case PK_REDUCE: *h = *v = c->comm_a; break;
	case PK_MATMUL:
		if (k > c->comm_b)
			*h = *v = c->comm_a / (c->comm_b > 1 ? c->comm_b : 1);
		break;
	default: break;
	}
	if (rows == 1)
		*v = 0;
	if (cols == 1)
		*h = 0;
}

double place_exchange_time(const NodeCost *c, const Mesh *m, uint32_t rows, uint32_t cols)
{
	double h, v;
	exchange_bytes(c, rows, cols, &h, &v);
	if (h == 0 && v == 0)
		return 0;
	return (h + v) / m->link + (double)(rows + cols - 2) * m->latency;
}

/* --- phases --- */

int place_phases(const Graph *g, uint8_t *phase, Diag *d)
{
	uint32_t n = ir_nnode(g);
	Uses uses;
	if (ir_uses(g, &uses, d))
		return -1;
	for (ValId v = 0; v < n; v++)
		phase[v] = 1;
	bool *fwd = mem_calloc(n ? n : 1, sizeof *fwd);
	if (!fwd) {
		ir_uses_free(&uses);
		return diag_error(d, (SrcLoc){0}, "out of memory");
	}
	for (size_t i = 0; i < g->out.len; i++)
		fwd[VEC_AT(g->out, Output, i).val] = true;
	if (g->loss != VAL_NONE)
		fwd[g->loss] = true;
	for (ValId v = n; v-- > 0;) {
		const Node *x = ir_node(g, v);
		if (!fwd[v])
			continue;
		for (uint32_t i = 0; i < x->narg; i++)
			fwd[ir_operand(g, x, i)] = true;
	}
	for (ValId v = 0; v < n; v++) {
		Op op = (Op)ir_node(g, v)->op;
		if (op == OP_SUMSQ || op == OP_GRAD_NORM || op == OP_ADAMW || op == OP_ADAMW_MASKED)
			phase[v] = 2;
		else if (fwd[v] || !g->grad.len)
			phase[v] = 0;
	}
	/* a source only the update reads (moments, the optimiser's scalars) */
	for (ValId v = 0; v < n; v++) {
		if (!(ir_op[ir_node(g, v)->op].flags & OPF_SOURCE) || fwd[v])
			continue;
		bool all = uses.start[v] < uses.start[v + 1];
		for (uint32_t k = uses.start[v]; k < uses.start[v + 1]; k++)
			all &= phase[uses.user[k]] == 2;
		if (all)
			phase[v] = 2;
	}
	mem_free(fwd);
	ir_uses_free(&uses);
	return 0;
}

void place_layer_name(const Graph *g, const PlaceUnit *u, char *buf, size_t n)
{
	if (u->weight == VAL_NONE) {
		snprintf(buf, n, "all");
		return;
	}
	const char *s = ir_str(g, ir_node(g, u->weight)->name);
	/* up to the first numeric component ("h.3"), else the first one */
	const char *p = s, *end = NULL;
	while (*p) {
		const char *q = strchr(p, '.');
		size_t len = q ? (size_t)(q - p) : strlen(p);
		if (len > 0 && strspn(p, "0123456789") >= len) {
			end = p + len;
			break;
		}
		if (!q)
			break;
		p = q + 1;
	}
	if (!end) {
		const char *q = strchr(s, '.');
		end = q ? q : s + strlen(s);
	}
	snprintf(buf, n, "%.*s", (int)(end - s), s);
}

void place_unit_name(const Graph *g, const PlaceUnit *u, char *buf, size_t n)
{
	if (u->is_weight) {
		snprintf(buf, n, "%s", ir_str(g, ir_node(g, u->anchor)->name));
	} else if (u->anchor != VAL_NONE) {
		char layer[64];
		place_layer_name(g, u, layer, sizeof layer);
		snprintf(buf, n, "%s activations %%%u", layer, u->anchor);
	} else {
		snprintf(buf, n, "(everything)");
	}
}

/* --- evaluation --- */

enum { ROUTE_MAX = 256 };

typedef struct Eval {
	const Graph *g;
	const Mesh *m;
	uint32_t rows, cols;
	double *load;         /* 4 per tile: out of it to the east, west, south, north */
	uint32_t *stamp;
	double *local;
	uint32_t now;
	double total;
} Eval;

static inline size_t tile_id(const Eval *e, uint32_t r, uint32_t c)
{
	return (size_t)r * e->cols + c;
}

/* Tile i of a rectangle, row-major. */
static void rect_tile(const Place *p, int64_t i, uint32_t *r, uint32_t *c)
{
	*r = p->row + (uint32_t)(i / p->cols);
	*c = p->col + (uint32_t)(i % p->cols);
}

static bool same_rect(const Place *a, const Place *b)
{
	return a->row == b->row && a->col == b->col && a->rows == b->rows && a->cols == b->cols;
}

/* Moves `bytes` from a's shards to b's (each of b's tiles gets all of them
 * when replicate); returns the transfer's time. */
static double route(Eval *e, const Place *a, const Place *b, double bytes, bool replicate)
{
	if (bytes <= 0 || same_rect(a, b))
		return 0;
	int64_t ka = (int64_t)a->rows * a->cols, kb = (int64_t)b->rows * b->cols;
	int64_t w = replicate ? kb : ka > kb ? ka : kb;
	double per = replicate ? bytes : bytes / (double)w;
	int64_t s = w < ROUTE_MAX ? w : ROUTE_MAX;
	double lmax = 0;
	uint32_t hmax = 0;
	e->now++;
	for (int64_t j = 0; j < s; j++) {
		int64_t jj = j * w / s;
		uint32_t r, c, r1, c1;
		rect_tile(a, jj * ka / w, &r, &c);
		rect_tile(b, jj * kb / w, &r1, &c1);
		uint32_t hops = 0;
		while (c != c1 || r != r1) {
			size_t l;
			if (c != c1) {
				l = tile_id(e, r, c) * 4 + (c1 > c ? 0 : 1);
				c = c1 > c ? c + 1 : c - 1;
			} else {
				l = tile_id(e, r, c) * 4 + (r1 > r ? 2 : 3);
				r = r1 > r ? r + 1 : r - 1;
			}
			if (e->stamp[l] != e->now) {
				e->stamp[l] = e->now;
				e->local[l] = 0;
			}
			e->local[l] += per;
			e->load[l] += per;
			if (e->local[l] > lmax)
				lmax = e->local[l];
			hops++;
		}
		if (hops > hmax)
			hmax = hops;
		e->total += per * hops * ((double)w / (double)s);
	}
	return lmax / e->m->link + hmax * e->m->latency;
}

/* The exchange between shards loads the rectangle's own links. */
static void exchange_load(Eval *e, const NodeCost *c, const Place *p)
{
	double h, v;
	exchange_bytes(c, p->rows, p->cols, &h, &v);
	if (h == 0 && v == 0)
		return;
	for (uint32_t r = p->row; r < p->row + p->rows; r++)
		for (uint32_t k = p->col; k < p->col + p->cols; k++) {
			size_t t = tile_id(e, r, k) * 4;
			if (k + 1 < p->col + p->cols)
				e->load[t + 0] += h;
			if (r + 1 < p->row + p->rows)
				e->load[t + 2] += v;
			e->total += h + v;
		}
}

/* An operand copied whole to every tile of its reader: smaller than the
 * result and broadcast over all its rows (a bias, a scalar). */
static bool replicated(const Graph *g, ValId o, const Node *reader)
{
	const Node *on = ir_node(g, o);
	if (!(ir_op[reader->op].flags & OPF_BINARY))
		return false;
	int64_t on_numel = ir_numel(&on->shape), numel = ir_numel(&reader->shape);
	if (on_numel >= numel)
		return false;
	int64_t last = on->shape.rank ? on->shape.dim[on->shape.rank - 1] : 1;
	return on_numel == last;
}

static int buf_cmp(const void *a, const void *b)
{
	const PlaceBuffer *x = a, *y = b;
	if (x->bytes != y->bytes)
		return x->bytes > y->bytes ? -1 : 1;
	return x->v < y->v ? -1 : x->v > y->v;
}

int place_evaluate(const Graph *g, const Mesh *m, PlaceStats *s, Vec *over, Diag *d)
{
	return place_evaluate_tiles(g, m, s, over, NULL, d);
}

int place_evaluate_tiles(const Graph *g, const Mesh *m, PlaceStats *s, Vec *over,
			 int64_t *peak_out, Diag *d)
{
	memset(s, 0, sizeof *s);
	uint32_t n = ir_nnode(g);
	size_t T = (size_t)g->mesh_rows * g->mesh_cols;
	if (!g->place.len)
		return diag_error(d, (SrcLoc){0}, "internal: the graph is not placed");
	PlaceUnit *units = NULL;
	int nunit = 0;
	uint32_t *unit_of = NULL;
	if (place_units(g, m, &units, &nunit, &unit_of, d))
		return -1;
	Eval e = {.g = g, .m = m, .rows = g->mesh_rows, .cols = g->mesh_cols};
	NodeCost *cost = mem_alloc((n ? n : 1) * sizeof *cost);
	ValId *root = mem_alloc((n ? n : 1) * sizeof *root);
	uint32_t *last = mem_alloc((n ? n : 1) * sizeof *last);
	double *share = mem_alloc((n ? n : 1) * sizeof *share);
	double *finish = mem_calloc(n ? n : 1, sizeof *finish);
	double *dur = mem_calloc(n ? n : 1, sizeof *dur);
	double *comp = mem_calloc(n ? n : 1, sizeof *comp);
	ValId *crit = mem_alloc((n ? n : 1) * sizeof *crit);
	double *crit_t = mem_calloc(n ? n : 1, sizeof *crit_t);
	double *ready_at = mem_calloc(n ? n : 1, sizeof *ready_at);
	uint8_t *phase = mem_alloc(n ? n : 1);
	int64_t *cur = mem_calloc(T, sizeof *cur), *peak = mem_calloc(T, sizeof *peak);
	uint32_t *peak_at = mem_calloc(T, sizeof *peak_at);
	double *free_at = mem_calloc(T, sizeof *free_at);
	ValId *last_on = mem_alloc(T * sizeof *last_on);
	bool *used = mem_calloc(T, sizeof *used);
	e.load = mem_calloc(4 * T, sizeof *e.load);
	e.stamp = mem_calloc(4 * T, sizeof *e.stamp);
	e.local = mem_calloc(4 * T, sizeof *e.local);
	Uses uses = {0};
	int rc = -1;
	if (!cost || !root || !last || !share || !finish || !dur || !comp || !crit || !crit_t ||
	    !ready_at || !phase || !cur || !peak || !peak_at || !free_at || !last_on || !used ||
	    !e.load || !e.stamp || !e.local) {
		diag_error(d, (SrcLoc){0}, "out of memory");
		goto done;
	}
	if (ir_uses(g, &uses, d) || place_phases(g, phase, d))
		goto done;
	for (size_t t = 0; t < T; t++)
		last_on[t] = VAL_NONE;

	/* buffers: a view or in-place update lives in its operand's */
	for (ValId v = 0; v < n; v++) {
		place_node_cost(g, v, units, unit_of, &cost[v]);
		root[v] = place_root(g, v, root);
		const Place *p = ir_place(g, v);
		share[v] = ceil(cost[v].out_bytes / ((double)p->rows * p->cols));
	}
	const uint32_t FOREVER = PLACE_FOREVER;
	place_lifetimes(g, &uses, root, last);
	bool has_update = false;
	for (ValId v = 0; v < n; v++)
		has_update |= phase[v] == 2;
	for (size_t i = 0; !has_update && i < g->grad.len; i++)
		last[root[VEC_AT(g->grad, GradPair, i).grad]] = FOREVER;

	/* memory: sources for the whole step, then node by node */
	for (int pass = 0; pass < 2; pass++)
		for (ValId v = 0; v < n; v++) {
			bool src = place_holds(ir_node(g, v));
			if (src != (pass == 0))
				continue;
			const Place *p = ir_place(g, v);
			for (uint32_t r = p->row; r < p->row + p->rows; r++)
				for (uint32_t c = p->col; c < p->col + p->cols; c++) {
					size_t t = tile_id(&e, r, c);
					used[t] |= cost[v].kind != PK_FREE || share[v] > 0;
					if (share[v] <= 0)
						continue;
					cur[t] += (int64_t)share[v];
					if (cur[t] > peak[t]) {
						peak[t] = cur[t];
						peak_at[t] = src ? 0 : v;
					}
				}
			if (src)
				continue;
			const Node *x = ir_node(g, v);
			for (uint32_t i = 0; i < x->narg; i++) {
				ValId b = root[ir_operand(g, x, i)];
				if (last[b] != v)
					continue;
				last[b] = FOREVER - 1;   /* freed once, even if read twice */
				const Place *q = ir_place(g, b);
				for (uint32_t r = q->row; r < q->row + q->rows; r++)
					for (uint32_t c = q->col; c < q->col + q->cols; c++)
						cur[tile_id(&e, r, c)] -= (int64_t)share[b];
			}
		}
	size_t worst = 0;
	for (size_t t = 0; t < T; t++) {
		s->tiles_used += used[t];
		s->mem_total += used[t] ? peak[t] : 0;
		if (peak[t] > peak[worst])
			worst = t;
	}
	if (peak_out)
		memcpy(peak_out, peak, T * sizeof *peak);
	s->mem_max = peak[worst];
	s->mem_max_row = (uint32_t)(worst / e.cols);
	s->mem_max_col = (uint32_t)(worst % e.cols);
	s->mem_max_at = peak_at[worst];

	/* the buffers on the fullest tile at its peak */
	if (over) {
		uint32_t at = peak_at[worst];
		/* lifetimes again: last[] was consumed above */
		place_lifetimes(g, &uses, root, last);
		for (ValId v = 0; v < n; v++) {
			const Place *p = ir_place(g, v);
			bool src = place_holds(ir_node(g, v));
			if (root[v] != v || share[v] <= 0 || (!src && (v > at || last[v] < at)))
				continue;
			if (s->mem_max_row < p->row || s->mem_max_row >= p->row + p->rows ||
			    s->mem_max_col < p->col || s->mem_max_col >= p->col + p->cols)
				continue;
			PlaceBuffer *b = vec_push(over, sizeof *b);
			if (!b) {
				diag_error(d, (SrcLoc){0}, "out of memory");
				goto done;
			}
			*b = (PlaceBuffer){v, (int64_t)share[v]};
		}
		qsort(over->data, over->len, sizeof(PlaceBuffer), buf_cmp);
	}

	/* the schedule */
	ValId end = VAL_NONE;
	for (ValId v = 0; v < n; v++) {
		const Node *x = ir_node(g, v);
		const Place *p = ir_place(g, v);
		crit[v] = VAL_NONE;
		double ready = 0;
		for (uint32_t i = 0; i < x->narg; i++) {
			ValId o = ir_operand(g, x, i);
			double t = route(&e, ir_place(g, o), p, cost[o].kind == PK_FREE &&
					 cost[o].out_bytes == 0 ? cost[root[o]].out_bytes :
					 cost[o].out_bytes, replicated(g, o, x));
			if (crit[v] == VAL_NONE || finish[o] + t > ready) {
				ready = finish[o] + t;
				crit[v] = o;
				crit_t[v] = t;
			}
		}
		ready_at[v] = ready;
		if (cost[v].kind == PK_FREE) {
			finish[v] = ready;
			continue;
		}
		double start = ready;
		ValId binder = VAL_NONE;
		for (uint32_t r = p->row; r < p->row + p->rows; r++)
			for (uint32_t c = p->col; c < p->col + p->cols; c++) {
				size_t t = tile_id(&e, r, c);
				if (free_at[t] > start) {
					start = free_at[t];
					binder = last_on[t];
				}
			}
		comp[v] = place_compute_time(&cost[v], m, (int64_t)p->rows * p->cols);
		dur[v] = comp[v] + place_exchange_time(&cost[v], m, p->rows, p->cols);
		exchange_load(&e, &cost[v], p);
		finish[v] = start + dur[v];
		if (binder != VAL_NONE) {
			crit[v] = binder;   /* waited for its tiles: the path goes on there */
			crit_t[v] = 0;
		}
		for (uint32_t r = p->row; r < p->row + p->rows; r++)
			for (uint32_t c = p->col; c < p->col + p->cols; c++) {
				size_t t = tile_id(&e, r, c);
				free_at[t] = finish[v];
				last_on[t] = v;
			}
		s->busy += dur[v] * (double)p->rows * p->cols;
		if (end == VAL_NONE || finish[v] > finish[end])
			end = v;
		if (finish[v] > s->phase[phase[v]])
			s->phase[phase[v]] = finish[v];
	}
	s->step = end == VAL_NONE ? 0 : finish[end];
	/* the critical path, walked back from the last finish */
	for (ValId v = end; v != VAL_NONE;) {
		s->crit_compute += comp[v];
		s->crit_exchange += dur[v] - comp[v];
		s->crit_transfer += crit_t[v];
		v = crit[v];
	}
	for (size_t l = 0; l < 4 * T; l++)
		if (e.load[l] > s->link_max) {
			s->link_max = e.load[l];
			s->link_row = (uint32_t)(l / 4 / e.cols);
			s->link_col = (uint32_t)(l / 4 % e.cols);
			s->link_dir = (int)(l % 4);
		}
	s->link_bytes = e.total;
	rc = 0;
done:
	ir_uses_free(&uses);
	mem_free(units);
	mem_free(unit_of);
	mem_free(cost);
	mem_free(root);
	mem_free(last);
	mem_free(share);
	mem_free(finish);
	mem_free(dur);
	mem_free(comp);
	mem_free(crit);
	mem_free(crit_t);
	mem_free(ready_at);
	mem_free(phase);
	mem_free(cur);
	mem_free(peak);
	mem_free(peak_at);
	mem_free(free_at);
	mem_free(last_on);
	mem_free(used);
	mem_free(e.load);
	mem_free(e.stamp);
	mem_free(e.local);
	return rc;
}

/* --- the report --- */

int place_report(FILE *f, const Graph *g, const Mesh *m, Diag *d)
{
	PlaceStats s;
	if (place_evaluate(g, m, &s, NULL, d))
		return -1;
	PlaceUnit *units;
	int nunit;
	uint32_t *unit_of;
	if (place_units(g, m, &units, &nunit, &unit_of, d))
		return -1;
	uint32_t n = ir_nnode(g);
	char a[48], b[48], c[48];
	mesh_print(f, m);
	bool training = g->grad.len > 0;
	fprintf(f, "\nplacement of the %s of %s: %u nodes in %d unit%s on %lld of %lld tiles (%.0f%%)\n",
		training ? "training step" : "forward pass", ir_str(g, g->model_name), n, nunit,
		nunit == 1 ? "" : "s", (long long)s.tiles_used, (long long)mesh_tiles(m),
		100.0 * (double)s.tiles_used / (double)mesh_tiles(m));
	mesh_fmt_bytes(a, sizeof a, (double)s.mem_max);
	mesh_fmt_bytes(b, sizeof b, (double)m->memory);
	mesh_fmt_bytes(c, sizeof c, s.tiles_used ? (double)s.mem_total / (double)s.tiles_used : 0);
	fprintf(f, "  memory per tile   max %s (%.0f%% of %s) on tile (%u,%u), mean %s\n", a,
		100.0 * (double)s.mem_max / (double)m->memory, b, s.mem_max_row, s.mem_max_col, c);
	mesh_fmt_time(a, sizeof a, s.step);
	fprintf(f, "  predicted step    %s", a);
	if (m->clock > 0)
		fprintf(f, " (%.3g cycles)", s.step * m->clock);
	fprintf(f, "\n");
	mesh_fmt_time(a, sizeof a, s.crit_compute);
	mesh_fmt_time(b, sizeof b, s.crit_exchange);
	mesh_fmt_time(c, sizeof c, s.crit_transfer);
	fprintf(f, "    critical path   compute %s, exchanges between shards %s, transfers between "
		"nodes %s\n", a, b, c);
	if (training) {
		mesh_fmt_time(a, sizeof a, s.phase[0]);
		mesh_fmt_time(b, sizeof b, s.phase[1]);
		mesh_fmt_time(c, sizeof c, s.phase[2]);
		fprintf(f, "    phases end at   forward %s, backward %s, update %s\n", a, b, c);
	}
	fprintf(f, "    utilisation     %.1f%% of the used tiles' time\n",
		s.step > 0 && s.tiles_used ? 100.0 * s.busy / (s.step * (double)s.tiles_used) : 0);
	static const char *const dir[4] = {"east", "west", "south", "north"};
	static const int dr[4] = {0, 0, 1, -1}, dc[4] = {1, -1, 0, 0};
	if (s.link_max > 0) {
		mesh_fmt_bytes(a, sizeof a, s.link_max);
		mesh_fmt_time(b, sizeof b, s.link_max / m->link);
		mesh_fmt_bytes(c, sizeof c, s.link_bytes);
		fprintf(f, "  busiest link      (%u,%u) -> (%d,%d) %s: %s, busy %s (%.0f%% of the "
			"step); all links %s x hops\n", s.link_row, s.link_col,
			(int)s.link_row + dr[s.link_dir], (int)s.link_col + dc[s.link_dir],
			dir[s.link_dir], a, b, s.step > 0 ? 100.0 * s.link_max / m->link / s.step : 0, c);
	} else {
		fprintf(f, "  busiest link      none: nothing crosses a link\n");
	}
	/* per unit: its rectangle, storage, memory and time */
	NodeCost nc;
	double *ut = mem_calloc((size_t)nunit, sizeof *ut), *umem = mem_calloc((size_t)nunit, sizeof *umem);
	Place *ur = mem_calloc((size_t)nunit, sizeof *ur);
	if (!ut || !umem || !ur) {
		mem_free(ut);
		mem_free(umem);
		mem_free(ur);
		mem_free(units);
		mem_free(unit_of);
		return diag_error(d, (SrcLoc){0}, "out of memory");
	}
	for (ValId v = 0; v < n; v++) {
		const Place *p = ir_place(g, v);
		uint32_t u = unit_of[v];
		place_node_cost(g, v, units, unit_of, &nc);
		ut[u] += place_compute_time(&nc, m, (int64_t)p->rows * p->cols) +
			 place_exchange_time(&nc, m, p->rows, p->cols);
		if (place_holds(ir_node(g, v)))
			umem[u] += nc.out_bytes;
		if ((int64_t)p->rows * p->cols > (int64_t)ur[u].rows * ur[u].cols)
			ur[u] = *p;
	}
	fprintf(f, "\nunits (a weight or a product of activations each, with what reads it; time: "
		"its nodes' compute and exchange):\n");
	fprintf(f, "  %-28s %-9s %-10s %7s  %-12s %-11s %s\n", "unit", "layer", "tiles", "shards",
		"storage", "persistent", "time");
	for (int u = 0; u < nunit; u++) {
		char layer[64], name[96], st[24];
		place_layer_name(g, &units[u], layer, sizeof layer);
		place_unit_name(g, &units[u], name, sizeof name);
		if (units[u].density < 1)
			snprintf(st, sizeof st, "%s %.0f%%", units[u].sparse ? "sparse" : "masked",
				 100 * units[u].density);
		else
			snprintf(st, sizeof st, units[u].is_weight ? "dense" : "-");
		char rect[32];
		snprintf(rect, sizeof rect, "(%u,%u)+%ux%u", ur[u].row, ur[u].col, ur[u].rows,
			 ur[u].cols);
		if (umem[u] > 0)
			mesh_fmt_bytes(a, sizeof a, umem[u] / ((double)ur[u].rows * ur[u].cols));
		else
			snprintf(a, sizeof a, "-");
		mesh_fmt_time(b, sizeof b, ut[u]);
		fprintf(f, "  %-28s %-9s %-10s %7u  %-12s %-11s %s\n", name, layer, rect,
			ur[u].rows * ur[u].cols, st, a, b);
	}
	fprintf(f, "  (storage: sparse = kept entries only, stored with an index, because the mesh's "
		"sparse rate wins at that density; masked = dense with the mask;\n   persistent: the "
		"weight, moments, mask and inputs on each of its tiles)\n");
	mem_free(ut);
	mem_free(umem);
	mem_free(ur);
	mem_free(units);
	mem_free(unit_of);
	return 0;
}
