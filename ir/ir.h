/* ir.h: the dataflow-graph IR, its builders, verifier, printer/reader, hash,
 * shape rules and reference interpreter. One internal header for the folder;
 * each section names the file that implements it.
 *
 * The graph is a list of nodes in topological order. Each node produces one
 * value; a value's id is its node's index (ValId), never a pointer. Operand
 * lists live in one shared array (g->arg), so nodes are fixed-size. Shapes
 * are concrete: the frontend binds hyperparameters and input dims before it
 * builds a graph, so every pass and kernel sees numbers, not symbols.
 * Every node keeps the SrcLoc it came from, so passes report errors at the
 * .msw line that caused them. */
#ifndef MSW_IR_H
#define MSW_IR_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>

#include "../support/support.h"
#include "ops.h"

typedef enum Op {
#define X(name, str, arity, flags, attrs, doc) OP_##name,
	IR_OPS(X)
#undef X
	OP_COUNT
} Op;

/* f64 holds the optimiser's partial sums of squares (sumsq) and nothing
 * else: no source, arithmetic or slot is f64. */
typedef enum DType { DT_F32, DT_I32, DT_U8, DT_F64, DT_COUNT } DType;

/* The optimiser update (ops.h): the elements of its f32[IR_HP_COUNT]
 * scalars input, and the chunk of sumsq. Part of the ops' meaning, so
 * fixed: the chunks decide the order of the f64 sums, and so the bits. */
typedef enum IrHParam {
	IR_HP_LR,
	IR_HP_BETA1,
	IR_HP_BETA2,
	IR_HP_EPS,
	IR_HP_WEIGHT_DECAY,
	IR_HP_BIAS_CORR1,     /* 1 - beta1^t, t the 1-based step */
	IR_HP_BIAS_CORR2,     /* 1 - beta2^t */
	IR_HP_CLIP,           /* max global gradient norm; 0 = no clipping */
	IR_HP_GRAD_NORM,      /* written by grad_norm */
	IR_HP_COUNT
} IrHParam;
enum { IR_SUMSQ_CHUNK = 16384 };

typedef enum InitKind {
	INIT_NONE,   /* value comes from a checkpoint */
	INIT_NORMAL, /* normal(0, value) */
	INIT_ZEROS,
	INIT_ONES,
	INIT_COUNT
} InitKind;

enum { IR_MAX_RANK = 6 };

typedef uint32_t ValId;
#define VAL_NONE UINT32_MAX

typedef struct Shape {
	uint8_t rank;
	int64_t dim[IR_MAX_RANK];
} Shape;

/* A node's attribute fields are the ones ops.h's IR_ATTRS names; a new
 * attribute that needs a field of its own adds it here. */
typedef struct Node {
	uint16_t op;          /* Op */
	uint8_t dtype;        /* DType */
	uint8_t flags;        /* NF_* (ops.h) */
	uint8_t init;         /* InitKind, params only */
	uint8_t perm[IR_MAX_RANK];
	Shape shape;
	uint32_t arg, narg;   /* operands: g->arg[arg .. arg+narg) */
	int64_t axis;
	int64_t lo, hi;
	double value;
	uint32_t name;        /* string id (0 = none) for inputs and params */
	SrcLoc loc;
	int64_t offset;       /* byte offset in the arena (plan_memory); -1 before */
} Node;

typedef struct Output {
	uint32_t name;        /* string id */
	ValId val;
} Output;

/* A named dimension or hyperparameter binding recorded for the printer, so
 * the printed IR says which -D values produced it. */
typedef struct Binding {
	uint32_t name;
	int64_t value;
} Binding;

/* The gradient of the loss with respect to one trainable parameter, as the
 * autodiff pass records it: grad has the param's exact shape, dtype f32. */
typedef struct GradPair {
	ValId param, grad;
} GradPair;

/* Sparsity (docs/sparsity.md). How a target is spread over the params of
 * one distribution group: uniform gives each param the target itself;
 * erk (Erdős–Rényi-kernel, RigL) gives param [n_in, n_out] a density
 * proportional to (n_in + n_out) / (n_in * n_out), scaled so the group's
 * overall density is 1 - target (passes/prune.c has the exact rule). */
typedef enum SparseDist { SD_UNIFORM, SD_ERK, SD_COUNT } SparseDist;

/* The mask of one sparse param. The frontend records the target; the prune
 * pass decides the pattern. Three states:
 *   pending    nkept < 0: a target only, no pattern yet;
 *   decided    nkept >= 0 and bits: the pattern, bits[i] = 1 keeps element
 *              i (row-major) of the param, 0 prunes it;
 *   to supply  nkept >= 0 and bits == NULL: a pattern read back from
 *              printed IR, which records its count and hash but not the
 *              bits; such a graph verifies and prints, but cannot run
 *              until someone supplies the bits (ir_mask_set_bits).
 * hash is xxh3-128 of the numel bytes of bits (0/1): it stands for the
 * pattern in ir_hash, so two graphs with different masks never share code. */
typedef struct Mask {
	ValId param;
	double target;        /* fraction of zeros asked for, in [0, 1] */
	uint8_t dist;         /* SparseDist */
	uint8_t *bits;        /* numel bytes (mem_alloc'd, owned by the graph) or NULL */
	int64_t nkept;        /* ones in the pattern; -1 while pending */
	Hash128 hash;         /* of bits; valid when nkept >= 0 */
} Mask;

/* Where one node runs on a mesh of tiles (passes/place.c, docs/mesh.md):
 * the rectangle of tiles holding its shards, rows x cols of them from tile
 * (row, col), and its unit, the node whose tiles it shares (a weight, or
 * the first of a run of products of activations), or VAL_NONE. Like memory offsets, a placement says where the step runs, not
 * what it computes: ir_hash leaves it out, and any rewrite drops it (the
 * place pass runs last). */
typedef struct Place {
	uint32_t row, col;    /* the top-left tile */
	uint32_t rows, cols;  /* >= 1: the shards */
	ValId unit;
} Place;

typedef struct Graph {
	Vec node;             /* Node */
	Vec arg;              /* ValId */
	Vec out;              /* Output */
	Vec str;              /* char *, interned names; id 0 is "" */
	uint32_t *str_index;  /* open-addressing hash of str ids (0 = empty slot) */
	size_t str_index_cap; /* power of two, kept at most half full */
	Vec bind;             /* Binding */
	ValId loss;           /* VAL_NONE when the model has no loss */
	Vec grad;             /* GradPair, one per non-frozen param, in param
	                       * order; empty until autodiff runs */
	Vec mask;             /* Mask, at most one per param, in param order once
	                       * the prune pass ran; empty for a dense model */
	Vec place;            /* Place per node once the place pass ran, else empty */
	uint32_t mesh_name;   /* string id of the mesh placed on (0: none) */
	uint32_t mesh_rows, mesh_cols;  /* its tiles, when place is filled */
	uint32_t model_name;  /* string id */
	int64_t arena_size;   /* bytes, set by plan_memory */
	int64_t arena_guard;  /* plan_memory in checked mode: bytes no value owns
	                       * after every buffer (and before the first); 0 = none */
	Arena arena;          /* strings */
} Graph;

/* Static op table (graph.c). */
typedef struct OpInfo {
	const char *name;
	int arity;            /* -1 = variadic */
	unsigned flags;       /* OPF_* */
	unsigned attrs;       /* IRA_*: the attributes the op carries */
	const char *doc;
} OpInfo;
extern const OpInfo ir_op[OP_COUNT];
extern const char *const ir_dtype_name[DT_COUNT];
extern const char *const ir_init_name[INIT_COUNT];
int ir_dtype_size(DType t);

/* Node attributes (graph.c), declared once in ops.h's IR_ATTRS. The kind
 * says where and how an attribute is written, read and serialised; each
 * consumer (print.c, parse.c, ir_attrs_bytes, verify.c) has one case per
 * kind, so a new attribute of an existing kind needs none of them changed:
 *   NAME   string id, written quoted right after the op name
 *   LEAD   double, written right after the op name (%.17g)
 *   DTYPE  the dtype / the shape, given by the builder rather than the
 *   SHAPE  shape rule; written as the type after the colon, which the
 *          printer always writes and the hash always covers
 *   INIT   initialiser: none | zeros | ones | normal(std), std in Node.value
 *   INT    int64, written word=N
 *   F64    double, written word=X (%.17g, which reads back to the same bits)
 *   PERM   IR_MAX_RANK bytes of which the node's rank count, word=(i,j,...)
 *   FLAG   one NF_* bit of Node.flags, written as the bare word when set */
typedef enum AttrKind {
	AK_NAME, AK_LEAD, AK_DTYPE, AK_SHAPE, AK_INIT, AK_INT, AK_F64, AK_PERM, AK_FLAG,
	AK_COUNT
} AttrKind;

typedef enum AttrId {
#define X(id, word, kind, field, bit, code, doc) ATTR_##id,
	IR_ATTRS(X)
#undef X
	ATTR_COUNT
} AttrId;

enum {
#define X(id, word, kind, field, bit, code, doc) IRA_##id = 1u << ATTR_##id,
	IR_ATTRS(X)
#undef X
};

typedef struct AttrInfo {
	const char *word;
	uint8_t kind;         /* AttrKind */
	uint8_t flag;         /* NF_* bit, FLAG only */
	bool code;            /* a kernel's code depends on it (the dedup key) */
	uint16_t offset;      /* of the field in Node */
	uint16_t size;        /* of the field */
	const char *doc;
} AttrInfo;
extern const AttrInfo ir_attr[ATTR_COUNT];

static inline unsigned ir_attrs(const Node *n)
{
	return ir_op[n->op].attrs;
}
uint8_t ir_flag_mask(Op op);  /* the NF_* flags meaningful for op */
static inline void *ir_attr_field(Node *n, AttrId a)
{
	return (char *)n + ir_attr[a].offset;
}
static inline const void *ir_attr_cfield(const Node *n, AttrId a)
{
	return (const char *)n + ir_attr[a].offset;
}
/* Appends the canonical bytes of the attributes n's op carries, in table
 * order, to buf: integers as 8 little-endian bytes, doubles by their bits,
 * names by length and text, INIT as its kind plus normal's std; FLAG,
 * DTYPE and SHAPE add nothing (the caller covers flags and type, which
 * every node has). With code_only, only the attributes a kernel's code
 * depends on. The same bytes on every host; -1 on out of memory. */
int ir_attrs_bytes(const Graph *g, const Node *n, bool code_only, Vec *buf);

static inline Node *ir_node(const Graph *g, ValId v)
{
	return &VEC_AT(g->node, Node, v);
}
static inline uint32_t ir_nnode(const Graph *g)
{
	return (uint32_t)g->node.len;
}
static inline ValId ir_operand(const Graph *g, const Node *n, uint32_t i)
{
	return VEC_AT(g->arg, ValId, n->arg + i);
}
static inline const char *ir_str(const Graph *g, uint32_t id)
{
	return VEC_AT(g->str, char *, id);
}

/* graph.c */
Graph *ir_graph_create(void);
void ir_graph_destroy(Graph *g);
uint32_t ir_intern(Graph *g, const char *s);      /* UINT32_MAX on OOM */
uint32_t ir_find_str(const Graph *g, const char *s); /* 0 if absent */
int64_t ir_numel(const Shape *s);
int64_t ir_nbytes(const Graph *g, ValId v);
int ir_shape_eq(const Shape *a, const Shape *b);
void ir_shape_str(const Shape *s, char *buf, size_t n); /* "[2,3]" */
ValId ir_find_param(const Graph *g, const char *name);  /* VAL_NONE if absent */
ValId ir_find_input(const Graph *g, const char *name);
ValId ir_find_state(const Graph *g, const char *name);
int ir_set_output(Graph *g, const char *name, ValId v);
int ir_bind(Graph *g, const char *name, int64_t value);

/* Masks (Graph.mask). ir_set_mask records or replaces the target of param
 * p (a pending mask; any pattern it had is dropped). ir_mask_set_bits
 * copies numel bytes (nonzero = kept, stored as 1) and sets nkept and
 * hash. ir_find_mask: NULL if p has none. ir_clear_masks drops them all.
 * ir_sparse_candidate: the default coverage of a sparsity target, a rank-2
 * param read as operand B of a matmul (through reshapes, or through its
 * mask product) and never as the table of a gather (an embedding). */
extern const char *const ir_sparse_dist_name[SD_COUNT];
Mask *ir_set_mask(Graph *g, ValId p, double target, SparseDist dist);
Mask *ir_find_mask(const Graph *g, ValId p);
int ir_mask_set_bits(Mask *m, const uint8_t *bits, int64_t numel);
void ir_clear_masks(Graph *g);
bool ir_sparse_candidate(const Graph *g, ValId p);
/* Which params are what, by the graph's structure (never by names), one
 * rule each, used by every pass and the backend alike:
 * ir_embedding_table: p is read as the table of a gather (looking through
 * reshapes and its mask product); ir_weight_matrix: p is a param of rank
 * >= 2 that is not an embedding table (a layer's weights: the params a
 * sparsity pattern may cover); ir_param_decays: AdamW's weight decay
 * applies to p (today exactly the weight matrices). */
bool ir_embedding_table(const Graph *g, ValId p);
bool ir_weight_matrix(const Graph *g, ValId p);
bool ir_param_decays(const Graph *g, ValId p);

/* The placement (Graph.place): ir_set_mesh records the mesh, drops any
 * placement and sizes the table to one Place per node, each unplaced
 * (rows = 0) until the caller fills it; ir_clear_place forgets both.
 * ir_place: NULL when the graph is not placed. */
int ir_set_mesh(Graph *g, const char *name, uint32_t rows, uint32_t cols);
void ir_clear_place(Graph *g);
static inline Place *ir_place(const Graph *g, ValId v)
{
	return g->place.len ? &VEC_AT(g->place, Place, v) : NULL;
}

/* Append a node: `tmpl` gives op, dtype (for sources and cast) and
 * attributes; its shape is computed by ir_infer_node (sources keep the shape
 * in tmpl). Returns the new value, or VAL_NONE with an error in d (the graph
 * is left as it was). */
ValId ir_add(Graph *g, const Node *tmpl, const ValId *args, uint32_t nargs, Diag *d);

/* Builders for the common cases; all return VAL_NONE on error. */
ValId ir_input(Graph *g, const char *name, DType t, const Shape *s, SrcLoc loc, Diag *d);
ValId ir_param(Graph *g, const char *name, const Shape *s, InitKind init, double std,
	       SrcLoc loc, Diag *d);
ValId ir_const(Graph *g, double value, DType t, const Shape *s, SrcLoc loc, Diag *d);
ValId ir_iota(Graph *g, int64_t n, DType t, SrcLoc loc, Diag *d);
ValId ir_unary(Graph *g, Op op, ValId x, SrcLoc loc, Diag *d);
ValId ir_cast(Graph *g, ValId x, DType t, SrcLoc loc, Diag *d);
ValId ir_binary(Graph *g, Op op, ValId a, ValId b, SrcLoc loc, Diag *d);
ValId ir_reduce(Graph *g, Op op, ValId x, int64_t axis, bool keepdim, SrcLoc loc, Diag *d);
/* flags: NF_TRANS_A, NF_TRANS_B, NF_SKIPZEROS */
ValId ir_matmul(Graph *g, ValId a, ValId b, unsigned flags, SrcLoc loc, Diag *d);
ValId ir_reshape(Graph *g, ValId x, const Shape *s, SrcLoc loc, Diag *d);
ValId ir_permute(Graph *g, ValId x, const uint8_t *perm, SrcLoc loc, Diag *d);
ValId ir_slice(Graph *g, ValId x, int64_t axis, int64_t lo, int64_t hi, SrcLoc loc, Diag *d);
ValId ir_concat(Graph *g, const ValId *xs, uint32_t n, int64_t axis, SrcLoc loc, Diag *d);
ValId ir_gather(Graph *g, ValId table, ValId idx, SrcLoc loc, Diag *d);
ValId ir_causal_mask(Graph *g, ValId x, SrcLoc loc, Diag *d);
ValId ir_softmax(Graph *g, ValId x, SrcLoc loc, Diag *d);
ValId ir_cross_entropy(Graph *g, ValId logits, ValId targets, SrcLoc loc, Diag *d);
/* Decoding (ops.h has the exact meanings): a named persistent state; x
 * written into cache at pos along axis -2; off, off+1, ...; the causal
 * mask with key j > query i + off masked. pos and off are i32 scalars, or
 * one per sequence: i32[B] (B the leading dim), and for iota_offset
 * i32[B,1], giving [B,n]. */
ValId ir_state(Graph *g, const char *name, DType t, const Shape *s, SrcLoc loc, Diag *d);
ValId ir_cache_write(Graph *g, ValId cache, ValId x, ValId pos, SrcLoc loc, Diag *d);
ValId ir_iota_offset(Graph *g, ValId off, int64_t n, DType t, SrcLoc loc, Diag *d);
ValId ir_causal_mask_offset(Graph *g, ValId x, ValId off, SrcLoc loc, Diag *d);
/* broadcast: x repeated to shape s by numpy broadcasting. */
ValId ir_broadcast_to(Graph *g, ValId x, const Shape *s, SrcLoc loc, Diag *d);
ValId ir_max_grad(Graph *g, ValId x, ValId dy, int64_t axis, SrcLoc loc, Diag *d);
/* gelu_grad, silu_grad, relu_grad, softmax_grad, causal_mask_grad, and
 * cross_entropy_grad (three operands): the backward kernels that take no
 * attributes. */
ValId ir_grad_op(Graph *g, Op op, const ValId *args, uint32_t nargs, SrcLoc loc, Diag *d);
/* The optimiser update (ops.h): sumsq g; grad_norm hp, s[0..n); adamw
 * (with a mask: adamw_masked) of param p with gradient g, moment states
 * m, v, the scalars hp and the clip factor, flags NF_DECAY. */
ValId ir_sumsq(Graph *g, ValId x, SrcLoc loc, Diag *d);
ValId ir_grad_norm(Graph *g, ValId hp, const ValId *s, uint32_t n, SrcLoc loc, Diag *d);
ValId ir_adamw(Graph *g, ValId p, ValId grad, ValId m, ValId v, ValId hp, ValId clip,
	       ValId mask, unsigned flags, SrcLoc loc, Diag *d);
/* gather_grad: [vocab, D] rows scatter-added from dy[...,D] at idx[...]. */
ValId ir_gather_grad(Graph *g, ValId idx, ValId dy, int64_t vocab, SrcLoc loc, Diag *d);
/* The sparse products of a masked param w (ops.h): spmm with flags
 * NF_TRANS_B and NF_UNROLLED; sddmm(at, bt, w). */
ValId ir_spmm(Graph *g, ValId at, ValId w, unsigned flags, SrcLoc loc, Diag *d);
ValId ir_sddmm(Graph *g, ValId at, ValId bt, ValId w, SrcLoc loc, Diag *d);

/* rewrite.c: the one way to rewrite the graph (docs/ir.md, "Rewriting").
 * Use lists on demand: the readers of v are user[start[v] .. start[v+1]),
 * in node order (a node reading v twice is listed twice). */
typedef struct Uses {
	uint32_t *start;      /* nnode + 1 */
	ValId *user;
} Uses;
int ir_uses(const Graph *g, Uses *u, Diag *d);
void ir_uses_free(Uses *u);

/* A batch of edits, applied at once by ir_rw_commit:
 *   ir_rw_place     the nodes appended since the last place go right
 *                   before old node `at` (VAL_NONE or a new node: at the
 *                   end), in the order they were appended;
 *   ir_rw_replace   readers of v read w instead: every operand whose
 *                   reader comes after w in the final order (so the nodes
 *                   w is built from keep reading v), every output, the
 *                   loss and gradient values; chains are followed;
 *   ir_rw_remove    old node v goes; it must have no readers left.
 * The commit keeps topological order (or fails), renumbers densely and
 * keeps outputs, the loss, g->grad and g->mask consistent. On failure, or
 * after ir_rw_abort, the graph is exactly as it was at ir_rw_begin;
 * either way the Rewrite is released. */
typedef struct RwRepl {
	ValId from, to;
} RwRepl;
typedef struct Rewrite {
	Graph *g;
	uint32_t n0;          /* nodes at ir_rw_begin */
	size_t narg0;         /* operand slots at ir_rw_begin */
	Vec place;            /* ValId per appended node: the old node it precedes */
	Vec repl;             /* RwRepl */
	bool *removed;        /* n0 flags */
} Rewrite;
int ir_rw_begin(Graph *g, Rewrite *rw, Diag *d);
int ir_rw_place(Rewrite *rw, ValId at, Diag *d);
int ir_rw_replace(Rewrite *rw, ValId v, ValId w, Diag *d);
void ir_rw_remove(Rewrite *rw, ValId v);
int ir_rw_commit(Rewrite *rw, Diag *d);
void ir_rw_abort(Rewrite *rw);

/* shape.c: the shape and dtype rule of every op. Reads the node's operands
 * and attributes and writes n->shape (and n->dtype where the op decides it).
 * Negative axes are normalised in place. Returns 0, or -1 with an error at
 * n->loc that names the shapes involved. */
int ir_infer_node(Graph *g, Node *n, Diag *d);
int ir_broadcast(const Shape *a, const Shape *b, Shape *out); /* -1 if incompatible */

/* verify.c: structural invariants (topological order, arity, operand ids,
 * dtypes, shapes agree with the rules, names unique). 0 or -1 with errors. */
int ir_verify(const Graph *g, Diag *d);

/* print.c / parse.c: the textual IR. ir_parse(ir_print(g)) == g structurally. */
char *ir_print(const Graph *g);               /* mem_free the result */
int ir_parse(const Source *src, Graph **out, Diag *d);

/* structural_hash.c: structural hash (xxh3) over ops, dtypes, shapes, attributes,
 * operands, names, outputs, the loss, the gradient list and the masks
 * (target, distribution, count and pattern hash); source locations and
 * memory offsets excluded. */
Hash128 ir_hash(const Graph *g);

/* interp.c: the reference interpreter, plain C, slow, obviously correct.
 * Computes in double for every dtype (integers are exact below 2^53).
 * val[v] for each INPUT, PARAM and STATE node must be filled by the caller
 * with ir_numel doubles; every other val[v] is allocated here (mem_alloc)
 * and released by ir_interp_free (which leaves caller-owned inputs alone).
 * A CACHE_WRITE also updates its cache operand's buffer in place, so a
 * caller who keeps STATE buffers between calls runs decode steps as the
 * compiled program does.
 * Returns 0, or -1 with an error (e.g. a gather index out of range). */
int ir_interp(const Graph *g, double **val, Diag *d);
void ir_interp_free(const Graph *g, double **val);

#endif
