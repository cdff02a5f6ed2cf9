/* aot.c: an ahead-of-time object file of one or more compiled programs.
 *
 * The object holds, besides the kernels be_compile optimised:
 *   - each program's description (rt_program_write's bytes) and its table
 *     of kernel addresses, in the description's symbol order, so the
 *     runtime binds by index and never looks a name up;
 *   - optionally the weights, a safetensors file's bytes, in .rodata;
 *   - one rt_Image (runtime/rt.h) pointing at all of it, with the CPU
 *     features the code needs and the target's name for messages;
 *   - the entry `const rt_Image *NAME_program(void)`, the only global
 *     symbol. Every kernel and helper becomes local, so any number of
 *     models link into one app without clashes, and two programs of one
 *     model (decode and prefill) whose kernels share names are linked
 *     into one module by LLVM's linker, which renames local clashes.
 * The image is built as LLVM constants whose layout must be rt_Image's: it
 * is checked against the C struct with the target's data layout before
 * anything is written. Code is generated position-independent (apps are
 * PIE by default) by a target machine made like the module's own, so the
 * instructions are those the JIT runs. The file is written atomically. */
#include "backend.h"

#include <llvm-c/BitReader.h>
#include <llvm-c/BitWriter.h>
#include <llvm-c/Linker.h>
#include <msw.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>



static SrcLoc noloc(void)
{
	SrcLoc l = {0};
	return l;
}

uint64_t be_cpu_features(const char *features)
{
	uint64_t mask = 0;
	for (const char *p = features; p && *p;) {
		size_t n = strcspn(p, ",");
		if (p[0] == '+')
			for (int f = 0; f < RT_CPU_COUNT; f++)
				if (strlen(rt_cpu_feature_name[f]) == n - 1 &&
				    !strncmp(p + 1, rt_cpu_feature_name[f], n - 1))
					mask |= (uint64_t)1 << f;
		p += n + (p[n] == ',');
	}
	return mask;
}

typedef struct Types {
	LLVMContextRef ctx;
	LLVMTypeRef i8, i32, i64, ptr;
} Types;

static LLVMValueRef add_const(LLVMModuleRef mod, LLVMValueRef init, const char *name,
			      LLVMLinkage link, unsigned align)
{
	LLVMValueRef g = LLVMAddGlobal(mod, LLVMTypeOf(init), name);
	LLVMSetInitializer(g, init);
	LLVMSetGlobalConstant(g, 1);
	LLVMSetLinkage(g, link);
	LLVMSetAlignment(g, align);
	return g;
}

/* A private array of bytes (a string when nul), as an i8*. */
static LLVMValueRef bytes(const Types *t, LLVMModuleRef mod, const char *name, const void *p,
			  size_t n, bool nul, unsigned align)
{
	LLVMValueRef init = LLVMConstStringInContext(t->ctx, p, (unsigned)n, !nul);
	return LLVMConstBitCast(add_const(mod, init, name, LLVMPrivateLinkage, align), t->ptr);
}

static LLVMValueRef str(const Types *t, LLVMModuleRef mod, const char *name, const char *s)
{
	return bytes(t, mod, name, s, strlen(s), true, 1);
}

/* Every definition local: kernels, their helpers, their constants. */
static void make_local(LLVMModuleRef mod)
{
	for (LLVMValueRef f = LLVMGetFirstFunction(mod); f; f = LLVMGetNextFunction(f))
		if (!LLVMIsDeclaration(f))
			LLVMSetLinkage(f, LLVMInternalLinkage);
	for (LLVMValueRef g = LLVMGetFirstGlobal(mod); g; g = LLVMGetNextGlobal(g))
		if (!LLVMIsDeclaration(g) && LLVMGetLinkage(g) != LLVMPrivateLinkage)
			LLVMSetLinkage(g, LLVMInternalLinkage);
}

/* Program i's table and description, as globals with names no kernel has
 * and external linkage for now, so they keep their names through linking. */
static int add_program(const Types *t, LLVMModuleRef mod, const be_AotOptions *o, int i,
		       const be_AotProgram *ap, Diag *d)
{
	const rt_Program *p = ap->desc;
	size_t nk = p->kernel.len;
	LLVMValueRef *fn = mem_alloc((nk ? nk : 1) * sizeof *fn);
	if (!fn)
		return diag_error(d, noloc(), "out of memory");
	for (size_t k = 0; k < nk; k++) {
		const char *sym = VEC_AT(p->kernel, char *, k);
		LLVMValueRef f = LLVMGetNamedFunction(mod, sym);
		if (!f || LLVMIsDeclaration(f)) {
			mem_free(fn);
			return diag_error(d, noloc(), "internal: the %s program's kernel %s is not in "
					  "its module", ap->role, sym);
		}
		fn[k] = LLVMConstBitCast(f, t->ptr);
	}
	char name[256];
	snprintf(name, sizeof name, "msw.%s.table%d", o->name, i);
	add_const(mod, LLVMConstArray(t->ptr, fn, (unsigned)nk), name, LLVMExternalLinkage, 8);
	mem_free(fn);
	snprintf(name, sizeof name, "msw.%s.desc%d", o->name, i);
	LLVMValueRef init = LLVMConstStringInContext(t->ctx, (const char *)ap->bytes,
						     (unsigned)ap->nbytes, 1);
	add_const(mod, init, name, LLVMExternalLinkage, 8);
	return 0;
}

/* Program i's module in the first one's context: the first itself, the
 * others through bitcode (modules of different contexts cannot be linked). */
static LLVMModuleRef module_in(LLVMContextRef ctx, be_AotProgram *ap, int i, Diag *d)
{
	if (!ap->mod->c.mod) {
		diag_error(d, noloc(), "internal: the %s program's module was handed to the JIT",
			   ap->role);
		return NULL;
	}
	if (i == 0)
		return ap->mod->c.mod;
	LLVMMemoryBufferRef bc = LLVMWriteBitcodeToMemoryBuffer(ap->mod->c.mod);
	LLVMModuleRef m = NULL;
	if (!bc || LLVMParseBitcodeInContext2(ctx, bc, &m)) {
		diag_error(d, noloc(), "cannot move the %s program's module for linking", ap->role);
		m = NULL;
	}
	if (bc)
		LLVMDisposeMemoryBuffer(bc);
	return m;
}

static LLVMValueRef global_ptr(const Types *t, LLVMModuleRef mod, const char *fmt,
			       const char *name, int i)
{
	char buf[256];
	snprintf(buf, sizeof buf, fmt, name, i);
	LLVMValueRef g = LLVMGetNamedGlobal(mod, buf);
	LLVMSetLinkage(g, LLVMPrivateLinkage);
	return LLVMConstBitCast(g, t->ptr);
}

/* The rt_Image and the entry returning it. */
static int add_image(const Types *t, LLVMModuleRef mod, const be_AotProgram *prog, int nprog,
		     const be_AotOptions *o, uint64_t features, Diag *d)
{
	LLVMTypeRef pfield[5] = {t->ptr, t->ptr, t->i64, t->ptr, t->i64};
	LLVMTypeRef ptype = LLVMStructTypeInContext(t->ctx, pfield, 5, 0);
	LLVMValueRef pv[8];
	if (nprog > 8)
		return diag_error(d, noloc(), "internal: more than 8 programs in one object");
	char name[256];
	for (int i = 0; i < nprog; i++) {
		snprintf(name, sizeof name, "msw.%s.role%d", o->name, i);
		LLVMValueRef f[5] = {
			str(t, mod, name, prog[i].role),
			global_ptr(t, mod, "msw.%s.desc%d", o->name, i),
			LLVMConstInt(t->i64, prog[i].nbytes, 0),
			global_ptr(t, mod, "msw.%s.table%d", o->name, i),
			LLVMConstInt(t->i64, prog[i].desc->kernel.len, 0),
		};
		pv[i] = LLVMConstNamedStruct(ptype, f, 5);
	}
	snprintf(name, sizeof name, "msw.%s.programs", o->name);
	LLVMValueRef progs = LLVMConstBitCast(add_const(mod, LLVMConstArray(ptype, pv, (unsigned)nprog),
							name, LLVMPrivateLinkage, 8), t->ptr);
	LLVMValueRef weights = LLVMConstNull(t->ptr);
	if (o->weights) {
		snprintf(name, sizeof name, "msw.%s.weights", o->name);
		weights = bytes(t, mod, name, o->weights, o->weights_len, false, 64);
	}
	char sname[256], tname[256], vname[256];
	snprintf(sname, sizeof sname, "msw.%s.name", o->name);
	snprintf(tname, sizeof tname, "msw.%s.target", o->name);
	snprintf(vname, sizeof vname, "msw.%s.version", o->name);
	LLVMTypeRef ifield[10] = {t->i32, t->i32, t->ptr, t->ptr, t->i64,
				  t->ptr, t->i64, t->ptr, t->i64, t->ptr};
	LLVMTypeRef itype = LLVMStructTypeInContext(t->ctx, ifield, 10, 0);
	LLVMValueRef iv[10] = {
		LLVMConstInt(t->i32, RT_IMAGE_MAGIC, 0),
		LLVMConstInt(t->i32, RT_IMAGE_ABI, 0),
		str(t, mod, sname, o->name),
		str(t, mod, tname, o->target),
		LLVMConstInt(t->i64, features, 0),
		progs,
		LLVMConstInt(t->i64, (unsigned long long)nprog, 0),
		weights,
		LLVMConstInt(t->i64, o->weights ? o->weights_len : 0, 0),
		str(t, mod, vname, MSW_VERSION_STRING),
	};
	/* The layout must be the C struct's, field by field. */
	LLVMTargetDataRef td = LLVMGetModuleDataLayout(mod);
	static const size_t ioff[10] = {
		offsetof(rt_Image, magic), offsetof(rt_Image, abi), offsetof(rt_Image, name),
		offsetof(rt_Image, target), offsetof(rt_Image, cpu_features),
		offsetof(rt_Image, prog), offsetof(rt_Image, nprog), offsetof(rt_Image, weights),
		offsetof(rt_Image, weights_len), offsetof(rt_Image, version)};
	static const size_t poff[5] = {
		offsetof(rt_ImageProgram, role), offsetof(rt_ImageProgram, desc),
		offsetof(rt_ImageProgram, desc_len), offsetof(rt_ImageProgram, fn),
		offsetof(rt_ImageProgram, nfn)};
	bool same = LLVMABISizeOfType(td, itype) == sizeof(rt_Image) &&
		    LLVMABISizeOfType(td, ptype) == sizeof(rt_ImageProgram);
	for (unsigned k = 0; k < 10; k++)
		same &= LLVMOffsetOfElement(td, itype, k) == ioff[k];
	for (unsigned k = 0; k < 5; k++)
		same &= LLVMOffsetOfElement(td, ptype, k) == poff[k];
	if (!same)
		return diag_error(d, noloc(), "internal: the image's LLVM layout is not rt_Image's "
				  "on this target");
	snprintf(name, sizeof name, "msw.%s.image", o->name);
	LLVMValueRef img = add_const(mod, LLVMConstNamedStruct(itype, iv, 10), name,
				     LLVMPrivateLinkage, 8);

	snprintf(name, sizeof name, "%s_program", o->name);
	if (LLVMGetNamedFunction(mod, name))
		return diag_error(d, noloc(), "the name %s clashes with a kernel; choose another "
				  "--name", o->name);
	LLVMValueRef entry = LLVMAddFunction(mod, name, LLVMFunctionType(t->ptr, NULL, 0, 0));
	LLVMSetLinkage(entry, LLVMExternalLinkage);
	LLVMBuilderRef b = LLVMCreateBuilderInContext(t->ctx);
	LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(t->ctx, entry, "entry"));
	LLVMBuildRet(b, LLVMConstBitCast(img, t->ptr));
	LLVMDisposeBuilder(b);
	return 0;
}

static int write_object(LLVMModuleRef mod, const be_Options *opt, const char *path, size_t *size,
			Diag *d)
{
	be_Options o = *opt;
	o.pic = true;
	LLVMTargetMachineRef tm = be_target_machine(&o, d);
	if (!tm)
		return -1;
	char *msg = NULL;
	LLVMMemoryBufferRef obj = NULL;
	int rc = -1;
	if (LLVMTargetMachineEmitToMemoryBuffer(tm, mod, LLVMObjectFile, &msg, &obj)) {
		diag_error(d, noloc(), "LLVM code generation failed: %s", msg ? msg : "?");
		LLVMDisposeMessage(msg);
		goto out;
	}
	rt_AtomicFile af;
	if (rt_atomic_begin(&af, path, d))
		goto out;
	*size = LLVMGetBufferSize(obj);
	if (rt_atomic_write(&af, LLVMGetBufferStart(obj), *size, d)) {
		rt_atomic_abort(&af);
		goto out;
	}
	rc = rt_atomic_commit(&af, d);
out:
	if (obj)
		LLVMDisposeMemoryBuffer(obj);
	LLVMDisposeTargetMachine(tm);
	return rc;
}

int be_aot_object(be_AotProgram *prog, int nprog, const be_AotOptions *o, const char *path,
		  size_t *size, uint64_t *features, Diag *d)
{
	*size = 0;
	if (nprog < 1)
		return diag_error(d, noloc(), "internal: an object of no program");
	be_Module *first = prog[0].mod;
	Types t = {.ctx = first->c.ctx};
	t.i8 = LLVMInt8TypeInContext(t.ctx);
	t.i32 = LLVMInt32TypeInContext(t.ctx);
	t.i64 = LLVMInt64TypeInContext(t.ctx);
	t.ptr = LLVMPointerType(t.i8, 0);
	if (o->weights_len > UINT32_MAX)
		return diag_error(d, noloc(), "the weights (%zu bytes) are too large to embed "
				  "(4 GiB at most); load them from a file instead", o->weights_len);
	LLVMModuleRef mod = NULL;
	for (int i = 0; i < nprog; i++) {
		LLVMModuleRef m = module_in(t.ctx, &prog[i], i, d);
		if (!m)
			return -1;
		make_local(m);
		if (add_program(&t, m, o, i, &prog[i], d)) {
			if (i)
				LLVMDisposeModule(m);
			return -1;
		}
		if (i == 0) {
			mod = m;
		} else if (LLVMLinkModules2(mod, m)) {   /* consumes m */
			return diag_error(d, noloc(), "cannot link the %s program into the object",
					  prog[i].role);
		}
	}
	char *feat = LLVMGetTargetMachineFeatureString(first->c.tm);
	*features = be_cpu_features(feat);
	LLVMDisposeMessage(feat);
	if (add_image(&t, mod, prog, nprog, o, *features, d))
		return -1;
	return write_object(mod, &first->opt, path, size, d);
}
