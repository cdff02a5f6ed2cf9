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
 * Identical kernels are emitted once. A kernel's code depends only on its
 * op, dtypes, attributes and the shapes of its output and operands, never
 * on memory offsets (operands arrive as pointers in buf[]), so node_key
 * serialises exactly those, and a node whose key was seen before reuses
 * that LLVM function (its entry names the first node's function). A GPT's
 * identical layers then cost one layer's optimisation and code generation.
 * be_nkernel counts the distinct kernels.
 *
 * Each entry also gets its phase: the forward phase ends with the last
 * kernel whose value the loss or an output needs; the backward kernels
 * autodiff appended follow; the update (passes/optimize.c: the kernels
 * only the in-place updates need) comes last.
 *
 * With a cache folder (be_Options.cache_dir), the module as emitted is
 * hashed (kernel_cache.c); when the cache holds its object, optimisation
 * and code generation are skipped and be_jit loads that object.
 *
 * Assumes: the graph passed plan_memory (every Node.offset is set). On
 * failure nothing is returned and everything built so far is released. */
#include "backend.h"

#include <assert.h>
#include <llvm-c/Analysis.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <stdint.h>
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
	[OP_GELU_GRAD] = be_emit_elementwise, [OP_SILU_GRAD] = be_emit_elementwise,
	[OP_RELU_GRAD] = be_emit_elementwise, [OP_SOFTMAX_GRAD] = be_emit_softmax_grad,
	[OP_CROSS_ENTROPY_GRAD] = be_emit_cross_entropy_grad,
	[OP_GATHER_GRAD] = be_emit_gather_grad, [OP_CAUSAL_MASK_GRAD] = be_emit_causal_mask_grad,
	[OP_MAX_GRAD] = be_emit_max_grad, [OP_BROADCAST] = be_emit_elementwise,
	[OP_STATE] = NULL, [OP_CACHE_WRITE] = be_emit_cache_write,
	[OP_IOTA_OFFSET] = be_emit_elementwise, [OP_CAUSAL_MASK_OFFSET] = be_emit_causal_mask_offset,
	[OP_MASK] = NULL,   /* filled by the runtime from rt_Slot.bits */
	[OP_SPMM] = be_emit_sparse, [OP_SDDMM] = be_emit_sparse,
	[OP_SUMSQ] = be_emit_optim, [OP_GRAD_NORM] = be_emit_optim,
	[OP_ADAMW] = be_emit_optim, [OP_ADAMW_MASKED] = be_emit_optim,
};
static_assert(OP_COUNT == 50, "emitter table: add the new op above");

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

/* ---- kernel deduplication ---- */

static int put(Vec *key, const void *p, size_t n)
{
	if (vec_reserve(key, key->len + n, 1))
		return -1;
	memcpy((char *)key->data + key->len, p, n);
	key->len += n;
	return 0;
}

static int put_i64(Vec *key, int64_t x)
{
	return put(key, &x, sizeof x);
}

static int put_shape(Vec *key, const Shape *s)
{
	int rc = put_i64(key, s->rank);
	for (int i = 0; i < s->rank; i++)
		rc |= put_i64(key, s->dim[i]);
	return rc;
}

/* Everything the emitters read: op, dtype, the flags and attributes the op
 * carries that its code depends on (ir_attrs_bytes with code_only, the
 * selection the structural hash uses less the names, so a field an op
 * ignores cannot split equal kernels), the output's shape, each
 * operand's dtype and shape, and for the sparse products the pattern's
 * hash. Field by field, so no padding gets in. */
static int node_key(const Graph *g, ValId v, Vec *key)
{
	const Node *n = ir_node(g, v);
	int rc = put_i64(key, n->op) | put_i64(key, n->dtype) |
		 put_i64(key, n->flags & ir_flag_mask((Op)n->op)) | put_shape(key, &n->shape) |
		 ir_attrs_bytes(g, n, true, key);
	rc |= put_i64(key, n->narg);
	for (uint32_t i = 0; i < n->narg; i++) {
		const Node *a = ir_node(g, ir_operand(g, n, i));
		rc |= put_i64(key, a->dtype) | put_shape(key, &a->shape);
	}
	if (n->op == OP_SPMM || n->op == OP_SDDMM) {   /* the code is the pattern's */
		const Mask *m = ir_find_mask(g, ir_operand(g, n, n->narg - 1));
		rc |= m ? put(key, &m->hash, sizeof m->hash) : 0;
	}
	return rc;
}

const be_KernelRec *be_kernel_find(be_Module *m, const void *key, size_t klen)
{
	Hash128 h = hash128(key, klen);
	for (size_t i = 0; i < m->kernel.len; i++) {
		const be_KernelRec *r = &VEC_AT(m->kernel, be_KernelRec, i);
		if (r->h.lo == h.lo && r->h.hi == h.hi && r->klen == klen && !memcmp(r->key, key, klen))
			return r;
	}
	return NULL;
}

int be_kernel_add(be_Module *m, const void *key, size_t klen, const char *fname,
		  const be_Kernel *k)
{
	uint8_t *copy = arena_alloc(&m->keys, klen ? klen : 1);
	be_KernelRec *r = copy ? vec_push(&m->kernel, sizeof *r) : NULL;
	if (!r)
		return -1;
	memcpy(copy, key, klen);
	r->h = hash128(key, klen);
	r->klen = (uint32_t)klen;
	r->key = copy;
	snprintf(r->fname, sizeof r->fname, "%s", fname);
	r->ntask = k->ntask < 1 ? 1 : k->ntask;
	r->flops = k->flops;
	return 0;
}

/* The phase of every value: forward if the loss or an output needs it,
 * backward if a gradient needs it, update if only the update (the nodes
 * that write in place, OPF_EFFECT) needs it. */
static uint8_t *value_phases(const Graph *g)
{
	uint32_t n = ir_nnode(g);
	uint8_t *ph = mem_alloc(n ? n : 1);
	bool *need = mem_calloc(n ? n : 1, sizeof *need);
	if (!ph || !need) {
		mem_free(ph);
		mem_free(need);
		return NULL;
	}
	memset(ph, RT_PHASE_COUNT, n);
	for (int pass = 0; pass < 3; pass++) {
		memset(need, 0, n * sizeof *need);
		if (pass == RT_PHASE_FORWARD) {
			for (size_t i = 0; i < g->out.len; i++)
				need[VEC_AT(g->out, Output, i).val] = true;
			if (g->loss != VAL_NONE)
				need[g->loss] = true;
		} else if (pass == RT_PHASE_BACKWARD) {
			for (size_t i = 0; i < g->grad.len; i++)
				need[VEC_AT(g->grad, GradPair, i).grad] = true;
		} else {
			for (ValId v = 0; v < n; v++)
				need[v] = (ir_op[ir_node(g, v)->op].flags & OPF_EFFECT) != 0;
		}
		for (ValId v = n; v-- > 0;) {
			const Node *nd = ir_node(g, v);
			if (!need[v])
				continue;
			if (ph[v] == RT_PHASE_COUNT)
				ph[v] = (uint8_t)pass;
			for (uint32_t i = 0; i < nd->narg; i++)
				need[ir_operand(g, nd, i)] = true;
		}
	}
	mem_free(need);
	return ph;
}

static int emit_all(be_Module *m, const Graph *g, Diag *d)
{
	Vec key = {0};
	uint8_t *ph = value_phases(g);
	size_t last_fwd = 0;   /* entries [0, last_fwd) are the forward phase */
	size_t first_upd = SIZE_MAX;   /* and [first_upd, ...) the update */
	if (!ph)
		return diag_error(d, noloc(), "out of memory");
	for (ValId v = 0; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		if (n->offset < 0) {
			diag_error(d, n->loc, "internal: %s node %u has no memory (run plan_memory "
				   "before the backend)", ir_op[n->op].name, v);
			goto fail;
		}
		if (!needs_kernel(g, v))
			continue;
		if (!emitter[n->op]) {
			diag_error(d, n->loc, "the backend has no kernel for %s", ir_op[n->op].name);
			goto fail;
		}
		be_Entry *e = vec_push(&m->entry, sizeof *e);
		key.len = 0;
		if (!e || node_key(g, v, &key))
			goto oom;
		e->v = v;
		be_kernel_name(g, v, e->name, sizeof e->name);
		const be_KernelRec *r = be_kernel_find(m, key.data, key.len);
		if (!r) {
			be_Kernel k = {0};
			be_EmitFn emit = emitter[n->op];
			if (n->op == OP_MATMUL && m->opt.matmul_ref)
				emit = be_emit_matmul_ref;
			if (emit(&m->c, g, v, &k, d))
				goto fail;
			if (be_kernel_add(m, key.data, key.len, e->name, &k))
				goto oom;
			r = &VEC_AT(m->kernel, be_KernelRec, m->kernel.len - 1);
		}
		snprintf(e->fname, sizeof e->fname, "%s", r->fname);
		e->ntask = r->ntask;
		e->flops = r->flops;
		if (ph[v] == RT_PHASE_FORWARD)
			last_fwd = m->entry.len;
		if (ph[v] == RT_PHASE_UPDATE && first_upd == SIZE_MAX)
			first_upd = m->entry.len - 1;
	}
	/* Without gradients every kernel is forward (an unused value included).
	 * The update comes after everything else, since optimize appends it; a
	 * graph where it does not cannot be split into phases. */
	for (size_t i = 0; i < m->entry.len; i++) {
		be_Entry *e = &VEC_AT(m->entry, be_Entry, i);
		e->phase = i < last_fwd || g->grad.len == 0 ? RT_PHASE_FORWARD
			   : i >= first_upd ? RT_PHASE_UPDATE : RT_PHASE_BACKWARD;
		if (i >= first_upd && ph[e->v] != RT_PHASE_UPDATE) {
			diag_error(d, ir_node(g, e->v)->loc, "internal: %s %%%u comes after the "
				   "optimiser's update has begun", ir_op[ir_node(g, e->v)->op].name,
				   e->v);
			goto fail;
		}
	}
	vec_free(&key);
	mem_free(ph);
	return 0;
oom:
	diag_error(d, noloc(), "out of memory");
fail:
	vec_free(&key);
	mem_free(ph);
	return -1;
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
	arena_init(&m->keys);
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
	if (emit_all(m, g, d))
		goto fail;
	if (o && o->cache_dir) {
		if (!(m->cache_dir = mem_strdup(o->cache_dir))) {
			diag_error(d, noloc(), "out of memory");
			goto fail;
		}
		if (be_cache_key(m, &m->cache_key, d))
			goto fail;
		m->obj = be_cache_load(m->cache_dir, m->cache_key);
		m->cache_hit = m->obj != NULL;
	}
	if (!m->cache_hit && optimise(m, d))
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
	vec_free(&m->kernel);
	arena_free(&m->keys);
	if (m->obj)
		LLVMDisposeMemoryBuffer(m->obj);
	mem_free(m->cache_dir);
	mem_free(m->cpu);
	mem_free(m->features);
	mem_free(m);
}

bool be_cache_hit(const be_Module *m)
{
	return m->cache_hit;
}

int be_nkernel(const be_Module *m)
{
	return (int)m->kernel.len;
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
