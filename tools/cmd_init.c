/* cmd_init.c: `mswc init MODEL.msw -o WEIGHTS.safetensors [--seed N] [-D ...]
 *                        [--sparsity S [--distribution uniform|erk] | --dense]`
 *
 * Draws every parameter from the initialiser the model gives it (the
 * runtime's counter-based generator, keyed by seed and parameter name) and
 * writes them under their hierarchical names, so the file loads in PyTorch
 * (e.g. Hugging Face GPT-2 names for models/gpt.msw). A sparse model's
 * masks are drawn with the same seed (passes/prune.c), its pruned weights
 * are zero, and each mask is written beside its weight as "<name>.mask";
 * the achieved sparsity per parameter is printed. */
#include "tools.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

typedef struct InitOpts {
	const char *out;
	long long seed;
} InitOpts;

const OptHelp init_options[] = {
	{"-o, --out FILE", "the safetensors file to write (required)"},
	{"--seed N", "seed of the initialisation and of the masks (default 1)"},
	{NULL, NULL},
};

static int init_option(Args *a, int argc, char **argv, int i)
{
	InitOpts *io = a->user;
	int at = i;
	const char *v;
	if ((v = args_value(argc, argv, &at, "-o")) || (v = args_value(argc, argv, &at, "--out"))) {
		if (!*v)
			return -usage_error("init", "-o needs a file name");
		io->out = v;
	} else if ((v = args_value(argc, argv, &at, "--seed"))) {
		if (args_int("init", "--seed", v, 0, LLONG_MAX, &io->seed))
			return -1;
	} else {
		return 0;
	}
	return at - i + 1;
}

int cmd_init(int argc, char **argv)
{
	InitOpts io = {.seed = 1};
	Args a = {.cmd = "init", .user = &io};
	if (args_parse(&a, argc, argv, init_option))
		return EXIT_USAGE;
	if (!io.out)
		return usage_error("init", "no output file given (-o FILE.safetensors)");
	BuildOptions bo = {.args = &a, .stage = STAGE_PROGRAM, .seed = (uint64_t)io.seed};
	Build b;
	int rc = build_run(&b, &bo);
	rt_Pool *pool = NULL;
	rt_Exec *e = NULL;
	if (rc)
		goto done;
	if ((rc = start_exec(&b, 1, &pool, &e)))
		goto fail;
	rc = EXIT_FAIL;
	if (rt_init_params(e, (uint64_t)io.seed)) {
		diag_error(&b.diag, (SrcLoc){0}, "cannot initialise parameters");
		goto fail;
	}
	if (rt_save_params(e, io.out, &b.diag))
		goto fail;
	int64_t n = 0, nparam = 0;
	for (size_t i = 0; i < b.prog->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(b.prog->slot, rt_Slot, i);
		if (s->kind == RT_SLOT_PARAM) {
			nparam++;
			n += s->nbytes / rt_dtype_size(s->dtype);
		}
	}
	printf("wrote %s: %lld parameters, %.3f M weights, seed %lld\n", io.out, (long long)nparam,
	       (double)n / 1e6, io.seed);
	pass_prune_report(b.g, stdout);
	rc = 0;
	goto done;
fail:
	fputs(diag_text(&b.diag), stderr);
done:
	rt_exec_destroy(e);
	rt_pool_destroy(pool);
	build_free(&b);
	return rc;
}
