/* print.c: the textual IR, written out (docs/ir.md has the grammar).
 *
 *   model "gpt" (batch = 1, seq = 128)
 *   %0 = input "tokens" : i32[1,128]
 *   %1 = param "wte.weight" normal(0.02) : f32[256,256]
 *   %5 = matmul %3, %4 transb : f32[1,128,256]       ; models/gpt.msw:12:7
 *   output "logits" = %40
 *   loss = %55
 *   grad "wte.weight" = %97
 *   mask "h.0.mlp.c_fc.weight" 0.75 uniform kept=16384 numel=65536 xxh3=...
 *   mesh "ipu" rows=32 cols=46
 *   place %21..%40 tiles=(0,4)..(3,7) unit=%20   ; 16 shards, h.0.attn.c_attn.weight
 *
 * One node per line, numbered by its id, with exactly the attributes the op
 * carries (ops.h's attribute column, written by kind), its result type, and the source location as a trailing
 * comment. A placed graph (passes/place.c) ends in its mesh and one place
 * line per run of consecutive nodes on the same tiles. Doubles use %.17g, which reads back to the same bits, and names
 * are quoted with escapes, so ir_parse gives back a graph with the same
 * ir_hash that prints the same text. The output is deterministic: it depends
 * on the graph alone, never on addresses or interning order. */
#include "ir.h"

#include <stdio.h>
#include <string.h>

/* Location comments start in this column when the line is shorter. */
enum { LOC_COLUMN = 56 };

typedef struct Out {
	Vec v;       /* chars, kept NUL-terminated */
	bool oom;
} Out;

static void emit(Out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void emit(Out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (o->oom || n < 0 || vec_reserve(&o->v, o->v.len + (size_t)n + 1, 1)) {
		o->oom = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf((char *)o->v.data + o->v.len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	o->v.len += (size_t)n;
}

/* "..." with \" \\ and \xHH for control bytes; other bytes (UTF-8) as is. */
static void emit_str(Out *o, const char *s)
{
	emit(o, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			emit(o, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			emit(o, "\\x%02x", c);
		else
			emit(o, "%c", c);
	}
	emit(o, "\"");
}

static bool is_ident(const char *s)
{
	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_' ||
		      (*s >= '0' && *s <= '9')))
			return false;
	return true;
}

static void emit_type(Out *o, const Node *n)
{
	char buf[160];
	ir_shape_str(&n->shape, buf, sizeof buf);
	emit(o, " : %s%s", ir_dtype_name[n->dtype], buf);
}

static void emit_loc(Out *o, SrcLoc loc, size_t line_start)
{
	if (!loc.src || !loc.src->name || !*loc.src->name)
		return;
	size_t w = o->v.len - line_start;
	emit(o, "%*s; ", w < LOC_COLUMN ? (int)(LOC_COLUMN - w) : 2, "");
	/* A control byte (a newline, say) would break the comment. */
	for (const char *s = loc.src->name; *s; s++)
		emit(o, "%c", (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
	if (loc.line)
		emit(o, ":%u:%u", loc.line, loc.col);
}

/* The attributes the op carries, by kind, in table order: with lead, the
 * ones written before the operands (NAME, LEAD), else those after them.
 * DTYPE and SHAPE are in the type, written by emit_type. */
static void emit_attrs(Out *o, const Graph *g, const Node *n, bool lead)
{
	for (int a = 0; a < ATTR_COUNT; a++) {
		if (!(ir_attrs(n) & (1u << a)))
			continue;
		const AttrInfo *ai = &ir_attr[a];
		const void *f = ir_attr_cfield(n, (AttrId)a);
		bool is_lead = ai->kind == AK_NAME || ai->kind == AK_LEAD;
		if (is_lead != lead)
			continue;
		switch ((AttrKind)ai->kind) {
		case AK_NAME:
			emit(o, " ");
			emit_str(o, ir_str(g, *(const uint32_t *)f));
			break;
		case AK_LEAD: emit(o, " %.17g", *(const double *)f); break;
		case AK_INIT: {
			uint8_t k = *(const uint8_t *)f;
			emit(o, " %s", k < INIT_COUNT ? ir_init_name[k] : "?");
			if (k == INIT_NORMAL)
				emit(o, "(%.17g)", n->value);
			break;
		}
		case AK_INT: emit(o, " %s=%lld", ai->word, (long long)*(const int64_t *)f); break;
		case AK_F64: emit(o, " %s=%.17g", ai->word, *(const double *)f); break;
		case AK_PERM:
			emit(o, " %s=(", ai->word);
			for (int i = 0; i < n->shape.rank; i++)
				emit(o, i ? ",%d" : "%d", ((const uint8_t *)f)[i]);
			emit(o, ")");
			break;
		case AK_FLAG:
			if (n->flags & ai->flag)
				emit(o, " %s", ai->word);
			break;
		case AK_DTYPE: case AK_SHAPE: case AK_COUNT: break;
		}
	}
}

/* %id = op [name | value] [operands] [attrs] : type  [; loc] */
static void emit_node(Out *o, const Graph *g, ValId v)
{
	const Node *n = ir_node(g, v);
	size_t start = o->v.len;
	emit(o, "%%%u = %s", v, ir_op[n->op].name);
	emit_attrs(o, g, n, true);
	for (uint32_t i = 0; i < n->narg; i++)
		emit(o, "%s%%%u", i ? ", " : " ", ir_operand(g, n, i));
	emit_attrs(o, g, n, false);
	emit_type(o, n);
	emit_loc(o, n->loc, start);
	emit(o, "\n");
}

static void emit_model(Out *o, const Graph *g)
{
	if (!g->model_name && !g->bind.len)
		return;
	emit(o, "model ");
	emit_str(o, ir_str(g, g->model_name));
	for (size_t i = 0; i < g->bind.len; i++) {
		const Binding *b = &VEC_AT(g->bind, Binding, i);
		const char *name = ir_str(g, b->name);
		emit(o, i ? ", " : " (");
		if (is_ident(name))
			emit(o, "%s", name);
		else
			emit_str(o, name);
		emit(o, " = %lld", (long long)b->value);
	}
	emit(o, "%s\n", g->bind.len ? ")" : "");
}

static bool same_place(const Place *a, const Place *b)
{
	return a->row == b->row && a->col == b->col && a->rows == b->rows &&
	       a->cols == b->cols && a->unit == b->unit;
}

/* The rectangle by its corners, inclusive: tiles=(r0,c0)..(r1,c1). */
static void emit_place(Out *o, const Graph *g)
{
	if (!g->place.len)
		return;
	emit(o, "mesh ");
	emit_str(o, ir_str(g, g->mesh_name));
	emit(o, " rows=%u cols=%u\n", g->mesh_rows, g->mesh_cols);
	for (ValId v = 0; v < ir_nnode(g);) {
		const Place *p = ir_place(g, v);
		ValId last = v;
		while (last + 1 < ir_nnode(g) && same_place(ir_place(g, last + 1), p))
			last++;
		size_t start = o->v.len;
		emit(o, "place %%%u", v);
		if (last > v)
			emit(o, "..%%%u", last);
		emit(o, " tiles=(%u,%u)..(%u,%u)", p->row, p->col, p->row + p->rows - 1,
		     p->col + p->cols - 1);
		if (p->unit != VAL_NONE)
			emit(o, " unit=%%%u", p->unit);
		size_t w = o->v.len - start;
		emit(o, "%*s; %u shard%s", w < LOC_COLUMN ? (int)(LOC_COLUMN - w) : 1, "",
		     p->rows * p->cols, p->rows * p->cols == 1 ? "" : "s");
		if (p->unit != VAL_NONE && p->unit < ir_nnode(g) && ir_node(g, p->unit)->name)
			emit(o, ", %s", ir_str(g, ir_node(g, p->unit)->name));
		else if (p->unit != VAL_NONE && p->unit < ir_nnode(g))
			emit(o, ", with %%%u %s", p->unit, ir_op[ir_node(g, p->unit)->op].name);
		emit(o, "\n");
		v = last + 1;
	}
}

char *ir_print(const Graph *g)
{
	Out o = {0};
	emit(&o, "%s", ""); /* an empty graph still gives "" rather than NULL */
	emit_model(&o, g);
	for (ValId v = 0; v < ir_nnode(g); v++)
		emit_node(&o, g, v);
	for (size_t i = 0; i < g->out.len; i++) {
		const Output *out = &VEC_AT(g->out, Output, i);
		emit(&o, "output ");
		emit_str(&o, ir_str(g, out->name));
		emit(&o, " = %%%u\n", out->val);
	}
	if (g->loss != VAL_NONE)
		emit(&o, "loss = %%%u\n", g->loss);
	/* Params by name: names are unique among params, ids are not stable
	 * across passes. */
	for (size_t i = 0; i < g->grad.len; i++) {
		const GradPair *gp = &VEC_AT(g->grad, GradPair, i);
		emit(&o, "grad ");
		emit_str(&o, ir_str(g, ir_node(g, gp->param)->name));
		emit(&o, " = %%%u\n", gp->grad);
	}
	/* The pattern itself is not printed (megabytes for a real model), only
	 * its count and hash: the text reads back with the mask "to supply". */
	for (size_t i = 0; i < g->mask.len; i++) {
		const Mask *m = &VEC_AT(g->mask, Mask, i);
		const Node *p = ir_node(g, m->param);
		emit(&o, "mask ");
		emit_str(&o, ir_str(g, p->name));
		emit(&o, " %.17g %s", m->target, ir_sparse_dist_name[m->dist]);
		if (m->nkept >= 0) {
			char hex[33];
			hash128_hex(m->hash, hex);
			emit(&o, " kept=%lld numel=%lld xxh3=%s", (long long)m->nkept,
			     (long long)ir_numel(&p->shape), hex);
		}
		emit(&o, "\n");
	}
	emit_place(&o, g);
	if (o.oom) {
		vec_free(&o.v);
		return NULL;
	}
	return o.v.data;
}
