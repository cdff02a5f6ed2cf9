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

#endif
