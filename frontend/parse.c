/* parse.c: recursive-descent parser from tokens to the syntax tree.
 *
 * The grammar (docs/language.md has it in full) is line-oriented without
 * being indentation-sensitive: statements end at a newline or ';', and a
 * postfix chain (call, index) does not continue across a newline, so
 * `y = f` followed by `(x)` on the next line is two statements, not a call.
 * Each function below begins with the rule it parses.
 *
 * Errors: one message per broken statement; the parser then skips to the
 * next statement boundary (a newline at the same brace depth, ';' or the
 * closing '}') and carries on, so one run reports several mistakes. Nesting
 * is capped at FE_MAX_NEST so hostile input cannot overflow the C stack.
 * The tree is allocated in the arena; nothing is freed on error. */
#include "fe_internal.h"

#include <stdio.h>
#include <string.h>

typedef struct Parser {
	const Source *src;
	Token *tok;
	int ntok, pos;
	Arena *a;
	Diag *d;
	int depth;
	int err;
	bool in_model;        /* input/output/loss belong to a model body */
	char what[96];        /* describe()'s buffer */
} Parser;

static Token *peek(Parser *p)
{
	return &p->tok[p->pos];
}

static Token *peek2(Parser *p)
{
	return &p->tok[p->pos + 1 < p->ntok ? p->pos + 1 : p->pos];
}

static bool at(Parser *p, Tok k)
{
	return peek(p)->kind == k;
}

static Token *next(Parser *p)
{
	Token *t = &p->tok[p->pos];
	if (t->kind != T_EOF)
		p->pos++;
	return t;
}

static bool accept(Parser *p, Tok k)
{
	if (!at(p, k))
		return false;
	next(p);
	return true;
}

/* Reports at the current token; returns -1 for `return error(...)`. */
static int error_at(Parser *p, SrcLoc loc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int error_at(Parser *p, SrcLoc loc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_verror(p->d, loc, fmt, ap);
	va_end(ap);
	p->err = -1;
	return -1;
}

static const char *describe(Parser *p, const Token *t)
{
	if (t->kind != T_IDENT || !t->text)
		return fe_tok_name[t->kind];
	snprintf(p->what, sizeof p->what, "'%.80s'", t->text);
	return p->what;
}

static int expect(Parser *p, Tok k, const char *what)
{
	if (accept(p, k))
		return 0;
	Token *t = peek(p);
	if (t->kind == T_IDENT)
		return error_at(p, t->loc, "expected %s %s, got '%s'", fe_tok_name[k], what,
				t->text);
	return error_at(p, t->loc, "expected %s %s, got %s", fe_tok_name[k], what,
			fe_tok_name[t->kind]);
}

static void *alloc(Parser *p, size_t n)
{
	void *q = arena_alloc(p->a, n);
	if (!q)
		error_at(p, peek(p)->loc, "out of memory");
	return q;
}

/* The span from token `first` to the last consumed token. */
static SrcLoc span(Parser *p, const Token *first)
{
	const Token *last = &p->tok[p->pos > 0 ? p->pos - 1 : 0];
	SrcLoc l = first->loc;
	uint32_t end = last->off + last->loc.len;
	if (last >= first && end > first->off)
		l.len = end - first->off;
	return l;
}

/* Copies a Vec of pointers into the arena as an array. */
static void *freeze(Parser *p, Vec *v, size_t elsize)
{
	void *q = NULL;
	if (v->len && (q = alloc(p, v->len * elsize)))
		memcpy(q, v->data, v->len * elsize);
	vec_free(v);
	return q;
}

static bool push_ptr(Parser *p, Vec *v, void *x)
{
	void **slot = vec_push(v, sizeof x);
	if (!slot) {
		error_at(p, peek(p)->loc, "out of memory");
		return false;
	}
	*slot = x;
	return true;
}

static Expr *new_expr(Parser *p, ExprKind k, const Token *t)
{
	Expr *e = alloc(p, sizeof *e);
	if (e) {
		e->kind = (uint8_t)k;
		e->loc = t->loc;
	}
	return e;
}

static Expr *expr(Parser *p);

static bool enter(Parser *p)
{
	if (++p->depth <= FE_MAX_NEST)
		return true;
	error_at(p, peek(p)->loc, "nesting is too deep (the limit is %d levels)", FE_MAX_NEST);
	return false;
}

/* path = seg { '.' seg }     seg = IDENT | INT | '{' expr '}' */
static Path *path(Parser *p)
{
	Vec seg = {0};
	Token *first = peek(p);
	Path *pa = alloc(p, sizeof *pa);
	if (!pa)
		return NULL;
	do {
		Token *t = peek(p);
		PathSeg s = {.loc = t->loc};
		if (t->kind == T_IDENT) {
			s.name = next(p)->text;
		} else if (t->kind == T_INT) {
			char buf[32];
			snprintf(buf, sizeof buf, "%lld", (long long)next(p)->ival);
			s.name = arena_strdup(p->a, buf);
		} else if (t->kind == T_LBRACE) {
			next(p);
			s.e = expr(p);
			if (!s.e || expect(p, T_RBRACE, "after the name expression"))
				goto fail;
			s.loc = span(p, t);
		} else {
			error_at(p, t->loc, "expected a name after 'as' (like attn or h.{i}), got %s",
				 describe(p, t));
			goto fail;
		}
		PathSeg *slot = vec_push(&seg, sizeof *slot);
		if (!slot)
			goto fail;
		*slot = s;
	} while (accept(p, T_DOT));
	pa->nseg = (int)seg.len;
	pa->seg = freeze(p, &seg, sizeof(PathSeg));
	pa->loc = span(p, first);
	return pa->seg ? pa : NULL;
fail:
	vec_free(&seg);
	return NULL;
}

/* args = [ arg { ',' arg } [','] ]     arg = [ IDENT '=' ] expr */
static int call_args(Parser *p, Expr *call)
{
	Vec item = {0}, kw = {0}, loc = {0};
	while (!at(p, T_RPAREN)) {
		const char *name = NULL;
		Token *first = peek(p);
		if (at(p, T_IDENT) && peek2(p)->kind == T_ASSIGN) {
			name = next(p)->text;
			next(p);
		} else if (kw.len && VEC_AT(kw, const char *, kw.len - 1)) {
			error_at(p, peek(p)->loc, "positional argument after a keyword argument");
			goto fail;
		}
		Expr *e = expr(p);
		if (!e || !push_ptr(p, &item, e) || !push_ptr(p, &kw, (void *)name))
			goto fail;
		SrcLoc *l = vec_push(&loc, sizeof *l);
		if (!l)
			goto fail;
		*l = span(p, first);
		if (!accept(p, T_COMMA))
			break;
	}
	if (expect(p, T_RPAREN, "to close the argument list"))
		goto fail;
	call->nitem = (int)item.len;
	call->item = freeze(p, &item, sizeof(Expr *));
	call->kw = freeze(p, &kw, sizeof(char *));
	call->argloc = freeze(p, &loc, sizeof(SrcLoc));
	return 0;
fail:
	vec_free(&item);
	vec_free(&kw);
	vec_free(&loc);
	return -1;
}

/* list = '[' [ expr { ',' expr } [','] ] ']' */
static Expr *list(Parser *p, Token *first)
{
	Expr *e = new_expr(p, E_LIST, first);
	Vec item = {0};
	if (!e)
		return NULL;
	while (!at(p, T_RBRACK)) {
		Expr *x = expr(p);
		if (!x || !push_ptr(p, &item, x))
			goto fail;
		if (!accept(p, T_COMMA))
			break;
	}
	if (expect(p, T_RBRACK, "to close the list"))
		goto fail;
	e->nitem = (int)item.len;
	e->item = freeze(p, &item, sizeof(Expr *));
	e->loc = span(p, first);
	return e;
fail:
	vec_free(&item);
	return NULL;
}

/* primary = INT | FLOAT | STRING | 'true' | 'false' | IDENT | '(' expr ')' | list */
static Expr *primary(Parser *p)
{
	Token *t = peek(p);
	Expr *e;
	switch (t->kind) {
	case T_INT:
		if ((e = new_expr(p, E_INT, next(p))))
			e->ival = t->ival;
		return e;
	case T_FLOAT:
		if ((e = new_expr(p, E_FLOAT, next(p))))
			e->fval = t->fval;
		return e;
	case T_STRING:
		if ((e = new_expr(p, E_STR, next(p))))
			e->name = t->text;
		return e;
	case T_TRUE:
	case T_FALSE:
		if ((e = new_expr(p, E_BOOL, next(p))))
			e->ival = t->kind == T_TRUE;
		return e;
	case T_IDENT:
		if ((e = new_expr(p, E_NAME, next(p))))
			e->name = t->text;
		return e;
	case T_LPAREN:
		next(p);
		e = expr(p);
		if (!e)
			return NULL;
		if (!at(p, T_RPAREN) && peek(p)->nl_before) {
			error_at(p, t->loc, "this '(' is not closed on its line");
			return NULL;
		}
		if (expect(p, T_RPAREN, "to close the parenthesis"))
			return NULL;
		e->loc = span(p, t);
		return e;
	case T_LBRACK:
		next(p);
		return list(p, t);
	default:
		error_at(p, t->loc, "expected an expression, got %s", describe(p, t));
		return NULL;
	}
}

/* postfix = primary { '(' args ')' [ 'as' path ] | '.' IDENT | '[' expr ']' }
 * '(' and '[' continue the chain only on the same line. */
static Expr *postfix(Parser *p)
{
	Token *first = peek(p);
	Expr *e = primary(p);
	while (e) {
		Token *t = peek(p);
		Expr *x;
		if (t->kind == T_LPAREN && !t->nl_before) {
			next(p);
			if (!(x = new_expr(p, E_CALL, first)))
				return NULL;
			x->a = e;
			if (call_args(p, x))
				return NULL;
			x->loc = span(p, first);
			if (accept(p, T_AS) && !(x->as = path(p)))
				return NULL;
		} else if (t->kind == T_DOT) {
			next(p);
			Token *n = peek(p);
			if (n->kind != T_IDENT) {
				error_at(p, n->loc, "expected a field name after '.', got %s",
					 describe(p, n));
				return NULL;
			}
			next(p);
			if (!(x = new_expr(p, E_FIELD, first)))
				return NULL;
			x->a = e;
			x->name = n->text;
			x->loc = span(p, first);
		} else if (t->kind == T_LBRACK && !t->nl_before) {
			next(p);
			if (!(x = new_expr(p, E_INDEX, first)))
				return NULL;
			x->a = e;
			if (!(x->b = expr(p)) || expect(p, T_RBRACK, "to close the index"))
				return NULL;
			x->loc = span(p, first);
		} else {
			break;
		}
		e = x;
	}
	return e;
}

/* unary = ('-' | 'not') unary | postfix */
static Expr *unary(Parser *p)
{
	Token *t = peek(p);
	if (t->kind != T_MINUS && t->kind != T_NOT)
		return postfix(p);
	next(p);
	if (!enter(p))
		return NULL;
	Expr *a = unary(p);
	p->depth--;
	Expr *e = a ? new_expr(p, t->kind == T_MINUS ? E_NEG : E_NOT, t) : NULL;
	if (e) {
		e->a = a;
		e->loc = span(p, t);
	}
	return e;
}

/* Binary operator precedence, loosest first; 0 = not a binary operator. */
static int prec(Tok k)
{
	switch (k) {
	case T_OR: return 1;
	case T_AND: return 2;
	case T_EQ: case T_NE: case T_LT: case T_LE: case T_GT: case T_GE: return 3;
	case T_PLUS: case T_MINUS: return 4;
	case T_STAR: case T_SLASH: case T_SLASHSLASH: case T_PERCENT: case T_AT: return 5;
	default: return 0;
	}
}

/* binary = unary { binop unary }, by precedence climbing:
 *   or < and < comparison < '+' '-' < '*' '/' '//' '%' '@'
 * All are left-associative; comparisons do not chain. */
static Expr *binary(Parser *p, int min)
{
	Token *first = peek(p);
	if (!enter(p))
		return NULL;
	Expr *e = unary(p);
	while (e) {
		Token *op = peek(p);
		int pr = prec((Tok)op->kind);
		if (!pr || pr < min)
			break;
		next(p);
		Expr *b = binary(p, pr + 1);
		if (!b) {
			e = NULL;
			break;
		}
		Expr *x = new_expr(p, op->kind == T_AND ? E_AND : op->kind == T_OR ? E_OR : E_BINARY,
				   first);
		if (!x) {
			e = NULL;
			break;
		}
		x->op = op->kind;
		x->oploc = op->loc;
		x->a = e;
		x->b = b;
		x->loc = span(p, first);
		e = x;
		if (pr == 3 && prec((Tok)peek(p)->kind) == 3) {
			error_at(p, peek(p)->loc, "comparisons do not chain; use 'and'");
			e = NULL;
		}
	}
	p->depth--;
	return e;
}

static Expr *expr(Parser *p)
{
	return binary(p, 1);
}

static int block(Parser *p, Block *b);

/* dtype = 'f32' | 'i32' */
static int dtype(Parser *p, uint8_t *out)
{
	Token *t = peek(p);
	if (t->kind == T_IDENT && !strcmp(t->text, "f32"))
		*out = DT_F32;
	else if (t->kind == T_IDENT && !strcmp(t->text, "i32"))
		*out = DT_I32;
	else
		return error_at(p, t->loc, "expected a type (f32 or i32), got %s", describe(p, t));
	next(p);
	return 0;
}

/* The head every declaration shares: IDENT ':' dtype '['. Fills the
 * statement's name and dtype; *ty is the type's first token (for spans). */
static int decl_head(Parser *p, Stmt *s, const char *what, Token **ty)
{
	Token *t = peek(p);
	if (t->kind != T_IDENT)
		return error_at(p, t->loc, "expected the %s's name, got %s", what, describe(p, t));
	next(p);
	s->name = alloc(p, sizeof *s->name);
	s->nameloc = alloc(p, sizeof *s->nameloc);
	if (!s->name || !s->nameloc)
		return -1;
	s->name[0] = t->text;
	s->nameloc[0] = t->loc;
	s->nname = 1;
	*ty = peek(p);
	char msg[2][64];
	snprintf(msg[0], sizeof msg[0], "and a type after the %s's name", what);
	snprintf(msg[1], sizeof msg[1], "to start the %s's shape", what);
	if (expect(p, T_COLON, msg[0]) || dtype(p, &s->dtype) || expect(p, T_LBRACK, msg[1]))
		return -1;
	return 0;
}

/* input = 'input' IDENT ':' dtype '[' [ dim { ',' dim } ] ']'
 * dim   = IDENT [ '=' expr ] | expr */
static int input_stmt(Parser *p, Stmt *s)
{
	Token *ty;
	if (decl_head(p, s, "input", &ty))
		return -1;
	Vec dims = {0};
	while (!at(p, T_RBRACK)) {
		Token *dt = peek(p);
		DimDecl dd = {.loc = dt->loc};
		if (dt->kind == T_IDENT && (peek2(p)->kind == T_ASSIGN ||
					    peek2(p)->kind == T_COMMA ||
					    peek2(p)->kind == T_RBRACK)) {
			dd.sym = next(p)->text;
			if (accept(p, T_ASSIGN) && !(dd.e = expr(p)))
				goto fail;
		} else if (!(dd.e = expr(p))) {
			goto fail;
		}
		dd.loc = span(p, dt);
		DimDecl *slot = vec_push(&dims, sizeof *slot);
		if (!slot)
			goto fail;
		*slot = dd;
		if (!accept(p, T_COMMA))
			break;
	}
	if (expect(p, T_RBRACK, "to close the input's shape"))
		goto fail;
	s->ndim = (int)dims.len;
	s->dimdecl = freeze(p, &dims, sizeof(DimDecl));
	s->shapeloc = span(p, ty);
	return 0;
fail:
	vec_free(&dims);
	return -1;
}

/* param = [ 'frozen' ] 'param' IDENT ':' dtype '[' [ expr { ',' expr } ] ']' [ '=' expr ] */
static int param_stmt(Parser *p, Stmt *s)
{
	Token *ty;
	if (decl_head(p, s, "parameter", &ty))
		return -1;
	Vec dims = {0};
	while (!at(p, T_RBRACK)) {
		Expr *e = expr(p);
		if (!e || !push_ptr(p, &dims, e)) {
			vec_free(&dims);
			return -1;
		}
		if (!accept(p, T_COMMA))
			break;
	}
	if (expect(p, T_RBRACK, "to close the parameter's shape")) {
		vec_free(&dims);
		return -1;
	}
	s->ndim = (int)dims.len;
	s->dims = freeze(p, &dims, sizeof(Expr *));
	s->shapeloc = span(p, ty);
	if (accept(p, T_ASSIGN) && !(s->e = expr(p)))
		return -1;
	return 0;
}

/* for = 'for' IDENT 'in' expr '..' expr [ 'as' path ] block */
static int for_stmt(Parser *p, Stmt *s)
{
	Token *t = peek(p);
	if (t->kind != T_IDENT)
		return error_at(p, t->loc, "expected the loop variable's name, got %s",
				describe(p, t));
	next(p);
	s->name = alloc(p, sizeof *s->name);
	s->nameloc = alloc(p, sizeof *s->nameloc);
	if (!s->name || !s->nameloc)
		return -1;
	s->name[0] = t->text;
	s->nameloc[0] = t->loc;
	s->nname = 1;
	if (expect(p, T_IN, "after the loop variable") || !(s->e = expr(p)) ||
	    expect(p, T_DOTDOT, "in the range lo..hi") || !(s->e2 = expr(p)))
		return -1;
	if (accept(p, T_AS) && !(s->as = path(p)))
		return -1;
	return block(p, &s->body);
}

/* if = 'if' expr block [ 'else' ( if | block ) ] */
static int if_stmt(Parser *p, Stmt *s)
{
	if (!(s->e = expr(p)) || block(p, &s->body))
		return -1;
	if (!accept(p, T_ELSE))
		return 0;
	if (!at(p, T_IF))
		return block(p, &s->els);
	/* else if: a block holding one if statement */
	Stmt *inner = alloc(p, sizeof *inner);
	Stmt **one = alloc(p, sizeof *one);
	if (!inner || !one)
		return -1;
	inner->kind = S_IF;
	inner->loc = next(p)->loc;
	one[0] = inner;
	s->els.s = one;
	s->els.n = 1;
	if (!enter(p))
		return -1;
	int r = if_stmt(p, inner);
	p->depth--;
	return r;
}

/* Does the statement end here (newline, ';', '}' or end of file)? */
static bool at_end(Parser *p)
{
	Token *t = peek(p);
	if (p->pos > 0 && p->tok[p->pos - 1].kind == T_RBRACE)
		return true; /* after a block: if c { ... } return x */
	return t->nl_before || t->kind == T_SEMI || t->kind == T_RBRACE || t->kind == T_EOF;
}

/* exprlist = expr { ',' expr } */
static int expr_list(Parser *p, Stmt *s)
{
	Vec v = {0};
	do {
		Expr *e = expr(p);
		if (!e || !push_ptr(p, &v, e)) {
			vec_free(&v);
			return -1;
		}
	} while (accept(p, T_COMMA));
	s->nval = (int)v.len;
	s->val = freeze(p, &v, sizeof(Expr *));
	return 0;
}

/* assign = IDENT { ',' IDENT } '=' exprlist     exprstmt = expr */
static int assign_or_expr(Parser *p, Stmt *s)
{
	int save = p->pos;
	Vec name = {0}, loc = {0};
	while (at(p, T_IDENT)) {
		Token *t = next(p);
		SrcLoc *l = vec_push(&loc, sizeof *l);
		if (!l || !push_ptr(p, &name, (void *)t->text))
			goto fail;
		*l = t->loc;
		if (!accept(p, T_COMMA))
			break;
	}
	if (name.len && accept(p, T_ASSIGN)) {
		s->kind = S_ASSIGN;
		s->nname = (int)name.len;
		s->name = freeze(p, &name, sizeof(char *));
		s->nameloc = freeze(p, &loc, sizeof(SrcLoc));
		return expr_list(p, s);
	}
	vec_free(&name);
	vec_free(&loc);
	p->pos = save;
	s->kind = S_EXPR;
	s->val = alloc(p, sizeof *s->val);
	if (!s->val || !(s->val[0] = expr(p)))
		return -1;
	s->nval = 1;
	if (at(p, T_ASSIGN))
		return error_at(p, peek(p)->loc, "only names can be assigned to");
	return 0;
fail:
	vec_free(&name);
	vec_free(&loc);
	return -1;
}

/* `sparsity` is a keyword only at the start of a statement in a model body
 * and when what follows cannot continue an expression statement, so a
 * variable called sparsity (sparsity = 0.5, f(sparsity)) still works. */
static bool at_sparsity(Parser *p, const Token *t)
{
	if (t->kind != T_IDENT || strcmp(t->text, "sparsity") || !p->in_model)
		return false;
	const Token *u = peek2(p);
	return !u->nl_before && u->kind != T_ASSIGN && u->kind != T_COMMA &&
	       u->kind != T_LPAREN && u->kind != T_DOT && u->kind != T_LBRACK &&
	       u->kind != T_SEMI && u->kind != T_RBRACE && u->kind != T_EOF;
}

/* pattern = STRING | a run of tokens with no space between them (h.*.attn.*) */
static int sparsity_pattern(Parser *p, const char **out, SrcLoc *loc)
{
	Token *first = peek(p);
	*loc = first->loc;
	if (first->kind == T_STRING) {
		*out = next(p)->text;
		return 0;
	}
	if (first->nl_before || first->kind == T_COMMA || first->kind == T_SEMI ||
	    first->kind == T_RBRACE || first->kind == T_EOF)
		return error_at(p, first->loc, "expected a parameter name pattern after 'on' "
				"(like h.*.attn.*), got %s", describe(p, first));
	Token *last = next(p);
	while (!at(p, T_EOF) && peek(p)->off == last->off + last->loc.len &&
	       !at(p, T_COMMA) && !at(p, T_SEMI) && !at(p, T_RBRACE))
		last = next(p);
	size_t n = last->off + last->loc.len - first->off;
	if (!(*out = arena_strndup(p->a, p->src->text + first->off, n)))
		return error_at(p, first->loc, "out of memory");
	loc->len = (uint32_t)n;
	return 0;
}

/* sparsity = 'sparsity' expr [ 'uniform' | 'erk' ] [ 'on' pattern { ',' pattern } ] */
static int sparsity_stmt(Parser *p, Stmt *s)
{
	if (!(s->e = expr(p)))
		return -1;
	Token *t = peek(p);
	if (t->kind == T_IDENT && !t->nl_before && strcmp(t->text, "on")) {
		for (int k = 0; k < SD_COUNT; k++)
			if (!strcmp(t->text, ir_sparse_dist_name[k]))
				s->dist = (uint8_t)(k + 1);
		if (!s->dist)
			return error_at(p, t->loc, "unknown sparsity distribution '%s' (uniform or "
					"erk)", t->text);
		next(p);
		t = peek(p);
	}
	if (!(t->kind == T_IDENT && !t->nl_before && !strcmp(t->text, "on")))
		return 0;
	next(p);
	Vec pat = {0}, loc = {0};
	do {
		const char *x;
		SrcLoc l;
		SrcLoc *lp;
		if (sparsity_pattern(p, &x, &l) || !push_ptr(p, &pat, (void *)x) ||
		    !(lp = vec_push(&loc, sizeof *lp))) {
			vec_free(&pat);
			vec_free(&loc);
			return -1;
		}
		*lp = l;
	} while (accept(p, T_COMMA));
	s->nname = (int)pat.len;
	s->name = freeze(p, &pat, sizeof(char *));
	s->nameloc = freeze(p, &loc, sizeof(SrcLoc));
	return 0;
}

static int stmt_body(Parser *p, Stmt *s, Token *t)
{
	if (at_sparsity(p, t)) {
		next(p);
		s->kind = S_SPARSITY;
		return sparsity_stmt(p, s);
	}
	switch (t->kind) {
	case T_INPUT:
	case T_OUTPUT:
	case T_LOSS:
		if (!p->in_model)
			return error_at(p, t->loc, "%s belongs in the model body, not in a def",
					fe_tok_name[t->kind]);
		next(p);
		if (t->kind == T_INPUT) {
			s->kind = S_INPUT;
			return input_stmt(p, s);
		}
		if (t->kind == T_LOSS) {
			s->kind = S_LOSS;
			s->val = alloc(p, sizeof *s->val);
			s->nval = 1;
			return s->val && (s->val[0] = expr(p)) ? 0 : -1;
		}
		/* output = 'output' IDENT [ '=' expr ] */
		s->kind = S_OUTPUT;
		if (!at(p, T_IDENT))
			return error_at(p, peek(p)->loc, "expected the output's name, got %s",
					describe(p, peek(p)));
		s->name = alloc(p, sizeof *s->name);
		s->nameloc = alloc(p, sizeof *s->nameloc);
		s->val = alloc(p, sizeof *s->val);
		if (!s->name || !s->nameloc || !s->val)
			return -1;
		s->nname = 1;
		s->nval = 1;
		s->nameloc[0] = peek(p)->loc;
		s->name[0] = next(p)->text;
		if (accept(p, T_ASSIGN))
			return (s->val[0] = expr(p)) ? 0 : -1;
		if (!(s->val[0] = new_expr(p, E_NAME, &p->tok[p->pos - 1])))
			return -1;
		s->val[0]->name = s->name[0];
		return 0;
	case T_FROZEN:
		next(p);
		s->frozen = true;
		if (!at(p, T_PARAM))
			return error_at(p, peek(p)->loc, "expected 'param' after 'frozen', got %s",
					describe(p, peek(p)));
		/* fall through */
	case T_PARAM:
		next(p);
		s->kind = S_PARAM;
		return param_stmt(p, s);
	case T_FOR:
		next(p);
		s->kind = S_FOR;
		return for_stmt(p, s);
	case T_IF:
		next(p);
		s->kind = S_IF;
		return if_stmt(p, s);
	case T_RETURN:
		next(p);
		s->kind = S_RETURN;
		if (p->in_model)
			return error_at(p, t->loc, "'return' belongs in a def; a model names its "
						   "results with 'output' and 'loss'");
		return at_end(p) ? 0 : expr_list(p, s);
	case T_ASSERT:
		/* assert = 'assert' expr [ ',' STRING ] */
		next(p);
		s->kind = S_ASSERT;
		if (!(s->e = expr(p)))
			return -1;
		if (accept(p, T_COMMA)) {
			if (!at(p, T_STRING))
				return error_at(p, peek(p)->loc, "expected a message string after "
								 "'assert cond,'");
			s->e2 = primary(p);
		}
		return 0;
	case T_DEF:
	case T_MODEL:
		return error_at(p, t->loc, "%s must be at the top level of the file",
				fe_tok_name[t->kind]);
	default:
		return assign_or_expr(p, s);
	}
}

/* Skips to the next statement boundary after an error: a newline at this
 * brace depth, a ';', or the '}' that closes the current block. */
static void sync(Parser *p, int start)
{
	int depth = 0;
	/* An error at the first token of a later line: that line is probably a
	 * new statement. But always make progress, or we would loop. */
	bool first = p->pos == start || !peek(p)->nl_before;
	for (;;) {
		Token *t = peek(p);
		if (t->kind == T_EOF)
			return;
		if (!first && depth == 0 && t->nl_before && t->kind != T_RBRACE)
			return;
		if (t->kind == T_LBRACE || t->kind == T_LPAREN || t->kind == T_LBRACK)
			depth++;
		else if (t->kind == T_RBRACE || t->kind == T_RPAREN || t->kind == T_RBRACK) {
			if (depth == 0 && t->kind == T_RBRACE)
				return;
			if (depth > 0)
				depth--;
		} else if (depth == 0 && t->kind == T_SEMI) {
			next(p);
			return;
		}
		next(p);
		first = false;
	}
}

/* stmt = input | param | output | loss | sparsity | for | if | return | assert | assign
 *      | expr */
static Stmt *stmt(Parser *p)
{
	Token *t = peek(p);
	Stmt *s = alloc(p, sizeof *s);
	if (!s)
		return NULL;
	s->loc = t->loc;
	int nerr = p->d->nerror, start = p->pos;
	if (stmt_body(p, s, t) == 0 && !at_end(p)) {
		Token *u = peek(p);
		if (u->kind == T_AS)
			error_at(p, u->loc, "'as' names the parameters made by a call, so it must "
					    "follow a call, like f(x) as name");
		else
			error_at(p, u->loc, "expected the end of the statement (a newline or ';'), "
					    "got %s", describe(p, u));
	}
	if (p->d->nerror != nerr) {
		sync(p, start);
		return NULL;
	}
	s->loc = span(p, t);
	if (s->loc.len > 0 && t->loc.line != p->tok[p->pos - 1].loc.line)
		s->loc.len = t->loc.len;
	accept(p, T_SEMI);
	return s;
}

/* block = '{' { stmt } '}' */
static int block(Parser *p, Block *b)
{
	Token *open = peek(p);
	if (expect(p, T_LBRACE, "to open a block"))
		return -1;
	if (!enter(p))
		return -1;
	Vec v = {0};
	int r = 0;
	while (!at(p, T_RBRACE) && !at(p, T_EOF) && !fe_too_many(p->d)) {
		Stmt *s = stmt(p);
		if (!s) {
			r = -1;
			continue;
		}
		if (!push_ptr(p, &v, s)) {
			r = -1;
			break;
		}
	}
	p->depth--;
	b->n = (int)v.len;
	b->s = freeze(p, &v, sizeof(Stmt *));
	if (at(p, T_EOF) && !fe_too_many(p->d)) {
		error_at(p, open->loc, "this '{' is never closed");
		return -1;
	}
	next(p);
	return r;
}

/* params = [ IDENT [ '=' expr ] { ',' IDENT [ '=' expr ] } ] */
static int fparams(Parser *p, Func *f)
{
	Vec v = {0};
	if (expect(p, T_LPAREN, "to start the parameter list"))
		return -1;
	while (!at(p, T_RPAREN)) {
		Token *t = peek(p);
		if (t->kind != T_IDENT) {
			error_at(p, t->loc, "expected a parameter name, got %s", describe(p, t));
			goto fail;
		}
		next(p);
		FParam fp = {t->text, t->loc, NULL};
		for (size_t i = 0; i < v.len; i++)
			if (!strcmp(VEC_AT(v, FParam, i).name, t->text)) {
				error_at(p, t->loc, "parameter '%s' appears twice", t->text);
				goto fail;
			}
		if (accept(p, T_ASSIGN) && !(fp.def = expr(p)))
			goto fail;
		FParam *slot = vec_push(&v, sizeof *slot);
		if (!slot)
			goto fail;
		*slot = fp;
		if (!accept(p, T_COMMA))
			break;
	}
	if (expect(p, T_RPAREN, "to close the parameter list"))
		goto fail;
	f->nparam = (int)v.len;
	f->param = freeze(p, &v, sizeof(FParam));
	return 0;
fail:
	vec_free(&v);
	return -1;
}

/* def   = 'def' IDENT '(' params ')' block
 * model = 'model' IDENT [ '(' params ')' ] block */
static Func *func(Parser *p)
{
	Token *kw = next(p);
	Func *f = alloc(p, sizeof *f);
	if (!f)
		return NULL;
	f->is_model = kw->kind == T_MODEL;
	Token *t = peek(p);
	if (t->kind != T_IDENT) {
		error_at(p, t->loc, "expected a name after %s, got %s", fe_tok_name[kw->kind],
			 describe(p, t));
		return NULL;
	}
	next(p);
	f->name = t->text;
	f->loc = t->loc;
	if ((!f->is_model || at(p, T_LPAREN)) && fparams(p, f))
		return NULL;
	p->in_model = f->is_model;
	if (block(p, &f->body))
		return NULL;
	return f;
}

/* file = { def | model } EOF */
int fe_parse(const Source *src, Arena *a, Unit *out, Diag *d)
{
	Vec toks = {0};
	memset(out, 0, sizeof *out);
	if (fe_lex(src, a, &toks, d)) {
		vec_free(&toks);
		return -1;
	}
	Parser p = {.src = src, .tok = toks.data, .ntok = (int)toks.len, .a = a, .d = d};
	Vec fn = {0};
	while (!at(&p, T_EOF) && !fe_too_many(d)) {
		Token *t = peek(&p);
		if (t->kind != T_DEF && t->kind != T_MODEL) {
			error_at(&p, t->loc, "expected 'def' or 'model' at the top level, got %s",
				 describe(&p, t));
			/* Skip to the next top-level definition. */
			next(&p);
			while (!at(&p, T_EOF) && !at(&p, T_DEF) && !at(&p, T_MODEL))
				next(&p);
			continue;
		}
		Func *f = func(&p);
		if (!f) {
			while (!at(&p, T_EOF) && !((at(&p, T_DEF) || at(&p, T_MODEL)) &&
						   peek(&p)->nl_before))
				next(&p);
			continue;
		}
		if (!push_ptr(&p, &fn, f))
			break;
	}
	out->nfn = (int)fn.len;
	out->fn = freeze(&p, &fn, sizeof(Func *));
	vec_free(&toks);
	return p.err;
}
