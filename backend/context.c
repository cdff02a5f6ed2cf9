/* context.c: the target machine and one code-generation session (be_Ctx).
 *
 * The target is the host unless be_Options names a CPU or features. The
 * host's features string matters more than its CPU name: LLVM 14 calls a
 * Zen 4 `znver3`, a CPU without AVX-512 by name, so only the features
 * (+avx512f, ...) from LLVMGetHostCPUFeatures let the code use zmm
 * registers. The vector width every emitter uses (vec_lanes) follows from
 * the same features string, so the IR we build and the machine it runs on
 * agree. The module gets the target's triple and data layout before any
 * kernel is added, so the optimiser sees the real target.
 *
 * Guarantees: be_ctx_init either fills every field or fails with a Diag and
 * leaves nothing to release; be_ctx_dispose releases what the session still
 * owns (the module is skipped once someone took it and nulled c->mod). */
#include "backend.h"
#include "llvm_compat.h"

#include <llvm-c/Target.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_status;

/* LLVM's target registry is global and initialising it twice is harmless
 * but not thread-safe, hence once. */
static void init_llvm(void)
{
	init_status = LLVMInitializeNativeTarget() || LLVMInitializeNativeAsmPrinter() ? -1 : 0;
}

static SrcLoc noloc(void)
{
	SrcLoc l = {0};
	return l;
}

/* "+avx512f" as a whole entry of the comma-separated features string, so
 * "+avx512fp16" alone does not count as "+avx512f". */
static int has_feature(const char *features, const char *f)
{
	size_t n = strlen(f);
	for (const char *p = features; p && (p = strstr(p, f)); p += n)
		if ((p == features || p[-1] == ',') && (p[n] == ',' || p[n] == 0))
			return 1;
	return 0;
}

LLVMTargetMachineRef be_target_machine(const be_Options *o, Diag *d)
{
	pthread_once(&init_once, init_llvm);
	if (init_status) {
		diag_error(d, noloc(), "LLVM has no native target for this machine");
		return NULL;
	}
	char *triple = LLVMGetDefaultTargetTriple();
	char *cpu = o && o->cpu ? NULL : LLVMGetHostCPUName();
	char *feat = o && o->features ? NULL : LLVMGetHostCPUFeatures();
	char *err = NULL;
	LLVMTargetRef target;
	LLVMTargetMachineRef tm = NULL;
	if (LLVMGetTargetFromTriple(triple, &target, &err)) {
		diag_error(d, noloc(), "no LLVM target for %s: %s", triple, err);
		goto done;
	}
	int level = o ? o->opt_level : 3;
	LLVMCodeGenOptLevel cg = level <= 0 ? LLVMCodeGenLevelNone :
				 level == 1 ? LLVMCodeGenLevelLess :
				 level == 2 ? LLVMCodeGenLevelDefault : LLVMCodeGenLevelAggressive;
	bool pic = o && o->pic;
	tm = LLVMCreateTargetMachine(target, triple, cpu ? cpu : o->cpu,
				     feat ? feat : o->features, cg,
				     pic ? LLVMRelocPIC : LLVMRelocDefault,
				     pic ? LLVMCodeModelDefault : LLVMCodeModelJITDefault);
	if (!tm)
		diag_error(d, noloc(), "cannot create an LLVM target machine for %s", triple);
done:
	if (err)
		LLVMDisposeMessage(err);
	LLVMDisposeMessage(triple);
	if (cpu)
		LLVMDisposeMessage(cpu);
	if (feat)
		LLVMDisposeMessage(feat);
	return tm;
}

/* The x86-64 psABI levels in LLVM's feature names, each adding to the
 * one before (x86-64 itself: sse, sse2, cmov, cx8, fxsr, mmx, x87). */
#define X86_V1 "+sse,+sse2,+cmov,+cx8,+fxsr,+mmx,+x87"
#define X86_V2 X86_V1 ",+cx16,+sahf,+popcnt,+sse3,+sse4.1,+sse4.2,+ssse3"
#define X86_V3 X86_V2 ",+avx,+avx2,+bmi,+bmi2,+f16c,+fma,+lzcnt,+movbe,+xsave"
#define X86_V4 X86_V3 ",+avx512f,+avx512bw,+avx512cd,+avx512dq,+avx512vl"

int be_target_named(const char *name, const char **cpu, const char **features)
{
	static const char *const level[][2] = {
		{"x86-64-v2", X86_V2}, {"x86-64-v3", X86_V3}, {"x86-64-v4", X86_V4},
	};
	*cpu = *features = NULL;
	if (!strcmp(name, "native"))
		return 0;
	for (size_t i = 0; i < sizeof level / sizeof level[0]; i++)
		if (!strcmp(name, level[i][0])) {
			*cpu = level[i][0];
			*features = level[i][1];
			return 0;
		}
	return -1;
}

const char *be_host_cpu_name(void)
{
	static char name[64];
	char *cpu = LLVMGetHostCPUName();
	snprintf(name, sizeof name, "%s", cpu);
	LLVMDisposeMessage(cpu);
	return name;
}

static void init_types(be_Ctx *c)
{
	c->t_void = LLVMVoidTypeInContext(c->ctx);
	c->t_i1 = LLVMInt1TypeInContext(c->ctx);
	c->t_i8 = LLVMInt8TypeInContext(c->ctx);
	c->t_i32 = LLVMInt32TypeInContext(c->ctx);
	c->t_i64 = LLVMInt64TypeInContext(c->ctx);
	c->t_f32 = LLVMFloatTypeInContext(c->ctx);
	c->t_ptr = LLVMPointerType(c->t_i8, 0);
	LLVMTypeRef params[3] = {LLVMPointerType(c->t_ptr, 0), c->t_i64, c->t_i64};
	c->t_kernel = LLVMFunctionType(c->t_void, params, 3, 0);
}

/* Emitters size their blocks from the L1 data cache of the CPU the code
 * runs on; for another target than the host that is unknown, and 32 KiB is
 * the smallest of current x86 cores. */
static int64_t target_l1d(const be_Options *o)
{
	enum { FALLBACK = 32 * 1024 };
	int64_t size[3];
	if (o && (o->cpu || o->features))
		return FALLBACK;
	host_cache_sizes(size);
	return size[0] >= 16 * 1024 ? size[0] : FALLBACK;
}

int be_ctx_init(be_Ctx *c, LLVMContextRef ctx, const be_Options *o, Diag *d)
{
	memset(c, 0, sizeof *c);
	c->ctx = ctx;
	c->tm = be_target_machine(o, d);
	if (!c->tm)
		return -1;
	char *feat = LLVMGetTargetMachineFeatureString(c->tm);
	c->vec_lanes = has_feature(feat, "+avx512f") ? 16 : has_feature(feat, "+avx2") ? 8 : 4;
	c->has_fma = has_feature(feat, "+fma");
	LLVMDisposeMessage(feat);
	c->l1d = target_l1d(o);

	c->mod = LLVMModuleCreateWithNameInContext("mswc", ctx);
	char *triple = LLVMGetTargetMachineTriple(c->tm);
	LLVMSetTarget(c->mod, triple);
	LLVMDisposeMessage(triple);
	LLVMTargetDataRef td = LLVMCreateTargetDataLayout(c->tm);
	LLVMSetModuleDataLayout(c->mod, td);
	LLVMDisposeTargetData(td);
	c->b = LLVMCreateBuilderInContext(ctx);
	init_types(c);
	return 0;
}

void be_ctx_dispose(be_Ctx *c)
{
	if (c->b)
		LLVMDisposeBuilder(c->b);
	if (c->mod)
		LLVMDisposeModule(c->mod);
	if (c->tm)
		LLVMDisposeTargetMachine(c->tm);
	c->b = NULL;
	c->mod = NULL;
	c->tm = NULL;
}
