/* test_fuzz_corpus.c: replay the saved fuzz corpus in the ordinary run.
 *
 * Every file under tests/fuzz/corpus/<target>/ goes through the same entry
 * point the fuzzer calls (the fuzz sources are included here with their
 * entry renamed), so a sanitizer build of the test suite catches a
 * regression on any input the fuzzer ever found interesting. Hand-made
 * seeds are named valid_* or bad_*; for those the outcome is checked too. */
#include "../check.h"


#include "runtime/rt.h"

#define FUZZ_ENTRY fuzz_safetensors_entry
#include "../fuzz/fuzz_safetensors.c"
#undef FUZZ_ENTRY
#define FUZZ_ENTRY fuzz_npy_entry
#include "../fuzz/fuzz_npy.c"
#undef FUZZ_ENTRY
#define FUZZ_ENTRY fuzz_edit_entry
#include "../fuzz/fuzz_safetensors_edit.c"
#undef FUZZ_ENTRY
#define FUZZ_ENTRY fuzz_program_entry
#include "../fuzz/fuzz_program.c"
#undef FUZZ_ENTRY
#define FUZZ_ENTRY fuzz_tasks_entry
#include "../fuzz/fuzz_tasks.c"
#undef FUZZ_ENTRY

#include "../fuzz/replay.h"

static bool st_loads(const uint8_t *p, size_t n)
{
	rt_TensorFile f;
	Diag d;
	diag_init(&d);
	bool ok = rt_safetensors_read_mem("seed", p, n, &f, &d) == 0;
	rt_tensorfile_free(&f);
	diag_free(&d);
	return ok;
}

static bool npy_loads(const uint8_t *p, size_t n)
{
	rt_Tensor t;
	Diag d;
	diag_init(&d);
	bool ok = rt_npy_read_mem("seed", p, n, &t, &d) == 0;
	rt_tensor_free(&t);
	diag_free(&d);
	return ok;
}

/* The file an edit script makes of the fixture checkpoint loads. */
static bool edit_loads(const uint8_t *p, size_t n)
{
	size_t total;
	uint8_t *file = edit_build(p, n, &total);
	bool ok = file && st_loads(file, total);
	free(file);
	return ok;
}

static bool program_reads(const uint8_t *p, size_t n)
{
	rt_Program *prog;
	Diag d;
	diag_init(&d);
	bool ok = rt_program_read("seed", p, n, &prog, &d) == 0;
	rt_program_destroy(prog);
	diag_free(&d);
	return ok;
}

/* The task readers as fuzz_tasks.c calls them: the first byte picks one,
 * a NUL separates the two files of PubMedQA and HoC. */
static bool task_loads(const uint8_t *p, size_t n)
{
	if (n == 0)
		return false;
	rt_TaskId id = (rt_TaskId)(p[0] % 3);
	const char *s = (const char *)p + 1, *sep = id == RT_TASK_MEDABS ? NULL : memchr(s, 0, n - 1);
	size_t n1 = sep ? (size_t)(sep - s) : n - 1;
	Source a, b;
	source_from_mem(&a, "a", s, n1);
	source_from_mem(&b, "b", sep ? sep + 1 : "", sep ? n - 2 - n1 : 0);
	rt_TaskSet set = {.info = &rt_tasks[id]};
	arena_init(&set.arena);
	Diag d;
	diag_init(&d);
	bool ok = (id == RT_TASK_PUBMEDQA ? rt_pubmedqa_parse(&a, &b, &set, &d)
		   : id == RT_TASK_HOC    ? rt_hoc_parse("1", &a, &b, &set, &d)
					  : rt_medabs_parse(&a, &set, &d)) == 0;
	rt_task_free(&set);
	diag_free(&d);
	source_free(&a);
	source_free(&b);
	return ok;
}

static void test_corpus(void)
{
	int nv, nb;
	int nst = fuzz_replay("safetensors", fuzz_safetensors_entry, st_loads, &nv, &nb);
	int nnpy = fuzz_replay("npy", fuzz_npy_entry, npy_loads, &nv, &nb);
	printf("replayed %d safetensors and %d npy corpus files\n", nst, nnpy);
	CHECK(nst >= 10 && nnpy >= 10);
	int ned = fuzz_replay("safetensors_edit", fuzz_edit_entry, edit_loads, &nv, &nb);
	printf("replayed %d edit scripts on the fixture checkpoint (%d valid, %d bad)\n", ned, nv, nb);
	CHECK(ned >= 5 && nv >= 1 && nb >= 3);
	int npr = fuzz_replay("program", fuzz_program_entry, program_reads, &nv, &nb);
	printf("replayed %d program descriptions (%d valid, %d bad)\n", npr, nv, nb);
	CHECK(npr >= 8 && nv >= 2 && nb >= 5);
	int ntask = fuzz_replay("tasks", fuzz_tasks_entry, task_loads, &nv, &nb);
	printf("replayed %d task reader inputs (%d valid, %d bad)\n", ntask, nv, nb);
	CHECK(ntask >= 10 && nv >= 4 && nb >= 8);
}

int main(void)
{
	RUN(test_corpus);
	return check_report();
}
