/* test_task_metrics.c: accuracy, macro-F1, micro-F1 and the baselines
 * (runtime/task_metrics.c) on examples small enough to count by hand. The
 * expected values are worked out in the comments, as scikit-learn's
 * f1_score (zero_division = 0, labels = those present) gives them. */
#include "../check.h"

#include <string.h>

#include "runtime/rt.h"

static const double EPS = 1e-12;

/* single-label class lists as bit sets */
static void bits(const int *c, int n, uint32_t *out)
{
	for (int i = 0; i < n; i++)
		out[i] = 1u << c[i];
}

static void test_f1(void)
{
	CHECK_NEAR(rt_f1((rt_Counts){2, 0, 1}), 0.8, EPS);      /* 4 / 5 */
	CHECK_NEAR(rt_f1((rt_Counts){1, 1, 1}), 0.5, EPS);      /* 2 / 4 */
	CHECK_NEAR(rt_f1((rt_Counts){0, 3, 2}), 0.0, EPS);
	CHECK_NEAR(rt_f1((rt_Counts){0, 0, 0}), 0.0, EPS);      /* 0 / 0 -> 0 */
	CHECK_NEAR(rt_f1((rt_Counts){1.5, 0.5, 1.5}), 0.6, EPS); /* 3 / 5 */
}

/* gold 0 0 0 1 1 2, pred 0 0 1 1 2 2:
 *   class 0: tp 2 fp 0 fn 1 -> 4/5;  class 1: tp 1 fp 1 fn 1 -> 1/2;
 *   class 2: tp 1 fp 1 fn 0 -> 2/3;  macro (0.8 + 0.5 + 2/3) / 3;
 *   accuracy 4/6; micro: tp 4 fp 2 fn 2 -> 8/12 (= accuracy, as it must). */
static void test_single_label(void)
{
	int g[] = {0, 0, 0, 1, 1, 2}, p[] = {0, 0, 1, 1, 2, 2};
	uint32_t gold[6], pred[6];
	bits(g, 6, gold);
	bits(p, 6, pred);
	rt_Counts c[3];
	rt_class_counts(gold, pred, 6, 3, c);
	CHECK(c[0].tp == 2 && c[0].fp == 0 && c[0].fn == 1);
	CHECK(c[1].tp == 1 && c[1].fp == 1 && c[1].fn == 1);
	CHECK(c[2].tp == 1 && c[2].fp == 1 && c[2].fn == 0);
	CHECK_NEAR(rt_accuracy(gold, pred, 6), 4.0 / 6, EPS);
	CHECK_NEAR(rt_macro_f1(c, 3), (0.8 + 0.5 + 2.0 / 3) / 3, EPS);
	CHECK_NEAR(rt_micro_f1(c, 3), 8.0 / 12, EPS);
	CHECK_NEAR(rt_accuracy(gold, pred, 0), 0, EPS);
}

/* Classes in neither gold nor predictions do not count in macro-F1; a
 * class only predicted counts with F1 0. */
static void test_macro_classes(void)
{
	int g1[] = {0, 0, 1}, p1[] = {0, 1, 1};   /* c0 2/3, c1 2/3, c2 absent */
	uint32_t gold[3], pred[3];
	rt_Counts c[3];
	bits(g1, 3, gold);
	bits(p1, 3, pred);
	rt_class_counts(gold, pred, 3, 3, c);
	CHECK_NEAR(rt_macro_f1(c, 3), 2.0 / 3, EPS);
	int g2[] = {0, 0}, p2[] = {0, 2};         /* c0 tp 1 fn 1: 2/3; c2 fp 1: 0 */
	bits(g2, 2, gold);
	bits(p2, 2, pred);
	rt_class_counts(gold, pred, 2, 3, c);
	CHECK_NEAR(rt_macro_f1(c, 3), 1.0 / 3, EPS);
	CHECK_NEAR(rt_macro_f1(c, 0), 0, EPS);
}

/* Sets: gold {0,1} {2} {3}, pred {0} {1,2} {3}: tp 3 (0, 2, 3), fp 1 (1 in
 * the second), fn 1 (1 in the first): micro 6/8; exact-set accuracy 1/3. */
static void test_multi_label(void)
{
	uint32_t gold[] = {0x3, 0x4, 0x8}, pred[] = {0x1, 0x6, 0x8};
	rt_Counts c[4];
	rt_class_counts(gold, pred, 3, 4, c);
	CHECK_NEAR(rt_micro_f1(c, 4), 0.75, EPS);
	CHECK_NEAR(rt_accuracy(gold, pred, 3), 1.0 / 3, EPS);
	/* nothing right at all */
	uint32_t none[] = {0x8, 0x8, 0x1};
	rt_class_counts(gold, none, 3, 4, c);
	CHECK_NEAR(rt_micro_f1(c, 4), 0, EPS);
}

static void test_majority(void)
{
	int g[] = {0, 2, 2, 1, 2, 0};
	uint32_t gold[6];
	bits(g, 6, gold);
	CHECK(rt_majority_class(gold, 6, 3) == 2);
	CHECK(rt_majority_class(gold, 2, 3) == 0);   /* 0 and 2 tie: the lower */
	CHECK(rt_majority_class(gold, 0, 3) == -1);
	uint32_t sets[] = {0x3, 0x2, 0x4};           /* class 1 in two sets */
	CHECK(rt_majority_class(sets, 3, 3) == 1);
}

/* gold 0 0 0 1, guess uniform over 2 classes:
 *   class 0: tp 3/2 fp 1/2 fn 3/2 -> 3/5;  class 1: tp 1/2 fp 3/2 fn 1/2 ->
 *   1/3 (the closed form 2 p / (1 + K p): 1.5 / 2.5 and 0.5 / 1.5). */
static void test_random(void)
{
	int g[] = {0, 0, 0, 1};
	uint32_t gold[4];
	bits(g, 4, gold);
	double p[2] = {0.5, 0.5};
	rt_Counts c[2];
	rt_random_counts(gold, 4, 2, p, c);
	CHECK_NEAR(c[0].tp, 1.5, EPS);
	CHECK_NEAR(c[0].fp, 0.5, EPS);
	CHECK_NEAR(c[0].fn, 1.5, EPS);
	CHECK_NEAR(rt_macro_f1(c, 2), (0.6 + 1.0 / 3) / 2, EPS);
}

static rt_TaskSet make_set(const rt_TaskInfo *t, const uint32_t *gold, int n)
{
	rt_TaskSet s = {.info = t};
	arena_init(&s.arena);
	Diag d;
	diag_init(&d);
	for (int i = 0; i < n; i++) {
		char id[16];
		snprintf(id, sizeof id, "%d", i);
		CHECK(rt_task_add(&s, id, "text", 4, NULL, gold[i], RT_SPLIT_TEST, &d) == 0);
	}
	diag_free(&d);
	return s;
}

/* PubMedQA-shaped: gold yes yes yes no maybe, pred yes no no no yes.
 *   model: accuracy 2/5; yes tp 1 fp 1 fn 2 -> 2/5; no tp 1 fp 2 fn 0 ->
 *   1/2; maybe fn 1 -> 0; macro (0.4 + 0.5 + 0) / 3.
 *   majority (yes): accuracy 3/5; yes F1 6/8; no, maybe 0 (they are in
 *   the gold labels, so they count): macro 0.75 / 3.
 *   random: 1/3; yes p 3/5 -> 2 p / (1 + 3 p) = 1.2 / 2.8, no and maybe
 *   p 1/5 -> 0.4 / 1.6: macro (1.2/2.8 + 0.25 + 0.25) / 3. */
static void test_report_single(void)
{
	uint32_t gold[] = {1, 1, 1, 2, 4}, pred[] = {1, 2, 2, 2, 1};
	rt_TaskSet s = make_set(&rt_tasks[RT_TASK_PUBMEDQA], gold, 5);
	rt_TaskReport r;
	rt_task_report(&s, pred, &r);
	CHECK(r.n == 5 && r.count[0] == 3 && r.count[1] == 1 && r.count[2] == 1);
	CHECK(r.majority == 0);
	CHECK_NEAR(r.accuracy, 0.4, EPS);
	CHECK_NEAR(r.macro_f1, 0.3, EPS);
	CHECK_NEAR(r.maj_accuracy, 0.6, EPS);
	CHECK_NEAR(r.maj_macro_f1, 0.75 / 3, EPS);
	CHECK_NEAR(r.rnd_accuracy, 1.0 / 3, EPS);
	CHECK_NEAR(r.rnd_macro_f1, (1.2 / 2.8 + 0.25 + 0.25) / 3, EPS);
	rt_task_free(&s);
}

/* HoC-shaped (11 classes, bit 10 = empty): gold {0,1}, {0}, {empty}.
 *   model {0}, {0,2}, {empty}: tp 3, fp 1, fn 1 -> 6/8.
 *   majority (class 0, in two sets): {0} x3: tp 2, fp 1, fn 2 (1, empty)
 *   -> 4/7.
 *   random: each hallmark 1/2, empty 2^-10 (q). Hallmarks: tp = n_c/2,
 *   fn = n_c/2, fp = (3 - n_c)/2 summed over the 10: n = 3 gold hallmark
 *   labels -> tp 1.5, fn 1.5, fp (30 - 3)/2 = 13.5; empty: tp q, fp 2q,
 *   fn 1 - q. micro = 2 (1.5 + q) / (2 (1.5 + q) + 13.5 + 2q + 2.5 - q).
 *   all (the ten hallmarks for each): tp 3, fp 27, fn 1 -> 6/34. */
static void test_report_multi(void)
{
	uint32_t gold[] = {0x3, 0x1, 0x400}, pred[] = {0x1, 0x5, 0x400};
	rt_TaskSet s = make_set(&rt_tasks[RT_TASK_HOC], gold, 3);
	rt_TaskReport r;
	rt_task_report(&s, pred, &r);
	CHECK(r.majority == 0 && r.count[10] == 1);
	CHECK_NEAR(r.micro_f1, 0.75, EPS);
	CHECK_NEAR(r.maj_micro_f1, 4.0 / 7, EPS);
	double q = 1.0 / 1024, tp = 1.5 + q;
	CHECK_NEAR(r.rnd_micro_f1, 2 * tp / (2 * tp + 13.5 + 2 * q + 1.5 + 1 - q), EPS);
	/* all ten hallmarks x3: tp 3, fp 30 - 3, fn 1 (empty): 6 / 34 */
	CHECK_NEAR(r.all_micro_f1, 6.0 / 34, EPS);
	rt_task_free(&s);
}

int main(void)
{
	RUN(test_f1);
	RUN(test_single_label);
	RUN(test_macro_classes);
	RUN(test_multi_label);
	RUN(test_majority);
	RUN(test_random);
	RUN(test_report_single);
	RUN(test_report_multi);
	return check_report();
}
