/* fe_internal.h: the one internal header of the frontend folder.
 *
 * fe.h is what the rest of the code base sees; this header is shared by the
 * frontend's own files: the tokens (lex.c), the syntax tree (parse.c), the
 * compile-time values and the evaluator that lowers a model to IR (eval.c,
 * builtins.c, bind.c) and the session that ties them together (session.c).
 * Every tree node and every value lives in an arena owned by the session or
 * by one compile, so nothing here is freed piecemeal. */
#ifndef MSW_FE_INTERNAL_H
#define MSW_FE_INTERNAL_H

#include "fe.h"

/* Limits that keep hostile input from exhausting the stack or the clock. */
enum {
	FE_MAX_NEST = 200,       /* parser nesting (expressions, blocks) */
	FE_MAX_CALL_DEPTH = 100, /* compile-time call stack */
	FE_MAX_EVAL_DEPTH = 3000,/* expressions and statements being evaluated */
	FE_MAX_ARGS_CALL = 64,   /* arguments in one call */
	FE_MAX_TRIP = 100000,    /* iterations of one loop */
	FE_MAX_STEPS = 2000000,  /* calls + loop iterations in one compile */
	FE_MAX_NODES = 1000000,  /* IR nodes in one graph */
	FE_MAX_PARAMS = 20000,   /* parameter tensors (interning names is linear) */
	FE_MAX_NAME = 256,       /* length of a hierarchical parameter name */
};

/* Past the error cap: the Diag has printed "too many errors"; stop. */
static inline bool fe_too_many(const Diag *d)
{
	return d->nerror > DIAG_MAX_ERRORS;
}

/* lex.c */
typedef enum Tok {
	T_EOF, T_IDENT, T_INT, T_FLOAT, T_STRING,
	/* keywords */
	T_DEF, T_MODEL, T_INPUT, T_PARAM, T_FROZEN, T_OUTPUT, T_LOSS, T_FOR, T_IN, T_AS,
	T_IF, T_ELSE, T_RETURN, T_ASSERT, T_TRUE, T_FALSE, T_AND, T_OR, T_NOT,
	/* punctuation */
	T_LPAREN, T_RPAREN, T_LBRACK, T_RBRACK, T_LBRACE, T_RBRACE, T_COMMA, T_COLON,
	T_SEMI, T_DOT, T_DOTDOT, T_ASSIGN, T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE, T_PLUS,
	T_MINUS, T_STAR, T_SLASH, T_SLASHSLASH, T_PERCENT, T_AT,
	T_COUNT
} Tok;

typedef struct Token {
	uint8_t kind;         /* Tok */
	bool nl_before;       /* a newline separates it from the previous token */
	SrcLoc loc;
	uint32_t off;         /* byte offset of its first character */
	const char *text;     /* identifier name or decoded string (arena) */
	int64_t ival;
	double fval;
} Token;

extern const char *const fe_tok_name[T_COUNT];
/* Tokenises the whole source into toks (Vec of Token), always ending in
 * T_EOF. Bad characters and literals are reported and skipped. Returns 0,
 * or -1 when an error was reported or memory ran out. */
int fe_lex(const Source *src, Arena *a, Vec *toks, Diag *d);

/* parse.c: the syntax tree. */
typedef struct Expr Expr;
typedef struct Stmt Stmt;

typedef enum ExprKind {
	E_INT, E_FLOAT, E_STR, E_BOOL, E_NAME, E_LIST,
	E_NEG, E_NOT, E_BINARY, E_AND, E_OR,
	E_CALL, E_FIELD, E_INDEX,
} ExprKind;

/* A hierarchical name after `as`: h.{i}.attn */
typedef struct PathSeg {
	const char *name;     /* an identifier or a number's digits, or NULL */
	Expr *e;              /* {expr} when name is NULL */
	SrcLoc loc;
} PathSeg;

typedef struct Path {
	PathSeg *seg;
	int nseg;
	SrcLoc loc;
} Path;

struct Expr {
	uint8_t kind;         /* ExprKind */
	uint8_t op;           /* Tok of a binary operator */
	SrcLoc loc;           /* the whole expression */
	SrcLoc oploc;         /* the operator token (binary) */
	int64_t ival;         /* E_INT, E_BOOL */
	double fval;          /* E_FLOAT */
	const char *name;     /* E_NAME, E_STR, E_FIELD */
	Expr *a, *b;          /* operands; E_CALL callee; E_FIELD/E_INDEX base */
	Expr **item;          /* E_LIST items, E_CALL arguments */
	const char **kw;      /* E_CALL: keyword of each argument, NULL if positional */
	SrcLoc *argloc;       /* E_CALL: each argument with its keyword */
	int nitem;
	Path *as;             /* E_CALL: `as` name, or NULL */
};

typedef struct Block {
	Stmt **s;
	int n;
} Block;

typedef enum StmtKind {
	S_EXPR, S_ASSIGN, S_INPUT, S_PARAM, S_OUTPUT, S_LOSS, S_FOR, S_IF, S_RETURN, S_ASSERT,
	S_SPARSITY,
} StmtKind;

/* A dimension in an input declaration: a symbol (with an optional default)
 * or an expression of already-known values. */
typedef struct DimDecl {
	const char *sym;      /* NULL when the dim is a plain expression */
	Expr *e;              /* the default (sym) or the value (no sym); may be NULL */
	SrcLoc loc;
} DimDecl;

struct Stmt {
	uint8_t kind;         /* StmtKind */
	bool frozen;          /* S_PARAM */
	uint8_t dtype;        /* S_INPUT, S_PARAM */
	uint8_t dist;         /* S_SPARSITY: SparseDist + 1, or 0 when not given */
	SrcLoc loc;
	const char **name;    /* S_ASSIGN targets; S_INPUT/S_PARAM/S_OUTPUT/S_FOR: name[0];
	                       * S_SPARSITY: the name patterns after 'on' */
	SrcLoc *nameloc;
	int nname;
	Expr **val;           /* S_ASSIGN, S_RETURN values; S_EXPR, S_LOSS, S_OUTPUT: val[0] */
	int nval;
	Expr *e, *e2;         /* S_FOR lo, hi; S_IF/S_ASSERT cond; S_ASSERT message;
	                       * S_PARAM initialiser; S_SPARSITY target */
	Expr **dims;          /* S_PARAM shape */
	DimDecl *dimdecl;     /* S_INPUT shape */
	int ndim;
	SrcLoc shapeloc;      /* S_INPUT/S_PARAM: the `dtype[...]` */
	Path *as;             /* S_FOR */
	Block body, els;
};

typedef struct FParam {
	const char *name;
	SrcLoc loc;
	Expr *def;            /* default value, or NULL */
} FParam;

typedef struct Func {
	const char *name;
	SrcLoc loc;
	FParam *param;
	int nparam;
	Block body;
	bool is_model;
} Func;

typedef struct Unit {
	Func **fn;            /* defs and models in source order */
	int nfn;
} Unit;

/* Parses a whole file. Syntax errors are reported (several per file: the
 * parser resynchronises at statement boundaries) and the function returns
 * -1; the tree is then incomplete and must not be evaluated. */
int fe_parse(const Source *src, Arena *a, Unit *out, Diag *d);

/* Compile-time values (eval.c). */
typedef struct Builtin Builtin;

typedef enum VKind {
	V_ERR,                /* poison: an error was reported already */
	V_NONE, V_INT, V_FLOAT, V_BOOL, V_STR, V_TENSOR, V_LIST, V_TUPLE, V_FUNC,
	V_BUILTIN, V_INIT, V_DTYPE,
} VKind;

typedef struct Value Value;
struct Value {
	uint8_t kind;         /* VKind */
	union {
		int64_t i;
		double f;
		bool b;
		const char *s;
		ValId t;
		struct { Value *v; int n; } list;
		const Func *fn;
		const Builtin *bi;
		struct { uint8_t kind; double std; } init;
		uint8_t dt;
	};
};

typedef struct Slot {
	const char *name;
	Value v;
} Slot;

/* One activation: a model body or a def call. Loops and ifs share it. */
typedef struct Frame {
	Vec slot;             /* Slot */
	const Func *fn;
	SrcLoc callsite;      /* where it was called from (defs) */
	struct Frame *up;     /* the caller */
	Value ret;
	bool returned;
} Frame;

/* A `sparsity` statement as executed: applied to the parameters once the
 * whole model exists (session.c). npat == 0: the default coverage. */
typedef struct SparsityRule {
	double target;
	uint8_t dist;         /* SparseDist */
	const char **pat;
	SrcLoc *patloc;
	int npat;
	SrcLoc loc;
} SparsityRule;

typedef struct Ev {
	Graph *g;
	Diag *d;
	Arena *a;
	const fe_Options *o;
	Vec global;           /* Slot: builtins, then prelude defs, then the file's defs */
	Frame *frame;
	int depth;            /* def calls in progress */
	int edepth;           /* fe_eval and statement frames in progress */
	long steps;
	bool stop;            /* a fatal error: unwind without more messages */
	bool hint_as;         /* a duplicate parameter: suggest 'as' at the call */
	char prefix[FE_MAX_NAME + 1];
	int nprefix;
	bool *def_used;       /* per -D: did it name something? */
	ValId *ptab;          /* parameters by name (eval.c), nptab slots */
	size_t nptab, nparam;
	const Func *model;
	Vec sparsity;         /* SparsityRule, in execution order */
} Ev;

/* eval.c */
Value fe_eval(Ev *ev, Expr *e);
/* Counts one evaluation frame against FE_MAX_EVAL_DEPTH (the caller
 * decrements ev->edepth afterwards, whatever this returns). */
bool fe_enter(Ev *ev, SrcLoc loc);
/* Counts one call or loop iteration against FE_MAX_STEPS. */
bool fe_step(Ev *ev, SrcLoc loc);
/* Extends the parameter-name prefix by a path like h.{i}.attn; returns the
 * old length for fe_pop_path, or -1 after an error (prefix unchanged). */
int fe_push_path(Ev *ev, const Path *p);
void fe_pop_path(Ev *ev, int old);
/* A call's argument: positional ones (kw == NULL) come first. */
typedef struct Arg {
	const char *kw;
	Value v;
	SrcLoc loc;
} Arg;
Value fe_call(Ev *ev, Value callee, const char *what, SrcLoc loc, Arg *arg, int narg);
/* exec.c */
int fe_exec_block(Ev *ev, const Block *b);
int fe_eval_model(Ev *ev, const Func *model);
/* eval.c */
Value fe_err(void);
Value fe_error(Ev *ev, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void fe_fmt(Value v, char *buf, size_t n);  /* a value as the user would write it */
Value fe_int(int64_t i);
Value fe_float(double f);
Value fe_bool(bool b);
Value fe_tensor(ValId t);
bool fe_is_num(Value v);
double fe_num(Value v);
const char *fe_kind_name(Value v);
void fe_bind(Ev *ev, const char *name, Value v);
Value *fe_lookup(Ev *ev, const char *name);
/* Tensor value from a node builder; VAL_NONE (error reported) -> poison. */
Value fe_node(Ev *ev, ValId v);
/* Turns a number into a rank-0 f32 CONST so it can meet a tensor. */
ValId fe_as_tensor(Ev *ev, Value v, SrcLoc loc);
/* a @ b, reading a transposed operand in place (NF_TRANS_A/B). */
ValId fe_matmul(Ev *ev, ValId a, ValId b, SrcLoc loc);
/* Checks the node budget before a builder runs. */
bool fe_room(Ev *ev, SrcLoc loc);

/* builtins.c */
/* arg[i] is V_NONE for an optional argument that was not given. */
typedef Value (*BuiltinFn)(Ev *ev, Value *arg, const SrcLoc *argloc, SrcLoc loc);
enum { FE_MAX_ARGS = 4 };
struct Builtin {
	const char *name;
	int nreq;             /* required arguments */
	int nparam;
	const char *pname[FE_MAX_ARGS];
	BuiltinFn fn;
};
/* Binds the builtins and the predefined names (f32, i32, zeros, ones). */
int fe_builtins_install(Ev *ev);

/* bind.c: hyperparameters, -D and input dimensions. */
int fe_bind_hyper(Ev *ev, const Func *model);
int fe_bind_input(Ev *ev, Stmt *s);
int fe_check_defines(Ev *ev);

#endif
