/* cmd_eval.c: `mswc eval MODEL.msw --weights W.safetensors --data PATH
 *             [--batch B] [--seq T] [--val-fraction F | --all] [--batches K]`
 *        or   `mswc eval MODEL.msw --weights W.safetensors --task NAME [...]`
 *
 * With --task, the score on a biomedical classification task instead
 * (eval_task.c, docs/tasks.md); --batch and --seq then size the scoring
 * runs. Otherwise: *
 * The held-out loss of a model: the data is split exactly as `mswc train`
 * splits it (runtime/data.c), and the loss is averaged over the whole
 * batches of the validation tail (windows of seq + 1 tokens that do not
 * overlap in their targets), or of the whole file with --all. Prints the
 * mean loss and its perplexity exp(loss). The program is the forward pass
 * with the loss only: nothing is trained. Masks in the weights file are
 * compiled in, as for `mswc run`. */
#include "tools.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct EvalOpts {
	const char *weights, *data;
	long long batch, seq, batches;
	double val_fraction;
	bool all, has_seq, has_val, has_batches;
	TaskOpts task;
} EvalOpts;

const OptHelp eval_options[] = {
	{"--weights FILE", "the parameters (required)"},
	{"--data PATH", "text file or folder, split as 'mswc train' splits it (or --task)"},
	{"--batch B", "rows per batch (default 16)"},
	{"--seq T", "tokens per row (default 128; with --task: the trained seq, else ctx)"},
	{"--val-fraction F", "the tail held out for validation (default 0.05)"},
	{"--all", "the loss over the whole data, not the validation tail"},
	{"--batches K", "at most K batches (default 0: all)"},
	{NULL, NULL},
};

static int eval_option(Args *a, int argc, char **argv, int i)
{
	EvalOpts *eo = a->user;
	int at = i;
	const char *v;
	int used = eval_task_option(&eo->task, argc, argv, i);
	if (used)
		return used;
	if (!strcmp(argv[i], "--all")) {
		eo->all = true;
		return 1;
	}
	if ((v = args_value(argc, argv, &at, "--weights"))) {
		eo->weights = v;
	} else if ((v = args_value(argc, argv, &at, "--data"))) {
		eo->data = v;
	} else if ((v = args_value(argc, argv, &at, "--batch"))) {
		if (args_int("eval", "--batch", v, 1, 1 << 20, &eo->batch))
			return -1;
	} else if ((v = args_value(argc, argv, &at, "--seq"))) {
		if (args_int("eval", "--seq", v, 1, 1 << 24, &eo->seq))
			return -1;
		eo->has_seq = true;
	} else if ((v = args_value(argc, argv, &at, "--batches"))) {
		if (args_int("eval", "--batches", v, 0, 1LL << 40, &eo->batches))
			return -1;
		eo->has_batches = true;
	} else if ((v = args_value(argc, argv, &at, "--val-fraction"))) {
		char *end;
		errno = 0;
		eo->val_fraction = strtod(v, &end);
		if (!*v || *end || errno || !(eo->val_fraction > 0 && eo->val_fraction < 1))
			return -usage_error("eval", "--val-fraction expects a number in (0, 1), got '%s'",
					    v);
		eo->has_val = true;
	} else {
		return 0;
	}
	if (!*v)
		return -usage_error("eval", "%s needs a value", argv[i]);
	return at - i + 1;
}

static const rt_Slot *loss_slot(const rt_Program *p)
{
	for (size_t i = 0; i < p->slot.len; i++)
		if (VEC_AT(p->slot, rt_Slot, i).kind == RT_SLOT_LOSS)
			return &VEC_AT(p->slot, rt_Slot, i);
	return NULL;
}

static int evaluate(const EvalOpts *eo, const Args *a, Build *b, const rt_TensorFile *w,
		    const rt_Data *data)
{
	Diag *d = &b->diag;
	rt_Pool *pool;
	rt_Exec *e;
	rt_Tensor tok, tgt;
	const rt_Slot *ls = loss_slot(b->prog);
	int rc = start_exec(b, a->threads, &pool, &e);
	if (rc)
		goto done;
	rc = EXIT_FAIL;
	if (!ls || rt_exec_tensor(e, "tokens", &tok) || rt_exec_tensor(e, "targets", &tgt)) {
		diag_error(d, (SrcLoc){0}, "the model needs inputs 'tokens' and 'targets' and a loss");
		goto done;
	}
	if (rt_load_params_from(e, w, eo->weights, 0, d) ||
	    data_vocab_check(eo->data, data, b->g, d))
		goto done;
	int64_t have = rt_data_val_batches(data, eo->batch, eo->seq);
	int64_t n = eo->batches > 0 && eo->batches < have ? eo->batches : have;
	if (n < 1) {
		diag_error(d, (SrcLoc){0}, "%s: the %s (%lld tokens) holds no whole batch of %lld x "
			   "%lld tokens; lower --batch or --seq", eo->data,
			   eo->all ? "data" : "validation split", (long long)(data->ntok - data->ntrain),
			   eo->batch, eo->seq + 1);
		goto done;
	}
	rt_Tensor lt;
	rt_exec_slot_tensor(e, ls, &lt);
	double sum = 0;
	for (int64_t i = 0; i < n; i++) {
		if (rt_data_val_batch(data, i, eo->batch, eo->seq, tok.data, tgt.data, d))
			goto done;
		rt_exec_run(e);
		sum += *(const float *)lt.data;
	}
	double loss = sum / (double)n;
	printf("loss %.6f perplexity %.4f (%lld batches of %lld x %lld, %lld tokens, %s)\n", loss,
	       exp(loss), (long long)n, eo->batch, eo->seq, (long long)(n * eo->batch * eo->seq),
	       eo->all ? "whole data" : "validation split");
	rc = 0;
done:
	if (rc)
		fputs(diag_text(d), stderr);
	rt_exec_destroy(e);
	rt_pool_destroy(pool);
	return rc;
}

int cmd_eval(int argc, char **argv)
{
	EvalOpts eo = {.batch = 16, .seq = 128, .val_fraction = 0.05,
		       .task = {.split = RT_SPLIT_TEST}};
	Args a = {.cmd = "eval", .user = &eo};
	if (args_parse(&a, argc, argv, eval_option))
		return EXIT_USAGE;
	if (!eo.weights)
		return usage_error("eval", "no --weights given");
	const TaskOpts *to = &eo.task;
	if (to->task) {
		const char *other = eo.data ? "--data" : eo.all ? "--all" : eo.has_val ?
				    "--val-fraction" : eo.has_batches ? "--batches" : NULL;
		if (other)
			return usage_error("eval", "%s is for the held-out loss; --task scores a "
					   "task", other);
		return eval_task(&a, to, eo.weights, eo.batch, eo.has_seq ? eo.seq : 0);
	}
	const char *topt = to->has_split ? "--split" : to->limit ? "--limit" : to->predictions ?
			   "--predictions" : to->has_norm ? "--norm" : to->root ? "--task-data" : NULL;
	if (topt)
		return usage_error("eval", "%s goes with --task", topt);
	if (!eo.data)
		return usage_error("eval", "no --data given (or --task NAME)");
	rt_Data data = {0};
	rt_TensorFile w = {0};
	PruneTensor *masks = NULL;
	int nmasks = 0, rc = EXIT_FAIL;
	Diag d;
	diag_init(&d);
	if (rt_data_load(eo.data, eo.all ? 0 : eo.val_fraction, &data, &d) ||
	    weights_read(eo.weights, &a, &w, &masks, &nmasks, &d)) {
		fputs(diag_text(&d), stderr);
		goto done;
	}
	/* --all: the whole stream is the validation part. */
	if (eo.all)
		data.ntrain = 0;
	fe_InputShape in[2] = {{.name = "tokens", .rank = 2, .dim = {eo.batch, eo.seq}},
			       {.name = "targets", .rank = 2, .dim = {eo.batch, eo.seq}}};
	BuildOptions bo = {.args = &a, .input = in, .ninput = 2, .auto_loss = true,
			   .stage = STAGE_PROGRAM, .masks = masks, .nmasks = nmasks};
	Build b;
	rc = build_run(&b, &bo);
	if (rc == 0)
		rc = evaluate(&eo, &a, &b, &w, &data);
	build_free(&b);
done:
	sparse_tensors_free(masks, nmasks);
	rt_tensorfile_free(&w);
	rt_data_free(&data);
	diag_free(&d);
	return rc;
}
