/* test_print.c: the textual IR (print.c, parse.c) and the structural hash.
 *
 *   - a graph built with the builders and covering every op round-trips:
 *     parse(print(g)) has the same hash and prints the same text;
 *   - source locations survive as comments, and the hash ignores them;
 *   - the hash notices every attribute and ignores interning order;
 *   - printer and hash follow the attribute table (ops.h) for every op;
 *   - bad input gives one located error (file:line:col), never a crash,
 *     including a few thousand mechanical mutations of a valid file. */
#include "../check.h"
#include "ir/ir.h"

#include <stdlib.h>
#include <string.h>

static Shape S(int rank, int64_t a, int64_t b, int64_t c, int64_t d)
{
	return (Shape){.rank = (uint8_t)rank, .dim = {a, b, c, d}};
}

/* A small GPT-ish graph that uses every op at least once. `src` gives the
 * nodes locations (line = node index + 1) when not NULL. */
static Graph *build_all(const Source *src)
{
	Diag d;
	diag_init(&d);
	Graph *g = ir_graph_create();
	uint32_t line = 1;
#define L ((SrcLoc){src, src ? line++ : 0, 3, 2})
	g->model_name = ir_intern(g, "tiny \"gpt\"");
	ir_bind(g, "batch", 2);
	ir_bind(g, "seq len", 4);
	Shape ts = S(2, 2, 4, 0, 0), ws = S(2, 10, 8, 0, 0), ps = S(2, 16, 8, 0, 0);
	Shape ls = S(1, 8, 0, 0, 0);
	ValId tok = ir_input(g, "tokens", DT_I32, &ts, L, &d);
	ValId tgt = ir_input(g, "targets", DT_I32, &ts, L, &d);
	ValId wte = ir_param(g, "wte.weight", &ws, INIT_NORMAL, 0.02, L, &d);
	ValId wpe = ir_param(g, "wpe.weight", &ps, INIT_NORMAL, 0.01, L, &d);
	ValId lnw = ir_param(g, "ln\tf.weight", &ls, INIT_ONES, 0, L, &d);
	ValId lnb = ir_param(g, "ln_f.bias", &ls, INIT_ZEROS, 0, L, &d);
	ir_node(g, lnb)->flags |= NF_FROZEN;
	ValId ck = ir_param(g, "ckpt.only", &ls, INIT_NONE, 0, L, &d);
	(void)ck;
	ValId pos = ir_iota(g, 4, DT_I32, L, &d);
	ValId e = ir_gather(g, wte, tok, L, &d);             /* [2,4,8] */
	ValId pe = ir_gather(g, wpe, pos, L, &d);            /* [4,8] */
	ValId x = ir_binary(g, OP_ADD, e, pe, L, &d);
	ValId mu = ir_reduce(g, OP_MEAN, x, -1, true, L, &d);
	ValId xc = ir_binary(g, OP_SUB, x, mu, L, &d);
	ValId sq = ir_binary(g, OP_MUL, xc, xc, L, &d);
	ValId var = ir_reduce(g, OP_SUM, sq, 2, true, L, &d);
	Shape one = S(0, 0, 0, 0, 0);
	ValId eps = ir_const(g, 1e-5, DT_F32, &one, L, &d);
	ValId third = ir_const(g, 1.0 / 3.0, DT_F32, &one, L, &d);
	ValId ve = ir_binary(g, OP_ADD, var, eps, L, &d);
	ValId rs = ir_unary(g, OP_RSQRT, ve, L, &d);
	ValId h = ir_binary(g, OP_MUL, xc, rs, L, &d);
	h = ir_binary(g, OP_MUL, h, lnw, L, &d);
	h = ir_binary(g, OP_ADD, h, lnb, L, &d);
	ValId att = ir_matmul(g, h, h, NF_TRANS_B, L, &d);   /* [2,4,4] */
	att = ir_binary(g, OP_MUL, att, third, L, &d);
	att = ir_causal_mask(g, att, L, &d);
	att = ir_softmax(g, att, L, &d);
	ValId o = ir_matmul(g, att, h, 0, L, &d);            /* [2,4,8] */
	Shape hs = S(4, 2, 4, 2, 4);
	ValId heads = ir_reshape(g, o, &hs, L, &d);
	uint8_t perm[IR_MAX_RANK] = {0, 2, 1, 3};
	ValId ph = ir_permute(g, heads, perm, L, &d);        /* [2,2,4,4] */
	ValId s0 = ir_slice(g, ph, 1, 0, 1, L, &d);
	ValId s1 = ir_slice(g, ph, -3, -1, 2, L, &d);
	ValId parts[2] = {s1, s0};
	ValId cat = ir_concat(g, parts, 2, 1, L, &d);        /* [2,2,4,4] */
	ValId mx = ir_reduce(g, OP_MAX, cat, 0, false, L, &d);
	Op un[] = {OP_NEG, OP_EXP, OP_TANH, OP_GELU, OP_RELU, OP_SILU, OP_SQRT, OP_LOG};
	ValId u = mx;
	for (size_t i = 0; i < sizeof un / sizeof un[0]; i++)
		u = ir_unary(g, un[i], u, L, &d);
	ValId dv = ir_binary(g, OP_DIV, u, mx, L, &d);
	ValId ci = ir_cast(g, dv, DT_I32, L, &d);
	ValId cf = ir_cast(g, ci, DT_F32, L, &d);
	ValId logits = ir_matmul(g, h, wte, NF_TRANS_B, L, &d); /* [2,4,10] */
	ValId loss = ir_cross_entropy(g, logits, tgt, L, &d);
	ir_set_output(g, "logits", logits);
	ir_set_output(g, "aux", cf);
	g->loss = loss;
	/* the backward kernels (autodiff), and a gradient to print */
	ValId pair[2] = {mx, mx};
	ir_grad_op(g, OP_GELU_GRAD, pair, 2, L, &d);
	ir_grad_op(g, OP_SILU_GRAD, pair, 2, L, &d);
	ir_grad_op(g, OP_RELU_GRAD, pair, 2, L, &d);
	pair[0] = pair[1] = att;
	ir_grad_op(g, OP_SOFTMAX_GRAD, pair, 2, L, &d);
	ir_grad_op(g, OP_CAUSAL_MASK_GRAD, &att, 1, L, &d);
	ValId ce_args[3] = {logits, tgt, loss};
	ir_grad_op(g, OP_CROSS_ENTROPY_GRAD, ce_args, 3, L, &d);
	ir_max_grad(g, cat, mx, 0, L, &d);
	Shape bs = S(3, 2, 4, 8, 0);
	ir_broadcast_to(g, lnw, &bs, L, &d);
	ValId dwte = ir_gather_grad(g, tok, e, 10, L, &d);
	GradPair *gp = vec_push(&g->grad, sizeof *gp);
	if (gp)
		*gp = (GradPair){wte, dwte};
	/* decoding: a state, a write into it at an input position, iota and
	 * causal mask with an offset */
	Shape ks = S(4, 2, 2, 6, 4), scalar = S(0, 0, 0, 0, 0);
	ValId at = ir_input(g, "pos", DT_I32, &scalar, L, &d);
	ValId cache = ir_state(g, "h.0.attn.cache.k", DT_F32, &ks, L, &d);
	ValId w = ir_cache_write(g, cache, ph, at, L, &d);   /* [2,2,6,4] */
	ir_iota_offset(g, at, 4, DT_I32, L, &d);
	ir_causal_mask_offset(g, w, at, L, &d);
	/* sparsity: wte's mask (its bits in the list, its value a MASK node)
	 * and the product the prune pass would make */
	uint8_t bits[80];
	for (int i = 0; i < 80; i++)
		bits[i] = i % 3 != 0;
	Mask *mk = ir_set_mask(g, wte, 0.25, SD_ERK);
	CHECK(mk && ir_mask_set_bits(mk, bits, 80) == 0 && mk->nkept == 53);
	Node mn;
	memset(&mn, 0, sizeof mn);
	mn.op = OP_MASK;
	mn.dtype = DT_F32;
	mn.shape = ws;
	mn.name = ir_node(g, wte)->name;
	mn.loc = L;
	ValId mv = ir_add(g, &mn, NULL, 0, &d);
	ir_binary(g, OP_MUL, wte, mv, L, &d);
	/* the sparse products of wte [10,8] in the feature-major layout */
	Shape fa = S(3, 2, 10, 3, 0), fb = S(3, 2, 8, 3, 0);
	ValId xa = ir_input(g, "xt", DT_F32, &fa, L, &d);
	ValId xb = ir_input(g, "dyt", DT_F32, &fb, L, &d);
	ir_spmm(g, xa, wte, NF_UNROLLED, L, &d);
	ir_spmm(g, xb, wte, NF_TRANS_B, L, &d);
	ir_sddmm(g, xa, xb, wte, L, &d);
	/* the optimiser update (passes/optimize.c): wpe dense, wte masked */
	ValId dwpe = ir_gather_grad(g, pos, pe, 16, L, &d);
	GradPair *gp2 = vec_push(&g->grad, sizeof *gp2);
	if (gp2)
		*gp2 = (GradPair){wpe, dwpe};
	Shape hps = S(1, IR_HP_COUNT, 0, 0, 0);
	ValId hp = ir_input(g, "optim.hparams", DT_F32, &hps, L, &d);
	ValId part[2] = {ir_sumsq(g, dwte, L, &d), ir_sumsq(g, dwpe, L, &d)};
	ValId clip = ir_grad_norm(g, hp, part, 2, L, &d);
	ValId m1 = ir_state(g, "wte.weight.exp_avg", DT_F32, &ws, L, &d);
	ValId v1 = ir_state(g, "wte.weight.exp_avg_sq", DT_F32, &ws, L, &d);
	ir_adamw(g, wte, dwte, m1, v1, hp, clip, mv, NF_DECAY, L, &d);
	ValId m2 = ir_state(g, "wpe.weight.exp_avg", DT_F32, &ps, L, &d);
	ValId v2 = ir_state(g, "wpe.weight.exp_avg_sq", DT_F32, &ps, L, &d);
	ir_adamw(g, wpe, dwpe, m2, v2, hp, clip, VAL_NONE, 0, L, &d);
#undef L
	if (d.nerror) {
		fprintf(stderr, "%s", diag_text(&d));
		ir_graph_destroy(g);
		g = NULL;
	}
	diag_free(&d);
	return g;
}

static Graph *parse_text(const char *text, Diag *d)
{
	Source src;
	if (source_from_string(&src, "t.ir", text))
		return NULL;
	Graph *g = NULL;
	ir_parse(&src, &g, d);
	source_free(&src);
	return g;
}

static void test_covers_every_op(void)
{
	Graph *g = build_all(NULL);
	CHECK(g != NULL);
	if (!g)
		return;
	bool seen[OP_COUNT] = {0};
	for (ValId v = 0; v < ir_nnode(g); v++)
		seen[ir_node(g, v)->op] = true;
	for (int op = 0; op < OP_COUNT; op++)
		CHECK_MSG(seen[op], "op %s not covered", ir_op[op].name);
	Diag d;
	diag_init(&d);
	CHECK_MSG(ir_verify(g, &d) == 0, "%s", diag_text(&d));
	diag_free(&d);
	ir_graph_destroy(g);
}

static void test_round_trip(void)
{
	Graph *g = build_all(NULL);
	char *text = ir_print(g);
	CHECK(text != NULL);
	Diag d;
	diag_init(&d);
	Graph *g2 = parse_text(text, &d);
	CHECK_MSG(g2 != NULL, "%s", diag_text(&d));
	if (g2) {
		Hash128 a = ir_hash(g), b = ir_hash(g2);
		CHECK(a.lo == b.lo && a.hi == b.hi);
		char *text2 = ir_print(g2);
		CHECK_MSG(!strcmp(text, text2), "first:\n%s\nsecond:\n%s", text, text2);
		CHECK(ir_verify(g2, &d) == 0);
		CHECK(g2->loss == g->loss);
		CHECK(!strcmp(ir_str(g2, g2->model_name), "tiny \"gpt\""));
		CHECK(g2->bind.len == 2 && VEC_AT(g2->bind, Binding, 1).value == 4);
		CHECK(ir_find_param(g2, "ln\tf.weight") != VAL_NONE);
		mem_free(text2);
	}
	/* spot-check the format itself */
	CHECK(strstr(text, "model \"tiny \\\"gpt\\\"\" (batch = 2, \"seq len\" = 4)\n") != NULL);
	CHECK(strstr(text, "%0 = input \"tokens\" : i32[2,4]\n") != NULL);
	CHECK(strstr(text, "%2 = param \"wte.weight\" normal(0.02) : f32[10,8]\n") != NULL);
	CHECK(strstr(text, "= param \"ln_f.bias\" zeros frozen : f32[8]\n") != NULL);
	CHECK(strstr(text, "= param \"ln\\x09f.weight\" ones : f32[8]\n") != NULL);
	CHECK(strstr(text, "= sum %") && strstr(text, " axis=2 keepdim : f32[2,4,1]\n"));
	CHECK(strstr(text, "= const 0.33333333333333331 : f32[]\n") != NULL);
	CHECK(strstr(text, " transb : f32[2,4,10]\n") != NULL);
	CHECK(strstr(text, " axis=1 lo=1 hi=2 : f32[2,1,4,4]\n") != NULL);
	CHECK(strstr(text, " perm=(0,2,1,3) : f32[2,2,4,4]\n") != NULL);
	CHECK(strstr(text, "output \"logits\" = %") && strstr(text, "loss = %"));
	diag_free(&d);
	mem_free(text);
	ir_graph_destroy(g2);
	ir_graph_destroy(g);
}

static void test_locations(void)
{
	Source src;
	source_from_string(&src, "models/tiny.msw", "x\n");
	Graph *g = build_all(&src), *plain = build_all(NULL);
	char *text = ir_print(g);
	Hash128 a = ir_hash(g), b = ir_hash(plain);
	CHECK(a.lo == b.lo && a.hi == b.hi); /* locations are not hashed */
	CHECK(strstr(text, "; models/tiny.msw:3:3\n") != NULL);
	Diag d;
	diag_init(&d);
	Graph *g2 = parse_text(text, &d);
	CHECK(g2 != NULL);
	if (g2) {
		char *text2 = ir_print(g2);
		CHECK(!strcmp(text, text2));
		mem_free(text2);
		SrcLoc l = ir_node(g2, 5)->loc;
		CHECK(l.src && !strcmp(l.src->name, "models/tiny.msw") && l.line == 6 && l.col == 3);
		/* a shape error in a pass now points at the .msw line */
		Node *n = ir_node(g2, 5);
		diag_error(&d, n->loc, "boom");
		CHECK(strstr(diag_text(&d), "models/tiny.msw:6:3: error: boom\n") != NULL);
	}
	/* ordinary comments are ignored; a loc comment is only file:line:col */
	Graph *g3 = parse_text("; header\n%0 = input \"x\" : f32[2] ; just a note\n"
			       "%1 = neg %0 : f32[2]  ; a:b:1:2\n\n", &d);
	CHECK(g3 && !ir_node(g3, 0)->loc.src);
	CHECK(g3 && ir_node(g3, 1)->loc.line == 1 && !strcmp(ir_node(g3, 1)->loc.src->name, "a:b"));
	ir_graph_destroy(g3);
	diag_free(&d);
	mem_free(text);
	ir_graph_destroy(g);
	ir_graph_destroy(g2);
	ir_graph_destroy(plain);
	source_free(&src);
}

static bool same(Hash128 a, Hash128 b)
{
	return a.lo == b.lo && a.hi == b.hi;
}

static void test_hash(void)
{
	Graph *g = build_all(NULL);
	Hash128 h = ir_hash(g);
	Node *n = NULL;
	for (ValId v = 0; v < ir_nnode(g); v++)
		if (ir_node(g, v)->op == OP_SLICE) {
			n = ir_node(g, v);
			break;
		}
	n->lo++;
	CHECK(!same(h, ir_hash(g)));
	n->lo--;
	CHECK(same(h, ir_hash(g)));
	n->offset = 1234; /* memory offsets are not part of the structure */
	n->value = 99;    /* nor attributes slice does not have */
	CHECK(same(h, ir_hash(g)));
	ir_node(g, 2)->value = 0.03; /* normal std */
	CHECK(!same(h, ir_hash(g)));
	ir_node(g, 2)->value = 0.02;
	VEC_AT(g->out, Output, 0).val--;
	CHECK(!same(h, ir_hash(g)));
	VEC_AT(g->out, Output, 0).val++;
	VEC_AT(g->grad, GradPair, 0).grad--;
	CHECK(!same(h, ir_hash(g)));
	VEC_AT(g->grad, GradPair, 0).grad++;
	CHECK(same(h, ir_hash(g)));
	g->loss = VAL_NONE;
	CHECK(!same(h, ir_hash(g)));
	ir_graph_destroy(g);

	/* Names hash by text, whatever order they were interned in. */
	Diag d;
	diag_init(&d);
	Graph *a = ir_graph_create(), *b = ir_graph_create();
	ir_intern(b, "zzz");
	ir_intern(b, "y");
	Shape s = S(1, 3, 0, 0, 0);
	ir_input(a, "x", DT_F32, &s, (SrcLoc){0}, &d);
	ir_input(b, "x", DT_F32, &s, (SrcLoc){0}, &d);
	ir_set_output(a, "y", 0);
	ir_set_output(b, "y", 0);
	CHECK(same(ir_hash(a), ir_hash(b)));
	ir_set_output(b, "y2", 0);
	CHECK(!same(ir_hash(a), ir_hash(b)));
	ir_graph_destroy(a);
	ir_graph_destroy(b);
	diag_free(&d);
}

/* Perturbs attribute a of n (its field, or its bit); false if there is no
 * perturbation for that kind (DTYPE and SHAPE are the node's type). */
static bool perturb(Graph *g, Node *n, int a)
{
	void *f = ir_attr_field(n, (AttrId)a);
	switch ((AttrKind)ir_attr[a].kind) {
	case AK_NAME: *(uint32_t *)f = ir_intern(g, "perturbed"); return true;
	case AK_LEAD: case AK_F64: *(double *)f += 0.5; return true;
	case AK_INIT: *(uint8_t *)f = *(uint8_t *)f == INIT_ZEROS ? INIT_ONES : INIT_ZEROS; return true;
	case AK_INT: *(int64_t *)f += 1; return true;
	case AK_PERM: ((uint8_t *)f)[0] ^= 1; return true;
	case AK_FLAG: n->flags ^= ir_attr[a].flag; return true;
	case AK_DTYPE: case AK_SHAPE: case AK_COUNT: break;
	}
	return false;
}

/* The attribute table drives printer and hash: for every node of a graph
 * with every op and every attribute, changing an attribute the op carries
 * changes the printed text and the hash, and changing one it does not
 * carry changes neither (nor the flag bits verify would reject); names
 * stay out of the kernel dedup key. */
static void test_attr_table(void)
{
	Graph *g = build_all(NULL);
	char *text = ir_print(g);
	Hash128 h = ir_hash(g);
	bool carried[ATTR_COUNT] = {0};
	for (ValId v = 0; v < ir_nnode(g); v++) {
		Node *n = ir_node(g, v);
		for (int a = 0; a < ATTR_COUNT; a++) {
			bool has = ir_attrs(n) & (1u << a);
			if (ir_attr[a].kind == AK_FLAG && !has)
				continue;  /* a flag an op lacks is the verifier's to reject */
			if (a == ATTR_VALUE && ir_attrs(n) & IRA_INIT)
				continue;  /* the field holds normal's std, below */
			Node save = *n;
			if (!perturb(g, n, a))
				continue;
			carried[a] |= has;
			char *t2 = ir_print(g);
			CHECK_MSG(t2 && (strcmp(text, t2) != 0) == has, "%s %s", ir_op[n->op].name,
				  ir_attr[a].word);
			CHECK_MSG(same(h, ir_hash(g)) != has, "%s %s", ir_op[n->op].name,
				  ir_attr[a].word);
			mem_free(t2);
			*n = save;
		}
		if (n->op == OP_PARAM && n->init == INIT_NORMAL) {   /* std counts with normal */
			Node save = *n;
			n->value += 1;
			CHECK(!same(h, ir_hash(g)));
			n->init = INIT_ONES;
			Hash128 ones = ir_hash(g);
			n->value = save.value;
			CHECK(same(ones, ir_hash(g)));
			*n = save;
		}
	}
	for (int a = 0; a < ATTR_COUNT; a++)
		if (ir_attr[a].kind != AK_DTYPE && ir_attr[a].kind != AK_SHAPE)
			CHECK_MSG(carried[a], "no op in the graph carries %s", ir_attr[a].word);
	CHECK(same(h, ir_hash(g)));
	ValId x = ir_find_input(g, "tokens");
	Vec key = {0};
	CHECK(ir_attrs_bytes(g, ir_node(g, x), true, &key) == 0 && key.len == 0);
	CHECK(ir_attrs_bytes(g, ir_node(g, x), false, &key) == 0 && key.len == 8 + 6);
	vec_free(&key);
	CHECK(ir_flag_mask(OP_MATMUL) == (NF_TRANS_A | NF_TRANS_B | NF_SKIPZEROS));
	CHECK(ir_flag_mask(OP_SPMM) == (NF_TRANS_B | NF_UNROLLED));
	CHECK(ir_flag_mask(OP_NEG) == 0);
	mem_free(text);
	ir_graph_destroy(g);
}

/* Special doubles print and read back bit for bit. */
static void test_doubles(void)
{
	double vals[] = {0.1, -0.0, 1e-300, 5e-324, 1.7976931348623157e308, INFINITY, -INFINITY,
			 123456789.125, -2.5e-7};
	Diag d;
	diag_init(&d);
	Graph *g = ir_graph_create();
	Shape s = S(1, 2, 0, 0, 0);
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
		ir_const(g, vals[i], DT_F32, &s, (SrcLoc){0}, &d);
	char *text = ir_print(g);
	Graph *g2 = parse_text(text, &d);
	CHECK_MSG(g2 != NULL, "%s", diag_text(&d));
	for (size_t i = 0; g2 && i < sizeof vals / sizeof vals[0]; i++)
		CHECK(!memcmp(&ir_node(g2, (ValId)i)->value, &vals[i], sizeof(double)));
	CHECK(g2 && same(ir_hash(g), ir_hash(g2)));
	mem_free(text);
	ir_graph_destroy(g);
	ir_graph_destroy(g2);
	diag_free(&d);
}

/* Each bad file gives an error at the expected file:line:col. */
static void test_errors(void)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{"%0 = input \"a\" : f32[64,128]\n%1 = input \"b\" : f32[96,64]\n"
		 "%2 = matmul %0, %1 : f32[64,64]\n",
		 "t.ir:3:6: error: matmul shapes [64,128] and [96,64] do not agree"},
		{"%0 = input \"x\" : f32[2,3]\n%1 = neg %0 : f32[3,2]\n",
		 "t.ir:2:15: error: neg gives f32[2,3], not the type written"},
		{"%0 = input \"x\" : f32[2,3]\n%1 = frob %0 : f32[2,3]\n",
		 "t.ir:2:6: error: unknown op 'frob'"},
		{"%0 = input \"x\" : f32[2,3]\n%2 = neg %0 : f32[2,3]\n",
		 "t.ir:2:1: error: expected %1 here"},
		{"%0 = input \"x\" : f32[2,3]\n%1 = add %0, %1 : f32[2,3]\n",
		 "t.ir:2:14: error: %1 is used before it is defined"},
		{"%0 = input \"x : f32[2,3]\n", "t.ir:1:12: error: unterminated string"},
		{"%0 = input \"x\" : f32[2,3]\n%1 = sum %0 : f32[2]\n",
		 "t.ir:2:6: error: sum needs axis="},
		{"%0 = input \"x\" : f32[2,3]\n%1 = sum %0 axis=0 axis=1 : f32[2]\n",
		 "t.ir:2:20: error: 'axis' given twice"},
		{"%0 = input \"x\" : f32[2,3]\n%1 = neg %0 axis=1 : f32[2,3]\n",
		 "t.ir:2:6: error: neg does not take the attributes given"},
		{"%0 = input \"x\" : f32[2,3]\n%1 = neg %0 transa : f32[2,3]\n",
		 "t.ir:2:6: error: neg takes none of the flags given"},
		{"%0 = input \"x\" : f32[2,3]\n%1 = sum %0 axis=5 : f32[2]\n",
		 "t.ir:2:6: error: sum axis 5 is out of range for shape [2,3]"},
		{"%0 = input \"x\" : f32[1,2,3,4,5,6,7]\n",
		 "t.ir:1:34: error: rank above the maximum 6"},
		{"%0 = input \"x\" : f32[99999999999999999999]\n",
		 "t.ir:1:22: error: 99999999999999999999 is out of range"},
		{"%0 = input \"x\" : f32[0]\n", "t.ir:1:22: error: 0 is out of range"},
		{"%0 = input \"x\" : f32[2]\n\x01\n", "t.ir:2:1: error: unexpected byte 0x01"},
		{"%0 = input \"x\" : f16[2]\n", "t.ir:1:18: error: expected a type like f32[2,3]"},
		{"%0 = input \"x\" : f64[2]\n", "t.ir:1:6: error: input cannot be f64"},
		{"%0 = input \"x\" : f32[2]\n%1 = input \"x\" : f32[2]\n",
		 NULL /* duplicate input name: checked by the verifier, below */},
		{"%0 = param \"w\" : f32[2]\n", "t.ir:1:6: error: param needs an initialiser"},
		{"%0 = param \"w\" normal : f32[2]\n", "t.ir:1:23: error: expected '(' here"},
		{"%0 = input \"x\" : f32[2]\nloss = %0\n",
		 "t.ir:2:8: error: the loss must be an f32 scalar"},
		{"%0 = input \"x\" : f32[2]\noutput \"y\" = %0\noutput \"y\" = %0\n",
		 "t.ir:3:8: error: output \"y\" is given twice"},
		{"%0 = input \"x\" : f32[2]\n%1 = neg %0 : f32[2] extra\n",
		 "t.ir:2:22: error: expected the end of the line"},
		{"hello\n", "t.ir:1:1: error: expected a node"},
		{"%0 = input \"\\q\" : f32[2]\n", "t.ir:1:12: error: bad escape in string"},
		{"%0 = input \"\\x00\" : f32[2]\n", "t.ir:1:12: error: string contains a NUL"},
		{"%0 = iota : i32[2,2]\n", "t.ir:1:6: error: iota must have rank 1"},
		{"%0 = input \"x\" : f32[2,3]\n%1 = slice %0 axis=1 lo=1 : f32[2,1]\n",
		 "t.ir:2:6: error: slice needs hi="},
		{"%0 = input \"x\" : f32[2,3]\n%1 = permute %0 perm=(0,0) : f32[2,2]\n",
		 "t.ir:2:6: error: permute (0,0) is not a permutation"},
		{"%0 = input \"x\" : f32[2,3]\n%1 = concat axis=0 : f32[2,3]\n",
		 "t.ir:2:6: error: concat takes at least 1 operand, got 0"},
		{"%", "t.ir:1:1: error: expected a value number"},
		{"model \"m\" (a = 1\n", "t.ir:1:17: error: expected ')' here"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		Diag d;
		diag_init(&d);
		Graph *g = parse_text(cases[i].text, &d);
		if (cases[i].want) {
			CHECK_MSG(g == NULL && d.nerror == 1, "case %zu", i);
			CHECK_MSG(strstr(diag_text(&d), cases[i].want) != NULL,
				  "case %zu: want \"%s\", got:\n%s", i, cases[i].want, diag_text(&d));
		} else {
			CHECK(g != NULL);
			CHECK(g && ir_verify(g, &d) == -1);
			CHECK(strstr(diag_text(&d), "input name \"x\" is used twice") != NULL);
		}
		ir_graph_destroy(g);
		diag_free(&d);
	}
	/* the caret line is there too */
	Diag d;
	diag_init(&d);
	parse_text("%0 = input \"x\" : f32[2,3]\n%1 = bogus %0 : f32[2,3]\n", &d);
	CHECK(strstr(diag_text(&d), "%1 = bogus %0 : f32[2,3]\n      |      ^~~~~\n") != NULL);
	diag_free(&d);
}

/* Mechanical mutations of a valid file: delete, duplicate or replace one
 * byte. Each must parse cleanly or fail with errors; whatever parses must
 * verify and print. */
static void test_mutations(void)
{
	Graph *g = build_all(NULL);
	char *text = ir_print(g);
	size_t n = strlen(text);
	char *buf = malloc(n + 2);
	static const char subst[] = "%=,:()[]\"\\;\n 0-9aeflx\x80\x01";
	int parsed = 0, rejected = 0;
	uint64_t r = 12345;
	for (int iter = 0; iter < 3000; iter++) {
		r = r * 6364136223846793005u + 1442695040888963407u;
		size_t at = (size_t)(r >> 33) % n;
		int kind = (int)((r >> 20) % 3);
		size_t len = n;
		if (kind == 0) { /* delete */
			memcpy(buf, text, at);
			memcpy(buf + at, text + at + 1, n - at - 1);
			len = n - 1;
		} else if (kind == 1) { /* duplicate */
			memcpy(buf, text, at + 1);
			memcpy(buf + at + 1, text + at, n - at);
			len = n + 1;
		} else {
			memcpy(buf, text, n);
			buf[at] = subst[(r >> 40) % (sizeof subst - 1)];
		}
		buf[len] = 0;
		Diag d;
		diag_init(&d);
		Graph *m = parse_text(buf, &d);
		if (m) {
			parsed++;
			Diag dv;
			diag_init(&dv);
			int ok = ir_verify(m, &dv) == 0 || strstr(diag_text(&dv), "used twice") ||
				 strstr(diag_text(&dv), "loss");
			CHECK_MSG(ok, "mutation %d verified badly:\n%s", iter, diag_text(&dv));
			char *t2 = ir_print(m);
			CHECK(t2 != NULL);
			mem_free(t2);
			diag_free(&dv);
		} else {
			rejected++;
			CHECK(d.nerror == 1 && strstr(diag_text(&d), "t.ir:"));
		}
		ir_graph_destroy(m);
		diag_free(&d);
	}
	CHECK(parsed > 0 && rejected > 0);
	free(buf);
	mem_free(text);
	ir_graph_destroy(g);
}

/* Out of memory at every allocation: an error, never a crash or leak. */
static void test_oom(void)
{
	Graph *g = build_all(NULL);
	char *text = ir_print(g);
	int failures = 0;
	for (long k = 1; k < 400; k += 7) {
		Diag d;
		diag_init(&d);
		mem_fail_after(k);
		Graph *m = parse_text(text, &d);
		char *t2 = m ? ir_print(m) : NULL;
		mem_fail_after(0);
		if (!m)
			failures++;
		mem_free(t2);
		ir_graph_destroy(m);
		diag_free(&d);
	}
	CHECK(failures > 0);
	mem_free(text);
	ir_graph_destroy(g);
}

int main(void)
{
	RUN(test_covers_every_op);
	RUN(test_round_trip);
	RUN(test_locations);
	RUN(test_hash);
	RUN(test_attr_table);
	RUN(test_doubles);
	RUN(test_errors);
	RUN(test_mutations);
	RUN(test_oom);
	return check_report();
}
