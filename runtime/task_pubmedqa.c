/* task_pubmedqa.c: PubMedQA's labelled set PQA-L (pubmedqa/ in the data).
 *
 *   ori_pqal.json           {PMID: {"QUESTION": str, "CONTEXTS": [str, ...],
 *                            "final_decision": "yes"|"no"|"maybe", ...}, ...}
 *   test_ground_truth.json  {PMID: "yes"|"no"|"maybe", ...}: the official
 *                           500-question test split
 *
 * The input is the question and the contexts (the abstract without its
 * conclusion); LONG_ANSWER, the conclusion, is never read, since it states
 * the answer. Every field used is checked; an error names the file, the
 * line and column of the entry (or of the JSON syntax error) and what is
 * wrong with it. A test PMID's label is the ground-truth file's, and must
 * agree with final_decision. */
#include "rt.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static void json_hooks(void)
{
	static cJSON_Hooks hooks = {mem_alloc, mem_free};
	cJSON_InitHooks(&hooks);
}

/* The byte where `"key"` first appears followed by ':' (where an entry
 * starts), for messages; the start of the file if it is not found. */
static size_t key_at(const Source *src, const char *key)
{
	size_t k = strlen(key);
	for (const char *p = src->text; (p = strchr(p, '"')); p++) {
		if (!strncmp(p + 1, key, k) && p[k + 1] == '"') {
			const char *q = p + k + 2;
			q += strspn(q, " \t\r\n");
			if (*q == ':')
				return (size_t)(p - src->text);
		}
	}
	return 0;
}

static cJSON *parse(const Source *src, Diag *d)
{
	size_t deep = rt_json_too_deep(src->text, src->len);
	if (deep != SIZE_MAX)
		return rt_task_error(d, src, deep, "nests arrays and objects deeper than the JSON "
				     "parser's limit of %d levels (at byte %zu)", RT_JSON_MAX_DEPTH,
				     deep), NULL;
	json_hooks();
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(src->text, src->len, &end, 0);
	if (!root) {
		size_t at = end && end >= src->text ? (size_t)(end - src->text) : 0;
		return rt_task_error(d, src, at, "not valid JSON (at byte %zu)", at), NULL;
	}
	for (; end < src->text + src->len; end++)
		if (!strchr(" \t\r\n", *end)) {
			size_t at = (size_t)(end - src->text);
			rt_task_error(d, src, at, "junk after the JSON value at byte %zu", at);
			cJSON_Delete(root);
			return NULL;
		}
	if (!cJSON_IsObject(root)) {
		rt_task_error(d, src, 0, "must be a JSON object keyed by PMID");
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

/* The class of "yes" / "no" / "maybe", or -1. */
static int decision(const cJSON *v)
{
	const rt_TaskInfo *t = &rt_tasks[RT_TASK_PUBMEDQA];
	for (int c = 0; cJSON_IsString(v) && c < t->nclass; c++)
		if (!strcmp(v->valuestring, t->class_name[c]))
			return c;
	return -1;
}

/* The contexts joined by single spaces, into buf (mem_alloc'd). */
static char *join(const cJSON *ctx, size_t *len)
{
	size_t n = 0;
	for (const cJSON *c = ctx->child; c; c = c->next)
		n += strlen(c->valuestring) + 1;
	char *buf = mem_alloc(n + 1), *p = buf;
	if (!buf)
		return NULL;
	for (const cJSON *c = ctx->child; c; c = c->next) {
		size_t k = strlen(c->valuestring);
		if (p > buf)
			*p++ = ' ';
		memcpy(p, c->valuestring, k);
		p += k;
	}
	*p = 0;
	*len = (size_t)(p - buf);
	return buf;
}

static int entry(const Source *ori, const cJSON *e, const cJSON *truth, rt_TaskSet *s,
		 Diag *d)
{
	const char *id = e->string;
	if (!cJSON_IsObject(e))
		return rt_task_error(d, ori, key_at(ori, id), "entry \"%s\" must be an object", id);
	const cJSON *q = cJSON_GetObjectItemCaseSensitive(e, "QUESTION");
	const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(e, "CONTEXTS");
	const cJSON *fd = cJSON_GetObjectItemCaseSensitive(e, "final_decision");
	if (!cJSON_IsString(q) || !q->valuestring[0])
		return rt_task_error(d, ori, key_at(ori, id), "entry \"%s\": QUESTION must be a "
				     "non-empty string", id);
	bool ok = cJSON_IsArray(ctx) && ctx->child;
	for (const cJSON *c = ok ? ctx->child : NULL; c; c = c->next)
		ok &= cJSON_IsString(c);
	if (!ok)
		return rt_task_error(d, ori, key_at(ori, id), "entry \"%s\": CONTEXTS must be a "
				     "non-empty list of strings", id);
	int gold = decision(fd);
	if (gold < 0)
		return rt_task_error(d, ori, key_at(ori, id), "entry \"%s\": final_decision must "
				     "be \"yes\", \"no\" or \"maybe\"", id);
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(truth, id);
	if (t && decision(t) != gold)
		return rt_task_error(d, ori, key_at(ori, id), "entry \"%s\": final_decision "
				     "\"%s\" disagrees with the test ground truth \"%s\"", id,
				     fd->valuestring, t->valuestring);
	rt_Split split = t ? RT_SPLIT_TEST : rt_task_hash_split(id, strlen(id), true);
	size_t n = 0;
	char *text = join(ctx, &n);
	if (!text)
		return diag_error(d, (SrcLoc){0}, "out of memory");
	int rc = rt_task_add(s, id, text, n, q->valuestring, 1u << gold, split, d);
	mem_free(text);
	return rc;
}

int rt_pubmedqa_parse(const Source *ori, const Source *truth, rt_TaskSet *s, Diag *d)
{
	cJSON *o = NULL, *t = parse(truth, d);
	int rc = -1;
	if (!t || !(o = parse(ori, d)))
		goto done;
	/* the labels, the entries, then whether every test PMID has one */
	for (const cJSON *g = t->child; g; g = g->next)
		if (decision(g) < 0) {
			rt_task_error(d, truth, key_at(truth, g->string), "\"%s\" must be \"yes\", "
				      "\"no\" or \"maybe\"", g->string);
			goto done;
		}
	for (const cJSON *e = o->child; e; e = e->next)
		if (entry(ori, e, t, s, d))
			goto done;
	for (const cJSON *g = t->child; g; g = g->next)
		if (!cJSON_GetObjectItemCaseSensitive(o, g->string)) {
			rt_task_error(d, truth, key_at(truth, g->string), "PMID \"%s\" is not in "
				      "%s", g->string, ori->name);
			goto done;
		}
	rc = 0;
done:
	cJSON_Delete(o);
	cJSON_Delete(t);
	return rc;
}

static int load(const char *dir, const char *name, Source *src, Diag *d)
{
	char path[4096];
	const char *why = NULL;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (source_load(src, path, &why))
		return rt_file_error(d, path, "cannot read: %s", why ? why : "unknown error");
	return 0;
}

int rt_pubmedqa_read(const char *dir, rt_TaskSet *s, Diag *d)
{
	Source ori = {0}, truth = {0};
	int rc = -1;
	if (!load(dir, "ori_pqal.json", &ori, d) && !load(dir, "test_ground_truth.json", &truth, d))
		rc = rt_pubmedqa_parse(&ori, &truth, s, d);
	source_free(&ori);
	source_free(&truth);
	return rc;
}
