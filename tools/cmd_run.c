/* cmd_run.c: `mswc run MODEL.msw --weights W.safetensors --input name=FILE.npy...
 *            [--out OUT.safetensors] [--threads N] [--repeat N] [--profile]`
 *
 * Input shapes come from the .npy files and bind the model's symbolic dims,
 * so one model file serves any batch and sequence length. When every input
 * the model declares is given (e.g. tokens and targets), the loss is
 * computed too. Outputs (and the loss) go to a safetensors file. Masks in
 * the weights file are compiled in (a pruned or sparse-trained checkpoint
 * runs with its sparse kernels; --dense drops them), and token ids are
 * checked against the vocabulary they index before anything runs. */
#include "tools.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct RunOpts {
	const char *weights, *out;
	const char *in_name[MAX_INPUTS], *in_path[MAX_INPUTS];
	int nin;
	long long repeat;
	bool profile;
} RunOpts;

const OptHelp run_options[] = {
	{"--weights FILE", "the parameters, a safetensors file (required)"},
	{"--input NAME=FILE.npy", "a model input, once per input; all of them add the loss"},
	{"-o, --out FILE", "write the outputs (and the loss) to a safetensors file"},
	{"--repeat N", "run N times and report the mean time (default 1)"},
	{"--profile", "time each kernel"},
	{NULL, NULL},
};

static int run_option(Args *a, int argc, char **argv, int i)
{
	RunOpts *ro = a->user;
	int at = i;
	const char *v;
	if ((v = args_value(argc, argv, &at, "--weights"))) {
		ro->weights = v;
	} else if ((v = args_value(argc, argv, &at, "--out")) || (v = args_value(argc, argv, &at, "-o"))) {
		ro->out = v;
	} else if ((v = args_value(argc, argv, &at, "--input"))) {
		const char *eq = strchr(v, '=');
		if (!eq || eq == v || !eq[1])
			return -usage_error("run", "--input expects name=FILE.npy, got '%s'", v);
		if (ro->nin == MAX_INPUTS)
			return -usage_error("run", "too many --input options");
		((char *)eq)[0] = 0;
		for (int k = 0; k < ro->nin; k++)
			if (!strcmp(ro->in_name[k], v))
				return -usage_error("run", "--input %s is given twice", v);
		ro->in_name[ro->nin] = v;
		ro->in_path[ro->nin++] = eq + 1;
	} else if ((v = args_value(argc, argv, &at, "--repeat"))) {
		if (args_int("run", "--repeat", v, 1, 1000000, &ro->repeat))
			return -1;
	} else if (!strcmp(argv[i], "--profile")) {
		ro->profile = true;
	} else {
		return 0;
	}
	return at - i + 1;
}

static int read_inputs(const RunOpts *ro, rt_Tensor *t, fe_InputShape *shape, Diag *d)
{
	for (int i = 0; i < ro->nin; i++) {
		if (rt_npy_read(ro->in_path[i], &t[i], d))
			return -1;
		if (t[i].rank > IR_MAX_RANK)
			return diag_error(d, (SrcLoc){0}, "%s: rank %d is more than %d", ro->in_path[i],
					  t[i].rank, IR_MAX_RANK);
		shape[i].name = ro->in_name[i];
		shape[i].rank = t[i].rank;
		memcpy(shape[i].dim, t[i].dim, sizeof shape[i].dim[0] * (size_t)t[i].rank);
	}
	return 0;
}

static int same_layout(const rt_Slot *s, const rt_Tensor *t)
{
	if (s->dtype != t->dtype || s->rank != t->rank)
		return 0;
	for (int i = 0; i < t->rank; i++)
		if (s->dim[i] != t->dim[i])
			return 0;
	return 1;
}

/* Copy the inputs into the arena; every input the program still reads must
 * be given, every given input must exist in the model, and token ids must
 * lie in the vocabulary they index (an id outside reads outside the table
 * and every logit comes out NaN). */
static int bind_inputs(const RunOpts *ro, const Graph *g, const rt_Program *p, rt_Exec *e,
		       const rt_Tensor *t, Diag *d)
{
	for (int i = 0; i < ro->nin; i++) {
		const rt_Slot *s = rt_program_find(p, ro->in_name[i]);
		if (!s || s->kind != RT_SLOT_INPUT)
			return diag_error(d, (SrcLoc){0}, "--input %s: the model has no input of that name "
					  "(or does not use it)", ro->in_name[i]);
		if (!same_layout(s, &t[i]))
			return diag_error(d, (SrcLoc){0}, "--input %s: %s has dtype %s rank %d; the model "
					  "expects %s rank %d", ro->in_name[i], ro->in_path[i],
					  rt_dtype_name(t[i].dtype), t[i].rank,
					  rt_dtype_name((rt_DType)s->dtype), s->rank);
		if (rt_tokens_check(ro->in_path[i], &t[i], build_vocab(g, s->name), d))
			return -1;
		rt_Tensor dst;
		rt_exec_tensor(e, s->name, &dst);
		memcpy(dst.data, t[i].data, (size_t)rt_nbytes(&t[i]));
	}
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		bool given = false;
		for (int j = 0; j < ro->nin; j++)
			given |= !strcmp(ro->in_name[j], s->name);
		if (s->kind == RT_SLOT_INPUT && !given)
			return diag_error(d, (SrcLoc){0}, "input '%s' is not given (--input %s=FILE.npy)",
					  s->name, s->name);
	}
	return 0;
}

static int64_t count_nonfinite(const rt_Tensor *t)
{
	if (t->dtype != RT_F32)
		return 0;
	int64_t n = 0, len = rt_numel(t);
	for (int64_t i = 0; i < len; i++)
		n += !isfinite(((const float *)t->data)[i]);
	return n;
}

/* Gather outputs and loss as named tensors (views into the arena). */
static int collect_outputs(const rt_Program *p, rt_Exec *e, rt_NamedTensor *out, int max)
{
	int n = 0;
	for (size_t i = 0; i < p->slot.len && n < max; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		if (s->kind != RT_SLOT_OUTPUT && s->kind != RT_SLOT_LOSS)
			continue;
		out[n].name = s->name;
		rt_exec_tensor(e, s->name, &out[n].t);
		n++;
	}
	return n;
}

static void report_outputs(const rt_NamedTensor *out, int n)
{
	for (int i = 0; i < n; i++) {
		const rt_Tensor *t = &out[i].t;
		int64_t bad = count_nonfinite(t);
		if (t->rank == 0 && t->dtype == RT_F32)
			printf("%s = %.6f\n", out[i].name, *(const float *)t->data);
		if (bad)
			fprintf(stderr, "mswc run: warning: %s has %lld non-finite values\n",
				out[i].name, (long long)bad);
	}
}

static int execute(const RunOpts *ro, const Args *a, Build *b, const rt_TensorFile *w,
		   rt_Tensor *in)
{
	rt_Pool *pool;
	rt_Exec *e;
	int rc = start_exec(b, a->threads, &pool, &e);
	if (rc)
		goto done;
	rc = EXIT_FAIL;
	if (rt_load_params_from(e, w, ro->weights, 0, &b->diag) ||
	    bind_inputs(ro, b->g, b->prog, e, in, &b->diag))
		goto done;
	rt_exec_profile(e, ro->profile);
	double t0 = now_seconds();
	for (long long r = 0; r < ro->repeat; r++)
		rt_exec_run(e);
	double dt = (now_seconds() - t0) / (double)ro->repeat;
	rt_NamedTensor out[64];
	int nout = collect_outputs(b->prog, e, out, 64);
	report_outputs(out, nout);
	fprintf(stderr, "forward: %.3f ms per run (%lld runs, %d threads)\n", 1e3 * dt, ro->repeat,
		rt_pool_size(pool));
	if (ro->profile)
		rt_exec_print_profile(e, stderr);
	if (ro->out && rt_safetensors_write(ro->out, out, nout, NULL, &b->diag))
		goto done;
	rc = 0;
done:
	if (rc)
		fputs(diag_text(&b->diag), stderr);
	rt_exec_destroy(e);
	rt_pool_destroy(pool);
	return rc;
}

int cmd_run(int argc, char **argv)
{
	RunOpts ro = {.repeat = 1};
	Args a = {.cmd = "run", .user = &ro};
	if (args_parse(&a, argc, argv, run_option))
		return EXIT_USAGE;
	if (!ro.weights)
		return usage_error("run", "no --weights given (make some with 'mswc init')");
	rt_Tensor in[MAX_INPUTS] = {0};
	fe_InputShape shape[MAX_INPUTS] = {0};
	rt_TensorFile w = {0};
	PruneTensor *masks = NULL;
	int nmasks = 0;
	Diag d;
	diag_init(&d);
	int rc = EXIT_FAIL;
	if (read_inputs(&ro, in, shape, &d) || weights_read(ro.weights, &a, &w, &masks, &nmasks, &d)) {
		fputs(diag_text(&d), stderr);
		goto done;
	}
	BuildOptions bo = {.args = &a, .input = shape, .ninput = ro.nin, .auto_loss = true,
			   .stage = STAGE_PROGRAM, .masks = masks, .nmasks = nmasks};
	Build b;
	rc = build_run(&b, &bo);
	if (rc == 0)
		rc = execute(&ro, &a, &b, &w, in);
	build_free(&b);
done:
	for (int i = 0; i < ro.nin; i++)
		rt_tensor_free(&in[i]);
	sparse_tensors_free(masks, nmasks);
	rt_tensorfile_free(&w);
	diag_free(&d);
	return rc;
}
