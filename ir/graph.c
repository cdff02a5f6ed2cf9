/* graph.c: graph storage, the op table, interned names, and node builders.
 *
 * Builders append one node and run its shape rule; on failure the node and
 * any operands pushed for it are popped again, so a failed build leaves the
 * graph exactly as it was. */
#include "ir.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

const OpInfo ir_op[OP_COUNT] = {
#define X(name, str, arity, flags, attrs, doc) [OP_##name] = {str, arity, flags, attrs, doc},
	IR_OPS(X)
#undef X
};

const AttrInfo ir_attr[ATTR_COUNT] = {
#define X(id, word, kind, field, bit, code, doc) \
	[ATTR_##id] = {word, AK_##kind, bit, code, offsetof(Node, field), \
		       sizeof(((Node *)0)->field), doc},
	IR_ATTRS(X)
#undef X
};

/* The field each attribute names has the size its kind reads and writes,
 * and the FLAG bits are distinct and fit Node.flags. */
#define AK_SIZE_NAME sizeof(uint32_t)
#define AK_SIZE_LEAD sizeof(double)
#define AK_SIZE_DTYPE sizeof(uint8_t)
#define AK_SIZE_SHAPE sizeof(Shape)
#define AK_SIZE_INIT sizeof(uint8_t)
#define AK_SIZE_INT sizeof(int64_t)
#define AK_SIZE_F64 sizeof(double)
#define AK_SIZE_PERM sizeof(uint8_t[IR_MAX_RANK])
#define AK_SIZE_FLAG sizeof(uint8_t)
#define X(id, word, kind, field, bit, code, doc) \
	static_assert(sizeof(((Node *)0)->field) == AK_SIZE_##kind, "attribute " #id ": field size");
IR_ATTRS(X)
#undef X
#define SUM(id, word, kind, field, bit, code, doc) + (bit)
#define OR(id, word, kind, field, bit, code, doc) | (bit)
static_assert((0 IR_ATTRS(SUM)) == (0 IR_ATTRS(OR)) && (0 IR_ATTRS(OR)) <= UINT8_MAX,
	      "NF_ bits of FLAG attributes overlap or do not fit Node.flags");
#undef SUM
#undef OR
static_assert(ATTR_COUNT <= 32, "IRA_ sets are unsigned");

const char *const ir_dtype_name[DT_COUNT] = {"f32", "i32", "u8", "f64"};
const char *const ir_init_name[INIT_COUNT] = {"none", "normal", "zeros", "ones"};

int ir_dtype_size(DType t)
{
	static const int size[] = {4, 4, 1, 8};
	static_assert(sizeof size / sizeof size[0] == DT_COUNT, "dtype sizes");
	return size[t];
}

uint8_t ir_flag_mask(Op op)
{
	uint8_t m = 0;
	for (int a = 0; a < ATTR_COUNT; a++)
		if (ir_op[op].attrs & (1u << a) && ir_attr[a].kind == AK_FLAG)
			m |= ir_attr[a].flag;
	return m;
}

static int put_u64(Vec *buf, uint64_t x)
{
	uint8_t le[8];
	for (int i = 0; i < 8; i++)
		le[i] = (uint8_t)(x >> (8 * i));
	if (vec_reserve(buf, buf->len + sizeof le, 1))
		return -1;
	memcpy((char *)buf->data + buf->len, le, sizeof le);
	buf->len += sizeof le;
	return 0;
}

static int put_double(Vec *buf, double x)
{
	uint64_t bits;
	memcpy(&bits, &x, sizeof bits);
	return put_u64(buf, bits);
}

int ir_attrs_bytes(const Graph *g, const Node *n, bool code_only, Vec *buf)
{
	int rc = 0;
	for (int a = 0; a < ATTR_COUNT; a++) {
		if (!(ir_attrs(n) & (1u << a)) || (code_only && !ir_attr[a].code))
			continue;
		const void *f = ir_attr_cfield(n, (AttrId)a);
		switch ((AttrKind)ir_attr[a].kind) {
		case AK_NAME: {
			const char *s = ir_str(g, *(const uint32_t *)f);
			size_t len = strlen(s);
			rc |= put_u64(buf, len);
			if (!rc && !vec_reserve(buf, buf->len + len, 1)) {
				memcpy((char *)buf->data + buf->len, s, len);
				buf->len += len;
			} else
				rc = -1;
			break;
		}
		case AK_LEAD: case AK_F64: rc |= put_double(buf, *(const double *)f); break;
		case AK_INIT:
			rc |= put_u64(buf, *(const uint8_t *)f);
			if (*(const uint8_t *)f == INIT_NORMAL)
				rc |= put_double(buf, n->value);
			break;
		case AK_INT: rc |= put_u64(buf, (uint64_t)*(const int64_t *)f); break;
		case AK_PERM:
			for (int i = 0; i < n->shape.rank && i < IR_MAX_RANK; i++)
				rc |= put_u64(buf, ((const uint8_t *)f)[i]);
			break;
		case AK_DTYPE: case AK_SHAPE: case AK_FLAG: case AK_COUNT: break;
		}
	}
	return rc ? -1 : 0;
}

Graph *ir_graph_create(void)
{
	Graph *g = mem_calloc(1, sizeof *g);
	if (!g)
		return NULL;
	arena_init(&g->arena);
	g->loss = VAL_NONE;
	char **empty = vec_push(&g->str, sizeof(char *));
	if (!empty) {
		mem_free(g);
		return NULL;
	}
	*empty = "";
	return g;
}

void ir_graph_destroy(Graph *g)
{
	if (!g)
		return;
	vec_free(&g->node);
	vec_free(&g->arg);
	vec_free(&g->out);
	vec_free(&g->str);
	mem_free(g->str_index);
	vec_free(&g->bind);
	vec_free(&g->grad);
	ir_clear_masks(g);
	vec_free(&g->mask);
	vec_free(&g->place);
	arena_free(&g->arena);
	mem_free(g);
}

/* Names are looked up by hash: a GPT-2-sized model interns tens of
 * thousands of names, and a linear scan made compiling it quadratic. */
static size_t str_slot(const Graph *g, const char *s)
{
	size_t mask = g->str_index_cap - 1;
	size_t i = (size_t)hash64(s, strlen(s), 0) & mask;
	while (g->str_index[i] && strcmp(VEC_AT(g->str, char *, g->str_index[i]), s))
		i = (i + 1) & mask;
	return i;
}

static int str_index_grow(Graph *g)
{
	size_t cap = g->str_index_cap ? 2 * g->str_index_cap : 64;
	uint32_t *old = g->str_index;
	size_t oldcap = g->str_index_cap;
	g->str_index = mem_calloc(cap, sizeof *g->str_index);
	if (!g->str_index) {
		g->str_index = old;
		return -1;
	}
	g->str_index_cap = cap;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i])
			g->str_index[str_slot(g, VEC_AT(g->str, char *, old[i]))] = old[i];
	mem_free(old);
	return 0;
}

uint32_t ir_find_str(const Graph *g, const char *s)
{
	if (!*s || !g->str_index_cap)
		return 0;
	return g->str_index[str_slot(g, s)];
}

uint32_t ir_intern(Graph *g, const char *s)
{
	if (!*s)
		return 0;
	uint32_t id = ir_find_str(g, s);
	if (id)
		return id;
	if (2 * (g->str.len + 1) > g->str_index_cap && str_index_grow(g))
		return UINT32_MAX;
	char *copy = arena_strdup(&g->arena, s);
	char **slot = copy ? vec_push(&g->str, sizeof(char *)) : NULL;
	if (!slot)
		return UINT32_MAX;
	*slot = copy;
	id = (uint32_t)g->str.len - 1;
	g->str_index[str_slot(g, s)] = id;
	return id;
}

int64_t ir_numel(const Shape *s)
{
	int64_t n = 1;
	for (int i = 0; i < s->rank; i++)
		n *= s->dim[i];
	return n;
}

int64_t ir_nbytes(const Graph *g, ValId v)
{
	const Node *n = ir_node(g, v);
	return ir_numel(&n->shape) * ir_dtype_size(n->dtype);
}

int ir_shape_eq(const Shape *a, const Shape *b)
{
	if (a->rank != b->rank)
		return 0;
	for (int i = 0; i < a->rank; i++)
		if (a->dim[i] != b->dim[i])
			return 0;
	return 1;
}

void ir_shape_str(const Shape *s, char *buf, size_t n)
{
	size_t at = 0;
	at += (size_t)snprintf(buf + at, n - at, "[");
	for (int i = 0; i < s->rank && at < n; i++)
		at += (size_t)snprintf(buf + at, n - at, i ? ",%lld" : "%lld", (long long)s->dim[i]);
	if (at < n)
		snprintf(buf + at, n - at, "]");
}

static ValId find_named(const Graph *g, Op op, const char *name)
{
	uint32_t id = ir_find_str(g, name);
	if (!id)
		return VAL_NONE;
	for (uint32_t v = 0; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		if (n->op == op && n->name == id)
			return v;
	}
	return VAL_NONE;
}

ValId ir_find_param(const Graph *g, const char *name)
{
	return find_named(g, OP_PARAM, name);
}

ValId ir_find_input(const Graph *g, const char *name)
{
	return find_named(g, OP_INPUT, name);
}

ValId ir_find_state(const Graph *g, const char *name)
{
	return find_named(g, OP_STATE, name);
}

int ir_set_output(Graph *g, const char *name, ValId v)
{
	uint32_t id = ir_intern(g, name);
	if (id == UINT32_MAX)
		return -1;
	for (size_t i = 0; i < g->out.len; i++)
		if (VEC_AT(g->out, Output, i).name == id) {
			VEC_AT(g->out, Output, i).val = v;
			return 0;
		}
	Output *o = vec_push(&g->out, sizeof *o);
	if (!o)
		return -1;
	o->name = id;
	o->val = v;
	return 0;
}

int ir_bind(Graph *g, const char *name, int64_t value)
{
	uint32_t id = ir_intern(g, name);
	Binding *b = id == UINT32_MAX ? NULL : vec_push(&g->bind, sizeof *b);
	if (!b)
		return -1;
	b->name = id;
	b->value = value;
	return 0;
}

const char *const ir_sparse_dist_name[SD_COUNT] = {"uniform", "erk"};

int ir_set_mesh(Graph *g, const char *name, uint32_t rows, uint32_t cols)
{
	uint32_t id = ir_intern(g, name);
	if (id == UINT32_MAX || vec_reserve(&g->place, ir_nnode(g), sizeof(Place)))
		return -1;
	g->mesh_name = id;
	g->mesh_rows = rows;
	g->mesh_cols = cols;
	g->place.len = ir_nnode(g);
	for (ValId v = 0; v < ir_nnode(g); v++)
		VEC_AT(g->place, Place, v) = (Place){.unit = VAL_NONE};
	return 0;
}

void ir_clear_place(Graph *g)
{
	g->place.len = 0;
	g->mesh_name = g->mesh_rows = g->mesh_cols = 0;
}

Mask *ir_find_mask(const Graph *g, ValId p)
{
	for (size_t i = 0; i < g->mask.len; i++)
		if (VEC_AT(g->mask, Mask, i).param == p)
			return &VEC_AT(g->mask, Mask, i);
	return NULL;
}

Mask *ir_set_mask(Graph *g, ValId p, double target, SparseDist dist)
{
	Mask *m = ir_find_mask(g, p);
	if (!m && !(m = vec_push(&g->mask, sizeof *m)))
		return NULL;
	mem_free(m->bits);
	memset(m, 0, sizeof *m);
	m->param = p;
	m->target = target;
	m->dist = (uint8_t)dist;
	m->nkept = -1;
	return m;
}

int ir_mask_set_bits(Mask *m, const uint8_t *bits, int64_t numel)
{
	uint8_t *copy = mem_alloc(numel > 0 ? (size_t)numel : 1);
	if (!copy)
		return -1;
	int64_t kept = 0;
	for (int64_t i = 0; i < numel; i++) {
		copy[i] = bits[i] != 0;
		kept += copy[i];
	}
	mem_free(m->bits);
	m->bits = copy;
	m->nkept = kept;
	m->hash = hash128(copy, (size_t)numel);
	return 0;
}

void ir_clear_masks(Graph *g)
{
	for (size_t i = 0; i < g->mask.len; i++)
		mem_free(VEC_AT(g->mask, Mask, i).bits);
	g->mask.len = 0;
}

/* v, looking through reshapes and a mask product mul(param, mask). */
static ValId through(const Graph *g, ValId v)
{
	for (;;) {
		const Node *n = ir_node(g, v);
		if (n->op == OP_RESHAPE)
			v = ir_operand(g, n, 0);
		else if (n->op == OP_MUL && ir_node(g, ir_operand(g, n, 1))->op == OP_MASK)
			v = ir_operand(g, n, 0);
		else
			return v;
	}
}

bool ir_embedding_table(const Graph *g, ValId p)
{
	for (ValId u = p + 1; u < ir_nnode(g); u++) {
		const Node *n = ir_node(g, u);
		if (n->op == OP_GATHER && through(g, ir_operand(g, n, 0)) == p)
			return true;
	}
	return false;
}

/* The one decay rule. Norm gains and biases (vectors) and embedding
 * tables do not decay, the matrices of the linear layers do; this is
 * GPT-2's usual grouping, told by the graph's structure and never by a
 * name. Note that a tied wte is gathered and so does not decay, unlike
 * nanoGPT's "every 2-D param" rule. */
bool ir_param_decays(const Graph *g, ValId p)
{
	return ir_weight_matrix(g, p);
}

bool ir_weight_matrix(const Graph *g, ValId p)
{
	const Node *n = ir_node(g, p);
	return n->op == OP_PARAM && n->shape.rank >= 2 && !ir_embedding_table(g, p);
}

bool ir_sparse_candidate(const Graph *g, ValId p)
{
	const Node *pn = ir_node(g, p);
	if (pn->op != OP_PARAM || pn->shape.rank != 2 || ir_embedding_table(g, p))
		return false;
	for (ValId u = p + 1; u < ir_nnode(g); u++) {
		const Node *n = ir_node(g, u);
		if (n->op == OP_MATMUL && through(g, ir_operand(g, n, 1)) == p)
			return true;
	}
	return false;
}

ValId ir_add(Graph *g, const Node *tmpl, const ValId *args, uint32_t nargs, Diag *d)
{
	size_t nnode = g->node.len, narg = g->arg.len;
	for (uint32_t i = 0; i < nargs; i++) {
		if (args[i] >= nnode) {
			diag_error(d, tmpl->loc, "internal: operand %u of %s is not a value", i,
				   ir_op[tmpl->op].name);
			goto fail;
		}
		ValId *slot = vec_push(&g->arg, sizeof *slot);
		if (!slot)
			goto oom;
		*slot = args[i];
	}
	Node *n = vec_push(&g->node, sizeof *n);
	if (!n)
		goto oom;
	*n = *tmpl;
	n->arg = (uint32_t)narg;
	n->narg = nargs;
	n->offset = -1;
	if (ir_infer_node(g, n, d))
		goto fail;
	return (ValId)nnode;
oom:
	diag_error(d, tmpl->loc, "out of memory");
fail:
	g->node.len = nnode;
	g->arg.len = narg;
	return VAL_NONE;
}

static Node tmpl_of(Op op, DType t, SrcLoc loc)
{
	Node n;
	memset(&n, 0, sizeof n);
	n.op = (uint16_t)op;
	n.dtype = (uint8_t)t;
	n.loc = loc;
	return n;
}

static ValId named_source(Graph *g, Node *n, const char *name, Diag *d)
{
	n->name = ir_intern(g, name);
	if (n->name == UINT32_MAX) {
		diag_error(d, n->loc, "out of memory");
		return VAL_NONE;
	}
	return ir_add(g, n, NULL, 0, d);
}

ValId ir_input(Graph *g, const char *name, DType t, const Shape *s, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_INPUT, t, loc);
	n.shape = *s;
	return named_source(g, &n, name, d);
}

ValId ir_param(Graph *g, const char *name, const Shape *s, InitKind init, double std,
	       SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_PARAM, DT_F32, loc);
	n.shape = *s;
	n.init = (uint8_t)init;
	n.value = std;
	return named_source(g, &n, name, d);
}

ValId ir_const(Graph *g, double value, DType t, const Shape *s, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_CONST, t, loc);
	n.shape = *s;
	n.value = value;
	return ir_add(g, &n, NULL, 0, d);
}

ValId ir_iota(Graph *g, int64_t len, DType t, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_IOTA, t, loc);
	n.shape.rank = 1;
	n.shape.dim[0] = len;
	return ir_add(g, &n, NULL, 0, d);
}

ValId ir_state(Graph *g, const char *name, DType t, const Shape *s, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_STATE, t, loc);
	n.shape = *s;
	return named_source(g, &n, name, d);
}

ValId ir_cache_write(Graph *g, ValId cache, ValId x, ValId pos, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_CACHE_WRITE, DT_F32, loc);
	ValId args[3] = {cache, x, pos};
	return ir_add(g, &n, args, 3, d);
}

ValId ir_iota_offset(Graph *g, ValId off, int64_t len, DType t, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_IOTA_OFFSET, t, loc);
	n.shape.rank = 1;
	n.shape.dim[0] = len;
	/* one offset per row: off [B,1] gives [B,len] */
	const Shape *os = &ir_node(g, off)->shape;
	if (os->rank == 2) {
		n.shape.rank = 2;
		n.shape.dim[0] = os->dim[0];
		n.shape.dim[1] = len;
	}
	return ir_add(g, &n, &off, 1, d);
}

ValId ir_causal_mask_offset(Graph *g, ValId x, ValId off, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_CAUSAL_MASK_OFFSET, DT_F32, loc);
	ValId args[2] = {x, off};
	return ir_add(g, &n, args, 2, d);
}

ValId ir_unary(Graph *g, Op op, ValId x, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(op, DT_F32, loc);
	return ir_add(g, &n, &x, 1, d);
}

ValId ir_cast(Graph *g, ValId x, DType t, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_CAST, t, loc);
	return ir_add(g, &n, &x, 1, d);
}

ValId ir_binary(Graph *g, Op op, ValId a, ValId b, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(op, DT_F32, loc);
	ValId args[2] = {a, b};
	return ir_add(g, &n, args, 2, d);
}

ValId ir_reduce(Graph *g, Op op, ValId x, int64_t axis, bool keepdim, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(op, DT_F32, loc);
	n.axis = axis;
	n.flags = keepdim ? NF_KEEPDIM : 0;
	return ir_add(g, &n, &x, 1, d);
}

ValId ir_matmul(Graph *g, ValId a, ValId b, unsigned flags, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_MATMUL, DT_F32, loc);
	n.flags = (uint8_t)(flags & ir_flag_mask(OP_MATMUL));
	ValId args[2] = {a, b};
	return ir_add(g, &n, args, 2, d);
}

ValId ir_spmm(Graph *g, ValId at, ValId w, unsigned flags, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_SPMM, DT_F32, loc);
	n.flags = (uint8_t)(flags & (NF_TRANS_B | NF_UNROLLED));
	ValId args[2] = {at, w};
	return ir_add(g, &n, args, 2, d);
}

ValId ir_sddmm(Graph *g, ValId at, ValId bt, ValId w, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_SDDMM, DT_F32, loc);
	ValId args[3] = {at, bt, w};
	return ir_add(g, &n, args, 3, d);
}

ValId ir_sumsq(Graph *g, ValId x, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_SUMSQ, DT_F64, loc);
	return ir_add(g, &n, &x, 1, d);
}

ValId ir_grad_norm(Graph *g, ValId hp, const ValId *s, uint32_t ns, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_GRAD_NORM, DT_F32, loc);
	ValId *args = mem_alloc(((size_t)ns + 1) * sizeof *args);
	if (!args) {
		diag_error(d, loc, "out of memory");
		return VAL_NONE;
	}
	args[0] = hp;
	memcpy(args + 1, s, (size_t)ns * sizeof *args);
	ValId v = ir_add(g, &n, args, ns + 1, d);
	mem_free(args);
	return v;
}

ValId ir_adamw(Graph *g, ValId p, ValId grad, ValId m, ValId v, ValId hp, ValId clip,
	       ValId mask, unsigned flags, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(mask == VAL_NONE ? OP_ADAMW : OP_ADAMW_MASKED, DT_F32, loc);
	n.flags = (uint8_t)flags;
	ValId args[7] = {p, grad, m, v, hp, clip, mask};
	return ir_add(g, &n, args, mask == VAL_NONE ? 6 : 7, d);
}

ValId ir_reshape(Graph *g, ValId x, const Shape *s, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_RESHAPE, DT_F32, loc);
	n.shape = *s;
	return ir_add(g, &n, &x, 1, d);
}

ValId ir_permute(Graph *g, ValId x, const uint8_t *perm, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_PERMUTE, DT_F32, loc);
	if (x < ir_nnode(g))
		memcpy(n.perm, perm, ir_node(g, x)->shape.rank);
	return ir_add(g, &n, &x, 1, d);
}

ValId ir_slice(Graph *g, ValId x, int64_t axis, int64_t lo, int64_t hi, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_SLICE, DT_F32, loc);
	n.axis = axis;
	n.lo = lo;
	n.hi = hi;
	return ir_add(g, &n, &x, 1, d);
}

ValId ir_concat(Graph *g, const ValId *xs, uint32_t k, int64_t axis, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_CONCAT, DT_F32, loc);
	n.axis = axis;
	return ir_add(g, &n, xs, k, d);
}

ValId ir_gather(Graph *g, ValId table, ValId idx, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_GATHER, DT_F32, loc);
	ValId args[2] = {table, idx};
	return ir_add(g, &n, args, 2, d);
}

ValId ir_causal_mask(Graph *g, ValId x, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_CAUSAL_MASK, DT_F32, loc);
	return ir_add(g, &n, &x, 1, d);
}

ValId ir_softmax(Graph *g, ValId x, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_SOFTMAX, DT_F32, loc);
	n.axis = -1;
	return ir_add(g, &n, &x, 1, d);
}

ValId ir_cross_entropy(Graph *g, ValId logits, ValId targets, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_CROSS_ENTROPY, DT_F32, loc);
	ValId args[2] = {logits, targets};
	return ir_add(g, &n, args, 2, d);
}

ValId ir_broadcast_to(Graph *g, ValId x, const Shape *s, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_BROADCAST, DT_F32, loc);
	n.shape = *s;
	return ir_add(g, &n, &x, 1, d);
}

ValId ir_max_grad(Graph *g, ValId x, ValId dy, int64_t axis, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_MAX_GRAD, DT_F32, loc);
	n.axis = axis;
	ValId args[2] = {x, dy};
	return ir_add(g, &n, args, 2, d);
}

ValId ir_grad_op(Graph *g, Op op, const ValId *args, uint32_t nargs, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(op, DT_F32, loc);
	return ir_add(g, &n, args, nargs, d);
}

ValId ir_gather_grad(Graph *g, ValId idx, ValId dy, int64_t vocab, SrcLoc loc, Diag *d)
{
	Node n = tmpl_of(OP_GATHER_GRAD, DT_F32, loc);
	n.shape.rank = 2;
	n.shape.dim[0] = vocab;
	n.shape.dim[1] = dy < ir_nnode(g) && ir_node(g, dy)->shape.rank ?
		ir_node(g, dy)->shape.dim[ir_node(g, dy)->shape.rank - 1] : 1;
	ValId args[2] = {idx, dy};
	return ir_add(g, &n, args, 2, d);
}
