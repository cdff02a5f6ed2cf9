/* parse.c: the textual IR, read back in (the inverse of print.c; the
 * grammar is in docs/ir.md).
 *
 * A line-oriented recursive-descent reader of untrusted bytes: every token
 * is checked before use, numbers are range-checked, and nodes are built with
 * ir_add, so each node's shape rule runs and the printed type must agree
 * with the one the rule computes. The first error stops the parse; it is
 * located in the .ir file (file:line:col with the caret) and the partly
 * built graph is freed, so *out is set only on success.
 *
 * A node line may end in a location comment "; file:line:col" as the
 * printer writes it; the node then keeps that location (a Source with a name
 * and no text, allocated in the graph's arena), so a pass run on parsed IR
 * still reports errors at the .msw line. Nodes without one keep no
 * location, which makes print(parse(print(g))) == print(g). Any other
 * comment is ignored. */
#include "ir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum TokKind {
	T_EOF,
	T_EOL,    /* end of line; `s,n` hold the comment text after ';' if any */
	T_ID,     /* identifier: [A-Za-z_][A-Za-z0-9_]* */
	T_VAL,    /* %123 */
	T_STR,    /* "..." (escapes still in the text) */
	T_NUM,    /* a run of [0-9A-Za-z.+-] starting with a digit, sign or dot */
	T_PUNCT,  /* one of = , : ( ) [ ] */
} TokKind;

typedef struct Tok {
	TokKind k;
	const char *s;
	size_t n;
	uint32_t line, col;
} Tok;

/* A mask node and its op token: its mask line comes later in the file. */
typedef struct MaskRef {
	ValId v;
	struct Tok tok;
} MaskRef;

typedef struct Parser {
	const Source *src;
	const char *p, *end, *bol;  /* bol: beginning of the current line */
	uint32_t line;
	Tok t;
	Graph *g;
	Diag *d;
	Vec files;                  /* Source *, one per file named in a location */
	Vec sbuf;                   /* decoded string literal */
	Vec masknode;               /* MaskRef: mask nodes, checked at the end */
	bool have_model, have_loss, have_mesh;
} Parser;

static SrcLoc tok_loc(const Parser *P, const Tok *t)
{
	return (SrcLoc){P->src, t->line, t->col, t->n ? (uint32_t)t->n : 1};
}

static int err(Parser *P, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Errors point at the current token. */
static int err(Parser *P, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_verror(P->d, tok_loc(P, &P->t), fmt, ap);
	va_end(ap);
	return -1;
}

static bool is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static const char *tok_name(const Tok *t)
{
	switch (t->k) {
	case T_EOF: return "end of file";
	case T_EOL: return "end of line";
	case T_ID: return "a word";
	case T_VAL: return "a value";
	case T_STR: return "a string";
	case T_NUM: return "a number";
	default: return "punctuation";
	}
}

/* Reads the next token into P->t. */
static int next(Parser *P)
{
	while (P->p < P->end && (*P->p == ' ' || *P->p == '\t' || *P->p == '\r'))
		P->p++;
	Tok t = {.s = P->p, .line = P->line, .col = (uint32_t)(P->p - P->bol) + 1};
	const char *p = P->p;
	if (p == P->end) {
		t.k = T_EOF;
	} else if (*p == '\n' || *p == ';') {
		t.k = T_EOL;
		if (*p == ';') {
			t.s = ++p;
			while (p < P->end && *p != '\n')
				p++;
			t.n = (size_t)(p - t.s);
		}
		if (p < P->end) {
			p++;
			P->line++;
			P->bol = p;
		}
	} else if (is_alpha(*p)) {
		t.k = T_ID;
		while (p < P->end && (is_alpha(*p) || is_digit(*p)))
			p++;
	} else if (*p == '%') {
		t.k = T_VAL;
		for (p++; p < P->end && is_digit(*p);)
			p++;
		if (p == t.s + 1) {
			P->t = t;
			P->t.n = 1;
			return err(P, "expected a value number after '%%'");
		}
	} else if (*p == '"') {
		t.k = T_STR;
		for (p++; p < P->end && *p != '"'; p++) {
			if (*p == '\n' || *p == '\0') {
				P->t = t;
				return err(P, "unterminated string");
			}
			if (*p == '\\' && p + 1 < P->end && p[1] != '\n')
				p++;
		}
		if (p == P->end) {
			P->t = t;
			return err(P, "unterminated string");
		}
		p++;
	} else if (is_digit(*p) || *p == '-' || *p == '+' || *p == '.') {
		t.k = T_NUM;
		while (p < P->end && (is_alpha(*p) || is_digit(*p) || *p == '.' || *p == '-' ||
				      *p == '+'))
			p++;
	} else if (strchr("=,:()[]", *p) && *p) {
		t.k = T_PUNCT;
		p++;
	} else {
		P->t = t;
		P->t.n = 1;
		unsigned char c = (unsigned char)*p;
		if (c >= 0x20 && c < 0x7f)
			return err(P, "unexpected character '%c'", c);
		return err(P, "unexpected byte 0x%02x", c);
	}
	if (t.k != T_EOL)
		t.n = (size_t)(p - t.s);
	P->p = p;
	P->t = t;
	return 0;
}

static bool is_punct(const Parser *P, char c)
{
	return P->t.k == T_PUNCT && *P->t.s == c;
}

static bool is_word(const Parser *P, const char *w)
{
	return P->t.k == T_ID && P->t.n == strlen(w) && !memcmp(P->t.s, w, P->t.n);
}

static int expect_punct(Parser *P, char c)
{
	if (!is_punct(P, c))
		return err(P, "expected '%c' here", c);
	return next(P);
}

/* Copies the token text, NUL-terminated, for strtoll/strtod. */
static int tok_text(Parser *P, char *buf, size_t size)
{
	if (P->t.n >= size)
		return err(P, "number too long");
	memcpy(buf, P->t.s, P->t.n);
	buf[P->t.n] = 0;
	return 0;
}

/* int := T_NUM (decimal, optional sign) */
static int parse_int(Parser *P, int64_t lo, int64_t hi, int64_t *out)
{
	char buf[64], *end;
	if (P->t.k != T_NUM)
		return err(P, "expected an integer, found %s", tok_name(&P->t));
	if (tok_text(P, buf, sizeof buf))
		return -1;
	errno = 0;
	long long v = strtoll(buf, &end, 10);
	if (*end || end == buf)
		return err(P, "'%s' is not an integer", buf);
	if (errno == ERANGE || v < lo || v > hi)
		return err(P, "%s is out of range [%lld, %lld]", buf, (long long)lo, (long long)hi);
	*out = v;
	return next(P);
}

/* number := T_NUM | inf | nan  (as %.17g prints them) */
static int parse_double(Parser *P, double *out)
{
	char buf[64], *end;
	if (P->t.k != T_NUM && !is_word(P, "inf") && !is_word(P, "nan"))
		return err(P, "expected a number, found %s", tok_name(&P->t));
	if (tok_text(P, buf, sizeof buf))
		return -1;
	*out = strtod(buf, &end);
	if (*end || end == buf)
		return err(P, "'%s' is not a number", buf);
	return next(P);
}

static int hexval(int c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* string := '"' { char | '\"' | '\\' | '\n' | '\t' | '\xHH' } '"'
 * Decodes into P->sbuf and interns it; the id goes to *id. */
static int parse_string(Parser *P, uint32_t *id)
{
	if (P->t.k != T_STR)
		return err(P, "expected a quoted name, found %s", tok_name(&P->t));
	P->sbuf.len = 0;
	const char *s = P->t.s + 1, *end = P->t.s + P->t.n - 1;
	while (s < end) {
		int c = (unsigned char)*s++;
		if (c == '\\') {
			int e = *s++;
			if (e == 'n')
				c = '\n';
			else if (e == 't')
				c = '\t';
			else if (e == '"' || e == '\\')
				c = e;
			else if (e == 'x' && end - s >= 2 && hexval(s[0]) >= 0 && hexval(s[1]) >= 0) {
				c = hexval(s[0]) * 16 + hexval(s[1]);
				s += 2;
			} else
				return err(P, "bad escape in string");
		}
		if (c == 0)
			return err(P, "string contains a NUL byte");
		char *slot = vec_push(&P->sbuf, 1);
		if (!slot)
			return err(P, "out of memory");
		*slot = (char)c;
	}
	char *nul = vec_push(&P->sbuf, 1);
	if (!nul)
		return err(P, "out of memory");
	*id = ir_intern(P->g, P->sbuf.data);
	if (*id == UINT32_MAX)
		return err(P, "out of memory");
	return next(P);
}

/* value := '%' digits, naming a node defined before the current one */
static int parse_ref(Parser *P, ValId *out)
{
	char buf[32], *end;
	if (P->t.k != T_VAL)
		return err(P, "expected a value like %%3, found %s", tok_name(&P->t));
	if (P->t.n > 11)
		return err(P, "no such value");
	memcpy(buf, P->t.s + 1, P->t.n - 1);
	buf[P->t.n - 1] = 0;
	unsigned long long v = strtoull(buf, &end, 10);
	if (v >= ir_nnode(P->g))
		return err(P, "%%%llu is used before it is defined", v);
	*out = (ValId)v;
	return next(P);
}

/* type := dtype '[' [int {',' int}] ']' */
static int parse_type(Parser *P, DType *t, Shape *s)
{
	int k;
	for (k = 0; k < DT_COUNT; k++)
		if (is_word(P, ir_dtype_name[k]))
			break;
	if (k == DT_COUNT)
		return err(P, "expected a type like f32[2,3], found %s", tok_name(&P->t));
	*t = (DType)k;
	*s = (Shape){0};
	if (next(P) || expect_punct(P, '['))
		return -1;
	while (!is_punct(P, ']')) {
		if (s->rank && expect_punct(P, ','))
			return -1;
		if (s->rank == IR_MAX_RANK)
			return err(P, "rank above the maximum %d", IR_MAX_RANK);
		if (parse_int(P, 1, INT64_MAX, &s->dim[s->rank]))
			return -1;
		s->rank++;
	}
	return next(P);
}

/* The Source a location comment names, made once per file name. */
static const Source *file_source(Parser *P, const char *name, size_t n)
{
	for (size_t i = 0; i < P->files.len; i++) {
		const Source *s = VEC_AT(P->files, const Source *, i);
		if (strlen(s->name) == n && !memcmp(s->name, name, n))
			return s;
	}
	Source *s = arena_alloc(&P->g->arena, sizeof *s);
	const Source **slot = s ? vec_push(&P->files, sizeof *slot) : NULL;
	if (!slot || !(s->name = arena_strndup(&P->g->arena, name, n)))
		return NULL;
	*slot = s;
	return s;
}

static bool all_digits(const char *s, size_t n, uint32_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 9)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = (uint32_t)v;
	return true;
}

/* loc-comment := file ':' line ':' col, the whole comment; anything else
 * is an ordinary comment and leaves *loc alone. */
static int comment_loc(Parser *P, const Tok *c, SrcLoc *loc)
{
	const char *s = c->s, *e = c->s + c->n;
	while (s < e && (*s == ' ' || *s == '\t'))
		s++;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		e--;
	const char *c2 = e;
	while (c2 > s && c2[-1] != ':')
		c2--;
	const char *c1 = c2 > s ? c2 - 1 : s;
	while (c1 > s && c1[-1] != ':')
		c1--;
	uint32_t line, col;
	if (c1 <= s + 1 || c2 <= c1 || !all_digits(c2, (size_t)(e - c2), &col) ||
	    !all_digits(c1, (size_t)(c2 - 1 - c1), &line) || line == 0 || col == 0)
		return 0;
	/* The printer never writes control bytes in a file name. */
	for (const char *q = s; q < c1; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			return 0;
	const Source *src = file_source(P, s, (size_t)(c1 - 1 - s));
	if (!src)
		return err(P, "out of memory");
	*loc = (SrcLoc){src, line, col, 1};
	return 0;
}

/* Ends a line: end of line (with an optional comment) or end of file. The
 * comment is returned in *c, when the caller wants it. */
static int end_line(Parser *P, Tok *c)
{
	if (P->t.k != T_EOL && P->t.k != T_EOF)
		return err(P, "expected the end of the line, found %s", tok_name(&P->t));
	if (c)
		*c = P->t;
	return P->t.k == T_EOF ? 0 : next(P);
}

/* Attributes and flags after the operands, in any order, each at most
 * once; the words are ops.h's IR_ATTRS. check_attrs then compares them with
 * the ones the op carries. */
typedef struct Attrs {
	unsigned have;        /* IRA_* seen */
	Node n;               /* values land in the matching fields */
} Attrs;

/* perm := '(' [int {',' int}] ')' */
static int parse_perm(Parser *P, uint8_t *perm)
{
	int nperm = 0;
	if (expect_punct(P, '('))
		return -1;
	while (!is_punct(P, ')')) {
		if (nperm && expect_punct(P, ','))
			return -1;
		if (nperm == IR_MAX_RANK)
			return err(P, "perm longer than the maximum rank %d", IR_MAX_RANK);
		int64_t x;
		if (parse_int(P, 0, IR_MAX_RANK - 1, &x))
			return -1;
		perm[nperm++] = (uint8_t)x;
	}
	return next(P);
}

/* attr := word '=' int | word '=' number | word '=' perm | word
 *       | ( 'none' | 'zeros' | 'ones' ) | 'normal' '(' number ')'
 * by the kind of the attribute the word names (INT, F64, PERM, FLAG, INIT). */
static int parse_attr(Parser *P, Attrs *a)
{
	Tok w = P->t;
	for (int k = 0; k < ATTR_COUNT; k++) {
		const AttrInfo *ai = &ir_attr[k];
		int init = 0;
		if (ai->kind == AK_INIT) {
			while (init < INIT_COUNT && !is_word(P, ir_init_name[init]))
				init++;
			if (init == INIT_COUNT)
				continue;
		} else if (ai->kind == AK_LEAD || ai->kind == AK_NAME || ai->kind == AK_DTYPE ||
			   ai->kind == AK_SHAPE || !is_word(P, ai->word)) {
			continue;
		}
		if (a->have & (1u << k))
			return ai->kind == AK_INIT ? err(P, "initialiser given twice") :
				err(P, "'%s' given twice", ai->word);
		a->have |= 1u << k;
		void *f = ir_attr_field(&a->n, (AttrId)k);
		if (next(P))
			return -1;
		switch ((AttrKind)ai->kind) {
		case AK_FLAG:
			a->n.flags |= ai->flag;
			return 0;
		case AK_INIT:
			*(uint8_t *)f = (uint8_t)init;
			if (init != INIT_NORMAL)
				return 0;
			return expect_punct(P, '(') || parse_double(P, &a->n.value) ||
				       expect_punct(P, ')') ? -1 : 0;
		case AK_INT:
			return expect_punct(P, '=') ||
				       parse_int(P, -(INT64_C(1) << 40), INT64_C(1) << 40, f) ? -1 : 0;
		case AK_F64:
			return expect_punct(P, '=') || parse_double(P, f) ? -1 : 0;
		case AK_PERM:
			return expect_punct(P, '=') || parse_perm(P, f) ? -1 : 0;
		case AK_NAME: case AK_LEAD: case AK_DTYPE: case AK_SHAPE: case AK_COUNT: break;
		}
	}
	P->t = w;
	return err(P, "unknown attribute '%.*s'", (int)P->t.n, P->t.s);
}

/* Checks the attributes read against those the op carries: no flag or
 * attribute it lacks, every attribute it carries (flags are optional), and
 * copies their values into n. */
static int check_attrs(Parser *P, const Tok *optok, Node *n, Attrs *a)
{
	Tok save = P->t;
	P->t = *optok;
	const char *op = ir_op[n->op].name;
	unsigned carried = ir_attrs(n), flags = 0, missing = 0;
	for (int k = 0; k < ATTR_COUNT; k++) {
		if (ir_attr[k].kind == AK_FLAG)
			flags |= 1u << k;
		else if (carried & ~a->have & (1u << k) &&
			 (ir_attr[k].kind == AK_INIT || ir_attr[k].kind == AK_INT ||
			  ir_attr[k].kind == AK_F64 || ir_attr[k].kind == AK_PERM))
			missing |= 1u << k;
	}
	int rc = 0;
	if (a->have & flags & ~carried)
		rc = err(P, "%s takes none of the flags given", op);
	else if (a->have & ~flags & ~carried)
		rc = err(P, "%s does not take the attributes given", op);
	else if (missing) {
		int k = 0;
		while (!(missing & (1u << k)))
			k++;
		rc = ir_attr[k].kind == AK_INIT ?
			err(P, "%s needs an initialiser (none, zeros, ones, normal(std))", op) :
			err(P, "%s needs %s=", op, ir_attr[k].word);
	}
	P->t = save;
	if (rc)
		return rc;
	for (int k = 0; k < ATTR_COUNT; k++)
		if (a->have & (1u << k) && ir_attr[k].kind != AK_FLAG)
			memcpy(ir_attr_field(n, (AttrId)k), ir_attr_field(&a->n, (AttrId)k),
			       ir_attr[k].size);
	n->flags = a->n.flags;
	if (a->have & IRA_INIT && n->init == INIT_NORMAL)
		n->value = a->n.value;
	return 0;
}

/* node := '%' id '=' op [string | number] [value {',' value}] {attr}
 *         ':' type [loc-comment] EOL */
static int parse_node(Parser *P)
{
	char want[24];
	snprintf(want, sizeof want, "%%%u", ir_nnode(P->g));
	if (P->t.n != strlen(want) || memcmp(P->t.s, want, P->t.n))
		return err(P, "expected %s here: values are numbered in order from %%0", want);
	if (next(P) || expect_punct(P, '='))
		return -1;
	Tok optok = P->t;
	int op;
	for (op = 0; op < OP_COUNT; op++)
		if (is_word(P, ir_op[op].name))
			break;
	if (op == OP_COUNT)
		return err(P, "unknown op '%.*s'", (int)P->t.n, P->t.s);
	Node n = {.op = (uint16_t)op};
	if (next(P))
		return -1;
	for (int k = 0; k < ATTR_COUNT; k++) {   /* the attributes before the operands */
		if (!(ir_attrs(&n) & (1u << k)))
			continue;
		if (ir_attr[k].kind == AK_NAME && parse_string(P, ir_attr_field(&n, (AttrId)k)))
			return -1;
		if (ir_attr[k].kind == AK_LEAD && parse_double(P, ir_attr_field(&n, (AttrId)k)))
			return -1;
	}
	Vec args = {0};
	int rc = -1;
	while (P->t.k == T_VAL || (args.len && is_punct(P, ','))) {
		if (args.len && expect_punct(P, ','))
			goto done;
		ValId *slot = vec_push(&args, sizeof *slot);
		if (!slot) {
			err(P, "out of memory");
			goto done;
		}
		if (parse_ref(P, slot))
			goto done;
	}
	Attrs a = {0};
	while (P->t.k == T_ID)
		if (parse_attr(P, &a))
			goto done;
	if (check_attrs(P, &optok, &n, &a) || expect_punct(P, ':'))
		goto done;
	Tok typetok = P->t;
	DType dt = DT_F32;
	if (parse_type(P, &dt, &n.shape))
		goto done;
	typetok.n = (size_t)(P->t.s - typetok.s);
	Tok comment = {0};
	if (end_line(P, &comment))
		goto done;
	n.dtype = (uint8_t)dt;
	n.loc = tok_loc(P, &optok);
	Shape printed = n.shape;
	/* The shape rule runs here, and its errors point at the .ir line. */
	ValId v = ir_add(P->g, &n, args.data, (uint32_t)args.len, P->d);
	if (v == VAL_NONE)
		goto done;
	Node *got = ir_node(P->g, v);
	if (got->dtype != dt || !ir_shape_eq(&got->shape, &printed)) {
		char sg[160];
		ir_shape_str(&got->shape, sg, sizeof sg);
		P->t = typetok;
		err(P, "%s gives %s%s, not the type written", ir_op[op].name,
		    ir_dtype_name[got->dtype], sg);
		goto done;
	}
	got->loc = (SrcLoc){0};
	if (comment.n && comment_loc(P, &comment, &got->loc))
		goto done;
	if (op == OP_MASK) {
		MaskRef *r = vec_push(&P->masknode, sizeof *r);
		if (!r) {
			err(P, "out of memory");
			goto done;
		}
		r->v = v;
		r->tok = optok;
	}
	rc = 0;
done:
	vec_free(&args);
	return rc;
}

/* output := 'output' string '=' value EOL */
static int parse_output(Parser *P)
{
	uint32_t name;
	ValId v;
	if (next(P))
		return -1;
	Tok nametok = P->t;
	if (parse_string(P, &name) || expect_punct(P, '=') || parse_ref(P, &v))
		return -1;
	if (!name) {
		P->t = nametok;
		return err(P, "an output needs a name");
	}
	for (size_t i = 0; i < P->g->out.len; i++)
		if (VEC_AT(P->g->out, Output, i).name == name) {
			P->t = nametok;
			return err(P, "output \"%s\" is given twice", ir_str(P->g, name));
		}
	Output *o = vec_push(&P->g->out, sizeof *o);
	if (!o)
		return err(P, "out of memory");
	o->name = name;
	o->val = v;
	return end_line(P, NULL);
}

/* loss := 'loss' '=' value EOL */
static int parse_loss(Parser *P)
{
	if (P->have_loss)
		return err(P, "the loss is given twice");
	P->have_loss = true;
	if (next(P) || expect_punct(P, '='))
		return -1;
	Tok vt = P->t;
	if (parse_ref(P, &P->g->loss))
		return -1;
	const Node *l = ir_node(P->g, P->g->loss);
	if (l->dtype != DT_F32 || l->shape.rank != 0) {
		P->t = vt;
		return err(P, "the loss must be an f32 scalar");
	}
	return end_line(P, NULL);
}

/* grad := 'grad' string '=' value EOL
 * The string names a param defined above; the value must be an f32 of the
 * param's shape, and a param has at most one gradient and none if frozen. */
static int parse_grad(Parser *P)
{
	uint32_t name;
	ValId v;
	if (next(P))
		return -1;
	Tok nametok = P->t;
	if (parse_string(P, &name) || expect_punct(P, '='))
		return -1;
	Tok vt = P->t;
	if (parse_ref(P, &v))
		return -1;
	Graph *g = P->g;
	ValId p = name ? ir_find_param(g, ir_str(g, name)) : VAL_NONE;
	const char *why = NULL;
	if (p == VAL_NONE)
		why = "is not a param defined above";
	else if (ir_node(g, p)->flags & NF_FROZEN)
		why = "is frozen and has no gradient";
	for (size_t i = 0; !why && i < g->grad.len; i++)
		if (VEC_AT(g->grad, GradPair, i).param == p)
			why = "has its gradient given twice";
	if (why) {
		P->t = nametok;
		return err(P, "grad \"%s\" %s", ir_str(g, name), why);
	}
	const Node *pn = ir_node(g, p), *gn = ir_node(g, v);
	if (gn->dtype != DT_F32 || !ir_shape_eq(&gn->shape, &pn->shape)) {
		char sp[160], sg[160];
		ir_shape_str(&pn->shape, sp, sizeof sp);
		ir_shape_str(&gn->shape, sg, sizeof sg);
		P->t = vt;
		return err(P, "the gradient of param \"%s\" f32%s is %s%s, not of its type",
			   ir_str(g, name), sp, ir_dtype_name[gn->dtype], sg);
	}
	GradPair *gp = vec_push(&g->grad, sizeof *gp);
	if (!gp)
		return err(P, "out of memory");
	gp->param = p;
	gp->grad = v;
	return end_line(P, NULL);
}

/* key=int, for the mask line */
static int parse_keyed_int(Parser *P, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
	if (!is_word(P, key))
		return err(P, "expected %s= here", key);
	return next(P) || expect_punct(P, '=') || parse_int(P, lo, hi, out) ? -1 : 0;
}

/* mask := 'mask' string number dist [kept=int numel=int xxh3=hex] EOL
 * The string names a param defined above, at most one mask per param. With
 * kept= the pattern was decided but its bits are not in the text: the mask
 * is read back "to supply" (docs/sparsity.md). */
static int parse_mask(Parser *P)
{
	uint32_t name;
	if (next(P))
		return -1;
	Tok nametok = P->t;
	if (parse_string(P, &name))
		return -1;
	Graph *g = P->g;
	ValId p = name ? ir_find_param(g, ir_str(g, name)) : VAL_NONE;
	if (p == VAL_NONE || ir_find_mask(g, p)) {
		P->t = nametok;
		return err(P, "mask \"%s\" %s", ir_str(g, name), p == VAL_NONE ?
			   "is not a param defined above" : "is given twice");
	}
	Tok tt = P->t;
	double target;
	if (parse_double(P, &target))
		return -1;
	if (!(target >= 0 && target <= 1)) {
		P->t = tt;
		return err(P, "a sparsity target must be in [0, 1]");
	}
	int dist;
	for (dist = 0; dist < SD_COUNT; dist++)
		if (is_word(P, ir_sparse_dist_name[dist]))
			break;
	if (dist == SD_COUNT)
		return err(P, "expected a distribution (uniform or erk)");
	if (next(P))
		return -1;
	Mask m = {.param = p, .target = target, .dist = (uint8_t)dist, .nkept = -1};
	if (P->t.k == T_ID && is_word(P, "kept")) {
		int64_t numel = ir_numel(&ir_node(g, p)->shape), n;
		if (parse_keyed_int(P, "kept", 0, numel, &m.nkept))
			return -1;
		Tok nt = P->t;
		if (parse_keyed_int(P, "numel", 0, INT64_MAX, &n))
			return -1;
		if (n != numel) {
			P->t = nt;
			return err(P, "param \"%s\" has %lld elements, not %lld", ir_str(g, name),
				   (long long)numel, (long long)n);
		}
		if (!is_word(P, "xxh3"))
			return err(P, "expected xxh3= here");
		if (next(P) || expect_punct(P, '='))
			return -1;
		char hex[33];
		if ((P->t.k != T_NUM && P->t.k != T_ID) || P->t.n != 32)
			return err(P, "expected 32 hex digits");
		memcpy(hex, P->t.s, 32);
		hex[32] = 0;
		uint64_t part[2] = {0, 0};
		for (int i = 0; i < 32; i++) {
			int h = hexval(hex[i]);
			if (h < 0)
				return err(P, "expected 32 hex digits");
			part[i / 16] = part[i / 16] << 4 | (uint64_t)h;
		}
		m.hash.hi = part[0];
		m.hash.lo = part[1];
		if (next(P))
			return -1;
	}
	Mask *slot = ir_set_mask(g, p, target, (SparseDist)dist);
	if (!slot)
		return err(P, "out of memory");
	*slot = m;
	return end_line(P, NULL);
}

/* The token "..", which the lexer reads as a number. */
static bool is_range(const Parser *P)
{
	return P->t.k == T_NUM && P->t.n == 2 && !memcmp(P->t.s, "..", 2);
}

static int expect_range(Parser *P)
{
	if (!is_range(P))
		return err(P, "expected '..' here");
	return next(P);
}

/* mesh := 'mesh' string 'rows=' int 'cols=' int EOL
 * After every node: the place lines that follow name them. */
static int parse_mesh(Parser *P)
{
	if (P->have_mesh)
		return err(P, "the mesh line is given twice");
	uint32_t name;
	int64_t rows, cols;
	if (next(P) || parse_string(P, &name) ||
	    parse_keyed_int(P, "rows", 1, UINT16_MAX, &rows) ||
	    parse_keyed_int(P, "cols", 1, UINT16_MAX, &cols))
		return -1;
	if (ir_set_mesh(P->g, ir_str(P->g, name), (uint32_t)rows, (uint32_t)cols))
		return err(P, "out of memory");
	P->have_mesh = true;
	return end_line(P, NULL);
}

/* tile := '(' int ',' int ')', inside the mesh */
static int parse_tile(Parser *P, int64_t *row, int64_t *col)
{
	Graph *g = P->g;
	return expect_punct(P, '(') || parse_int(P, 0, (int64_t)g->mesh_rows - 1, row) ||
	       expect_punct(P, ',') || parse_int(P, 0, (int64_t)g->mesh_cols - 1, col) ||
	       expect_punct(P, ')') ? -1 : 0;
}

/* place := 'place' value ['..' value] 'tiles=' tile '..' tile ['unit=' value] EOL
 * Nodes first..last run on the rectangle of tiles between the two corners
 * (inclusive); the unit is the node (a weight, or a product of activations)
 * whose tiles they share. Each node is placed once. */
static int parse_place(Parser *P)
{
	Graph *g = P->g;
	if (!P->have_mesh)
		return err(P, "a place line needs the mesh line before it");
	ValId first, last, unit = VAL_NONE;
	if (next(P))
		return -1;
	Tok ft = P->t;
	if (parse_ref(P, &first))
		return -1;
	last = first;
	if (is_range(P) && (next(P) || parse_ref(P, &last)))
		return -1;
	if (last < first) {
		P->t = ft;
		return err(P, "the range %%%u..%%%u is empty", first, last);
	}
	int64_t r0, c0, r1, c1;
	if (!is_word(P, "tiles"))
		return err(P, "expected tiles= here");
	if (next(P) || expect_punct(P, '=') || parse_tile(P, &r0, &c0) || expect_range(P))
		return -1;
	Tok ct = P->t;
	if (parse_tile(P, &r1, &c1))
		return -1;
	if (r1 < r0 || c1 < c0) {
		P->t = ct;
		return err(P, "the second corner must be below and right of the first");
	}
	if (P->t.k == T_ID) {
		if (!is_word(P, "unit"))
			return err(P, "expected unit= or the end of the line");
		if (next(P) || expect_punct(P, '='))
			return -1;
		if (parse_ref(P, &unit))
			return -1;
	}
	for (ValId v = first; v <= last; v++) {
		Place *pl = ir_place(g, v);
		if (pl->rows) {
			P->t = ft;
			return err(P, "%%%u is placed twice", v);
		}
		*pl = (Place){(uint32_t)r0, (uint32_t)c0, (uint32_t)(r1 - r0 + 1),
			      (uint32_t)(c1 - c0 + 1), unit};
	}
	return end_line(P, NULL);
}

/* model := 'model' string ['(' binding {',' binding} ')'] EOL
 * binding := (ident | string) '=' int */
static int parse_model(Parser *P)
{
	if (P->have_model)
		return err(P, "the model line is given twice");
	P->have_model = true;
	if (next(P) || parse_string(P, &P->g->model_name))
		return -1;
	if (is_punct(P, '(')) {
		if (next(P))
			return -1;
		for (int k = 0; k == 0 || is_punct(P, ','); k++) {
			if (k && next(P))
				return -1;
			uint32_t name;
			if (P->t.k == T_ID) {
				char buf[256];
				if (P->t.n >= sizeof buf)
					return err(P, "name too long");
				memcpy(buf, P->t.s, P->t.n);
				buf[P->t.n] = 0;
				name = ir_intern(P->g, buf);
				if (name == UINT32_MAX)
					return err(P, "out of memory");
				if (next(P))
					return -1;
			} else if (parse_string(P, &name))
				return -1;
			int64_t value;
			if (expect_punct(P, '=') || parse_int(P, INT64_MIN, INT64_MAX, &value))
				return -1;
			Binding *b = vec_push(&P->g->bind, sizeof *b);
			if (!b)
				return err(P, "out of memory");
			b->name = name;
			b->value = value;
		}
		if (expect_punct(P, ')'))
			return -1;
	}
	return end_line(P, NULL);
}

/* Every mask node names a param that has a mask line, with its shape. */
static int check_mask_nodes(Parser *P)
{
	Graph *g = P->g;
	for (size_t i = 0; i < P->masknode.len; i++) {
		const MaskRef *r = &VEC_AT(P->masknode, MaskRef, i);
		const Node *n = ir_node(g, r->v);
		ValId p = ir_find_param(g, ir_str(g, n->name));
		if (p == VAL_NONE || !ir_find_mask(g, p) ||
		    !ir_shape_eq(&ir_node(g, p)->shape, &n->shape)) {
			P->t = r->tok;
			return err(P, "mask \"%s\" needs a param of its shape with a mask line",
				   ir_str(g, n->name));
		}
	}
	return 0;
}

/* file := { [node | output | loss | grad | mask | mesh | place | model] EOL } */
static int parse_file(Parser *P)
{
	if (next(P))
		return -1;
	while (P->t.k != T_EOF) {
		int rc;
		if (P->t.k == T_EOL)
			rc = next(P);
		else if (P->t.k == T_VAL && P->have_mesh)
			rc = err(P, "a node after the mesh line: nodes come first");
		else if (P->t.k == T_VAL)
			rc = parse_node(P);
		else if (is_word(P, "mesh"))
			rc = parse_mesh(P);
		else if (is_word(P, "place"))
			rc = parse_place(P);
		else if (is_word(P, "output"))
			rc = parse_output(P);
		else if (is_word(P, "loss"))
			rc = parse_loss(P);
		else if (is_word(P, "grad"))
			rc = parse_grad(P);
		else if (is_word(P, "mask"))
			rc = parse_mask(P);
		else if (is_word(P, "model"))
			rc = parse_model(P);
		else
			rc = err(P, "expected a node (%%N = ...), output, loss, grad, mask, mesh, "
				 "place or model line");
		if (rc)
			return -1;
	}
	for (ValId v = 0; P->have_mesh && v < ir_nnode(P->g); v++)
		if (!ir_place(P->g, v)->rows)
			return err(P, "%%%u has no place line (a placed graph places every node)", v);
	return check_mask_nodes(P);
}

int ir_parse(const Source *src, Graph **out, Diag *d)
{
	*out = NULL;
	Parser P = {
		.src = src, .p = src->text, .end = src->text + src->len, .bol = src->text,
		.line = 1, .d = d,
	};
	P.g = ir_graph_create();
	if (!P.g)
		return diag_error(d, (SrcLoc){src, 0, 0, 0}, "out of memory");
	int rc = parse_file(&P);
	vec_free(&P.files);
	vec_free(&P.sbuf);
	vec_free(&P.masknode);
	if (rc) {
		ir_graph_destroy(P.g);
		return -1;
	}
	*out = P.g;
	return 0;
}
