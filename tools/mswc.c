/* mswc.c: the command-line entry point; dispatches to one file per
 * subcommand and prints the help.
 *
 * The help has one source: the table below gives each command's usage
 * line and summary, and points at the option tables (OptHelp) that live
 * beside the code parsing them; `mswc help` lists the commands, `mswc CMD
 * --help` (or -h, anywhere after CMD) prints one command's options, one
 * line each, to stdout with exit status 0. The exit status of every
 * command: 0 success, 1 failure, 2 usage error (tools.h). */
#include "tools.h"

#include <stdio.h>
#include <string.h>

#define MSWC_VERSION "0.1.0"

/* bench.c, bench_sparse.c and bench_decode.c parse their own options;
 * their help is here. */
static const OptHelp bench_options[] = {
	{"matmul", "dense matmul against OpenBLAS (when built with it)"},
	{"  --threads N", "threads (default: 1, then all cores)"},
	{"  --shapes M,K,N;...", "the products to time"},
	{"  --reps R", "repetitions, the best kept (default 5)"},
	{"  --cpu-clock", "time the thread's CPU time (one thread only)"},
	{"sparse MODEL.msw", "sparse kernels against dense on a model's layers "
			     "(docs/performance.md)"},
	{"decode MODEL.msw", "decode ms/token against the memory-bandwidth floor, prefill, "
			     "batches (docs/performance.md)"},
	{"  --weights F", "the parameters (default: random, seed 1)"},
	{"  --prompt P", "decode windows start at P, P+2n, P+4n (default 32)"},
	{"  -n N", "tokens per decode window (default 32)"},
	{"  --reps R", "repetitions, the best kept (default 3)"},
	{"  --buffer-mib M", "the bandwidth sum's buffer (default: 4 x L3, at least 256)"},
	{"  --torch", "PyTorch's decode too (tools/bench_torch.py)"},
	{"  --sparsity S", "a sparse model too (as do --weights with masks)"},
	{"  -D, --threads N, ...", "as for every model command"},
	{"calibrate", "measure the host rates of the cost models again and cache them"},
	{NULL, NULL},
};

static const OptHelp help_option[] = {{"-h, --help", "print this help"}, {NULL, NULL}};

static const Command commands[] = {
	{"compile", cmd_compile, "MODEL.msw|FILE.mswir [options]",
	 "compile a model; print its IR, LLVM module, assembly or a summary; or --aot, an object for apps",
	 {compile_options}, true},
	{"init", cmd_init, "MODEL.msw -o WEIGHTS.safetensors [options]",
	 "initialise a model's parameters", {init_options}, true},
	{"prune", cmd_prune, "MODEL.msw --weights DENSE.safetensors --sparsity S "
			     "-o SPARSE.safetensors [options]",
	 "prune given weights once (docs/sparsity.md)", {prune_options}, true},
	{"run", cmd_run, "MODEL.msw --weights W.safetensors --input NAME=FILE.npy... [options]",
	 "run a model's forward pass on .npy inputs", {run_options}, true},
	{"encode", cmd_encode, "TEXT -o TOKENS.npy [options]",
	 "byte tokens of a text file as .npy, for 'mswc run'", {encode_options}, false},
	{"train", cmd_train, "MODEL.msw --data PATH [--out DIR | --resume DIR] [options]",
	 "train a model into a run folder (docs/training.md)",
	 {train_options, dynamic_options}, true},
	{"eval", cmd_eval, "MODEL.msw --weights W.safetensors (--data PATH | --task NAME) "
			   "[options]",
	 "the held-out loss and perplexity of weights, or their score on a task "
	 "(docs/tasks.md)", {eval_options, eval_task_options}, true},
	{"generate", cmd_generate, "MODEL.msw --weights W.safetensors (--prompt TEXT | "
				   "--prompt-file F | --prompts F) [options]",
	 "continue a prompt (docs/generation.md)", {generate_options}, true},
	{"place", cmd_place, "MODEL.msw --mesh M [--train] [--sparsity S] [options]",
	 "place a model's step on a mesh of tiles and predict its time (docs/mesh.md)",
	 {place_options}, true},
	{"viz", cmd_viz, "MODEL.msw --what graph|placement [--mesh M] [-o FILE.svg|.png] [options]",
	 "draw the dataflow graph or the placement with Graphviz (docs/mesh.md)",
	 {viz_options}, true},
	{"bench", cmd_bench, "matmul|sparse|decode|calibrate [options]",
	 "benchmarks (docs/performance.md)", {bench_options}, false},
};
enum { NCOMMAND = sizeof commands / sizeof commands[0] };

static const char exit_status[] =
	"exit status:\n"
	"  0  success\n"
	"  1  failure: a bad input file, model or run, out of memory (the message says which)\n"
	"  2  usage error: an unknown option, a value missing or malformed\n"
	"  (train: 130 when stopped by Ctrl-C, after its checkpoint)\n";

const Command *command_find(const char *name)
{
	for (int i = 0; i < NCOMMAND; i++)
		if (!strcmp(name, commands[i].name))
			return &commands[i];
	return NULL;
}

static void print_options(FILE *f, const OptHelp *o)
{
	for (; o && o->opt; o++) {
		int w = (int)strlen(o->opt);
		if (w <= 28)
			fprintf(f, "  %-28s %s\n", o->opt, o->help);
		else   /* a long option gets its own line */
			fprintf(f, "  %s\n  %-28s %s\n", o->opt, "", o->help);
	}
}

static void command_help(FILE *f, const Command *c)
{
	fprintf(f, "usage: mswc %s %s\n%s\n\noptions:\n", c->name, c->usage, c->what);
	print_options(f, c->opts[0]);
	print_options(f, c->opts[1]);
	print_options(f, help_option);
	if (c->model_options) {
		fprintf(f, "\noptions every model command takes:\n");
		print_options(f, args_options);
	}
	fprintf(f, "\n%s", exit_status);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: mswc <command> [options]   (mswc <command> --help for its options)\n\n"
		   "commands:\n");
	for (int i = 0; i < NCOMMAND; i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].what);
	fprintf(f, "\noptions every model command takes:\n");
	print_options(f, args_options);
	fprintf(f, "\n%s\nThe language is described in docs/language.md.\n", exit_status);
}

/* --help or -h anywhere after the command asks for its help (a value that
 * is spelt so is given as --opt=--help). */
static bool wants_help(int argc, char **argv)
{
	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		const Command *c = argc > 2 ? command_find(argv[2]) : NULL;
		if (argc > 2 && !c) {
			fprintf(stderr, "mswc help: error: unknown command '%s'\n", argv[2]);
			return EXIT_USAGE;
		}
		if (c)
			command_help(stdout, c);
		else
			usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
		printf("mswc %s\n", MSWC_VERSION);
		return 0;
	}
	const Command *c = command_find(cmd);
	if (!c) {
		fprintf(stderr, "mswc: error: unknown command '%s'\n", cmd);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (wants_help(argc, argv)) {
		command_help(stdout, c);
		return 0;
	}
	return c->fn(argc - 2, argv + 2);
}
