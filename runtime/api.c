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

struct msw_Model {
	const rt_Image *img;
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
	if (rt_image_program(img, img->prog[0].role, &m->p, &m->diag))
		return fail(m, MSW_EFORMAT);
	int threads = opts ? opts->threads : 0;
	if (threads < 0)
		return invalid(m, "msw_create: %d threads", threads);
	m->pool = rt_pool_create(threads);
	if (!m->pool) {
		diag_error(&m->diag, (SrcLoc){0}, "cannot start %d threads (out of memory)", threads);
		return MSW_ENOMEM;
	}
	int rc = opts && opts->arena
		 ? rt_exec_create_in(m->p, m->pool, opts->arena, opts->arena_size, &m->e, &m->diag)
		 : rt_exec_create(m->p, m->pool, &m->e, &m->diag);
	if (rc)
		return fail(m, opts && opts->arena ? MSW_EINVAL : MSW_EFORMAT);
	if (img->weights) {
		char name[256];
		snprintf(name, sizeof name, "%s.o (embedded weights)", img->name ? img->name : "model");
		rc = msw_load_weights_mem(m, img->weights, (size_t)img->weights_len, name);
		if (rc)
			return rc;
	}
	return MSW_OK;
}

void msw_destroy(msw_Model *m)
{
	if (!m)
		return;
	rt_exec_destroy(m->e);
	rt_pool_destroy(m->pool);
	rt_program_destroy(m->p);
	diag_free(&m->diag);
	mem_free(m);
}

const char *msw_errmsg(const msw_Model *m)
{
	return m ? diag_text(&m->diag) : "out of memory (no model)";
}

static int load(msw_Model *m, rt_TensorFile *f, const char *name)
{
	int rc = rt_load_params_from(m->e, f, name, 0, &m->diag) ? fail(m, MSW_EMISMATCH) : MSW_OK;
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
