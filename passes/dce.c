/* dce.c: drop the nodes whose values reach no output.
 *
 * A node is live if an output reads it, directly or through other nodes;
 * when training or asked to keep the loss (o->keep_loss, for evaluation),
 * the loss counts as an output too. Otherwise the loss is dropped unless an
 * output also needs it, and g->loss becomes
 * VAL_NONE so it never names a removed node. Gradients (g->grad, built by
 * autodiff) are roots like the loss when training; outside training the
 * backward part is of no use, so the gradient list is emptied and its nodes
 * die unless an output reads them.
 *
 * Parameters are always kept, even unread ones: a checkpoint written from
 * the graph must hold every parameter the model declares, so a model
 * trained with its loss can be saved and reloaded by an inference graph
 * (and the other way round) without missing tensors. Unread inputs are
 * dropped like any other dead node; binding a value to an input that no
 * longer exists is the runtime's to report.
 *
 * A STATE and the CACHE_WRITEs into it live or die like any value: the
 * writes matter only to later runs through the outputs that read the
 * cache, so when no output depends on a cache, its writes go too.
 *
 * When training, the update (optimize.c: the nodes that write params and
 * moments in place, OPF_EFFECT) is a root too: nothing reads it, and it is
 * what the step is for. Outside training it dies with the gradients.
 *
 * Masks (Graph.mask) stay with their params, which always live, and so do
 * MASK nodes, even when sparse_lower left nothing reading them: the
 * optimizer's masked AdamW and the checkpoint writer read their slots.
 *
 * The dead nodes are removed by one rewrite (ir/rewrite.c), which keeps
 * the survivors in order, renumbers them densely and keeps outputs, loss,
 * gradients and masks consistent; on failure (out of memory) the graph is
 * unchanged. Assumes topological order (ir_verify). */
#include "passes.h"


/* live[v] for every node, walking from the last node back to the first so
 * each node is decided before its operands are. */
static void mark_live(const Graph *g, const PassOptions *o, bool *live)
{
	for (size_t i = 0; i < g->out.len; i++)
		live[VEC_AT(g->out, Output, i).val] = true;
	if ((o->training || o->keep_loss) && g->loss != VAL_NONE)
		live[g->loss] = true;
	if (o->training)
		for (size_t i = 0; i < g->grad.len; i++)
			live[VEC_AT(g->grad, GradPair, i).grad] = true;
	for (ValId v = ir_nnode(g); v-- > 0;) {
		const Node *n = ir_node(g, v);
		if (n->op == OP_PARAM || n->op == OP_MASK ||
		    (o->training && (ir_op[n->op].flags & OPF_EFFECT)))
			live[v] = true;
		if (!live[v])
			continue;
		for (uint32_t i = 0; i < n->narg; i++)
			live[ir_operand(g, n, i)] = true;
	}
}

int pass_dce(Graph *g, const PassOptions *o, Diag *d)
{
	uint32_t n = ir_nnode(g);
	bool *live = mem_calloc(n ? n : 1, sizeof *live);
	if (!live)
		return diag_error(d, (SrcLoc){0}, "out of memory");
	for (size_t i = 0; i < g->out.len; i++)
		if (VEC_AT(g->out, Output, i).val >= n) {
			diag_error(d, (SrcLoc){0}, "internal: output %zu is not a value", i);
			goto fail;
		}
	if (g->loss != VAL_NONE && g->loss >= n) {
		diag_error(d, (SrcLoc){0}, "internal: the loss is not a value");
		goto fail;
	}
	for (size_t i = 0; i < g->grad.len; i++) {
		const GradPair *gp = &VEC_AT(g->grad, GradPair, i);
		if (gp->grad >= n || gp->param >= n) {
			diag_error(d, (SrcLoc){0}, "internal: gradient %zu is not a value", i);
			goto fail;
		}
	}
	for (ValId v = 0; v < n; v++) {
		const Node *nd = ir_node(g, v);
		for (uint32_t i = 0; i < nd->narg; i++)
			if ((uint64_t)nd->arg + i >= g->arg.len || ir_operand(g, nd, i) >= v) {
				diag_error(d, nd->loc, "internal: %%%u is not in topological order", v);
				goto fail;
			}
	}
	mark_live(g, o, live);
	Rewrite rw;
	if (ir_rw_begin(g, &rw, d))
		goto fail;
	for (ValId v = 0; v < n; v++)
		if (!live[v])
			ir_rw_remove(&rw, v);
	/* The loss and the gradients go with their nodes; put them back if the
	 * commit fails, so the graph is unchanged. */
	ValId loss = g->loss;
	size_t ngrad = g->grad.len;
	if (g->loss != VAL_NONE && !live[g->loss])
		g->loss = VAL_NONE;
	if (!o->training)
		g->grad.len = 0;
	if (ir_rw_commit(&rw, d)) {
		g->loss = loss;
		g->grad.len = ngrad;
		goto fail;
	}
	mem_free(live);
	return 0;
fail:
	mem_free(live);
	return -1;
}
