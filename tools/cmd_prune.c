/* cmd_prune.c: `mswc prune MODEL.msw --weights DENSE.safetensors -o SPARSE.safetensors
 *                          [--sparsity S] [--distribution uniform|erk]
 *                          [--method magnitude|random] [--seed N] [-D ...]`
 *
 * One-shot pruning: compiles the model with masks decided from the given
 * weights (magnitude, the default: the largest |w| of each covered param
 * survive, exactly round(S * numel) zeros per param, ERK spreading S when
 * asked) or drawn at random with --seed, then writes the weights with the
 * pruned ones zeroed and each mask beside its weight ("<name>.mask", U8,
 * 1 = kept), and prints the achieved sparsity per parameter. The covered
 * params are the model's sparsity statements or, with none, every weight
 * matrix a matmul reads (docs/sparsity.md). Masks already in the input file
 * are ignored: pruning starts again from its values. */
#include "tools.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

typedef struct PruneOpts {
	const char *out, *weights;
	long long seed;
	PruneMethod method;
} PruneOpts;

const OptHelp prune_options[] = {
	{"--weights FILE", "the dense weights (required)"},
	{"-o, --out FILE", "the pruned weights and their masks (required)"},
	{"--method magnitude|random", "keep the largest |w| (default) or keep at random"},
	{"--seed N", "seed of --method random (default 0)"},
	{NULL, NULL},
};

static int prune_option(Args *a, int argc, char **argv, int i)
{
	PruneOpts *po = a->user;
	int at = i;
	const char *v;
	if ((v = args_value(argc, argv, &at, "-o")) || (v = args_value(argc, argv, &at, "--out"))) {
		po->out = v;
	} else if ((v = args_value(argc, argv, &at, "--weights"))) {
		po->weights = v;
	} else if ((v = args_value(argc, argv, &at, "--seed"))) {
		if (args_int("prune", "--seed", v, 0, LLONG_MAX, &po->seed))
			return -1;
	} else if ((v = args_value(argc, argv, &at, "--method"))) {
		if (strcmp(v, "magnitude") && strcmp(v, "random"))
			return -usage_error("prune", "--method expects magnitude or random, got '%s'", v);
		po->method = !strcmp(v, "magnitude") ? PRUNE_MAGNITUDE : PRUNE_RANDOM;
	} else {
		return 0;
	}
	if (!*v)
		return -usage_error("prune", "%s needs a value", argv[i]);
	return at - i + 1;
}

int cmd_prune(int argc, char **argv)
{
	PruneOpts po = {.method = PRUNE_MAGNITUDE};
	Args a = {.cmd = "prune", .user = &po};
	if (args_parse(&a, argc, argv, prune_option))
		return EXIT_USAGE;
	if (!po.out || !*po.out)
		return usage_error("prune", "no output file given (-o FILE.safetensors)");
	if (!po.weights || !*po.weights)
		return usage_error("prune", "no weights given (--weights FILE.safetensors)");
	if (a.dense)
		return usage_error("prune", "--dense makes nothing to prune");
	Diag d;
	diag_init(&d);
	rt_TensorFile f = {0};
	PruneTensor *w = NULL;
	int nw = 0, rc = EXIT_FAIL;
	Build b;
	memset(&b, 0, sizeof b);
	rt_Pool *pool = NULL;
	rt_Exec *e = NULL;
	if (rt_safetensors_read(po.weights, &f, &d)) {
		fputs(diag_text(&d), stderr);
		diag_free(&d);
		return EXIT_FAIL;
	}
	if (sparse_tensors(&f, po.weights, false, &w, &nw, &d)) {
		fputs(diag_text(&d), stderr);
		goto done;
	}
	BuildOptions bo = {.args = &a, .stage = STAGE_PROGRAM, .seed = (uint64_t)po.seed,
			   .method = po.method, .weights = w, .nweights = nw};
	rc = build_run(&b, &bo);
	if (rc)
		goto done;
	if (!b.g->mask.len) {
		rc = usage_error("prune", "nothing to prune: the model has no sparsity statement "
				 "and no --sparsity was given");
		goto done;
	}
	if ((rc = start_exec(&b, 1, &pool, &e)))
		goto fail;
	rc = EXIT_FAIL;
	if (rt_load_params_from(e, &f, po.weights, RT_LOAD_IGNORE_MASKS, &b.diag))
		goto fail;
	if (rt_save_params(e, po.out, &b.diag))
		goto fail;
	printf("wrote %s: pruned by %s from %s\n", po.out,
	       po.method == PRUNE_MAGNITUDE ? "magnitude" : "random ranking", po.weights);
	pass_prune_report(b.g, stdout);
	rc = 0;
	goto done;
fail:
	fputs(diag_text(&b.diag), stderr);
done:
	rt_exec_destroy(e);
	rt_pool_destroy(pool);
	build_free(&b);
	sparse_tensors_free(w, nw);
	rt_tensorfile_free(&f);
	diag_free(&d);
	return rc;
}
