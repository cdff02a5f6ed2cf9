/* backend.h: native code from the IR through the LLVM C API.
 *
 * be_compile takes a graph after plan_memory (every Node.offset set) and
 * builds one LLVM module with a kernel per op (the rt.h kernel contract),
 * optimised for the host CPU. The module can be printed (LLVM IR or
 * assembly) or JIT-compiled into an rt_Program the runtime executes.
 * Every `#if LLVM_VERSION_MAJOR` lives in llvm_compat.h. */
#ifndef MSW_BACKEND_H
#define MSW_BACKEND_H

#include "../ir/ir.h"
#include "../runtime/rt.h"

typedef struct be_Options {
	int opt_level;        /* 0..3, default 3 */
	const char *cpu;      /* NULL: the host CPU and its features */
	const char *features; /* NULL: the host's, from LLVMGetHostCPUFeatures */
} be_Options;

typedef struct be_Module be_Module;

typedef enum be_TextKind { BE_TEXT_LLVM, BE_TEXT_ASM } be_TextKind;

int be_compile(const Graph *g, const be_Options *o, be_Module **out, Diag *d);
void be_module_destroy(be_Module *m);
int be_nkernel(const be_Module *m);
/* The module as LLVM IR or host assembly; mem_free the result. */
char *be_emit_text(be_Module *m, be_TextKind kind, Diag *d);
/* JIT the module (ORC LLJIT) and build the program: steps in graph order,
 * slots for params, inputs, outputs and the loss. The program owns the JIT;
 * the module is consumed (destroy it anyway; it is then empty). */
int be_jit(be_Module *m, const Graph *g, rt_Program **out, Diag *d);

/* Convenience: be_compile + be_jit. */
int be_build_program(const Graph *g, const be_Options *o, rt_Program **out, Diag *d);

/* ---- internal: shared by the emitters of this folder ---- */
#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

/* One code-generation session: a module being filled with kernels. */
typedef struct be_Ctx {
	LLVMContextRef ctx;
	LLVMModuleRef mod;
	LLVMBuilderRef b;
	LLVMTargetMachineRef tm;  /* host (or be_Options) target */
	LLVMTypeRef t_void, t_i1, t_i8, t_i32, t_i64, t_f32, t_ptr; /* t_ptr: i8* */
	LLVMTypeRef t_kernel;     /* void (i8** buf, i64 lo, i64 hi) */
	int vec_lanes;            /* f32 lanes of the widest vector: 16 with AVX-512, 8 with AVX2 */
	int has_fma;
} be_Ctx;

/* What an emitter produced: a function obeying the rt.h kernel contract. */
typedef struct be_Kernel {
	LLVMValueRef fn;
	int64_t ntask;
	double flops;
} be_Kernel;

/* kernel.c: begin a kernel function named `name`: positions the builder in
 * its entry block and returns its three parameters. */
LLVMValueRef be_kernel_begin(be_Ctx *c, const char *name, LLVMValueRef *buf, LLVMValueRef *lo,
			     LLVMValueRef *hi);
/* Load buf[i] as a float* / i32* (typed pointer into the arena). */
LLVMValueRef be_kernel_arg(be_Ctx *c, LLVMValueRef buf, int i, LLVMTypeRef elem);

/* emit_matmul.c: the blocked, vectorised dense matmul (batched, broadcast
 * batch dims, NF_TRANS_A/B). Node v of g is an OP_MATMUL. */
int be_emit_matmul(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d);

#endif
