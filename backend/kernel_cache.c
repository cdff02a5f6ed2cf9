/* kernel_cache.c: compiled modules on disk, keyed by what determines the
 * code, so a second compile of the same model skips LLVM's optimiser and
 * code generator (where nearly all compile time goes, and all of it for
 * kernels unrolled to a sparsity pattern).
 *
 * The key is the xxh3-128 of: a format tag, the module as emitted, before
 * optimisation, in LLVM bitcode (every kernel, every constant of every
 * pattern), the target triple, CPU name and features, the optimisation
 * level and LLVM's version. Two compiles with equal keys would produce the
 * same object, so the cached one is used as is.
 *
 * A cache file <dir>/<32 hex digits>.o holds a header (magic, payload
 * size, xxh3-128 of the payload) and the ELF object. It is written to a
 * temporary name and renamed, so readers never see half a file; a file
 * that fails any check is ignored (and replaced by the next store). Cache
 * trouble never fails a compile: a store that cannot be written is
 * skipped. */
#include "backend.h"

#include <errno.h>
#include <llvm-c/BitWriter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "llvm_compat.h"

static const char MAGIC[8] = "MSWOBJ1";

typedef struct Header {
	char magic[8];
	uint64_t size;
	Hash128 sum;
} Header;

static int put(Vec *v, const void *p, size_t n)
{
	if (vec_reserve(v, v->len + n, 1))
		return -1;
	memcpy((char *)v->data + v->len, p, n);
	v->len += n;
	return 0;
}

static int put_str(Vec *v, const char *s)
{
	return put(v, s ? s : "", (s ? strlen(s) : 0) + 1);
}

int be_cache_key(be_Module *m, Hash128 *key, Diag *d)
{
	LLVMMemoryBufferRef bc = LLVMWriteBitcodeToMemoryBuffer(m->c.mod);
	if (!bc)
		return diag_error(d, (SrcLoc){0}, "cannot serialise the module for the kernel cache");
	Vec v = {0};
	char *triple = LLVMGetTargetMachineTriple(m->c.tm);
	char *cpu = LLVMGetTargetMachineCPU(m->c.tm);
	char *feat = LLVMGetTargetMachineFeatureString(m->c.tm);
	int version[4] = {LLVM_VERSION_MAJOR, LLVM_VERSION_MINOR, LLVM_VERSION_PATCH,
			  m->opt.opt_level};
	int rc = put_str(&v, "mswc-kernel-cache-1") | put_str(&v, triple) | put_str(&v, cpu) |
		 put_str(&v, feat) | put(&v, version, sizeof version) |
		 put(&v, LLVMGetBufferStart(bc), LLVMGetBufferSize(bc));
	if (!rc)
		*key = hash128(v.data, v.len);
	LLVMDisposeMessage(triple);
	LLVMDisposeMessage(cpu);
	LLVMDisposeMessage(feat);
	LLVMDisposeMemoryBuffer(bc);
	vec_free(&v);
	return rc ? diag_error(d, (SrcLoc){0}, "out of memory") : 0;
}

static void path_of(const char *dir, Hash128 key, const char *suffix, char *out, size_t n)
{
	char hex[33];
	hash128_hex(key, hex);
	snprintf(out, n, "%s/%s%s", dir, hex, suffix);
}

LLVMMemoryBufferRef be_cache_load(const char *dir, Hash128 key)
{
	char path[4096];
	path_of(dir, key, ".o", path, sizeof path);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	Header h;
	char *data = NULL;
	LLVMMemoryBufferRef buf = NULL;
	if (fread(&h, sizeof h, 1, f) == 1 && !memcmp(h.magic, MAGIC, sizeof MAGIC) &&
	    h.size > 0 && h.size < ((uint64_t)1 << 34) && (data = mem_alloc((size_t)h.size)) &&
	    fread(data, 1, (size_t)h.size, f) == h.size && fgetc(f) == EOF) {
		Hash128 s = hash128(data, (size_t)h.size);
		if (s.lo == h.sum.lo && s.hi == h.sum.hi)
			buf = LLVMCreateMemoryBufferWithMemoryRangeCopy(data, (size_t)h.size, "cached");
	}
	mem_free(data);
	fclose(f);
	return buf;
}

/* mkdir -p, for the default ~/.cache/mswc/kernels. */
int be_cache_make_dir(const char *dir)
{
	char p[4096];
	snprintf(p, sizeof p, "%s", dir);
	for (char *s = p + 1; *s; s++)
		if (*s == '/') {
			*s = 0;
			if (mkdir(p, 0755) && errno != EEXIST)
				return -1;
			*s = '/';
		}
	return mkdir(p, 0755) && errno != EEXIST ? -1 : 0;
}

int be_cache_store(const char *dir, Hash128 key, const void *data, size_t n)
{
	char path[4096], tmp[4200];
	path_of(dir, key, ".o", path, sizeof path);
	snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
	if (be_cache_make_dir(dir))
		return -1;
	FILE *f = fopen(tmp, "wb");
	if (!f)
		return -1;
	Header h = {.size = n, .sum = hash128(data, n)};
	memcpy(h.magic, MAGIC, sizeof MAGIC);
	int ok = fwrite(&h, sizeof h, 1, f) == 1 && fwrite(data, 1, n, f) == n;
	ok &= fflush(f) == 0 && fsync(fileno(f)) == 0;
	ok &= fclose(f) == 0;
	if (!ok || rename(tmp, path)) {
		remove(tmp);
		return -1;
	}
	return 0;
}

char *be_cache_default_dir(void)
{
	const char *env = getenv("MSW_CACHE_DIR");
	if (env)
		return *env ? mem_strdup(env) : NULL;   /* "" turns the cache off */
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char p[4096];
	if (xdg && *xdg)
		snprintf(p, sizeof p, "%s/mswc/kernels", xdg);
	else if (home && *home)
		snprintf(p, sizeof p, "%s/.cache/mswc/kernels", home);
	else
		return NULL;
	return mem_strdup(p);
}
