/* test_metrics.c: metrics.csv rows, and truncation when a run resumes.
 *
 * The expected file contents are written out here in full. */
#include "../check.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/rt.h"

static char dir[64];

#define HEADER "step,loss,lr,grad_norm,tokens_per_s,val_loss,elapsed_s\n"

static char *slurp(void)
{
	static char buf[4096];
	char path[128];
	snprintf(path, sizeof path, "%s/metrics.csv", dir);
	FILE *f = fopen(path, "rb");
	size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = 0;
	return buf;
}

static void spit(const char *text)
{
	char path[128];
	snprintf(path, sizeof path, "%s/metrics.csv", dir);
	FILE *f = fopen(path, "wb");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static rt_MetricsRow row(int64_t step, double loss)
{
	return (rt_MetricsRow){.step = step, .loss = loss, .lr = 0.001, .grad_norm = NAN,
			       .tokens_per_s = 1500, .val_loss = NAN, .elapsed_s = 2.5};
}

static void test_rows(void)
{
	Diag d;
	diag_init(&d);
	rt_Metrics m;
	CHECK(rt_metrics_open(&m, dir, -1, &d) == 0);
	CHECK(!strcmp(slurp(), HEADER));
	CHECK(rt_metrics_append(&m, &(rt_MetricsRow){1, 5.25, 3e-4, 1.5, 12345.5, NAN, 0.125}, &d) == 0);
	/* flushed per row: visible before close */
	CHECK(!strcmp(slurp(), HEADER "1,5.25,0.0003,1.5,12345.5,,0.125\n"));
	rt_MetricsRow r = row(2, 4.0);
	r.val_loss = 4.5;
	CHECK(rt_metrics_append(&m, &r, &d) == 0);
	r = (rt_MetricsRow){3, NAN, NAN, NAN, NAN, NAN, NAN};
	CHECK(rt_metrics_append(&m, &r, &d) == 0);
	CHECK(rt_metrics_append(&m, &(rt_MetricsRow){.step = -1}, &d) != 0);
	CHECK(rt_metrics_close(&m, &d) == 0);
	CHECK(!strcmp(slurp(), HEADER "1,5.25,0.0003,1.5,12345.5,,0.125\n"
				      "2,4,0.001,,1500,4.5,2.5\n"
				      "3,,,,,,\n"));
	/* a float32 loss reads back exactly */
	CHECK(rt_metrics_open(&m, dir, -1, &d) == 0);
	float loss = 2.7182817f;
	CHECK(rt_metrics_append(&m, &(rt_MetricsRow){7, loss, NAN, NAN, NAN, NAN, NAN}, &d) == 0);
	rt_metrics_close(&m, &d);
	CHECK((float)strtod(slurp() + strlen(HEADER) + 2, NULL) == loss);
	CHECK(d.nerror == 1);
	diag_free(&d);
}

static void test_resume(void)
{
	Diag d;
	diag_init(&d);
	rt_Metrics m;
	CHECK(rt_metrics_open(&m, dir, -1, &d) == 0);
	for (int s = 10; s <= 50; s += 10)
		CHECK(rt_metrics_append(&m, &(rt_MetricsRow){s, s / 10.0, NAN, NAN, NAN, NAN, NAN}, &d) == 0);
	rt_metrics_close(&m, &d);
	/* resumed at step 30: rows 40 and 50 go; logging goes on from 40 */
	CHECK(rt_metrics_open(&m, dir, 30, &d) == 0);
	CHECK(!strcmp(slurp(), HEADER "10,1,,,,,\n20,2,,,,,\n30,3,,,,,\n"));
	CHECK(rt_metrics_append(&m, &(rt_MetricsRow){40, 9, NAN, NAN, NAN, NAN, NAN}, &d) == 0);
	rt_metrics_close(&m, &d);
	CHECK(!strcmp(slurp(), HEADER "10,1,,,,,\n20,2,,,,,\n30,3,,,,,\n40,9,,,,,\n"));

	/* a row cut off by a crash is dropped even if its step is kept */
	spit(HEADER "10,1,,,,,\n20,2,,");
	CHECK(rt_metrics_open(&m, dir, 100, &d) == 0);
	rt_metrics_close(&m, &d);
	CHECK(!strcmp(slurp(), HEADER "10,1,,,,,\n"));
	/* resuming at step 0 keeps a step-0 row (e.g. the initial val loss) */
	spit(HEADER "0,,,,,5.5,\n10,1,,,,,\n");
	CHECK(rt_metrics_open(&m, dir, 0, &d) == 0);
	rt_metrics_close(&m, &d);
	CHECK(!strcmp(slurp(), HEADER "0,,,,,5.5,\n"));
	CHECK(d.nerror == 0);

	/* a foreign header or a garbled row is an error; the file is kept */
	spit("a,b\n1,2\n");
	CHECK(rt_metrics_open(&m, dir, 5, &d) != 0);
	CHECK(!strcmp(slurp(), "a,b\n1,2\n"));
	spit(HEADER "10,1,,,,,\nxx,2\n");
	CHECK(rt_metrics_open(&m, dir, 50, &d) != 0);
	CHECK(strstr(diag_text(&d), "line 3") != NULL);
	CHECK(!strcmp(slurp(), HEADER "10,1,,,,,\nxx,2\n"));
	/* but a fresh start replaces anything */
	CHECK(rt_metrics_open(&m, dir, -1, &d) == 0);
	rt_metrics_close(&m, &d);
	CHECK(!strcmp(slurp(), HEADER));
	/* no file yet and a resume step: a fresh file */
	char path[128];
	snprintf(path, sizeof path, "%s/metrics.csv", dir);
	unlink(path);
	CHECK(rt_metrics_open(&m, dir, 30, &d) == 0);
	rt_metrics_close(&m, &d);
	CHECK(!strcmp(slurp(), HEADER));
	/* no temporaries left behind */
	char cmd[160];
	snprintf(cmd, sizeof cmd, "ls %s | grep -q tmp", dir);
	CHECK(system(cmd) != 0);
	diag_free(&d);
}

/* Each allocation of a resume failing in turn: an error and the file as it
 * was, or the truncated file. */
static void test_out_of_memory(void)
{
	Diag d;
	diag_init(&d);
	const char *before = HEADER "1,1,,,,,\n2,2,,,,,\n3,3,,,,,\n";
	rt_Metrics m;
	int ok = 0, bad = 0;
	for (long k = 1; k < 100 && !ok; k++) {
		spit(before);
		mem_fail_after(k);
		int rc = rt_metrics_open(&m, dir, 2, &d);
		mem_fail_after(0);
		ok = rc == 0;
		if (ok)
			rt_metrics_close(&m, &d);
		bad += strcmp(slurp(), ok ? HEADER "1,1,,,,,\n2,2,,,,,\n" : before) != 0;
	}
	CHECK(ok && bad == 0);
	diag_free(&d);
}

int main(void)
{
	if (check_tmpdir(dir, "metrics"))
		return 1;
	RUN(test_rows);
	RUN(test_resume);
	RUN(test_out_of_memory);
	check_rmdir(dir);
	return check_report();
}
