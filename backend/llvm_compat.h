/* llvm_compat.h: every difference between LLVM versions, in one place
 * (PostgreSQL's llvmjit_emit.h). The rest of backend/ includes this and
 * never tests LLVM_VERSION_MAJOR itself.
 *
 * Supported: LLVM 14 and newer. The code is written against the C API that
 * is common to all of them (LLVMBuildLoad2/GEP2/Call2 with explicit types,
 * LLVMRunPasses with the new pass manager, ORC LLJIT); what follows covers
 * the few places where they differ:
 *   - ThreadSafeContext: up to LLVM 20 a ThreadSafeContext creates its own
 *     LLVMContext and hands it out (LLVMOrcThreadSafeContextGetContext);
 *     from LLVM 21 that getter is gone and a ThreadSafeContext instead wraps
 *     a context we created, taking ownership of it.
 * Pointers: we only ever build them with LLVMPointerType(elem, 0), which is
 * a typed pointer in LLVM 14 and the opaque `ptr` from LLVM 17 on; bitcasts
 * between pointers are then no-ops the builder folds away. */
#ifndef MSW_LLVM_COMPAT_H
#define MSW_LLVM_COMPAT_H

#include <llvm-c/Core.h>
#include <llvm-c/Orc.h>
#include <llvm/Config/llvm-config.h>

#if LLVM_VERSION_MAJOR < 14
#error "mswc needs LLVM 14 or newer"
#endif

/* The context a module is built in, and the ThreadSafeContext the JIT will
 * receive it with. be_compat_context_create makes both (tsc may stay NULL
 * until be_compat_tsc_for_jit); be_compat_tsc_for_jit returns the TSC to
 * wrap the module with; be_compat_context_dispose releases whatever this
 * side still owns. */
typedef struct be_CompatCtx {
	LLVMContextRef ctx;
	LLVMOrcThreadSafeContextRef tsc;
} be_CompatCtx;

#if LLVM_VERSION_MAJOR >= 21
static inline int be_compat_context_create(be_CompatCtx *cc)
{
	cc->ctx = LLVMContextCreate();
	cc->tsc = NULL;
	return cc->ctx ? 0 : -1;
}
/* The TSC takes ownership of ctx: from now on only the TSC frees it. */
static inline LLVMOrcThreadSafeContextRef be_compat_tsc_for_jit(be_CompatCtx *cc)
{
	if (!cc->tsc) {
		cc->tsc = LLVMOrcCreateNewThreadSafeContextFromLLVMContext(cc->ctx);
		cc->ctx = NULL;
	}
	return cc->tsc;
}
static inline void be_compat_context_dispose(be_CompatCtx *cc)
{
	if (cc->tsc)
		LLVMOrcDisposeThreadSafeContext(cc->tsc);
	else if (cc->ctx)
		LLVMContextDispose(cc->ctx);
	cc->tsc = NULL;
	cc->ctx = NULL;
}
#else
static inline int be_compat_context_create(be_CompatCtx *cc)
{
	cc->tsc = LLVMOrcCreateNewThreadSafeContext();
	cc->ctx = cc->tsc ? LLVMOrcThreadSafeContextGetContext(cc->tsc) : NULL;
	return cc->ctx ? 0 : -1;
}
static inline LLVMOrcThreadSafeContextRef be_compat_tsc_for_jit(be_CompatCtx *cc)
{
	return cc->tsc;
}
/* The TSC owns the context; modules wrapped in ThreadSafeModules share that
 * ownership, so disposing our reference is safe while the JIT still runs. */
static inline void be_compat_context_dispose(be_CompatCtx *cc)
{
	if (cc->tsc)
		LLVMOrcDisposeThreadSafeContext(cc->tsc);
	cc->tsc = NULL;
	cc->ctx = NULL;
}
#endif

#endif
