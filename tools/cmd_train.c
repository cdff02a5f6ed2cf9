/* cmd_train.c: `mswc train MODEL.msw --data PATH [options]`
 *
 * Compiles the model for training (backward graph, AdamW update phase) at
 * [batch, seq], starts from a fresh initialisation (--seed) or from
 * --weights, and runs the runtime's trainer (runtime/trainer.c) into a run
 * folder: checkpoints, last.safetensors, metrics.csv. This file only parses,
 * prints and handles Ctrl-C; every number comes from the runtime.
 *
 * Sparsity (docs/sparsity.md): --sparsity S [--distribution uniform|erk]
 * draws masks with --seed; masks stored in --weights or in the checkpoint
 * are used instead; --dense drops them all (dense fine-tuning from a
 * sparse checkpoint, whose zeros are the starting values). Checkpoints hold
 * "<param>.mask" beside each sparse weight.
 *
 * Dynamic sparsity (--dynamic set|rigl, tools/train_dynamic.c): the
 * trainer runs in segments that end where the masks change; between them
 * the masks of the checkpoint just written are updated, and the next
 * segment compiles with them and resumes from that checkpoint.
 *
 * With --resume DIR the run continues from DIR's newest valid checkpoint up
 * to --steps in total. Options not given on the command line are taken from
 * the checkpoint's state.json, so `mswc train M --data D --resume run` is
 * enough; with the same options as the original run the result is
 * bit-identical to a run never interrupted. docs/training.md has every
 * option, the schedule and the guarantees. */
#include "tools.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { MAX_FREEZE = 64, SEGMENT_END = 1000 };

/* Options that land in rt_TrainConfig, by type; `given` remembers which
 * were on the command line, so --resume takes the others from the run. */
typedef enum OptType { OPT_I64, OPT_F64, OPT_SEED, OPT_SCHED, OPT_ORDER } OptType;
typedef struct ConfigOpt {
	const char *name;
	OptType type;
	size_t off;
	double lo, hi;        /* inclusive range of numbers */
} ConfigOpt;

#define CFG(f) offsetof(rt_TrainConfig, f)
static const ConfigOpt config_opt[] = {
	{"--batch", OPT_I64, CFG(batch), 1, 1 << 20},
	{"--seq", OPT_I64, CFG(seq), 1, 1 << 24},
	{"--steps", OPT_I64, CFG(steps), 0, 1e15},
	{"--warmup", OPT_I64, CFG(warmup), 0, 1e15},
	{"--schedule", OPT_SCHED, CFG(schedule), 0, 0},
	{"--lr", OPT_F64, CFG(lr), 0, 1e3},
	{"--beta1", OPT_F64, CFG(beta1), 0, 0.999999999},
	{"--beta2", OPT_F64, CFG(beta2), 0, 0.999999999},
	{"--eps", OPT_F64, CFG(eps), 1e-30, 1},
	{"--weight-decay", OPT_F64, CFG(weight_decay), 0, 1e3},
	{"--clip", OPT_F64, CFG(clip), 0, 1e30},
	{"--seed", OPT_SEED, CFG(seed), 0, 0},
	{"--order", OPT_ORDER, CFG(order), 0, 0},
	{"--val-fraction", OPT_F64, CFG(val_fraction), 0, 0.99},
	{"--eval-every", OPT_I64, CFG(eval_every), 0, 1e15},
	{"--eval-batches", OPT_I64, CFG(eval_batches), 0, 1e15},
	{"--save-every", OPT_I64, CFG(save_every), 0, 1e15},
};
enum { NCONFIG_OPT = sizeof config_opt / sizeof config_opt[0] };
#undef CFG

/* --help; the defaults are rt_train_defaults' and cmd_train's. */
const OptHelp train_options[] = {
	{"--data PATH", "text file or folder of them (required)"},
	{"-o, --out DIR", "the run folder (default runs/<model>)"},
	{"--resume DIR", "continue the run in DIR; options not given come from it"},
	{"--weights FILE", "start from these weights, not a fresh initialisation"},
	{"--batch B", "rows per step (default 16)"},
	{"--seq T", "tokens per row (default 128)"},
	{"--steps N", "total steps of the run (default 1000)"},
	{"--lr X", "peak learning rate (default 3e-4)"},
	{"--warmup N", "linear warm-up steps (default 100)"},
	{"--schedule cosine|constant", "after warm-up (default cosine)"},
	{"--weight-decay X", "decoupled weight decay (default 0.1)"},
	{"--decay-all", "weight decay on every parameter, not only matrices"},
	{"--profile", "time each kernel; a table by total time at the end"},
	{"--beta1 X", "Adam's first moment (default 0.9)"},
	{"--beta2 X", "Adam's second moment (default 0.95)"},
	{"--eps X", "Adam's epsilon (default 1e-8)"},
	{"--clip X", "max global gradient norm; 0: no clipping (default 1)"},
	{"--seed N", "initialisation, masks and data order (default 1)"},
	{"--order random|sequential", "batch order (default random)"},
	{"--freeze GLOB", "do not train parameters matching GLOB (repeatable)"},
	{"--val-fraction F", "tail of the data held out (default 0.05)"},
	{"--eval-every N", "validation loss every N steps; 0: never (default 100)"},
	{"--eval-batches K", "validation batches per evaluation; 0: all (default 20)"},
	{"--save-every N", "checkpoint every N steps and at the end (default 500)"},
	{"--keep N", "checkpoints kept (default 3)"},
	{"--log-every N", "steps between log lines, not on a terminal (default 10)"},
	{NULL, NULL},
};

typedef struct TrainOpts {
	rt_TrainConfig c;
	bool given[NCONFIG_OPT];
	const char *data, *weights, *out, *resume;
	const char *freeze[MAX_FREEZE];
	int nfreeze;
	bool decay_all, profile;
	long long keep, log_every;
	DynamicOpts dyn;
} TrainOpts;

static int parse_double(const char *opt, const char *s, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (!*s || *end || errno || !(v >= lo && v <= hi))
		return usage_error("train", "%s expects a number in [%g, %g], got '%s'", opt, lo, hi,
				   s);
	*out = v;
	return 0;
}

static int set_config(rt_TrainConfig *c, const ConfigOpt *o, const char *v)
{
	char *field = (char *)c + o->off;
	long long n;
	double x = 0;
	switch (o->type) {
	case OPT_I64:
		if (args_int("train", o->name, v, (long long)o->lo, (long long)o->hi, &n))
			return -1;
		*(int64_t *)field = n;
		return 0;
	case OPT_F64:
		if (parse_double(o->name, v, o->lo, o->hi, &x))
			return -1;
		*(double *)field = x;
		return 0;
	case OPT_SEED:
		if (args_int("train", o->name, v, 0, 0x7fffffffffffffffLL, &n))
			return -1;
		*(uint64_t *)field = (uint64_t)n;
		return 0;
	case OPT_SCHED:
		if (strcmp(v, "cosine") && strcmp(v, "constant"))
			return usage_error("train", "--schedule expects cosine or constant, got '%s'", v);
		*(rt_Schedule *)field = !strcmp(v, "cosine") ? RT_SCHED_COSINE : RT_SCHED_CONSTANT;
		return 0;
	case OPT_ORDER:
		if (strcmp(v, "random") && strcmp(v, "sequential"))
			return usage_error("train", "--order expects random or sequential, got '%s'", v);
		*(rt_Order *)field = !strcmp(v, "random") ? RT_ORDER_RANDOM : RT_ORDER_SEQUENTIAL;
		return 0;
	}
	return -1;
}

static int train_option(Args *a, int argc, char **argv, int i)
{
	TrainOpts *to = a->user;
	int at = i;
	const char *v;
	for (int k = 0; k < NCONFIG_OPT; k++) {
		if (!(v = args_value(argc, argv, &at, config_opt[k].name)))
			continue;
		if (set_config(&to->c, &config_opt[k], v))
			return -1;
		to->given[k] = true;
		return at - i + 1;
	}
	if (!strcmp(argv[i], "--profile")) {
		to->profile = true;
		return 1;
	}
	if (!strcmp(argv[i], "--decay-all")) {
		to->decay_all = true;
		return 1;
	}
	int used = dynamic_option(&to->dyn, argc, argv, i);
	if (used)
		return used;
	if ((v = args_value(argc, argv, &at, "--data"))) {
		to->data = v;
	} else if ((v = args_value(argc, argv, &at, "--weights"))) {
		to->weights = v;
	} else if ((v = args_value(argc, argv, &at, "--out")) || (v = args_value(argc, argv, &at, "-o"))) {
		to->out = v;
	} else if ((v = args_value(argc, argv, &at, "--resume"))) {
		to->resume = v;
	} else if ((v = args_value(argc, argv, &at, "--freeze"))) {
		if (to->nfreeze == MAX_FREEZE)
			return -usage_error("train", "too many --freeze options (at most %d)", MAX_FREEZE);
		to->freeze[to->nfreeze++] = v;
	} else if ((v = args_value(argc, argv, &at, "--keep"))) {
		if (args_int("train", "--keep", v, 1, 1000000, &to->keep))
			return -1;
	} else if ((v = args_value(argc, argv, &at, "--log-every"))) {
		if (args_int("train", "--log-every", v, 1, 1000000000, &to->log_every))
			return -1;
	} else {
		return 0;
	}
	if (!*v)
		return -usage_error("train", "%s needs a value", argv[i]);
	return at - i + 1;
}

static const size_t field_size[] = {
	[OPT_I64] = sizeof(int64_t), [OPT_F64] = sizeof(double), [OPT_SEED] = sizeof(uint64_t),
	[OPT_SCHED] = sizeof(rt_Schedule), [OPT_ORDER] = sizeof(rt_Order),
};

/* --resume: options not given come from the run's saved configuration. */
static int merge_saved(TrainOpts *to, const rt_Checkpoint *ck, Diag *d)
{
	rt_TrainConfig saved = to->c;
	if (rt_train_config_parse(ck->state_json, &saved, d))
		return -1;
	for (int k = 0; k < NCONFIG_OPT; k++) {
		if (to->given[k])
			continue;
		memcpy((char *)&to->c + config_opt[k].off, (char *)&saved + config_opt[k].off,
		       field_size[config_opt[k].type]);
	}
	return 0;
}

/* mkdir -p for the run folder's parents (rt_run_lock makes the folder
 * itself). */
static void make_parents(const char *path)
{
	char buf[4096];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		mkdir(buf, 0777);
		*p = '/';
	}
}

/* The default run folder: runs/<model file name without .msw>. */
static const char *default_out(const char *model, char *buf, size_t n)
{
	const char *base = strrchr(model, '/');
	base = base ? base + 1 : model;
	size_t len = strlen(base);
	if (len > 4 && !strcmp(base + len - 4, ".msw"))
		len -= 4;
	snprintf(buf, n, "runs/%.*s", (int)len, base);
	return buf;
}

/* --- progress --- */

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

typedef struct Progress {
	bool tty;
	int64_t first_step;   /* step count when this process started */
	long long log_every;
	double t0, drawn;     /* start, last redraw of the terminal line (-1: none) */
	int64_t drawn_step, tokens_per_step;
	int64_t stop_at;      /* end the segment after this step (0: run to the end) */
	rt_TrainStatus last;
} Progress;

static void fmt_time(double s, char *buf, size_t n)
{
	long long t = (long long)(s + 0.5);
	if (t >= 3600)
		snprintf(buf, n, "%lldh%02lldm", t / 3600, t / 60 % 60);
	else if (t >= 60)
		snprintf(buf, n, "%lldm%02llds", t / 60, t % 60);
	else
		snprintf(buf, n, "%llds", t);
}

static int on_step(void *user, const rt_TrainStatus *st)
{
	Progress *pr = user;
	pr->last = *st;
	double el = now_seconds() - pr->t0;
	double per = el / (double)(st->step - pr->first_step);
	char eta[32], val[48] = "";
	fmt_time(per * (double)(st->steps - st->step), eta, sizeof eta);
	if (!isnan(st->val_loss))
		snprintf(val, sizeof val, " | val %.4f", st->val_loss);
	bool line = !isnan(st->val_loss) || st->step == st->steps || interrupted;
	if (pr->tty) {
		/* At most ten redraws a second: small models take a millisecond
		 * a step, and the terminal would become the bottleneck. */
		if (!line && el - pr->drawn < 0.1)
			return interrupted != 0;
		/* tokens/s over the steps since the last redraw: one step's rate
		 * jumps with every page fault and context switch. */
		double rate = pr->drawn < 0 ? st->tokens_per_s
			      : (double)((st->step - pr->drawn_step) * pr->tokens_per_step) /
					(el - pr->drawn > 0 ? el - pr->drawn : 1e-9);
		pr->drawn = el;
		pr->drawn_step = st->step;
		char bar[21];
		int fill = (int)(20 * st->step / (st->steps ? st->steps : 1));
		for (int i = 0; i < 20; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[20] = 0;
		fprintf(stderr, "\r[%s] step %lld/%lld | loss %.4f | lr %.2e | %.0f tok/s | ETA %s%s"
			"\033[K", bar, (long long)st->step, (long long)st->steps, st->loss, st->lr,
			rate, eta, val);
		if (line)
			fputc('\n', stderr);
	} else if (line || st->step % pr->log_every == 0 || st->step == pr->first_step + 1) {
		fprintf(stderr, "step %lld/%lld loss %.6f lr %.3e grad_norm %.4f tok/s %.0f eta %s%s\n",
			(long long)st->step, (long long)st->steps, st->loss, st->lr, st->grad_norm,
			st->tokens_per_s, eta, val);
	}
	fflush(stderr);
	return interrupted != 0 || (pr->stop_at && st->step >= pr->stop_at);
}

/* The sparsity the weights really have after training: zeros per sparse
 * param, and any pruned weight that is not zero (a broken invariant). */
static int report_sparsity(rt_Exec *e, const Graph *g, Diag *d)
{
	int rc = 0;
	for (size_t i = 0; i < g->mask.len; i++) {
		const Mask *m = &VEC_AT(g->mask, Mask, i);
		const char *name = ir_str(g, ir_node(g, m->param)->name);
		int64_t numel = ir_numel(&ir_node(g, m->param)->shape), zeros, bad;
		if (i == 0)
			fprintf(stderr, "zeros in the trained sparse weights:\n");
		if (rt_sparsity_check(e, name, &zeros, &bad))
			continue;
		fprintf(stderr, "  %-36s zeros %lld/%lld (%.2f%%)\n", name, (long long)zeros,
			(long long)numel, numel ? 100.0 * (double)zeros / (double)numel : 0.0);
		if (bad)
			rc = diag_error(d, (SrcLoc){0}, "internal: %lld pruned weights of '%s' are not "
					"zero", (long long)bad, name);
	}
	return rc;
}

/* --- setting up the run --- */

static int start_weights(const TrainOpts *to, const rt_TensorFile *w, rt_Exec *e, Diag *d)
{
	if (to->weights)
		return rt_load_params_from(e, w, to->weights, 0, d);
	if (rt_init_params(e, to->c.seed))
		return diag_error(d, (SrcLoc){0}, "cannot initialise the parameters");
	return 0;
}

/* A fresh run must not mix with an old one in the same folder. */
static int check_fresh(const char *dir)
{
	rt_Checkpoint ck;
	Diag d;
	diag_init(&d);
	int r = rt_checkpoint_load_latest(dir, &ck, &d);
	if (r == 0)
		rt_checkpoint_free(&ck);
	diag_free(&d);
	if (r != 1) {
		fprintf(stderr, "mswc train: error: %s already holds a training run; continue it "
			"with --resume %s, or choose another --out\n", dir, dir);
		return -1;
	}
	return 0;
}

static bool given(const TrainOpts *to, const char *name)
{
	for (int k = 0; k < NCONFIG_OPT; k++)
		if (!strcmp(config_opt[k].name, name))
			return to->given[k];
	return false;
}

/* Periodic validation needs a whole batch in the validation split; when
 * the user did not ask for it, a small data set just goes without. */
static int check_eval(TrainOpts *to, const rt_Data *data, Diag *d)
{
	if (!to->c.eval_every || rt_data_val_batches(data, to->c.batch, to->c.seq) > 0)
		return 0;
	if (given(to, "--eval-every"))
		return diag_error(d, (SrcLoc){0}, "--eval-every: the validation split (%lld tokens) "
				  "holds no whole batch; raise --val-fraction or lower --batch or "
				  "--seq", (long long)(data->ntok - data->ntrain));
	fprintf(stderr, "note: the validation split holds no whole batch; no validation loss\n");
	to->c.eval_every = 0;
	return 0;
}

static int train(TrainOpts *to, const Args *a, Build *b, const rt_TensorFile *w,
		 rt_Checkpoint *ck)
{
	rt_Data data = {0};
	rt_Pool *pool = NULL;
	rt_Exec *e = NULL;
	rt_Trainer *t = NULL;
	Diag *d = &b->diag;
	int rc = EXIT_FAIL;
	if (rt_data_load(to->data, to->c.val_fraction, &data, d) || check_eval(to, &data, d) ||
	    data_vocab_check(to->data, &data, b->g, d) || start_exec(b, a->threads, &pool, &e))
		goto fail;
	if (!ck && start_weights(to, w, e, d))
		goto fail;
	if (rt_trainer_create(e, &data, &to->c, &t, d) || (ck && rt_trainer_resume(t, ck, d)))
		goto fail;
	int64_t done = rt_trainer_step_count(t);
	fprintf(stderr, "training %s: %lld tokens (%lld train, %lld validation), batch %lld x seq "
		"%lld, %s, %d thread%s, run folder %s\n", a->model, (long long)data.ntok,
		(long long)data.ntrain, (long long)(data.ntok - data.ntrain), (long long)to->c.batch,
		(long long)to->c.seq, ck ? "resumed" : to->weights ? "from --weights" : "fresh init",
		rt_pool_size(pool), rt_pool_size(pool) == 1 ? "" : "s", to->c.run_dir);
	if (done >= to->c.steps)
		fprintf(stderr, "the run is already at step %lld of %lld\n", (long long)done,
			(long long)to->c.steps);
	Progress pr = {.tty = isatty(2), .first_step = done, .log_every = to->log_every,
		       .t0 = now_seconds(), .drawn = -1, .drawn_step = done,
		       .tokens_per_step = to->c.batch * to->c.seq,
		       .stop_at = dynamic_next_stop(&to->dyn, done, to->c.steps)};
	/* One-shot: a second Ctrl-C kills at once, which checkpoints survive. */
	struct sigaction sa = {.sa_handler = on_sigint, .sa_flags = SA_RESETHAND}, old;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old);
	rt_exec_profile(e, to->profile);
	int r = rt_trainer_run(t, on_step, &pr, d);
	sigaction(SIGINT, &old, NULL);
	if (to->profile)
		rt_exec_print_profile(e, stderr);
	if (r < 0)
		goto fail;
	if (report_sparsity(e, b->g, d))
		goto fail;
	if (r == 2) {
		if (pr.tty)
			fputc('\n', stderr);
		fputs(diag_text(d), stderr);
		fprintf(stderr, "mswc train: stopped on a non-finite value; nothing of that step "
			"was saved (checkpoints in %s are from before it)\n", to->c.run_dir);
		goto done;
	}
	if (r == 1 && !interrupted && pr.stop_at && pr.last.step == pr.stop_at) {
		rc = SEGMENT_END;   /* the masks change here */
	} else if (r == 1) {
		fprintf(stderr, "interrupted: checkpoint of step %lld written; continue with "
			"--resume %s\n", (long long)rt_trainer_step_count(t), to->c.run_dir);
		rc = 130;
	} else if (pr.last.step == 0) {
		fprintf(stderr, "done: step %lld, nothing to train\n",
			(long long)rt_trainer_step_count(t));
		rc = 0;
	} else {
		fprintf(stderr, "done: step %lld, last loss %.6f; weights in %s/last.safetensors\n",
			(long long)rt_trainer_step_count(t), pr.last.loss, to->c.run_dir);
		rc = 0;
	}
	goto done;
fail:
	fputs(diag_text(d), stderr);
done:
	rt_trainer_destroy(t);
	rt_exec_destroy(e);
	rt_pool_destroy(pool);
	rt_data_free(&data);
	return rc;
}

/* Compile for training with the masks of the starting weights or the
 * checkpoint (they win over --sparsity; --dense drops them), then train. */
static int build_and_train(TrainOpts *to, Args *a, rt_Checkpoint *ck, Diag *d)
{
	fe_InputShape in[2] = {{.name = "tokens", .rank = 2, .dim = {to->c.batch, to->c.seq}},
			       {.name = "targets", .rank = 2, .dim = {to->c.batch, to->c.seq}}};
	rt_TensorFile wf = {0};
	PruneTensor *masks = NULL;
	int nmasks = 0;
	if ((to->weights && weights_read(to->weights, a, &wf, &masks, &nmasks, d)) ||
	    (ck && !a->dense && sparse_tensors(&ck->model, ck->dir, true, &masks, &nmasks, d))) {
		fputs(diag_text(d), stderr);
		return EXIT_FAIL;
	}
	BuildOptions bo = {.args = a, .input = in, .ninput = 2, .training = true,
			   .optimizer = true, .decay_all = to->decay_all, .freeze = to->freeze,
			   .nfreeze = to->nfreeze, .stage = STAGE_PROGRAM, .seed = to->c.seed,
			   .masks = masks, .nmasks = nmasks};
	Build b;
	int rc = build_run(&b, &bo);
	sparse_tensors_free(masks, nmasks);
	if (rc == 0 && !ck)
		pass_prune_report(b.g, stderr);
	if (rc == 0)
		rc = train(to, a, &b, &wf, ck);
	rt_tensorfile_free(&wf);
	build_free(&b);
	return rc;
}

int cmd_train(int argc, char **argv)
{
	TrainOpts to = {.keep = 3, .log_every = 10, .dyn = {.every = 100, .alpha = 0.3}};
	rt_train_defaults(&to.c);
	to.c.eval_every = 100;
	to.c.eval_batches = 20;
	Args a = {.cmd = "train", .user = &to};
	if (args_parse(&a, argc, argv, train_option))
		return EXIT_USAGE;
	if (!to.data)
		return usage_error("train", "no --data given (a text file or a folder of them)");
	if (to.resume && to.out && strcmp(to.resume, to.out))
		return usage_error("train", "--resume continues in its own folder; --out differs");
	if (to.resume && to.weights)
		return usage_error("train", "--weights and --resume exclude each other");
	if (to.dyn.method != DYN_NONE && a.dense)
		return usage_error("train", "--dynamic changes masks; --dense has none");
	if (to.dyn.method == DYN_GRADUAL && !a.has_sparsity)
		return usage_error("train", "--dynamic gradual prunes towards --sparsity S; give S");
	/* Text a task evaluates on, pre-trained on, makes its score meaningless
	 * (docs/tasks.md); a warning, since a user may mean it. */
	char leak[4096];
	const rt_TaskInfo *task = rt_task_data_in(to.data, leak, sizeof leak);
	if (task)
		fprintf(stderr, "mswc train: warning: --data %s holds %s, evaluation data of task "
			"'%s': 'mswc eval --task %s' would score the model on text it was trained "
			"on\n", to.data, leak, task->name, task->name);
	char outbuf[4096];
	to.c.run_dir = to.resume ? to.resume : to.out ? to.out : default_out(a.model, outbuf,
									   sizeof outbuf);
	to.c.keep = (int)to.keep;
	Diag d;
	diag_init(&d);
	rt_Checkpoint ck;
	bool have_ck = false;
	int rc = EXIT_FAIL, lock = -1;
	/* Before anything is read or written: a second trainer on this folder
	 * would interleave its metrics and checkpoints with ours. */
	if (!to.resume)
		make_parents(to.c.run_dir);
	if (rt_run_lock(to.c.run_dir, !to.resume, &lock, &d) < 0)
		goto fail;
	if (to.resume) {
		int r = rt_checkpoint_load_latest(to.resume, &ck, &d);
		if (r == 1)
			diag_error(&d, (SrcLoc){0}, "%s: no checkpoint to resume from", to.resume);
		if (r)
			goto fail;
		have_ck = true;
		for (const char *w = ck.warning; w && *w;) {
			int n = (int)strcspn(w, "\n");
			fprintf(stderr, "mswc train: warning: %.*s\n", n, w);
			w += n + (w[n] == '\n');
		}
		if (merge_saved(&to, &ck, &d))
			goto fail;
	} else if (check_fresh(to.c.run_dir)) {
		goto done;
	}
	if (to.c.seq < 1 || to.c.batch < 1) {
		diag_error(&d, (SrcLoc){0}, "%s: the saved batch and seq are not positive", to.resume);
		goto fail;
	}
	if (to.dyn.method == DYN_GRADUAL) {
		to.dyn.target = a.sparsity;
		a.sparsity = 0;   /* the run starts dense: masks that keep everything */
	}
	/* A run resumed where the masks change: the checkpoint holds the old ones. */
	if (have_ck && dynamic_due(&to.dyn, ck.step, to.c.steps) &&
	    dynamic_update(&to.dyn, &a, &to.c, to.data, &ck, &d))
		goto fail;
	for (;;) {
		rc = build_and_train(&to, &a, have_ck ? &ck : NULL, &d);
		if (rc != SEGMENT_END)
			break;
		/* The segment wrote a checkpoint of this step: change its masks and
		 * go on from it with a program compiled for them. */
		if (have_ck)
			rt_checkpoint_free(&ck);
		have_ck = false;
		if (rt_checkpoint_load_latest(to.c.run_dir, &ck, &d))
			goto fail;
		have_ck = true;
		to.weights = NULL;
		if (dynamic_update(&to.dyn, &a, &to.c, to.data, &ck, &d))
			goto fail;
	}
	goto done;
fail:
	fputs(diag_text(&d), stderr);
	rc = EXIT_FAIL;
done:
	if (have_ck)
		rt_checkpoint_free(&ck);
	rt_run_unlock(lock);
	diag_free(&d);
	return rc;
}
