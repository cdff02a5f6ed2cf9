/* lex.c: turns .msw text into tokens.
 *
 * The whole file is tokenised up front, so the parser can look ahead freely.
 * Newlines are not tokens; each token records whether a newline preceded
 * it, which is all the parser needs to end a statement or a postfix chain.
 * Any byte sequence is accepted: a bad character or literal is reported at
 * its position and skipped, so lexing always terminates with T_EOF and
 * reports every bad spot, not just the first. Identifiers and strings are
 * copied into the arena, so tokens outlive nothing but the arena. */
#include "fe_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const fe_tok_name[T_COUNT] = {
	[T_EOF] = "end of file", [T_IDENT] = "identifier", [T_INT] = "integer",
	[T_FLOAT] = "number", [T_STRING] = "string",
	[T_DEF] = "'def'", [T_MODEL] = "'model'", [T_INPUT] = "'input'", [T_PARAM] = "'param'",
	[T_FROZEN] = "'frozen'", [T_OUTPUT] = "'output'", [T_LOSS] = "'loss'",
	[T_FOR] = "'for'", [T_IN] = "'in'", [T_AS] = "'as'", [T_IF] = "'if'",
	[T_ELSE] = "'else'", [T_RETURN] = "'return'", [T_ASSERT] = "'assert'",
	[T_TRUE] = "'true'", [T_FALSE] = "'false'", [T_AND] = "'and'", [T_OR] = "'or'",
	[T_NOT] = "'not'",
	[T_LPAREN] = "'('", [T_RPAREN] = "')'", [T_LBRACK] = "'['", [T_RBRACK] = "']'",
	[T_LBRACE] = "'{'", [T_RBRACE] = "'}'", [T_COMMA] = "','", [T_COLON] = "':'",
	[T_SEMI] = "';'", [T_DOT] = "'.'", [T_DOTDOT] = "'..'", [T_ASSIGN] = "'='",
	[T_EQ] = "'=='", [T_NE] = "'!='", [T_LT] = "'<'", [T_LE] = "'<='", [T_GT] = "'>'",
	[T_GE] = "'>='", [T_PLUS] = "'+'", [T_MINUS] = "'-'", [T_STAR] = "'*'",
	[T_SLASH] = "'/'", [T_SLASHSLASH] = "'//'", [T_PERCENT] = "'%'", [T_AT] = "'@'",
};

static const struct {
	const char *word;
	Tok tok;
} keyword[] = {
	{"def", T_DEF}, {"model", T_MODEL}, {"input", T_INPUT}, {"param", T_PARAM},
	{"frozen", T_FROZEN}, {"output", T_OUTPUT}, {"loss", T_LOSS}, {"for", T_FOR},
	{"in", T_IN}, {"as", T_AS}, {"if", T_IF}, {"else", T_ELSE}, {"return", T_RETURN},
	{"assert", T_ASSERT}, {"true", T_TRUE}, {"false", T_FALSE}, {"and", T_AND},
	{"or", T_OR}, {"not", T_NOT},
};

typedef struct Lexer {
	const Source *src;
	const char *p, *end;
	uint32_t line;
	const char *bol;      /* beginning of the current line */
	Arena *a;
	Diag *d;
	int err;
} Lexer;

static SrcLoc here(Lexer *lx, const char *start)
{
	return (SrcLoc){lx->src, lx->line, (uint32_t)(start - lx->bol) + 1,
			(uint32_t)(lx->p > start ? lx->p - start : 1)};
}

static bool is_ident_start(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* Skips blanks and comments; returns whether a newline was crossed. */
static bool skip_space(Lexer *lx)
{
	bool nl = false;
	while (lx->p < lx->end) {
		char c = *lx->p;
		if (c == '\n') {
			lx->p++;
			lx->line++;
			lx->bol = lx->p;
			nl = true;
		} else if (c == ' ' || c == '\t' || c == '\r') {
			lx->p++;
		} else if (c == '#') {
			while (lx->p < lx->end && *lx->p != '\n')
				lx->p++;
		} else {
			break;
		}
	}
	return nl;
}

/* number = digits [ '.' digits ] [ ('e'|'E') ['+'|'-'] digits ]
 * A '.' only belongs to the number when a digit follows, so `0..n` is a
 * range and `h.0.attn` a path. */
static void lex_number(Lexer *lx, Token *t)
{
	const char *s = lx->p;
	bool is_float = false;
	while (lx->p < lx->end && is_digit(*lx->p))
		lx->p++;
	if (lx->p + 1 < lx->end && lx->p[0] == '.' && is_digit(lx->p[1])) {
		is_float = true;
		lx->p++;
		while (lx->p < lx->end && is_digit(*lx->p))
			lx->p++;
	}
	if (lx->p < lx->end && (*lx->p == 'e' || *lx->p == 'E')) {
		const char *q = lx->p + 1;
		if (q < lx->end && (*q == '+' || *q == '-'))
			q++;
		if (q < lx->end && is_digit(*q)) {
			is_float = true;
			lx->p = q;
			while (lx->p < lx->end && is_digit(*lx->p))
				lx->p++;
		}
	}
	/* A number glued to a name (`3d`) is a typo, not two tokens. */
	const char *tail = lx->p;
	while (lx->p < lx->end && (is_ident_start(*lx->p) || is_digit(*lx->p)))
		lx->p++;
	t->loc = here(lx, s);
	if (lx->p != tail) {
		lx->err = diag_error(lx->d, t->loc, "malformed number '%.*s'", (int)(lx->p - s), s);
		t->kind = T_INT;
		t->ival = 1;
		return;
	}
	char buf[400];
	size_t n = (size_t)(lx->p - s);
	if (n >= sizeof buf) {
		lx->err = diag_error(lx->d, t->loc, "number literal is too long");
		t->kind = T_INT;
		t->ival = 1;
		return;
	}
	memcpy(buf, s, n);
	buf[n] = 0;
	errno = 0;
	if (is_float) {
		t->kind = T_FLOAT;
		t->fval = strtod(buf, NULL);
		if (errno == ERANGE && isinf(t->fval)) {
			lx->err = diag_error(lx->d, t->loc, "number '%s' is too large", buf);
			t->fval = 1;
		}
	} else {
		t->kind = T_INT;
		t->ival = strtoll(buf, NULL, 10);
		if (errno == ERANGE) {
			lx->err = diag_error(lx->d, t->loc,
					     "integer '%s' is too large (the limit is 2^63-1)", buf);
			t->ival = 1;
		}
	}
}

/* string = '"' { char | '\' ('n'|'t'|'"'|'\') } '"', on one line */
static void lex_string(Lexer *lx, Token *t)
{
	const char *s = lx->p++;
	Vec buf = {0};
	bool ok = true;
	while (lx->p < lx->end && *lx->p != '"' && *lx->p != '\n') {
		char c = *lx->p++;
		if (c == '\\' && lx->p < lx->end && *lx->p != '\n') {
			char e = *lx->p++;
			c = e == 'n' ? '\n' : e == 't' ? '\t' : e;
			if (e != 'n' && e != 't' && e != '"' && e != '\\') {
				SrcLoc l = here(lx, lx->p - 2);
				lx->err = diag_error(lx->d, l, "unknown escape '\\%c' in string", e);
			}
		}
		char *slot = vec_push(&buf, 1);
		if (!slot) {
			ok = false;
			break;
		}
		*slot = c;
	}
	t->kind = T_STRING;
	if (lx->p >= lx->end || *lx->p != '"') {
		t->loc = here(lx, s);
		lx->err = diag_error(lx->d, t->loc, "unterminated string");
	} else {
		lx->p++;
		t->loc = here(lx, s);
	}
	t->text = ok ? arena_strndup(lx->a, buf.data ? buf.data : "", buf.len) : NULL;
	vec_free(&buf);
	if (!t->text)
		lx->err = diag_error(lx->d, t->loc, "out of memory");
}

static Tok punct(Lexer *lx)
{
	char c = *lx->p, n = lx->p + 1 < lx->end ? lx->p[1] : 0;
	static const struct {
		char a, b;
		Tok tok;
	} two[] = {
		{'.', '.', T_DOTDOT}, {'=', '=', T_EQ}, {'!', '=', T_NE}, {'<', '=', T_LE},
		{'>', '=', T_GE}, {'/', '/', T_SLASHSLASH},
	};
	for (size_t i = 0; i < sizeof two / sizeof two[0]; i++)
		if (c == two[i].a && n == two[i].b) {
			lx->p += 2;
			return two[i].tok;
		}
	static const char one[] = "()[]{},:;.=<>+-*/%@";
	static const Tok onetok[] = {
		T_LPAREN, T_RPAREN, T_LBRACK, T_RBRACK, T_LBRACE, T_RBRACE, T_COMMA, T_COLON,
		T_SEMI, T_DOT, T_ASSIGN, T_LT, T_GT, T_PLUS, T_MINUS, T_STAR, T_SLASH,
		T_PERCENT, T_AT,
	};
	const char *q = c ? strchr(one, c) : NULL;
	if (!q)
		return T_EOF;
	lx->p++;
	return onetok[q - one];
}

static void lex_ident(Lexer *lx, Token *t)
{
	const char *s = lx->p;
	while (lx->p < lx->end && (is_ident_start(*lx->p) || is_digit(*lx->p)))
		lx->p++;
	t->loc = here(lx, s);
	size_t n = (size_t)(lx->p - s);
	for (size_t i = 0; i < sizeof keyword / sizeof keyword[0]; i++)
		if (strlen(keyword[i].word) == n && !memcmp(keyword[i].word, s, n)) {
			t->kind = keyword[i].tok;
			return;
		}
	t->kind = T_IDENT;
	t->text = arena_strndup(lx->a, s, n);
	if (!t->text)
		lx->err = diag_error(lx->d, t->loc, "out of memory");
}

int fe_lex(const Source *src, Arena *a, Vec *toks, Diag *d)
{
	Lexer lx = {src, src->text, src->text + src->len, 1, src->text, a, d, 0};
	for (;;) {
		bool nl = skip_space(&lx);
		Token t = {0};
		t.nl_before = nl;
		t.off = (uint32_t)(lx.p - src->text);
		const char *s = lx.p;
		if (lx.p >= lx.end) {
			t.kind = T_EOF;
			t.loc = (SrcLoc){src, lx.line, (uint32_t)(lx.p - lx.bol) + 1, 1};
		} else if (is_digit(*lx.p)) {
			lex_number(&lx, &t);
		} else if (is_ident_start(*lx.p)) {
			lex_ident(&lx, &t);
		} else if (*lx.p == '"') {
			lex_string(&lx, &t);
		} else if ((t.kind = punct(&lx)) != T_EOF) {
			t.loc = here(&lx, s);
		} else {
			/* Skip a whole UTF-8 sequence so the message shows one character. */
			lx.p++;
			while (lx.p < lx.end && ((unsigned char)*lx.p & 0xC0) == 0x80)
				lx.p++;
			SrcLoc l = here(&lx, s);
			unsigned char c = (unsigned char)*s;
			if (c >= 0x20 && c < 0x7f)
				lx.err = diag_error(d, l, "unexpected character '%c'", c);
			else
				lx.err = diag_error(d, l, "unexpected byte 0x%02x", c);
			if (fe_too_many(d))
				return -1;
			continue;
		}
		Token *slot = vec_push(toks, sizeof *slot);
		if (!slot)
			return diag_error(d, t.loc, "out of memory");
		*slot = t;
		if (t.kind == T_EOF)
			break;
		if (fe_too_many(d))
			return -1;
	}
	return lx.err;
}
