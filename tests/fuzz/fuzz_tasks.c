/* fuzz_tasks.c: libFuzzer target for the task readers (runtime/task_*.c).
 *
 * The first byte picks the reader (mod 3): PubMedQA (ori_pqal.json, then
 * after the first NUL byte test_ground_truth.json), HoC (text/1.txt, then
 * after the first NUL labels/1.txt) or medical abstracts (the CSV). Any
 * bytes must either load, and then every example has an id, a text, a gold
 * set of exactly one class (several, for HoC) within the task's classes,
 * a split, and prompts that can be built; or fail with a message that
 * names one of the files. Never crash, hang, leak or read out of bounds.
 * Built with -DMSW_FUZZ=ON; the ordinary test run replays
 * tests/fuzz/corpus/tasks through the same function (see
 * fuzz_safetensors.c for the FUZZ_ENTRY renaming). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
int FUZZ_ENTRY(const uint8_t *data, size_t size);
#endif

static void check_example(const rt_TaskInfo *t, const rt_TaskExample *x)
{
	uint32_t all = t->nclass >= 32 ? ~0u : (1u << t->nclass) - 1;
	if (!x->id || !x->text || !x->gold || (x->gold & ~all) || x->split >= RT_SPLIT_ALL)
		abort();
	if (!t->multilabel && (x->gold & (x->gold - 1)))
		abort();
	if (t->id == RT_TASK_PUBMEDQA && !x->question)
		abort();
	char buf[64];
	for (int q = 0; q < t->nquery; q++)
		if (rt_task_prompt(t, x, q, buf, sizeof buf) < strlen(x->text))
			abort();
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	rt_TaskId id = (rt_TaskId)(data[0] % 3);
	const rt_TaskInfo *t = &rt_tasks[id];
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	const char *sep = id == RT_TASK_MEDABS ? NULL : memchr(p, 0, n);
	size_t n1 = sep ? (size_t)(sep - p) : n;
	static const char *const names[3][2] = {
		{"ori_pqal.json", "test_ground_truth.json"},
		{"text/1.txt", "labels/1.txt"},
		{"medical_tc_test.csv", ""},
	};
	Source a, b;
	if (source_from_mem(&a, names[id][0], p, n1))
		return 0;
	if (source_from_mem(&b, names[id][1], sep ? sep + 1 : "", sep ? n - n1 - 1 : 0)) {
		source_free(&a);
		return 0;
	}
	rt_TaskSet s = {.info = t};
	arena_init(&s.arena);
	Diag d;
	diag_init(&d);
	int rc = id == RT_TASK_PUBMEDQA ? rt_pubmedqa_parse(&a, &b, &s, &d)
		 : id == RT_TASK_HOC    ? rt_hoc_parse("1", &a, &b, &s, &d)
					: rt_medabs_parse(&a, &s, &d);
	if (rc == 0) {
		for (size_t i = 0; i < s.ex.len; i++)
			check_example(t, rt_task_example(&s, (int64_t)i));
		if (d.nerror)
			abort();
	} else {
		const char *msg = diag_text(&d);
		bool named = !strncmp(msg, names[id][0], strlen(names[id][0])) ||
			     (names[id][1][0] && !strncmp(msg, names[id][1], strlen(names[id][1]))) ||
			     strstr(msg, "out of memory");
		if (d.nerror == 0 || !named)
			abort();
	}
	rt_task_free(&s);
	diag_free(&d);
	source_free(&a);
	source_free(&b);
	return 0;
}
