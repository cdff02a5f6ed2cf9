/* api.c: the public API of include/msw.h over the runtime.
 *
 * A msw_Model is a program read from a compiled object's image and bound
 * to its code (image.c), a pool and an executor; its Diag holds the text
 * of the last error, cleared when a call begins. Statuses are decided
 * here, from which step failed (opening a file is MSW_EIO, parsing it
 * MSW_EFORMAT, fitting it to the model MSW_EMISMATCH), except that any
 * failure whose message is "out of memory" is MSW_ENOMEM. Inputs and
 * outputs are copied by exact size; token ids are checked against the
 * vocabulary the compiler recorded (rt_Slot.vocab) before they reach the
 * arena, since an id outside it would read outside the table. */
#include "rt.h"

#include <assert.h>
#include <msw.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static_assert((int)MSW_F32 == (int)RT_F32 && (int)MSW_I32 == (int)RT_I32 &&
	      (int)MSW_U8 == (int)RT_U8, "msw and rt dtypes share numbering");
static_assert((int)MSW_MAX_RANK == (int)RT_MAX_RANK && (int)MSW_ARENA_ALIGN == (int)RT_ALIGN &&
	      (int)MSW_ABI_VERSION == (int)RT_IMAGE_ABI, "msw.h and rt.h agree");

enum { MAX_PROGRAMS = 4 };

/* p and e are the first program's (what msw_run and the tensor calls
 * use); prog[] holds every program of the image by role. */
typedef struct Bound {
	const char *role;
	rt_Program *p;
	rt_Exec *e;
} Bound;

struct msw_Model {
	const rt_Image *img;
	Bound prog[MAX_PROGRAMS];
	int nprog;
	rt_Program *p;
	rt_Pool *pool;
	rt_Exec *e;
	Diag diag;
};

int msw_version(void)
{
	return MSW_VERSION_NUMBER;
}

int msw_abi_version(void)
{
	return MSW_ABI_VERSION;
}

const char *msw_strerror(int status)
{
	static const char *const text[MSW_STATUS_COUNT] = {
		[MSW_OK] = "success",
		[MSW_ENOMEM] = "out of memory",
		[MSW_EINVAL] = "invalid argument",
		[MSW_EIO] = "cannot read the file",
		[MSW_EFORMAT] = "damaged or truncated data",
		[MSW_EMISMATCH] = "weights do not fit the model",
		[MSW_ECPU] = "this CPU lacks features the model was compiled for",
		[MSW_EVERSION] = "compiled for another version of the runtime",
	};
	return status >= 0 && status < MSW_STATUS_COUNT ? text[status] : "unknown status";
}

/* Starts a call: the previous error is forgotten. */
static void begin(msw_Model *m)
{
	diag_free(&m->diag);
	diag_init(&m->diag);
}

static int fail(msw_Model *m, int status)
{
	return strstr(diag_text(&m->diag), "out of memory") ? MSW_ENOMEM : status;
}

static int invalid(msw_Model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int invalid(msw_Model *m, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_verror(&m->diag, (SrcLoc){0}, fmt, ap);
	va_end(ap);
	return MSW_EINVAL;
}

int msw_create(const msw_Image *image, const msw_Options *opts, msw_Model **out)
{
	if (!out)
		return MSW_EINVAL;
	msw_Model *m = mem_calloc(1, sizeof *m);
	*out = m;
	if (!m)
		return MSW_ENOMEM;
	diag_init(&m->diag);
	const rt_Image *img = image;
	if (!img)
		return invalid(m, "msw_create: no image (pass NAME_program())");
	if (img->magic != RT_IMAGE_MAGIC || img->nprog == 0) {
		diag_error(&m->diag, (SrcLoc){0}, "msw_create: not a compiled model's image");
		return MSW_EFORMAT;
	}
	if (img->abi != RT_IMAGE_ABI) {
		rt_image_program(img, "", &m->p, &m->diag);   /* for its message */
		return MSW_EVERSION;
	}
	if (rt_cpu_check(img->cpu_features, rt_cpu_host_features(), img->target, &m->diag))
		return MSW_ECPU;
	m->img = img;
	if (img->nprog > MAX_PROGRAMS) {
		diag_error(&m->diag, (SrcLoc){0}, "msw_create: an image of %llu programs",
			   (unsigned long long)img->nprog);
		return MSW_EFORMAT;
	}
	bool own = opts && opts->arena;
	if (own && img->nprog > 1)
		return invalid(m, "msw_create: an arena of the caller's serves an image of one program; "
			       "this one has %llu", (unsigned long long)img->nprog);
	int threads = opts ? opts->threads : 0;
	if (threads < 0)
		return invalid(m, "msw_create: %d threads", threads);
	m->pool = rt_pool_create(threads);
	if (!m->pool) {
		diag_error(&m->diag, (SrcLoc){0}, "cannot start %d threads (out of memory)", threads);
		return MSW_ENOMEM;
	}
	for (uint64_t i = 0; i < img->nprog; i++) {
		Bound *b = &m->prog[m->nprog++];
		b->role = img->prog[i].role;
		if (rt_image_program(img, b->role, &b->p, &m->diag))
			return fail(m, MSW_EFORMAT);
		int rc = own ? rt_exec_create_in(b->p, m->pool, opts->arena, opts->arena_size, &b->e,
						 &m->diag)
			     : rt_exec_create(b->p, m->pool, &b->e, &m->diag);
		if (rc)
			return fail(m, own ? MSW_EINVAL : MSW_EFORMAT);
	}
	m->p = m->prog[0].p;
	m->e = m->prog[0].e;
	if (img->weights) {
		char name[256];
		snprintf(name, sizeof name, "%s.o (embedded weights)", img->name ? img->name : "model");
		int rc = msw_load_weights_mem(m, img->weights, (size_t)img->weights_len, name);
		if (rc)
			return rc;
	}
	return MSW_OK;
}

void msw_destroy(msw_Model *m)
{
	if (!m)
		return;
	for (int i = 0; i < m->nprog; i++) {
		rt_exec_destroy(m->prog[i].e);
		rt_program_destroy(m->prog[i].p);
	}
	rt_pool_destroy(m->pool);
	diag_free(&m->diag);
	mem_free(m);
}

const char *msw_errmsg(const msw_Model *m)
{
	return m ? diag_text(&m->diag) : "out of memory (no model)";
}

/* Into every program: they are one model's, with the same parameters and
 * masks, so a file the first accepts fits the others. */
static int load(msw_Model *m, rt_TensorFile *f, const char *name)
{
	int rc = MSW_OK;
	for (int i = 0; i < m->nprog && !rc; i++)
		if (rt_load_params_from(m->prog[i].e, f, name, 0, &m->diag))
			rc = fail(m, MSW_EMISMATCH);
	rt_tensorfile_free(f);
	return rc;
}

int msw_load_weights(msw_Model *m, const char *path)
{
	if (!m)
		return MSW_EINVAL;
	begin(m);
	if (!m->e)
		return invalid(m, "msw_load_weights: the model was not created");
	if (!path)
		return invalid(m, "msw_load_weights: no path");
	rt_Reader r;
	if (rt_reader_open(&r, path, &m->diag))
		return fail(m, MSW_EIO);
	rt_reader_close(&r);
	rt_TensorFile f;
	if (rt_safetensors_read(path, &f, &m->diag))
		return fail(m, MSW_EFORMAT);
	return load(m, &f, path);
}

int msw_load_weights_mem(msw_Model *m, const void *data, size_t len, const char *name)
{
	if (!m)
		return MSW_EINVAL;
	begin(m);
	if (!m->e)
		return invalid(m, "msw_load_weights_mem: the model was not created");
	if (!data)
		return invalid(m, "msw_load_weights_mem: no data");
	rt_TensorFile f;
	name = name ? name : "weights";
	if (rt_safetensors_read_mem(name, data, len, &f, &m->diag))
		return fail(m, MSW_EFORMAT);
	return load(m, &f, name);
}

static const rt_Slot *find(msw_Model *m, const char *what, const char *name)
{
	if (!m->e) {
		invalid(m, "%s: the model was not created", what);
		return NULL;
	}
	if (!name) {
		invalid(m, "%s: no name", what);
		return NULL;
	}
	const rt_Slot *s = rt_program_find(m->p, name);
	if (!s)
		invalid(m, "%s: the model has no tensor '%s'", what, name);
	return s;
}

static void shape_text(const rt_Slot *s, char *buf, size_t n)
{
	size_t at = (size_t)snprintf(buf, n, "%s[", rt_dtype_name((rt_DType)s->dtype));
	for (int i = 0; i < s->rank && at < n; i++)
		at += (size_t)snprintf(buf + at, n - at, i ? ", %lld" : "%lld", (long long)s->dim[i]);
	if (at < n)
		snprintf(buf + at, n - at, "]");
}

static int size_error(msw_Model *m, const char *what, const rt_Slot *s, size_t nbytes)
{
	char shape[160];
	shape_text(s, shape, sizeof shape);
	return invalid(m, "%s: '%s' is %s, %lld bytes; %zu given", what, s->name, shape,
		       (long long)s->nbytes, nbytes);
}

int msw_set_input(msw_Model *m, const char *name, const void *data, size_t nbytes)
{
	if (!m)
		return MSW_EINVAL;
	begin(m);
	const rt_Slot *s = find(m, "msw_set_input", name);
	if (!s)
		return MSW_EINVAL;
	if (s->kind != RT_SLOT_INPUT)
		return invalid(m, "msw_set_input: '%s' is not an input of the model", name);
	if (!data)
		return invalid(m, "msw_set_input: no data for '%s'", name);
	if (nbytes != (size_t)s->nbytes)
		return size_error(m, "msw_set_input", s, nbytes);
	rt_Tensor t;
	rt_exec_slot_tensor(m->e, s, &t);
	rt_Tensor given = t;
	given.data = (void *)data;
	if (rt_tokens_check(name, &given, s->vocab, &m->diag))
		return MSW_EINVAL;
	memcpy(t.data, data, nbytes);
	return MSW_OK;
}

int msw_run(msw_Model *m)
{
	if (!m)
		return MSW_EINVAL;
	begin(m);
	if (!m->e)
		return invalid(m, "msw_run: the model was not created");
	rt_exec_run(m->e);
	return MSW_OK;
}

int msw_get_output(msw_Model *m, const char *name, void *data, size_t nbytes)
{
	if (!m)
		return MSW_EINVAL;
	begin(m);
	const rt_Slot *s = find(m, "msw_get_output", name);
	if (!s)
		return MSW_EINVAL;
	if (!data)
		return invalid(m, "msw_get_output: nowhere to copy '%s'", name);
	if (nbytes != (size_t)s->nbytes)
		return size_error(m, "msw_get_output", s, nbytes);
	rt_Tensor t;
	rt_exec_slot_tensor(m->e, s, &t);
	memcpy(data, t.data, nbytes);
	return MSW_OK;
}

int msw_tensor(msw_Model *m, const char *name, msw_Tensor *out)
{
	if (!m)
		return MSW_EINVAL;
	begin(m);
	const rt_Slot *s = find(m, "msw_tensor", name);
	if (!s)
		return MSW_EINVAL;
	if (!out)
		return invalid(m, "msw_tensor: nowhere to put the view of '%s'", name);
	rt_Tensor t;
	rt_exec_slot_tensor(m->e, s, &t);
	memset(out, 0, sizeof *out);
	out->name = s->name;
	out->dtype = (msw_DType)s->dtype;
	out->rank = s->rank;
	memcpy(out->dim, s->dim, sizeof out->dim);
	out->numel = rt_numel(&t);
	out->nbytes = (size_t)s->nbytes;
	out->data = t.data;
	return MSW_OK;
}

static rt_Exec *role(msw_Model *m, const char *name)
{
	for (int i = 0; i < m->nprog; i++)
		if (!strcmp(m->prog[i].role, name))
			return m->prog[i].e;
	return NULL;
}

typedef struct Stream {
	void (*on_token)(void *user, int32_t token);
	void *user;
} Stream;

static void stream(void *user, int seq, int32_t token)
{
	const Stream *s = user;
	(void)seq;
	s->on_token(s->user, token);
}

int msw_generate(msw_Model *m, const int32_t *prompt, int64_t nprompt, int64_t max_new,
		 const msw_GenOptions *opts, int32_t *out)
{
	if (!m)
		return MSW_EINVAL;
	begin(m);
	rt_Exec *dec = m->e ? role(m, "decode") : NULL;
	if (!dec)
		return invalid(m, "msw_generate: the model has no decode program (compile it with "
			       "--aot DIR --generate)");
	if (!prompt || nprompt < 1)
		return invalid(m, "msw_generate: no prompt (at least one token)");
	if (max_new < 0 || (max_new > 0 && !out))
		return invalid(m, "msw_generate: nowhere to put %lld tokens", (long long)max_new);
	rt_Decoder dc;
	if (rt_decoder_init(&dc, dec, &m->diag))
		return fail(m, MSW_EFORMAT);
	rt_Tensor pt = {.dtype = RT_I32, .rank = 1, .dim = {nprompt}, .data = (void *)prompt};
	if (rt_tokens_check("prompt", &pt, dc.vocab, &m->diag))
		return MSW_EINVAL;
	msw_GenOptions none = {0};
	const msw_GenOptions *o = opts ? opts : &none;
	if (o->window < 0 || o->window == 1)
		return invalid(m, "msw_generate: a window of %lld positions", (long long)o->window);
	Stream st = {o->on_token, o->user};
	rt_GenOpts go = {
		.sample = {.temperature = o->temperature, .top_k = o->top_k, .top_p = o->top_p,
			   .seed = o->seed},
		.max_new = max_new,
		.window = o->window,
		.prefill = role(m, "prefill"),
		.on_token = o->on_token ? stream : NULL,
		.user = &st,
	};
	rt_GenStats stats;
	if (rt_generate(dec, prompt, nprompt, &go, out, &stats, &m->diag))
		return fail(m, MSW_EINVAL);
	return MSW_OK;
}
