/* tools.h: the mswc subcommands, one file each, dispatched from mswc.c.
 * Each takes the arguments after the subcommand name and returns the
 * process exit status: 0 success, 1 user error (already reported on
 * stderr), 2 internal failure. */
#ifndef MSW_TOOLS_H
#define MSW_TOOLS_H

/* bench.c: `mswc bench matmul [options]` and later benchmarks. */
int cmd_bench(int argc, char **argv);

#endif
