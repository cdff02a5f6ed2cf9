/* compile.c: graph to optimised LLVM module, and the module as text.
 *
 * be_compile walks the nodes in order and asks each op's emitter (a table
 * indexed by Op, so a new op that nobody handles fails to compile) for one
 * kernel named k<node>_<op>, e.g. k12_matmul. Sources have no kernel: the
 * caller fills inputs and params, and a reshape aliases its operand's
 * memory (plan_memory gives it the same offset; if not, it gets a copy).
 * The finished module is verified and then optimised by the new pass
 * manager ("default<O3>") for the target machine, so the loop and SLP
 * vectorisers see the real vector width.
 *
 * Assumes: the graph passed plan_memory (every Node.offset is set). On
 * failure nothing is returned and everything built so far is released. */
#include "backend.h"

#include <assert.h>
#include <llvm-c/Analysis.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <stdio.h>
#include <string.h>

static const be_EmitFn emitter[OP_COUNT] = {
	[OP_INPUT] = NULL, [OP_PARAM] = NULL,
	[OP_CONST] = be_emit_elementwise, [OP_IOTA] = be_emit_elementwise,
	[OP_NEG] = be_emit_elementwise, [OP_EXP] = be_emit_elementwise,
	[OP_LOG] = be_emit_elementwise, [OP_TANH] = be_emit_elementwise,
	[OP_SQRT] = be_emit_elementwise, [OP_RSQRT] = be_emit_elementwise,
	[OP_GELU] = be_emit_elementwise, [OP_RELU] = be_emit_elementwise,
	[OP_SILU] = be_emit_elementwise, [OP_CAST] = be_emit_elementwise,
	[OP_ADD] = be_emit_elementwise, [OP_SUB] = be_emit_elementwise,
	[OP_MUL] = be_emit_elementwise, [OP_DIV] = be_emit_elementwise,
	[OP_SUM] = be_emit_reduce, [OP_MEAN] = be_emit_reduce, [OP_MAX] = be_emit_reduce,
	[OP_MATMUL] = be_emit_matmul,
	[OP_RESHAPE] = be_emit_copy, /* only when not aliased, see below */
	[OP_PERMUTE] = be_emit_permute, [OP_SLICE] = be_emit_slice,
	[OP_CONCAT] = be_emit_concat, [OP_GATHER] = be_emit_gather,
	[OP_CAUSAL_MASK] = be_emit_causal_mask, [OP_SOFTMAX] = be_emit_softmax,
	[OP_CROSS_ENTROPY] = be_emit_cross_entropy,
	[OP_STATE] = NULL, [OP_CACHE_WRITE] = be_emit_cache_write,
	[OP_IOTA_OFFSET] = be_emit_elementwise, [OP_CAUSAL_MASK_OFFSET] = be_emit_causal_mask_offset,
};
/* The backward kernels (gelu_grad ... broadcast) have no emitter yet: emit_all
 * reports "the backend has no kernel for ..." until they do. */
static_assert(OP_COUNT == 43, "emitter table: add the new op above");

static SrcLoc noloc(void)
{
	SrcLoc l = {0};
	return l;
}

void be_kernel_name(const Graph *g, ValId v, char *buf, size_t n)
{
	snprintf(buf, n, "k%u_%s", v, ir_op[ir_node(g, v)->op].name);
}

static int needs_kernel(const Graph *g, ValId v)
{
	const Node *n = ir_node(g, v);
	if (ir_op[n->op].flags & OPF_SOURCE && n->op != OP_CONST && n->op != OP_IOTA)
		return 0;
	if (n->op == OP_RESHAPE)
		return n->offset != ir_node(g, ir_operand(g, n, 0))->offset;
	return 1;
}

static int emit_all(be_Module *m, const Graph *g, Diag *d)
{
	for (ValId v = 0; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		if (n->offset < 0)
			return diag_error(d, n->loc, "internal: %s node %u has no memory (run plan_memory "
					  "before the backend)", ir_op[n->op].name, v);
		if (!needs_kernel(g, v))
			continue;
		be_Kernel k = {0};
		if (!emitter[n->op])
			return diag_error(d, n->loc, "the backend has no kernel for %s", ir_op[n->op].name);
		be_EmitFn emit = emitter[n->op];
		if (n->op == OP_MATMUL && m->opt.matmul_ref)
			emit = be_emit_matmul_ref;
		if (emit(&m->c, g, v, &k, d))
			return -1;
		be_Entry *e = vec_push(&m->entry, sizeof *e);
		if (!e)
			return diag_error(d, n->loc, "out of memory");
		e->v = v;
		e->ntask = k.ntask < 1 ? 1 : k.ntask;
		e->flops = k.flops;
		be_kernel_name(g, v, e->name, sizeof e->name);
	}
	return 0;
}

static int optimise(be_Module *m, Diag *d)
{
	char *msg = NULL;
	if (LLVMVerifyModule(m->c.mod, LLVMReturnStatusAction, &msg)) {
		diag_error(d, noloc(), "internal: the backend built invalid LLVM IR: %s", msg);
		LLVMDisposeMessage(msg);
		return -1;
	}
	LLVMDisposeMessage(msg);
	static const char *const pipeline[] = {"default<O0>", "default<O1>", "default<O2>",
					       "default<O3>"};
	int level = m->opt.opt_level < 0 ? 0 : m->opt.opt_level > 3 ? 3 : m->opt.opt_level;
	LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
	LLVMPassBuilderOptionsSetLoopVectorization(po, level >= 2);
	LLVMPassBuilderOptionsSetSLPVectorization(po, level >= 2);
	LLVMPassBuilderOptionsSetLoopUnrolling(po, level >= 2);
	LLVMErrorRef err = LLVMRunPasses(m->c.mod, pipeline[level], m->c.tm, po);
	LLVMDisposePassBuilderOptions(po);
	if (err) {
		char *e = LLVMGetErrorMessage(err);
		diag_error(d, noloc(), "LLVM optimisation failed: %s", e);
		LLVMDisposeErrorMessage(e);
		return -1;
	}
	return 0;
}

int be_compile(const Graph *g, const be_Options *o, be_Module **out, Diag *d)
{
	*out = NULL;
	be_Module *m = mem_calloc(1, sizeof *m);
	if (!m)
		return diag_error(d, noloc(), "out of memory");
	m->opt.opt_level = o ? o->opt_level : 3;
	m->opt.matmul_ref = o && o->matmul_ref;
	if (o && ((o->cpu && !(m->cpu = mem_strdup(o->cpu))) ||
		  (o->features && !(m->features = mem_strdup(o->features))))) {
		diag_error(d, noloc(), "out of memory");
		goto fail;
	}
	m->opt.cpu = m->cpu;
	m->opt.features = m->features;
	if (be_compat_context_create(&m->cc)) {
		diag_error(d, noloc(), "cannot create an LLVM context");
		goto fail;
	}
	if (be_ctx_init(&m->c, m->cc.ctx, &m->opt, d))
		goto fail;
	if (emit_all(m, g, d) || optimise(m, d))
		goto fail;
	*out = m;
	return 0;
fail:
	be_module_destroy(m);
	return -1;
}

void be_module_destroy(be_Module *m)
{
	if (!m)
		return;
	be_ctx_dispose(&m->c);              /* the module before its context */
	be_compat_context_dispose(&m->cc);
	vec_free(&m->entry);
	mem_free(m->cpu);
	mem_free(m->features);
	mem_free(m);
}

int be_nkernel(const be_Module *m)
{
	return (int)m->entry.len;
}

static char *copy_text(const char *s, size_t n, Diag *d)
{
	char *t = mem_alloc(n + 1);
	if (!t) {
		diag_error(d, noloc(), "out of memory");
		return NULL;
	}
	memcpy(t, s, n);
	t[n] = 0;
	return t;
}

/* Code generation rewrites the IR it runs on (CodeGenPrepare), so the
 * assembly comes from a clone and the module stays fit for the JIT. */
static char *emit_asm(be_Module *m, Diag *d)
{
	LLVMModuleRef clone = LLVMCloneModule(m->c.mod);
	LLVMMemoryBufferRef mb = NULL;
	char *err = NULL, *text = NULL;
	if (LLVMTargetMachineEmitToMemoryBuffer(m->c.tm, clone, LLVMAssemblyFile, &err, &mb)) {
		diag_error(d, noloc(), "LLVM code generation failed: %s", err ? err : "?");
		LLVMDisposeMessage(err);
	} else {
		text = copy_text(LLVMGetBufferStart(mb), LLVMGetBufferSize(mb), d);
		LLVMDisposeMemoryBuffer(mb);
	}
	LLVMDisposeModule(clone);
	return text;
}

char *be_emit_text(be_Module *m, be_TextKind kind, Diag *d)
{
	if (!m->c.mod) {
		diag_error(d, noloc(), "the module was already handed to the JIT");
		return NULL;
	}
	if (kind == BE_TEXT_ASM)
		return emit_asm(m, d);
	char *s = LLVMPrintModuleToString(m->c.mod);
	char *t = copy_text(s, strlen(s), d);
	LLVMDisposeMessage(s);
	return t;
}
