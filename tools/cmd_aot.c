/* cmd_aot.c: `mswc compile MODEL.msw --aot DIR [--name NAME] [--weights W [--embed-weights]]
 *            [--generate [--prefill T]] [--target-cpu native|x86-64-v2|x86-64-v3|x86-64-v4]
 *            [-D ...] [--sparsity S]`
 *
 * Writes DIR/NAME.o and DIR/NAME.h, the model compiled ahead of time for an
 * app to link with libmswrt (docs/embedding.md). The program is the one
 * `mswc run` builds when it is given every input, so the loss is in it;
 * with --generate, the two `mswc generate` builds for one sequence (the
 * decode program, tokens [1, 1] and pos [1], and the prefill program,
 * tokens [1, T]), linked into one object. Shapes come from the model and
 * -D, masks from --weights (as run takes them) or from --sparsity with
 * init's default seed (1), so the masks agree with `mswc init --sparsity
 * S`'s. The weights, when given, are checked against the program exactly
 * as the runtime will check them (the description read back from its
 * bytes, an executor over it), so a file that does not fit fails here and
 * not in the app; --embed-weights puts the file's bytes in the object.
 * The header is generated from the description: shapes and the arena size
 * as macros, input and output structs, NAME_create / NAME_destroy /
 * NAME_run (or NAME_generate), and the parameter table. It is written to
 * be -std=c11 -Wall -Wextra -Werror clean and to compile as C++. */
#include "tools.h"

#include <ctype.h>
#include <msw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_ident(const char *s)
{
	if (!s || !(isalpha((unsigned char)*s) || *s == '_'))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

/* The file's stem as an identifier: "models/gpt.msw" -> "gpt". */
static void default_name(const char *model, char *buf, size_t n)
{
	const char *base = strrchr(model, '/');
	base = base ? base + 1 : model;
	size_t k = strcspn(base, ".");
	snprintf(buf, n, "%s%.*s", isdigit((unsigned char)base[0]) ? "m" : "", (int)k, base);
	for (char *p = buf; *p; p++)
		if (!isalnum((unsigned char)*p))
			*p = '_';
}

/* A tensor name as part of a C identifier, upper or lower case. */
static void ident_part(const char *name, bool upper, char *buf, size_t n)
{
	size_t i = 0;
	for (; name[i] && i + 1 < n; i++) {
		unsigned char c = (unsigned char)name[i];
		buf[i] = (char)(isalnum(c) ? (upper ? toupper(c) : tolower(c)) : '_');
	}
	buf[i] = 0;
}

static const char *c_type(uint8_t dtype)
{
	return dtype == RT_F32 ? "float" : dtype == RT_I32 ? "int32_t" : "uint8_t";
}

static void shape_str(const rt_Slot *s, char *buf, size_t n)
{
	size_t at = (size_t)snprintf(buf, n, "[");
	for (int i = 0; i < s->rank && at < n; i++)
		at += (size_t)snprintf(buf + at, n - at, i ? ", %lld" : "%lld", (long long)s->dim[i]);
	if (at < n)
		snprintf(buf + at, n - at, "]");
}

static int64_t numel_of(const rt_Slot *s)
{
	int64_t n = 1;
	for (int i = 0; i < s->rank; i++)
		n *= s->dim[i];
	return n;
}

/* The inputs, then the outputs and the loss (each name once), of p. */
static bool is_io(const rt_Program *p, size_t i)
{
	const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
	if (s->kind != RT_SLOT_INPUT && s->kind != RT_SLOT_OUTPUT && s->kind != RT_SLOT_LOSS)
		return false;
	return rt_program_find(p, s->name) == s;   /* the first slot of that name */
}

typedef struct HeaderInfo {
	const char *name, *model, *target, *weights;
	const Args *a;
	const AotOpts *o;
	const Graph *g;
	bool embedded;
	/* generation objects: the decode program's vocabulary and context, the
	 * prefill program's tokens per run (0: none) and arena */
	bool generate;
	int64_t vocab, ctx, prefill, prefill_arena;
} HeaderInfo;

static void command_line(FILE *f, const HeaderInfo *h)
{
	fprintf(f, " *   mswc compile %s --aot %s --name %s", h->model, h->o->dir, h->name);
	for (int i = 0; i < h->a->ndef; i++)
		fprintf(f, " -D %s=%s", h->a->def[i].name, h->a->def[i].value);
	if (h->a->has_sparsity)
		fprintf(f, " --sparsity %g", h->a->sparsity);
	if (h->a->dense)
		fprintf(f, " --dense");
	if (h->o->target)
		fprintf(f, " --target-cpu %s", h->o->target);
	if (h->weights)
		fprintf(f, " --weights %s%s", h->weights, h->embedded ? " --embed-weights" : "");
	fprintf(f, "\n");
}

/* Escaped for a C string literal (names are tame, but never trust that). */
static void c_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		if ((unsigned char)*s < 0x20)
			fprintf(f, "\\%03o", (unsigned char)*s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static int check_idents(const rt_Program *p, Diag *d)
{
	char a[256], b[256];
	for (size_t i = 0; i < p->slot.len; i++) {
		if (!is_io(p, i))
			continue;
		const char *ni = VEC_AT(p->slot, rt_Slot, i).name;
		ident_part(ni, false, a, sizeof a);
		if (!is_ident(a))
			return diag_error(d, (SrcLoc){0}, "the tensor name '%s' makes no C identifier",
					  ni);
		for (size_t j = 0; j < i; j++) {
			if (!is_io(p, j))
				continue;
			const char *nj = VEC_AT(p->slot, rt_Slot, j).name;
			ident_part(nj, false, b, sizeof b);
			if (!strcmp(a, b))
				return diag_error(d, (SrcLoc){0}, "tensors '%s' and '%s' make the same C "
						  "identifier '%s'", nj, ni, a);
		}
	}
	return 0;
}

static void header_text(FILE *f, const rt_Program *p, const HeaderInfo *h)
{
	char up[600], part[256], uname[256], shape[256];
	ident_part(h->name, true, uname, sizeof uname);
	const char *n = h->name;
	fprintf(f, "/* %s.h: the model %s compiled ahead of time by mswc %s. Generated by\n",
		n, n, MSW_VERSION_STRING);
	command_line(f, h);
	fprintf(f, " * Do not edit. Link %s.o and the runtime:\n"
		   " *   cc app.c %s/%s.o $(pkg-config --cflags --libs mswrt)\n *\n", n, h->o->dir, n);
	fprintf(f, " * Target: %s. %s_create refuses (MSW_ECPU) a CPU without the features\n"
		   " * the code was compiled for.\n", h->target, n);
	if (h->embedded)
		fprintf(f, " * Weights: embedded in %s.o (from %s); %s_create loads them.\n", n,
			h->weights, n);
	else
		fprintf(f, " * Weights: not embedded; after %s_create, msw_load_weights(model,\n"
			   " * \"W.safetensors\") loads them (they are zero until then).\n", n);
	fprintf(f, " *\n * Use (msw.h documents every msw_ function):\n"
		   " *   msw_Model *m;\n"
		   " *   int rc = %s_create(NULL, &m);   // NULL: default options\n"
		   " *   if (rc) { fprintf(stderr, \"%%s: %%s\\n\", msw_strerror(rc), msw_errmsg(m)); ... }\n",
		n);
	if (h->generate)
		fprintf(f, " *   msw_GenOptions g = {0};   // greedy; .temperature, .top_k, .top_p, .seed\n"
			   " *   rc = %s_generate(m, prompt, nprompt, n, &g, out);\n", n);
	else
		fprintf(f, " *   struct %s_inputs in = {...};   struct %s_outputs out = {...};\n"
			   " *   rc = %s_run(m, &in, &out);\n", n, n, n);
	fprintf(f, " *   %s_destroy(m);\n */\n", n);
	fprintf(f, "#ifndef %s_MSW_H\n#define %s_MSW_H\n\n#include <msw.h>\n#include <stdint.h>\n\n"
		   "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n", uname, uname);
	if (h->generate) {
		fprintf(f, "/* The arenas of the decode and prefill programs, in bytes, and both:\n"
			   " * what msw_create allocates. */\n"
			   "#define %s_DECODE_ARENA_SIZE %lld\n#define %s_PREFILL_ARENA_SIZE %lld\n"
			   "#define %s_ARENA_SIZE %lld\n", uname, (long long)p->arena_size, uname,
			(long long)h->prefill_arena, uname, (long long)(p->arena_size + h->prefill_arena));
		fprintf(f, "/* Token ids lie in [0, VOCAB); the model sees at most CTX positions\n"
			   " * (msw_GenOptions.window); the prompt is read PREFILL tokens per run. */\n"
			   "#define %s_VOCAB %lld\n#define %s_CTX %lld\n#define %s_PREFILL %lld\n",
			uname, (long long)h->vocab, uname, (long long)h->ctx, uname,
			(long long)(h->prefill ? h->prefill : 1));
	} else {
		fprintf(f, "/* The one arena every tensor of a run lives in, in bytes: what msw_create\n"
			   " * allocates, or what msw_Options.arena must hold (aligned to MSW_ARENA_ALIGN). */\n"
			   "#define %s_ARENA_SIZE %lld\n", uname, (long long)p->arena_size);
	}
	fprintf(f, "#define %s_EMBEDDED_WEIGHTS %d\n", uname, h->embedded);
	fprintf(f, "#define %s_TARGET ", uname);
	c_string(f, h->target);
	fprintf(f, "\n\n");
	/* shapes */
	for (size_t i = 0; !h->generate && i < p->slot.len; i++) {
		if (!is_io(p, i))
			continue;
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		ident_part(s->name, true, part, sizeof part);
		snprintf(up, sizeof up, "%s_%s", uname, part);
		shape_str(s, shape, sizeof shape);
		const char *what = s->kind == RT_SLOT_INPUT ? "Input " : s->kind == RT_SLOT_LOSS
				   ? "The loss" : "Output ";
		fprintf(f, "/* %s%s: %s %s", what, s->kind == RT_SLOT_LOSS ? "" : s->name,
			rt_dtype_name((rt_DType)s->dtype), shape);
		if (s->vocab)
			fprintf(f, ", token ids in [0, %lld)", (long long)s->vocab);
		fprintf(f, " */\n#define %s_RANK %d\n", up, s->rank);
		for (int k = 0; k < s->rank; k++)
			fprintf(f, "#define %s_DIM%d %lld\n", up, k, (long long)s->dim[k]);
		fprintf(f, "#define %s_NUMEL %lld\n", up, (long long)numel_of(s));
		if (s->vocab)
			fprintf(f, "#define %s_VOCAB %lld\n", up, (long long)s->vocab);
	}
	fprintf(f, "\n/* The image of %s.o, for msw_create (static data, never freed). */\n"
		   "const msw_Image *%s_program(void);\n\n", n, n);
	for (int pass = 0; !h->generate && pass < 2; pass++) {
		fprintf(f, "%s", pass == 0
			? "/* Every input, required. */\n"
			: "/* Where the results go: each of NUMEL elements; NULL: not copied. */\n");
		fprintf(f, "struct %s_%s {\n", n, pass == 0 ? "inputs" : "outputs");
		for (size_t i = 0; i < p->slot.len; i++) {
			const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
			if (!is_io(p, i) || (s->kind == RT_SLOT_INPUT) != (pass == 0))
				continue;
			ident_part(s->name, false, part, sizeof part);
			shape_str(s, shape, sizeof shape);
			fprintf(f, "\t%s%s *%s;   /* %s */\n", pass == 0 ? "const " : "",
				c_type(s->dtype), part, shape);
		}
		fprintf(f, "};\n\n");
	}
	fprintf(f, "/* Creates the model (opts: NULL for all cores and an allocated arena); see\n"
		   " * msw_create for what is checked and who owns what. */\n"
		   "static inline int %s_create(const msw_Options *opts, msw_Model **out)\n{\n"
		   "\treturn msw_create(%s_program(), opts, out);\n}\n\n", n, n);
	fprintf(f, "static inline void %s_destroy(msw_Model *m)\n{\n\tmsw_destroy(m);\n}\n\n", n);
	if (h->generate) {
		fprintf(f, "/* Continues prompt[0 .. nprompt) by max_new tokens into out (msw_generate:\n"
			   " * opts NULL is greedy; the same seed gives mswc generate's tokens). */\n"
			   "static inline int %s_generate(msw_Model *m, const int32_t *prompt, int64_t nprompt,\n"
			   "\t\t\t\t int64_t max_new, const msw_GenOptions *opts, int32_t *out)\n{\n"
			   "\treturn msw_generate(m, prompt, nprompt, max_new, opts, out);\n}\n\n", n);
		goto params;
	}
	fprintf(f, "/* One run: copies the inputs in (token ids are checked against the\n"
		   " * vocabulary), runs, copies the outputs out. */\n"
		   "static inline int %s_run(msw_Model *m, const struct %s_inputs *in, "
		   "struct %s_outputs *out)\n{\n\tint rc;\n"
		   "\tif (!in || !out)\n\t\treturn MSW_EINVAL;\n", n, n, n);
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1)
			fprintf(f, "\tif ((rc = msw_run(m)))\n\t\treturn rc;\n");
		for (size_t i = 0; i < p->slot.len; i++) {
			const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
			if (!is_io(p, i) || (s->kind == RT_SLOT_INPUT) != (pass == 0))
				continue;
			ident_part(s->name, false, part, sizeof part);
			ident_part(s->name, true, up, sizeof up);
			if (pass == 0) {
				fprintf(f, "\tif ((rc = msw_set_input(m, ");
				c_string(f, s->name);
				fprintf(f, ", in->%s, %s_%s_NUMEL * sizeof(%s))))\n\t\treturn rc;\n",
					part, uname, up, c_type(s->dtype));
			} else {
				fprintf(f, "\tif (out->%s && (rc = msw_get_output(m, ", part);
				c_string(f, s->name);
				fprintf(f, ", out->%s, %s_%s_NUMEL * sizeof(%s))))\n\t\treturn rc;\n",
					part, uname, up, c_type(s->dtype));
			}
		}
	}
	fprintf(f, "\treturn MSW_OK;\n}\n\n");
params:;
	int nparam = 0;
	for (size_t i = 0; i < p->slot.len; i++)
		nparam += VEC_AT(p->slot, rt_Slot, i).kind == RT_SLOT_PARAM;
	fprintf(f, "/* The parameters in the model's order: name, shape, elements, and how\n"
		   " * many of them the mask keeps (all, for a dense one). */\n"
		   "#define %s_NPARAM %d\n"
		   "static inline const msw_ParamInfo *%s_params(void)\n{\n"
		   "\tstatic const msw_ParamInfo params[%s_NPARAM] = {\n", uname, nparam, n, uname);
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		if (s->kind != RT_SLOT_PARAM)
			continue;
		/* the graph's mask: a program whose sparse kernels carry the
		 * pattern in their code has no mask slot for it */
		int64_t numel = numel_of(s), kept = numel;
		ValId pv = ir_find_param(h->g, s->name);
		const Mask *m = pv == VAL_NONE ? NULL : ir_find_mask(h->g, pv);
		if (m && m->nkept >= 0)
			kept = m->nkept;
		fprintf(f, "\t\t{");
		c_string(f, s->name);
		fprintf(f, ", %d, {", s->rank);
		for (int k = 0; k < s->rank; k++)
			fprintf(f, "%s%lld", k ? ", " : "", (long long)s->dim[k]);
		fprintf(f, "%s}, %lld, %lld},\n", s->rank ? "" : "0", (long long)numel, (long long)kept);
	}
	fprintf(f, "\t};\n\treturn params;\n}\n\n#ifdef __cplusplus\n}\n#endif\n\n#endif\n");
}

static int write_header(const char *path, const rt_Program *p, const HeaderInfo *h, Diag *d)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return diag_error(d, (SrcLoc){0}, "out of memory");
	header_text(f, p, h);
	if (fclose(f)) {
		free(text);
		return diag_error(d, (SrcLoc){0}, "out of memory");
	}
	rt_AtomicFile af;
	int rc = rt_atomic_begin(&af, path, d);
	if (!rc && rt_atomic_write(&af, text, len, d)) {
		rt_atomic_abort(&af);
		rc = -1;
	} else if (!rc) {
		rc = rt_atomic_commit(&af, d);
	}
	free(text);   /* open_memstream's buffer comes from malloc */
	return rc;
}

/* A kernel that is never called: the weights check binds the description
 * to it, since checking needs an executor but not code. */
static void never_called(void *const *buf, int64_t lo, int64_t hi)
{
	(void)buf;
	(void)lo;
	(void)hi;
}

static rt_KernelFn stub(void *user, const char *symbol, uint32_t index, Diag *d)
{
	(void)user;
	(void)symbol;
	(void)index;
	(void)d;
	return never_called;
}

/* The description read back from its bytes, bound to a kernel that is
 * never called, and an executor over it: what the runtime will check
 * weights against, and what rt_decoder_init reads a decode program's
 * vocabulary and context from. */
static int stub_exec(const uint8_t *bytes, size_t n, rt_Program **p, rt_Exec **e, Diag *d)
{
	*e = NULL;
	if (rt_program_read("the description", bytes, n, p, d))
		return diag_error(d, (SrcLoc){0}, "internal: the description does not read back");
	return rt_program_bind(*p, stub, NULL, d) || rt_exec_create(*p, NULL, e, d) ? -1 : 0;
}

static int read_file(const char *path, uint8_t **out, size_t *len, Diag *d)
{
	rt_Reader r;
	*out = NULL;
	if (rt_reader_open(&r, path, d))
		return -1;
	*len = (size_t)r.size;
	*out = mem_alloc(*len ? *len : 1);
	int rc = *out ? rt_reader_read(&r, 0, *out, *len, d)
		      : diag_error(d, (SrcLoc){0}, "out of memory");
	rt_reader_close(&r);
	return rc;
}

/* One program of the object: its build, description and bytes. */
typedef struct Part {
	const char *role;
	Build b;
	bool built;
	rt_Program *desc;
	uint8_t *bytes;
	size_t nbytes;
} Part;

/* 0, an exit status after the diagnostics were printed, or -1 with them
 * in pt->b.diag. */
static int build_part(Part *pt, const char *role, const BuildOptions *bo)
{
	pt->role = role;
	pt->built = true;
	int rc = build_run(&pt->b, bo);
	if (rc)
		return rc;
	if (be_describe(pt->b.mod, pt->b.g, &pt->desc, &pt->b.diag))
		return -1;
	for (size_t i = 0; i < pt->desc->slot.len; i++) {
		rt_Slot *s = &VEC_AT(pt->desc->slot, rt_Slot, i);
		if (s->kind == RT_SLOT_INPUT && s->dtype == RT_I32)
			s->vocab = build_vocab(pt->b.g, s->name);
	}
	if (check_idents(pt->desc, &pt->b.diag) ||
	    rt_program_write(pt->desc, &pt->bytes, &pt->nbytes, &pt->b.diag))
		return -1;
	return 0;
}

static void part_free(Part *pt)
{
	mem_free(pt->bytes);
	rt_program_destroy(pt->desc);
	if (pt->built)
		build_free(&pt->b);
}

int aot_compile(const Args *a, const AotOpts *o)
{
	char name[128];
	if (o->name)
		snprintf(name, sizeof name, "%s", o->name);
	else
		default_name(a->model, name, sizeof name);
	if (!is_ident(name) || strlen(name) > 64)
		return usage_error("compile", "--name must be a C identifier of at most 64 characters, "
				   "got '%s'", name);
	if (o->embed_weights && !o->weights)
		return usage_error("compile", "--embed-weights needs --weights FILE");
	const char *cpu, *feat;
	be_target_named(o->target ? o->target : "native", &cpu, &feat);

	Diag d;
	diag_init(&d);
	rt_TensorFile w = {0};
	PruneTensor *masks = NULL;
	int nmasks = 0, rc = EXIT_FAIL, npart = 0;
	Part part[2];
	memset(part, 0, sizeof part);
	Diag *err = &d;
	uint8_t *wbytes = NULL;
	size_t nw = 0;
	rt_Program *sp = NULL;
	rt_Exec *se = NULL;
	rt_Decoder dc = {0};
	if (o->weights && weights_read(o->weights, a, &w, &masks, &nmasks, &d))
		goto fail;
	/* The programs mswc run and mswc generate (one sequence) build. */
	BuildOptions bo = {.args = a, .stage = STAGE_MODULE, .loss = !o->generate, .seed = 1,
			   .masks = masks, .nmasks = nmasks, .dump_after = o->dump_after,
			   .cpu = cpu, .features = feat, .decode = o->generate, .unchecked = true};
	fe_InputShape dec[2] = {{.name = "tokens", .rank = 2, .dim = {1, 1}},
				{.name = "pos", .rank = 1, .dim = {1}}};
	if (o->generate) {
		bo.input = dec;
		bo.ninput = 2;
	}
	int prc = build_part(&part[npart++], o->generate ? "decode" : "forward", &bo);
	err = &part[0].b.diag;
	if (prc > 0) {
		rc = prc;
		goto out;
	}
	if (prc < 0 || stub_exec(part[0].bytes, part[0].nbytes, &sp, &se, err))
		goto fail;
	if (o->weights && rt_load_params_from(se, &w, o->weights, 0, err))
		goto fail;
	int64_t chunk = 0;
	if (o->generate) {
		if (rt_decoder_init(&dc, se, err))
			goto fail;
		chunk = o->prefill < dc.ctx ? o->prefill : dc.ctx;
		fe_InputShape pre = {.name = "tokens", .rank = 2, .dim = {1, chunk}};
		bo.input = &pre;
		bo.ninput = 1;
		if (chunk > 1) {
			prc = build_part(&part[npart++], "prefill", &bo);
			err = &part[1].b.diag;
			if (prc > 0) {
				rc = prc;
				goto out;
			}
			if (prc < 0)
				goto fail;
		}
	}
	err = &part[0].b.diag;
	if (o->embed_weights && read_file(o->weights, &wbytes, &nw, err))
		goto fail;
	if (be_cache_make_dir(o->dir)) {
		rt_file_error(err, o->dir, "cannot create the folder");
		goto fail;
	}
	char target[160];
	if (o->target && strcmp(o->target, "native"))
		snprintf(target, sizeof target, "%s", o->target);
	else
		snprintf(target, sizeof target, "native (%s)", be_host_cpu_name());
	char obj[4096], hdr[4096];
	snprintf(obj, sizeof obj, "%s/%s.o", o->dir, name);
	snprintf(hdr, sizeof hdr, "%s/%s.h", o->dir, name);
	be_AotProgram ap[2];
	for (int i = 0; i < npart; i++)
		ap[i] = (be_AotProgram){.role = part[i].role, .mod = part[i].b.mod,
					.desc = part[i].desc, .bytes = part[i].bytes,
					.nbytes = part[i].nbytes};
	be_AotOptions ao = {.name = name, .target = target, .weights = wbytes, .weights_len = nw};
	size_t size;
	uint64_t features;
	if (be_aot_object(ap, npart, &ao, obj, &size, &features, err))
		goto fail;
	HeaderInfo h = {.name = name, .model = a->model, .target = target, .weights = o->weights,
			.a = a, .o = o, .g = part[0].b.g, .embedded = wbytes != NULL,
			.generate = o->generate, .vocab = dc.vocab, .ctx = dc.ctx, .prefill = chunk,
			.prefill_arena = npart > 1 ? part[1].desc->arena_size : 0};
	if (write_header(hdr, part[0].desc, &h, err))
		goto fail;
	size_t nk = 0, ns = 0, nd = 0;
	int64_t arena = 0;
	for (int i = 0; i < npart; i++) {
		nk += part[i].desc->kernel.len;
		ns += part[i].desc->step.len;
		nd += part[i].nbytes;
		arena += part[i].desc->arena_size;
	}
	printf("wrote %s (%.1f KiB: %s%s%zu kernels for %zu steps, description%s %.1f KiB%s) and %s\n",
	       obj, (double)size / 1024, o->generate ? "decode" : "forward",
	       npart > 1 ? " and prefill programs, " : " program, ", nk, ns, npart > 1 ? "s" : "",
	       (double)nd / 1024, wbytes ? ", weights embedded" : "", hdr);
	printf("  target %s, arena %lld bytes\n", target, (long long)arena);
	rc = 0;
	goto out;
fail:
	fputs(diag_text(err), stderr);
out:
	rt_exec_destroy(se);
	rt_program_destroy(sp);
	mem_free(wbytes);
	for (int i = 0; i < 2; i++)
		part_free(&part[i]);
	sparse_tensors_free(masks, nmasks);
	rt_tensorfile_free(&w);
	diag_free(&d);
	return rc;
}
