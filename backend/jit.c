/* jit.c: describe the program, compile the module in memory (ORC LLJIT)
 * and bind the description's kernel symbols to the JIT's code.
 *
 * The LLJIT gets its target machine from our own (the host CPU and, above
 * all, its features string), not from ORC's host detection, so JIT code
 * uses the same vector width the kernels were written for (AVX-512 on
 * this machine even though LLVM 14 names the CPU znver3). Kernels may call
 * the C library (memcpy, logf), so the process's symbols are visible to
 * the JIT.
 *
 * The program: one step per entry (graph kernels in node order, the
 * update's last), its argument offsets [output, operands...] taken from
 * plan_memory, and what its output is
 * (rt_Step.out_nbytes, out_dtype, out_masks for causal masks); entries of
 * identical kernels call the same function. phase_start follows the
 * entries' phases (compile.c). Slots: every param (with rt_Slot.decay) and
 * input, "<param>.mask" for every MASK (with its bits: rt_Slot.bits), each
 * named output, the loss ("loss"), then for training graphs
 * "<param>.grad" for every GradPair (rt_Slot.param = the param's slot; two
 * params sharing one gradient value get a slot each at the same offset),
 * and for a graph with the update (passes/optimize.c) its moment states
 * as RT_SLOT_OPTIM "<param>.exp_avg", "<param>.exp_avg_sq" and its
 * scalars input as RT_SLOT_HPARAMS "optim.hparams"; rt_Slot.decay is the
 * decay flag of the param's update. A value that is several of these (a param that is also
 * an output) gets one slot per name, all at the same offset. A graph
 * planned in checked mode (g->arena_guard) also gives the description its
 * guards: every byte range of the arena that no value's data covers, each
 * with its neighbours named as the IR prints them (rt_program_write does
 * not store them: only JIT programs are checked). The program
 * owns the LLJIT (code_owner) and frees it in code_release; the module is
 * consumed either way. */
#include "backend.h"

#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static_assert((int)DT_F32 == (int)RT_F32 && (int)DT_I32 == (int)RT_I32 &&
	      (int)DT_U8 == (int)RT_U8, "rt and ir dtypes share numbering");
static_assert((int)INIT_NONE == 0 && (int)INIT_NORMAL == 1 && (int)INIT_ZEROS == 2 &&
	      (int)INIT_ONES == 3, "rt_Slot.init follows InitKind");

static SrcLoc noloc(void)
{
	SrcLoc l = {0};
	return l;
}

/* Consumes err. */
static int llvm_error(Diag *d, const char *what, LLVMErrorRef err)
{
	char *msg = LLVMGetErrorMessage(err);
	diag_error(d, noloc(), "%s: %s", what, msg);
	LLVMDisposeErrorMessage(msg);
	return -1;
}

static void release_jit(void *owner)
{
	LLVMErrorRef err = LLVMOrcDisposeLLJIT(owner);
	if (err)   /* nothing to report to at teardown */
		LLVMConsumeError(err);
}

static int create_jit(be_Module *m, LLVMOrcLLJITRef *out, Diag *d)
{
	LLVMTargetMachineRef tm = be_target_machine(&m->opt, d);
	if (!tm)
		return -1;
	/* Both calls take ownership: of tm, then of the builder it went into. */
	LLVMOrcJITTargetMachineBuilderRef jtmb = LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm);
	LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
	LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, jtmb);
	LLVMErrorRef err = LLVMOrcCreateLLJIT(out, builder);   /* consumes builder */
	if (err)
		return llvm_error(d, "cannot create the JIT", err);
	LLVMOrcDefinitionGeneratorRef gen;
	err = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(*out),
								    NULL, NULL);
	if (err) {
		release_jit(*out);
		*out = NULL;
		return llvm_error(d, "cannot make process symbols visible to the JIT", err);
	}
	LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(*out), gen); /* JITDylib owns gen */
	return 0;
}

static int add_module(be_Module *m, LLVMOrcLLJITRef jit, Diag *d)
{
	LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(m->c.mod,
									  be_compat_tsc_for_jit(&m->cc));
	m->c.mod = NULL;   /* owned by tsm now */
	LLVMErrorRef err = LLVMOrcLLJITAddLLVMIRModule(jit, LLVMOrcLLJITGetMainJITDylib(jit), tsm);
	/* tsm belongs to the JIT from here on, even on error */
	return err ? llvm_error(d, "cannot add the module to the JIT", err) : 0;
}

/* The module as an object file: the cached one, or code generated now and
 * stored in the cache. The JIT takes the buffer. */
static int add_object(be_Module *m, LLVMOrcLLJITRef jit, Diag *d)
{
	LLVMMemoryBufferRef obj = m->obj;
	m->obj = NULL;
	if (!obj) {
		char *msg = NULL;
		if (LLVMTargetMachineEmitToMemoryBuffer(m->c.tm, m->c.mod, LLVMObjectFile, &msg, &obj)) {
			diag_error(d, noloc(), "LLVM code generation failed: %s", msg ? msg : "?");
			LLVMDisposeMessage(msg);
			return -1;
		}
		/* A cache that cannot be written costs the next compile, nothing more. */
		be_cache_store(m->cache_dir, m->cache_key, LLVMGetBufferStart(obj),
			       LLVMGetBufferSize(obj));
	}
	LLVMDisposeModule(m->c.mod);
	m->c.mod = NULL;
	LLVMErrorRef err = LLVMOrcLLJITAddObjectFile(jit, LLVMOrcLLJITGetMainJITDylib(jit), obj);
	return err ? llvm_error(d, "cannot add the cached object to the JIT", err) : 0;
}

static void shape_of(const Node *n, rt_Slot *s)
{
	s->dtype = n->dtype;
	s->rank = n->shape.rank;
	for (int i = 0; i < n->shape.rank; i++)
		s->dim[i] = n->shape.dim[i];
	s->offset = n->offset;
}

static int add_slot(rt_Program *p, const Graph *g, ValId v, const char *name, rt_SlotKind kind,
		    int32_t param, bool decay, Diag *d)
{
	const Node *n = ir_node(g, v);
	rt_Slot s;
	memset(&s, 0, sizeof s);
	s.name = (char *)name;
	s.kind = (uint8_t)kind;
	shape_of(n, &s);
	s.nbytes = ir_nbytes(g, v);
	s.param = param;
	if (kind == RT_SLOT_PARAM) {
		s.init = n->init;
		s.init_std = n->value;
		s.frozen = (n->flags & NF_FROZEN) != 0;
		s.decay = decay;
	}
	if (rt_program_add_slot(p, &s))
		return diag_error(d, n->loc, "out of memory");
	return 0;
}

static bool is_update(const Node *n)
{
	return n->op == OP_ADAMW || n->op == OP_ADAMW_MASKED;
}

/* upd[v]: the update node of param v, or that of which v is a moment
 * state or the scalars input (adamw operands 0, 2, 3, 4); VAL_NONE
 * elsewhere. The optimiser's states and input become RT_SLOT_OPTIM and
 * RT_SLOT_HPARAMS slots, not plain states and inputs. */
static void find_updates(const Graph *g, ValId *upd)
{
	for (ValId v = 0; v < ir_nnode(g); v++)
		upd[v] = VAL_NONE;
	for (ValId v = 0; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		if (!is_update(n))
			continue;
		static const uint32_t which[] = {0, 2, 3, 4};
		for (int i = 0; i < 4; i++)
			upd[ir_operand(g, n, which[i])] = v;
	}
}

/* "<param>.mask" for a MASK node: the f32 value in the arena, and the bits
 * the runtime writes there when the program is bound. The param comes
 * before its mask (prune.c puts the mask right after it). */
static int add_mask_slot(rt_Program *p, const Graph *g, ValId v, const int32_t *pslot, Diag *d)
{
	const Node *n = ir_node(g, v);
	const char *pname = ir_str(g, n->name);
	ValId pv = ir_find_param(g, pname);
	const Mask *m = pv == VAL_NONE ? NULL : ir_find_mask(g, pv);
	if (!m || !m->bits)
		return diag_error(d, n->loc, "the mask of '%s' is to be supplied (IR text carries "
				  "no mask bits)", pname);
	if (pslot[pv] < 0)
		return diag_error(d, n->loc, "internal: the mask of '%s' comes before its param",
				  pname);
	char name[512];
	snprintf(name, sizeof name, "%s.mask", pname);
	rt_Slot s;
	memset(&s, 0, sizeof s);
	s.name = name;
	s.kind = RT_SLOT_MASK;
	shape_of(n, &s);
	s.nbytes = ir_nbytes(g, v);
	s.param = pslot[pv];
	s.bits = m->bits;
	if (rt_program_add_slot(p, &s))
		return diag_error(d, n->loc, "out of memory");
	return 0;
}

/* The slot index of each param value (pslot[v]), filled while adding.
 * The order is the one the update phase had when the backend built it:
 * params, inputs, states, masks, outputs, the loss, gradients, then the
 * moments in update order and the scalars. */
static int add_slots(rt_Program *p, const Graph *g, Diag *d)
{
	int rc = -1;
	size_t nn = ir_nnode(g) ? ir_nnode(g) : 1;
	int32_t *pslot = mem_alloc(nn * sizeof *pslot);
	ValId *upd = mem_alloc(nn * sizeof *upd);
	if (!pslot || !upd) {
		diag_error(d, noloc(), "out of memory");
		goto out;
	}
	find_updates(g, upd);
	for (ValId v = 0; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		pslot[v] = -1;
		if (n->op == OP_PARAM) {
			/* decay is the update's flag: decided once, by passes/optimize.c */
			bool decay = upd[v] != VAL_NONE && (ir_node(g, upd[v])->flags & NF_DECAY);
			pslot[v] = (int32_t)p->slot.len;
			if (add_slot(p, g, v, ir_str(g, n->name), RT_SLOT_PARAM, 0, decay, d))
				goto out;
		}
		if (upd[v] != VAL_NONE && n->op != OP_PARAM)
			continue;   /* the optimiser's, below */
		if (n->op == OP_INPUT && add_slot(p, g, v, ir_str(g, n->name), RT_SLOT_INPUT, 0, false, d))
			goto out;
		if (n->op == OP_STATE && add_slot(p, g, v, ir_str(g, n->name), RT_SLOT_STATE, 0, false, d))
			goto out;
		if (n->op == OP_MASK && add_mask_slot(p, g, v, pslot, d))
			goto out;
	}
	for (size_t i = 0; i < g->out.len; i++) {
		const Output *o = &VEC_AT(g->out, Output, i);
		if (add_slot(p, g, o->val, ir_str(g, o->name), RT_SLOT_OUTPUT, 0, false, d))
			goto out;
	}
	if (g->loss != VAL_NONE && add_slot(p, g, g->loss, "loss", RT_SLOT_LOSS, 0, false, d))
		goto out;
	char name[512];
	for (size_t i = 0; i < g->grad.len; i++) {
		const GradPair *gp = &VEC_AT(g->grad, GradPair, i);
		snprintf(name, sizeof name, "%s.grad", ir_str(g, ir_node(g, gp->param)->name));
		if (add_slot(p, g, gp->grad, name, RT_SLOT_GRAD, pslot[gp->param], false, d))
			goto out;
	}
	ValId hp = VAL_NONE;
	for (ValId v = 0; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		if (!is_update(n))
			continue;
		int32_t ps = pslot[ir_operand(g, n, 0)];
		for (uint32_t i = 2; i <= 3; i++) {
			ValId s = ir_operand(g, n, i);
			if (add_slot(p, g, s, ir_str(g, ir_node(g, s)->name), RT_SLOT_OPTIM, ps, false, d))
				goto out;
		}
		hp = ir_operand(g, n, 4);
	}
	if (hp != VAL_NONE &&
	    add_slot(p, g, hp, ir_str(g, ir_node(g, hp)->name), RT_SLOT_HPARAMS, -1, false, d))
		goto out;
	rc = 0;
out:
	mem_free(pslot);
	mem_free(upd);
	return rc;
}

/* ---- checked mode: the guards ---- */

typedef struct Span {
	int64_t lo, hi;   /* a value's data, [lo, hi) in the arena */
	ValId v;
} Span;

static int span_cmp(const void *a, const void *b)
{
	const Span *x = a, *y = b;
	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return x->v < y->v ? -1 : x->v > y->v;
}

/* "%12 = matmul f32[4,16]", "%3 = param \"wte.weight\" f32[256,64]", with
 * ' (output "logits")' for an output. */
static void describe(const Graph *g, ValId v, char *buf, size_t n)
{
	const Node *nd = ir_node(g, v);
	char sh[128];
	ir_shape_str(&nd->shape, sh, sizeof sh);
	int k = ir_attrs(nd) & IRA_NAME
			? snprintf(buf, n, "%%%u = %s \"%s\" %s%s", v, ir_op[nd->op].name,
				   ir_str(g, nd->name), ir_dtype_name[nd->dtype], sh)
			: snprintf(buf, n, "%%%u = %s %s%s", v, ir_op[nd->op].name,
				   ir_dtype_name[nd->dtype], sh);
	for (size_t i = 0; i < g->out.len && k > 0 && (size_t)k < n; i++) {
		const Output *o = &VEC_AT(g->out, Output, i);
		if (o->val == v)
			k += snprintf(buf + k, n - (size_t)k, " (output \"%s\")", ir_str(g, o->name));
	}
}

/* The complement of the union of every value's [offset, offset + nbytes)
 * in [0, arena_size): plan_memory's guards and the alignment slack after
 * each tensor. A view shares its root's range; the root (lowest id) names
 * it. */
static int add_guards(rt_Program *p, const Graph *g, Diag *d)
{
	uint32_t n = ir_nnode(g), ns = 0;
	Span *s = mem_alloc((n ? n : 1) * sizeof *s);
	if (!s)
		return diag_error(d, noloc(), "out of memory");
	for (ValId v = 0; v < n; v++) {
		int64_t nb = ir_nbytes(g, v);
		if (nb > 0)
			s[ns++] = (Span){ir_node(g, v)->offset, ir_node(g, v)->offset + nb, v};
	}
	qsort(s, ns, sizeof *s, span_cmp);
	char after[256], before[256];
	int64_t end = 0;
	ValId owner = VAL_NONE;
	int rc = 0;
	for (uint32_t i = 0; i <= ns && !rc; i++) {
		int64_t lo = i < ns ? s[i].lo : g->arena_size;
		if (lo > end) {
			if (owner != VAL_NONE)
				describe(g, owner, after, sizeof after);
			if (i < ns)
				describe(g, s[i].v, before, sizeof before);
			rc = rt_program_add_guard(p, end, lo - end, owner != VAL_NONE ? after : NULL,
						  i < ns ? before : NULL);
		}
		if (i < ns && (s[i].hi > end || (s[i].hi == end && s[i].v < owner))) {
			end = s[i].hi;
			owner = s[i].v;
		}
	}
	mem_free(s);
	return rc ? diag_error(d, noloc(), "out of memory") : 0;
}

/* The output may hold -inf by design: masks, and constants that are. */
static bool masks(const Node *n)
{
	return n->op == OP_CAUSAL_MASK || n->op == OP_CAUSAL_MASK_OFFSET ||
	       (n->op == OP_CONST && n->dtype == DT_F32 && isinf(n->value));
}

static int add_steps(rt_Program *p, const be_Module *m, const Graph *g, Diag *d)
{
	uint32_t count[RT_PHASE_COUNT] = {0};
	Vec argv = {0};   /* int64_t: one step's operand offsets */
	int rc = -1;
	for (size_t i = 0; i < m->entry.len; i++) {
		const be_Entry *e = &VEC_AT(m->entry, be_Entry, i);
		const Node *n = ir_node(g, e->v);
		/* grad_norm reads one sumsq per gradient, however many there are */
		if (n->narg > 64 && n->op != OP_GRAD_NORM) {
			diag_error(d, n->loc, "%s has %u operands; the backend takes at most 64",
				   ir_op[n->op].name, n->narg);
			goto out;
		}
		if (vec_reserve(&argv, 1 + (size_t)n->narg, sizeof(int64_t))) {
			diag_error(d, noloc(), "out of memory");
			goto out;
		}
		int64_t *argoff = argv.data;
		argoff[0] = n->offset;
		for (uint32_t a = 0; a < n->narg; a++)
			argoff[1 + a] = ir_node(g, ir_operand(g, n, a))->offset;
		uint32_t narg = 1 + n->narg;
		/* f64 partial sums are not a runtime dtype: size unknown to it */
		int64_t out_nbytes = n->dtype == DT_F64 ? 0 : ir_nbytes(g, e->v);
		uint8_t out_dtype = n->dtype == DT_F64 ? RT_F32 : n->dtype;
		bool out_masks = masks(n);
		if (rt_program_add_symbol_step(p, e->fname, e->ntask, argoff, narg, e->name, e->flops)) {
			diag_error(d, noloc(), "out of memory");
			goto out;
		}
		rt_Step *st = &VEC_AT(p->step, rt_Step, p->step.len - 1);
		st->out_nbytes = out_nbytes;
		st->out_dtype = out_dtype;
		st->out_masks = out_masks;
		count[e->phase]++;
	}
	/* compile.c orders the entries by phase */
	p->phase_start[0] = 0;
	for (int ph = 0; ph < RT_PHASE_COUNT; ph++)
		p->phase_start[ph + 1] = p->phase_start[ph] + count[ph];
	rc = 0;
out:
	vec_free(&argv);
	return rc;
}

int be_describe(const be_Module *m, const Graph *g, rt_Program **out, Diag *d)
{
	*out = NULL;
	rt_Program *p = rt_program_create();
	if (!p)
		return diag_error(d, noloc(), "out of memory");
	p->arena_size = g->arena_size;   /* the whole step's (plan_memory) */
	if (add_steps(p, m, g, d) || add_slots(p, g, d) ||
	    (g->arena_guard && add_guards(p, g, d))) {
		rt_program_destroy(p);
		return -1;
	}
	*out = p;
	return 0;
}

static rt_KernelFn jit_lookup(void *jit, const char *symbol, uint32_t index, Diag *d)
{
	(void)index;
	LLVMOrcExecutorAddress addr = 0;
	LLVMErrorRef err = LLVMOrcLLJITLookup(jit, &addr, symbol);
	if (err) {
		llvm_error(d, "JIT compilation failed", err);
		return NULL;
	}
	return (rt_KernelFn)(uintptr_t)addr;
}

int be_jit(be_Module *m, const Graph *g, rt_Program **out, Diag *d)
{
	*out = NULL;
	if (!m->c.mod)
		return diag_error(d, noloc(), "the module was already handed to the JIT");
	LLVMOrcLLJITRef jit = NULL;
	rt_Program *p = NULL;
	if (be_describe(m, g, &p, d))
		return -1;
	if (create_jit(m, &jit, d))
		goto fail;
	if (m->cache_dir ? add_object(m, jit, d) : add_module(m, jit, d))
		goto fail;
	if (rt_program_bind(p, jit_lookup, jit, d))
		goto fail;
	p->code_owner = jit;
	p->code_release = release_jit;
	*out = p;
	return 0;
fail:
	rt_program_destroy(p);   /* before the JIT: it has no code_owner yet */
	if (jit)
		release_jit(jit);
	return -1;
}

int be_build_program(const Graph *g, const be_Options *o, rt_Program **out, Diag *d)
{
	be_Module *m;
	*out = NULL;
	if (be_compile(g, o, &m, d))
		return -1;
	int rc = be_jit(m, g, out, d);
	be_module_destroy(m);
	return rc;
}
