/* test_checked_mode.c: checked mode (MSW_CHECK=1, docs/runtime.md), which
 * catches kernels writing outside their tensors, where sanitizers do not
 * look (JIT code).
 *
 *   - the layout: with MSW_CHECK=1 plan_memory leaves a guard of at least
 *     PASS_GUARD bytes before the first buffer and after every buffer and
 *     reuses no space, no two values' data overlap unless they alias, and
 *     the program's guards are exactly the bytes no value's data covers;
 *     without it (or with PassOptions.guard < 0) the plan is the usual one
 *     and the program has no guards;
 *   - a correct program runs clean with the checks on, bitwise as without;
 *   - bad writes are caught, each in a child process since the executor
 *     reports and exits with status 1: a JIT kernel whose output pointer
 *     was moved 64 bytes on (it writes past its tensor), a C kernel writing
 *     one float past a temporary and one writing just before a tensor, and
 *     the caller writing past an output through rt_exec_tensor's pointer
 *     between runs (caught before the next run's first step). The message
 *     names the kernel, the step and the tensor as the IR prints it. */
#include "backend/backend.h"
#include "passes/passes.h"
#include "tests/check.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const SrcLoc L0;

/* x [3,5] -> e = exp(x) -> a = e + x -> m = a * a -> output "m". */
typedef struct Model {
	Graph *g;
	rt_Program *p;
	ValId x, e, a, m;
} Model;

static int build(Model *md, int64_t guard)
{
	Diag d;
	diag_init(&d);
	memset(md, 0, sizeof *md);
	md->g = ir_graph_create();
	Shape s = {.rank = 2, .dim = {3, 5}};
	Graph *g = md->g;
	md->x = ir_input(g, "x", DT_F32, &s, L0, &d);
	md->e = ir_unary(g, OP_EXP, md->x, L0, &d);
	md->a = ir_binary(g, OP_ADD, md->e, md->x, L0, &d);
	md->m = ir_binary(g, OP_MUL, md->a, md->a, L0, &d);
	PassOptions po = {.verify = true, .alignment = RT_ALIGN, .guard = guard};
	int rc = d.nerror || ir_set_output(g, "m", md->m) || pass_infer_shapes(g, &po, &d) ||
		 pass_plan_memory(g, &po, &d) || be_build_program(g, NULL, &md->p, &d);
	if (rc)
		fprintf(stderr, "%s", diag_text(&d));
	diag_free(&d);
	return rc ? -1 : 0;
}

static void destroy(Model *md)
{
	rt_program_destroy(md->p);
	ir_graph_destroy(md->g);
}

static float run_once(Model *md, rt_Pool *pool, float *out)
{
	rt_Exec *e = NULL;
	Diag d;
	diag_init(&d);
	rt_Tensor x, m;
	CHECK(rt_exec_create(md->p, pool, &e, &d) == 0);
	if (!e)
		return NAN;
	CHECK(rt_exec_tensor(e, "x", &x) == 0 && rt_exec_tensor(e, "m", &m) == 0);
	for (int i = 0; i < 15; i++)
		((float *)x.data)[i] = 0.1f * (float)i - 0.7f;
	rt_exec_run(e);
	memcpy(out, m.data, 15 * sizeof *out);
	CHECK(rt_exec_broken_guard(e, NULL) == -1);
	rt_exec_destroy(e);
	diag_free(&d);
	return out[0];
}

static void test_layout(void)
{
	Model md, plain, off;
	if (build(&md, 0) || build(&plain, -1)) {
		CHECK(0);
		return;
	}
	unsetenv("MSW_CHECK");
	CHECK(build(&off, 0) == 0);
	setenv("MSW_CHECK", "1", 1);
	Graph *g = md.g;
	CHECK(g->arena_guard >= PASS_GUARD && plain.g->arena_guard == 0 && off.g->arena_guard == 0);
	CHECK(plain.p->guard.len == 0 && off.p->guard.len == 0 && md.p->guard.len > 0);
	CHECK(g->arena_size > plain.g->arena_size);
	/* every value: a guard right after its data, and one before it */
	const rt_Guard *gd = md.p->guard.data;
	size_t ng = md.p->guard.len;
	CHECK(gd[0].offset == 0 && gd[0].nbytes >= PASS_GUARD && !gd[0].after);
	CHECK(gd[ng - 1].offset + gd[ng - 1].nbytes == g->arena_size && !gd[ng - 1].before);
	for (ValId v = 0; v < ir_nnode(g); v++) {
		int64_t lo = ir_node(g, v)->offset, hi = lo + ir_nbytes(g, v);
		bool after = false, before = false;
		for (size_t i = 0; i < ng; i++) {
			after |= gd[i].offset == hi && gd[i].nbytes >= PASS_GUARD;
			before |= gd[i].offset + gd[i].nbytes == lo;
			CHECK(gd[i].offset >= hi || gd[i].offset + gd[i].nbytes <= lo);
		}
		CHECK_MSG(after && before, "value %%%u [%lld, %lld) has no guard around it", v,
			  (long long)lo, (long long)hi);
		for (ValId w = 0; w < v; w++) {
			int64_t wl = ir_node(g, w)->offset, wh = wl + ir_nbytes(g, w);
			CHECK_MSG(wh <= lo || wl >= hi, "values %%%u and %%%u overlap", w, v);
		}
	}
	/* the names as the IR prints them */
	char want[64];
	snprintf(want, sizeof want, "%%%u = add f32[3,5]", md.a);
	bool named = false;
	for (size_t i = 0; i < ng; i++)
		named |= gd[i].after && !strcmp(gd[i].after, want);
	CHECK_MSG(named, "no guard after \"%s\"", want);
	snprintf(want, sizeof want, "%%%u = mul f32[3,5] (output \"m\")", md.m);
	named = false;
	for (size_t i = 0; i < ng; i++)
		named |= gd[i].after && !strcmp(gd[i].after, want);
	CHECK_MSG(named, "no guard after \"%s\"", want);

	/* a correct program runs clean, and gives the plain program's bits */
	rt_Pool *pool = rt_pool_create(2);
	float y[15], z[15];
	run_once(&md, pool, y);
	run_once(&plain, pool, z);
	CHECK(!memcmp(y, z, sizeof y));
	rt_Exec *e = NULL;
	Diag d;
	diag_init(&d);
	CHECK(rt_exec_create(md.p, pool, &e, &d) == 0 && rt_exec_checked(e));
	rt_exec_destroy(e);
	CHECK(rt_exec_create(plain.p, pool, &e, &d) == 0 && !rt_exec_checked(e));
	rt_exec_destroy(e);
	diag_free(&d);
	rt_pool_destroy(pool);
	destroy(&md);
	destroy(&plain);
	destroy(&off);
}

/* ---- bad writes, each in a child ---- */

static int64_t bad_at;   /* the float index the bad kernel writes, relative to buf[0] */

static void bad_kernel(void *const *buf, int64_t lo, int64_t hi)
{
	if (lo < hi)
		((float *)buf[0])[bad_at] = 1.0f;
}

typedef enum How { JIT_MOVED, C_PAST, C_BEFORE, CALLER_PAST } How;

/* Runs the model with one bad write in a child: its exit status and what
 * it printed on stderr (into msg). */
static int run_bad(How how, char *msg, size_t n, Model *md)
{
	if (build(md, 0))
		return -1;
	rt_Program *p = md->p;
	if (how == JIT_MOVED) {
		/* the exp kernel writes its 60 bytes 64 bytes on: past its end */
		for (size_t i = 0; i < p->step.len; i++)
			if (strstr(VEC_AT(p->step, rt_Step, i).name, "exp"))
				VEC_AT(p->argoff, int64_t, VEC_AT(p->step, rt_Step, i).arg0) += 64;
	} else if (how == C_PAST || how == C_BEFORE) {
		int64_t off = ir_node(md->g, how == C_PAST ? md->a : md->m)->offset;
		bad_at = how == C_PAST ? 15 : -1;
		CHECK(rt_program_add_step(p, bad_kernel, 1, &off, 1, "bad_kernel", 0) == 0);
	}
	int fd[2];
	if (pipe(fd))
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fd[1], 2);
		close(fd[0]);
		rt_Pool *pool = rt_pool_create(2);
		rt_Exec *e = NULL;
		Diag d;
		diag_init(&d);
		if (rt_exec_create(p, pool, &e, &d))
			_exit(3);
		rt_exec_run(e);
		if (how == CALLER_PAST) {
			rt_Tensor m;
			rt_exec_tensor(e, "m", &m);
			((float *)m.data)[15] = 2.0f;
			rt_exec_run(e);
		}
		_exit(0);   /* not caught */
	}
	close(fd[1]);
	size_t len = 0;
	ssize_t r;
	while (len + 1 < n && (r = read(fd[0], msg + len, n - 1 - len)) > 0)
		len += (size_t)r;
	msg[len] = 0;
	close(fd[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void expect(How how, const char *what)
{
	Model md;
	char msg[1024], want[256];
	int st = run_bad(how, msg, sizeof msg, &md);
	CHECK_MSG(st == 1, "%s: exit status %d, stderr: %s", what, st, msg);
	switch (how) {
	case JIT_MOVED:
		snprintf(want, sizeof want, "mswc: internal error: kernel k%u_exp (step 0) wrote "
			 "past %%%u = exp f32[3,5] (bytes ", md.e, md.e);
		break;
	case C_PAST:
		snprintf(want, sizeof want, "mswc: internal error: kernel bad_kernel (step 3) wrote "
			 "past %%%u = add f32[3,5] (bytes 0..3 after its end changed)", md.a);
		break;
	case C_BEFORE:
		snprintf(want, sizeof want, "mswc: internal error: kernel bad_kernel (step 3) wrote "
			 "before %%%u = mul f32[3,5] (output \"m\") (bytes 1..4 before its start "
			 "changed)", md.m);
		break;
	case CALLER_PAST:
		snprintf(want, sizeof want, "mswc: internal error: before kernel k%u_exp (step 0) "
			 "ran, a write outside the kernels went past %%%u = mul f32[3,5] (output "
			 "\"m\") (bytes 0..3 after its end changed)", md.e, md.m);
		break;
	}
	printf("%s:\n  %s", what, msg);
	CHECK_MSG(strstr(msg, want) != NULL, "%s: stderr\n  %s\nlacks\n  %s", what, msg, want);
	destroy(&md);
}

static void test_bad_writes(void)
{
	expect(JIT_MOVED, "a JIT kernel writing past its output");
	expect(C_PAST, "a kernel writing one float past a temporary");
	expect(C_BEFORE, "a kernel writing one float before an output");
	expect(CALLER_PAST, "the caller writing past an output between runs");
}

int main(void)
{
	setenv("MSW_CHECK", "1", 1);
	RUN(test_layout);
	RUN(test_bad_writes);
	return check_report();
}
