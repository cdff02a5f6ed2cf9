/* eval_task.c: `mswc eval MODEL.msw --weights W --task pubmedqa|hoc|medabstracts
 *              [--split train|dev|test|all] [--limit N] [--predictions FILE]
 *              [--norm sum|mean|pmi] [--task-data DIR] [--batch B] [--seq T]`
 *
 * A model's score on a biomedical classification task (docs/tasks.md):
 * the split is read from the task data (runtime/task*.c), every candidate
 * (prompt, label) is scored by the model's log-likelihood of the label's
 * bytes after the prompt, B candidates per forward run of T tokens, and
 * the metrics are printed beside the majority-class and random baselines.
 *
 * The window T: --seq, else the sequence length the weights were trained
 * at ("mswc.train_seq" metadata, positions beyond it never trained), else
 * the model's context (the default length of its tokens input); never more
 * than the longest candidate needs, so small models on short text compile
 * small programs. The task data is found at --task-data, else $MSW_DATA,
 * else ../shared/data (the layout of the shared data folder). */
#include "tools.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const OptHelp eval_task_options[] = {
	{"--task NAME", "score a task instead: pubmedqa, hoc or medabstracts (docs/tasks.md)"},
	{"--split S", "with --task: train, dev, test (default) or all"},
	{"--limit N", "with --task: the first N examples of the split (a fixed sample)"},
	{"--predictions FILE", "with --task: per-example predictions, TSV or (.jsonl) JSON lines"},
	{"--norm sum|mean|pmi", "with --task: a label's log-likelihood (sum, the default), per "
				"byte, or less its prior"},
	{"--task-data DIR", "with --task: the data folder (default $MSW_DATA, else "
			    "../shared/data)"},
	{NULL, NULL},
};

int eval_task_option(TaskOpts *o, int argc, char **argv, int i)
{
	int at = i;
	const char *v;
	if ((v = args_value(argc, argv, &at, "--task"))) {
		if (!(o->task = rt_task_find(v)))
			return -usage_error("eval", "--task expects pubmedqa, hoc or medabstracts, "
					    "got '%s'", v);
	} else if ((v = args_value(argc, argv, &at, "--split"))) {
		o->split = -1;
		for (int k = 0; k < RT_SPLIT_COUNT; k++)
			if (!strcmp(v, rt_split_name[k]))
				o->split = k;
		if (o->split < 0)
			return -usage_error("eval", "--split expects train, dev, test or all, got "
					    "'%s'", v);
		o->has_split = true;
	} else if ((v = args_value(argc, argv, &at, "--limit"))) {
		if (args_int("eval", "--limit", v, 1, 1LL << 40, &o->limit))
			return -1;
	} else if ((v = args_value(argc, argv, &at, "--predictions"))) {
		o->predictions = v;
	} else if ((v = args_value(argc, argv, &at, "--norm"))) {
		o->norm = -1;
		for (int k = 0; k < RT_NORM_COUNT; k++)
			if (!strcmp(v, rt_task_norm_name[k]))
				o->norm = k;
		if (o->norm < 0)
			return -usage_error("eval", "--norm expects sum, mean or pmi, got '%s'", v);
		o->has_norm = true;
	} else if ((v = args_value(argc, argv, &at, "--task-data"))) {
		o->root = v;
	} else {
		return 0;
	}
	if (!*v)
		return -usage_error("eval", "%s needs a value", argv[i]);
	return at - i + 1;
}

/* The model's own length of its tokens input (the default of `seq`: the
 * context of gpt.msw), from the frontend alone. */
static int model_seq(const Args *a, int64_t *seq, Diag *d)
{
	size_t n = strlen(a->model);
	if (n > 6 && !strcmp(a->model + n - 6, ".mswir"))
		return diag_error(d, (SrcLoc){0}, "%s: --task needs a .msw model (the batch and "
				  "the window are chosen when it is compiled)", a->model);
	fe_Session *s = fe_session_create();
	Graph *g = NULL;
	fe_Options fo = {.def = a->def, .ndef = a->ndef};
	int rc = -1;
	if (!s)
		diag_error(d, (SrcLoc){0}, "out of memory");
	else if (!fe_compile_file(s, a->model, &fo, &g, d)) {
		ValId v = ir_find_input(g, "tokens");
		const Node *x = v == VAL_NONE ? NULL : ir_node(g, v);
		if (!x || x->shape.rank != 2)
			diag_error(d, (SrcLoc){0}, "%s: --task needs a model with an input 'tokens' "
				   "of shape [batch, seq]", a->model);
		else {
			*seq = x->shape.dim[1];
			rc = 0;
		}
	}
	ir_graph_destroy(g);
	fe_session_destroy(s);
	return rc;
}

static void progress(void *user, int64_t done, int64_t total)
{
	double t0 = *(const double *)user;
	fprintf(stderr, "\r  %lld/%lld candidates, %.0f s", (long long)done, (long long)total,
		now_seconds() - t0);
	if (done == total)
		fputs("\r\033[K", stderr);
}

static void print_counts(const rt_TaskInfo *t, const rt_TaskReport *r)
{
	printf("gold:");
	for (int c = 0; c < t->nclass; c++)
		printf("%s %s %lld", c ? "," : "", t->class_name[c], (long long)r->count[c]);
	printf("\n");
}

static void print_scores(const rt_TaskInfo *t, const rt_TaskReport *r)
{
	printf("%-10s %8s %9s %8s\n", "metric", "model", "majority", "random");
	if (t->multilabel) {
		printf("%-10s %8.4f %9.4f %8.4f\n", "micro-F1", r->micro_f1, r->maj_micro_f1,
		       r->rnd_micro_f1);
	} else {
		printf("%-10s %8.4f %9.4f %8.4f\n", "accuracy", r->accuracy, r->maj_accuracy,
		       r->rnd_accuracy);
		printf("%-10s %8.4f %9.4f %8.4f\n", "macro-F1", r->macro_f1, r->maj_macro_f1,
		       r->rnd_macro_f1);
	}
	if (t->multilabel)
		printf("every hallmark predicted for every abstract: micro-F1 %.4f\n", r->all_micro_f1);
	printf("majority class: %s; random: %s\n",
	       r->majority >= 0 ? t->class_name[r->majority] : "none",
	       t->multilabel ? "each hallmark with probability 1/2, empty when none (expected counts)"
			     : "uniform over the classes (expected counts)");
}

/* Compile for [batch, T], load the weights, score, report. */
static int score(const Args *a, const TaskOpts *o, const char *weights, long long batch,
		 int64_t T, const rt_TaskSet *set, const rt_TensorFile *w, const PruneTensor *masks,
		 int nmasks)
{
	const rt_TaskInfo *t = set->info;
	fe_InputShape in[1] = {{.name = "tokens", .rank = 2, .dim = {batch, T}}};
	BuildOptions bo = {.args = a, .input = in, .ninput = 1, .auto_loss = true,
			   .stage = STAGE_PROGRAM, .masks = masks, .nmasks = nmasks};
	Build b;
	rt_Pool *pool = NULL;
	rt_Exec *e = NULL;
	rt_TaskScores r = {0};
	Diag *d = &b.diag;
	int rc = build_run(&b, &bo);
	if (rc)
		goto done;   /* reported */
	rc = EXIT_FAIL;
	int64_t vocab = build_vocab(b.g, "tokens");
	if (vocab > 0 && vocab < 256) {
		diag_error(d, (SrcLoc){0}, "%s: the model's vocabulary has %lld tokens; task text "
			   "is bytes, which needs 256 (-D vocab=256)", a->model, (long long)vocab);
		goto fail;
	}
	if (start_exec(&b, a->threads, &pool, &e) || rt_load_params_from(e, w, weights, 0, d))
		goto fail;
	int64_t ncand = (int64_t)set->ex.len * t->nquery * t->nlabel;
	printf("%s %s: %zu examples, %lld candidates (%d per example) in %lld runs of %lld x "
	       "%lld tokens, %d threads\n", t->name, rt_split_name[o->split], set->ex.len,
	       (long long)ncand, t->nquery * t->nlabel, (long long)((ncand + batch - 1) / batch),
	       batch, (long long)T, rt_pool_size(pool));
	fflush(stdout);
	double t0 = now_seconds();
	rt_TaskScoreOpts so = {.norm = (rt_TaskNorm)o->norm, .progress = isatty(2) ? progress : NULL,
			       .user = &t0};
	if (rt_task_score(e, set, &so, &r, d))
		goto fail;
	int64_t keep = T + 1 - rt_task_max_label(t);
	static const char *const how[RT_NORM_COUNT] = {
		"the sum of its bytes' log-probabilities",
		"the mean of its bytes' log-probabilities",
		"the sum of its bytes' log-probabilities less that after the content-free prompt",
	};
	printf("prompts: %lld of %lld cut from the left to their last %lld bytes (the longest "
	       "has %lld); label score: %s\n", (long long)r.ntrunc,
	       (long long)set->ex.len * t->nquery, (long long)keep, (long long)r.prompt_bytes,
	       how[o->norm]);
	printf("scored in %.1f s (%.1f candidates/s)\n", r.seconds,
	       r.seconds > 0 ? (double)r.ncand / r.seconds : 0.0);
	rt_TaskReport rep;
	rt_task_report(set, r.pred, &rep);
	print_counts(t, &rep);
	print_scores(t, &rep);
	if (o->predictions) {
		if (rt_task_write_predictions(o->predictions, set, &r, d))
			goto fail;
		printf("predictions: %s\n", o->predictions);
	}
	rc = 0;
fail:
	if (rc)
		fputs(diag_text(d), stderr);
done:
	rt_task_scores_free(&r);
	rt_exec_destroy(e);
	rt_pool_destroy(pool);
	build_free(&b);
	return rc;
}

int eval_task(const Args *a, const TaskOpts *o, const char *weights, long long batch,
	      long long seq)
{
	const rt_TaskInfo *t = o->task;
	const char *root = o->root ? o->root : getenv("MSW_DATA");
	if (!root || !*root)
		root = "../shared/data";
	rt_TaskSet set = {0};
	rt_TensorFile w = {0};
	PruneTensor *masks = NULL;
	int nmasks = 0, rc = EXIT_FAIL;
	Diag d;
	diag_init(&d);
	char dir[4096];
	struct stat st;
	snprintf(dir, sizeof dir, "%s/%s", root, t->dir);
	if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
		rt_file_error(&d, dir, "no such folder: the task data is read from DIR/%s, DIR "
			      "being --task-data, else $MSW_DATA, else ../shared/data", t->dir);
		goto fail;
	}
	if (rt_task_load(t, root, (rt_Split)o->split, o->limit, &set, &d))
		goto fail;
	if (set.ex.len == 0) {
		rt_file_error(&d, dir, "the %s split holds no example", rt_split_name[o->split]);
		goto fail;
	}
	if (weights_read(weights, a, &w, &masks, &nmasks, &d))
		goto fail;
	int64_t ctx = 0, T = seq;
	if (model_seq(a, &ctx, &d))
		goto fail;
	if (!T) {
		int64_t trained = weights_train_seq(&w);
		T = trained > 0 && trained < ctx ? trained : ctx;
	}
	int64_t need = rt_task_needed_seq(&set);
	if (need < T)
		T = need;
	rc = score(a, o, weights, batch, T, &set, &w, masks, nmasks);
	goto done;
fail:
	fputs(diag_text(&d), stderr);
done:
	sparse_tensors_free(masks, nmasks);
	rt_tensorfile_free(&w);
	rt_task_free(&set);
	diag_free(&d);
	return rc;
}
