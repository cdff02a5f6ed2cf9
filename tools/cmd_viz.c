/* cmd_viz.c: `mswc viz MODEL.msw --what graph|placement [--mesh M] [--train]
 *                     [-o FILE.svg|.png|.pdf|.dot] [--emit=dot]`
 *
 * Pictures drawn with Graphviz's libraries (cgraph builds the graph, gvc
 * lays it out and renders it; nothing shells out to `dot`), the format from
 * the file's extension; --emit=dot prints the dot source instead.
 *
 *   graph       the dataflow graph of the step, aggregated so a 12-layer
 *               model stays readable: one box per run of nodes of one layer
 *               and one part of the step (forward, backward; the update per
 *               layer; the gradient norm once), listing its op families in
 *               their colours with counts and flops, one cluster per layer,
 *               the weights as cylinders labelled with their shape and, when
 *               sparse, their density; edges carry bytes (width ~ sqrt)
 *   placement   the mesh (needs --mesh): tiles as cells, each unit's
 *               rectangle coloured by its layer and labelled, routes between
 *               units as edges weighted by the bytes they move per step, and
 *               a legend with the cost model's figures (passes/place_cost.c)
 *
 * Layers are named by their weights' hierarchical names (h.3); families by
 * op (docs/mesh.md has both legends). */
#include "tools.h"

#include <graphviz/gvc.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct VizOpts {
	const char *what, *mesh, *out, *emit;
	bool train;
} VizOpts;

const OptHelp viz_options[] = {
	{"--what graph|placement", "the dataflow graph (default) or the placement on --mesh"},
	{"--mesh M", "the mesh to place on: host, ipu, wafer, RxC[:MEMORY] or a file"},
	{"--train", "the training step (backward and update), not the forward pass"},
	{"-o, --out FILE", "write the picture: .svg, .png, .pdf, or .dot for the source"},
	{"--emit=dot", "print the dot source to stdout"},
	{NULL, NULL},
};

static int viz_option(Args *a, int argc, char **argv, int i)
{
	VizOpts *vo = a->user;
	int at = i;
	const char *v;
	if ((v = args_value(argc, argv, &at, "--what"))) {
		if (strcmp(v, "graph") && strcmp(v, "placement"))
			return -usage_error("viz", "--what expects graph or placement, got '%s'", v);
		vo->what = v;
	} else if ((v = args_value(argc, argv, &at, "--mesh"))) {
		if (!*v)
			return -usage_error("viz", "--mesh needs a value");
		vo->mesh = v;
	} else if ((v = args_value(argc, argv, &at, "--out")) ||
		   (v = args_value(argc, argv, &at, "-o"))) {
		if (!*v)
			return -usage_error("viz", "-o needs a file name");
		vo->out = v;
	} else if ((v = args_value(argc, argv, &at, "--emit"))) {
		if (strcmp(v, "dot"))
			return -usage_error("viz", "--emit expects dot, got '%s'", v);
		vo->emit = v;
	} else if (!strcmp(argv[i], "--train")) {
		vo->train = true;
	} else {
		return 0;
	}
	return at - i + 1;
}

/* --- small helpers over cgraph's char * API --- */

static void set(void *obj, const char *k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set(void *obj, const char *k, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	agsafeset(obj, (char *)k, buf, "");
}

static void set_html(Agraph_t *G, void *obj, const char *k, const char *html)
{
	char *h = agstrdup_html(G, (char *)html);
	agsafeset(obj, (char *)k, h, "");
	agstrfree(G, h);
}

/* A growing text for HTML labels. */
typedef struct Text {
	char *s;
	size_t len, cap;
	bool oom;
} Text;

static void put(Text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(Text *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (t->oom || n < 0)
		return;
	if (t->len + (size_t)n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap : 256;
		while (cap < t->len + (size_t)n + 1)
			cap *= 2;
		char *s = mem_realloc(t->s, t->cap, cap);
		if (!s) {
			t->oom = true;
			return;
		}
		t->s = s;
		t->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(t->s + t->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

/* text with &, < and > escaped, for HTML labels */
static void put_esc(Text *t, const char *s)
{
	for (; *s; s++)
		if (*s == '&')
			put(t, "&amp;");
		else if (*s == '<')
			put(t, "&lt;");
		else if (*s == '>')
			put(t, "&gt;");
		else
			put(t, "%c", *s);
}

/* Tableau 20, darker shades first: one colour per layer */
static const char *const palette[] = {
	"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
	"#9c755f", "#bab0ac", "#a0cbe8", "#ffbe7d", "#8cd17d", "#ff9d9a", "#86bcb6", "#f1ce63",
	"#d4a6c8", "#fabfd2", "#d7b5a6", "#79706e",
};
enum { NPALETTE = sizeof palette / sizeof palette[0] };

/* The layers in order of first appearance, and each unit's. */
typedef struct Layers {
	char (*name)[64];
	int n;
	int *of_unit;
} Layers;

static int layers_make(const Graph *g, const PlaceUnit *units, int nunit, Layers *l)
{
	l->name = mem_calloc((size_t)nunit, sizeof *l->name);
	l->of_unit = mem_calloc((size_t)nunit, sizeof *l->of_unit);
	l->n = 0;
	if (!l->name || !l->of_unit)
		return -1;
	for (int u = 0; u < nunit; u++) {
		char name[64];
		place_layer_name(g, &units[u], name, sizeof name);
		int k = 0;
		while (k < l->n && strcmp(l->name[k], name))
			k++;
		if (k == l->n)
			snprintf(l->name[l->n++], 64, "%s", name);
		l->of_unit[u] = k;
	}
	return 0;
}

static void layers_free(Layers *l)
{
	mem_free(l->name);
	mem_free(l->of_unit);
}

/* A unit's short label: its weight's name without the layer and ".weight"
 * ("attn.c_attn"), or its activation products' ops. */
static void short_name(const Graph *g, const PlaceUnit *u, const char *layer, char *buf, size_t n)
{
	if (!u->is_weight) {
		snprintf(buf, n, u->anchor == VAL_NONE ? "everything" : "activations");
		return;
	}
	const char *s = ir_str(g, ir_node(g, u->anchor)->name);
	size_t ll = strlen(layer);
	if (!strncmp(s, layer, ll) && s[ll] == '.')
		s += ll + 1;
	size_t len = strlen(s);
	if (len > 7 && !strcmp(s + len - 7, ".weight"))
		len -= 7;
	snprintf(buf, n, "%.*s", (int)(len ? len : strlen(s)), len ? s : ir_str(g, ir_node(g, u->anchor)->name));
}

/* --- op families, for the dataflow picture --- */

typedef enum Family {
	F_PRODUCT, F_SPARSE, F_ATTENTION, F_REDUCE, F_ELEMENT, F_LAYOUT, F_EMBED, F_LOSS, F_UPDATE,
	F_COUNT
} Family;
static const char *const family_name[F_COUNT] = {
	"matmul", "sparse product", "softmax / mask", "reduction", "elementwise", "layout",
	"embedding", "loss", "update",
};
static const char *const family_colour[F_COUNT] = {
	"#4e79a7", "#59a14f", "#f28e2b", "#76b7b2", "#bab0ac", "#e2e2e2", "#edc948", "#e15759",
	"#b07aa1",
};

static Family family(const Graph *g, ValId v, const PlaceUnit *u)
{
	const Node *n = ir_node(g, v);
	switch (n->op) {
	case OP_MATMUL:
		return u->is_weight && u->density < 1 ? F_SPARSE : F_PRODUCT;
	case OP_SPMM: case OP_SDDMM: return F_SPARSE;
	case OP_SOFTMAX: case OP_SOFTMAX_GRAD: case OP_CAUSAL_MASK: case OP_CAUSAL_MASK_GRAD:
	case OP_CAUSAL_MASK_OFFSET: return F_ATTENTION;
	case OP_SUM: case OP_MEAN: case OP_MAX: case OP_MAX_GRAD: return F_REDUCE;
	case OP_RESHAPE: case OP_PERMUTE: case OP_SLICE: case OP_CONCAT: case OP_BROADCAST:
	case OP_CAST: case OP_CACHE_WRITE: return F_LAYOUT;
	case OP_GATHER: case OP_GATHER_GRAD: return F_EMBED;
	case OP_CROSS_ENTROPY: case OP_CROSS_ENTROPY_GRAD: return F_LOSS;
	case OP_SUMSQ: case OP_GRAD_NORM: case OP_ADAMW: case OP_ADAMW_MASKED: return F_UPDATE;
	default: return F_ELEMENT;
	}
}

static const char *const phase_name[3] = {"forward", "backward", "update"};
static const char *const phase_colour[3] = {"#1f4e79", "#a0522d", "#6a3d9a"};
static const char *const phase_fill[3] = {"#f3f7fb", "#fdf6f0", "#f7f3fa"};

typedef struct Flow {
	int a, b;
	double bytes;
} Flow;

static int flow_cmp(const void *x, const void *y)
{
	const Flow *p = x, *q = y;
	if (p->a != q->a)
		return p->a < q->a ? -1 : 1;
	return p->b < q->b ? -1 : p->b > q->b;
}

/* Sorts and merges flows with the same ends; returns the count. */
static size_t flows_merge(Vec *f)
{
	Flow *x = f->data;
	if (!f->len)
		return 0;
	qsort(x, f->len, sizeof *x, flow_cmp);
	size_t k = 0;
	for (size_t i = 1; i < f->len; i++)
		if (x[i].a == x[k].a && x[i].b == x[k].b)
			x[k].bytes += x[i].bytes;
		else
			x[++k] = x[i];
	f->len = k + 1;
	return f->len;
}

static int push_flow(Vec *f, int a, int b, double bytes)
{
	Flow *x = vec_push(f, sizeof *x);
	if (!x)
		return -1;
	*x = (Flow){a, b, bytes};
	return 0;
}

static void fmt_flops(char *buf, size_t n, double f)
{
	if (f >= 1e9)
		snprintf(buf, n, "%.2f GFLOP", f / 1e9);
	else if (f >= 1e6)
		snprintf(buf, n, "%.1f MFLOP", f / 1e6);
	else
		snprintf(buf, n, "%.0f kFLOP", f / 1e3);
}

static double penwidth(double bytes, double max)
{
	return 0.6 + 5.0 * sqrt(max > 0 ? bytes / max : 0);
}

/* The dataflow picture is a matrix: a row per stage (a run of the forward
 * pass through one layer, in order; a layer read again later, as a tied
 * embedding is by the head, gets a second row), a column per part of the
 * step. A backward node goes to the stage of its layer nearest the
 * earliest stage it reads from (the forward activation it differentiates,
 * or the gradient arriving from the stage after); an update node to its
 * layer's first stage. */
enum { COL_FWD, COL_BWD, COL_UPD, NCOL };

typedef struct Cell {
	int count[F_COUNT];
	double flops[F_COUNT];
	Agnode_t *node;
} Cell;

typedef struct Row {
	int layer;
	bool again;           /* not the layer's first stage */
	Cell cell[NCOL];
	Agraph_t *row;
	Agnode_t *weights;
} Row;

static int draw_graph(Agraph_t *G, const Graph *g, const Mesh *m, bool training, Diag *d)
{
	uint32_t n = ir_nnode(g);
	PlaceUnit *units = NULL;
	uint32_t *unit_of = NULL;
	int nunit = 0;
	Layers L = {0};
	uint8_t *phase = mem_alloc(n ? n : 1);
	int *stage_of = mem_alloc((n ? n : 1) * sizeof *stage_of);
	Vec stages = {0}, flows = {0};
	int rc = -1;
	if (!phase || !stage_of || place_units(g, m, &units, &nunit, &unit_of, d) ||
	    place_phases(g, phase, d) || layers_make(g, units, nunit, &L))
		goto done;
	/* the stages: forward runs by layer */
	int cur = -1;
	for (ValId v = 0; v < n; v++) {
		const Node *x = ir_node(g, v);
		stage_of[v] = -1;
		if ((ir_op[x->op].flags & OPF_SOURCE) || phase[v] != 0)
			continue;
		int layer = L.of_unit[unit_of[v]];
		if (cur < 0 || VEC_AT(stages, Row, cur).layer != layer) {
			bool again = false;
			for (size_t s = 0; s < stages.len; s++)
				again |= VEC_AT(stages, Row, s).layer == layer;
			Row *st = vec_push(&stages, sizeof *st);
			if (!st)
				goto oom;
			st->layer = layer;
			st->again = again;
			cur = (int)stages.len - 1;
		}
		stage_of[v] = cur;
	}
	int nstage = (int)stages.len;
	if (nstage == 0)
		goto oom;   /* cannot happen: a model has a forward pass */
	/* backward and update nodes join a stage of their layer */
	for (ValId v = 0; v < n; v++) {
		const Node *x = ir_node(g, v);
		if ((ir_op[x->op].flags & OPF_SOURCE) || phase[v] == 0 || x->op == OP_GRAD_NORM)
			continue;
		int layer = L.of_unit[unit_of[v]], want = nstage;
		for (uint32_t i = 0; phase[v] == 1 && i < x->narg; i++) {
			int so = stage_of[ir_operand(g, x, i)];
			if (so >= 0 && so < want)
				want = so;
		}
		int best = -1;
		for (int s = 0; s < nstage; s++) {
			if (VEC_AT(stages, Row, s).layer != layer)
				continue;
			if (phase[v] == 2) {   /* the update: the layer's first stage */
				best = s;
				break;
			}
			if (best < 0 || abs(s - want) < abs(best - want))
				best = s;
		}
		stage_of[v] = best >= 0 ? best : (want < nstage ? want : nstage - 1);
	}
	/* what each cell does, and what passes between cells */
	for (ValId v = 0; v < n; v++) {
		const Node *x = ir_node(g, v);
		if (stage_of[v] < 0)
			continue;
		int col = phase[v] == 0 ? COL_FWD : phase[v] == 1 ? COL_BWD : COL_UPD;
		NodeCost c;
		place_node_cost(g, v, units, unit_of, &c);
		Family f = family(g, v, &units[unit_of[v]]);
		Cell *cl = &VEC_AT(stages, Row, stage_of[v]).cell[col];
		cl->count[f]++;
		cl->flops[f] += c.flops;
		for (uint32_t i = 0; i < x->narg; i++) {
			ValId o = ir_operand(g, x, i);
			int so = stage_of[o];
			if (so < 0)
				continue;
			int co = phase[o] == 0 ? COL_FWD : phase[o] == 1 ? COL_BWD : COL_UPD;
			int a = so * NCOL + co, b = stage_of[v] * NCOL + col;
			if (a != b && push_flow(&flows, a, b, (double)ir_nbytes(g, o)))
				goto oom;
		}
	}
	flows_merge(&flows);

	/* a cluster per stage, its cells in one rank, weights on the left */
	Row *S = stages.data;
	for (int s = 0; s < nstage; s++) {
		char name[64];
		snprintf(name, sizeof name, "cluster_%d", s);
		S[s].row = agsubg(G, name, 1);
		Agraph_t *row = S[s].row;
		const char *col = palette[S[s].layer % NPALETTE];
		set(row, "label", "%s%s", L.name[S[s].layer], S[s].again ? " (read again)" : "");
		set(row, "labeljust", "l");
		set(row, "style", "rounded,filled");
		set(row, "fillcolor", "%s20", col);
		set(row, "color", "%s", col);
		set(row, "penwidth", "1.5");
		set(row, "fontsize", "14");
		set(row, "fontname", "Helvetica-Bold");
		set(row, "rank", "same");
		/* the layer's weights, once, at its first stage */
		Text t = {0};
		int nw = 0;
		put(&t, "<table border=\"0\" cellborder=\"0\" cellspacing=\"0\" cellpadding=\"1\">");
		for (int u = 0; u < nunit && !S[s].again; u++) {
			if (!units[u].is_weight || L.of_unit[u] != S[s].layer)
				continue;
			char sn[64], shape[64];
			short_name(g, &units[u], L.name[S[s].layer], sn, sizeof sn);
			ir_shape_str(&ir_node(g, units[u].anchor)->shape, shape, sizeof shape);
			for (char *c = shape; *c; c++)
				if (*c == ',')
					*c = 'x';
			put(&t, "<tr><td align=\"left\"><b>");
			put_esc(&t, sn);
			put(&t, "</b> %s", shape);
			if (units[u].density < 1)
				put(&t, " <font color=\"#2e7d32\"><b>%.0f%% kept</b></font>",
				    100 * units[u].density);
			put(&t, "</td></tr>");
			nw++;
		}
		put(&t, "</table>");
		if (nw) {
			snprintf(name, sizeof name, "weights%d", s);
			S[s].weights = agnode(row, name, 1);
			if (!t.oom)
				set_html(G, S[s].weights, "label", t.s);
			set(S[s].weights, "shape", "cylinder");
			set(S[s].weights, "style", "filled");
			set(S[s].weights, "fillcolor", "#fff7d6");
			set(S[s].weights, "color", "#b8860b");
			set(S[s].weights, "group", "weights");
		}
		mem_free(t.s);
		for (int c = 0; c < NCOL; c++) {
			Cell *cl = &S[s].cell[c];
			int total = 0;
			for (int f = 0; f < F_COUNT; f++)
				total += cl->count[f];
			if (!total)
				continue;
			snprintf(name, sizeof name, "s%dc%d", s, c);
			cl->node = agnode(row, name, 1);
			Text h = {0};
			put(&h, "<table border=\"0\" cellborder=\"0\" cellspacing=\"1\" cellpadding=\"1\">"
			    "<tr><td colspan=\"2\" align=\"left\"><font color=\"%s\"><b>%s</b></font> "
			    "<font color=\"#777777\">%d ops</font></td></tr>", phase_colour[c],
			    phase_name[c], total);
			for (int f = 0; f < F_COUNT; f++) {
				if (!cl->count[f])
					continue;
				char fl[32] = "";
				if (f == F_PRODUCT || f == F_SPARSE) {
					fl[0] = ' ';
					fmt_flops(fl + 1, sizeof fl - 1, cl->flops[f]);
				}
				put(&h, "<tr><td bgcolor=\"%s\" width=\"10\" height=\"10\"></td>"
				    "<td align=\"left\">%s &#215;%d%s</td></tr>", family_colour[f],
				    family_name[f], cl->count[f], fl);
			}
			put(&h, "</table>");
			if (!h.oom)
				set_html(G, cl->node, "label", h.s);
			mem_free(h.s);
			set(cl->node, "color", "%s", phase_colour[c]);
			set(cl->node, "fillcolor", "%s", phase_fill[c]);
			set(cl->node, "group", "%s", phase_name[c]);
		}
		/* columns in order: weights | forward | backward | update */
		Agnode_t *prev = S[s].weights;
		for (int c = 0; c < NCOL; c++) {
			Agnode_t *x = S[s].cell[c].node;
			if (!x)
				continue;
			if (prev) {
				Agedge_t *e = agedge(G, prev, x, NULL, 1);
				set(e, "style", "invis");
			}
			prev = x;
		}
	}
	/* the weights feed their layer's cells */
	for (int s = 0; s < nstage; s++) {
		int first = s;
		while (first > 0 && !(S[first].layer == S[s].layer && S[first].weights))
			first--;
		Agnode_t *w = S[first].layer == S[s].layer ? S[first].weights : NULL;
		for (int c = 0; w && c < NCOL; c++) {
			if (!S[s].cell[c].node || (first == s && c == COL_FWD))
				continue;
			if (first == s && c != COL_FWD)
				continue;   /* its own row: the order edges show it */
			Agedge_t *e = agedge(G, w, S[s].cell[c].node, NULL, 1);
			set(e, "color", "#b8860b");
			set(e, "style", "dashed");
			set(e, "constraint", "false");
			set(e, "label", "weights");
			set(e, "fontsize", "8");
			set(e, "fontcolor", "#b8860b");
		}
		if (w && first == s && S[s].cell[COL_FWD].node) {
			Agedge_t *e = agedge(G, w, S[s].cell[COL_FWD].node, NULL, 1);
			set(e, "color", "#b8860b");
			set(e, "arrowsize", "0.6");
		}
	}
	/* data between cells: forward down, backward up (declared down, drawn
	 * back, so both passes line up by layer), within a row left to right */
	double most = 0;
	for (size_t i = 0; i < flows.len; i++)
		if (VEC_AT(flows, Flow, i).bytes > most)
			most = VEC_AT(flows, Flow, i).bytes;
	Flow *F = flows.data;
	for (size_t i = 0; i < flows.len; i++) {
		Flow *f = &F[i];
		if (f->bytes < 0)
			continue;   /* merged into its reverse */
		/* both ways between two cells: one edge, the heavier way's */
		double back = 0;
		for (size_t k = i + 1; k < flows.len; k++)
			if (F[k].a == f->b && F[k].b == f->a) {
				back = F[k].bytes;
				if (back > f->bytes) {
					Flow t = *f;
					*f = F[k];
					F[k] = t;
					back = F[k].bytes;
				}
				F[k].bytes = -1;
			}
		int sa = f->a / NCOL, ca = f->a % NCOL, sb = f->b / NCOL, cb = f->b % NCOL;
		Agnode_t *A = S[sa].cell[ca].node, *B = S[sb].cell[cb].node;
		if (!A || !B)
			continue;
		bool up = sb < sa;
		Agedge_t *e = up ? agedge(G, B, A, NULL, 1) : agedge(G, A, B, NULL, 1);
		if (back > 0.05 * f->bytes)
			set(e, "dir", "both");
		else if (up)
			set(e, "dir", "back");
		set(e, "penwidth", "%.2f", penwidth(f->bytes, most));
		set(e, "color", "%sc0", phase_colour[cb]);
		set(e, "arrowsize", "0.7");
		/* only neighbouring stages shape the layout */
		if (sa == sb || abs(sa - sb) > 1 || ca != cb)
			set(e, "constraint", "false");
		if (f->bytes >= 0.2 * most) {
			char b[32];
			mesh_fmt_bytes(b, sizeof b, f->bytes);
			set(e, "label", "%s", b);
			set(e, "fontsize", "8");
			set(e, "fontcolor", "%s", phase_colour[cb]);
		}
	}
	/* the global gradient norm: every update waits for it */
	bool has_norm = false;
	for (ValId v = 0; v < n; v++)
		has_norm |= ir_node(g, v)->op == OP_GRAD_NORM;
	if (has_norm) {
		Agnode_t *nn = agnode(G, "norm", 1);
		set_html(G, nn, "label", "<b>global gradient norm</b><br/>grad_norm reads every "
			 "layer's sums of squares;<br/>every update waits for its clip factor");
		set(nn, "color", "%s", phase_colour[2]);
		set(nn, "fillcolor", "%s", phase_fill[2]);
		set(nn, "group", "update");
		/* below the last row */
		for (int c = NCOL; c-- > 0;)
			if (S[nstage - 1].cell[c].node) {
				Agedge_t *e = agedge(G, S[nstage - 1].cell[c].node, nn, NULL, 1);
				set(e, "style", "invis");
				break;
			}

	}
	/* legend */
	{
		Agnode_t *lg = agnode(G, "legend", 1);
		Text t = {0};
		put(&t, "<table border=\"0\" cellborder=\"0\" cellspacing=\"1\" cellpadding=\"2\">");
		put(&t, "<tr><td colspan=\"2\" align=\"left\"><b>");
		put_esc(&t, ir_str(g, g->model_name));
		put(&t, ": the %s, %u ops</b></td></tr>", training ? "training step" : "forward pass", n);
		for (int f = 0; f < F_COUNT; f++)
			put(&t, "<tr><td bgcolor=\"%s\" width=\"12\"></td><td align=\"left\">%s</td></tr>",
			    family_colour[f], family_name[f]);
		put(&t, "<tr><td colspan=\"2\" align=\"left\">a row: one layer's stage; a box: "
		    "its ops<br align=\"left\"/>in one part of the step, by family</td></tr>");
		put(&t, "<tr><td colspan=\"2\" align=\"left\">edges: bytes passed, width &#8733; "
		    "&#8730;bytes<br align=\"left\"/>(forward down, backward up)</td></tr>");
		put(&t, "<tr><td colspan=\"2\" align=\"left\">cylinders: the layer's weights, "
		    "sparse<br align=\"left\"/>ones with their density; the update<br "
		    "align=\"left\"/>writes them in place</td></tr></table>");
		if (!t.oom)
			set_html(G, lg, "label", t.s);
		mem_free(t.s);
		set(lg, "shape", "note");
		set(lg, "fillcolor", "#ffffff");
		if (S[0].cell[COL_FWD].node) {
			Agedge_t *e = agedge(G, lg, S[0].cell[COL_FWD].node, NULL, 1);
			set(e, "style", "invis");
		}
	}
	rc = 0;
	goto done;
oom:
	diag_error(d, (SrcLoc){0}, "out of memory");
done:
	vec_free(&stages);
	vec_free(&flows);
	layers_free(&L);
	mem_free(units);
	mem_free(unit_of);
	mem_free(phase);
	mem_free(stage_of);
	return rc;
}

/* --- the placement --- */

typedef struct Box {
	Place r;              /* the rectangle (unit unused) */
	int first;            /* its first unit */
	int nunit;
	Agnode_t *node;
} Box;

static bool same_rect(const Place *a, const Place *b)
{
	return a->row == b->row && a->col == b->col && a->rows == b->rows && a->cols == b->cols;
}

static int draw_placement(Agraph_t *G, const Graph *g, const Mesh *m, bool training, Diag *d)
{
	uint32_t n = ir_nnode(g);
	PlaceUnit *units = NULL;
	uint32_t *unit_of = NULL;
	int nunit = 0;
	Layers L = {0};
	Place *ur = NULL;
	double *umem = NULL;
	int *box_of = NULL;
	Box *box = NULL;
	Vec flows = {0};
	int rc = -1;
	PlaceStats st;
	int64_t *peak = mem_alloc((size_t)m->rows * m->cols * sizeof *peak);
	int *nmat = NULL, *nsoft = NULL;
	if (!peak)
		goto oom;
	if (place_evaluate_tiles(g, m, &st, NULL, peak, d) ||
	    place_units(g, m, &units, &nunit, &unit_of, d) || layers_make(g, units, nunit, &L))
		goto done;
	nmat = mem_calloc((size_t)nunit, sizeof *nmat);
	nsoft = mem_calloc((size_t)nunit, sizeof *nsoft);
	if (!nmat || !nsoft)
		goto oom;
	{
		uint8_t *phase = mem_alloc(n ? n : 1);
		if (!phase || place_phases(g, phase, d)) {
			mem_free(phase);
			goto done;
		}
		for (ValId v = 0; v < n; v++) {
			nmat[unit_of[v]] += phase[v] == 0 && ir_node(g, v)->op == OP_MATMUL;
			nsoft[unit_of[v]] += phase[v] == 0 && ir_node(g, v)->op == OP_SOFTMAX;
		}
		mem_free(phase);
	}
	ur = mem_calloc((size_t)nunit, sizeof *ur);
	umem = mem_calloc((size_t)nunit, sizeof *umem);
	box_of = mem_calloc((size_t)nunit, sizeof *box_of);
	box = mem_calloc((size_t)nunit, sizeof *box);
	if (!ur || !umem || !box_of || !box)
		goto oom;
	/* each unit's rectangle (its largest) and persistent bytes per tile */
	for (ValId v = 0; v < n; v++) {
		const Place *p = ir_place(g, v);
		uint32_t u = unit_of[v];
		if ((int64_t)p->rows * p->cols > (int64_t)ur[u].rows * ur[u].cols)
			ur[u] = *p;
		if (place_holds(ir_node(g, v))) {
			NodeCost c;
			place_node_cost(g, v, units, unit_of, &c);
			umem[u] += c.out_bytes;
		}
	}
	int nbox = 0;
	for (int u = 0; u < nunit; u++) {
		int b = 0;
		while (b < nbox && !same_rect(&box[b].r, &ur[u]))
			b++;
		if (b == nbox)
			box[nbox++] = (Box){.r = ur[u], .first = u};
		box[b].nunit++;
		box_of[u] = b;
	}
	/* routes: the bytes between boxes, both ways on one edge */
	for (ValId v = 0; v < n; v++) {
		const Node *x = ir_node(g, v);
		for (uint32_t i = 0; i < x->narg; i++) {
			ValId o = ir_operand(g, x, i);
			int a = box_of[unit_of[o]], b = box_of[unit_of[v]];
			if (a == b || same_rect(ir_place(g, o), ir_place(g, v)))
				continue;
			NodeCost c;
			place_node_cost(g, o, units, unit_of, &c);
			double bytes = c.out_bytes > 0 ? c.out_bytes : (double)ir_nbytes(g, o);
			if (push_flow(&flows, a < b ? a : b, a < b ? b : a, bytes))
				goto oom;
		}
	}
	flows_merge(&flows);

	uint32_t R = m->rows, C = m->cols;
	double side = R > C ? R : C;
	double cell = 9.0 / side;   /* inches: the grid about 9 inches across */
	if (cell > 1.8)
		cell = 1.8;
	set(G, "layout", "neato");
	set(G, "overlap", "true");
	set(G, "splines", "curved");
	set(G, "outputorder", "nodesfirst");
	set(G, "bgcolor", "white");
	set(G, "pad", "0.3");
	/* the tiles, when there are few enough to see; else the mesh's outline */
	if ((int64_t)R * C > 1024) {
		Agnode_t *t = agnode(G, "grid", 1);
		set(t, "shape", "box");
		set(t, "label", "%s", "");
		set(t, "width", "%.4f", C * cell);
		set(t, "height", "%.4f", R * cell);
		set(t, "fixedsize", "true");
		set(t, "pos", "%.4f,%.4f!", C * cell / 2, -(R * cell) / 2);
		set(t, "style", "filled");
		set(t, "color", "#c8c8c8");
		set(t, "fillcolor", "#efefef");
	} else {
		bool *used = mem_calloc((size_t)R * C, 1);
		if (!used)
			goto oom;
		for (ValId v = 0; v < n; v++) {
			const Place *p = ir_place(g, v);
			for (uint32_t r = p->row; r < p->row + p->rows; r++)
				for (uint32_t c = p->col; c < p->col + p->cols; c++)
					used[(size_t)r * C + c] = true;
		}
		for (uint32_t r = 0; r < R; r++)
			for (uint32_t c = 0; c < C; c++) {
				char name[32];
				snprintf(name, sizeof name, "t%u_%u", r, c);
				Agnode_t *t = agnode(G, name, 1);
				set(t, "shape", "box");
				set(t, "label", "%s", "");
				set(t, "width", "%.4f", cell);
				set(t, "height", "%.4f", cell);
				set(t, "fixedsize", "true");
				set(t, "pos", "%.4f,%.4f!", (c + 0.5) * cell, -(r + 0.5) * cell);
				set(t, "style", "filled");
				set(t, "penwidth", "0.4");
				set(t, "color", "#c8c8c8");
				set(t, "fillcolor", "%s", used[(size_t)r * C + c] ? "#ffffff" : "#efefef");
			}
		mem_free(used);
	}
	/* tick labels every few rows and columns */
	uint32_t step = side <= 20 ? 4 : side <= 64 ? 8 : side <= 256 ? 32 : 100;
	for (int axis = 0; axis < 2; axis++)
		for (uint32_t k = 0; k < (axis ? R : C); k += step) {
			char name[32];
			snprintf(name, sizeof name, "tick%d_%u", axis, k);
			Agnode_t *t = agnode(G, name, 1);
			set(t, "shape", "plaintext");
			set(t, "label", "%u", k);
			set(t, "fontsize", "9");
			set(t, "fontcolor", "#777777");
			if (axis)
				set(t, "pos", "%.4f,%.4f!", -0.25, -(k + 0.5) * cell);
			else
				set(t, "pos", "%.4f,%.4f!", (k + 0.5) * cell, 0.2);
		}
	/* a box per rectangle: its units, coloured by layer */
	for (int b = 0; b < nbox; b++) {
		const Place *r = &box[b].r;
		const PlaceUnit *u0 = &units[box[b].first];
		int layer = L.of_unit[box[b].first];
		char name[32];
		snprintf(name, sizeof name, "box%d", b);
		Agnode_t *x = agnode(G, name, 1);
		box[b].node = x;
		double w = r->cols * cell, h = r->rows * cell;
		int64_t top = 0;
		for (uint32_t rr = r->row; rr < r->row + r->rows; rr++)
			for (uint32_t cc = r->col; cc < r->col + r->cols; cc++)
				if (peak[(size_t)rr * C + cc] > top)
					top = peak[(size_t)rr * C + cc];
		/* the lines, the first in bold; the font the largest that fits
		 * (Helvetica is about 0.55 em a character); the last lines go
		 * first when even 6 points do not fit */
		char line[10][96];
		int nl = 0;
		char mb[32];
		mesh_fmt_bytes(mb, sizeof mb, (double)top);
		if (box[b].nunit == 1) {
			char sn[64];
			short_name(g, u0, L.name[layer], sn, sizeof sn);
			snprintf(line[nl++], 96, "%s", L.name[layer]);
			if (u0->is_weight && strcmp(sn, "weight")) {
				snprintf(line[nl++], 96, "%s", sn);
			} else if (!u0->is_weight) {
				snprintf(line[nl++], 96, "%d matmul%s%s", nmat[box[b].first],
					 nmat[box[b].first] == 1 ? "" : "s", nsoft[box[b].first] ? "," : "");
				if (nsoft[box[b].first])
					snprintf(line[nl++], 96, "softmax");
			} else {
				char shape[64];
				ir_shape_str(&ir_node(g, u0->anchor)->shape, shape, sizeof shape);
				snprintf(line[nl++], 96, "table %s", shape);
			}
			snprintf(line[nl++], 96, "%ux%u tiles", r->rows, r->cols);
			snprintf(line[nl++], 96, "peak %s", mb);
			if (u0->density < 1)
				snprintf(line[nl++], 96, "%s %.0f%% kept", u0->sparse ? "sparse" : "masked",
					 100 * u0->density);
		} else {
			snprintf(line[nl++], 96, "%d units", box[b].nunit);
			snprintf(line[nl++], 96, "%ux%u tiles, peak %s", r->rows, r->cols, mb);
			int shown = 0;
			for (int u = 0; u < nunit && shown < 6; u++)
				if (box_of[u] == b) {
					place_unit_name(g, &units[u], line[nl++], 96);
					shown++;
				}
			if (box[b].nunit > shown)
				snprintf(line[nl++], 96, "and %d more", box[b].nunit - shown);
		}
		double fs = 0;
		for (; nl > 1; nl--) {
			size_t longest = 1;
			for (int k = 0; k < nl; k++)
				if (strlen(line[k]) > longest)
					longest = strlen(line[k]);
			fs = fmin(0.92 * w * 72 / (0.56 * (double)longest), 0.9 * h * 72 / (1.2 * nl));
			if (fs >= 6)
				break;
		}
		if (fs > 13)
			fs = 13;
		if (fs < 4)
			fs = 4;
		Text t = {0};
		for (int k = 0; k < nl; k++) {
			put(&t, k == 0 ? "<b>" : "<br/>");
			put_esc(&t, line[k]);
			if (k == 0)
				put(&t, "</b>");
		}
		if (!t.oom)
			set_html(G, x, "label", t.s);
		mem_free(t.s);
		set(x, "shape", "box");
		set(x, "style", "filled,rounded");
		set(x, "fillcolor", "%sb0", box[b].nunit > 1 ? "#9e9e9e" : palette[layer % NPALETTE]);
		set(x, "color", "%s", box[b].nunit > 1 ? "#555555" : palette[layer % NPALETTE]);
		set(x, "penwidth", "2");
		set(x, "width", "%.4f", w);
		set(x, "height", "%.4f", h);
		set(x, "fixedsize", "true");
		set(x, "fontsize", "%.1f", fs);
		set(x, "margin", "0");
		set(x, "pos", "%.4f,%.4f!", (r->col + r->cols / 2.0) * cell,
		    -(r->row + r->rows / 2.0) * cell);
	}
	/* routes, the heaviest 60, none below 1% of the heaviest */
	Flow *fl = flows.data;
	double most = 0;
	for (size_t i = 0; i < flows.len; i++)
		if (fl[i].bytes > most)
			most = fl[i].bytes;
	for (size_t shown = 0; shown < 60; shown++) {
		size_t best = flows.len;
		for (size_t i = 0; i < flows.len; i++)
			if (fl[i].bytes >= 0.01 * most && (best == flows.len || fl[i].bytes > fl[best].bytes))
				best = i;
		if (best == flows.len)
			break;
		Agedge_t *e = agedge(G, box[fl[best].a].node, box[fl[best].b].node, NULL, 1);
		char bytes[32];
		mesh_fmt_bytes(bytes, sizeof bytes, fl[best].bytes);
		set(e, "penwidth", "%.2f", penwidth(fl[best].bytes, most));
		set(e, "color", "#10101060");
		set(e, "dir", "none");
		if (fl[best].bytes >= 0.3 * most) {
			set(e, "label", "%s", bytes);
			set(e, "fontsize", "8");
			set(e, "fontcolor", "#202020");
		}
		fl[best].bytes = -1;   /* drawn */
	}
	/* the legend, right of the grid */
	{
		Agnode_t *lg = agnode(G, "legend", 1);
		char a[48], b[48], c[48];
		Text t = {0};
		put(&t, "<table border=\"0\" cellborder=\"0\" cellspacing=\"1\" cellpadding=\"2\">");
		put(&t, "<tr><td colspan=\"2\" align=\"left\"><b>");
		put_esc(&t, ir_str(g, g->model_name));
		put(&t, ", %s, on mesh ", training ? "training step" : "forward pass");
		put_esc(&t, m->name);
		put(&t, "</b></td></tr>");
		put(&t, "<tr><td colspan=\"2\" align=\"left\">%ux%u tiles, %lld used by %d units</td></tr>",
		    R, C, (long long)st.tiles_used, nunit);
		mesh_fmt_bytes(a, sizeof a, (double)st.mem_max);
		mesh_fmt_bytes(b, sizeof b, st.tiles_used ? (double)st.mem_total / (double)st.tiles_used : 0);
		mesh_fmt_bytes(c, sizeof c, (double)m->memory);
		put(&t, "<tr><td colspan=\"2\" align=\"left\">memory per tile: max %s, mean %s, "
		    "of %s</td></tr>", a, b, c);
		mesh_fmt_time(a, sizeof a, st.step);
		put(&t, "<tr><td colspan=\"2\" align=\"left\">predicted step: %s</td></tr>", a);
		mesh_fmt_bytes(a, sizeof a, st.link_max);
		put(&t, "<tr><td colspan=\"2\" align=\"left\">busiest link: %s from tile (%u,%u)</td></tr>",
		    a, st.link_row, st.link_col);
		put(&t, "<tr><td colspan=\"2\" align=\"left\"> </td></tr>");
		for (int k = 0; k < L.n && k < 24; k++) {
			put(&t, "<tr><td bgcolor=\"%sb0\" width=\"14\"></td><td align=\"left\">",
			    palette[k % NPALETTE]);
			put_esc(&t, L.name[k]);
			put(&t, "</td></tr>");
		}
		if (L.n > 24)
			put(&t, "<tr><td></td><td align=\"left\">and %d more layers</td></tr>", L.n - 24);
		put(&t, "<tr><td bgcolor=\"#9e9e9eb0\" width=\"14\"></td><td align=\"left\">tiles "
		    "shared by several units</td></tr>");
		put(&t, "<tr><td colspan=\"2\" align=\"left\"> </td></tr>");
		put(&t, "<tr><td colspan=\"2\" align=\"left\" balign=\"left\">a box: a unit's tiles (its weight, "
		    "moments,<br align=\"left\"/>products, gradient and update); peak: the<br "
		    "align=\"left\"/>fullest of its tiles over the step</td></tr>");
		put(&t, "<tr><td colspan=\"2\" align=\"left\" balign=\"left\">edges: bytes between units per step<br "
		    "align=\"left\"/>(width &#8733; &#8730;bytes; both ways)</td></tr></table>");
		if (!t.oom)
			set_html(G, lg, "label", t.s);
		mem_free(t.s);
		set(lg, "shape", "box");
		set(lg, "style", "rounded");
		set(lg, "color", "#999999");
		set(lg, "fontsize", "11");
		set(lg, "pos", "%.4f,%.4f!", C * cell + 2.7, -(R * cell) / 2);
	}
	rc = 0;
	goto done;
oom:
	diag_error(d, (SrcLoc){0}, "out of memory");
done:
	vec_free(&flows);
	layers_free(&L);
	mem_free(units);
	mem_free(unit_of);
	mem_free(peak);
	mem_free(nmat);
	mem_free(nsoft);
	mem_free(ur);
	mem_free(umem);
	mem_free(box_of);
	mem_free(box);
	return rc;
}

/* The renderer's format from the file name: svg, png, pdf, or dot. */
static const char *format_of(const char *path)
{
	const char *dot = strrchr(path, '.');
	static const char *const ok[] = {"svg", "png", "pdf", "dot", "gv"};
	for (size_t i = 0; dot && i < sizeof ok / sizeof ok[0]; i++)
		if (!strcmp(dot + 1, ok[i]))
			return !strcmp(ok[i], "gv") ? "dot" : ok[i];
	return NULL;
}

int cmd_viz(int argc, char **argv)
{
	VizOpts vo = {.what = "graph"};
	Args a = {.cmd = "viz", .user = &vo};
	if (args_parse(&a, argc, argv, viz_option))
		return EXIT_USAGE;
	bool placement = !strcmp(vo.what, "placement");
	if (placement && !vo.mesh)
		return usage_error("viz", "--what placement needs --mesh");
	if (!vo.out && !vo.emit)
		return usage_error("viz", "give -o FILE.svg|.png|.pdf|.dot or --emit=dot");
	const char *fmt = vo.out ? format_of(vo.out) : "dot";
	if (!fmt)
		return usage_error("viz", "-o: '%s' does not end in .svg, .png, .pdf or .dot", vo.out);
	Mesh mesh;
	bool have_mesh = vo.mesh != NULL;
	if (have_mesh && tools_mesh(vo.mesh, a.threads, &mesh))
		return EXIT_FAIL;
	/* as mswc place: another machine's mesh sees the sparse products
	 * masked, without the host kernels' transposes */
	if (have_mesh && !mesh.rates[0] && !a.sparse_format)
		a.sparse_format = SPF_MASKED + 1;
	BuildOptions bo = {
		.args = &a,
		.training = vo.train,
		.optimizer = vo.train,
		.stage = STAGE_GRAPH,
		.mesh = have_mesh ? &mesh : NULL,
	};
	Build b;
	int rc = build_run(&b, &bo);
	GVC_t *gvc = NULL;
	Agraph_t *G = NULL;
	if (rc)
		goto done;
	rc = EXIT_FAIL;
	G = agopen((char *)"mswc", Agdirected, NULL);
	if (!G) {
		fprintf(stderr, "mswc viz: error: out of memory\n");
		goto done;
	}
	agattr(G, AGNODE, (char *)"fontname", (char *)"Helvetica");
	agattr(G, AGEDGE, (char *)"fontname", (char *)"Helvetica");
	agattr(G, AGRAPH, (char *)"fontname", (char *)"Helvetica");
	if (placement) {
		if (draw_placement(G, b.g, &mesh, vo.train, &b.diag))
			goto fail;
	} else {
		set(G, "rankdir", "TB");
		set(G, "nodesep", "0.25");
		set(G, "ranksep", "0.35");
		set(G, "newrank", "true");
		agattr(G, AGNODE, (char *)"shape", (char *)"box");
		agattr(G, AGNODE, (char *)"style", (char *)"rounded,filled");
		agattr(G, AGNODE, (char *)"fontsize", (char *)"10");
		if (draw_graph(G, b.g, have_mesh ? &mesh : NULL, vo.train, &b.diag))
			goto fail;
	}
	if (vo.emit || !strcmp(fmt, "dot")) {
		FILE *f = vo.out ? fopen(vo.out, "w") : stdout;
		if (!f || agwrite(G, f) != 0) {
			fprintf(stderr, "mswc viz: error: cannot write %s\n", vo.out ? vo.out : "stdout");
			if (f && f != stdout)
				fclose(f);
			goto done;
		}
		if (f != stdout && fclose(f)) {
			fprintf(stderr, "mswc viz: error: cannot write %s\n", vo.out);
			goto done;
		}
		if (!vo.out || vo.emit) {
			rc = 0;
			if (!vo.out || !strcmp(fmt, "dot"))
				goto done;
		}
	}
	gvc = gvContext();
	if (!gvc || gvLayout(gvc, G, placement ? "neato" : "dot")) {
		fprintf(stderr, "mswc viz: error: Graphviz could not lay the picture out\n");
		goto done;
	}
	if (gvRenderFilename(gvc, G, fmt, vo.out)) {
		fprintf(stderr, "mswc viz: error: Graphviz could not write %s as %s\n", vo.out, fmt);
		gvFreeLayout(gvc, G);
		goto done;
	}
	gvFreeLayout(gvc, G);
	fprintf(stderr, "wrote %s\n", vo.out);
	rc = 0;
	goto done;
fail:
	fputs(diag_text(&b.diag), stderr);
done:
	if (G)
		agclose(G);
	if (gvc)
		gvFreeContext(gvc);
	build_free(&b);
	if (have_mesh)
		mesh_free(&mesh);
	return rc;
}
