/* support.h: the base layer every other folder builds on.
 *
 * Allocation goes through one hook (mem_*), so tests can make the k-th
 * allocation fail; arenas hold compile-time data and are freed in one call;
 * Vec is the one growable array; Diag collects located, GCC-format error
 * messages instead of printing them, because the library never prints or
 * exits on its own. Nothing here knows about tensors, graphs or LLVM, so the
 * runtime can link it alone. */
#ifndef MSW_SUPPORT_H
#define MSW_SUPPORT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* alloc.c */
/* Lua-style hook: nsize == 0 frees ptr; otherwise (re)allocates. Returns NULL
 * on failure, which every caller must turn into an error status. */
typedef void *(*mem_Hook)(void *ud, void *ptr, size_t osize, size_t nsize);
void mem_set_hook(mem_Hook hook, void *ud);
void *mem_alloc(size_t n);              /* uninitialised, NULL on failure */
void *mem_calloc(size_t n, size_t size);/* zeroed, overflow-checked */
void *mem_realloc(void *p, size_t osize, size_t nsize);
void mem_free(void *p);
void *mem_aligned(size_t n, size_t align); /* free with mem_aligned_free */
void mem_aligned_free(void *p);
char *mem_strdup(const char *s);
/* Test support: fail the k-th allocation from now on (1-based); 0 disables. */
void mem_fail_after(long k);
long mem_count(void);                   /* allocations made since start */

/* arena.c */
typedef struct ArenaBlock ArenaBlock;
typedef struct Arena {
	ArenaBlock *head;
	size_t used, cap;
} Arena;
void arena_init(Arena *a);
void *arena_alloc(Arena *a, size_t n);  /* zeroed, 16-byte aligned, NULL on failure */
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
void arena_free(Arena *a);              /* everything at once */

/* vec.c: one growable array for every element type.
 *   Vec v = {0}; int *p = vec_push(&v, sizeof *p); if (!p) fail; *p = 3;
 * Elements are contiguous in v.data; v.len counts them. */
typedef struct Vec {
	void *data;
	size_t len, cap;
} Vec;
void *vec_push(Vec *v, size_t elsize);  /* pointer to a new zeroed slot, NULL on failure */
int vec_reserve(Vec *v, size_t n, size_t elsize);
void vec_free(Vec *v);
#define VEC_AT(v, T, i) (((T *)(v).data)[i])

/* diag.c */
/* A loaded source file; diagnostics quote its lines. */
typedef struct Source {
	char *name;
	char *text;
	size_t len;
} Source;
/* 0, or -1 with *why (if why is not NULL) saying what is wrong: a missing
 * file, a directory, a FIFO (refused without waiting for a writer). */
int source_load(Source *s, const char *path, const char **why);
/* Opens path read-only if it is a regular file (FIFOs, devices and
 * directories are refused before anything is read, without blocking):
 * the descriptor, or -1 with *why a static text for "path: error: <why>". */
int file_open_regular(const char *path, const char **why);
int source_from_string(Source *s, const char *name, const char *text);
/* len bytes (NUL bytes and all) as source_load would read them from a file. */
int source_from_mem(Source *s, const char *name, const void *data, size_t len);
void source_free(Source *s);

/* Where a construct came from. src may be NULL (no location known). */
typedef struct SrcLoc {
	const Source *src;
	uint32_t line, col;   /* 1-based */
	uint32_t len;         /* width of the construct, for the ~~~ under the caret */
} SrcLoc;

enum { DIAG_MAX_ERRORS = 20 };

typedef struct Diag {
	char *text;           /* all messages so far, each ending in '\n' */
	size_t len, cap;
	int nerror;
} Diag;
void diag_init(Diag *d);
void diag_free(Diag *d);
/* Appends "file:line:col: error: msg\n  <line>\n  ^~~\n". Always returns -1 so
 * callers can write `return diag_error(d, loc, ...)`. Once DIAG_MAX_ERRORS
 * errors are recorded, further ones are counted but not stored. */
int diag_error(Diag *d, SrcLoc loc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int diag_verror(Diag *d, SrcLoc loc, const char *fmt, va_list ap);
/* A note attached to the previous error ("note: ..."), same layout. */
void diag_note(Diag *d, SrcLoc loc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int diag_full(const Diag *d);           /* reached the error cap */
const char *diag_text(const Diag *d);   /* "" when empty */

/* check.c: 1 when checked mode is on (MSW_CHECK set and not "0"): guards
 * around every arena tensor, verified after every kernel. */
int msw_checked(void);

/* hash.c: xxh3 wrappers so callers need not include xxhash.h. */
typedef struct Hash128 {
	uint64_t lo, hi;
} Hash128;
uint64_t hash64(const void *p, size_t n, uint64_t seed);
Hash128 hash128(const void *p, size_t n);
void hash128_hex(Hash128 h, char out[33]);

/* rates.c: rates measured on this host for the cost models, as named
 * numbers ("dense.forward" flop/s, ...), with the CPU they were measured on
 * and where they came from (a path, or how they were measured). Measured
 * by backend/calibrate.c; the cache file format is described in rates.c. */
enum { RATES_MAX = 48, RATES_NAME_MAX = 40, RATES_TEXT_MAX = 160 };
typedef struct HostRate {
	char name[RATES_NAME_MAX];
	double value;
} HostRate;
typedef struct HostRates {
	int n;
	HostRate rate[RATES_MAX];
	char cpu[RATES_TEXT_MAX];     /* host_cpu_model of the machine measured */
	char source[RATES_TEXT_MAX];  /* a file path, or how they were obtained */
} HostRates;
int rates_set(HostRates *r, const char *name, double v);   /* -1: full or bad name */
double rates_get(const HostRates *r, const char *name);     /* NAN: not there (or r NULL) */
/* Atomic write (temporary file, rename). 0 or -1. */
int rates_write(const char *path, const HostRates *r, Hash128 key);
/* 0, or -1 when missing or damaged or (key not NULL) for another key; on
 * success source is the path. */
int rates_read(const char *path, const Hash128 *key, HostRates *r);
/* "AMD EPYC (family 26, model 2, stepping 1)": brand, family, model, stepping. */
void host_cpu_model(char *buf, size_t n);
/* Bytes of L1d, L2 and L3 as the machine reports them (sysfs, else
 * sysconf); 0 where unknown. One core's share is not divided out: an L3
 * shared by all cores is reported whole. */
void host_cache_sizes(int64_t size[3]);
/* The CPU's clock in Hz as the machine reports it (sysfs's maximum, else
 * /proc/cpuinfo's current MHz); 0 where unknown. */
double host_clock_hz(void);

#endif
