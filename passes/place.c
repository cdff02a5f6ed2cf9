/* place.c: the step onto a mesh of tiles (docs/mesh.md, "Placement").
 *
 * Weights stay where they are: each weight, with its mask, moments,
 * update, products and gradient, and whatever reads its results most, is
 * one unit (place_cost.c finds them by structure), and a unit gets one
 * rectangle of tiles that every node of it runs on. So the step is a
 * sequence of regions, one per weight, forward, backward and update
 * passing through them in turn, and activations move between neighbours.
 *
 * How many tiles. A unit's work on k tiles takes w/k plus its exchange
 * between shards, which grows with the rectangle's side (hops of latency)
 * while its bytes per link shrink; its best k* minimises the two (no bound
 * when the mesh has no latency). Since the units run one after another,
 * the tiles are shared out to minimise the sum of the w/k: k proportional
 * to the square root of w (the Lagrange condition of sum w/k at fixed sum
 * k), within [memory minimum, max(memory minimum, k*)], filled up to the
 * mesh. The memory minimum is the unit's peak of live bytes over the tile
 * memory. Work is measured by the cost model (place_cost.c): a sparse
 * weight stored compressed does its kept entries only, so it takes fewer
 * tiles than its dense self.
 *
 * Where. The tiles the units need are a rectangle of the mesh (the top-
 * left corner, shaped like the mesh), cut by recursive bisection: the
 * units in step order are split where their tile counts balance, the
 * rectangle across its longer side in that proportion (never below a
 * side's memory minimum), so consecutive units are neighbours and each is
 * a rectangle. A rectangle with fewer tiles than units is shared by all of
 * them (they run one after another on all of its tiles): a small mesh
 * gives every unit every tile, as the host's thread pool does today.
 *
 * A node's shards are its unit's rectangle, or its top-left part when the
 * node has fewer elements than tiles (a scalar on one tile); a view sits
 * where its operand is. Deterministic: no hashing of pointers, no clocks,
 * ties broken by order. The placement is then evaluated (place_cost.c) and
 * refused if a tile's peak exceeds its memory, with the buffers on the
 * fullest tile, each at its .msw line, and the graph left unplaced. */
#include "passes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct Rect {
	uint32_t row, col, rows, cols;
} Rect;

typedef struct Sizing {
	double work;          /* seconds on one tile */
	double beta, gamma;   /* exchange: beta / sqrt(k) + gamma * 2 sqrt(k) */
	double mem;           /* peak live bytes */
	double lo, hi;        /* tiles: the memory minimum, the most worth having */
	double k;             /* tiles given */
	Rect r;
} Sizing;

/* The k minimising work/k + beta/sqrt(k) + 2 gamma sqrt(k) in [1, kmax]. */
static double best_tiles(const Sizing *s, double kmax)
{
	if (!(s->gamma > 0))
		return kmax;
	double lo = 1, hi = sqrt(kmax);
#define DERIV(x) (-2 * s->work / ((x) * (x) * (x)) - s->beta / ((x) * (x)) + 2 * s->gamma)
	if (DERIV(hi) <= 0)
		return kmax;
	if (DERIV(lo) >= 0)
		return 1;
	for (int i = 0; i < 60; i++) {
		double mid = 0.5 * (lo + hi);
		if (DERIV(mid) < 0)
			lo = mid;
		else
			hi = mid;
	}
#undef DERIV
	return lo * lo;
}

/* Tiles per unit at scale c: c sqrt(work) within [lo, hi]. */
static double tiles_at(const Sizing *s, double c)
{
	double k = c * sqrt(s->work);
	return k < s->lo ? s->lo : k > s->hi ? s->hi : k;
}

static void share_out(Sizing *s, int n, double T)
{
	double most = 0;
	for (int u = 0; u < n; u++)
		most += s[u].hi;
	if (most <= T) {
		for (int u = 0; u < n; u++)
			s[u].k = s[u].hi;
		return;
	}
	/* the sum of tiles_at grows with c: bisect it onto T (in log space) */
	double lo = 1e-30, hi = 1e30;
	for (int i = 0; i < 200; i++) {
		double mid = sqrt(lo * hi), sum = 0;
		for (int u = 0; u < n; u++)
			sum += tiles_at(&s[u], mid);
		if (sum > T)
			hi = mid;
		else
			lo = mid;
	}
	for (int u = 0; u < n; u++)
		s[u].k = tiles_at(&s[u], lo);
}

/* Units [a, b) into rectangle r, split where their tiles balance. */
static void bisect(Sizing *s, int a, int b, Rect r)
{
	int64_t area = (int64_t)r.rows * r.cols;
	if (b - a == 1 || area < b - a) {
		for (int u = a; u < b; u++)
			s[u].r = r;
		return;
	}
	double total = 0, pre = 0, best = INFINITY;
	for (int u = a; u < b; u++)
		total += s[u].k;
	int split = a + 1;
	for (int u = a; u + 1 < b; u++) {
		pre += s[u].k;
		if (fabs(pre - total / 2) < best) {
			best = fabs(pre - total / 2);
			split = u + 1;
		}
	}
	double w1 = 0, m1 = 0, m2 = 0;
	for (int u = a; u < split; u++) {
		w1 += s[u].k;
		m1 += s[u].lo;
	}
	for (int u = split; u < b; u++)
		m2 += s[u].lo;
	bool across_cols = r.cols >= r.rows;
	uint32_t L = across_cols ? r.cols : r.rows, W = across_cols ? r.rows : r.cols;
	int64_t l1 = total > 0 ? llround((double)L * w1 / total) : L / 2;
	/* each side keeps at least its memory minimum when it can */
	int64_t lo = (int64_t)ceil(m1 / W), hi = (int64_t)L - (int64_t)ceil(m2 / W);
	if (lo <= hi) {
		if (l1 < lo)
			l1 = lo;
		if (l1 > hi)
			l1 = hi;
	}
	if (l1 < 1)
		l1 = 1;
	if (l1 > (int64_t)L - 1)
		l1 = (int64_t)L - 1;
	Rect r1 = r, r2 = r;
	if (across_cols) {
		r1.cols = (uint32_t)l1;
		r2.col += (uint32_t)l1;
		r2.cols -= (uint32_t)l1;
	} else {
		r1.rows = (uint32_t)l1;
		r2.row += (uint32_t)l1;
		r2.rows -= (uint32_t)l1;
	}
	bisect(s, a, split, r1);
	bisect(s, split, b, r2);
}

/* The rectangle of at least `need` tiles from the top-left corner: the
 * least area, then the shape closest to the mesh's. */
static Rect used_rect(uint32_t R, uint32_t C, int64_t need)
{
	Rect best = {0, 0, R, C};
	int64_t barea = (int64_t)R * C;
	double bshape = 0;
	for (uint32_t r = 1; r <= R; r++) {
		int64_t c = (need + r - 1) / r;
		if (c > C)
			continue;
		int64_t area = (int64_t)r * c;
		double shape = fabs(log(((double)r / (double)c) / ((double)R / (double)C)));
		if (area < barea || (area == barea && shape < bshape)) {
			best = (Rect){0, 0, r, (uint32_t)c};
			barea = area;
			bshape = shape;
		}
	}
	return best;
}

/* Each unit's work, exchange and peak memory (its nodes' live bytes). */
static int size_units(const Graph *g, const Mesh *m, const PlaceUnit *units, int nunit,
		      const uint32_t *unit_of, Sizing *s, Diag *d)
{
	uint32_t n = ir_nnode(g);
	Uses uses;
	if (ir_uses(g, &uses, d))
		return -1;
	double *cur = mem_calloc((size_t)nunit, sizeof *cur);
	double *bytes = mem_alloc((n ? n : 1) * sizeof *bytes);
	ValId *root = mem_alloc((n ? n : 1) * sizeof *root);
	uint32_t *last = mem_alloc((n ? n : 1) * sizeof *last);
	if (!cur || !bytes || !root || !last) {
		mem_free(cur);
		mem_free(bytes);
		mem_free(root);
		mem_free(last);
		ir_uses_free(&uses);
		return diag_error(d, (SrcLoc){0}, "out of memory");
	}
	const uint32_t FOREVER = PLACE_FOREVER;
	for (ValId v = 0; v < n; v++) {
		NodeCost c;
		place_node_cost(g, v, units, unit_of, &c);
		Sizing *u = &s[unit_of[v]];
		u->work += place_compute_time(&c, m, 1);
		switch (c.kind) {
		case PK_FORWARD: case PK_INPUT_GRAD: case PK_WEIGHT_GRAD:
			u->beta += (c.comm_a + c.comm_b) / m->link;
			u->gamma += m->latency;
			break;
		case PK_GATHER: u->beta += 2 * c.comm_a / m->link; u->gamma += m->latency; break;
		case PK_SHUFFLE: u->beta += c.comm_a / m->link; u->gamma += m->latency; break;
		case PK_REDUCE: case PK_MATMUL: u->gamma += m->latency; break;
		default: break;
		}
		root[v] = place_root(g, v, root);
		bytes[v] = c.out_bytes;
	}
	place_lifetimes(g, &uses, root, last);
	for (ValId v = 0; v < n; v++)
		if (last[v] == FOREVER) {
			cur[unit_of[v]] += bytes[v];
			s[unit_of[v]].mem = cur[unit_of[v]];
		}
	for (ValId v = 0; v < n; v++) {
		const Node *x = ir_node(g, v);
		if (last[v] != FOREVER && bytes[v] > 0) {
			uint32_t u = unit_of[v];
			cur[u] += bytes[v];
			if (cur[u] > s[u].mem)
				s[u].mem = cur[u];
		}
		for (uint32_t i = 0; i < x->narg; i++) {
			ValId b = root[ir_operand(g, x, i)];
			if (last[b] == v) {
				cur[unit_of[b]] -= bytes[b];
				last[b] = FOREVER - 1;
			}
		}
	}
	mem_free(cur);
	mem_free(bytes);
	mem_free(root);
	mem_free(last);
	ir_uses_free(&uses);
	return 0;
}

/* What a buffer is, for the breakdown of a refusal. */
static void describe(const Graph *g, ValId v, const PlaceUnit *units, const uint32_t *unit_of,
		     char *buf, size_t n)
{
	const Node *x = ir_node(g, v);
	char shape[96];
	ir_shape_str(&x->shape, shape, sizeof shape);
	const PlaceUnit *u = &units[unit_of[v]];
	const char *what = "activation";
	if (x->op == OP_PARAM)
		what = u->is_weight && u->anchor == v ? (u->sparse ? "sparse weight" : "weight")
						       : "parameter";
	else if (x->op == OP_STATE)
		what = "optimiser moment";
	else if (x->op == OP_MASK)
		what = "mask";
	else if (x->op == OP_INPUT)
		what = "input";
	for (size_t i = 0; i < g->grad.len; i++)
		if (VEC_AT(g->grad, GradPair, i).grad == v)
			what = "gradient";
	if (x->name)
		snprintf(buf, n, "%s \"%s\" %s%s", what, ir_str(g, x->name),
			 ir_dtype_name[x->dtype], shape);
	else
		snprintf(buf, n, "%s %%%u = %s %s%s", what, v, ir_op[x->op].name,
			 ir_dtype_name[x->dtype], shape);
}

static SrcLoc mesh_loc(const Mesh *m)
{
	return m->memory_loc.src ? m->memory_loc : m->loc;
}

/* The refusal: the fullest tile and what fills it. */
static int refuse(const Graph *g, const Mesh *m, const PlaceStats *st, const Vec *over,
		  const PlaceUnit *units, const uint32_t *unit_of, Diag *d)
{
	char a[48], b[48], what[256];
	mesh_fmt_bytes(a, sizeof a, (double)st->mem_max);
	mesh_fmt_bytes(b, sizeof b, (double)m->memory);
	diag_error(d, mesh_loc(m), "the step does not fit on mesh '%s': tile (%u,%u) holds %s at "
		   "its peak, more than its %s", m->name, st->mem_max_row, st->mem_max_col, a, b);
	int64_t rest = 0;
	size_t shown = 0;
	for (size_t i = 0; i < over->len; i++) {
		const PlaceBuffer *pb = &VEC_AT(*over, PlaceBuffer, i);
		if (shown == 8) {
			rest += pb->bytes;
			continue;
		}
		describe(g, pb->v, units, unit_of, what, sizeof what);
		mesh_fmt_bytes(a, sizeof a, (double)pb->bytes);
		char uname[96];
		place_unit_name(g, &units[unit_of[pb->v]], uname, sizeof uname);
		diag_note(d, ir_node(g, pb->v)->loc, "%s on this tile: %s, unit %s", a, what, uname);
		shown++;
	}
	if (over->len > shown) {
		mesh_fmt_bytes(a, sizeof a, (double)rest);
		diag_note(d, (SrcLoc){0}, "and %zu smaller buffers: %s", over->len - shown, a);
	}
	diag_note(d, (SrcLoc){0}, "give the mesh more memory per tile or more tiles, or make "
		  "the model smaller or sparser");
	return -1;
}

int pass_place(Graph *g, const PassOptions *o, Diag *d)
{
	const Mesh *m = o->mesh;
	if (!m)
		return 0;
	uint32_t n = ir_nnode(g);
	PlaceUnit *units = NULL;
	uint32_t *unit_of = NULL;
	int nunit = 0;
	Sizing *s = NULL;
	Vec over = {0};
	int rc = -1;
	if (place_units(g, m, &units, &nunit, &unit_of, d))
		return -1;
	s = mem_calloc((size_t)nunit, sizeof *s);
	if (!s) {
		diag_error(d, (SrcLoc){0}, "out of memory");
		goto done;
	}
	if (size_units(g, m, units, nunit, unit_of, s, d))
		goto done;
	double T = (double)mesh_tiles(m), mem = 0;
	for (int u = 0; u < nunit; u++) {
		s[u].lo = ceil(s[u].mem / (double)m->memory);
		if (s[u].lo < 1)
			s[u].lo = 1;
		/* at least an element of the weight per tile */
		double most = units[u].is_weight ? (double)units[u].numel : T;
		s[u].hi = best_tiles(&s[u], most < T ? most : T);
		if (s[u].hi < s[u].lo)
			s[u].hi = s[u].lo;
		mem += s[u].mem;
	}
	share_out(s, nunit, T);
	double total = 0;
	for (int u = 0; u < nunit; u++)
		total += s[u].k;
	int64_t want = (int64_t)ceil(total - 1e-9);
	if (want > (int64_t)T)
		want = (int64_t)T;
	if (want < 1)
		want = 1;
	bisect(s, 0, nunit, used_rect(m->rows, m->cols, want));
	if (ir_set_mesh(g, m->name, m->rows, m->cols)) {
		diag_error(d, (SrcLoc){0}, "out of memory");
		goto done;
	}
	for (ValId v = 0; v < n; v++) {
		const Node *x = ir_node(g, v);
		Place *p = ir_place(g, v);
		if (ir_op[x->op].flags & OPF_VIEW) {
			*p = *ir_place(g, ir_operand(g, x, 0));
			continue;
		}
		Rect r = s[unit_of[v]].r;
		int64_t area = (int64_t)r.rows * r.cols, numel = ir_numel(&x->shape);
		if (numel < area) {   /* fewer elements than tiles: the top-left ones */
			r.cols = (uint32_t)(numel < r.cols ? numel : r.cols);
			r.rows = (uint32_t)(numel / r.cols < r.rows ? numel / r.cols : r.rows);
		}
		*p = (Place){r.row, r.col, r.rows, r.cols, units[unit_of[v]].anchor};
	}
	if (o->explain) {
		fprintf(o->explain, "; place on mesh %s (%ux%u, %lld tiles): %d units on %lld tiles\n",
			m->name, m->rows, m->cols, (long long)mesh_tiles(m), nunit, (long long)want);
		for (int u = 0; u < nunit; u++) {
			char w[32], mb[32], uname[96];
			place_unit_name(g, &units[u], uname, sizeof uname);
			mesh_fmt_time(w, sizeof w, s[u].work);
			mesh_fmt_bytes(mb, sizeof mb, s[u].mem);
			fprintf(o->explain, ";   %-28s work %s on one tile, peak %s: at least %.0f "
				"tiles, at most %.0f worth it, given %.1f -> (%u,%u)+%ux%u\n",
				uname, w, mb, s[u].lo, s[u].hi,
				s[u].k, s[u].r.row, s[u].r.col, s[u].r.rows, s[u].r.cols);
		}
	}
	PlaceStats st;
	if (place_evaluate(g, m, &st, &over, d)) {
		ir_clear_place(g);
		goto done;
	}
	if (st.mem_max > m->memory) {
		refuse(g, m, &st, &over, units, unit_of, d);
		if (mem > T * (double)m->memory) {
			char a[48], b[48];
			mesh_fmt_bytes(a, sizeof a, mem);
			mesh_fmt_bytes(b, sizeof b, T * (double)m->memory);
			diag_note(d, (SrcLoc){0}, "the units need %s at their peaks, and all %lld tiles "
				  "hold %s", a, (long long)mesh_tiles(m), b);
		}
		ir_clear_place(g);
		goto done;
	}
	rc = 0;
done:
	vec_free(&over);
	mem_free(s);
	mem_free(units);
	mem_free(unit_of);
	return rc;
}

void place_lifetimes(const Graph *g, const Uses *uses, const ValId *root, uint32_t *last)
{
	uint32_t n = ir_nnode(g);
	for (ValId v = 0; v < n; v++)
		last[v] = place_holds(ir_node(g, v)) ? PLACE_FOREVER : v;
	for (ValId v = 0; v < n; v++)
		for (uint32_t k = uses->start[v]; k < uses->start[v + 1]; k++)
			if (last[root[v]] != PLACE_FOREVER && uses->user[k] > last[root[v]])
				last[root[v]] = uses->user[k];
	for (size_t i = 0; i < g->out.len; i++)
		last[root[VEC_AT(g->out, Output, i).val]] = PLACE_FOREVER;
	if (g->loss != VAL_NONE)
		last[root[g->loss]] = PLACE_FOREVER;
}
