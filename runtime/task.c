/* task.c: what a task is: its classes, its label texts, its prompts, its
 * splits and its decision rule; loading a split; and the check that keeps
 * evaluation text out of pre-training.
 *
 * The prompts put the document first and the question last, right before
 * the answer, because a prompt longer than the model's window is cut from
 * the left (task_score.c): what is lost is the start of the abstract, never
 * the question. Byte-level models see the bytes as they are; no text is
 * normalised. Splits and the serving order are hashes of stable ids (PMID,
 * or the abstract's text where the data has no id), so they do not depend
 * on file order, and a duplicated abstract falls in one split only. */
#include "rt.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *const rt_split_name[RT_SPLIT_COUNT] = {"train", "dev", "test", "all"};

/* The ten hallmarks in the order of their document counts (the HoC
 * README), as BioGPT's scorer spells them; "empty" last. */
const rt_TaskInfo rt_tasks[RT_TASK_COUNT] = {
	[RT_TASK_PUBMEDQA] = {
		.id = RT_TASK_PUBMEDQA, .name = "pubmedqa", .dir = "pubmedqa",
		.nclass = 3, .class_name = {"yes", "no", "maybe"},
		.nlabel = 3, .label = {" yes", " no", " maybe"}, .nquery = 1,
	},
	[RT_TASK_HOC] = {
		.id = RT_TASK_HOC, .name = "hoc", .dir = "hoc", .multilabel = true,
		.nclass = 11,
		.class_name = {"sustaining proliferative signaling", "resisting cell death",
			       "genomic instability and mutation",
			       "activating invasion and metastasis", "tumor promoting inflammation",
			       "evading growth suppressors", "inducing angiogenesis",
			       "enabling replicative immortality", "avoiding immune destruction",
			       "cellular energetics", "empty"},
		.nlabel = 2, .label = {" yes", " no"}, .nquery = 10,
	},
	[RT_TASK_MEDABS] = {
		.id = RT_TASK_MEDABS, .name = "medabstracts", .dir = "medical-abstracts-tc",
		.nclass = 5,
		.class_name = {"neoplasms", "digestive system diseases", "nervous system diseases",
			       "cardiovascular diseases", "general pathological conditions"},
		.nlabel = 5,
		.label = {" neoplasms", " digestive system diseases", " nervous system diseases",
			  " cardiovascular diseases", " general pathological conditions"},
		.nquery = 1,
	},
};

const rt_TaskInfo *rt_task_find(const char *name)
{
	for (int i = 0; i < RT_TASK_COUNT; i++)
		if (!strcmp(name, rt_tasks[i].name))
			return &rt_tasks[i];
	return NULL;
}

/* Seeds of the two hashes of an id: its split, and its place in the order. */
enum { SPLIT_SEED = 0, ORDER_SEED = 1 };

rt_Split rt_task_hash_split(const char *id, size_t len, bool pubmedqa)
{
	uint64_t b = hash64(id, len, SPLIT_SEED) % 10;
	if (pubmedqa)
		return b == 0 ? RT_SPLIT_DEV : RT_SPLIT_TRAIN;
	return b < 7 ? RT_SPLIT_TRAIN : b == 7 ? RT_SPLIT_DEV : RT_SPLIT_TEST;
}

int rt_task_add(rt_TaskSet *s, const char *id, const char *text, size_t ntext,
		const char *question, uint32_t gold, rt_Split split, Diag *d)
{
	rt_TaskExample *x = vec_push(&s->ex, sizeof *x);
	if (!x)
		return diag_error(d, (SrcLoc){0}, "out of memory");
	x->id = arena_strdup(&s->arena, id);
	x->text = arena_strndup(&s->arena, text, ntext);
	x->question = question ? arena_strdup(&s->arena, question) : NULL;
	if (!x->id || !x->text || (question && !x->question))
		return diag_error(d, (SrcLoc){0}, "out of memory");
	x->gold = gold;
	x->split = (uint8_t)split;
	x->order = hash64(id, strlen(id), ORDER_SEED);
	return 0;
}

/* Lines longer than this are not quoted under the message (a CSV record
 * holds a whole abstract). */
enum { QUOTE_MAX = 160 };

int rt_task_error(Diag *d, const Source *src, size_t at, const char *fmt, ...)
{
	uint32_t line = 1, col = 1;
	size_t bol = 0;
	if (at > src->len)
		at = src->len;
	for (size_t i = 0; i < at; i++)
		if (src->text[i] == '\n') {
			line++;
			bol = i + 1;
		}
	col = (uint32_t)(at - bol + 1);
	size_t eol = bol;
	while (eol < src->len && src->text[eol] != '\n')
		eol++;
	Source bare = {.name = src->name};
	SrcLoc loc = {.src = eol - bol <= QUOTE_MAX ? src : &bare, .line = line, .col = col};
	va_list ap;
	va_start(ap, fmt);
	diag_verror(d, loc, fmt, ap);
	va_end(ap);
	return -1;
}

static int by_order(const void *a, const void *b)
{
	const rt_TaskExample *x = a, *y = b;
	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return strcmp(x->id, y->id);
}

int rt_task_load(const rt_TaskInfo *t, const char *root, rt_Split split, int64_t limit,
		 rt_TaskSet *out, Diag *d)
{
	memset(out, 0, sizeof *out);
	out->info = t;
	arena_init(&out->arena);
	size_t n = strlen(root) + strlen(t->dir) + 2;
	char *dir = mem_alloc(n);
	if (!dir)
		return diag_error(d, (SrcLoc){0}, "out of memory");
	snprintf(dir, n, "%s/%s", root, t->dir);
	int rc = t->id == RT_TASK_PUBMEDQA ? rt_pubmedqa_read(dir, out, d)
		 : t->id == RT_TASK_HOC    ? rt_hoc_read(dir, out, d)
					   : rt_medabs_read(dir, out, d);
	mem_free(dir);
	if (rc)
		return -1;
	size_t k = 0;
	for (size_t i = 0; i < out->ex.len; i++)
		if (split == RT_SPLIT_ALL || rt_task_example(out, (int64_t)i)->split == split)
			*rt_task_example(out, (int64_t)k++) = *rt_task_example(out, (int64_t)i);
	out->ex.len = k;
	qsort(out->ex.data, out->ex.len, sizeof(rt_TaskExample), by_order);
	if (limit > 0 && (size_t)limit < out->ex.len)
		out->ex.len = (size_t)limit;
	return 0;
}

void rt_task_free(rt_TaskSet *s)
{
	vec_free(&s->ex);
	arena_free(&s->arena);
	memset(s, 0, sizeof *s);
}

/* Appends to buf what fits, and counts all of it. */
static void put(char *buf, size_t cap, size_t *at, const char *s)
{
	size_t n = strlen(s);
	if (*at < cap)
		memcpy(buf + *at, s, *at + n <= cap ? n : cap - *at);
	*at += n;
}

/* The prompts (docs/tasks.md quotes them):
 *   pubmedqa      "<contexts>\nQuestion: <question>\nAnswer:"
 *   hoc           "<abstract>\nQuestion: does this abstract describe <hallmark>?\nAnswer:"
 *   medabstracts  "<abstract>\nTopic:" */
size_t rt_task_prompt(const rt_TaskInfo *t, const rt_TaskExample *x, int q, char *buf,
		      size_t cap)
{
	size_t at = 0;
	put(buf, cap, &at, x->text);
	switch (t->id) {
	case RT_TASK_PUBMEDQA:
		put(buf, cap, &at, "\nQuestion: ");
		put(buf, cap, &at, x->question ? x->question : "");
		put(buf, cap, &at, "\nAnswer:");
		break;
	case RT_TASK_HOC:
		put(buf, cap, &at, "\nQuestion: does this abstract describe ");
		put(buf, cap, &at, t->class_name[q]);
		put(buf, cap, &at, "?\nAnswer:");
		break;
	default:
		put(buf, cap, &at, "\nTopic:");
		break;
	}
	return at;
}

uint32_t rt_task_predict(const rt_TaskInfo *t, const double *score)
{
	if (t->multilabel) {
		uint32_t set = 0;
		for (int q = 0; q < t->nquery; q++)
			if (score[q * t->nlabel] > score[q * t->nlabel + 1])   /* " yes" > " no" */
				set |= 1u << q;
		return set ? set : 1u << (t->nclass - 1);
	}
	int best = 0;
	for (int l = 1; l < t->nlabel; l++)
		if (score[l] > score[best] || (score[best] != score[best] && score[l] == score[l]))
			best = l;
	return 1u << best;
}

/* --- evaluation text in pre-training data --- */

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

/* A HoC text file: <folder>/text/<digits>.txt with <folder>/labels/<same>. */
static bool hoc_text_file(const char *path)
{
	const char *b = base_name(path);
	size_t nb = strlen(b), nd = strspn(b, "0123456789");
	if (nd == 0 || nb != nd + 4 || strcmp(b + nd, ".txt"))
		return false;
	size_t dl = (size_t)(b - path);   /* ".../text/" */
	if (dl < 5 || strncmp(b - 5, "text/", 5) || (dl > 5 && b[-6] != '/'))
		return false;
	char lab[4096];
	int n = snprintf(lab, sizeof lab, "%.*slabels/%s", (int)(dl - 5), path, b);
	struct stat st;
	return n > 0 && (size_t)n < sizeof lab && !stat(lab, &st) && S_ISREG(st.st_mode);
}

static const rt_TaskInfo *task_file(const char *path)
{
	const char *b = base_name(path);
	if (!strcmp(b, "ori_pqal.json") || !strcmp(b, "test_ground_truth.json"))
		return &rt_tasks[RT_TASK_PUBMEDQA];
	if (!strcmp(b, "medical_tc_test.csv") || !strcmp(b, "medical_tc_train.csv"))
		return &rt_tasks[RT_TASK_MEDABS];
	if (hoc_text_file(path))
		return &rt_tasks[RT_TASK_HOC];
	return NULL;
}

enum { WALK_DEPTH = 32 };   /* as rt_data_load: also stops link cycles */

static const rt_TaskInfo *walk(const char *path, int depth, char *file, size_t n)
{
	struct stat st;
	if (stat(path, &st))
		return NULL;
	if (!S_ISDIR(st.st_mode)) {
		const rt_TaskInfo *t = S_ISREG(st.st_mode) ? task_file(path) : NULL;
		if (t)
			snprintf(file, n, "%s", path);
		return t;
	}
	DIR *dp = depth < WALK_DEPTH ? opendir(path) : NULL;
	if (!dp)
		return NULL;
	const rt_TaskInfo *t = NULL;
	struct dirent *de;
	while (!t && (de = readdir(dp))) {
		if (de->d_name[0] == '.')
			continue;
		size_t len = strlen(path) + strlen(de->d_name) + 2;
		char *sub = mem_alloc(len);
		if (!sub)
			break;
		snprintf(sub, len, "%s/%s", path, de->d_name);
		t = walk(sub, depth + 1, file, n);
		mem_free(sub);
	}
	closedir(dp);
	return t;
}

const rt_TaskInfo *rt_task_data_in(const char *path, char *file, size_t n)
{
	if (n)
		file[0] = 0;
	return walk(path, 0, file, n);
}
