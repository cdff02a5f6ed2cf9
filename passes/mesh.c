/* mesh.c: descriptions of a virtual mesh of compute tiles (docs/mesh.md).
 *
 * A mesh is rows x cols tiles, each with its memory, a dense and a sparse
 * compute rate and the bandwidth of its own memory, joined to its four
 * neighbours by links of a bandwidth per direction and a latency per hop.
 * A description is a preset, RxC[:MEMORY], or a text file, one figure a
 * line:
 *
 *   # a comment runs to the end of the line
 *   name    mymesh           a word, for reports
 *   preset  ipu              start from a preset's figures (first line only)
 *   tiles   16x16            rows x columns
 *   memory  624K             bytes per tile; K, M, G are 1024, 1024^2, 1024^3
 *   clock   1.325G           Hz; needed by the /cycle figures
 *   dense   42.4G            flop/s per tile; or 32/cycle (times the clock)
 *   sparse  4/cycle          useful flop/s on a sparse weight's kept entries
 *   local   24/cycle         bytes/s a tile reads and writes in its own memory
 *   link    4/cycle          bytes/s per link and direction
 *   latency 1cycle           per hop: s, ms, us, ns or cycle(s)
 *
 * Numbers take SI prefixes k M G T P (rates, clock) or binary ones (memory).
 * A file without a preset must give tiles, memory, dense and link; then
 * sparse defaults to dense (a machine that skips zeros), local to no limit,
 * latency to 0 and clock to unknown. Every error is located in the file,
 * or in the --mesh argument (as --mesh:1:COL), GCC style.
 *
 * The presets ipu and wafer are such texts, below, so the figures and
 * their sources sit together; host is built from this machine's measured
 * rates (support/rates.c): one tile per worker thread, arranged as close
 * to a square as the count allows, with a worker's share of the caches as
 * its memory. RxC takes the host's figures for everything it does not
 * say. Nothing here knows about graphs. */
#include "mesh.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const mesh_fig_name[MF_COUNT] = {"tiles", "memory", "dense", "sparse", "local",
					     "link", "latency", "clock"};

/* Graphcore Colossus Mk2 GC200: 1,472 tiles of 624 KiB (896 MiB in all),
 * 1.325 GHz, 62.5 TFLOPS FP32 and 250 TFLOPS FP16 over the chip, 47.5 TB/s
 * of SRAM bandwidth, 8 TB/s through the IPU-Exchange (docs/mesh.md). The
 * exchange is all-to-all, not a grid: as a grid its links are the chip's
 * exchange bandwidth shared out per tile. */
static const char preset_ipu[] =
	"# Graphcore Colossus Mk2 GC200 IPU (docs/mesh.md has the sources)\n"
	"name    ipu\n"
	"tiles   32x46       # 1,472 tiles; the exchange is all-to-all, drawn as a grid\n"
	"memory  624K        # In-Processor-Memory per tile, 900 MB in all\n"
	"clock   1.325G      # Hot Chips 33\n"
	"dense   32/cycle    # FP32: 62.5 TFLOPS over 1,472 tiles at 1.325 GHz\n"
	"sparse  4/cycle     # assumed: unstructured sparsity at an eighth of dense\n"
	"local   32.3G       # 47.5 TB/s of SRAM bandwidth over 1,472 tiles\n"
	"link    5.43G       # 8 TB/s of exchange over 1,472 tiles\n"
	"latency 1cycle      # assumed\n";

/* Cerebras WSE-2 (CS-2): 850,000 cores with 48 KB each (40 GB in all),
 * 1.1 GHz, 20 PB/s of memory and 220 Pb/s of fabric bandwidth; the core
 * reads two and writes one 64-bit word a cycle and skips zeros in its
 * dataflow (docs/mesh.md). */
static const char preset_wafer[] =
	"# Cerebras WSE-2 as in a CS-2 (docs/mesh.md has the sources)\n"
	"name    wafer\n"
	"tiles   922x922     # 850,084: the 850,000 cores of a square wafer\n"
	"memory  48K         # SRAM per core, 40 GB in all\n"
	"clock   1.1G        # Hot Chips 34\n"
	"dense   4/cycle     # FP32: two FMAs a cycle, fed by 2 reads + 1 write of 64 bits\n"
	"sparse  4/cycle     # the dataflow skips zeros: kept entries at the dense rate\n"
	"local   24/cycle    # two 64-bit reads and one 64-bit write a cycle (20 PB/s in all)\n"
	"link    4/cycle     # 32 bits a cycle per direction (220 Pb/s of fabric in all)\n"
	"latency 1cycle      # a router forwards a word a cycle\n";

static const struct {
	const char *name, *text;
} presets[] = {{"ipu", preset_ipu}, {"wafer", preset_wafer}};

/* --- numbers with units --- */

static void fmt_scaled(char *buf, size_t n, double v, const char *const *unit, double step)
{
	int i = 0;
	while (unit[i + 1] && fabs(v) >= step * 0.9995) {
		v /= step;
		i++;
	}
	snprintf(buf, n, "%.*f %s", fabs(v) < 10 ? 2 : fabs(v) < 100 ? 1 : 0, v, unit[i]);
}

void mesh_fmt_bytes(char *buf, size_t n, double bytes)
{
	static const char *const u[] = {"B", "KiB", "MiB", "GiB", "TiB", NULL};
	fmt_scaled(buf, n, bytes, u, 1024);
}

void mesh_fmt_rate(char *buf, size_t n, double v, const char *unit)
{
	static const char *const pre[] = {"", "k", "M", "G", "T", "P", NULL};
	char tmp[32];
	fmt_scaled(tmp, sizeof tmp, v, pre, 1000);
	snprintf(buf, n, "%s%s", tmp, unit);
}

void mesh_fmt_time(char *buf, size_t n, double s)
{
	if (s >= 1)
		snprintf(buf, n, "%.3f s", s);
	else if (s >= 1e-3)
		snprintf(buf, n, "%.3f ms", s * 1e3);
	else if (s >= 1e-6)
		snprintf(buf, n, "%.3f us", s * 1e6);
	else
		snprintf(buf, n, "%.1f ns", s * 1e9);
}

/* --- the text format --- */

typedef struct Reader {
	Mesh *m;
	const Source *src;
	const char *p;        /* the current word */
	size_t n;
	uint32_t line, col;
	Diag *d;
	bool have[MF_COUNT];
	double percycle[MF_COUNT];   /* figures given per cycle, resolved at the end */
	SrcLoc percycle_loc[MF_COUNT];
	const MeshHost *host;
	bool preset;          /* the text started from a preset */
	const char *comment;  /* the current line's, trimmed */
	size_t ncomment;
} Reader;

static SrcLoc word_loc(const Reader *r)
{
	return (SrcLoc){r->src, r->line, r->col, r->n ? (uint32_t)r->n : 1};
}

static int rerr(Reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rerr(Reader *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_verror(r->d, word_loc(r), fmt, ap);
	va_end(ap);
	return -1;
}

/* A number and what follows it in the word: 0, or -1 with an error. */
static int word_number(Reader *r, double *v, const char **rest)
{
	char buf[64], *end;
	if (r->n >= sizeof buf)
		return rerr(r, "'%.*s' is too long for a number", (int)r->n, r->p);
	memcpy(buf, r->p, r->n);
	buf[r->n] = 0;
	errno = 0;
	*v = strtod(buf, &end);
	if (end == buf || errno || !isfinite(*v) || *v < 0 || !isdigit((unsigned char)buf[0]))
		return rerr(r, "expected a number, found '%.*s'", (int)r->n, r->p);
	*rest = r->p + (end - buf);
	return 0;
}

static double si_prefix(char c)
{
	switch (c) {
	case 'k': case 'K': return 1e3;
	case 'M': return 1e6;
	case 'G': return 1e9;
	case 'T': return 1e12;
	case 'P': return 1e15;
	default: return 0;
	}
}

/* rest of the word, compared with s */
static bool rest_is(const Reader *r, const char *rest, const char *s)
{
	size_t k = (size_t)(r->p + r->n - rest);
	return strlen(s) == k && !memcmp(rest, s, k);
}

/* SIZE := number [K | M | G | KiB | MiB | GiB | KB | MB | GB | B], binary */
static int read_size(Reader *r, int64_t *out)
{
	double v;
	const char *rest;
	if (word_number(r, &v, &rest))
		return -1;
	double scale = 0;
	static const char *const unit[][3] = {{"", "B", NULL}, {"K", "KiB", "KB"},
					       {"M", "MiB", "MB"}, {"G", "GiB", "GB"}};
	for (int i = 0; i < 4 && !scale; i++)
		for (int j = 0; j < 3 && unit[i][j]; j++)
			if (rest_is(r, rest, unit[i][j]))
				scale = (double)((int64_t)1 << (10 * i));
	if (!scale)
		return rerr(r, "'%.*s': a size is a number of bytes with K, M or G (1024s)",
			    (int)r->n, r->p);
	v *= scale;
	if (v < 1 || v > (double)((int64_t)1 << 50) || v != floor(v))
		return rerr(r, "a tile's memory must be a whole number of bytes from 1 to 1P");
	*out = (int64_t)v;
	return 0;
}

/* RATE := number [k | M | G | T | P] | number '/cycle' (times the clock) */
static int read_rate(Reader *r, MeshFig f, double *out)
{
	double v;
	const char *rest;
	if (word_number(r, &v, &rest))
		return -1;
	r->percycle[f] = 0;
	if (rest_is(r, rest, "/cycle")) {
		r->percycle[f] = v;
		r->percycle_loc[f] = word_loc(r);
		*out = 0;
	} else if (rest_is(r, rest, "")) {
		*out = v;
	} else if ((size_t)(r->p + r->n - rest) == 1 && si_prefix(*rest)) {
		*out = v * si_prefix(*rest);
	} else {
		return rerr(r, "'%.*s': a rate is a number with k, M, G, T or P, or N/cycle",
			    (int)r->n, r->p);
	}
	if (f != MF_LATENCY && !(v > 0))
		return rerr(r, "a %s rate must be more than 0", mesh_fig_name[f]);
	return 0;
}

/* TIME := number ( s | ms | us | ns | cycle | cycles ), or 0 */
static int read_time(Reader *r, double *out)
{
	double v;
	const char *rest;
	if (word_number(r, &v, &rest))
		return -1;
	static const struct {
		const char *u;
		double s;
	} unit[] = {{"s", 1}, {"ms", 1e-3}, {"us", 1e-6}, {"ns", 1e-9}};
	r->percycle[MF_LATENCY] = 0;
	if (rest_is(r, rest, "cycle") || rest_is(r, rest, "cycles")) {
		r->percycle[MF_LATENCY] = v;
		r->percycle_loc[MF_LATENCY] = word_loc(r);
		*out = 0;
		return 0;
	}
	for (size_t i = 0; i < sizeof unit / sizeof unit[0]; i++)
		if (rest_is(r, rest, unit[i].u)) {
			*out = v * unit[i].s;
			return 0;
		}
	if (rest_is(r, rest, "") && v == 0) {
		*out = 0;
		return 0;
	}
	return rerr(r, "'%.*s': a latency is a time (s, ms, us, ns) or a number of cycles",
		    (int)r->n, r->p);
}

/* CLOCK := number [k | M | G] [Hz] */
static int read_clock(Reader *r, double *out)
{
	double v;
	const char *rest;
	if (word_number(r, &v, &rest))
		return -1;
	size_t k = (size_t)(r->p + r->n - rest);
	double scale = 1;
	if (k && si_prefix(*rest)) {
		scale = si_prefix(*rest);
		rest++;
		k--;
	}
	if (!(k == 0 || (k == 2 && !memcmp(rest, "Hz", 2))) || !(v > 0))
		return rerr(r, "'%.*s': a clock is a frequency like 1.1G or 1100MHz", (int)r->n,
			    r->p);
	*out = v * scale;
	return 0;
}

/* TILES := int 'x' int, at least one of each, at most MESH_MAX_TILES */
static int read_tiles(Reader *r, uint32_t *rows, uint32_t *cols)
{
	char buf[48], *x, *end;
	if (r->n >= sizeof buf)
		return rerr(r, "'%.*s': tiles are ROWSxCOLS, like 16x16", (int)r->n, r->p);
	memcpy(buf, r->p, r->n);
	buf[r->n] = 0;
	x = strchr(buf, 'x');
	long long a = 0, b = 0;
	bool ok = x && x > buf && isdigit((unsigned char)buf[0]) && isdigit((unsigned char)x[1]);
	if (ok) {
		errno = 0;
		a = strtoll(buf, &end, 10);
		ok = end == x && !errno;
		b = strtoll(x + 1, &end, 10);
		ok &= !*end && !errno;
	}
	if (!ok)
		return rerr(r, "'%.*s': tiles are ROWSxCOLS, like 16x16", (int)r->n, r->p);
	if (a < 1 || b < 1 || a > UINT16_MAX || b > UINT16_MAX || a * b > MESH_MAX_TILES)
		return rerr(r, "a mesh has at least one row and one column, at most %d tiles and 65535 a side",
			    MESH_MAX_TILES);
	*rows = (uint32_t)a;
	*cols = (uint32_t)b;
	return 0;
}

static void set_from(Mesh *m, MeshFig f, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_from(Mesh *m, MeshFig f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m->from[f], MESH_FROM_MAX, fmt, ap);
	va_end(ap);
}

/* --- the host --- */

static int host_threads(const MeshHost *h)
{
	long n = h && h->threads > 0 ? h->threads : sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > MESH_MAX_TILES ? MESH_MAX_TILES : (int)n;
}

/* The host's figures into m: tiles only when `tiles` (RxC gives its own). */
static int host_figures(Mesh *m, const MeshHost *h, bool tiles, SrcLoc loc, Diag *d)
{
	const HostRates *r = NULL;
	if (!h || !h->get_rates || h->get_rates(h->ctx, &r, d) || !r)
		return diag_error(d, loc, "the host's figures need the host rates (mswc bench "
				  "calibrate measures them)");
	double dense = rates_get(r, "dense.forward"), sparse = rates_get(r, "csr.forward.flops");
	double moved = rates_get(r, "transpose.bytes");
	if (!(dense > 0) || !(sparse > 0) || !(moved > 0))
		return diag_error(d, loc, "the host rates from %s lack dense.forward, "
				  "csr.forward.flops or transpose.bytes", r->source);
	int n = host_threads(h);
	if (tiles) {
		/* as square as the count allows: 2 -> 1x2, 8 -> 2x4, 16 -> 4x4 */
		uint32_t rows = 1;
		for (uint32_t k = 1; (int64_t)k * k <= n; k++)
			if (n % k == 0)
				rows = k;
		m->rows = rows;
		m->cols = (uint32_t)n / rows;
		set_from(m, MF_TILES, "one per worker thread (%d)", n);
	}
	int64_t cache[3];
	host_cache_sizes(cache);
	double l2 = rates_get(r, "cache.l2"), l3 = rates_get(r, "cache.l3");
	const char *csrc = "cache.l2, cache.l3 of the rates";
	if (!(l2 > 0)) {
		l2 = (double)cache[1];
		l3 = (double)cache[2];
		csrc = "host_cache_sizes";
	}
	m->memory = (int64_t)(l2 + (l3 > 0 ? l3 : 0) / n);
	if (m->memory < 1)
		return diag_error(d, loc, "this machine reports no cache sizes: give the memory "
				  "per tile (RxC:MEMORY or a file)");
	set_from(m, MF_MEMORY, "L2 + L3 / %d workers (%s)", n, csrc);
	m->dense = dense;
	set_from(m, MF_DENSE, "measured: dense.forward");
	m->sparse = sparse;
	set_from(m, MF_SPARSE, "measured: csr.forward.flops");
	m->local = moved;
	set_from(m, MF_LOCAL, "measured: transpose.bytes");
	m->link = moved / 2;   /* a transfer reads and writes each byte once */
	set_from(m, MF_LINK, "measured: transpose.bytes / 2 (a copy reads and writes)");
	m->latency = 0;
	set_from(m, MF_LATENCY, "not measured yet: 0");
	m->clock = host_clock_hz();
	set_from(m, MF_CLOCK, m->clock > 0 ? "reported by the machine" : "unknown");
	snprintf(m->rates, sizeof m->rates, "measured on %s, from %s", r->cpu, r->source);
	return 0;
}

/* --- parsing --- */

static int parse_preset(Reader *r, const char *name);
static int finish(Reader *r);

/* One line: key value [# comment]. */
static int parse_line(Reader *r, const char *key, size_t nkey, SrcLoc keyloc)
{
	Mesh *m = r->m;
	int f = -1;
	for (int i = 0; i < MF_COUNT; i++)
		if (strlen(mesh_fig_name[i]) == nkey && !memcmp(key, mesh_fig_name[i], nkey))
			f = i;
	bool is_name = nkey == 4 && !memcmp(key, "name", 4);
	bool is_preset = nkey == 6 && !memcmp(key, "preset", 6);
	if (f < 0 && !is_name && !is_preset) {
		diag_error(r->d, keyloc, "unknown key '%.*s'; the keys are name, preset, tiles, "
			   "memory, clock, dense, sparse, local, link, latency", (int)nkey, key);
		return -1;
	}
	if (!r->n)
		return diag_error(r->d, keyloc, "'%.*s' needs a value", (int)nkey, key);
	if (f >= 0 && r->have[f]) {
		diag_error(r->d, keyloc, "'%s' is given twice", mesh_fig_name[f]);
		return -1;
	}
	if (f >= 0)
		r->have[f] = true;
	/* where: the file and line, or the preset, and the line's comment */
	char at[MESH_FROM_MAX];
	const char *sn = r->src->name;
	if (!strncmp(sn, "<preset ", 8))
		snprintf(at, sizeof at, "preset %.*s", (int)(strlen(sn) - 9), sn + 8);
	else
		snprintf(at, sizeof at, "%s:%u", sn, r->line);
	if (r->ncomment)
		snprintf(at + strlen(at), sizeof at - strlen(at), ": %.*s", (int)r->ncomment,
			 r->comment);
	if (is_name) {
		if (r->n >= sizeof m->name)
			return rerr(r, "a name has at most %zu characters", sizeof m->name - 1);
		memcpy(m->name, r->p, r->n);
		m->name[r->n] = 0;
		return 0;
	}
	if (is_preset) {
		char name[16];
		snprintf(name, sizeof name, "%.*s", (int)(r->n < 15 ? r->n : 15), r->p);
		if (parse_preset(r, name))
			return -1;
		r->preset = true;   /* the file's own figures override the preset's */
		r->m->name[0] = 0;  /* and it is the file's mesh, not the preset */
		return 0;
	}
	int rc = 0;
	switch ((MeshFig)f) {
	case MF_TILES: rc = read_tiles(r, &m->rows, &m->cols); break;
	case MF_MEMORY:
		rc = read_size(r, &m->memory);
		m->memory_loc = word_loc(r);
		break;
	case MF_DENSE: rc = read_rate(r, MF_DENSE, &m->dense); break;
	case MF_SPARSE: rc = read_rate(r, MF_SPARSE, &m->sparse); break;
	case MF_LOCAL: rc = read_rate(r, MF_LOCAL, &m->local); break;
	case MF_LINK: rc = read_rate(r, MF_LINK, &m->link); break;
	case MF_LATENCY: rc = read_time(r, &m->latency); break;
	case MF_CLOCK: rc = read_clock(r, &m->clock); break;
	default: break;
	}
	if (!rc)
		snprintf(m->from[f], MESH_FROM_MAX, "%s", at);
	return rc;
}

/* file := { [key value] [# comment] EOL } */
static int parse_text(Reader *r)
{
	const char *s = r->src->text, *end = s + r->src->len;
	bool first = true;
	for (r->line = 1; s < end; r->line++) {
		const char *eol = memchr(s, '\n', (size_t)(end - s));
		if (!eol)
			eol = end;
		const char *hash = memchr(s, '#', (size_t)(eol - s));
		const char *stop = hash ? hash : eol;
		r->comment = hash ? hash + 1 : eol;
		while (r->comment < eol && (*r->comment == ' ' || *r->comment == '\t'))
			r->comment++;
		r->ncomment = (size_t)(eol - r->comment);
		while (r->ncomment && isspace((unsigned char)r->comment[r->ncomment - 1]))
			r->ncomment--;
		/* up to three words: key, value, and anything left is an error */
		const char *w[3] = {0};
		size_t wn[3] = {0};
		int nw = 0;
		for (const char *p = s; p < stop;) {
			while (p < stop && (*p == ' ' || *p == '\t' || *p == '\r'))
				p++;
			if (p == stop)
				break;
			const char *q = p;
			while (q < stop && *q != ' ' && *q != '\t' && *q != '\r')
				q++;
			if (nw == 3)
				break;
			w[nw] = p;
			wn[nw++] = (size_t)(q - p);
			p = q;
		}
		if (nw) {
			SrcLoc keyloc = {r->src, r->line, (uint32_t)(w[0] - s) + 1, (uint32_t)wn[0]};
			if (nw == 3) {
				r->p = w[2];
				r->n = wn[2];
				r->col = (uint32_t)(w[2] - s) + 1;
				return rerr(r, "one value per line: '%.*s' is one too many",
					    (int)wn[2], w[2]);
			}
			r->p = w[1];
			r->n = wn[1];
			r->col = w[1] ? (uint32_t)(w[1] - s) + 1 : 0;
			if (wn[0] == 6 && !memcmp(w[0], "preset", 6) && !first)
				return diag_error(r->d, keyloc, "a preset comes first, before the "
						  "figures it starts from");
			if (parse_line(r, w[0], wn[0], keyloc))
				return -1;
			first = false;
		}
		s = eol + 1;
	}
	return 0;
}

/* The figures of a preset into r->m (its from[] saying so). */
static int parse_preset(Reader *r, const char *name)
{
	if (!strcmp(name, "host")) {
		SrcLoc loc = word_loc(r);
		return host_figures(r->m, r->host, true, loc, r->d) ? -1 : (snprintf(r->m->name,
			sizeof r->m->name, "host"), 0);
	}
	for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
		if (strcmp(name, presets[i].name))
			continue;
		Source src;
		char sname[32];
		snprintf(sname, sizeof sname, "<preset %s>", name);
		if (source_from_string(&src, sname, presets[i].text))
			return diag_error(r->d, (SrcLoc){0}, "out of memory");
		Reader sub = {.m = r->m, .src = &src, .d = r->d, .host = r->host};
		int rc = parse_text(&sub) || finish(&sub);
		r->m->memory_loc = (SrcLoc){0};   /* the preset's text goes now */
		source_free(&src);
		return rc ? -1 : 0;
	}
	return rerr(r, "unknown preset '%s'; the presets are host, ipu and wafer", name);
}

static double *fig_field(Mesh *m, MeshFig f)
{
	switch (f) {
	case MF_DENSE: return &m->dense;
	case MF_SPARSE: return &m->sparse;
	case MF_LOCAL: return &m->local;
	case MF_LINK: return &m->link;
	case MF_LATENCY: return &m->latency;
	case MF_CLOCK: return &m->clock;
	default: return NULL;
	}
}

/* After the text: the /cycle figures resolved, what is missing defaulted
 * or refused. */
static int finish(Reader *r)
{
	Mesh *m = r->m;
	for (int f = 0; f < MF_COUNT; f++) {
		if (!(r->percycle[f] > 0) && !(f == MF_LATENCY && r->percycle_loc[f].src))
			continue;
		if (!(m->clock > 0))
			return diag_error(r->d, r->percycle_loc[f], "a figure per cycle needs the "
					  "clock (clock 1.1G)");
		double *x = fig_field(m, (MeshFig)f);
		*x = f == MF_LATENCY ? r->percycle[f] / m->clock : r->percycle[f] * m->clock;
	}
	if (!r->preset) {
		static const MeshFig need[] = {MF_TILES, MF_MEMORY, MF_DENSE, MF_LINK};
		for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
			if (!r->have[need[i]])
				return diag_error(r->d, (SrcLoc){r->src, 0, 0, 0}, "the description "
						  "gives no '%s' (a file without a preset needs tiles, "
						  "memory, dense and link)", mesh_fig_name[need[i]]);
		if (!r->have[MF_SPARSE]) {
			m->sparse = m->dense;
			set_from(m, MF_SPARSE, "default: the dense rate");
		}
		if (!r->have[MF_LOCAL])
			set_from(m, MF_LOCAL, "default: no limit");
		if (!r->have[MF_LATENCY])
			set_from(m, MF_LATENCY, "default: 0");
		if (!r->have[MF_CLOCK])
			set_from(m, MF_CLOCK, "unknown");
	}
	/* per-cycle figures times a large clock can overflow */
	for (int f = MF_DENSE; f < MF_COUNT; f++) {
		double x = *fig_field(m, (MeshFig)f);
		bool positive = f == MF_DENSE || f == MF_SPARSE || f == MF_LINK;
		if (!isfinite(x) || x < 0 || (positive && !(x > 0)))
			return diag_error(r->d, (SrcLoc){r->src, 0, 0, 0}, "the %s figure is out of "
					  "range", mesh_fig_name[f]);
	}
	if (!m->name[0]) {
		const char *base = strrchr(r->src->name, '/');
		snprintf(m->name, sizeof m->name, "%s", base ? base + 1 : r->src->name);
	}
	return 0;
}

static int parse_source(Source *src, const MeshHost *host, Mesh *m, Diag *d)
{
	Reader r = {.m = m, .src = src, .d = d, .host = host};
	m->src = src;
	m->loc = (SrcLoc){src, 0, 0, 0};
	return parse_text(&r) || finish(&r) ? -1 : 0;
}

int mesh_parse_text(const char *name, const char *text, const MeshHost *host, Mesh *m, Diag *d)
{
	return mesh_parse_mem(name, text, strlen(text), host, m, d);
}

int mesh_parse_mem(const char *name, const void *data, size_t len, const MeshHost *host, Mesh *m,
		   Diag *d)
{
	memset(m, 0, sizeof *m);
	Source *src = mem_calloc(1, sizeof *src);
	if (!src || source_from_mem(src, name, data, len)) {
		mem_free(src);
		return diag_error(d, (SrcLoc){0}, "out of memory");
	}
	if (parse_source(src, host, m, d)) {
		mesh_free(m);
		return -1;
	}
	return 0;
}

/* RxC[:MEMORY]: the tiles and maybe the memory, the host's other figures. */
static int parse_grid(Source *src, const MeshHost *host, Mesh *m, Diag *d)
{
	const char *s = src->text, *colon = strchr(s, ':');
	Reader r = {.m = m, .src = src, .d = d, .host = host, .line = 1, .col = 1, .p = s,
		    .n = colon ? (size_t)(colon - s) : strlen(s)};
	m->src = src;
	m->loc = (SrcLoc){src, 0, 0, 0};
	uint32_t rows, cols;
	if (read_tiles(&r, &rows, &cols))
		return -1;
	int64_t memory = 0;
	if (colon) {
		r.p = colon + 1;
		r.n = strlen(r.p);
		r.col = (uint32_t)(r.p - s) + 1;
		if (!r.n)
			return rerr(&r, "expected the memory per tile after ':', like 2x2:48K");
		if (read_size(&r, &memory))
			return -1;
		m->memory_loc = word_loc(&r);
	}
	if (host_figures(m, host, false, (SrcLoc){src, 1, 1, (uint32_t)strlen(s)}, d))
		return -1;
	m->rows = rows;
	m->cols = cols;
	set_from(m, MF_TILES, "--mesh");
	if (colon) {
		m->memory = memory;
		set_from(m, MF_MEMORY, "--mesh");
	}
	snprintf(m->name, sizeof m->name, "%s", s);
	return 0;
}

int mesh_parse(const char *spec, const MeshHost *host, Mesh *m, Diag *d)
{
	memset(m, 0, sizeof *m);
	Source *src = mem_calloc(1, sizeof *src);
	if (!src || source_from_string(src, "--mesh", spec)) {
		mem_free(src);
		return diag_error(d, (SrcLoc){0}, "out of memory");
	}
	int rc;
	bool preset = !strcmp(spec, "host");
	for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
		preset |= !strcmp(spec, presets[i].name);
	if (preset) {
		Reader r = {.m = m, .src = src, .d = d, .host = host, .line = 1, .col = 1,
			    .p = spec, .n = strlen(spec)};
		m->src = src;
		m->loc = (SrcLoc){src, 0, 0, 0};
		rc = parse_preset(&r, spec);
	} else if (isdigit((unsigned char)spec[0]) && strchr(spec, 'x') &&
		   strspn(spec, "0123456789") == (size_t)(strchr(spec, 'x') - spec)) {
		rc = parse_grid(src, host, m, d);
	} else {
		const char *why = NULL;
		Source *file = mem_calloc(1, sizeof *file);
		if (!file || source_load(file, spec, &why)) {
			diag_error(d, (SrcLoc){src, 0, 0, 0}, "'%s' is no preset (host, ipu, wafer), "
				   "no RxC[:MEMORY] and no readable file%s%s", spec,
				   why ? ": " : "", why ? why : "");
			mem_free(file);
			m->src = src;
			mesh_free(m);
			return -1;
		}
		source_free(src);
		mem_free(src);
		rc = parse_source(file, host, m, d);
	}
	if (rc) {
		if (!m->src)
			m->src = src;
		mesh_free(m);
		return -1;
	}
	return 0;
}

void mesh_free(Mesh *m)
{
	if (m->src) {
		source_free(m->src);
		mem_free(m->src);
	}
	memset(m, 0, sizeof *m);
}

void mesh_print(FILE *f, const Mesh *m)
{
	char a[112], b[48];
	fprintf(f, "mesh %s: %u x %u = %lld tiles (%s)\n", m->name, m->rows, m->cols,
		(long long)mesh_tiles(m), m->from[MF_TILES]);
	mesh_fmt_bytes(a, sizeof a, (double)m->memory);
	mesh_fmt_bytes(b, sizeof b, (double)m->memory * (double)mesh_tiles(m));
	snprintf(a + strlen(a), sizeof a - strlen(a), " (%s)", b);
	fprintf(f, "  %-8s %-22s %s\n", "memory", a, m->from[MF_MEMORY]);
	static const MeshFig rate[] = {MF_DENSE, MF_SPARSE, MF_LOCAL, MF_LINK};
	static const char *const unit[] = {"FLOP/s", "FLOP/s", "B/s", "B/s"};
	for (int i = 0; i < 4; i++) {
		double v = *fig_field((Mesh *)m, rate[i]);
		if (rate[i] == MF_LOCAL && !(v > 0))
			snprintf(a, sizeof a, "no limit");
		else
			mesh_fmt_rate(a, sizeof a, v, unit[i]);
		fprintf(f, "  %-8s %-22s %s\n", mesh_fig_name[rate[i]], a, m->from[rate[i]]);
	}
	mesh_fmt_time(a, sizeof a, m->latency);
	fprintf(f, "  %-8s %-22s %s\n", "latency", a, m->from[MF_LATENCY]);
	if (m->clock > 0)
		mesh_fmt_rate(a, sizeof a, m->clock, "Hz");
	else
		snprintf(a, sizeof a, "unknown");
	fprintf(f, "  %-8s %-22s %s\n", "clock", a, m->from[MF_CLOCK]);
	if (m->rates[0])
		fprintf(f, "  host rates %s\n", m->rates);
}
