/* test_describe.c: one program format for the JIT and for objects.
 *
 * On a small GPT (forward with the loss, and the training step with its
 * phases and moments; dense and 75% sparse, so mask slots are in it):
 *   - be_describe gives the same description, byte for byte, as the
 *     program be_jit binds (steps, symbols, slots, phases, masks);
 *   - that description, written to bytes and read back, bound to the
 *     JIT's addresses by symbol, runs to the same logits and loss bit for
 *     bit as the JIT's own program;
 *   - the kernels a description names are the module's distinct kernels.
 * The object file itself (be_aot_object) is checked end to end, linked
 * into an app, by tests/e2e/run_embed_cli.sh. */
#include "../check.h"

#include <string.h>

#include "backend/backend.h"
#include "frontend/fe.h"
#include "passes/passes.h"
#include "runtime/rt.h"

#define MODEL_PATH MSW_SOURCE_DIR "/models/gpt.msw"

static Graph *compile(fe_Session *s, bool train, double sparsity)
{
	static const fe_Define defs[] = {{"ctx", "16"}, {"d", "32"}, {"heads", "2"}, {"layers", "1"}};
	fe_Options fo = {.def = defs, .ndef = 4};
	PruneOptions pr;
	pass_prune_defaults(&pr);
	pr.sparsity = sparsity > 0 ? sparsity : -1;   /* -1: the model's (dense) */
	/* the suite's fixed rates, so the cost model picks sparse kernels */
	static HostRates rates;
	CHECK(rates_read(MSW_SOURCE_DIR "/tests/fixtures/rates/fixed.txt", NULL, &rates) == 0);
	PassOptions po = {.verify = true, .alignment = RT_ALIGN, .keep_loss = true,
			  .training = train, .optimizer = train, .prune = &pr,
			  .sparse_format = SPF_AUTO, .rates = &rates};
	Graph *g = NULL;
	Diag d;
	diag_init(&d);
	if (fe_compile_file(s, MODEL_PATH, &fo, &g, &d) || pass_run_pipeline(g, &po, NULL, &d)) {
		CHECK_MSG(0, "compiling: %s", diag_text(&d));
		ir_graph_destroy(g);
		g = NULL;
	}
	diag_free(&d);
	return g;
}

/* Binds kernel `index` of a description read back to the address the
 * JIT's program gave its symbol. */
static rt_KernelFn from_jit(void *user, const char *symbol, uint32_t index, Diag *d)
{
	const rt_Program *jit = user;
	(void)index;
	(void)d;
	for (size_t i = 0; i < jit->step.len; i++) {
		const rt_Step *st = &VEC_AT(jit->step, rt_Step, i);
		if (!strcmp(VEC_AT(jit->kernel, char *, st->kernel), symbol))
			return st->fn;
	}
	return NULL;
}

/* Same tokens, same weights (seed 3), then forward: the loss and logits. */
static void run(const rt_Program *p, rt_Pool *pool, float *loss, float *logits, size_t n)
{
	Diag d;
	diag_init(&d);
	rt_Exec *e;
	CHECK(rt_exec_create(p, pool, &e, &d) == 0);
	if (!e)
		return;
	CHECK(rt_init_params(e, 3) == 0);
	rt_Tensor tok, tgt, lo, lg;
	CHECK(rt_exec_tensor(e, "tokens", &tok) == 0 && rt_exec_tensor(e, "targets", &tgt) == 0);
	for (int64_t i = 0; i < rt_numel(&tok); i++) {
		((int32_t *)tok.data)[i] = (int32_t)(i * 37 % 256);
		((int32_t *)tgt.data)[i] = (int32_t)(i * 91 % 256);
	}
	rt_exec_run_phase(e, RT_PHASE_FORWARD);
	CHECK(rt_exec_tensor(e, "loss", &lo) == 0 && rt_exec_tensor(e, "logits", &lg) == 0);
	*loss = *(float *)lo.data;
	CHECK((size_t)rt_nbytes(&lg) == n);
	memcpy(logits, lg.data, n);
	rt_exec_destroy(e);
	diag_free(&d);
}

static void check_one(fe_Session *s, bool train, double sparsity)
{
	Graph *g = compile(s, train, sparsity);
	if (!g)
		return;
	Diag d;
	diag_init(&d);
	be_Module *m = NULL;
	rt_Program *desc = NULL, *jit = NULL, *back = NULL;
	uint8_t *b1 = NULL, *b2 = NULL;
	size_t n1 = 0, n2 = 0;
	CHECK(be_compile(g, NULL, &m, &d) == 0);
	CHECK(m && be_describe(m, g, &desc, &d) == 0);
	CHECK(desc && desc->kernel.len == (size_t)be_nkernel(m));
	CHECK(desc && !rt_program_bound(desc));
	CHECK(m && be_jit(m, g, &jit, &d) == 0);
	if (!desc || !jit) {
		fprintf(stderr, "%s", diag_text(&d));
		goto out;
	}
	CHECK(rt_program_write(desc, &b1, &n1, &d) == 0);
	CHECK(rt_program_write(jit, &b2, &n2, &d) == 0);
	CHECK_MSG(n1 == n2 && !memcmp(b1, b2, n1), "be_describe and be_jit differ (train %d)", train);
	CHECK(rt_program_read("desc", b1, n1, &back, &d) == 0);
	CHECK(back && rt_program_bind(back, from_jit, jit, &d) == 0);
	CHECK(!train || (back && back->phase_start[RT_PHASE_COUNT] == back->step.len &&
			 back->phase_start[RT_PHASE_UPDATE] > back->phase_start[RT_PHASE_BACKWARD]));
	bool masked = false;
	for (size_t i = 0; back && i < back->slot.len; i++)
		masked |= VEC_AT(back->slot, rt_Slot, i).kind == RT_SLOT_MASK;
	CHECK_MSG(masked == (sparsity > 0), "train %d sparsity %g", train, sparsity);
	if (back) {
		const rt_Slot *lg = rt_program_find(jit, "logits");
		size_t n = (size_t)lg->nbytes;
		float *x = mem_alloc(n), *y = mem_alloc(n), l1 = 0, l2 = 1;
		rt_Pool *pool = rt_pool_create(2);
		run(jit, pool, &l1, x, n);
		run(back, pool, &l2, y, n);
		CHECK_MSG(!memcmp(&l1, &l2, sizeof l1) && !memcmp(x, y, n),
			  "loss %.9g vs %.9g (train %d, sparsity %g)", l1, l2, train, sparsity);
		rt_pool_destroy(pool);
		mem_free(x);
		mem_free(y);
	}
out:
	diag_free(&d);
	mem_free(b1);
	mem_free(b2);
	rt_program_destroy(back);
	rt_program_destroy(desc);
	rt_program_destroy(jit);
	be_module_destroy(m);
	ir_graph_destroy(g);
}

static void test_formats(void)
{
	fe_Session *s = fe_session_create();
	check_one(s, false, 0);
	check_one(s, false, 0.75);
	check_one(s, true, 0.75);
	fe_session_destroy(s);
}

static void test_targets(void)
{
	const char *cpu, *feat;
	CHECK(be_target_named("native", &cpu, &feat) == 0 && !cpu && !feat);
	CHECK(be_target_named("x86-64-v3", &cpu, &feat) == 0 && !strcmp(cpu, "x86-64-v3"));
	uint64_t v3 = be_cpu_features(feat);
	CHECK(v3 & (uint64_t)1 << RT_CPU_AVX2 && v3 & (uint64_t)1 << RT_CPU_FMA);
	CHECK(!(v3 & (uint64_t)1 << RT_CPU_AVX512F));
	CHECK(be_target_named("x86-64-v4", &cpu, &feat) == 0);
	CHECK(be_cpu_features(feat) & (uint64_t)1 << RT_CPU_AVX512VL);
	CHECK(be_target_named("pentium", &cpu, &feat) == -1);
	/* "+avx512fp16" is not "+avx512f"; "-avx2" is not "+avx2" */
	CHECK(be_cpu_features("+avx512fp16,-avx2,+sse4.2") == (uint64_t)1 << RT_CPU_SSE42);
}

int main(void)
{
	RUN(test_formats);
	RUN(test_targets);
	return check_report();
}
