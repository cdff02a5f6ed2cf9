/* prune.c: sparsity masks: which params are sparse, their patterns, and
 * the mask products in the graph (docs/sparsity.md has the whole story).
 *
 * Coverage and targets come from the model's `sparsity` statements (the
 * frontend records a pending Mask per covered param), overridden by
 * PruneOptions: a sparsity target (which, for a model without statements,
 * covers the default set, ir_sparse_candidate), a distribution, or --dense,
 * which drops every mask. Then each pending mask gets its pattern:
 *   1. a supplied mask (a checkpoint's "<name>.mask") wins, as given;
 *   2. otherwise exactly z = round(s * numel) elements are zeroed, s being
 *      the param's target (uniform) or 1 - its ERK density (erk, see
 *      pass_erk_density); the numel - z kept ones are those ranked first:
 *        random     by score(i) = xxh3_64(le64(i), seed = xxh3_64(name,
 *                   seed)), ascending, ties by index; a function of (seed,
 *                   name, i) only, so masks are reproducible and do not
 *                   depend on the order or number of other params;
 *        magnitude  by |w[i]| descending (NaN last), ties by lower index.
 * Finally every reader of a sparse param W is made to read mul(W, M)
 * instead, M a MASK source right after W. The forward pass then sees W * M
 * and autodiff, which runs next, gives dW = d(W*M) * M: no gradient at a
 * pruned position. The optimizer's half (no update there) is the
 * backend's (emit_optim.c).
 *
 * Assumes a verified graph with normalised shapes (after infer_shapes) and
 * no gradients yet if anything is to be rewritten. Idempotent: a param
 * that already has its MASK node is not rewritten again, so printed IR read
 * back runs through unchanged. Everything is computed aside and committed
 * at the end: on failure the graph is as it was. */
#include "passes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void pass_prune_defaults(PruneOptions *po)
{
	memset(po, 0, sizeof *po);
	po->sparsity = -1;
	po->dist = -1;
	po->method = PRUNE_RANDOM;
}

/* ---- ERK ---- */

/* (sum of dims) / (product of dims): (n_in + n_out) / (n_in * n_out) for a
 * matrix. */
static double erk_raw(const Shape *s)
{
	double sum = 0, prod = 1;
	for (int i = 0; i < s->rank; i++) {
		sum += (double)s->dim[i];
		prod *= (double)s->dim[i];
	}
	return prod > 0 ? sum / prod : 0;
}

/* RigL's rule (Evci et al. 2020, sparse_utils.get_sparsities_erdos_renyi):
 * density_i = eps * raw_i with eps such that sum density_i * numel_i =
 * (1 - target) * sum numel_i; while the largest eps * raw_i exceeds 1,
 * the params with the largest raw become dense (density 1) and eps is
 * solved again over the others. */
int pass_erk_density(const Shape *shape, int n, double target, double *density)
{
	bool *dense = mem_calloc(n > 0 ? (size_t)n : 1, sizeof *dense);
	if (!dense)
		return -1;
	for (;;) {
		double rhs = 0, divisor = 0, maxraw = 0;
		for (int i = 0; i < n; i++) {
			double numel = (double)ir_numel(&shape[i]);
			if (dense[i]) {
				rhs -= numel * target;
				continue;
			}
			double raw = erk_raw(&shape[i]);
			rhs += numel * (1 - target);
			divisor += raw * numel;
			if (raw > maxraw)
				maxraw = raw;
		}
		double eps = divisor > 0 ? rhs / divisor : 0;
		if (divisor > 0 && eps * maxraw > 1) {
			for (int i = 0; i < n; i++)
				if (!dense[i] && erk_raw(&shape[i]) == maxraw)
					dense[i] = true;
			continue;
		}
		for (int i = 0; i < n; i++) {
			double x = dense[i] ? 1 : eps * erk_raw(&shape[i]);
			density[i] = x < 0 ? 0 : x > 1 ? 1 : x;
		}
		break;
	}
	mem_free(dense);
	return 0;
}

/* ---- ranking ---- */

typedef struct Rank {
	uint64_t key;
	int64_t idx;
} Rank;

static int rank_cmp(const void *a, const void *b)
{
	const Rank *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static uint64_t random_score(uint64_t key, int64_t i)
{
	uint8_t le[8];
	for (int k = 0; k < 8; k++)
		le[k] = (uint8_t)((uint64_t)i >> (8 * k));
	return hash64(le, sizeof le, key);
}

/* Larger |w| first: the bits of a non-negative float order like the float. */
static uint64_t magnitude_score(float w)
{
	float a = fabsf(w);
	if (isnan(a))
		return UINT64_MAX;
	uint32_t u;
	memcpy(&u, &a, sizeof u);
	return (uint64_t)(0xFFFFFFFFu - u);
}

/* bits[i] = 1 for the nkeep elements ranked first. w: the weights
 * (magnitude) or NULL (random). */
static uint8_t *choose(const char *name, int64_t numel, int64_t nkeep, uint64_t seed,
		       const float *w)
{
	uint8_t *bits = mem_calloc(numel > 0 ? (size_t)numel : 1, 1);
	Rank *r = mem_alloc((numel > 0 ? (size_t)numel : 1) * sizeof *r);
	if (!bits || !r) {
		mem_free(bits);
		mem_free(r);
		return NULL;
	}
	uint64_t key = hash64(name, strlen(name), seed);
	for (int64_t i = 0; i < numel; i++) {
		r[i].key = w ? magnitude_score(w[i]) : random_score(key, i);
		r[i].idx = i;
	}
	qsort(r, (size_t)numel, sizeof *r, rank_cmp);
	for (int64_t i = 0; i < nkeep; i++)
		bits[r[i].idx] = 1;
	mem_free(r);
	return bits;
}

/* ---- the plan: masks computed aside, committed at the end ---- */

typedef struct Plan {
	Mask m;
	bool own;             /* m.bits was allocated here (else the graph's) */
	double density;       /* ERK: the density decided for it; -1 until then */
} Plan;

static void plan_free(Vec *plan)
{
	for (size_t i = 0; i < plan->len; i++) {
		Plan *p = &VEC_AT(*plan, Plan, i);
		if (p->own)
			mem_free(p->m.bits);
	}
	vec_free(plan);
}

static Plan *plan_find(Vec *plan, ValId param)
{
	for (size_t i = 0; i < plan->len; i++)
		if (VEC_AT(*plan, Plan, i).m.param == param)
			return &VEC_AT(*plan, Plan, i);
	return NULL;
}

static Plan *plan_add(Vec *plan, ValId param, double target, int dist)
{
	Plan *p = vec_push(plan, sizeof *p);
	if (!p)
		return NULL;
	p->m.param = param;
	p->m.target = target;
	p->m.dist = (uint8_t)dist;
	p->m.nkept = -1;
	p->density = -1;
	return p;
}

static void set_bits(Plan *p, uint8_t *bits, int64_t numel)
{
	if (p->own)
		mem_free(p->m.bits);
	int64_t kept = 0;
	for (int64_t i = 0; i < numel; i++)
		kept += bits[i];
	p->m.bits = bits;
	p->own = true;
	p->m.nkept = kept;
	p->m.hash = hash128(bits, (size_t)numel);
}

static const PruneTensor *find_tensor(const PruneTensor *t, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (t[i].name && !strcmp(t[i].name, name))
			return &t[i];
	return NULL;
}

static int64_t numel_of(const Graph *g, ValId p)
{
	return ir_numel(&ir_node(g, p)->shape);
}

/* Supplied masks: they name params of the graph with the right size. */
static int apply_supplied(Graph *g, const PruneOptions *po, Vec *plan, Diag *d)
{
	for (int i = 0; i < po->nmasks; i++) {
		const PruneTensor *t = &po->masks[i];
		ValId p = t->name ? ir_find_param(g, t->name) : VAL_NONE;
		if (p == VAL_NONE)
			return diag_error(d, (SrcLoc){0}, "a mask is given for '%s', which is not a "
					  "parameter of the model", t->name ? t->name : "?");
		int64_t numel = numel_of(g, p);
		if (t->numel != numel || !t->data)
			return diag_error(d, (SrcLoc){0}, "the mask of '%s' has %lld elements, the "
					  "parameter %lld", t->name, (long long)t->numel,
					  (long long)numel);
		uint8_t *bits = mem_alloc(numel > 0 ? (size_t)numel : 1);
		if (!bits)
			return diag_error(d, (SrcLoc){0}, "out of memory");
		for (int64_t e = 0; e < numel; e++)
			bits[e] = ((const uint8_t *)t->data)[e] != 0;
		Plan *pl = plan_find(plan, p);
		if (!pl)
			pl = plan_add(plan, p, 0, SD_UNIFORM);
		if (!pl) {
			mem_free(bits);
			return diag_error(d, (SrcLoc){0}, "out of memory");
		}
		Hash128 want = pl->m.hash;
		bool recorded = pl->m.nkept >= 0 && !pl->m.bits;
		set_bits(pl, bits, numel);
		if (recorded && (want.lo != pl->m.hash.lo || want.hi != pl->m.hash.hi))
			return diag_error(d, ir_node(g, p)->loc, "the mask given for '%s' is not the "
					  "pattern the IR records", t->name);
		/* The mask is what it is: its target is the sparsity it has. */
		if (!recorded)
			pl->m.target = numel ? (double)(numel - pl->m.nkept) / (double)numel : 0;
	}
	return 0;
}

/* ERK densities of every pending erk mask, one group per target. */
static int erk_groups(Graph *g, Vec *plan, Diag *d)
{
	int rc = 0;
	Shape *shape = mem_alloc((plan->len ? plan->len : 1) * sizeof *shape);
	double *dens = mem_alloc((plan->len ? plan->len : 1) * sizeof *dens);
	size_t *who = mem_alloc((plan->len ? plan->len : 1) * sizeof *who);
	if (!shape || !dens || !who) {
		rc = diag_error(d, (SrcLoc){0}, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < plan->len; i++) {
		Plan *p = &VEC_AT(*plan, Plan, i);
		if (p->m.nkept >= 0 || p->m.dist != SD_ERK || p->density >= 0)
			continue;
		int n = 0;
		for (size_t j = i; j < plan->len; j++) {
			Plan *q = &VEC_AT(*plan, Plan, j);
			if (q->m.nkept < 0 && q->m.dist == SD_ERK && q->density < 0 &&
			    q->m.target == p->m.target) {
				shape[n] = ir_node(g, q->m.param)->shape;
				who[n++] = j;
			}
		}
		if (pass_erk_density(shape, n, p->m.target, dens)) {
			rc = diag_error(d, (SrcLoc){0}, "out of memory");
			goto out;
		}
		for (int k = 0; k < n; k++)
			VEC_AT(*plan, Plan, who[k]).density = dens[k];
	}
out:
	mem_free(shape);
	mem_free(dens);
	mem_free(who);
	return rc;
}

static int decide(Graph *g, const PruneOptions *po, Vec *plan, Diag *d)
{
	if (erk_groups(g, plan, d))
		return -1;
	for (size_t i = 0; i < plan->len; i++) {
		Plan *p = &VEC_AT(*plan, Plan, i);
		if (p->m.nkept >= 0)
			continue;
		const Node *pn = ir_node(g, p->m.param);
		const char *name = ir_str(g, pn->name);
		int64_t numel = ir_numel(&pn->shape);
		double s = p->m.dist == SD_ERK ? 1 - p->density : p->m.target;
		int64_t nzero = (int64_t)llround(s * (double)numel);
		nzero = nzero < 0 ? 0 : nzero > numel ? numel : nzero;
		const float *w = NULL;
		if (po->method == PRUNE_MAGNITUDE) {
			const PruneTensor *t = find_tensor(po->weights, po->nweights, name);
			if (!t || !t->data)
				return diag_error(d, pn->loc, "magnitude pruning: no weights given for "
						  "'%s'", name);
			if (t->numel != numel)
				return diag_error(d, pn->loc, "magnitude pruning: the weights of '%s' "
						  "have %lld elements, the parameter %lld", name,
						  (long long)t->numel, (long long)numel);
			w = t->data;
		}
		uint8_t *bits = choose(name, numel, numel - nzero, po->seed, w);
		if (!bits)
			return diag_error(d, pn->loc, "out of memory");
		set_bits(p, bits, numel);
	}
	return 0;
}

/* Coverage and targets: the model's masks, then the options' overrides. */
static int settle(Graph *g, const PruneOptions *po, Vec *plan, Diag *d)
{
	for (size_t i = 0; i < g->mask.len; i++) {
		Plan *p = vec_push(plan, sizeof *p);
		if (!p)
			return diag_error(d, (SrcLoc){0}, "out of memory");
		p->m = VEC_AT(g->mask, Mask, i);
		p->density = -1;
	}
	if (po->sparsity >= 0 && !plan->len) {
		for (ValId v = 0; v < ir_nnode(g); v++)
			if (ir_sparse_candidate(g, v) &&
			    !plan_add(plan, v, po->sparsity, po->dist >= 0 ? po->dist : SD_UNIFORM))
				return diag_error(d, (SrcLoc){0}, "out of memory");
	}
	for (size_t i = 0; i < plan->len; i++) {
		Plan *p = &VEC_AT(*plan, Plan, i);
		if (p->m.nkept >= 0)
			continue;
		if (po->sparsity >= 0)
			p->m.target = po->sparsity;
		if (po->dist >= 0)
			p->m.dist = (uint8_t)po->dist;
	}
	return apply_supplied(g, po, plan, d);
}

static int plan_cmp(const void *a, const void *b)
{
	const Plan *x = a, *y = b;
	return x->m.param < y->m.param ? -1 : x->m.param > y->m.param;
}

/* ---- the rewrite: readers of W read mul(W, mask) ---- */

/* Appends mask W and mul(W, mask W) right after each param W the plan
 * covers that no MASK node reads yet, and makes every later reader, the
 * outputs and the loss read the product (one rewrite, committed by the
 * caller). */
static int rewrite(Graph *g, const Vec *plan, Rewrite *rw, Diag *d)
{
	uint32_t n = ir_nnode(g);
	bool *todo = mem_calloc(n ? n : 1, sizeof *todo);
	size_t extra = 0;
	if (!todo)
		return diag_error(d, (SrcLoc){0}, "out of memory");
	for (size_t i = 0; i < plan->len; i++)
		todo[VEC_AT(*plan, Plan, i).m.param] = true;
	for (ValId v = 0; v < n; v++) {   /* already rewritten (IR read back) */
		const Node *nd = ir_node(g, v);
		ValId p = nd->op == OP_MASK ? ir_find_param(g, ir_str(g, nd->name)) : VAL_NONE;
		if (p != VAL_NONE)
			todo[p] = false;
	}
	for (ValId v = 0; v < n; v++)
		extra += todo[v];
	if (extra && g->grad.len) {
		diag_error(d, (SrcLoc){0}, "prune: the graph already has gradients; masks must "
			   "be applied before autodiff");
		goto fail;
	}
	for (ValId v = 0; v < n; v++) {
		if (!todo[v])
			continue;
		const Node *w = ir_node(g, v);
		Node mk;
		memset(&mk, 0, sizeof mk);
		mk.op = OP_MASK;
		mk.dtype = DT_F32;
		mk.shape = w->shape;
		mk.name = w->name;
		mk.loc = w->loc;
		SrcLoc loc = w->loc;
		ValId mid = ir_add(g, &mk, NULL, 0, d);
		ValId mul = mid == VAL_NONE ? VAL_NONE : ir_binary(g, OP_MUL, v, mid, loc, d);
		if (mul == VAL_NONE || ir_rw_place(rw, v + 1 < n ? v + 1 : VAL_NONE, d) ||
		    ir_rw_replace(rw, v, mul, d))
			goto fail;
	}
	mem_free(todo);
	return 0;
fail:
	mem_free(todo);
	return -1;
}

int pass_prune(Graph *g, const PassOptions *o, Diag *d)
{
	PruneOptions def;
	const PruneOptions *po = o->prune;
	if (!po) {
		pass_prune_defaults(&def);
		po = &def;
	}
	if (po->sparsity > 1 || po->dist >= SD_COUNT || po->dist < -1 || isnan(po->sparsity))
		return diag_error(d, (SrcLoc){0}, "prune: the sparsity must be in [0, 1] and the "
				  "distribution uniform or erk");
	if (!g->mask.len && po->sparsity < 0 && !po->nmasks)
		return 0;   /* dense, and nothing asks otherwise: not a node changes */
	if (po->dense) {
		for (ValId v = 0; v < ir_nnode(g); v++)
			if (ir_node(g, v)->op == OP_MASK)
				return diag_error(d, ir_node(g, v)->loc, "--dense: the graph already "
						  "reads its params through masks");
		ir_clear_masks(g);
		return 0;
	}
	Vec plan = {0}, masks = {0};
	Rewrite rw;
	if (settle(g, po, &plan, d) || decide(g, po, &plan, d))
		goto fail;
	qsort(plan.data, plan.len, sizeof(Plan), plan_cmp);
	if (vec_reserve(&masks, plan.len ? plan.len : 1, sizeof(Mask))) {
		diag_error(d, (SrcLoc){0}, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < plan.len; i++)
		VEC_AT(masks, Mask, masks.len++) = VEC_AT(plan, Plan, i).m;
	if (ir_rw_begin(g, &rw, d))
		goto fail;
	if (rewrite(g, &plan, &rw, d)) {
		ir_rw_abort(&rw);
		goto fail;
	}
	/* The new masks go in before the commit, which renumbers their params;
	 * if it fails, the old list comes back untouched. */
	Vec old = g->mask;
	g->mask = masks;
	if (ir_rw_commit(&rw, d)) {
		g->mask = old;
		goto fail;
	}
	/* Old bits that no plan entry carries over were replaced. */
	for (size_t i = 0; i < old.len; i++) {
		uint8_t *b = VEC_AT(old, Mask, i).bits;
		bool kept = false;
		for (size_t j = 0; j < plan.len && !kept; j++)
			kept = VEC_AT(plan, Plan, j).m.bits == b;
		if (!kept)
			mem_free(b);
	}
	vec_free(&old);
	vec_free(&plan);
	return 0;
fail:
	plan_free(&plan);
	vec_free(&masks);
	return -1;
}

void pass_prune_report(const Graph *g, FILE *f)
{
	if (!g->mask.len)
		return;
	int64_t total = 0, kept = 0;
	fprintf(f, "sparsity per parameter (achieved, target):\n");
	for (size_t i = 0; i < g->mask.len; i++) {
		const Mask *m = &VEC_AT(g->mask, Mask, i);
		const Node *p = ir_node(g, m->param);
		int64_t numel = ir_numel(&p->shape);
		char shape[160];
		ir_shape_str(&p->shape, shape, sizeof shape);
		if (m->nkept < 0) {
			fprintf(f, "  %-36s %-12s pending (target %.2f%%, %s)\n", ir_str(g, p->name),
				shape, 100 * m->target, ir_sparse_dist_name[m->dist]);
			continue;
		}
		total += numel;
		kept += m->nkept;
		fprintf(f, "  %-36s %-12s kept %lld/%lld  sparsity %.2f%% (target %.2f%%, %s)\n",
			ir_str(g, p->name), shape, (long long)m->nkept, (long long)numel,
			numel ? 100.0 * (double)(numel - m->nkept) / (double)numel : 0.0,
			100 * m->target, ir_sparse_dist_name[m->dist]);
	}
	fprintf(f, "  total: %lld of %lld covered weights kept, sparsity %.2f%%\n", (long long)kept,
		(long long)total, total ? 100.0 * (double)(total - kept) / (double)total : 0.0);
}
