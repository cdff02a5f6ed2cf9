/* ops.h: the op set, one line per op (an X-macro, like QBE's ops.h).
 *
 *   X(NAME, "printed name", arity, flags, "meaning")
 *
 * arity -1 means variadic (at least one operand). Every per-op table in the
 * code base is indexed by Op and guarded by static_assert(OP_COUNT == ...),
 * so adding an op here makes every table that forgot it fail to compile.
 *
 * Attribute use (fields of Node):
 *   axis         reductions, concat, slice, iota (always the last axis today)
 *   lo, hi       slice bounds [lo, hi) along axis
 *   perm         permute: output axis i is input axis perm[i]
 *   value        const fill value; param initialiser std
 *   init         param initialiser kind (InitKind)
 *   name         input / param name (string id)
 *   flags        NF_KEEPDIM for reductions; NF_TRANS_A/B for matmul;
 *                NF_FROZEN for params
 * Shapes are always concrete: symbolic input dims are bound before lowering. */
#define IR_OPS(X)                                                                             \
	/* sources: no operands */                                                            \
	X(INPUT, "input", 0, OPF_SOURCE, "graph input, bound by name at run time")             \
	X(PARAM, "param", 0, OPF_SOURCE, "parameter: named, initialised, trainable")          \
	X(CONST, "const", 0, OPF_SOURCE, "tensor filled with one scalar value")                \
	X(IOTA, "iota", 0, OPF_SOURCE, "0,1,...,n-1 along the last axis (position ids)")       \
	/* elementwise unary */                                                               \
	X(NEG, "neg", 1, OPF_UNARY, "-x")                                                      \
	X(EXP, "exp", 1, OPF_UNARY, "e^x")                                                     \
	X(LOG, "log", 1, OPF_UNARY, "natural logarithm")                                       \
	X(TANH, "tanh", 1, OPF_UNARY, "hyperbolic tangent")                                    \
	X(SQRT, "sqrt", 1, OPF_UNARY, "square root")                                           \
	X(RSQRT, "rsqrt", 1, OPF_UNARY, "1/sqrt(x)")                                           \
	X(GELU, "gelu", 1, OPF_UNARY, "GELU, tanh approximation (GPT-2)")                      \
	X(RELU, "relu", 1, OPF_UNARY, "max(x, 0)")                                             \
	X(SILU, "silu", 1, OPF_UNARY, "x * sigmoid(x)")                                        \
	X(CAST, "cast", 1, OPF_UNARY, "convert to the node's dtype")                           \
	/* elementwise binary, numpy broadcasting */                                          \
	X(ADD, "add", 2, OPF_BINARY, "a + b")                                                  \
	X(SUB, "sub", 2, OPF_BINARY, "a - b")                                                  \
	X(MUL, "mul", 2, OPF_BINARY, "a * b")                                                  \
	X(DIV, "div", 2, OPF_BINARY, "a / b")                                                  \
	/* reductions over one axis */                                                        \
	X(SUM, "sum", 1, OPF_REDUCE, "sum over axis")                                          \
	X(MEAN, "mean", 1, OPF_REDUCE, "mean over axis")                                       \
	X(MAX, "max", 1, OPF_REDUCE, "maximum over axis")                                      \
	/* linear algebra */                                                                  \
	X(MATMUL, "matmul", 2, 0, "[...,M,K] @ [...,K,N], batch dims broadcast")               \
	/* data movement */                                                                   \
	X(RESHAPE, "reshape", 1, OPF_VIEW, "same elements, the node's shape")                  \
	X(PERMUTE, "permute", 1, 0, "reorder axes by perm")                                    \
	X(SLICE, "slice", 1, 0, "[lo,hi) along axis")                                          \
	X(CONCAT, "concat", -1, 0, "join operands along axis")                                 \
	X(GATHER, "gather", 2, 0, "table[V,D] rows at i32 indices[...] -> [...,D]")            \
	/* attention and loss */                                                              \
	X(CAUSAL_MASK, "causal_mask", 1, 0, "x[...,T,S] with -inf where key j > query i+S-T") \
	X(SOFTMAX, "softmax", 1, 0, "softmax over the last axis")                              \
	X(CROSS_ENTROPY, "cross_entropy", 2, 0, "mean -log softmax(logits[...,V])[target]")

enum {
	OPF_SOURCE = 1 << 0, /* no operands; value comes from outside or a fill */
	OPF_UNARY = 1 << 1,  /* elementwise, one operand, same shape */
	OPF_BINARY = 1 << 2, /* elementwise, two operands, broadcast */
	OPF_REDUCE = 1 << 3, /* reduces one axis (keepdim optional) */
	OPF_VIEW = 1 << 4,   /* output aliases the operand's memory */
};
