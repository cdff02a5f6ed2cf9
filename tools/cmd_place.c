/* cmd_place.c: `mswc place MODEL.msw --mesh M [--train] [--sparsity S] [--explain]`
 *
 * Places the forward pass (with --train the whole training step) on mesh M
 * (passes/place.c) and prints what the cost model predicts for it
 * (passes/place_cost.c): the mesh's figures and where they came from (for
 * host, the measured rates), the tiles used, memory per tile, the
 * predicted step and its critical path, the busiest link, and one line per
 * unit. --explain adds the placement's sizing of every unit. A step that
 * does not fit is refused (exit 1) with the buffers on the fullest tile.
 * Nothing is compiled to code. docs/mesh.md. */
#include "tools.h"

#include <stdio.h>
#include <string.h>

typedef struct PlaceOpts {
	const char *mesh;
	bool train, explain;
} PlaceOpts;

const OptHelp place_options[] = {
	{"--mesh M", "the mesh: host, ipu, wafer, RxC[:MEMORY] or a file (docs/mesh.md)"},
	{"--train", "place the training step (backward and AdamW update), not the forward pass"},
	{"--explain", "print how the placement sized every unit (to stderr)"},
	{NULL, NULL},
};

static int place_option(Args *a, int argc, char **argv, int i)
{
	PlaceOpts *po = a->user;
	int at = i;
	const char *v;
	if ((v = args_value(argc, argv, &at, "--mesh"))) {
		if (!*v)
			return -usage_error("place", "--mesh needs a value");
		po->mesh = v;
	} else if (!strcmp(argv[i], "--train")) {
		po->train = true;
	} else if (!strcmp(argv[i], "--explain")) {
		po->explain = true;
	} else {
		return 0;
	}
	return at - i + 1;
}

int cmd_place(int argc, char **argv)
{
	PlaceOpts po = {0};
	Args a = {.cmd = "place", .user = &po};
	if (args_parse(&a, argc, argv, place_option))
		return EXIT_USAGE;
	if (!po.mesh)
		return usage_error("place", "no mesh given (--mesh host|ipu|wafer|RxC[:MEMORY]|FILE)");
	Mesh mesh;
	if (tools_mesh(po.mesh, a.threads, &mesh))
		return EXIT_FAIL;
	/* sparse_lower picks kernels for this host, with their feature-major
	 * transposes; another machine's mesh sees the sparse products as they
	 * are (masked, priced at its sparse rate) unless asked otherwise */
	if (!mesh.rates[0] && !a.sparse_format)
		a.sparse_format = SPF_MASKED + 1;
	BuildOptions bo = {
		.args = &a,
		.training = po.train,
		.optimizer = po.train,
		.stage = STAGE_GRAPH,
		.mesh = &mesh,
		.explain = po.explain,
	};
	Build b;
	int rc = build_run(&b, &bo);
	if (rc == 0 && place_report(stdout, b.g, &mesh, &b.diag)) {
		fputs(diag_text(&b.diag), stderr);
		rc = EXIT_FAIL;
	}
	build_free(&b);
	mesh_free(&mesh);
	return rc;
}
