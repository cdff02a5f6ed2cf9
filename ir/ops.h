/* ops.h: the op set and the node attributes, one line each (X-macros,
 * like QBE's ops.h).
 *
 *   X(NAME, "printed name", arity, flags, attributes, "meaning")
 *
 * arity -1 means variadic (at least one operand). Every per-op table in the
 * code base is indexed by Op and guarded by static_assert(OP_COUNT == ...),
 * so adding an op here makes every table that forgot it fail to compile.
 * `attributes` is the set (IRA_*) of the attributes below that the op
 * carries: the printer prints exactly these, the reader requires exactly
 * these, and the structural hash, the backend's kernel dedup key and the
 * verifier cover exactly these, so giving an op an attribute is one edit of
 * its line. Shapes are always concrete: symbolic input dims are bound before
 * lowering.
 *
 * Attributes, one line each (ir.h's AttrKind says how each kind is written):
 *
 *   X(ID, "word", kind, Node field, flag bit, code, "meaning")
 *
 * word is what the text form writes (for INIT, the initialiser names
 * instead); a FLAG lives in one bit of Node.flags (the NF_* below), every
 * other kind in its own field, whose size a static_assert in graph.c checks
 * against the kind; code says whether a kernel's code depends on it (the
 * dedup key skips the others). The order is the printed order. A new
 * attribute of an existing kind is one line here (and a Node field or a free
 * NF_ bit); printer, reader, hash, key and verifier need no change. */
enum {
	NF_KEEPDIM = 1 << 0,  /* reductions keep the reduced axis with size 1 */
	NF_TRANS_A = 1 << 1,  /* matmul reads A transposed in its last two axes */
	NF_TRANS_B = 1 << 2,  /* matmul (spmm) reads B transposed in its last two axes */
	NF_FROZEN = 1 << 3,   /* param receives no gradient */
	NF_UNROLLED = 1 << 4, /* spmm: code specialised to the mask's pattern */
	NF_DECAY = 1 << 5,    /* adamw, adamw_masked: apply weight decay */
	NF_SKIPZEROS = 1 << 6, /* matmul: a 0 in A adds nothing, whatever B holds */
};

#define IR_ATTRS(X)                                                                               \
	/* before the operands */                                                                 \
	X(NAME, "name", NAME, name, 0, 0, "input, param, state name; mask: its param's")          \
	X(VALUE, "value", LEAD, value, 0, 1, "const fill value")                                  \
	/* in the type after the colon: the builder (or the text) gives it */                     \
	X(DTYPE, "dtype", DTYPE, dtype, 0, 1, "sources, cast, iota_offset")                       \
	X(SHAPE, "shape", SHAPE, shape, 0, 1, "sources, reshape, broadcast, gather_grad")         \
	/* after the operands, in this order */                                                   \
	X(INIT, "init", INIT, init, 0, 1, "param initialiser; normal's std in Node.value")        \
	X(FROZEN, "frozen", FLAG, flags, NF_FROZEN, 1, "param receives no gradient")              \
	X(AXIS, "axis", INT, axis, 0, 1, "reductions, slice, concat, max_grad")                   \
	X(LO, "lo", INT, lo, 0, 1, "slice: first index")                                          \
	X(HI, "hi", INT, hi, 0, 1, "slice: one past the last index")                              \
	X(PERM, "perm", PERM, perm, 0, 1, "permute: output axis i is input axis perm[i]")         \
	X(KEEPDIM, "keepdim", FLAG, flags, NF_KEEPDIM, 1, "reductions keep the axis as size 1")   \
	X(TRANS_A, "transa", FLAG, flags, NF_TRANS_A, 1, "matmul: A stored [...,K,M]")            \
	X(TRANS_B, "transb", FLAG, flags, NF_TRANS_B, 1, "matmul: B stored [...,N,K]; spmm")      \
	X(UNROLLED, "unrolled", FLAG, flags, NF_UNROLLED, 1, "spmm: code specialised to the pattern") \
	X(DECAY, "decay", FLAG, flags, NF_DECAY, 1, "adamw, adamw_masked: apply weight decay")    \
	X(SKIPZEROS, "skipzeros", FLAG, flags, NF_SKIPZEROS, 1, "matmul: 0 in A adds 0, even x NaN")

/* matmul with `skipzeros`: a term A(m,k) * B(k,n) with A(m,k) = 0 is 0 even
 * where B(k,n) is NaN or inf. The frontend sets it on softmax(causal_mask(s))
 * @ v, autodiff on that product's gradient for v: a masked key has
 * probability exactly 0, so its value row, whatever it holds (a later
 * position's NaN, a stale KV cache row past pos), reaches no query. Where B
 * is finite the result is a plain matmul's bit for bit, up to the sign of
 * a zero sum (a skipped term would add +-0).
 *
 * The ops from GELU_GRAD to BROADCAST are the kernels of the backward graph
 * that passes/autodiff.c builds (docs/autodiff.md has the rules). Each is one
 * pass over its data, so it stays one kernel; the meanings in detail:
 *   gelu_grad x, dy        dy * gelu'(x), gelu' of GELU's tanh form
 *   silu_grad x, dy        dy * s * (1 + x * (1 - s)), s = sigmoid(x)
 *   relu_grad x, dy        x > 0 ? dy : 0
 *   softmax_grad y, dy     y * (dy - sum(dy * y)), the sum over the last axis
 *                          of each row; y is the softmax's output
 *   cross_entropy_grad logits, targets, dl
 *                          (softmax(row) - onehot(target)) * dl / rows, with
 *                          dl an f32 scalar and rows = numel(targets)
 *   gather_grad idx, dy    [V,D] zeros, then row idx[i] += dy[i,:] for every i
 *                          in index order (a deterministic scatter-add); V is
 *                          the first dim of the node's shape (IRA_SHAPE)
 *   causal_mask_grad dy    dy with 0 where causal_mask puts -inf
 *   max_grad x, dy         x's shape; along `axis`, each row's first maximal
 *                          element of x gets the row's dy, the others 0; dy
 *                          has max's result shape, with or without keepdim
 *   broadcast x            x repeated to the node's shape (IRA_SHAPE) by
 *                          numpy broadcasting
 *
 * The four after them serve decoding with a KV cache (frontend decode mode):
 *   state "name"           a named tensor that lives across runs: zero when
 *                          the program is bound, then whatever the last run
 *                          left (RT_SLOT_STATE, never saved in checkpoints)
 *   cache_write cache, x, pos
 *                          cache [...,C,D], x [...,T,D] (the same leading
 *                          dims), pos an i32 scalar: the result is cache
 *                          with rows [pos, pos+T) of axis -2 replaced by x.
 *                          It aliases the cache's memory (plan_memory), so
 *                          the write is in place and persists when cache is
 *                          a state; readers use the result, which orders
 *                          them after the write. cache must be a state or
 *                          another cache_write. pos + T > C or pos < 0 is
 *                          an error in the interpreter; kernels write
 *                          nothing then (callers check positions first)
 *   iota_offset off        [n]: off, off+1, ..., off+n-1 (IRA_DTYPE,
 *                          IRA_SHAPE as iota; off an i32 scalar)
 *   causal_mask_offset x, off
 *                          x[...,T,S] with -inf where key j > query i + off,
 *                          off an i32 scalar (causal_mask is off = S - T)
 *
 * Sparsity (passes/prune.c, docs/sparsity.md):
 *   mask "name"            f32, the shape of param "name": 1 where the
 *                          param's entry is kept, 0 where it is pruned; the
 *                          bits live in the graph's mask list (Graph.mask),
 *                          not in the node, and the runtime fills the
 *                          value once when a program is bound. Readers of
 *                          a sparse param read mul(param, mask) instead.
 *
 * The sparse products (passes/sparse_lower.c, docs/sparsity.md) work in a
 * blocked "feature-major" layout [blocks, features, B]: block b holds rows
 * b*B .. b*B+B-1 of the activations, one feature per row of B floats, so
 * the vector lanes of the kernels run along the activation rows and every
 * kept weight is one broadcast FMA per vector. Blocking (B = 128 or 64 when
 * it divides M) keeps a block's features contiguous: with a whole [K,M]
 * transpose the rows sat a power-of-two stride apart and fought over the
 * same cache sets. W is a sparse param [K,N] (never read where its mask
 * is 0), and for every block:
 *   spmm at, W             at [.,K,B] -> out [.,N,B]: out = (W*mask)^T @ at
 *                          (the forward y = x @ W, transposed)
 *   spmm at, W transb      at [.,N,B] -> out [.,K,B]: out = (W*mask) @ at
 *                          (the input gradient dx = dy @ W^T, transposed)
 *   sddmm at, bt, W        at [.,K,B], bt [.,N,B] -> out [K,N]: the sum
 *                          over blocks of at @ bt^T at W's kept entries,
 *                          exactly 0 at pruned ones (the weight gradient
 *                          x^T @ dy, sampled)
 * The flag `unrolled` selects code specialised to the pattern (indices as
 * constants) instead of the compressed-row kernel; results are the same
 * sums in the same order.
 *
 * The optimiser update (passes/optimize.c, docs/training.md), appended
 * after the backward graph. Its scalars are one f32[IR_HP_COUNT] input hp
 * (IrHParam order: lr, beta1, beta2, eps, weight decay, the bias
 * corrections 1 - beta1^t and 1 - beta2^t, the clip norm, and the
 * gradient norm the update writes back); the moments are states.
 *   sumsq g                f64[ceil(numel/IR_SUMSQ_CHUNK)]: element c is the
 *                          sum of g^2 over chunk c of g (row-major, chunks of
 *                          IR_SUMSQ_CHUNK elements), summed in f64
 *   grad_norm hp, s1..sn   f32[]: the clip factor. norm = sqrt of the sum of
 *                          every element of s1..sn in order (f64); writes
 *                          f32(norm) to hp[IR_HP_GRAD_NORM] in place; the
 *                          factor is min(1, clip / (norm + 1e-6)) when
 *                          hp[IR_HP_CLIP] > 0, else 1, and 1 for a NaN norm
 *   adamw p, g, m, v, hp, clip
 *                          one AdamW step of the param p in place, with the
 *                          states m, v (its moments) updated in place too:
 *                            g' = g * clip
 *                            p  = p * (1 - lr * wd)        only with `decay`
 *                            m  = beta1 * m + (1 - beta1) * g'
 *                            v  = beta2 * v + (1 - beta2) * g' * g'
 *                            p  = p - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
 *                          the result is the new p and aliases p's memory
 *   adamw_masked p, g, m, v, hp, clip, mask
 *                          adamw, then p, m and v are 0 where mask is 0
 * The three that write memory in place (OPF_EFFECT) are what the update is
 * for: dce keeps them when training although nothing reads them. */
#define IR_OPS(X)                                                                                     \
	/* sources: no operands */                                                                    \
	X(INPUT, "input", 0, OPF_SOURCE, IRA_NAME | IRA_DTYPE | IRA_SHAPE,                            \
	  "graph input, bound by name at run time")                                                   \
	X(PARAM, "param", 0, OPF_SOURCE, IRA_NAME | IRA_DTYPE | IRA_SHAPE | IRA_INIT | IRA_FROZEN,    \
	  "parameter: named, initialised, trainable")                                                 \
	X(CONST, "const", 0, OPF_SOURCE, IRA_VALUE | IRA_DTYPE | IRA_SHAPE,                           \
	  "tensor filled with one scalar value")                                                      \
	X(IOTA, "iota", 0, OPF_SOURCE, IRA_DTYPE | IRA_SHAPE,                                         \
	  "0,1,...,n-1 along the last axis (position ids)")                                           \
	/* elementwise unary */                                                                       \
	X(NEG, "neg", 1, OPF_UNARY, 0, "-x")                                                          \
	X(EXP, "exp", 1, OPF_UNARY, 0, "e^x")                                                         \
	X(LOG, "log", 1, OPF_UNARY, 0, "natural logarithm")                                           \
	X(TANH, "tanh", 1, OPF_UNARY, 0, "hyperbolic tangent")                                        \
	X(SQRT, "sqrt", 1, OPF_UNARY, 0, "square root")                                               \
	X(RSQRT, "rsqrt", 1, OPF_UNARY, 0, "1/sqrt(x)")                                               \
	X(GELU, "gelu", 1, OPF_UNARY, 0, "GELU, tanh approximation (GPT-2)")                          \
	X(RELU, "relu", 1, OPF_UNARY, 0, "max(x, 0)")                                                 \
	X(SILU, "silu", 1, OPF_UNARY, 0, "x * sigmoid(x)")                                            \
	X(CAST, "cast", 1, OPF_UNARY, IRA_DTYPE, "convert to the node's dtype")                       \
	/* elementwise binary, numpy broadcasting */                                                  \
	X(ADD, "add", 2, OPF_BINARY, 0, "a + b")                                                      \
	X(SUB, "sub", 2, OPF_BINARY, 0, "a - b")                                                      \
	X(MUL, "mul", 2, OPF_BINARY, 0, "a * b")                                                      \
	X(DIV, "div", 2, OPF_BINARY, 0, "a / b")                                                      \
	/* reductions over one axis */                                                                \
	X(SUM, "sum", 1, OPF_REDUCE, IRA_AXIS | IRA_KEEPDIM, "sum over axis")                         \
	X(MEAN, "mean", 1, OPF_REDUCE, IRA_AXIS | IRA_KEEPDIM, "mean over axis")                      \
	X(MAX, "max", 1, OPF_REDUCE, IRA_AXIS | IRA_KEEPDIM, "maximum over axis")                     \
	/* linear algebra */                                                                          \
	X(MATMUL, "matmul", 2, 0, IRA_TRANS_A | IRA_TRANS_B | IRA_SKIPZEROS,                          \
	  "[...,M,K] @ [...,K,N], batch dims broadcast")                                              \
	/* data movement */                                                                           \
	X(RESHAPE, "reshape", 1, OPF_VIEW, IRA_SHAPE, "same elements, the node's shape")              \
	X(PERMUTE, "permute", 1, 0, IRA_PERM, "reorder axes by perm")                                 \
	X(SLICE, "slice", 1, 0, IRA_AXIS | IRA_LO | IRA_HI, "[lo,hi) along axis")                     \
	X(CONCAT, "concat", -1, 0, IRA_AXIS, "join operands along axis")                              \
	X(GATHER, "gather", 2, 0, 0, "table[V,D] rows at i32 indices[...] -> [...,D]")                \
	/* attention and loss */                                                                      \
	X(CAUSAL_MASK, "causal_mask", 1, 0, 0, "x[...,T,S] with -inf where key j > query i+S-T")      \
	X(SOFTMAX, "softmax", 1, 0, 0, "softmax over the last axis")                                  \
	X(CROSS_ENTROPY, "cross_entropy", 2, 0, 0, "mean -log softmax(logits[...,V])[target]")        \
	/* backward kernels (autodiff) */                                                             \
	X(GELU_GRAD, "gelu_grad", 2, OPF_BINARY, 0, "dy * gelu'(x)")                                  \
	X(SILU_GRAD, "silu_grad", 2, OPF_BINARY, 0, "dy * silu'(x)")                                  \
	X(RELU_GRAD, "relu_grad", 2, OPF_BINARY, 0, "x > 0 ? dy : 0")                                 \
	X(SOFTMAX_GRAD, "softmax_grad", 2, 0, 0, "y * (dy - rowsum(dy * y)), last axis")              \
	X(CROSS_ENTROPY_GRAD, "cross_entropy_grad", 3, 0, 0, "(softmax - onehot) * dl / rows")        \
	X(GATHER_GRAD, "gather_grad", 2, 0, IRA_SHAPE, "scatter-add of dy[...,D] rows into [V,D]")    \
	X(CAUSAL_MASK_GRAD, "causal_mask_grad", 1, 0, 0, "dy with 0 where the mask is -inf")          \
	X(MAX_GRAD, "max_grad", 2, 0, IRA_AXIS, "dy to the first maximal x of each row along axis")   \
	X(BROADCAST, "broadcast", 1, 0, IRA_SHAPE, "x broadcast to the node's shape")                 \
	/* decoding with a KV cache (docs/generation.md) */                                           \
	X(STATE, "state", 0, OPF_SOURCE, IRA_NAME | IRA_DTYPE | IRA_SHAPE,                            \
	  "persistent tensor kept across runs, zero at start")                                        \
	X(CACHE_WRITE, "cache_write", 3, 0, 0, "cache with x written at pos along axis -2")           \
	X(IOTA_OFFSET, "iota_offset", 1, 0, IRA_DTYPE | IRA_SHAPE,                                    \
	  "off, off+1, ..., off+n-1 (off an i32 scalar)")                                             \
	X(CAUSAL_MASK_OFFSET, "causal_mask_offset", 2, 0, 0, "x[...,T,S], -inf where j > i+off")      \
	/* sparsity (docs/sparsity.md) */                                                             \
	X(MASK, "mask", 0, OPF_SOURCE, IRA_NAME | IRA_DTYPE | IRA_SHAPE,                              \
	  "f32 0/1 mask of the named param (graph mask list)")                                        \
	X(SPMM, "spmm", 2, 0, IRA_TRANS_B | IRA_UNROLLED,                                             \
	  "(W*mask)^T @ at, or (W*mask) @ at with transb: only kept entries")                         \
	X(SDDMM, "sddmm", 3, 0, 0, "at @ bt^T at the kept entries of W's mask, 0 elsewhere")     \
	/* the optimiser update (passes/optimize.c) */                                               \
	X(SUMSQ, "sumsq", 1, 0, 0, "f64 sums of g^2, one per chunk of IR_SUMSQ_CHUNK elements")       \
	X(GRAD_NORM, "grad_norm", -1, OPF_EFFECT, 0, "clip factor of the global norm; norm to hp")    \
	X(ADAMW, "adamw", 6, OPF_EFFECT, IRA_DECAY, "AdamW step of param p (and moments m, v) in place") \
	X(ADAMW_MASKED, "adamw_masked", 7, OPF_EFFECT, IRA_DECAY, "adamw, then 0 where the mask is 0")

enum {
	OPF_SOURCE = 1 << 0, /* no operands; value comes from outside or a fill */
	OPF_UNARY = 1 << 1,  /* elementwise, one operand, same shape */
	OPF_BINARY = 1 << 2, /* elementwise, two operands, broadcast */
	OPF_REDUCE = 1 << 3, /* reduces one axis (keepdim optional) */
	OPF_VIEW = 1 << 4,   /* output aliases the operand's memory */
	OPF_EFFECT = 1 << 5, /* writes persistent memory in place (the update) */
};
