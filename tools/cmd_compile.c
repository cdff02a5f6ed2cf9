/* cmd_compile.c: `mswc compile MODEL.msw [--emit=ir|llvm|asm] [--train | --decode]
 *                [--dump-after=PASS|all] [--stop-after=PASS] [--mesh M] [-D name=value]...`
 *                `mswc compile MODEL.msw --aot DIR [--name NAME] [--weights W
 *                [--embed-weights]] [--target-cpu CPU] [-D name=value]...` (cmd_aot.c)
 *                `mswc compile FILE.mswir [--emit=...] [--train] [--dump-after=...]...`
 *
 * MODEL may be printed IR (a .mswir file, as --emit=ir or --stop-after
 * wrote it); the pipeline then runs on the graph read back (build.c).
 * With --emit, prints the IR after the pipeline, the LLVM module or the host
 * assembly to stdout; --stop-after=PASS prints the IR as that pass left it. Without it, runs everything through JIT compilation
 * and prints a short summary: ops, parameters, kernels, time per stage.
 * With --mesh, the step is placed on the mesh too (passes/place.c,
 * docs/mesh.md): --dump-after=place prints every node's tiles, and a
 * placement that does not fit is refused (exit 1). */
#include "tools.h"

#include <stdio.h>
#include <string.h>

typedef struct CompileOpts {
	AotOpts aot;   /* --aot and its options (cmd_aot.c) */
	const char *emit;
	const char *dump_after, *stop_after;
	bool train;
	bool decode;   /* decode mode: KV caches, input pos (docs/generation.md) */
	const char *mesh;
} CompileOpts;

static int check_pass_name(const char *opt, const char *name, bool allow_all)
{
	if (allow_all && !strcmp(name, "all"))
		return 0;
	if (pass_find(name))
		return 0;
	fprintf(stderr, "mswc compile: error: %s: unknown pass '%s'; passes are:", opt, name);
	for (int i = 0; i < pass_npipeline; i++)
		fprintf(stderr, " %s", pass_pipeline[i].name);
	fprintf(stderr, "\n");
	return -1;
}

const OptHelp compile_options[] = {
	{"--emit=ir|llvm|asm", "print the IR after the pipeline, the LLVM module or the assembly"},
	{"--dump-after=PASS|all", "print the IR after PASS (or after every pass) to stderr"},
	{"--stop-after=PASS", "stop after PASS and print the IR as it left it"},
	{"--train", "compile the training step: backward graph and AdamW update"},
	{"--decode", "compile for decoding: KV caches, input pos (docs/generation.md)"},
	{"--aot DIR", "write DIR/NAME.o and DIR/NAME.h to embed in an app (docs/embedding.md)"},
	{"--name NAME", "with --aot: the C name of the model (default: the file's)"},
	{"--weights FILE", "with --aot: checked against the model; its masks are compiled in"},
	{"--embed-weights", "with --aot: put the --weights in the object"},
	{"--target-cpu CPU", "with --aot: native (default), x86-64-v2, x86-64-v3 or x86-64-v4"},
	{"--generate", "with --aot: the decode and prefill programs of mswc generate"},
	{"--prefill T", "with --generate: prompt tokens per prefill run (default 32; 0, 1: none)"},
	{"--mesh M", "place the step on mesh M: host, ipu, wafer, RxC[:MEMORY] or a file "
		     "(docs/mesh.md)"},
	{NULL, NULL},
};

static int compile_option(Args *a, int argc, char **argv, int i)
{
	CompileOpts *co = a->user;
	int at = i;
	const char *v;
	if ((v = args_value(argc, argv, &at, "--emit"))) {
		if (strcmp(v, "ir") && strcmp(v, "llvm") && strcmp(v, "asm"))
			return -usage_error("compile", "--emit expects ir, llvm or asm, got '%s'", v);
		co->emit = v;
	} else if ((v = args_value(argc, argv, &at, "--dump-after"))) {
		if (check_pass_name("--dump-after", v, true))
			return -1;
		co->dump_after = v;
	} else if ((v = args_value(argc, argv, &at, "--stop-after"))) {
		if (check_pass_name("--stop-after", v, false))
			return -1;
		co->stop_after = v;
	} else if (!strcmp(argv[i], "--train")) {
		co->train = true;
	} else if (!strcmp(argv[i], "--decode")) {
		co->decode = true;
	} else if ((v = args_value(argc, argv, &at, "--aot"))) {
		co->aot.dir = v;
	} else if ((v = args_value(argc, argv, &at, "--name"))) {
		co->aot.name = v;
	} else if ((v = args_value(argc, argv, &at, "--weights"))) {
		co->aot.weights = v;
	} else if (!strcmp(argv[i], "--embed-weights")) {
		co->aot.embed_weights = true;
	} else if (!strcmp(argv[i], "--generate")) {
		co->aot.generate = true;
	} else if ((v = args_value(argc, argv, &at, "--prefill"))) {
		if (args_int("compile", "--prefill", v, 0, 1LL << 20, &co->aot.prefill))
			return -1;
		co->aot.has_prefill = true;
	} else if ((v = args_value(argc, argv, &at, "--target-cpu"))) {
		const char *cpu, *feat;
		if (be_target_named(v, &cpu, &feat))
			return -usage_error("compile", "--target-cpu expects native, x86-64-v2, "
					    "x86-64-v3 or x86-64-v4, got '%s'", v);
		co->aot.target = v;
	} else if ((v = args_value(argc, argv, &at, "--mesh"))) {
		if (!*v)
			return -usage_error("compile", "--mesh needs a value");
		co->mesh = v;
	} else {
		return 0;
	}
	return at - i + 1;
}

static void summary(const Build *b)
{
	const Graph *g = b->g;
	long nop = 0, nparam = 0;
	int64_t nweight = 0;
	for (ValId v = 0; v < ir_nnode(g); v++) {
		const Node *n = ir_node(g, v);
		if (n->op == OP_PARAM) {
			nparam++;
			nweight += ir_numel(&n->shape);
		} else if (!(ir_op[n->op].flags & OPF_SOURCE)) {
			nop++;
		}
	}
	printf("model %s: %ld ops, %ld parameters (%.3f M weights), %d kernels, arena %.1f MiB\n",
	       ir_str(g, g->model_name), nop, nparam, (double)nweight / 1e6, be_nkernel(b->mod),
	       (double)g->arena_size / (1 << 20));
	printf("  %-14s %8.1f ms\n", "frontend", 1e3 * b->t_frontend);
	for (int i = 0; i < pass_npipeline; i++)
		if (pass_pipeline[i].fn != pass_place || g->place.len)
			printf("  %-14s %8.1f ms\n", pass_pipeline[i].name, 1e3 * b->t_pass[i]);
	printf("  %-14s %8.1f ms\n", "codegen", 1e3 * b->t_codegen);
	printf("  %-14s %8.1f ms%s\n", "jit", 1e3 * b->t_jit,
	       be_cache_hit(b->mod) ? "  (kernel cache hit)" : "");
}

static int emit(Build *b, const char *what)
{
	if (!strcmp(what, "ir")) {
		char *text = ir_print(b->g);
		if (!text)
			return EXIT_FAIL;
		fputs(text, stdout);
		mem_free(text);
		return 0;
	}
	char *text = be_emit_text(b->mod, !strcmp(what, "asm") ? BE_TEXT_ASM : BE_TEXT_LLVM,
				  &b->diag);
	if (!text) {
		fputs(diag_text(&b->diag), stderr);
		return EXIT_FAIL;
	}
	fputs(text, stdout);
	mem_free(text);
	return 0;
}

int cmd_compile(int argc, char **argv)
{
	CompileOpts co = {.aot = {.prefill = 32}};
	Args a = {.cmd = "compile", .user = &co};
	if (args_parse(&a, argc, argv, compile_option))
		return EXIT_USAGE;
	if (co.train && co.decode)
		return usage_error("compile", "--train and --decode do not go together: a decode "
				   "program only runs forward");
	bool place_pass = (co.dump_after && !strcmp(co.dump_after, "place")) ||
			  (co.stop_after && !strcmp(co.stop_after, "place"));
	if (place_pass && !co.mesh)
		return usage_error("compile", "the place pass runs only with --mesh");
	if (co.aot.dir) {
		if (co.emit || co.stop_after || co.train || co.decode || co.mesh)
			return usage_error("compile", "--aot writes the forward program (or with "
					   "--generate the decode ones); it does not go with --emit, "
					   "--stop-after, --train, --decode or --mesh");
		if (co.aot.has_prefill && !co.aot.generate)
			return usage_error("compile", "--prefill goes with --generate");
		co.aot.dump_after = co.dump_after;
		return aot_compile(&a, &co.aot);
	}
	if (co.aot.name || co.aot.weights || co.aot.embed_weights || co.aot.target ||
	    co.aot.generate || co.aot.has_prefill)
		return usage_error("compile", "--name, --weights, --embed-weights, --target-cpu, "
				   "--generate and --prefill go with --aot DIR");
	Mesh mesh;
	if (co.mesh && tools_mesh(co.mesh, a.threads, &mesh))
		return EXIT_FAIL;
	BuildOptions bo = {
		.args = &a,
		.mesh = co.mesh ? &mesh : NULL,
		.training = co.train,
		.optimizer = co.train,   /* the whole step, update included */
		.decode = co.decode,
		.dump_after = co.dump_after,
		.stop_after = co.stop_after,
		.stage = STAGE_PROGRAM,
	};
	if (co.emit)
		bo.stage = !strcmp(co.emit, "ir") ? STAGE_GRAPH : STAGE_MODULE;
	Build b;
	int rc = build_run(&b, &bo);
	/* Like llc's -stop-after: show the IR where the pipeline stopped,
	 * unless it was already dumped there. */
	if (rc == 0 && b.stopped && !co.dump_after)
		rc = emit(&b, "ir");
	else if (rc == 0 && !b.stopped)
		rc = co.emit ? emit(&b, co.emit) : (summary(&b), 0);
	build_free(&b);
	if (co.mesh)
		mesh_free(&mesh);
	return rc;
}
