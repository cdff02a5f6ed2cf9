/* rt.h: the runtime. No LLVM, no frontend, no IR: a program that embeds an
 * ahead-of-time compiled model links this folder and support/ alone.
 *
 * A compiled model is an rt_Program: a list of steps, each a native kernel
 * with the byte offsets of its operands in one arena, plus the named slots
 * (parameters, inputs, outputs) a caller reads and writes. The memory plan is
 * made once at compile time; running a step allocates nothing.
 *
 * Kernel contract (every backend obeys it, the executor relies on it):
 *   void fn(void *const *buf, int64_t lo, int64_t hi)
 *   buf[0] is the output, buf[1..] the operands, all arena pointers;
 *   the kernel computes tasks [lo, hi) of its ntask tasks. Tasks write
 *   disjoint parts of the output and a task's result does not depend on how
 *   tasks are grouped, so any split over threads gives bitwise-identical
 *   results (determinism for training comes from this rule). */
#ifndef MSW_RT_H
#define MSW_RT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../support/support.h"

enum { RT_MAX_RANK = 6, RT_ALIGN = 64 };

/* Same numbering as the IR's DType (the backend checks this). */
typedef enum rt_DType { RT_F32, RT_I32, RT_U8, RT_DTYPE_COUNT } rt_DType;
int rt_dtype_size(rt_DType t);
const char *rt_dtype_name(rt_DType t);

typedef struct rt_Tensor {
	rt_DType dtype;
	int rank;
	int64_t dim[RT_MAX_RANK];
	void *data;
} rt_Tensor;
int64_t rt_numel(const rt_Tensor *t);
int64_t rt_nbytes(const rt_Tensor *t);
/* "[i, j, ...]": the index of element `flat` (C order), for messages. */
void rt_index_str(const rt_Tensor *t, int64_t flat, char *buf, size_t n);
/* Token ids index tables: an i32 tensor's values must lie in [0, vocab),
 * or an error names the first one that does not and where it is:
 * "file: error: token 256 at [0, 17] is outside the vocabulary [0, 256)".
 * Other dtypes, and vocab <= 0 (nothing indexed), pass. */
int rt_tokens_check(const char *file, const rt_Tensor *t, int64_t vocab, Diag *d);

typedef void (*rt_KernelFn)(void *const *buf, int64_t lo, int64_t hi);

typedef enum rt_SlotKind {
	RT_SLOT_PARAM,
	RT_SLOT_INPUT,
	RT_SLOT_OUTPUT,
	RT_SLOT_LOSS,
	RT_SLOT_GRAD,         /* "<param>.grad": d loss / d param, written by the backward phase */
	RT_SLOT_OPTIM,        /* "<param>.exp_avg", "<param>.exp_avg_sq": AdamW moments */
	RT_SLOT_HPARAMS,      /* "optim.hparams": f32[RT_HP_COUNT], see rt_HParam */
	RT_SLOT_STATE,        /* persistent across runs, not trained or saved (e.g. a KV cache) */
	RT_SLOT_MASK,         /* "<param>.mask": the f32 0/1 mask of a sparse param, filled
	                       * from rt_Slot.bits when the program is bound (docs/sparsity.md) */
} rt_SlotKind;

/* The optimiser's scalars, one f32 each in the "optim.hparams" slot. The
 * trainer writes the inputs before every step; the update phase writes
 * RT_HP_GRAD_NORM (the global L2 norm of all gradients, before clipping). */
typedef enum rt_HParam {
	RT_HP_LR,             /* learning rate of this step (schedule applied) */
	RT_HP_BETA1,
	RT_HP_BETA2,
	RT_HP_EPS,
	RT_HP_WEIGHT_DECAY,   /* decoupled: p -= lr * wd * p, on params with rt_Slot.decay */
	RT_HP_BIAS_CORR1,     /* 1 - beta1^t, t = 1-based step */
	RT_HP_BIAS_CORR2,     /* 1 - beta2^t */
	RT_HP_CLIP,           /* max global grad norm; 0 = no clipping */
	RT_HP_GRAD_NORM,      /* output */
	RT_HP_COUNT
} rt_HParam;

/* Steps of a training program come in phases, in this order: the forward
 * pass (and loss), the backward pass, the optimiser update. A program
 * without training has only the forward phase. */
typedef enum rt_Phase { RT_PHASE_FORWARD, RT_PHASE_BACKWARD, RT_PHASE_UPDATE, RT_PHASE_COUNT } rt_Phase;

/* A named tensor living in the arena. */
typedef struct rt_Slot {
	char *name;
	uint8_t kind;     /* rt_SlotKind */
	uint8_t dtype;    /* rt_DType */
	uint8_t rank;
	uint8_t init;     /* params: 0 none, 1 normal(0, init_std), 2 zeros, 3 ones */
	bool frozen;
	bool decay;       /* params: AdamW applies weight decay (rank >= 2, not an embedding) */
	int32_t param;    /* grad, optimiser and mask slots: index of their param's slot */
	uint8_t *bits;    /* mask slots: numel bytes, 1 = kept (owned by the program) */
	double init_std;
	int64_t dim[RT_MAX_RANK];
	int64_t offset, nbytes;
	int64_t vocab;    /* i32 inputs: ids index a table of this many rows (they must lie
	                   * in [0, vocab)); 0 = not known or not indexed */
} rt_Slot;

enum { RT_NO_KERNEL = UINT32_MAX };

typedef struct rt_Step {
	rt_KernelFn fn;       /* NULL until the program is bound (rt_program_bind) */
	uint32_t kernel;      /* its symbol: p->kernel[kernel]; RT_NO_KERNEL for a step
	                       * built around a function (rt_program_add_step) */
	int64_t ntask;
	uint32_t arg0, narg;  /* p->argoff[arg0 .. arg0+narg): byte offsets; [0] is the output */
	char *name;           /* kernel name, for profiles and errors */
	double flops;         /* estimated work, for profiles and thread splitting */
	int64_t out_nbytes;   /* size of the output (buf[0]); 0 = unknown */
	uint8_t out_dtype;    /* rt_DType of the output */
	bool out_masks;       /* the output may hold -inf by design (causal masks) */
} rt_Step;

/* Checked mode (MSW_CHECK=1, docs/runtime.md): a byte range of the arena
 * that no tensor owns at any time, between the tensors described by
 * `after` (the one ending where the guard starts) and `before` (the one
 * starting where it ends); either is NULL at an end of the arena. */
typedef struct rt_Guard {
	int64_t offset, nbytes;
	char *after, *before;   /* "%12 = matmul f32[4,16]", owned by the program */
} rt_Guard;

/* A program is first a description, plain data that names its kernels by
 * symbol (steps, offsets, phases, slots, masks, the arena size: what
 * rt_program_write stores), then bound to code: each distinct symbol gets
 * a function address, from a JIT's symbol lookup or from the table an
 * ahead-of-time object exports (rt_image_program). */
typedef struct rt_Program {
	int64_t arena_size;
	Vec kernel;           /* char *: the distinct kernel symbols, in order of first use */
	Vec step;             /* rt_Step */
	Vec argoff;           /* int64_t */
	Vec slot;             /* rt_Slot */
	Vec guard;            /* rt_Guard, by offset; empty unless planned in checked mode */
	/* Steps [phase_start[p], phase_start[p+1]) form phase p; set by whoever
	 * builds the program (all zero = every step is forward, see exec.c). */
	uint32_t phase_start[RT_PHASE_COUNT + 1];
	/* Whoever owns the code (a JIT session, a loaded object) keeps it alive
	 * until the program is destroyed. */
	void *code_owner;
	void (*code_release)(void *owner);
} rt_Program;

/* program.c */
rt_Program *rt_program_create(void);
void rt_program_destroy(rt_Program *p);
int rt_program_add_slot(rt_Program *p, const rt_Slot *s); /* copies s->name and s->bits */
int rt_program_add_step(rt_Program *p, rt_KernelFn fn, int64_t ntask, const int64_t *argoff,
			uint32_t narg, const char *name, double flops);
/* A step of the description: its kernel named by symbol, left unbound. */
int rt_program_add_symbol_step(rt_Program *p, const char *symbol, int64_t ntask,
			       const int64_t *argoff, uint32_t narg, const char *name, double flops);
const rt_Slot *rt_program_find(const rt_Program *p, const char *name);
/* Appends a guard (copies the texts; NULL allowed); -1 if nbytes <= 0 or
 * out of memory. Guards must come in increasing offset order, apart. */
int rt_program_add_guard(rt_Program *p, int64_t offset, int64_t nbytes, const char *after,
			 const char *before);
/* Binding: resolve(user, symbol, index, d) gives the address of kernel
 * `index` (p->kernel order), or NULL with (optionally) the reason in d; each
 * symbol is resolved once and every step using it gets the address. On
 * failure nothing is bound and d names the symbol. */
typedef rt_KernelFn (*rt_Resolver)(void *user, const char *symbol, uint32_t index, Diag *d);
int rt_program_bind(rt_Program *p, rt_Resolver resolve, void *user, Diag *d);
bool rt_program_bound(const rt_Program *p);

/* program_file.c: the description as bytes, and back (docs/embedding.md
 * gives the layout). Writing needs every step to name its symbol;
 * reading validates every count, index, dtype, rank and size against the
 * bytes it has (rt_exec_create checks offsets against the arena) and gives
 * an unbound program. rt_program_write: *out is mem_alloc'd. */
int rt_program_write(const rt_Program *p, uint8_t **out, size_t *len, Diag *d);
int rt_program_read(const char *name, const void *data, size_t len, rt_Program **out, Diag *d);

/* cpu.c: the x86 features ahead-of-time code may need, by LLVM's names
 * ("avx2", "avx512f"), as bits of a mask; what this CPU has (cpuid,
 * __builtin_cpu_supports: the OS's support for the vector state
 * included); and the check an object's loader makes. */
typedef enum rt_CpuFeature {
	RT_CPU_SSE3, RT_CPU_SSSE3, RT_CPU_SSE41, RT_CPU_SSE42, RT_CPU_POPCNT, RT_CPU_AVX,
	RT_CPU_AVX2, RT_CPU_FMA, RT_CPU_F16C, RT_CPU_BMI, RT_CPU_BMI2, RT_CPU_LZCNT,
	RT_CPU_MOVBE, RT_CPU_AVX512F, RT_CPU_AVX512BW, RT_CPU_AVX512CD, RT_CPU_AVX512DQ,
	RT_CPU_AVX512VL, RT_CPU_AVX512VNNI, RT_CPU_AVX512BF16, RT_CPU_AVX512IFMA,
	RT_CPU_AVX512VBMI, RT_CPU_AVX512VBMI2, RT_CPU_AVX512BITALG, RT_CPU_AVX512VPOPCNTDQ,
	RT_CPU_COUNT
} rt_CpuFeature;
extern const char *const rt_cpu_feature_name[RT_CPU_COUNT];
uint64_t rt_cpu_host_features(void);
/* 0 if `have` covers `need`; else an error naming what is missing, and
 * what code built for `target` ("x86-64-v3") expects. */
int rt_cpu_check(uint64_t need, uint64_t have, const char *target, Diag *d);

/* image.c: an ahead-of-time compiled model, as the object file that
 * backend/aot.c writes exports it through NAME_program(). The layout is
 * fixed by RT_IMAGE_ABI (the object builds this struct as LLVM constants:
 * change both together). One image holds one or more programs by role
 * ("forward"; "decode" and "prefill" for generation), each a description
 * and its function-pointer table, and optionally the weights (a
 * safetensors file, as bytes). */
enum { RT_IMAGE_MAGIC = 0x4957534d /* "MSWI" */, RT_IMAGE_ABI = 1 };
typedef struct rt_ImageProgram {
	const char *role;
	const uint8_t *desc;
	uint64_t desc_len;
	const rt_KernelFn *fn;    /* one per kernel symbol of the description, in its order */
	uint64_t nfn;
} rt_ImageProgram;
typedef struct msw_Image {
	uint32_t magic, abi;
	const char *name;         /* the NAME it was compiled as */
	const char *target;       /* "x86-64-v3", "native (skylake-avx512)" */
	uint64_t cpu_features;    /* rt_CpuFeature bits the code needs */
	const rt_ImageProgram *prog;
	uint64_t nprog;
	const uint8_t *weights;   /* a safetensors file, or NULL */
	uint64_t weights_len;
	const char *version;      /* the mswc that wrote it */
} rt_Image;
/* The program of `role`, read and bound to the image's code, after
 * checking the image's magic and ABI and that this CPU has the features
 * its code needs. The program does not own the image (static data). */
int rt_image_program(const rt_Image *img, const char *role, rt_Program **out, Diag *d);

/* pool.c: a fixed set of worker threads; nthreads <= 0 means all cores. */
typedef struct rt_Pool rt_Pool;
rt_Pool *rt_pool_create(int nthreads);
void rt_pool_destroy(rt_Pool *pool);
int rt_pool_size(const rt_Pool *pool);
/* Run fn over [0, ntask), split into contiguous ranges, one per thread
 * (fewer when there is little work). Returns when all are done. */
void rt_pool_run(rt_Pool *pool, rt_KernelFn fn, void *const *buf, int64_t ntask);

/* exec.c: a program bound to an arena and a pool. */
typedef struct rt_Exec rt_Exec;
int rt_exec_create(const rt_Program *p, rt_Pool *pool, rt_Exec **out, Diag *d);
/* The same in memory the caller owns: at least p->arena_size bytes,
 * RT_ALIGN-aligned, living as long as the exec (it is zeroed here). */
int rt_exec_create_in(const rt_Program *p, rt_Pool *pool, void *arena, size_t size,
		      rt_Exec **out, Diag *d);
void rt_exec_destroy(rt_Exec *e);
/* A tensor view of a slot's memory in the arena (valid while e lives). */
int rt_exec_tensor(rt_Exec *e, const char *name, rt_Tensor *out);
void rt_exec_run(rt_Exec *e);
/* Checked mode: when the program lists guards (planned with MSW_CHECK=1),
 * rt_exec_create fills them with canary bytes, and every run verifies all
 * of them before its first step and after each step. A changed byte means
 * a kernel (or, before the first step, the caller) wrote outside its
 * tensors: the run prints "mswc: internal error: kernel NAME (step N) wrote
 * past TENSOR" (or "before TENSOR") to stderr and the process exits with
 * status 1, since the arena can no longer be trusted. */
bool rt_exec_checked(const rt_Exec *e);
/* The first guard whose canaries changed, or -1; *at gets the offset of its
 * first changed byte. Tests call it to look without exiting. */
int64_t rt_exec_broken_guard(const rt_Exec *e, int64_t *at);
/* Run one phase only (e.g. the forward phase of a training program gives
 * the validation loss without touching gradients or weights). */
void rt_exec_run_phase(rt_Exec *e, rt_Phase phase);
/* Debugging aid for NaN hunts: run the program step by step and return the
 * index of the first step whose output holds a NaN or infinity (f32
 * outputs), or -1 if none. Slow; for diagnostics only. */
int64_t rt_exec_first_nonfinite(rt_Exec *e);
/* Per-step wall time (clock_gettime), summed over the runs since profiling
 * was switched on (which resets it); the table shows the mean per run,
 * sorted by time. Buffers are allocated by rt_exec_create. */
void rt_exec_profile(rt_Exec *e, bool on);
void rt_exec_print_profile(const rt_Exec *e, FILE *f);
/* For the trainer and tools: the bound program, the raw arena (slot offsets
 * index it), the pool, and a view of a slot already looked up. */
const rt_Program *rt_exec_program(const rt_Exec *e);
void *rt_exec_arena(rt_Exec *e);
rt_Pool *rt_exec_pool(rt_Exec *e);
int rt_exec_slot_tensor(rt_Exec *e, const rt_Slot *s, rt_Tensor *out);

/* init.c: parameter initialisation from the slots' initialisers. The stream
 * is a counter-based generator keyed by (seed, parameter name), so adding a
 * parameter does not change the others' values. */
int rt_init_params(rt_Exec *e, uint64_t seed);
/* The generator itself, for tools and tests: the key of (seed, name), and
 * pairs [lo, hi) of a normal(0, std) fill of x[0 .. n). */
uint64_t rt_init_key(uint64_t seed, const char *name);
void rt_init_normal(float *x, int64_t n, uint64_t key, double std, int64_t lo, int64_t hi);

/* file.c: byte plumbing for the readers and writers below. An rt_Reader
 * reads ranges of a file or a memory buffer whose size it knows; a short
 * read is an error naming the file. rt_AtomicFile writes "<path>.tmp.<pid>",
 * then fflush + fsync + rename + fsync(folder); abort removes the temporary. */
typedef struct rt_Reader {
	const char *name;
	FILE *f;
	const uint8_t *mem;
	uint64_t size, pos;
} rt_Reader;
int rt_reader_open(rt_Reader *r, const char *path, Diag *d);
void rt_reader_mem(rt_Reader *r, const char *name, const void *data, size_t len);
int rt_reader_read(rt_Reader *r, uint64_t off, void *buf, size_t n, Diag *d);
void rt_reader_close(rt_Reader *r);
typedef struct rt_AtomicFile {
	const char *path;
	char *tmp;
	FILE *f;
} rt_AtomicFile;
int rt_atomic_begin(rt_AtomicFile *a, const char *path, Diag *d);
int rt_atomic_write(rt_AtomicFile *a, const void *p, size_t n, Diag *d);
int rt_atomic_commit(rt_AtomicFile *a, Diag *d);   /* aborts on failure */
void rt_atomic_abort(rt_AtomicFile *a);
/* "path: error: message" */
int rt_file_error(Diag *d, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The JSON parser (cJSON) refuses arrays and objects nested deeper than
 * this, as "not valid JSON"; rt_json_too_deep gives the offset of the
 * first bracket beyond it (strings skipped), or SIZE_MAX, so readers can
 * say what is really wrong. */
enum { RT_JSON_MAX_DEPTH = 1000 };
size_t rt_json_too_deep(const char *text, size_t len);

/* npy.c: NumPy .npy v1/v2/v3, little-endian f32 / i32 / u8 / f64->f32,
 * C order. Every header field is validated; errors name the file. */
int rt_npy_read(const char *path, rt_Tensor *out, Diag *d);      /* data: mem_aligned */
int rt_npy_write(const char *path, const rt_Tensor *t, Diag *d);
/* The same reader over bytes in memory (fuzzing); name is used in errors. */
int rt_npy_read_mem(const char *name, const void *data, size_t len, rt_Tensor *out, Diag *d);
void rt_tensor_free(rt_Tensor *t);                                /* frees data */

/* safetensors.c: the Hugging Face format. Reading validates the header JSON,
 * every dtype, shape, and that offsets are in bounds, sorted, non-overlapping
 * and cover the data exactly. Writing goes to a temporary file in the same
 * folder, is fsync'd, then renamed, so a crash never leaves a half file. */
typedef struct rt_NamedTensor {
	char *name;
	rt_Tensor t;
} rt_NamedTensor;
typedef struct rt_TensorFile {
	rt_NamedTensor *tensor;
	int ntensor;
	char *metadata_json;  /* the "__metadata__" object as text, or NULL */
	void *blob;           /* owns all tensor data */
} rt_TensorFile;
int rt_safetensors_read(const char *path, rt_TensorFile *out, Diag *d);
int rt_safetensors_write(const char *path, const rt_NamedTensor *t, int n,
			 const char *metadata_json, Diag *d);
void rt_tensorfile_free(rt_TensorFile *f);
/* The same reader over bytes in memory (fuzzing); name is used in errors. */
int rt_safetensors_read_mem(const char *name, const void *data, size_t len,
			    rt_TensorFile *out, Diag *d);
const rt_NamedTensor *rt_tensorfile_find(const rt_TensorFile *f, const char *name);

/* weights.c: move parameters between an exec's arena and a safetensors file.
 * Loading checks that every parameter is present with the right dtype and
 * shape and holds no NaN or infinity where its mask keeps it, that every
 * mask is U8 0/1 (rt_mask_validate), and reports unknown tensors in the
 * file as errors. Masks: saving
 * writes "<param>.mask" (U8) beside each sparse param; loading checks a
 * file's mask against the program's (they must be equal: the masks were
 * compiled in), ignores the masks of params the program keeps dense
 * (dense fine-tuning), and zeroes the pruned weights (rt_apply_masks). */
int rt_load_params(rt_Exec *e, const char *path, Diag *d);
/* The same from a file already read (path names it in errors). With
 * RT_LOAD_IGNORE_MASKS the file's "<name>.mask" tensors are not checked
 * against the program's (mswc prune decides new ones). */
enum { RT_LOAD_IGNORE_MASKS = 1 };
int rt_load_params_from(rt_Exec *e, const rt_TensorFile *f, const char *path, unsigned flags,
			Diag *d);
int rt_save_params(rt_Exec *e, const char *path, Diag *d);

/* sparsity.c: the runtime half of static sparsity (docs/sparsity.md). A
 * program compiled with masks has an RT_SLOT_MASK "<param>.mask" per sparse
 * param; rt_exec_create fills it from the slot's bits. rt_apply_masks sets
 * every pruned weight to exactly +0.0 (init and loading call it, so stored
 * weights are zero where masked from the start). rt_mask_tensors gives U8
 * views (1 = kept) of the program's masks named "<param>.mask", for
 * checkpoints that PyTorch reads beside the weights; *out is mem_calloc'd
 * (mem_free it), its data points into the program. rt_is_mask_name: does
 * the name end in ".mask"? rt_sparsity_check counts the exact zeros of a
 * param slot and the positions where a pruned weight is not zero (tests
 * and tools check the invariant with it). */
void rt_apply_masks(rt_Exec *e);
int rt_mask_tensors(const rt_Program *p, rt_NamedTensor **out, int *n);
bool rt_is_mask_name(const char *name);
/* A "<param>.mask" tensor read from a file: U8 (BOOL loads as U8) holding
 * only 0 and 1, or an error naming it and the first bad value; every
 * reader of masks checks this before using one. */
int rt_mask_validate(const char *file, const rt_NamedTensor *m, Diag *d);
int rt_sparsity_check(rt_Exec *e, const char *param, int64_t *zeros, int64_t *bad);
/* regrow.c: dynamic sparse training's mask update on one param of n
 * entries: drop the k kept entries of smallest |w|, grow k of the entries
 * pruned before (largest |score|: RigL's dense gradient; score NULL: SET's
 * seeded random choice), set both kinds of weights to +0.0. Returns the
 * entries moved (k, or fewer without enough candidates), -1 out of memory.
 * rt_regrow_fraction: RigL's cosine-decaying update fraction
 * alpha/2 (1 + cos(pi step / end)), 0 from `end` on. */
int64_t rt_mask_regrow(uint8_t *bits, float *w, const float *score, int64_t n, int64_t k,
		       uint64_t seed);
double rt_regrow_fraction(double alpha, int64_t step, int64_t end);
/* Gradual magnitude pruning: rt_mask_drop drops the k kept entries of
 * smallest |w| (ties by index), setting them to +0.0, and returns how many
 * (-1 out of memory); rt_gradual_sparsity is Zhu and Gupta's schedule
 * target (1 - (1 - step/end)^3), equal to target from `end` on. */
int64_t rt_mask_drop(uint8_t *bits, float *w, int64_t n, int64_t k);
double rt_gradual_sparsity(double target, int64_t step, int64_t end);


/* --- Training data, checkpoints, sampling, metrics (docs/runtime.md,
 * "Training data, checkpoints, sampling"). --- */

/* sample.c (generator part): the counter-based generator of init.c, for
 * everything else that needs randomness without hidden state. bits depends
 * only on (key, counter): mix(key ^ mix(counter)), mix being splitmix64's
 * finaliser; keys come from rt_init_key(seed, "<purpose>"). */
uint64_t rt_mix64(uint64_t z);
uint64_t rt_rng_bits(uint64_t key, uint64_t counter);
double rt_rng_uniform(uint64_t key, uint64_t counter); /* (bits >> 11) * 2^-53, in [0, 1) */

/* data.c: a token stream split into a training head and a validation tail,
 * and the windows the trainer reads from it. Byte-level tokens (token = byte
 * value, vocabulary 256). A window is seq + 1 consecutive tokens; a batch row
 * is tokens = window[0:seq], targets = window[1:seq+1]. */
typedef enum rt_Order { RT_ORDER_RANDOM, RT_ORDER_SEQUENTIAL } rt_Order;
typedef struct rt_Data {
	int32_t *tok;         /* ntok tokens: training part, then validation part */
	int64_t ntok;
	int64_t ntrain;       /* tok[0 .. ntrain) trains, tok[ntrain .. ntok) validates */
	int nfile;            /* files concatenated */
} rt_Data;
/* path: a file, or a folder read recursively (regular files, names not
 * starting with '.', sorted by relative path bytewise, concatenated).
 * nval = floor(ntok * val_fraction), 0 <= val_fraction < 1. */
int rt_data_load(const char *path, double val_fraction, rt_Data *out, Diag *d);
/* The same split over bytes already in memory (tests, other front ends). */
int rt_data_from_bytes(const void *bytes, size_t n, double val_fraction, rt_Data *out, Diag *d);
void rt_data_free(rt_Data *dt);
/* Start (index into tok) of training window (step, row):
 *   sequential: ((step * batch + row) mod W) * seq, W = (ntrain - 1) / seq
 *   random:     rt_rng_bits(rt_rng_bits(rt_init_key(seed, "data.train"), step), row)
 *               mod (ntrain - seq)
 * -1 if the training part holds no window (ntrain < seq + 1) or an argument
 * is out of range. */
int64_t rt_data_window(const rt_Data *dt, rt_Order order, uint64_t seed, int64_t step,
		       int64_t row, int64_t batch, int64_t seq);
/* tokens and targets: int32 [batch, seq] each, filled for training step `step`. */
int rt_data_batch(const rt_Data *dt, rt_Order order, uint64_t seed, int64_t step, int64_t batch,
		  int64_t seq, int32_t *tokens, int32_t *targets, Diag *d);
/* Validation: window j starts at ntrain + j * seq (targets never overlap);
 * batch b holds windows b*batch .. b*batch + batch-1; only whole batches. */
int64_t rt_data_val_batches(const rt_Data *dt, int64_t batch, int64_t seq);
int rt_data_val_batch(const rt_Data *dt, int64_t index, int64_t batch, int64_t seq,
		      int32_t *tokens, int32_t *targets, Diag *d);

/* checkpoint.c: crash-safe checkpoints in a run folder.
 *   run/ckpt-<step>/{model.safetensors, optim.safetensors, state.json}
 *   run/last.safetensors   the newest weights (a hard link or a copy)
 *   run/LATEST             "ckpt-<step>\n", for people and tools
 * A checkpoint is written as run/.ckpt-tmp-<pid>/, every file fsync'd, then
 * renamed into place and run/ fsync'd: that rename is the commit. state.json
 * is the caller's JSON object plus "step" and "files" (byte size and xxh3-128
 * of both tensor files). Older folders beyond `keep` (and any with a step
 * above the new one: an abandoned future) go only after the commit. One
 * writer per run folder: it holds rt_run_lock for as long as it writes. */
typedef struct rt_Checkpoint {
	int64_t step;
	char *dir;            /* the folder it was loaded from */
	rt_TensorFile model;  /* the model's parameters, by name */
	rt_TensorFile optim;  /* "<param>.exp_avg", "<param>.exp_avg_sq" */
	char *state_json;     /* state.json as written */
	char *warning;        /* newer checkpoints skipped, a line each saying why,
				 then the one used instead ("fell back to DIR (step N)"); or NULL */
} rt_Checkpoint;
int rt_checkpoint_save(const char *run_dir, int64_t step, const rt_NamedTensor *model, int nmodel,
		       const rt_NamedTensor *optim, int noptim, const char *state_json, int keep,
		       Diag *d);
/* The newest checkpoint whose files verify (sizes, checksums, formats):
 * 0 found, 1 none at all (no folder, or no checkpoint in it), -1 error
 * (none verifies, each problem in d; or one could not be checked at all,
 * out of memory or an I/O error, which never falls back to an older one).
 * Damaged newer checkpoints that were skipped are described in warning. */
int rt_checkpoint_load_latest(const char *run_dir, rt_Checkpoint *out, Diag *d);
/* One checkpoint folder, verified the same way. */
int rt_checkpoint_load(const char *ckpt_dir, rt_Checkpoint *out, Diag *d);
void rt_checkpoint_free(rt_Checkpoint *c);
/* The run folder's writer lock: an exclusive flock on run/.lock (which
 * holds the holder's pid, for messages), kept until rt_run_unlock or the
 * process's end, dead or alive. With `create` the folder is made first
 * (its parents must exist). 0 locked (*fd >= 0), 1 no such folder (only
 * without create), -1 error: another process holds it (its pid in d), or
 * the path is not a folder or cannot be opened. */
int rt_run_lock(const char *run, bool create, int *fd, Diag *d);
void rt_run_unlock(int fd);

/* sample.c: the next token from a row of logits. temperature <= 0 is greedy
 * (argmax, lowest index on ties). Otherwise p ~ exp((logit - max) / T),
 * restricted to the top_k largest (0: all), then to the smallest prefix of
 * those, by decreasing probability, whose renormalised mass reaches top_p
 * (<= 0 or >= 1: all), and drawn with u = rt_rng_uniform(rt_init_key(seed,
 * "sample"), counter). NaN logits never win; returns -1 if no logit is
 * finite or one is +inf. scratch holds rt_sample_scratch_size(n) bytes;
 * nothing is allocated. */
typedef struct rt_SampleOpts {
	double temperature;
	int top_k;
	double top_p;
	uint64_t seed;
} rt_SampleOpts;
size_t rt_sample_scratch_size(int n);
int rt_sample(const float *logits, int n, const rt_SampleOpts *o, uint64_t counter,
	      void *scratch);

/* generate.c: generation over programs compiled in decode mode: inputs
 * `tokens` (i32 [B, T]: T new tokens of each of B sequences) and `pos` (the
 * position of each sequence's first new token: i32[] shared, or i32[B]),
 * output `logits` (f32 [B, T, vocab]), and RT_SLOT_STATE KV caches
 * [B, ..., ctx, D] (docs/generation.md). rt_Decoder runs such a program:
 * init finds the slots (an error if the program is not a decode program),
 * reset zeroes the caches, run feeds tok[B*T] at pos[B] and returns the
 * logits (valid until the next run), or NULL with an error if a position
 * does not fit the context or a token is outside [0, vocab); step is run
 * for a program of one token of one sequence. Nothing is allocated. */
typedef struct rt_Decoder {
	rt_Exec *e;
	int32_t *tok, *pos;   /* the input slots in the arena */
	const float *logits;  /* the output slot */
	int64_t vocab, ctx;   /* ctx: the fewest rows of any cache */
	int64_t nseq, seq;    /* B sequences of T tokens per run */
	int64_t npos;         /* entries of pos: 1 (B = 1, shared) or B */
	int nstate;
} rt_Decoder;
int rt_decoder_init(rt_Decoder *dc, rt_Exec *e, Diag *d);
void rt_decoder_reset(rt_Decoder *dc);
const float *rt_decoder_run(rt_Decoder *dc, const int32_t *tok, const int64_t *pos, Diag *d);
const float *rt_decoder_step(rt_Decoder *dc, int32_t token, int64_t pos, Diag *d);
/* rt_generate_batch: continue nseq prompts together with decode program e
 * (T = 1, B = nseq): feed prompt[b][0 .. nprompt[b]) at positions 0, 1, ...
 * of sequence b, then choose max_new tokens into out[b][], token i of
 * sequence b drawn by rt_sample(logits, vocab, sample with seed + b,
 * counter = i) and fed back at its next position. With `prefill` (a decode
 * program of the same model with B = 1 and T > 1, parameters loaded), each
 * prompt runs through it in chunks of T, its caches are copied into the
 * sequence's rows of e's, and decoding goes on from there; the tokens are
 * the same as without it, and each sequence's are those it gets alone
 * (rt_generate). The model sees at most `window` positions of a sequence
 * (0 or more than ctx: ctx): when they are full, the last half is re-read
 * at positions 0 .. window/2 - 1 and generation goes on (a prompt longer
 * than the window starts that way too), so max_new is not bounded by the
 * context and the model is only ever asked about positions it was trained
 * at (pass the training sequence length). on_token, if set, sees each
 * token as it is chosen, with its sequence's index. Stats: prompt_s is the
 * time until every prompt is read, gen_s the time from then to the last
 * new token; counts are summed over the sequences. Everything is allocated
 * before the loop, nothing inside it. rt_generate is one sequence. */
typedef struct rt_GenOpts {
	rt_SampleOpts sample;
	int64_t max_new;
	int64_t window;       /* positions the model sees at most; 0 = the context */
	rt_Exec *prefill;     /* optional: the prompts' program, T tokens per run */
	void (*on_token)(void *user, int seq, int32_t token);
	void *user;
} rt_GenOpts;
typedef struct rt_GenStats {
	int64_t nprompt, ngen;
	int64_t nprefill;     /* prompt tokens that went through the prefill program */
	int64_t nslide;       /* times a window slid */
	double prompt_s, gen_s;
} rt_GenStats;
int rt_generate_batch(rt_Exec *e, int nseq, const int32_t *const *prompt, const int64_t *nprompt,
		      const rt_GenOpts *o, int32_t *const *out, rt_GenStats *st, Diag *d);
int rt_generate(rt_Exec *e, const int32_t *prompt, int64_t nprompt, const rt_GenOpts *o,
		int32_t *out, rt_GenStats *st, Diag *d);

/* metrics.c: run/metrics.csv, one row per call, flushed (not fsync'd) per
 * row. Header step,loss,lr,grad_norm,tokens_per_s,val_loss,elapsed_s; a NaN
 * field is written empty. Opening keeps the rows with step <= keep_through
 * (rewriting the file atomically; a cut-off last line is dropped) and drops
 * the rest, so a resumed run's file reads as an uninterrupted one;
 * keep_through < 0 starts a fresh file. */
typedef struct rt_MetricsRow {
	int64_t step;
	double loss, lr, grad_norm, tokens_per_s, val_loss, elapsed_s;  /* NAN: absent */
} rt_MetricsRow;
typedef struct rt_Metrics {
	char *path;
	FILE *f;
} rt_Metrics;
int rt_metrics_open(rt_Metrics *m, const char *run_dir, int64_t keep_through, Diag *d);
int rt_metrics_append(rt_Metrics *m, const rt_MetricsRow *r, Diag *d);
int rt_metrics_close(rt_Metrics *m, Diag *d);

/* --- Training (docs/training.md). --- */

/* trainer.c: the training loop over a program compiled with training and
 * the optimiser (phases forward, backward, update; "optim.hparams"). It
 * never prints: progress goes to a callback. The learning rate of step s
 * (0-based, s < steps) is computed in double:
 *   s < warmup:        lr * (s + 1) / warmup
 *   constant:          lr
 *   cosine:            lr * (0.1 + 0.9 * 0.5 * (1 + cos(pi * p))),
 *                      p = min(1, (s - warmup) / max(1, steps - 1 - warmup))
 * so cosine reaches 10% of lr at the last step. Bias corrections are
 * 1 - beta^(s+1) in double; every hparam is then rounded to f32. */
typedef enum rt_Schedule { RT_SCHED_COSINE, RT_SCHED_CONSTANT } rt_Schedule;
typedef struct rt_TrainConfig {
	int64_t batch, seq;       /* must match the program's tokens/targets [batch, seq] */
	int64_t steps;            /* total steps of the run */
	int64_t warmup;
	rt_Schedule schedule;
	double lr, beta1, beta2, eps, weight_decay;
	double clip;              /* max global grad norm; 0 = off */
	uint64_t seed;            /* data order (and the tool's init) */
	rt_Order order;
	double val_fraction;      /* recorded for the tools (they load the data) */
	int64_t eval_every;       /* validation every N steps (and at the end); 0 = never */
	int64_t eval_batches;     /* validation batches per evaluation; 0 = all */
	int64_t save_every;       /* checkpoint every N steps (and at the end); 0 = end only; default 500 */
	int keep;                 /* checkpoints kept in the run folder (>= 1) */
	const char *run_dir;      /* checkpoints and metrics.csv; NULL = none */
} rt_TrainConfig;
void rt_train_defaults(rt_TrainConfig *c);
double rt_train_lr(const rt_TrainConfig *c, int64_t step);
/* The f32 values written to "optim.hparams" before step `step`. */
void rt_train_hparams(const rt_TrainConfig *c, int64_t step, float hp[RT_HP_COUNT]);
/* The numeric fields of a config as a JSON object (mem_free the text), and
 * back: fields present in the JSON overwrite those of c. */
char *rt_train_config_json(const rt_TrainConfig *c);
int rt_train_config_parse(const char *json, rt_TrainConfig *c, Diag *d);

typedef struct rt_TrainStatus {
	int64_t step;             /* steps done, this one included (1-based) */
	int64_t steps;
	double loss;              /* training loss of this step, before its update */
	double lr, grad_norm;     /* grad_norm: before clipping */
	double val_loss;          /* NAN unless validated after this step */
	double tokens_per_s, elapsed_s;
	bool saved;               /* a checkpoint of this step was written */
} rt_TrainStatus;
/* Called after every step; returning nonzero stops the run after a final
 * checkpoint (e.g. on Ctrl-C). */
typedef int (*rt_TrainCallback)(void *user, const rt_TrainStatus *st);

typedef struct rt_Trainer rt_Trainer;
/* e's parameters must already hold the starting weights (init or loaded);
 * e, data and c (with run_dir) must outlive the trainer. Moments start at
 * zero. */
int rt_trainer_create(rt_Exec *e, const rt_Data *data, const rt_TrainConfig *c, rt_Trainer **out,
		      Diag *d);
void rt_trainer_destroy(rt_Trainer *t);
/* Continue from a checkpoint (rt_checkpoint_load_latest of the run
 * folder): weights, moments and the step count. Every parameter and moment
 * must be in it with its shape, and nothing else. */
int rt_trainer_resume(rt_Trainer *t, const rt_Checkpoint *ck, Diag *d);
int64_t rt_trainer_step_count(const rt_Trainer *t);   /* steps done */
/* One step: batch `step` of the data, hparams, forward, backward, update.
 * A non-finite loss or gradient stops before the update: returns 1, names
 * the first kernel whose output was not finite in d, and leaves the weights
 * as they were. 0 ok, -1 other errors. */
int rt_trainer_step(rt_Trainer *t, rt_TrainStatus *st, Diag *d);
/* Mean loss of the forward phase over validation batches 0 .. n-1 (n = 0:
 * all); weights and moments are untouched. NAN with an error in d if the
 * validation part holds no whole batch. */
double rt_trainer_eval(rt_Trainer *t, int64_t nbatch, Diag *d);
int rt_trainer_save(rt_Trainer *t, Diag *d);
/* The loop: steps until c->steps, validation, checkpoints, metrics.csv
 * (when run_dir is set), the callback. 0 done, 1 stopped by the callback
 * (checkpoint written), 2 stopped on a non-finite value (no checkpoint of
 * the bad step), -1 error. */
int rt_trainer_run(rt_Trainer *t, rt_TrainCallback cb, void *user, Diag *d);

/* --- Biomedical classification tasks (docs/tasks.md): PubMedQA, HoC and
 * medical abstracts, read from the layout of ../shared/data, scored by the
 * likelihood a language model gives each label's text after a prompt. --- */

/* task_metrics.c: the scores as pure functions. Gold labels and
 * predictions are bit sets over at most 32 classes (bit c = class c; a
 * single-label example has exactly one bit). Per class, tp / fp / fn are
 * counts (doubles, so that expected counts of a random guesser fit too).
 * F1 of one count triple is 2 tp / (2 tp + fp + fn), 0 when that is 0 / 0
 * (scikit-learn's zero_division = 0). Macro-F1 is the mean of the classes'
 * F1 over the classes that occur in the gold labels or the predictions
 * (scikit-learn's labels = union of both); micro-F1 is the F1 of the counts
 * summed over all classes (BioGPT's HoC score). Accuracy is the fraction of
 * examples whose predicted set equals the gold set. */
typedef struct rt_Counts {
	double tp, fp, fn;
} rt_Counts;
double rt_f1(rt_Counts c);
void rt_class_counts(const uint32_t *gold, const uint32_t *pred, int64_t n, int nclass,
		     rt_Counts *out);
double rt_accuracy(const uint32_t *gold, const uint32_t *pred, int64_t n);
double rt_macro_f1(const rt_Counts *c, int nclass);
double rt_micro_f1(const rt_Counts *c, int nclass);
/* Baselines. rt_majority_class: the class set in the most gold labels
 * (the lowest index on ties; -1 if n = 0). rt_random_counts: the expected
 * counts of a guesser that predicts class c with probability p[c],
 * independently of the example: tp = n_c p, fp = (n - n_c) p,
 * fn = n_c (1 - p), n_c the examples whose gold set holds c. Its scores
 * are those of the expected counts (not the expectation of the ratio). */
int rt_majority_class(const uint32_t *gold, int64_t n, int nclass);
void rt_random_counts(const uint32_t *gold, int64_t n, int nclass, const double *p,
		      rt_Counts *out);

/* task.c: the task table, the splits, the prompts and the decision rule.
 * A task's example is a document (and, for PubMedQA, a question) with its
 * gold class set. Each example gives nquery prompts; after each prompt the
 * same nlabel label texts are scored, nquery * nlabel candidates in all:
 *   pubmedqa      1 prompt, labels " yes" " no" " maybe", classes the same
 *   medabstracts  1 prompt, the 5 condition names, classes the same
 *   hoc           10 prompts, one per hallmark, labels " yes" " no";
 *                 classes the 10 hallmarks and "empty" (multi-label)
 * The exact prompt texts are in task.c and docs/tasks.md. */
typedef enum rt_TaskId { RT_TASK_PUBMEDQA, RT_TASK_HOC, RT_TASK_MEDABS, RT_TASK_COUNT } rt_TaskId;
typedef enum rt_Split { RT_SPLIT_TRAIN, RT_SPLIT_DEV, RT_SPLIT_TEST, RT_SPLIT_ALL,
			RT_SPLIT_COUNT } rt_Split;
extern const char *const rt_split_name[RT_SPLIT_COUNT];   /* "train", "dev", "test", "all" */
enum { RT_TASK_MAX_CLASS = 16, RT_TASK_MAX_LABEL = 8 };
typedef struct rt_TaskInfo {
	rt_TaskId id;
	const char *name;         /* as --task spells it: "pubmedqa", "hoc", "medabstracts" */
	const char *dir;          /* its folder under the data root */
	bool multilabel;
	int nclass;
	const char *class_name[RT_TASK_MAX_CLASS];
	int nlabel;
	const char *label[RT_TASK_MAX_LABEL];   /* the texts scored, bytes as they are */
	int nquery;               /* prompts per example */
} rt_TaskInfo;
extern const rt_TaskInfo rt_tasks[RT_TASK_COUNT];
const rt_TaskInfo *rt_task_find(const char *name);   /* NULL if unknown */

typedef struct rt_TaskExample {
	const char *id;           /* PMID, or the data row number (medabstracts) */
	const char *text;         /* the document: contexts joined, or the abstract */
	const char *question;     /* PubMedQA's question, else NULL */
	uint32_t gold;            /* bit set of classes */
	uint8_t split;            /* rt_Split */
	uint64_t order;           /* hash of the id: the order examples are served in */
} rt_TaskExample;
typedef struct rt_TaskSet {
	const rt_TaskInfo *info;
	Vec ex;                   /* rt_TaskExample */
	Arena arena;              /* the strings */
} rt_TaskSet;
static inline rt_TaskExample *rt_task_example(const rt_TaskSet *s, int64_t i)
{
	return &VEC_AT(s->ex, rt_TaskExample, i);
}
/* The examples of `split` of task t from root/<t->dir>/ (files and formats
 * in docs/tasks.md), every input checked with an error at file:line:col or
 * at a JSON byte; in the order of a hash of their ids (so that the first
 * `limit` of them, limit > 0, are a fixed sample of the split). The splits:
 * PubMedQA's test is the official 500 of test_ground_truth.json, the other
 * 500 are dev when hash64(PMID) % 10 == 0 and train otherwise; HoC by
 * hash64(PMID) and medical abstracts by hash64(abstract) % 10: 0-6 train,
 * 7 dev, 8-9 test. */
int rt_task_load(const rt_TaskInfo *t, const char *root, rt_Split split, int64_t limit,
		 rt_TaskSet *out, Diag *d);
void rt_task_free(rt_TaskSet *s);
/* Prompt q of example x into buf[0 .. cap): returns its length, which may
 * be more than cap (then only cap bytes were written; call again). */
size_t rt_task_prompt(const rt_TaskInfo *t, const rt_TaskExample *x, int q, char *buf,
		      size_t cap);
/* The decision: score[q * nlabel + l] is label l's score after prompt q.
 * Single-label: the class of the best label (the lowest on ties; NaN never
 * wins). HoC: hallmark q when " yes" scores above " no", and "empty" when
 * no hallmark does. */
uint32_t rt_task_predict(const rt_TaskInfo *t, const double *score);
/* The split an id falls in, by its hash (HoC and medical abstracts; for
 * PubMedQA's other half, dev or train). */
rt_Split rt_task_hash_split(const char *id, size_t len, bool pubmedqa);
/* Pre-training on evaluation text: the first file under path (a file, or a
 * folder walked as rt_data_load walks it) that is a task's data file by its
 * name and place (pubmedqa/ori_pqal.json, hoc/text/<PMID>.txt, ...). Returns
 * the task and writes the file's path into file[0 .. n), or NULL. */
const rt_TaskInfo *rt_task_data_in(const char *path, char *file, size_t n);

/* The readers, one per task file format (task_pubmedqa.c, task_hoc.c,
 * task_medabs.c). Each appends every example of its files to s with its
 * split, from text already in memory (the fuzz targets call them so) or
 * from the task's folder; errors are located in the Source. rt_task_add
 * copies the strings into s->arena; rt_task_error reports at byte `at` of
 * src as "file:line:col: error: ..." (quoting the line if it is short). */
int rt_pubmedqa_parse(const Source *ori, const Source *truth, rt_TaskSet *s, Diag *d);
int rt_pubmedqa_read(const char *dir, rt_TaskSet *s, Diag *d);
int rt_hoc_parse(const char *pmid, const Source *text, const Source *labels, rt_TaskSet *s,
		 Diag *d);
int rt_hoc_read(const char *dir, rt_TaskSet *s, Diag *d);
int rt_medabs_parse(const Source *csv, rt_TaskSet *s, Diag *d);
int rt_medabs_read(const char *dir, rt_TaskSet *s, Diag *d);
int rt_task_add(rt_TaskSet *s, const char *id, const char *text, size_t ntext,
		const char *question, uint32_t gold, rt_Split split, Diag *d);
int rt_task_error(Diag *d, const Source *src, size_t at, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* task_score.c: classification by label likelihood with a forward program:
 * input "tokens" i32 [B, T], output "logits" f32 [B, T, V] (V >= 256, byte
 * tokens). Each candidate (prompt, label) is one row: the prompt cut from
 * the left to its last T + 1 - Lmax bytes (Lmax the task's longest label,
 * so every label of a prompt follows the same text), then the label's
 * bytes but the last. Its score, by norm:
 *   sum   log p(label | prompt): the sum over the label's bytes of
 *         log softmax(logits)[byte] at the position before it
 *   mean  that sum over the label's length in bytes
 *   pmi   sum - log p(label | the content-free prompt: the template with an
 *         empty document and question), scored once per task
 * Rows are filled with the candidates of consecutive examples, B per run;
 * what follows a candidate in its row is padding (the model is causal).
 * Buffers are allocated before the first run. */
typedef enum rt_TaskNorm { RT_NORM_SUM, RT_NORM_MEAN, RT_NORM_PMI, RT_NORM_COUNT } rt_TaskNorm;
extern const char *const rt_task_norm_name[RT_NORM_COUNT];   /* "sum", "mean", "pmi" */
typedef struct rt_TaskScoreOpts {
	rt_TaskNorm norm;
	/* Called after each run with candidates done and in all; may be NULL. */
	void (*progress)(void *user, int64_t done, int64_t total);
	void *user;
} rt_TaskScoreOpts;
typedef struct rt_TaskScores {
	double *score;            /* [nex][nquery][nlabel] (mem_free) */
	uint32_t *pred;           /* [nex] (mem_free) */
	double *prior;            /* pmi: [nquery][nlabel] content-free log p; else NULL */
	int64_t ncand, nrun;      /* candidates of the examples scored, forward runs */
	int64_t ntrunc;           /* prompts cut to fit the window */
	int64_t prompt_bytes;     /* the longest prompt, before cutting */
	double seconds;
} rt_TaskScores;
int rt_task_score(rt_Exec *e, const rt_TaskSet *s, const rt_TaskScoreOpts *o,
		  rt_TaskScores *out, Diag *d);
void rt_task_scores_free(rt_TaskScores *r);
/* The longest label of t, in bytes, and the input length the candidates
 * of s would need uncut (the longest prompt + label - 1): no row is longer. */
int64_t rt_task_max_label(const rt_TaskInfo *t);
int64_t rt_task_needed_seq(const rt_TaskSet *s);

/* task_metrics.c (continued): a task's scores and its baselines.
 * Single-label tasks: accuracy and macro-F1; HoC: micro-F1 over the 11
 * classes. Majority: every example gets the class most frequent in the gold
 * labels of the examples scored. Random: uniform over the classes
 * (single-label), or each hallmark with probability 1/2 and "empty" when
 * none is drawn (HoC), as expected counts. For HoC also "all": every
 * hallmark predicted for every abstract, which a model that always answers
 * yes scores, and which micro-F1 rates above the majority class. */
typedef struct rt_TaskReport {
	double accuracy, macro_f1, micro_f1;          /* the model's */
	double maj_accuracy, maj_macro_f1, maj_micro_f1;
	double rnd_accuracy, rnd_macro_f1, rnd_micro_f1;
	double all_micro_f1;      /* multi-label: every class but the last ("empty") predicted */
	int majority;                                 /* the majority class */
	int64_t n, count[RT_TASK_MAX_CLASS];          /* examples, and per gold class */
} rt_TaskReport;
void rt_task_report(const rt_TaskSet *s, const uint32_t *pred, rt_TaskReport *r);
/* task_predictions.c: TSV (a header, then id, gold, pred, correct, one
 * score column per candidate; class sets joined by '|' as BioGPT writes
 * them) or, when the name ends in ".jsonl", one JSON object per line.
 * Written atomically. */
int rt_task_write_predictions(const char *path, const rt_TaskSet *s, const rt_TaskScores *r,
			      Diag *d);

#endif
