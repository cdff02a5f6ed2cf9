/* emit_scatter.c: gather_grad, the deterministic scatter-add.
 *
 * gather_grad(idx[...], dy[..., D]) -> [V, D] is zeros, then row idx[i] +=
 * dy[i, :] for every index position i in order. Repeated indices make rows
 * collide, so splitting the index list over threads would need atomics
 * whose order (and so whose rounding) changes from run to run. Instead the
 * kernel splits the *columns*: a task owns a block of CB columns of every
 * row, zeroes it, then walks all N indices in order and adds the block's
 * part of each dy row. Every output element therefore sees exactly the same
 * additions in the same order whatever the split, and tasks write disjoint
 * columns. The cost is that each task reads all indices (N, small next to
 * N * D), and the work stays balanced however skewed the indices are, which
 * a split over rows would not be.
 *
 * An index outside [0, V) cannot go anywhere; the interpreter rejects it,
 * and here it turns the whole gradient into NaN (each task fills its block
 * after the scan, and all tasks see the same indices), so the grad norm and
 * rt_exec_first_nonfinite point at it instead of a silent wrong update. */
#include "backend.h"

#include <math.h>

typedef struct Scatter {
	LLVMValueRef out, dy;
	LLVMValueRef obase, ibase;   /* element offsets of the rows being added */
	double fill;
	int add;                     /* 1: out += dy; 0: out = fill */
} Scatter;

static void cols_body(be_Ctx *c, Scatter *s, LLVMValueRef j, int n)
{
	LLVMValueRef at = LLVMBuildNSWAdd(c->b, s->obase, j, "");
	LLVMValueRef y;
	if (s->add) {
		LLVMValueRef g = be_load(c, c->t_f32, s->dy, LLVMBuildNSWAdd(c->b, s->ibase, j, ""), n);
		y = LLVMBuildFAdd(c->b, be_load(c, c->t_f32, s->out, at, n), g, "");
	} else {
		y = be_splat(c, be_f32c(c, s->fill), n);
	}
	be_store(c, y, c->t_f32, s->out, at, n);
}

/* Columns [j0, j1): whole vectors, then single lanes. */
static void cols(be_Ctx *c, Scatter *s, LLVMValueRef j0, LLVMValueRef j1)
{
	int L = c->vec_lanes;
	LLVMValueRef len = LLVMBuildNSWSub(c->b, j1, j0, "");
	LLVMValueRef jv = LLVMBuildNSWAdd(c->b, j0, LLVMBuildAnd(c->b, len, be_i64(c, -(int64_t)L), ""), "");
	be_Loop lv, ls;
	LLVMValueRef j = be_loop_begin(c, &lv, j0, jv, L);
	cols_body(c, s, j, L);
	be_loop_end(c, &lv);
	be_loop_scalar(c, &lv);
	j = be_loop_begin(c, &ls, jv, j1, 1);
	cols_body(c, s, j, 1);
	be_loop_end(c, &ls);
	be_loop_scalar(c, &ls);
}

/* out[r, j0..j1) = value for every row r < V. */
static void fill_block(be_Ctx *c, Scatter *s, int64_t V, int64_t D, LLVMValueRef j0,
		       LLVMValueRef j1, double value)
{
	be_Loop lr;
	LLVMValueRef r = be_loop_begin(c, &lr, be_i64(c, 0), be_i64(c, V), 1);
	s->obase = LLVMBuildNSWMul(c->b, r, be_i64(c, D), "");
	s->add = 0;
	s->fill = value;
	cols(c, s, j0, j1);
	be_loop_end(c, &lr);
	be_loop_scalar(c, &lr);
}

int be_emit_gather_grad(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d)
{
	const Node *nd = ir_node(g, v), *ix = ir_node(g, ir_operand(g, nd, 0));
	int64_t V = nd->shape.dim[0], D = nd->shape.dim[1], N = ir_numel(&ix->shape);
	/* Four vectors of columns per block: short enough for several tasks at
	 * GPT widths (D = 256: four), long enough to keep each added row a
	 * few full vector operations. */
	int64_t CB = 4 * (int64_t)c->vec_lanes;
	int64_t nblk = D ? (D + CB - 1) / CB : 0, per;
	char name[64];
	be_kernel_name(g, v, name, sizeof name);
	LLVMValueRef buf, lo, hi, u0, u1;
	k->fn = be_kernel_begin(c, name, &buf, &lo, &hi);
	k->flops = (double)(V + N) * (double)D;
	be_split(nblk, (double)(V + N) * (double)(D < CB ? D : CB), &per, &k->ntask);
	Scatter s = {0};
	s.out = be_kernel_arg(c, buf, 0, c->t_f32);
	LLVMValueRef idx = be_kernel_arg(c, buf, 1, c->t_i32);
	s.dy = be_kernel_arg(c, buf, 2, c->t_f32);
	be_task_units(c, lo, hi, per, nblk, &u0, &u1);
	be_Loop lb, li;
	LLVMValueRef blk = be_loop_begin(c, &lb, u0, u1, 1);
	LLVMValueRef j0 = LLVMBuildNSWMul(c->b, blk, be_i64(c, CB), "j0");
	LLVMValueRef j1 = be_min64(c, be_i64(c, D), LLVMBuildNSWAdd(c->b, j0, be_i64(c, CB), ""));
	fill_block(c, &s, V, D, j0, j1, 0.0);
	LLVMValueRef bad = be_local(c, c->t_i1, LLVMConstInt(c->t_i1, 0, 0));
	LLVMValueRef i = be_loop_begin(c, &li, be_i64(c, 0), be_i64(c, N), 1);
	LLVMValueRef t = LLVMBuildSExt(c->b, be_load(c, c->t_i32, idx, i, 1), c->t_i64, "");
	LLVMValueRef ok = LLVMBuildICmp(c->b, LLVMIntULT, t, be_i64(c, V), "");
	be_set(c, bad, LLVMBuildOr(c->b, be_get(c, c->t_i1, bad), LLVMBuildNot(c->b, ok, ""), ""));
	LLVMBasicBlockRef skip = be_if_begin(c, ok);
	s.obase = LLVMBuildNSWMul(c->b, t, be_i64(c, D), "");
	s.ibase = LLVMBuildNSWMul(c->b, i, be_i64(c, D), "");
	s.add = 1;
	cols(c, &s, j0, j1);
	be_if_end(c, skip);
	be_loop_end(c, &li);
	be_loop_scalar(c, &li);
	LLVMBasicBlockRef fine = be_if_begin(c, be_get(c, c->t_i1, bad));
	fill_block(c, &s, V, D, j0, j1, NAN);
	be_if_end(c, fine);
	be_loop_end(c, &lb);
	be_loop_scalar(c, &lb);
	LLVMBuildRetVoid(c->b);
	return 0;
}
