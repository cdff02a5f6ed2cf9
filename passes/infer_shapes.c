/* infer_shapes.c: recompute every node's dtype and shape from its operands.
 *
 * Run after parsing printed IR or after a pass rewrote nodes: each node's
 * shape rule (ir_infer_node) runs in topological order, so a changed shape
 * flows to every reader, and attributes are normalised (negative axes and
 * slice bounds). Errors come from the rule itself and point at the node's
 * .msw line.
 *
 * The rules run on a copy of the node array (a shallow Graph that shares
 * the operand list and strings, which the rules only read); the graph takes
 * the copy only when every node succeeded, so on error it is unchanged. */
#include "passes.h"

#include <string.h>

int pass_infer_shapes(Graph *g, const PassOptions *o, Diag *d)
{
	size_t n = g->node.len;
	Graph view = *g;
	view.node = (Vec){0};
	if (n && vec_reserve(&view.node, n, sizeof(Node)))
		return diag_error(d, (SrcLoc){0}, "out of memory");
	if (n)
		memcpy(view.node.data, g->node.data, n * sizeof(Node));
	view.node.len = n;
	for (ValId v = 0; v < n; v++) {
		Node *nd = ir_node(&view, v);
		/* The rule checks operands exist; order is this pass's assumption. */
		for (uint32_t i = 0; i < nd->narg && (uint64_t)nd->arg + i < g->arg.len; i++)
			if (ir_operand(g, nd, i) >= v) {
				diag_error(d, nd->loc, "internal: operand %u of %%%u (%s) is not "
					   "defined before it", i, v, ir_op[nd->op < OP_COUNT ?
					   nd->op : 0].name);
				goto fail;
			}
		if (ir_infer_node(&view, nd, d))
			goto fail;
	}
	vec_free(&g->node);
	g->node = view.node;
	return 0;
fail:
	vec_free(&view.node);
	return -1;
}
