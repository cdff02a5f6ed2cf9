/* test_task_data.c: the task readers, prompts and decision rule
 * (runtime/task*.c) on small inputs written here.
 *
 *   - PubMedQA: questions, contexts joined by spaces, gold from
 *     final_decision, the ground-truth PMIDs in test and the others in
 *     train or dev by hash; LONG_ANSWER never read; JSON syntax errors at
 *     file:line:col with the byte; missing or mistyped fields named with
 *     their entry; a ground-truth PMID absent from ori_pqal.json;
 *   - HoC: the union of sentence hallmarks (case, spacing around AND,
 *     trailing "--", NULL and blank segments), "empty" when none; segment
 *     count against line count; unknown hallmarks at their column;
 *   - medical abstracts: quoted fields with doubled quotes, commas and
 *     CRLF; bad labels, unclosed quotes, missing fields, a bad header;
 *   - rt_task_load: split selection and --limit on a folder, in hash
 *     order, the same every time;
 *   - the prompts and the decision rule (ties, NaN, HoC's "empty");
 *   - rt_task_data_in finds task files by name and place, in folders too. */
#include "../check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/rt.h"

static char dir[64];

static void put(const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void sub(const char *name)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	CHECK(mkdir(path, 0777) == 0);
}

static rt_TaskSet new_set(rt_TaskId id)
{
	rt_TaskSet s = {.info = &rt_tasks[id]};
	arena_init(&s.arena);
	return s;
}

static Source src(const char *name, const char *text)
{
	Source s;
	CHECK(source_from_string(&s, name, text) == 0);
	return s;
}

/* The parse fails and its message contains `want`. */
#define CHECK_ERR(call, want)                                                          \
	do {                                                                           \
		Diag d_;                                                               \
		diag_init(&d_);                                                        \
		rt_TaskSet *set_ = &bad;                                               \
		(void)set_;                                                            \
		int rc_ = (call);                                                      \
		CHECK_MSG(rc_ == -1 && strstr(diag_text(&d_), want), "want '%s', got '%s'", \
			  want, diag_text(&d_));                                       \
		diag_free(&d_);                                                        \
	} while (0)

static const char ori_ok[] =
	"{\n"
	" \"101\": {\"QUESTION\": \"Is A good?\", \"CONTEXTS\": [\"First part.\", \"Second.\"],\n"
	"          \"LONG_ANSWER\": \"Yes it is.\", \"final_decision\": \"yes\"},\n"
	" \"102\": {\"QUESTION\": \"Is B bad?\", \"CONTEXTS\": [\"Only.\"], \"final_decision\": \"maybe\"},\n"
	" \"103\": {\"QUESTION\": \"C?\", \"CONTEXTS\": [\"x\"], \"final_decision\": \"no\"}\n"
	"}\n";

static void test_pubmedqa(void)
{
	rt_TaskSet s = new_set(RT_TASK_PUBMEDQA);
	Source o = src("ori_pqal.json", ori_ok), t = src("test_ground_truth.json", "{\"102\": \"maybe\"}");
	Diag d;
	diag_init(&d);
	CHECK(rt_pubmedqa_parse(&o, &t, &s, &d) == 0);
	CHECK(s.ex.len == 3);
	for (size_t i = 0; i < s.ex.len; i++) {
		const rt_TaskExample *x = rt_task_example(&s, (int64_t)i);
		if (!strcmp(x->id, "101")) {
			CHECK(!strcmp(x->text, "First part. Second."));
			CHECK(!strcmp(x->question, "Is A good?"));
			CHECK(x->gold == 1);
			CHECK(x->split == rt_task_hash_split("101", 3, true));
			CHECK(x->split == RT_SPLIT_TRAIN || x->split == RT_SPLIT_DEV);
		} else if (!strcmp(x->id, "102")) {
			CHECK(x->gold == 4 && x->split == RT_SPLIT_TEST);
		} else {
			CHECK(!strcmp(x->id, "103") && x->gold == 2);
		}
		CHECK(!strstr(x->text, "Yes it is"));   /* LONG_ANSWER */
	}
	source_free(&o);
	source_free(&t);
	rt_task_free(&s);

	rt_TaskSet bad = new_set(RT_TASK_PUBMEDQA);
	Source truth = src("test_ground_truth.json", "{}");
	Source b1 = src("ori_pqal.json", "{\n \"1\": {\"QUESTION\": \"q\",,}\n}");
	CHECK_ERR(rt_pubmedqa_parse(&b1, &truth, set_, &d_),
		  "ori_pqal.json:2:25: error: not valid JSON (at byte 26)");
	Source b2 = src("ori_pqal.json", "{\"1\": {\"CONTEXTS\": [\"c\"], \"final_decision\": \"yes\"},\n"
				 " \"2\": {\"QUESTION\": 3}}");
	CHECK_ERR(rt_pubmedqa_parse(&b2, &truth, set_, &d_),
		  "ori_pqal.json:1:2: error: entry \"1\": QUESTION must be a non-empty string");
	Source b3 = src("ori_pqal.json", "{\"1\": {\"QUESTION\": \"q\", \"CONTEXTS\": [\"c\", 2], "
				 "\"final_decision\": \"yes\"}}");
	CHECK_ERR(rt_pubmedqa_parse(&b3, &truth, set_, &d_),
		  "entry \"1\": CONTEXTS must be a non-empty list of strings");
	Source b4 = src("ori_pqal.json", "{\n\n  \"7\": {\"QUESTION\": \"q\", \"CONTEXTS\": [\"c\"], "
				 "\"final_decision\": \"perhaps\"}}");
	CHECK_ERR(rt_pubmedqa_parse(&b4, &truth, set_, &d_),
		  "ori_pqal.json:3:3: error: entry \"7\": final_decision must be");
	o = src("ori_pqal.json", ori_ok);
	Source t2 = src("test_ground_truth.json", "{\n  \"102\": \"maybe\",\n  \"999\": \"yes\"\n}");
	CHECK_ERR(rt_pubmedqa_parse(&o, &t2, set_, &d_),
		  "test_ground_truth.json:3:3: error: PMID \"999\" is not in ori_pqal.json");
	Source t3 = src("test_ground_truth.json", "{\"101\": \"no\"}");
	CHECK_ERR(rt_pubmedqa_parse(&o, &t3, set_, &d_),
		  "final_decision \"yes\" disagrees with the test ground truth \"no\"");
	Source t4 = src("test_ground_truth.json", "[1]");
	CHECK_ERR(rt_pubmedqa_parse(&o, &t4, set_, &d_), "must be a JSON object keyed by PMID");
	Source t5 = src("test_ground_truth.json", "{} x");
	CHECK_ERR(rt_pubmedqa_parse(&o, &t5, set_, &d_), "junk after the JSON value at byte 3");
	Source *all[] = {&truth, &b1, &b2, &b3, &b4, &t2, &t3, &t4, &t5, &o};
	for (size_t i = 0; i < sizeof all / sizeof *all; i++)
		source_free(all[i]);
	rt_task_free(&bad);
	diag_free(&d);
}

static void test_hoc(void)
{
	rt_TaskSet s = new_set(RT_TASK_HOC);
	Diag d;
	diag_init(&d);
	Source t = src("text/1.txt", "First sentence .\nSecond one .\nThird .\n");
	Source l = src("labels/1.txt", "< <Resisting cell death--Apoptosis ANDsustaining "
			   "proliferative signaling--Growth--<  Cellular energetics-- AND NULL");
	CHECK(rt_hoc_parse("1", &t, &l, &s, &d) == 0);
	Source l2 = src("labels/2.txt", "<NULL<<");
	CHECK(rt_hoc_parse("2", &t, &l2, &s, &d) == 0);
	CHECK(s.ex.len == 2);
	const rt_TaskExample *x = rt_task_example(&s, 0);
	CHECK(!strcmp(x->text, "First sentence . Second one . Third ."));
	CHECK(x->gold == (1u << 1 | 1u << 0 | 1u << 9));   /* resisting, sustaining, energetics */
	CHECK(rt_task_example(&s, 1)->gold == 1u << 10);   /* empty */
	rt_task_free(&s);

	rt_TaskSet bad = new_set(RT_TASK_HOC);
	Source l3 = src("labels/3.txt", "<<");
	CHECK_ERR(rt_hoc_parse("3", &t, &l3, set_, &d_),
		  "labels/3.txt:1:1: error: holds 2 sentence segments ('<') but text/1.txt has 3 lines");
	Source l4 = src("labels/4.txt", "<<  Foo--bar<");
	CHECK_ERR(rt_hoc_parse("4", &t, &l4, set_, &d_),
		  "labels/4.txt:1:5: error: unknown hallmark 'Foo'");
	Source l5 = src("labels/5.txt", "x<<<");
	CHECK_ERR(rt_hoc_parse("5", &t, &l5, set_, &d_), "must start with '<'");
	Source t6 = src("text/6.txt", "");
	CHECK_ERR(rt_hoc_parse("6", &t6, &l5, set_, &d_), "text/6.txt:1:1: error: is empty");
	Source *all[] = {&t, &l, &l2, &l3, &l4, &l5, &t6};
	for (size_t i = 0; i < sizeof all / sizeof *all; i++)
		source_free(all[i]);
	rt_task_free(&bad);
	diag_free(&d);
}

static void test_medabs(void)
{
	rt_TaskSet s = new_set(RT_TASK_MEDABS);
	Diag d;
	diag_init(&d);
	Source c = src("medical_tc_test.csv", "condition_label,medical_abstract\r\n"
			 "3,\"An \"\"apnea\"\" study, with commas.\"\r\n"
			 "5,plain text\n"
			 "1,\"two\nlines\"\n");
	CHECK(rt_medabs_parse(&c, &s, &d) == 0);
	CHECK(s.ex.len == 3);
	CHECK(!strcmp(rt_task_example(&s, 0)->text, "An \"apnea\" study, with commas."));
	CHECK(!strcmp(rt_task_example(&s, 0)->id, "1") && rt_task_example(&s, 0)->gold == 4);
	CHECK(!strcmp(rt_task_example(&s, 1)->text, "plain text") && rt_task_example(&s, 1)->gold == 16);
	CHECK(!strcmp(rt_task_example(&s, 2)->text, "two\nlines") && rt_task_example(&s, 2)->gold == 1);
	CHECK(rt_task_example(&s, 1)->split == rt_task_hash_split("plain text", 10, false));
	source_free(&c);
	rt_task_free(&s);

	rt_TaskSet bad = new_set(RT_TASK_MEDABS);
	static const struct {
		const char *csv, *want;
	} cases[] = {
		{"label,text\n1,a\n", "medical_tc_test.csv:1:1: error: the first line must be the header"},
		{"condition_label,medical_abstract\n1,a\n7,b\n",
		 "medical_tc_test.csv:3:1: error: condition_label must be 1 to 5, got '7'"},
		{"condition_label,medical_abstract\n1,\"open\n", "medical_tc_test.csv:2:3: error: quoted "
		 "field is not closed"},
		{"condition_label,medical_abstract\n1\n", "medical_tc_test.csv:2:2: error: a row is "
		 "'label,abstract'; this one has one field"},
		{"condition_label,medical_abstract\n1,a,b\n", "this one has more fields"},
		{"condition_label,medical_abstract\n1,\"a\"x\n", "2:6: error: a quoted field must end"},
		{"condition_label,medical_abstract\n1,a\"b\n", "2:4: error: a quote inside an unquoted field"},
		{"condition_label,medical_abstract\n2,\n", "2:3: error: the abstract is empty"},
		{"condition_label,medical_abstract\n", "holds no row after the header"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		Source b = src("medical_tc_test.csv", cases[i].csv);
		CHECK_ERR(rt_medabs_parse(&b, set_, &d_), cases[i].want);
		source_free(&b);
		bad.ex.len = 0;
	}
	rt_task_free(&bad);
	diag_free(&d);
}

/* A small medical-abstracts folder: splits partition it, --limit takes a
 * prefix of the hash order, and loading twice gives the same order. */
static void test_load(void)
{
	sub("medical-abstracts-tc");
	char csv[8192] = "condition_label,medical_abstract\n";
	for (int i = 0; i < 60; i++)
		snprintf(csv + strlen(csv), sizeof csv - strlen(csv), "%d,abstract number %d\n",
			 i % 5 + 1, i);
	put("medical-abstracts-tc/medical_tc_test.csv", csv);
	const rt_TaskInfo *t = rt_task_find("medabstracts");
	CHECK(t && t->id == RT_TASK_MEDABS && !rt_task_find("pubmed"));
	Diag d;
	diag_init(&d);
	rt_TaskSet all, part[3], lim, again;
	CHECK(rt_task_load(t, dir, RT_SPLIT_ALL, 0, &all, &d) == 0);
	size_t n = 0;
	for (int k = 0; k < 3; k++) {
		CHECK(rt_task_load(t, dir, (rt_Split)k, 0, &part[k], &d) == 0);
		n += part[k].ex.len;
		CHECK(part[k].ex.len > 0);
		for (size_t i = 0; i < part[k].ex.len; i++)
			CHECK(rt_task_example(&part[k], (int64_t)i)->split == k);
	}
	CHECK(all.ex.len == 60 && n == 60);
	CHECK(rt_task_load(t, dir, RT_SPLIT_ALL, 7, &lim, &d) == 0);
	CHECK(rt_task_load(t, dir, RT_SPLIT_ALL, 0, &again, &d) == 0);
	CHECK(lim.ex.len == 7);
	for (size_t i = 0; i < 60; i++) {
		const rt_TaskExample *a = rt_task_example(&all, (int64_t)i);
		CHECK(!strcmp(a->id, rt_task_example(&again, (int64_t)i)->id));
		if (i < 7)
			CHECK(!strcmp(a->id, rt_task_example(&lim, (int64_t)i)->id));
		if (i > 0)
			CHECK(rt_task_example(&all, (int64_t)i - 1)->order <= a->order);
	}
	rt_TaskSet none;
	CHECK(rt_task_load(&rt_tasks[RT_TASK_PUBMEDQA], dir, RT_SPLIT_TEST, 0, &none, &d) == -1);
	CHECK(strstr(diag_text(&d), "/pubmedqa/ori_pqal.json: error: cannot read"));
	rt_task_free(&none);
	rt_TaskSet *sets[] = {&all, &part[0], &part[1], &part[2], &lim, &again};
	for (size_t i = 0; i < sizeof sets / sizeof *sets; i++)
		rt_task_free(sets[i]);
	diag_free(&d);
}

static void test_prompts(void)
{
	rt_TaskExample x = {.id = "1", .text = "The text.", .question = "Why?"};
	char buf[256];
	size_t n = rt_task_prompt(&rt_tasks[RT_TASK_PUBMEDQA], &x, 0, buf, sizeof buf);
	CHECK(n == strlen("The text.\nQuestion: Why?\nAnswer:") &&
	      !memcmp(buf, "The text.\nQuestion: Why?\nAnswer:", n));
	n = rt_task_prompt(&rt_tasks[RT_TASK_HOC], &x, 2, buf, sizeof buf);
	const char *hoc = "The text.\nQuestion: does this abstract describe genomic instability "
			  "and mutation?\nAnswer:";
	CHECK(n == strlen(hoc) && !memcmp(buf, hoc, n));
	n = rt_task_prompt(&rt_tasks[RT_TASK_MEDABS], &x, 0, buf, sizeof buf);
	CHECK(n == 16 && !memcmp(buf, "The text.\nTopic:", n));
	/* too small a buffer: the length all the same, only cap bytes written */
	memset(buf, '#', sizeof buf);
	CHECK(rt_task_prompt(&rt_tasks[RT_TASK_MEDABS], &x, 0, buf, 4) == 16);
	CHECK(!memcmp(buf, "The ", 4) && buf[4] == '#');
	CHECK(rt_task_prompt(&rt_tasks[RT_TASK_MEDABS], &x, 0, NULL, 0) == 16);
}

static void test_predict(void)
{
	const rt_TaskInfo *p = &rt_tasks[RT_TASK_PUBMEDQA], *h = &rt_tasks[RT_TASK_HOC];
	double s1[] = {-3, -1, -2};
	CHECK(rt_task_predict(p, s1) == 2);                 /* " no" */
	double s2[] = {-1, -1, -2};
	CHECK(rt_task_predict(p, s2) == 1);                 /* tie: the first */
	double s3[] = {NAN, -5, -2};
	CHECK(rt_task_predict(p, s3) == 4);                 /* NaN never wins */
	double s4[20];
	for (int q = 0; q < 10; q++) {
		s4[2 * q] = -2;       /* yes */
		s4[2 * q + 1] = -1;   /* no */
	}
	CHECK(rt_task_predict(h, s4) == 1u << 10);          /* no hallmark: empty */
	s4[2 * 3] = -0.5;
	s4[2 * 9] = -0.9;
	CHECK(rt_task_predict(h, s4) == (1u << 3 | 1u << 9));
	s4[2 * 3] = -1;                                     /* a tie is not a yes */
	CHECK(rt_task_predict(h, s4) == 1u << 9);
	CHECK(rt_task_max_label(p) == 6 && rt_task_max_label(h) == 4 &&
	      rt_task_max_label(&rt_tasks[RT_TASK_MEDABS]) == 32);
}

static void test_data_in(void)
{
	char file[512];
	sub("c");
	sub("c/pubmedqa");
	sub("c/hoc");
	sub("c/hoc/text");
	sub("c/hoc/labels");
	sub("c/plain");
	put("c/plain/a.txt", "text");
	put("c/hoc/text/123.txt", "s .\n");
	char p[256];
	snprintf(p, sizeof p, "%s/c/plain", dir);
	CHECK(rt_task_data_in(p, file, sizeof file) == NULL && file[0] == 0);
	snprintf(p, sizeof p, "%s/c/hoc/text/123.txt", dir);
	CHECK(rt_task_data_in(p, file, sizeof file) == NULL);   /* no labels beside it */
	put("c/hoc/labels/123.txt", "<");
	CHECK(rt_task_data_in(p, file, sizeof file) == &rt_tasks[RT_TASK_HOC]);
	CHECK(!strcmp(file, p));
	put("c/pubmedqa/ori_pqal.json", "{}");
	snprintf(p, sizeof p, "%s/c/pubmedqa", dir);
	CHECK(rt_task_data_in(p, file, sizeof file) == &rt_tasks[RT_TASK_PUBMEDQA]);
	CHECK(strstr(file, "/c/pubmedqa/ori_pqal.json") != NULL);
	snprintf(p, sizeof p, "%s/c", dir);
	CHECK(rt_task_data_in(p, file, sizeof file) != NULL);
	put("c/medical_tc_test.csv", "x");
	snprintf(p, sizeof p, "%s/c/medical_tc_test.csv", dir);
	CHECK(rt_task_data_in(p, file, sizeof file) == &rt_tasks[RT_TASK_MEDABS]);
	CHECK(rt_task_data_in("/nonexistent/path", file, sizeof file) == NULL);
}

int main(void)
{
	if (check_tmpdir(dir, "task")) {
		fprintf(stderr, "cannot make a scratch folder\n");
		return 1;
	}
	RUN(test_pubmedqa);
	RUN(test_hoc);
	RUN(test_medabs);
	RUN(test_load);
	RUN(test_prompts);
	RUN(test_predict);
	RUN(test_data_in);
	check_rmdir(dir);
	return check_report();
}
