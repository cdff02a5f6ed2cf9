/* fe.h: the .msw frontend: lexer -> parser -> checker -> lowering to IR.
 *
 * The language is staged: hyperparameters, loops, defs and scalar arithmetic
 * are evaluated at compile time, and only tensor operations become IR nodes.
 * Hyperparameters come from the model's defaults, overridden by -D; input
 * dims are symbols bound from -D, from the shapes of supplied inputs, or
 * from their declared defaults, so the graph handed on has concrete shapes.
 * Errors are located (file:line:col) and collected, up to DIAG_MAX_ERRORS. */
#ifndef MSW_FE_H
#define MSW_FE_H

#include "../ir/ir.h"

typedef struct fe_Define {
	const char *name;
	const char *value;    /* text as given on the command line */
} fe_Define;

/* The shape of an input the caller will supply (e.g. from a .npy file);
 * binds the symbolic dims of that input's declaration. */
typedef struct fe_InputShape {
	const char *name;
	int rank;
	int64_t dim[IR_MAX_RANK];
} fe_InputShape;

typedef struct fe_Options {
	const fe_Define *def;
	int ndef;
	const fe_InputShape *input;
	int ninput;
	bool no_prelude;      /* don't load the shipped prelude (tests) */
	/* Decode mode (docs/generation.md): kv_cache keeps persistent caches
	 * (STATE + CACHE_WRITE) instead of being the identity, the model gets
	 * an implicit input `pos: i32[]` (the position of the first new token),
	 * positions(n) counts from pos and causal_mask masks key j > i + pos. */
	bool decode;
	/* Glob patterns (fnmatch, '*' crosses dots) over parameter names:
	 * matching parameters are frozen as if declared 'frozen param'. A
	 * pattern that matches no parameter is an error. */
	const char *const *freeze;
	int nfreeze;
} fe_Options;

/* A session owns the loaded sources; graphs built from it point into them
 * (SrcLoc), so destroy the session after the graphs. */
typedef struct fe_Session fe_Session;
fe_Session *fe_session_create(void);
void fe_session_destroy(fe_Session *s);
int fe_compile_file(fe_Session *s, const char *path, const fe_Options *o, Graph **out, Diag *d);
int fe_compile_string(fe_Session *s, const char *name, const char *text, const fe_Options *o,
		      Graph **out, Diag *d);
/* len bytes, as fe_compile_file would read them from a file called name
 * (embedded NUL bytes are reported, not the end of the text). */
int fe_compile_mem(fe_Session *s, const char *name, const void *data, size_t len,
		   const fe_Options *o, Graph **out, Diag *d);

#endif
