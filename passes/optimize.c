/* optimize.c: append the optimiser update to a training graph.
 *
 * After autodiff, with PassOptions.training and PassOptions.optimizer and
 * a graph with gradients, the update of the whole step becomes graph nodes
 * (ops.h has their exact meaning, docs/training.md the algorithm):
 *
 *   %h  = input "optim.hparams" : f32[IR_HP_COUNT]    the scalars, written
 *                                                      by the trainer
 *   %s_i = sumsq %grad_i                               one per gradient
 *   %c  = grad_norm %h, %s_1, ..., %s_n                clip factor; the norm
 *                                                      goes to %h in place
 *   %m_i = state "<p>.exp_avg", %v_i = state "<p>.exp_avg_sq"
 *   adamw[_masked] %p, %grad_i, %m_i, %v_i, %h, %c [, mask "<p>"] [decay]
 *
 * in g->grad order, which is the order of the update phase the backend had
 * built by hand before, so the sums of squares and the updates happen in
 * the same order and the results are the same bits. Gradients are only
 * read: two params sharing one gradient value each get their own update,
 * and a shared gradient counts once per param in the norm, as in PyTorch.
 * Frozen params have no GradPair and so no moments and no update.
 *
 * Whether a param decays is the IR's one rule (ir_param_decays), or every
 * param with PassOptions.decay_all; it becomes the update's `decay` flag,
 * which the backend and the runtime read instead of deciding again. A
 * sparse param (one with a MASK node, passes/prune.c) gets adamw_masked, so
 * its pruned entries and their moments are exactly zero after every step.
 *
 * A no-op without gradients, without the optimiser, and for a graph that
 * already has its update (printed after this pass and read back). On
 * failure the appended nodes are popped, so the graph is as it was. */
#include "passes.h"

#include <stdio.h>
#include <string.h>

static bool has_update(const Graph *g)
{
	for (ValId v = 0; v < ir_nnode(g); v++)
		if (ir_op[ir_node(g, v)->op].flags & OPF_EFFECT)
			return true;
	return false;
}

/* The MASK node of param p, or VAL_NONE for a dense param. */
static ValId mask_of(const Graph *g, ValId p)
{
	for (ValId v = p + 1; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		if (n->op == OP_MASK && n->name == ir_node(g, p)->name)
			return v;
	}
	return VAL_NONE;
}

static ValId moment(Graph *g, ValId p, const char *suffix, Diag *d)
{
	char name[512];
	const Node *pn = ir_node(g, p);
	int k = snprintf(name, sizeof name, "%s.%s", ir_str(g, pn->name), suffix);
	if (k < 0 || (size_t)k >= sizeof name) {
		diag_error(d, pn->loc, "optimize: the name of param \"%s\" is too long",
			   ir_str(g, pn->name));
		return VAL_NONE;
	}
	if (ir_find_state(g, name) != VAL_NONE) {
		diag_error(d, pn->loc, "optimize: the model already has a state \"%s\"", name);
		return VAL_NONE;
	}
	Shape s = pn->shape;
	return ir_state(g, name, DT_F32, &s, pn->loc, d);
}

int pass_optimize(Graph *g, const PassOptions *o, Diag *d)
{
	if (!o->training || !o->optimizer || g->grad.len == 0 || has_update(g))
		return 0;
	size_t nnode = g->node.len, narg = g->arg.len, ngrad = g->grad.len;
	SrcLoc none = {0};
	ValId *part = mem_alloc(ngrad * sizeof *part);
	if (!part)
		return diag_error(d, none, "out of memory");
	if (ir_find_input(g, "optim.hparams") != VAL_NONE) {
		diag_error(d, none, "optimize: the model already has an input \"optim.hparams\"");
		goto fail;
	}
	Shape hs = {.rank = 1, .dim = {IR_HP_COUNT}};
	ValId hp = ir_input(g, "optim.hparams", DT_F32, &hs, none, d);
	if (hp == VAL_NONE)
		goto fail;
	for (size_t i = 0; i < ngrad; i++) {
		const GradPair *gp = &VEC_AT(g->grad, GradPair, i);
		if ((part[i] = ir_sumsq(g, gp->grad, ir_node(g, gp->param)->loc, d)) == VAL_NONE)
			goto fail;
	}
	ValId clip = ir_grad_norm(g, hp, part, (uint32_t)ngrad, none, d);
	if (clip == VAL_NONE)
		goto fail;
	for (size_t i = 0; i < ngrad; i++) {
		GradPair gp = VEC_AT(g->grad, GradPair, i);
		SrcLoc loc = ir_node(g, gp.param)->loc;
		ValId m = moment(g, gp.param, "exp_avg", d);
		ValId v = m == VAL_NONE ? VAL_NONE : moment(g, gp.param, "exp_avg_sq", d);
		if (v == VAL_NONE)
			goto fail;
		unsigned flags = o->decay_all || ir_param_decays(g, gp.param) ? NF_DECAY : 0;
		if (ir_adamw(g, gp.param, gp.grad, m, v, hp, clip, mask_of(g, gp.param), flags, loc,
			     d) == VAL_NONE)
			goto fail;
	}
	mem_free(part);
	return 0;
fail:
	g->node.len = nnode;
	g->arg.len = narg;
	mem_free(part);
	return -1;
}
