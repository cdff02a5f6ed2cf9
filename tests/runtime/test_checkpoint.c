/* test_checkpoint.c: crash-safe checkpoints.
 *
 * Round trip bit for bit; a flipped byte in the model or optimiser file
 * fails its checksum and loading falls back to the previous checkpoint; a
 * leftover temporary folder is ignored by loading and removed by the next
 * save; pruning keeps `keep` folders and drops an abandoned future; LATEST
 * is not needed; the run folder's lock admits one writer. Then the real
 * thing: a child process writes checkpoints in a loop and is SIGKILLed at
 * random moments; after each kill the newest checkpoint must load and hold
 * exactly what was written for its step, and no step that the child saw
 * completed may be lost. */
#include "../check.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/rt.h"

static char dir[64];

enum { ROWS = 256, COLS = 128, NB = 128, NM = 300 };

/* The tensors of step s; every value depends on (s, tensor, index). */
static float wte[ROWS * COLS], bias[NB], m1[ROWS * COLS], m2[ROWS * COLS], b1[NB], b2[NB];
static uint8_t mask[NM];

static void fill(float *x, int n, int64_t s, int tag)
{
	for (int i = 0; i < n; i++)
		x[i] = (float)(int32_t)rt_rng_bits((uint64_t)s * 8 + (uint64_t)tag, (uint64_t)i) * 1e-9f;
}

static void make(int64_t s, rt_NamedTensor model[3], rt_NamedTensor optim[4])
{
	fill(wte, ROWS * COLS, s, 0);
	fill(bias, NB, s, 1);
	fill(m1, ROWS * COLS, s, 2);
	fill(m2, ROWS * COLS, s, 3);
	fill(b1, NB, s, 4);
	fill(b2, NB, s, 5);
	for (int i = 0; i < NM; i++)
		mask[i] = (uint8_t)((s + i) % 3 == 0);
	rt_Tensor big = {.dtype = RT_F32, .rank = 2, .dim = {ROWS, COLS}};
	rt_Tensor vec = {.dtype = RT_F32, .rank = 1, .dim = {NB}};
	model[0] = (rt_NamedTensor){"wte.weight", big};
	model[0].t.data = wte;
	model[1] = (rt_NamedTensor){"h.0.ln_1.bias", vec};
	model[1].t.data = bias;
	model[2] = (rt_NamedTensor){"h.0.mlp.c_fc.mask",
				    {.dtype = RT_U8, .rank = 1, .dim = {NM}, .data = mask}};
	optim[0] = (rt_NamedTensor){"wte.weight.exp_avg", big};
	optim[0].t.data = m1;
	optim[1] = (rt_NamedTensor){"wte.weight.exp_avg_sq", big};
	optim[1].t.data = m2;
	optim[2] = (rt_NamedTensor){"h.0.ln_1.bias.exp_avg", vec};
	optim[2].t.data = b1;
	optim[3] = (rt_NamedTensor){"h.0.ln_1.bias.exp_avg_sq", vec};
	optim[3].t.data = b2;
}

static int same(const rt_TensorFile *f, const rt_NamedTensor *t, int n)
{
	if (f->ntensor != n)
		return 0;
	for (int i = 0; i < n; i++) {
		const rt_NamedTensor *x = rt_tensorfile_find(f, t[i].name);
		if (!x || x->t.dtype != t[i].t.dtype || x->t.rank != t[i].t.rank ||
		    memcmp(x->t.dim, t[i].t.dim, sizeof x->t.dim) ||
		    memcmp(x->t.data, t[i].t.data, (size_t)rt_nbytes(&t[i].t)))
			return 0;
	}
	return 1;
}

/* The checkpoint holds exactly what make(c->step) builds. */
static int matches(const rt_Checkpoint *c)
{
	rt_NamedTensor model[3], optim[4];
	make(c->step, model, optim);
	return same(&c->model, model, 3) && same(&c->optim, optim, 4);
}

static int save(const char *run, int64_t s, int keep, Diag *d)
{
	rt_NamedTensor model[3], optim[4];
	char state[128];
	make(s, model, optim);
	snprintf(state, sizeof state, "{\"seed\":7,\"data_pos\":%lld,\"argv\":[\"mswc\",\"train\"]}",
		 (long long)s * 4);
	return rt_checkpoint_save(run, s, model, 3, optim, 4, state, keep, d);
}

static const char *at(const char *run, const char *name)
{
	static char buf[4][256];
	static int k;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof buf[k], "%s/%s", run, name);
	return buf[k];
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static void flip(const char *path, long off)
{
	FILE *f = fopen(path, "r+b");
	CHECK(f != NULL);
	if (!f)
		return;
	if (off < 0) {
		fseek(f, 0, SEEK_END);
		off += ftell(f);
	}
	fseek(f, off, SEEK_SET);
	int c = fgetc(f);
	fseek(f, off, SEEK_SET);
	fputc(c ^ 0x20, f);
	fclose(f);
}

/* How many entries of folder `run` start with `prefix`. */
static int count_prefix(const char *run, const char *prefix)
{
	DIR *dp = opendir(run);
	int n = 0;
	struct dirent *e;
	while (dp && (e = readdir(dp)))
		n += !strncmp(e->d_name, prefix, strlen(prefix));
	if (dp)
		closedir(dp);
	return n;
}

static void test_round_trip(void)
{
	Diag d;
	diag_init(&d);
	char run[128];
	snprintf(run, sizeof run, "%s/rt", dir);
	rt_Checkpoint c;
	CHECK(rt_checkpoint_load_latest(run, &c, &d) == 1);   /* no folder yet */
	CHECK(save(run, 10, 2, &d) == 0);
	CHECK(rt_checkpoint_load_latest(run, &c, &d) == 0);
	CHECK(c.step == 10 && matches(&c) && c.warning == NULL);
	CHECK(c.state_json && strstr(c.state_json, "\"data_pos\":\t40") &&
	      strstr(c.state_json, "\"xxh3_128\"") && strstr(c.state_json, "\"step\":\t10"));
	CHECK(c.dir && strstr(c.dir, "ckpt-10"));
	rt_checkpoint_free(&c);

	/* last.safetensors is the model, readable as a plain safetensors file */
	rt_TensorFile f;
	rt_NamedTensor model[3], optim[4];
	make(10, model, optim);
	CHECK(rt_safetensors_read(at(run, "last.safetensors"), &f, &d) == 0);
	CHECK(same(&f, model, 3));
	CHECK(f.metadata_json && strstr(f.metadata_json, "\"format\":\"pt\""));
	rt_tensorfile_free(&f);
	FILE *lf = fopen(at(run, "LATEST"), "r");
	char line[64] = {0};
	CHECK(lf && fgets(line, sizeof line, lf) && !strcmp(line, "ckpt-10\n"));
	if (lf)
		fclose(lf);

	/* the checksum in state.json is the xxh3-128 of the file's bytes */
	FILE *mf = fopen(at(run, "ckpt-10/model.safetensors"), "rb");
	static unsigned char bytes[1 << 20];
	size_t n = mf ? fread(bytes, 1, sizeof bytes, mf) : 0;
	if (mf)
		fclose(mf);
	char hex[33];
	hash128_hex(hash128(bytes, n), hex);
	CHECK(rt_checkpoint_load(at(run, "ckpt-10"), &c, &d) == 0);
	CHECK(c.state_json && strstr(c.state_json, hex));
	rt_checkpoint_free(&c);

	/* the caller's state must be an object without "files"; "step" agrees */
	CHECK(rt_checkpoint_save(run, 11, model, 3, optim, 4, "[1]", 2, &d) != 0);
	CHECK(rt_checkpoint_save(run, 11, model, 3, optim, 4, "{\"files\":1}", 2, &d) != 0);
	CHECK(rt_checkpoint_save(run, 11, model, 3, optim, 4, "{\"step\":12}", 2, &d) != 0);
	CHECK(rt_checkpoint_save(run, 11, model, 3, optim, 4, "{\"step\":11}", 0, &d) != 0);
	CHECK(!exists(at(run, "ckpt-11")) && count_prefix(run, ".ckpt") == 0);
	diag_free(&d);
}

static void test_fallback(void)
{
	Diag d;
	diag_init(&d);
	char run[128];
	snprintf(run, sizeof run, "%s/fb", dir);
	for (int s = 10; s <= 40; s += 10)
		CHECK(save(run, s, 2, &d) == 0);
	/* keep = 2 */
	CHECK(!exists(at(run, "ckpt-10")) && !exists(at(run, "ckpt-20")));
	CHECK(exists(at(run, "ckpt-30")) && exists(at(run, "ckpt-40")));
	CHECK(count_prefix(run, ".ckpt") == 0);

	rt_Checkpoint c;
	const char *files[2] = {"ckpt-40/model.safetensors", "ckpt-40/optim.safetensors"};
	for (int i = 0; i < 2; i++) {
		flip(at(run, files[i]), -5);
		CHECK(rt_checkpoint_load_latest(run, &c, &d) == 0);
		CHECK(c.step == 30 && matches(&c));
		/* the damaged file, then the checkpoint used instead */
		char want[512];
		snprintf(want, sizeof want, "%s: checksum ", at(run, files[i]));
		CHECK_MSG(c.warning && strstr(c.warning, want) == c.warning, "%s", c.warning);
		snprintf(want, sizeof want, "(damaged)\nfell back to %s (step 30), the newest "
			 "checkpoint that verifies\n", at(run, "ckpt-30"));
		CHECK_MSG(c.warning && strstr(c.warning, want) && !strstr(c.warning, "error:"), "%s",
			  c.warning);
		rt_checkpoint_free(&c);
		CHECK(d.nerror == 0);   /* the load succeeded: no error left behind */
		flip(at(run, files[i]), -5);
		CHECK(rt_checkpoint_load_latest(run, &c, &d) == 0 && c.step == 40 && !c.warning);
		rt_checkpoint_free(&c);
	}
	/* a damaged state.json or a missing file, too */
	flip(at(run, "ckpt-40/state.json"), 0);
	CHECK(rt_checkpoint_load_latest(run, &c, &d) == 0 && c.step == 30 && c.warning);
	rt_checkpoint_free(&c);
	flip(at(run, "ckpt-40/state.json"), 0);
	/* nested beyond the JSON parser's limit: said so, not "not a state" */
	CHECK(rename(at(run, "ckpt-40/state.json"), at(run, "state.keep")) == 0);
	FILE *f = fopen(at(run, "ckpt-40/state.json"), "w");
	for (int i = 0; f && i < 5000; i++)
		fputc(i ? '[' : '{', f);
	CHECK(f && fclose(f) == 0);
	CHECK(rt_checkpoint_load_latest(run, &c, &d) == 0 && c.step == 30);
	CHECK_MSG(c.warning && strstr(c.warning, "ckpt-40/state.json: nests arrays and "
				      "objects deeper than the JSON parser's limit of 1000 levels"),
		  "%s", c.warning ? c.warning : "no warning");
	rt_checkpoint_free(&c);
	CHECK(rename(at(run, "state.keep"), at(run, "ckpt-40/state.json")) == 0);
	CHECK(rename(at(run, "ckpt-40/optim.safetensors"), at(run, "optim.keep")) == 0);
	CHECK(rt_checkpoint_load_latest(run, &c, &d) == 0 && c.step == 30);
	rt_checkpoint_free(&c);
	CHECK(rename(at(run, "optim.keep"), at(run, "ckpt-40/optim.safetensors")) == 0);

	/* everything damaged: an error naming each */
	flip(at(run, "ckpt-40/model.safetensors"), -1);
	flip(at(run, "ckpt-30/optim.safetensors"), -1);
	CHECK(rt_checkpoint_load_latest(run, &c, &d) == -1);
	CHECK(strstr(diag_text(&d), "ckpt-40") && strstr(diag_text(&d), "ckpt-30") &&
	      strstr(diag_text(&d), "no checkpoint verifies"));
	CHECK(c.model.ntensor == 0 && c.state_json == NULL);
	flip(at(run, "ckpt-40/model.safetensors"), -1);
	flip(at(run, "ckpt-30/optim.safetensors"), -1);

	/* LATEST is not needed */
	CHECK(unlink(at(run, "LATEST")) == 0);
	diag_free(&d);
	diag_init(&d);
	CHECK(rt_checkpoint_load_latest(run, &c, &d) == 0 && c.step == 40 && matches(&c));
	rt_checkpoint_free(&c);
	diag_free(&d);
}

/* A process id that is certainly not running. */
static pid_t dead_pid(void)
{
	pid_t p = fork();
	if (p == 0)
		_exit(0);
	waitpid(p, NULL, 0);
	return p;
}

static void test_leftovers(void)
{
	Diag d;
	diag_init(&d);
	char run[128];
	snprintf(run, sizeof run, "%s/fb", dir);
	char name[64], live[64];
	snprintf(name, sizeof name, ".ckpt-tmp-%ld", (long)dead_pid());
	snprintf(live, sizeof live, ".ckpt-tmp-%d", 1);   /* init: alive, not ours */
	/* a write killed midway: a whole-looking newer checkpoint in the temp folder */
	CHECK(save(at(dir, "scratch"), 99, 1, &d) == 0);
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "cp -r %s/scratch/ckpt-99 %s/%s && mkdir %s/%s && "
		 "touch %s/last.safetensors.tmp.%ld %s/ckpt-x %s/ckpt-007",
		 dir, run, name, run, live, run, (long)dead_pid(), run, run);
	CHECK(system(cmd) == 0);
	rt_Checkpoint c;
	CHECK(rt_checkpoint_load_latest(run, &c, &d) == 0 && c.step == 40 && !c.warning);
	rt_checkpoint_free(&c);
	CHECK(exists(at(run, name)));   /* loading changes nothing */
	CHECK(save(run, 50, 2, &d) == 0);
	CHECK(!exists(at(run, name)) && exists(at(run, live)));
	CHECK(count_prefix(run, "last.safetensors.tmp") == 0);
	CHECK(rmdir(at(run, live)) == 0);

	/* an abandoned future goes; a repeated step replaces the old one */
	CHECK(save(run, 100, 2, &d) == 0);
	CHECK(save(run, 60, 2, &d) == 0);
	CHECK(!exists(at(run, "ckpt-100")) && !exists(at(run, "ckpt-40")));
	CHECK(exists(at(run, "ckpt-50")) && exists(at(run, "ckpt-60")));
	flip(at(run, "ckpt-60/model.safetensors"), -1);   /* the repeat must not reuse it */
	CHECK(save(run, 60, 2, &d) == 0);
	CHECK(rt_checkpoint_load_latest(run, &c, &d) == 0 && c.step == 60 && matches(&c) &&
	      !c.warning);
	rt_checkpoint_free(&c);
	CHECK(count_prefix(run, ".ckpt") == 0);
	CHECK(d.nerror == 0);
	diag_free(&d);
}

/* Every allocation of a save and of a load failing in turn: a failed save
 * leaves no temporary and the previous checkpoint; a failed load is an
 * error, never a silent fall back to an older checkpoint (resuming from it
 * would let the next save prune the newer one). */
static void test_out_of_memory(void)
{
	Diag d;
	diag_init(&d);
	char run[128];
	snprintf(run, sizeof run, "%s/oom", dir);
	CHECK(save(run, 10, 2, &d) == 0);
	rt_Checkpoint c;
	int saved = 0, loaded = 0, bad_save = 0, bad_load = 0;
	for (long k = 1; k < 2000 && !saved; k++) {
		mem_fail_after(k);
		saved = save(run, 20, 2, &d) == 0;
		mem_fail_after(0);
		int rc = rt_checkpoint_load_latest(run, &c, &d);
		bad_save += count_prefix(run, ".ckpt") != 0 || rc != 0 ||
			    !(c.step == 10 || c.step == 20) || !matches(&c) || (saved && c.step != 20);
		rt_checkpoint_free(&c);
	}
	for (long k = 1; k < 2000 && !loaded; k++) {
		mem_fail_after(k);
		int rc = rt_checkpoint_load_latest(run, &c, &d);
		mem_fail_after(0);
		loaded = rc == 0;
		bad_load += !(rc == -1 || (rc == 0 && c.step == 20 && matches(&c) && !c.warning));
		rt_checkpoint_free(&c);
	}
	CHECK(saved && loaded);
	CHECK_MSG(bad_save == 0, "%d failed saves left a mess", bad_save);
	CHECK_MSG(bad_load == 0, "%d failed loads fell back or returned bad data", bad_load);
	diag_free(&d);
}

/* --- the crash test --- */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The writer: resume from the newest checkpoint, then save step after step,
 * reporting each completed save on the pipe. Bounded in case the parent
 * dies. */
static void writer(const char *run, int fd)
{
	Diag d;
	diag_init(&d);
	rt_Checkpoint c;
	int64_t s = rt_checkpoint_load_latest(run, &c, &d) == 0 ? c.step : 0;
	rt_checkpoint_free(&c);
	double end = now() + 20;
	while (now() < end) {
		s++;
		if (save(run, s, 2, &d))
			_exit(2);
		if (write(fd, &s, sizeof s) != sizeof s)
			_exit(3);
	}
	_exit(0);
}

static int64_t last_step_of(const char *path, Diag *d)
{
	rt_TensorFile f;
	if (rt_safetensors_read(path, &f, d))
		return -1;
	long long s = -1;
	const char *p = f.metadata_json ? strstr(f.metadata_json, "\"step\":\"") : NULL;
	if (p)
		s = strtoll(p + 8, NULL, 10);
	rt_NamedTensor model[3], optim[4];
	make(s, model, optim);
	int ok = same(&f, model, 3);
	rt_tensorfile_free(&f);
	return ok ? s : -1;
}

static void test_sigkill(void)
{
	Diag d;
	diag_init(&d);
	char run[128];
	snprintf(run, sizeof run, "%s/crash", dir);
	srand(12345);
	int64_t done = 0, reported = 0, kills = 0, mid = 0, torn = 0;
	double start = now();
	for (int it = 0; it < 12 && now() - start < 6; it++) {
		int fds[2];
		CHECK(pipe(fds) == 0);
		pid_t pid = fork();
		if (pid == 0) {
			close(fds[0]);
			writer(run, fds[1]);
		}
		close(fds[1]);
		usleep((useconds_t)(2000 + rand() % 120000));
		kill(pid, SIGKILL);
		int status;
		waitpid(pid, &status, 0);
		kills += WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
		int64_t s;
		while (read(fds[0], &s, sizeof s) == sizeof s)
			done = reported = s > done ? s : done;
		close(fds[0]);

		torn += count_prefix(run, ".ckpt-tmp") != 0;
		rt_Checkpoint c;
		int rc = rt_checkpoint_load_latest(run, &c, &d);
		if (done == 0 && rc == 1)
			continue;   /* killed before the first save completed */
		CHECK_MSG(rc == 0, "iteration %d: %s", it, diag_text(&d));
		/* nothing completed is lost; at most the save in flight got in */
		CHECK_MSG(c.step == done || c.step == done + 1, "loaded %lld, completed %lld",
			  (long long)c.step, (long long)done);
		CHECK(matches(&c));
		CHECK(c.warning == NULL);
		mid += c.step == done + 1;
		if (c.step > done)
			done = c.step;
		rt_checkpoint_free(&c);
		/* last.safetensors is a whole model file of a committed step (it
		 * lags if the kill fell between the commit and its update) */
		if (!exists(at(run, "last.safetensors"))) {
			CHECK(reported == 0);   /* only before the first whole save */
			continue;
		}
		int64_t ls = last_step_of(at(run, "last.safetensors"), &d);
		CHECK_MSG(ls >= 1 && ls <= done, "last.safetensors holds step %lld, newest %lld",
			  (long long)ls, (long long)done);
	}
	CHECK(kills > 0 && done > 0);
	fprintf(stderr, "crash test: %lld kills (%lld mid-write, %lld after the commit but before "
		"the report), newest step %lld, %.1f s\n", (long long)kills, (long long)torn,
		(long long)mid, (long long)done, now() - start);
	/* the next save cleans up after the dead writers */
	CHECK(save(run, done + 1, 2, &d) == 0);
	CHECK(last_step_of(at(run, "last.safetensors"), &d) == done + 1);
	CHECK(count_prefix(run, ".ckpt") == 0);
	CHECK(count_prefix(run, "last.safetensors.tmp") == 0);
	diag_free(&d);
}

/* The writer's lock: a second holder is refused, naming the first's pid;
 * closing (or dying) releases it. flock conflicts between two open files
 * even in one process, so no child is needed. */
static void test_lock(void)
{
	Diag d;
	diag_init(&d);
	char run[128], pid[32];
	snprintf(run, sizeof run, "%s/locked", dir);
	int a = -1, b = -1;
	CHECK(rt_run_lock(run, false, &a, &d) == 1 && a == -1);   /* no folder, none made */
	CHECK(!exists(run) && d.nerror == 0);
	CHECK(rt_run_lock(run, true, &a, &d) == 0 && a >= 0);
	CHECK(rt_run_lock(run, true, &b, &d) == -1 && b == -1);
	snprintf(pid, sizeof pid, "(pid %ld)", (long)getpid());
	CHECK_MSG(strstr(diag_text(&d), "in use by another training run") &&
		  strstr(diag_text(&d), pid), "%s", diag_text(&d));
	rt_run_unlock(a);
	CHECK(rt_run_lock(run, false, &b, &d) == 0 && b >= 0);
	rt_run_unlock(b);
	/* a file where the folder should be */
	FILE *f = fopen(at(run, "file"), "w");
	CHECK(f && fclose(f) == 0);
	CHECK(rt_run_lock(at(run, "file"), true, &b, &d) == -1);
	CHECK(strstr(diag_text(&d), "file: error: not a folder"));
	diag_free(&d);
}

int main(void)
{
	if (check_tmpdir(dir, "ckpt"))
		return 1;
	RUN(test_round_trip);
	RUN(test_fallback);
	RUN(test_leftovers);
	RUN(test_out_of_memory);
	RUN(test_lock);
	RUN(test_sigkill);
	check_rmdir(dir);
	return check_report();
}
