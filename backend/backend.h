/* backend.h: native code from the IR through the LLVM C API.
 *
 * be_compile takes a graph after plan_memory (every Node.offset set) and
 * builds one LLVM module with a kernel per op (the rt.h kernel contract;
 * identical kernels only once), the optimiser's update included when the
 * graph has one (passes/optimize.c), optimised for the host CPU. The module can be printed (LLVM IR or
 * assembly) or JIT-compiled into an rt_Program the runtime executes.
 * docs/backend.md describes the emitters, deduplication, phases and slots.
 * Every `#if LLVM_VERSION_MAJOR` lives in llvm_compat.h. */
#ifndef MSW_BACKEND_H
#define MSW_BACKEND_H

#include "../ir/ir.h"
#include "../runtime/rt.h"

typedef struct be_Options {
	int opt_level;        /* 0..3, default 3 */
	const char *cpu;      /* NULL: the host CPU and its features */
	const char *features; /* NULL: the host's, from LLVMGetHostCPUFeatures */
	bool matmul_ref;      /* use the simple reference matmul (a baseline) */
	/* The kernel cache (kernel_cache.c): a folder for compiled objects,
	 * or NULL for none. be_cache_default_dir gives the tools' default. */
	const char *cache_dir;
	bool pic;             /* position-independent code, for objects linked into apps */
} be_Options;

/* context.c: a named target for code that runs on other machines:
 * "native" (the host: cpu and features NULL), or "x86-64-v2", "x86-64-v3",
 * "x86-64-v4" (the psABI levels; features spelt out, since the vector
 * width the emitters use is read from them). -1 for another name. */
int be_target_named(const char *name, const char **cpu, const char **features);
/* LLVM's name of the host CPU ("skylake-avx512"), for messages. */
const char *be_host_cpu_name(void);


typedef struct be_Module be_Module;

typedef enum be_TextKind { BE_TEXT_LLVM, BE_TEXT_ASM } be_TextKind;

int be_compile(const Graph *g, const be_Options *o, be_Module **out, Diag *d);
void be_module_destroy(be_Module *m);
int be_nkernel(const be_Module *m);   /* distinct kernels */
/* The module as LLVM IR or host assembly; mem_free the result. */
char *be_emit_text(be_Module *m, be_TextKind kind, Diag *d);
/* JIT the module (ORC LLJIT) and build the program: steps in graph order,
 * with phase_start and each step's output metadata; slots for params,
 * inputs, states, outputs, the loss, "<param>.grad", and when the graph
 * has the update "<param>.exp_avg", "<param>.exp_avg_sq" (its moment
 * states) and "optim.hparams" (its scalars input). The program owns the JIT; the
 * module is consumed (destroy it anyway; it is then empty). */
int be_jit(be_Module *m, const Graph *g, rt_Program **out, Diag *d);
/* The program be_jit binds, as a description only: the same steps, slots
 * and phases, each step naming its kernel's symbol, no code bound (jit.c).
 * The module is not touched. */
int be_describe(const be_Module *m, const Graph *g, rt_Program **out, Diag *d);

/* Whether be_compile found the module's object in the kernel cache. */
bool be_cache_hit(const be_Module *m);
/* $MSW_CACHE_DIR ("" = no cache), else $XDG_CACHE_HOME/mswc/kernels, else
 * ~/.cache/mswc/kernels; NULL for none. mem_free the result. */
char *be_cache_default_dir(void);

/* calibrate.c: the host rates of the cost models (support.h; the names
 * are listed in calibrate.c), measured now by timing this backend's
 * kernels on one thread (one to two seconds; kernels come from the kernel
 * cache in cache_dir when it has them, NULL for none). */
int be_calibrate(HostRates *r, const char *cache_dir, Diag *d);
/* The key of this host's rates: CPU model, LLVM's host CPU name and
 * features, mswc's version and the calibration's revision. */
int be_rates_key(Hash128 *key);
/* <dir>/rates-<key>.txt; -1 if it does not fit in n bytes. */
int be_rates_path(const char *dir, Hash128 key, char *out, size_t n);
/* The cached rates of this host from cache_dir, or (none there, damaged,
 * another key, remeasure, or cache_dir NULL) be_calibrate and store them
 * there, atomically. r->source says which. */
int be_host_rates(HostRates *r, const char *cache_dir, bool remeasure, Diag *d);

/* Convenience: be_compile + be_jit. */
int be_build_program(const Graph *g, const be_Options *o, rt_Program **out, Diag *d);

/* aot.c: ahead-of-time objects (docs/embedding.md). One object holds one
 * or more programs, each the module be_compile made (without a kernel
 * cache: the module is needed) and its description (be_describe,
 * written by rt_program_write); the kernels become local symbols, and
 * the only global one is `const rt_Image *NAME_program(void)`, whose
 * image points at the descriptions, the function-pointer tables (in the
 * descriptions' kernel order), the weights (a safetensors file's bytes, in
 * .rodata) and the CPU features the code needs. The modules are used up
 * (destroy them anyway). */
typedef struct be_AotProgram {
	const char *role;     /* "forward", "decode", "prefill" */
	be_Module *mod;
	const rt_Program *desc;
	const uint8_t *bytes; /* rt_program_write(desc) */
	size_t nbytes;
} be_AotProgram;
typedef struct be_AotOptions {
	const char *name;     /* a C identifier */
	const char *target;   /* as messages name it: "x86-64-v3", "native (znver3)" */
	const void *weights;  /* or NULL */
	size_t weights_len;
} be_AotOptions;
/* Writes the object to path (atomically); *size its bytes, *features the
 * rt_CpuFeature mask recorded. */
int be_aot_object(be_AotProgram *prog, int nprog, const be_AotOptions *o, const char *path,
		  size_t *size, uint64_t *features, Diag *d);
/* The rt_CpuFeature bits a features string ("+avx2,-avx512f,...") enables. */
uint64_t be_cpu_features(const char *features);

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
	int64_t l1d;              /* bytes of L1 data cache per core, for blocking: the
	                           * host's report, or 32 KiB for another target */
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
/* The attributes every function of ours carries (nounwind, the vector
 * width); be_kernel_begin adds them, helpers emitted beside a kernel too. */
void be_fn_attrs(be_Ctx *c, LLVMValueRef fn);
/* Load buf[i] as a float* / i32* (typed pointer into the arena). */
LLVMValueRef be_kernel_arg(be_Ctx *c, LLVMValueRef buf, int i, LLVMTypeRef elem);

/* emit_matmul.c: the blocked, vectorised dense matmul (batched, broadcast
 * batch dims, NF_TRANS_A/B). Node v of g is an OP_MATMUL. */
int be_emit_matmul(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d);

/* emit_matmul_ref.c: a simple, obviously correct matmul (row at a time,
 * vectorised along N, or a dot product along K when B is transposed); the
 * fallback and the baseline the blocked one is measured against. */
int be_emit_matmul_ref(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d);

/* emit_sparse.c: spmm and sddmm (ops.h), compressed-row or unrolled code
 * for the pattern of the weight's mask. */
int be_emit_sparse(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d);

/* Every emitter has this signature; compile.c dispatches through a table. */
typedef int (*be_EmitFn)(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d);

/* context.c: the target machine for o (the host when o or its fields are
 * NULL) and a session around an existing LLVM context: module with the
 * target's triple and data layout, builder, types, vector width. */
LLVMTargetMachineRef be_target_machine(const be_Options *o, Diag *d);
int be_ctx_init(be_Ctx *c, LLVMContextRef ctx, const be_Options *o, Diag *d);
void be_ctx_dispose(be_Ctx *c);   /* builder, module (if still owned), target machine */

/* kernel.c: IR-building helpers for emitters. `n` is a vector width in f32
 * lanes; n == 1 means plain scalars, so one body serves the vector loop and
 * its scalar tail. */
LLVMValueRef be_i64(be_Ctx *c, int64_t v);
LLVMValueRef be_i32c(be_Ctx *c, int32_t v);
LLVMValueRef be_f32c(be_Ctx *c, double v);
LLVMTypeRef be_vtype(be_Ctx *c, LLVMTypeRef elem, int n);
LLVMValueRef be_splat(be_Ctx *c, LLVMValueRef x, int n);
LLVMValueRef be_lane_ids(be_Ctx *c, LLVMTypeRef elem, int n); /* <0,1,...,n-1> */
/* Load / store n elements of type elem at p[idx] (idx an i64), align elem. */
LLVMValueRef be_load(be_Ctx *c, LLVMTypeRef elem, LLVMValueRef p, LLVMValueRef idx, int n);
void be_store(be_Ctx *c, LLVMValueRef v, LLVMTypeRef elem, LLVMValueRef p, LLVMValueRef idx,
	      int n);
LLVMValueRef be_gep(be_Ctx *c, LLVMTypeRef elem, LLVMValueRef p, LLVMValueRef idx);
/* A mutable local (entry-block alloca; SROA turns it into registers). */
LLVMValueRef be_local(be_Ctx *c, LLVMTypeRef t, LLVMValueRef init);
LLVMValueRef be_get(be_Ctx *c, LLVMTypeRef t, LLVMValueRef local);
void be_set(be_Ctx *c, LLVMValueRef local, LLVMValueRef v);
LLVMValueRef be_min64(be_Ctx *c, LLVMValueRef a, LLVMValueRef b);

/* Counted loop: for (i = from; i < to; i += step) { ... }. */
typedef struct be_Loop {
	LLVMBasicBlockRef head, body, exit;
	LLVMValueRef i, step;
	LLVMValueRef latch;   /* the back edge, set by be_loop_end */
} be_Loop;
LLVMValueRef be_loop_begin(be_Ctx *c, be_Loop *l, LLVMValueRef from, LLVMValueRef to,
			   int64_t step);
void be_loop_end(be_Ctx *c, be_Loop *l);
/* After be_loop_end: tell LLVM not to vectorise or unroll this loop. For
 * scalar tails (fewer than vec_lanes iterations: vectorising them again
 * only adds code) and for loops over task units and rows, whose bodies are
 * already vector code: with constant trip counts LLVM would otherwise
 * unroll them fully, multiplying code size and compile time for no speed. */
void be_loop_scalar(be_Ctx *c, be_Loop *l);
/* if (cond) { ... }: be_if_begin returns the join block for be_if_end. */
LLVMBasicBlockRef be_if_begin(be_Ctx *c, LLVMValueRef cond);
void be_if_end(be_Ctx *c, LLVMBasicBlockRef join);

/* Tasks as groups of `per` consecutive units (rows, elements, ...): tasks
 * [lo,hi) cover units [lo*per, min(hi*per, nunit)). be_split picks per and
 * ntask from the work in one unit: a single task for small ops, otherwise
 * tasks of roughly BE_TASK_WORK element-operations. */
enum { BE_TASK_WORK = 16384, BE_SMALL_WORK = 32768 };
void be_split(int64_t nunit, double unit_work, int64_t *per, int64_t *ntask);
void be_task_units(be_Ctx *c, LLVMValueRef lo, LLVMValueRef hi, int64_t per, int64_t nunit,
		   LLVMValueRef *ulo, LLVMValueRef *uhi);

/* Math on n-lane f32 values. */
LLVMValueRef be_intrin(be_Ctx *c, const char *name, LLVMTypeRef t, LLVMValueRef *args,
		       int nargs);                  /* llvm.<name>.<mangled t> */
LLVMValueRef be_fma(be_Ctx *c, LLVMValueRef a, LLVMValueRef b, LLVMValueRef acc, int n);
LLVMValueRef be_fmax(be_Ctx *c, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef be_exp(be_Ctx *c, LLVMValueRef x, int n);   /* polynomial, ~1 ulp */
LLVMValueRef be_log(be_Ctx *c, LLVMValueRef x, int n);   /* polynomial, ~1 ulp */
LLVMValueRef be_tanh(be_Ctx *c, LLVMValueRef x, int n);
LLVMValueRef be_hsum(be_Ctx *c, LLVMValueRef v, int n);  /* fixed pairwise order */
/* A vector of `count` lanes whose lane e is be_hsum(v[e], n) bit for bit;
 * count a power of two, at most n. */
LLVMValueRef be_hsum_many(be_Ctx *c, const LLVMValueRef *v, int count, int n);
LLVMValueRef be_hmax(be_Ctx *c, LLVMValueRef v, int n);

/* emit_elementwise.c, emit_reduce.c, emit_movement.c: one emitter per op
 * family, dispatched by op. */
int be_emit_elementwise(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d);
int be_emit_reduce(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d);
int be_emit_softmax(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d);
int be_emit_cross_entropy(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d);
int be_emit_permute(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d);
int be_emit_slice(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d);
int be_emit_concat(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d);
int be_emit_gather(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d);
int be_emit_causal_mask(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d);
int be_emit_causal_mask_offset(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d);
int be_emit_cache_write(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d);
int be_emit_copy(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d); /* reshape not aliased */
/* The backward kernels: gelu_grad, silu_grad, relu_grad and broadcast go
 * through be_emit_elementwise; the rest have their own. */
int be_emit_softmax_grad(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d);
int be_emit_cross_entropy_grad(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d);
int be_emit_max_grad(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d);
int be_emit_causal_mask_grad(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d);
/* emit_scatter.c: gather_grad, split over column blocks (deterministic). */
int be_emit_gather_grad(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d);

/* compile.c: the kernel name of node v ("k12_matmul"). */
void be_kernel_name(const Graph *g, ValId v, char *buf, size_t n);

/* compile.c / jit.c: the compiled module. One entry per step, in program
 * order: the kernels of the graph's nodes in node order (nodes without a
 * kernel, i.e. input, param, state, mask, aliasing reshape, have none),
 * the update's included. Identical kernels are emitted once: entries of
 * equal kernels share one LLVM function (fname). */
#include "llvm_compat.h"
typedef struct be_Entry {
	ValId v;              /* the node */
	int64_t ntask;
	double flops;
	char name[48];        /* the step's name ("k12_matmul") */
	char fname[48];       /* the LLVM function it calls */
	uint8_t phase;        /* rt_Phase */
} be_Entry;

/* compile.c: kernel deduplication. A kernel is keyed by the bytes that
 * determine its code (node_key in compile.c); be_kernel_find returns the function already
 * emitted for an equal key, or NULL, and be_kernel_add records a new one. */
typedef struct be_KernelRec {
	Hash128 h;
	uint32_t klen;
	uint8_t *key;         /* m->keys arena */
	char fname[48];
	int64_t ntask;
	double flops;
} be_KernelRec;
const be_KernelRec *be_kernel_find(be_Module *m, const void *key, size_t klen);
int be_kernel_add(be_Module *m, const void *key, size_t klen, const char *fname,
		  const be_Kernel *k);

/* emit_optim.c: the optimiser update's ops (sumsq, grad_norm, adamw,
 * adamw_masked), which passes/optimize.c appends to a training graph. */
int be_emit_optim(be_Ctx *c, const Graph *g, ValId v, be_Kernel *k, Diag *d);

/* kernel_cache.c: the key of a module as emitted (before optimisation),
 * and cached objects by key (NULL: not there or damaged). */
int be_cache_key(be_Module *m, Hash128 *key, Diag *d);
LLVMMemoryBufferRef be_cache_load(const char *dir, Hash128 key);
int be_cache_store(const char *dir, Hash128 key, const void *data, size_t n);
int be_cache_make_dir(const char *dir);   /* mkdir -p; 0 or -1 */

struct be_Module {
	be_CompatCtx cc;
	be_Ctx c;             /* c.mod is NULL once the JIT owns the module */
	Vec entry;            /* be_Entry */
	be_Options opt;       /* cpu/features point at our own copies */
	char *cpu, *features;
	Vec kernel;           /* be_KernelRec: the distinct kernels */
	Arena keys;           /* their keys */
	char *cache_dir;      /* our copy of be_Options.cache_dir */
	Hash128 cache_key;
	LLVMMemoryBufferRef obj;   /* the cached object, until the JIT takes it */
	bool cache_hit;
};

#endif
