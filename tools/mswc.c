/* mswc.c: the command-line entry point; dispatches to one file per
 * subcommand. Exit status: 0 success, 1 user error, 2 internal failure. */
#include "tools.h"

#include <stdio.h>
#include <string.h>

#define MSWC_VERSION "0.1.0"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} commands[] = {
	{"compile", cmd_compile, "compile MODEL.msw [--emit=ir|llvm|asm] [--dump-after=PASS] "
				 "[--stop-after=PASS] [--train | --decode]"},
	{"init", cmd_init, "init MODEL.msw -o WEIGHTS.safetensors [--seed N]"},
	{"prune", cmd_prune, "prune MODEL.msw --weights DENSE.safetensors --sparsity S "
			     "[--method magnitude|random] [--distribution uniform|erk] "
			     "-o SPARSE.safetensors"},
	{"run", cmd_run, "run MODEL.msw --weights W.safetensors --input NAME=FILE.npy... "
			 "[--out OUT.safetensors] [--repeat N] [--profile]"},
	{"encode", cmd_encode, "encode TEXT -o TOKENS.npy [--targets T.npy] [--batch B] [--seq T] "
			       "[--offset O]"},
	{"train", cmd_train, "train MODEL.msw --data PATH [--batch B] [--seq T] [--steps N] "
			     "[--lr X] [--out DIR | --resume DIR] ... (docs/training.md)"},
	{"eval", cmd_eval, "eval MODEL.msw --weights W.safetensors --data PATH [--batch B] "
			   "[--seq T] [--all]"},
	{"generate", cmd_generate, "generate MODEL.msw --weights W.safetensors (--prompt TEXT | "
				   "--prompt-file F) [-n N] [--temperature T] [--top-k K] [--top-p P] "
				   "[--seed S] [--greedy]"},
	{"bench", cmd_bench, "bench matmul [--threads N] [--shapes M,K,N;...] [--reps R] [--cpu-clock] | bench sparse MODEL ... | bench calibrate"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: mswc <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  mswc %s\n", commands[i].help);
	fprintf(f, "\noptions every model command takes:\n"
		   "  -D name=value   override a hyperparameter or bind an input dimension\n"
		   "  --threads N     worker threads (default: all cores)\n"
		   "  --sparsity S    prune every covered weight matrix to S zeros (docs/sparsity.md)\n"
		   "  --distribution uniform|erk   how S spreads over the layers\n"
		   "  --dense         drop the model's and the checkpoint's masks\n"
		   "  --sparse-format auto|masked|csr|unrolled   kernels for sparse weights (default auto:\n"
		   "                  the cost model picks per weight and product)\n"
		   "\nThe language is described in docs/language.md.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USER;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
		printf("mswc %s\n", MSWC_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(cmd, commands[i].name))
			return commands[i].fn(argc - 2, argv + 2);
	fprintf(stderr, "mswc: error: unknown command '%s'\n", cmd);
	usage(stderr);
	return EXIT_USER;
}
