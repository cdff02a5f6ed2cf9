/* args.c: command-line options shared by the subcommands.
 *
 *   mswc <cmd> MODEL.msw [-D name=value]... [--threads N]
 *        [--sparsity S] [--distribution uniform|erk] [--dense] [cmd options]
 *
 * -D takes "name=value" as one argument or glued ("-Dd=128"). Everything is
 * validated here so a subcommand sees well-formed values; a bad option is a
 * usage error (exit status 2), never a crash. Which options take a value is
 * read from the command's help tables (OptHelp), so an option at the end of
 * the line without its value is refused for every command alike. */
#include "tools.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const OptHelp args_options[] = {
	{"-D name=value", "override a hyperparameter or bind an input dimension"},
	{"--threads N", "worker threads (default: all cores)"},
	{"--sparsity S", "prune every covered weight matrix to S zeros (docs/sparsity.md)"},
	{"--distribution uniform|erk", "how S spreads over the layers"},
	{"--dense", "drop the model's and the checkpoint's masks"},
	{"--sparse-format auto|masked|csr|unrolled",
	 "kernels for sparse weights (default auto: the cost model picks)"},
	{NULL, NULL},
};

int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "mswc %s: error: ", cmd);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n(see 'mswc %s --help')\n", cmd);
	va_end(ap);
	return EXIT_USAGE;
}

/* Whether help entry `spec` names option `arg`, and if so (*value) whether
 * it takes a value: "-o, --out DIR" names -o and --out, with a value. */
static bool spec_names(const char *spec, const char *arg, bool *value)
{
	bool found = false;
	for (const char *p = spec;;) {
		size_t n = strcspn(p, " ,=");
		found |= n == strlen(arg) && !strncmp(p, arg, n);
		if (p[n] != ',') {
			*value = p[n] == ' ' || p[n] == '=';
			return found;
		}
		p += n + 1 + (p[n + 1] == ' ');
	}
}

/* An option of the command (or a model option) that needs a value. */
static bool takes_value(const char *cmd, const char *arg)
{
	const Command *c = command_find(cmd);
	const OptHelp *t[3] = {c ? c->opts[0] : NULL, c ? c->opts[1] : NULL, args_options};
	bool value;
	for (int k = 0; k < 3; k++)
		for (const OptHelp *o = t[k]; o && o->opt; o++)
			if (spec_names(o->opt, arg, &value))
				return value;
	return false;
}

const char *args_value(int argc, char **argv, int *i, const char *name)
{
	size_t n = strlen(name);
	const char *s = argv[*i];
	if (strncmp(s, name, n))
		return NULL;
	if (s[n] == '=')
		return s + n + 1;
	if (s[n] != 0)
		return NULL;
	if (*i + 1 >= argc)
		return "";   /* caller reports the missing value */
	return argv[++*i];
}

int args_int(const char *cmd, const char *opt, const char *s, long long lo, long long hi,
	     long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v < lo || v > hi)
		return usage_error(cmd, "%s expects an integer in [%lld, %lld], got '%s'", opt, lo,
				   hi, s);
	*out = v;
	return 0;
}

static int add_define(Args *a, const char *kv)
{
	const char *eq = strchr(kv, '=');
	if (!eq || eq == kv || !eq[1])
		return usage_error(a->cmd, "-D expects name=value, got '%s'", kv);
	if (a->ndef == MAX_DEFINES)
		return usage_error(a->cmd, "too many -D options (at most %d)", MAX_DEFINES);
	/* Split in place: argv strings are ours to modify. */
	((char *)eq)[0] = 0;
	a->def[a->ndef++] = (fe_Define){kv, eq + 1};
	return 0;
}

int args_parse(Args *a, int argc, char **argv, ArgsExtra extra)
{
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i], *v;
		if (i + 1 == argc && s[0] == '-' && takes_value(a->cmd, s))
			return usage_error(a->cmd, "%s needs a value", s);
		if (!strcmp(s, "-D")) {
			if (add_define(a, argv[++i]))
				return EXIT_USAGE;
		} else if (!strncmp(s, "-D", 2)) {
			if (add_define(a, s + 2))
				return EXIT_USAGE;
		} else if ((v = args_value(argc, argv, &i, "--sparsity"))) {
			char *end;
			errno = 0;
			double x = strtod(v, &end);
			if (!*v || *end || errno || !(x >= 0 && x <= 1))
				return usage_error(a->cmd, "--sparsity expects a fraction of zeros in "
						   "[0, 1], got '%s'", v);
			a->has_sparsity = true;
			a->sparsity = x;
		} else if ((v = args_value(argc, argv, &i, "--distribution"))) {
			a->dist = 0;
			for (int k = 0; k < SD_COUNT; k++)
				if (!strcmp(v, ir_sparse_dist_name[k]))
					a->dist = k + 1;
			if (!a->dist)
				return usage_error(a->cmd, "--distribution expects uniform or erk, got "
						   "'%s'", v);
		} else if (!strcmp(s, "--dense")) {
			a->dense = true;
		} else if ((v = args_value(argc, argv, &i, "--sparse-format"))) {
			a->sparse_format = -1;
			for (int k = SPF_AUTO; k < SPF_COUNT; k++)
				if (!strcmp(v, k == SPF_AUTO ? "auto" : sparse_format_name[k]))
					a->sparse_format = k + 1;
			if (a->sparse_format < 0)
				return usage_error(a->cmd, "--sparse-format expects auto, masked, csr or "
						   "unrolled, got '%s'", v);
		} else if ((v = args_value(argc, argv, &i, "--threads"))) {
			long long n = 0;
			if (args_int(a->cmd, "--threads", v, 0, 1024, &n))
				return EXIT_USAGE;
			a->threads = (int)n;
		} else if (s[0] == '-' && s[1]) {
			int used = extra ? extra(a, argc, argv, i) : 0;
			if (used < 0)
				return EXIT_USAGE;
			if (used == 0)
				return usage_error(a->cmd, "unknown option '%s'", s);
			i += used - 1;
		} else if (!a->model) {
			a->model = s;
		} else {
			return usage_error(a->cmd, "unexpected argument '%s'", s);
		}
	}
	if (!a->model)
		return usage_error(a->cmd, "no model file given");
	if (a->dense && (a->has_sparsity || a->dist))
		return usage_error(a->cmd, "--dense drops the masks; it excludes --sparsity and "
				   "--distribution");
	return 0;
}
