/* tools.h: the mswc command-line driver, one file per subcommand.
 *
 * Each cmd_* takes the arguments after the subcommand name and returns the
 * process exit status: 0 success, 1 failure (bad input files, the model,
 * the run, out of memory; already reported on stderr), 2 usage error (the
 * command line itself: an unknown option, a missing or malformed value).
 * Shared pieces: args.c parses the options every subcommand understands;
 * build.c runs frontend -> passes -> backend; mswc.c prints the help. */
#ifndef MSW_TOOLS_H
#define MSW_TOOLS_H

#include <stdbool.h>

#include "../backend/backend.h"
#include "../frontend/fe.h"
#include "../passes/passes.h"
#include "../runtime/rt.h"

enum { EXIT_FAIL = 1, EXIT_USAGE = 2, MAX_DEFINES = 64, MAX_INPUTS = 16 };
/* The older names, which bench*.c still use: there EXIT_USER always
 * follows a usage error and EXIT_INTERNAL a failure. */
enum { EXIT_USER = EXIT_USAGE, EXIT_INTERNAL = EXIT_FAIL };

/* A command's options for its --help, one line each, in a table beside
 * the code that parses them; {NULL} ends a table. `opt` is written as
 * the help shows it: names separated by ", ", then " ARG" or "=ARG" if
 * the option takes a value ("-o, --out DIR", "--emit=ir|llvm|asm",
 * "--train"); args_parse reads that to refuse a value-taking option left
 * without one at the end of the line. */
typedef struct OptHelp {
	const char *opt, *help;
} OptHelp;
extern const OptHelp args_options[];   /* args.c: those every model command takes */
extern const OptHelp compile_options[], init_options[], prune_options[], run_options[],
	encode_options[], train_options[], dynamic_options[], eval_options[],
	generate_options[], place_options[], viz_options[];

/* mswc.c: the commands, each with its usage line and option tables. */
typedef struct Command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;        /* what follows "mswc <name> " */
	const char *what;         /* one line: what it does */
	const OptHelp *opts[2];   /* its own options (NULL: none) */
	bool model_options;       /* takes args_options too */
} Command;
const Command *command_find(const char *name);

/* args.c: the options shared by compile, init, run. Options a subcommand
 * doesn't know are left to it: args_parse calls `extra` for each one, which
 * returns how many argv entries it consumed (0 = unknown option). */
typedef struct Args Args;
typedef int (*ArgsExtra)(Args *a, int argc, char **argv, int i);
struct Args {
	const char *cmd;          /* subcommand, for messages and its Command */
	const char *model;        /* the .msw file */
	fe_Define def[MAX_DEFINES];
	int ndef;
	int threads;              /* 0 = all cores */
	/* Sparsity (docs/sparsity.md): --sparsity S, --distribution D, --dense. */
	bool has_sparsity, dense;
	double sparsity;
	int dist;                 /* SparseDist + 1; 0 = the model's */
	int sparse_format;        /* --sparse-format: SparseFormat + 1; 0 = auto */
	void *user;               /* the subcommand's own options */
};
int args_parse(Args *a, int argc, char **argv, ArgsExtra extra);
/* "--name=value" or "--name value": returns the value and advances *i, or
 * NULL if argv[*i] is not option `name`. */
const char *args_value(int argc, char **argv, int *i, const char *name);
int args_int(const char *cmd, const char *opt, const char *s, long long lo, long long hi,
	     long long *out);
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* build.c: the host rates of the cost models, obtained once per process
 * ($MSW_RATES, else the cache, else measured; remeasure: measure again and
 * cache). *out stays valid for the process. */
int tools_host_rates(const HostRates **out, bool remeasure, Diag *d);

/* build.c: the mesh of --mesh SPEC (passes/mesh.c): a preset, RxC[:MEMORY]
 * or a file; host figures from the host rates, threads as --threads. 0, or
 * -1 with the diagnostics printed. */
int tools_mesh(const char *spec, int threads, Mesh *m);
/* build.c: the compile flow shared by every subcommand. */
typedef enum Stage { STAGE_GRAPH, STAGE_MODULE, STAGE_PROGRAM } Stage;
typedef struct Build {
	fe_Session *fe;
	Source irsrc;             /* the .mswir file read, when the model is printed IR */
	Graph *g;
	be_Module *mod;
	rt_Program *prog;
	Diag diag;
	bool stopped;             /* --stop-after ended the pipeline early */
	double t_frontend, t_pass[16], t_codegen, t_jit;
} Build;
typedef struct BuildOptions {
	const Args *args;
	const fe_InputShape *input;
	int ninput;
	bool training;            /* build the backward graph (implies the loss) */
	bool auto_loss;           /* keep the loss iff every model input is supplied */
	bool decode;              /* frontend decode mode: KV caches, input pos */
	bool loss;                /* keep the model's loss, whatever inputs are given */
	bool unchecked;           /* the ordinary memory plan even with MSW_CHECK=1 (an
	                           * AOT image stores no guards, so would go unchecked) */
	const char *cpu, *features;   /* the target (be_target_named); NULL: the host */
	const char *dump_after, *stop_after;
	Stage stage;
	/* Training (cmd_train, compile --train): the optimiser's update
	 * (passes/optimize.c), weight decay on every param, parameters frozen
	 * by glob (fe_Options.freeze). */
	bool optimizer, decay_all;
	const char *const *freeze;
	int nfreeze;
	/* Sparsity beyond Args: the masks' seed, supplied masks (a
	 * checkpoint's, they win), and magnitude pruning's weights. */
	uint64_t seed;
	PruneMethod method;
	const PruneTensor *masks, *weights;
	int nmasks, nweights;
	/* The mesh to place the step on (passes/place.c), or NULL; explain:
	 * the placement prints its sizing with --dump-after=place. */
	const Mesh *mesh;
	bool explain;
} BuildOptions;
/* 0 ok; otherwise an exit status after printing the diagnostics. */
int build_run(Build *b, const BuildOptions *o);
void build_free(Build *b);
/* The tensors of a safetensors file for the prune pass: with masks, every
 * "<param>.mask" (named by its param), each checked by rt_mask_validate;
 * otherwise every F32 tensor. *out is mem_alloc'd along with its names
 * (free with sparse_tensors_free); the data points into f. */
int sparse_tensors(const rt_TensorFile *f, const char *path, bool masks, PruneTensor **out,
		   int *n, Diag *d);
void sparse_tensors_free(PruneTensor *t, int n);
/* The --weights a command starts from: the file read and validated, and
 * (unless --dense) its masks for BuildOptions.masks, so the program is
 * compiled with them: a pruned or sparse-trained checkpoint runs with its
 * sparse kernels without restating --sparsity. Load the parameters with
 * rt_load_params_from(e, f, path, 0, d); free f and the masks. */
int weights_read(const char *path, const Args *a, rt_TensorFile *f, PruneTensor **masks,
		 int *nmasks, Diag *d);
/* The sequence length the weights were trained at, from the "mswc.train_seq"
 * metadata `mswc train` writes into its checkpoints; 0 if the file does not
 * say. */
int64_t weights_train_seq(const rt_TensorFile *f);
/* The vocabulary an i32 input indexes, found in the graph's structure: the
 * fewest rows of any table it is gathered from, or classes of any loss it
 * is the target of (through reshapes and slices); 0 if it indexes nothing.
 * Ids outside it would read outside the table (rt_tokens_check). */
int64_t build_vocab(const Graph *g, const char *input);
/* --data's tokens (positions count from the start of the stream) against
 * the vocabulary the model's "tokens" and "targets" index. */
int data_vocab_check(const char *path, const rt_Data *data, const Graph *g, Diag *d);
/* A thread pool and an executor for b->prog: 0, or the exit status after
 * recording why in b->diag (EXIT_USER: out of memory is the user's, set by
 * the model's size). */
int start_exec(Build *b, int threads, rt_Pool **pool, rt_Exec **e);
double now_seconds(void);

int cmd_compile(int argc, char **argv);
/* cmd_aot.c: `mswc compile --aot DIR` (docs/embedding.md): the object
 * file and the header of a model. */
typedef struct AotOpts {
	const char *dir, *name, *weights, *target;
	bool embed_weights;
	bool generate;            /* decode and prefill programs, not the forward one */
	long long prefill;        /* the prefill program's tokens per run (default 32) */
	bool has_prefill;
	const char *dump_after;
} AotOpts;
int aot_compile(const Args *a, const AotOpts *o);
int cmd_init(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_encode(int argc, char **argv);
/* cmd_train.c, cmd_eval.c: training and held-out evaluation (docs/training.md). */
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
/* eval_task.c: `mswc eval --task NAME`, a model's score on a biomedical
 * classification task (docs/tasks.md). eval_task_option parses the task
 * options (the ArgsExtra convention); eval_task runs with cmd_eval's
 * --weights, --batch and --seq (0: the default window). */
typedef struct TaskOpts {
	const rt_TaskInfo *task;
	int split;                /* rt_Split; RT_SPLIT_TEST by default */
	bool has_split, has_norm;
	long long limit;          /* 0: all */
	int norm;                 /* rt_TaskNorm */
	const char *predictions, *root;
} TaskOpts;
extern const OptHelp eval_task_options[];
int eval_task_option(TaskOpts *o, int argc, char **argv, int i);
int eval_task(const Args *a, const TaskOpts *o, const char *weights, long long batch,
	      long long seq);
/* cmd_generate.c: text generation with a KV cache (docs/generation.md). */
int cmd_generate(int argc, char **argv);
/* train_dynamic.c: dynamic sparse training between trainer segments.
 * dynamic_option parses --dynamic, --update-every, --update-fraction and
 * --update-end (the ArgsExtra convention); dynamic_next_stop is the next
 * step after `done` where the masks change (0: none left); dynamic_due
 * tells whether they change at `step`; dynamic_update rewrites the masks,
 * weights and moments of checkpoint ck for its step. */
typedef enum DynMethod { DYN_NONE, DYN_SET, DYN_RIGL, DYN_GRADUAL } DynMethod;
typedef struct DynamicOpts {
	DynMethod method;
	int64_t every;        /* steps between updates (default 100) */
	int64_t end;          /* no update from this step on (0: 3/4 of the steps) */
	double alpha;         /* initial fraction of kept weights moved (default 0.3) */
	double target;        /* gradual: the final sparsity (--sparsity) */
} DynamicOpts;
int dynamic_option(DynamicOpts *o, int argc, char **argv, int i);
int64_t dynamic_next_stop(const DynamicOpts *o, int64_t done, int64_t steps);
bool dynamic_due(const DynamicOpts *o, int64_t step, int64_t steps);
int dynamic_update(const DynamicOpts *o, const Args *a, const rt_TrainConfig *c,
		   const char *data, rt_Checkpoint *ck, Diag *d);
/* cmd_place.c, cmd_viz.c: placement on a mesh and pictures (docs/mesh.md). */
int cmd_place(int argc, char **argv);
int cmd_viz(int argc, char **argv);
/* cmd_prune.c: one-shot pruning of given weights (docs/sparsity.md). */
int cmd_prune(int argc, char **argv);
/* bench.c: `mswc bench matmul [options]`, `mswc bench sparse` from
 * bench_sparse.c and `mswc bench decode` from bench_decode.c
 * (docs/performance.md). */
int cmd_bench(int argc, char **argv);
int cmd_bench_sparse(int argc, char **argv);
int cmd_bench_decode(int argc, char **argv);

/* bench_timing.c: something to time, fn(arg), called `inner` times per
 * repetition so a repetition lasts about 20 ms (sized from a warm-up
 * call). bench_best keeps the best of `reps` for each of n contenders,
 * their repetitions interleaved so that whatever else runs on the machine
 * disturbs them alike; best-of because other processes only ever make a
 * run slower. With bench_cpu_clock, the calling thread's CPU time. */
typedef struct BenchTimed {
	void (*fn)(void *);
	void *arg;
	int inner;
	double best;          /* seconds per call */
} BenchTimed;
extern bool bench_cpu_clock;
void bench_best(BenchTimed *t, int n, int reps);
void bench_run_exec(void *exec);   /* rt_exec_run */
/* Which kernels OpenBLAS runs, and a note when they are its generic ones. */
void bench_blas_note(FILE *f);

#endif
