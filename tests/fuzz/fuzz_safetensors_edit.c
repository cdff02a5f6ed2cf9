/* fuzz_safetensors_edit.c: structure-aware libFuzzer target for the
 * safetensors reader, starting from a full-size valid checkpoint.
 *
 * fuzz_safetensors.c mutates raw bytes, so with inputs capped near 4 KB it
 * barely reaches a valid file. Here the input is an edit script applied
 * to a real checkpoint (tests/fixtures/gpt_small/weights.safetensors, 27
 * tensors, 473 KB; MSW_FUZZ_BASE=path picks another): each edit changes
 * one field of the parsed header (a dtype, a dimension, an offset, a name,
 * an entry dropped or duplicated, a junk key) or the framing (the declared
 * header length, the data section cut or extended), and the header is
 * written out again as JSON. So every input is a nearly valid file, and
 * the reader's checks of sizes, offsets, overlaps, dtypes and names are
 * what gets explored. The reader must load the result (and then satisfy
 * its guarantees) or refuse it with a message; never crash or read out of
 * bounds.
 *
 * Script bytes: op, tensor index, then a 4-byte little-endian argument;
 * at most MAX_EDITS edits. Built with -DMSW_FUZZ=ON like the others; the
 * ordinary test run replays tests/fuzz/corpus/safetensors_edit through the
 * same function (FUZZ_ENTRY renamed). */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"
#include "slurp.h"

#ifndef MSW_SOURCE_DIR
#define MSW_SOURCE_DIR "."
#endif

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
int FUZZ_ENTRY(const uint8_t *data, size_t size);
#endif

enum { EDIT_MAX_TENSORS = 256, EDIT_MAX_RANK = 8, MAX_EDITS = 16, EDIT_NAME_MAX = 128 };

typedef struct EditTensor {
	char name[EDIT_NAME_MAX];
	char dtype[16];
	int rank;
	long long dim[EDIT_MAX_RANK];
	long long begin, end;
	bool drop;
} EditTensor;

typedef struct EditFile {
	EditTensor t[EDIT_MAX_TENSORS];
	int n;
	char junk[64];            /* an extra top-level key and value, or "" */
	long long header_delta;   /* added to the declared header length */
	long long data_delta;     /* bytes cut (< 0) from or added to the data */
} EditFile;

static struct {
	bool loaded;
	EditFile file;
	uint8_t *data;            /* the data section */
	size_t ndata;
} base;

static int parse_entry(EditTensor *t, const cJSON *e)
{
	const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
	const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
	const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
	if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || cJSON_GetArraySize(off) != 2 ||
	    cJSON_GetArraySize(sh) > EDIT_MAX_RANK)
		return -1;
	snprintf(t->name, sizeof t->name, "%s", e->string);
	snprintf(t->dtype, sizeof t->dtype, "%s", dt->valuestring);
	t->rank = cJSON_GetArraySize(sh);
	for (int i = 0; i < t->rank; i++)
		t->dim[i] = (long long)cJSON_GetArrayItem(sh, i)->valuedouble;
	t->begin = (long long)cJSON_GetArrayItem(off, 0)->valuedouble;
	t->end = (long long)cJSON_GetArrayItem(off, 1)->valuedouble;
	return 0;
}

/* The base checkpoint's header as entries, and its data section. */
static int load_base(void)
{
	const char *path = getenv("MSW_FUZZ_BASE");
	size_t n = 0;
	uint8_t *p = fuzz_slurp(path ? path : MSW_SOURCE_DIR "/tests/fixtures/gpt_small/weights.safetensors",
			   &n);
	uint64_t hlen = 0;
	if (!p || n < 8)
		goto bad;
	memcpy(&hlen, p, 8);
	if (hlen > n - 8)
		goto bad;
	cJSON *h = cJSON_ParseWithLength((const char *)p + 8, (size_t)hlen);
	for (const cJSON *e = h ? h->child : NULL; e && base.file.n < EDIT_MAX_TENSORS; e = e->next)
		if (strcmp(e->string, "__metadata__") && !parse_entry(&base.file.t[base.file.n], e))
			base.file.n++;
	cJSON_Delete(h);
	base.ndata = n - 8 - (size_t)hlen;
	base.data = malloc(base.ndata ? base.ndata : 1);
	if (!base.data || !base.file.n)
		goto bad;
	memcpy(base.data, p + 8 + hlen, base.ndata);
	free(p);
	base.loaded = true;
	return 0;
bad:
	fprintf(stderr, "fuzz_safetensors_edit: cannot read the base checkpoint\n");
	free(p);
	return -1;
}

static const char *const dtypes[] = {"F32", "F16", "BF16", "F64", "I32", "I64", "U8", "BOOL",
				     "I8", "XX", "", "f32"};
static const char *const junk[] = {"", "\"x\": 1", "\"__metadata__\": {\"k\": \"v\"}",
				   "\"__metadata__\": 7", "\"y\": [[[]]]", "\"z\": {\"dtype\": \"F32\"}"};

/* One edit: op picks the field, arg its new value (small values are the
 * interesting ones: off by one, zero, negative; large ones overflow). */
static void apply(EditFile *f, uint8_t op, uint8_t which, int32_t arg)
{
	EditTensor *t = &f->t[which % f->n], *u = &f->t[(which + 1) % f->n];
	long long small = arg % 9 - 4;
	switch (op % 14) {
	case 0: snprintf(t->dtype, sizeof t->dtype, "%s", dtypes[(uint32_t)arg % 12]); break;
	case 1: if (t->rank) t->dim[(uint32_t)arg % t->rank] += small; break;
	case 2: if (t->rank) t->dim[(uint32_t)arg % t->rank] = arg; break;
	case 3: if (t->rank < EDIT_MAX_RANK) t->dim[t->rank++] = 1 + (uint32_t)arg % 3; break;
	case 4: if (t->rank) t->rank--; break;
	case 5: t->begin += small; break;
	case 6: t->end += small; break;
	case 7: t->begin = u->begin, t->end = u->end; break;   /* overlap another */
	case 8: t->end = t->begin + arg; break;
	case 9: snprintf(t->name, sizeof t->name, "%s", arg % 3 ? u->name : ""); break;
	case 10: t->drop = !t->drop; break;
	case 11: snprintf(f->junk, sizeof f->junk, "%s", junk[(uint32_t)arg % 6]); break;
	case 12: f->header_delta = small; break;
	default: f->data_delta = arg % 3 ? small : arg % 4096; break;
	}
}

/* The header as JSON, padded with spaces to a multiple of 8; NULL if it
 * does not fit. */
static char *header_text(const EditFile *f, size_t *len)
{
	size_t cap = (size_t)f->n * 256 + 256, n = 0;
	char *s = malloc(cap);
	if (!s)
		return NULL;
	n += (size_t)snprintf(s + n, cap - n, "{%s", f->junk);
	bool first = !*f->junk;
	for (int i = 0; i < f->n; i++) {
		const EditTensor *t = &f->t[i];
		if (t->drop)
			continue;
		n += (size_t)snprintf(s + n, cap - n, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[",
				      first ? "" : ",", t->name, t->dtype);
		for (int k = 0; k < t->rank; k++)
			n += (size_t)snprintf(s + n, cap - n, "%s%lld", k ? "," : "", t->dim[k]);
		n += (size_t)snprintf(s + n, cap - n, "],\"data_offsets\":[%lld,%lld]}", t->begin,
				      t->end);
		first = false;
	}
	n += (size_t)snprintf(s + n, cap - n, "}");
	while (n % 8 && n + 1 < cap)
		s[n++] = ' ';
	*len = n;
	return s;
}

static void check_loaded(const rt_TensorFile *f)
{
	for (int i = 0; i < f->ntensor; i++) {
		const rt_Tensor *t = &f->tensor[i].t;
		if ((uintptr_t)t->data % RT_ALIGN || rt_tensorfile_find(f, f->tensor[i].name) != &f->tensor[i])
			abort();
		volatile uint8_t sink = 0;   /* ASan sees any bad extent */
		const uint8_t *p = t->data;
		for (int64_t k = 0; k < rt_nbytes(t); k++)
			sink ^= p[k];
		(void)sink;
	}
}

/* The file an edit script makes of the base checkpoint (malloc'ed), or
 * NULL when it makes none (no base, or data cut below nothing). */
static uint8_t *edit_build(const uint8_t *script, size_t size, size_t *total)
{
	if (!base.loaded && load_base())
		return NULL;
	static EditFile f;
	f = base.file;
	for (size_t i = 0; i + 6 <= size && i / 6 < MAX_EDITS; i += 6) {
		int32_t arg;
		memcpy(&arg, script + i + 2, 4);
		apply(&f, script[i], script[i + 1], arg);
	}
	size_t hlen;
	char *h = header_text(&f, &hlen);
	long long ndata = (long long)base.ndata + f.data_delta;
	uint8_t *file = h && ndata >= 0 ? calloc(8 + hlen + (size_t)ndata, 1) : NULL;
	if (file) {
		uint64_t declared = (uint64_t)((long long)hlen + f.header_delta);
		memcpy(file, &declared, 8);
		memcpy(file + 8, h, hlen);
		memcpy(file + 8 + hlen, base.data,
		       (size_t)ndata < base.ndata ? (size_t)ndata : base.ndata);
		*total = 8 + hlen + (size_t)ndata;
	}
	free(h);
	return file;
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	size_t total;
	uint8_t *file = edit_build(data, size, &total);
	if (!file)
		return 0;
	rt_TensorFile tf;
	Diag d;
	diag_init(&d);
	if (rt_safetensors_read_mem("edit.safetensors", file, total, &tf, &d) == 0) {
		check_loaded(&tf);
		rt_tensorfile_free(&tf);
	} else if (!*diag_text(&d)) {
		abort();   /* refused without saying why */
	}
	diag_free(&d);
	free(file);
	return 0;
}
