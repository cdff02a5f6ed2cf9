/* test_program_file.c: a program's description apart from its code.
 *
 *   - a program described by symbols (two C kernels, a mask slot, phases,
 *     a vocabulary) writes to bytes that read back to the same program
 *     and write again to the same bytes;
 *   - an unbound program is refused by rt_exec_create; binding resolves
 *     each symbol once, and a symbol without code binds nothing and is
 *     named in the error;
 *   - every truncation and every flipped byte of the description is read
 *     without a crash (an error, or a program the executor then checks);
 *   - an image (what an AOT object exports) binds its table; a wrong
 *     magic, ABI, role, table size or a CPU without the features is
 *     refused with a message;
 *   - an executor in caller memory: too small or misaligned is refused. */
#include "../check.h"

#include <string.h>

#include "runtime/rt.h"

enum { N = 64 };

static void k_add(void *const *buf, int64_t lo, int64_t hi)
{
	float *o = buf[0];
	const float *a = buf[1], *b = buf[2];
	for (int64_t i = lo; i < hi; i++)
		o[i] = a[i] + b[i];
}

static void k_scale(void *const *buf, int64_t lo, int64_t hi)
{
	float *o = buf[0];
	const float *a = buf[1];
	for (int64_t i = lo; i < hi; i++)
		o[i] = 2 * a[i];
}

static rt_Slot slot(const char *name, rt_SlotKind kind, int64_t off)
{
	rt_Slot s = {.name = (char *)name, .kind = kind, .dtype = RT_F32, .rank = 1,
		     .offset = off, .nbytes = N * 4};
	s.dim[0] = N;
	return s;
}

/* y = 2 (x + w) + x; w @0, x @256, y @512, t @768, u @1024, w.mask @1280,
 * tok @1536 (i32[N], vocab 10) */
static rt_Program *build(void)
{
	rt_Program *p = rt_program_create();
	p->arena_size = 2048;
	rt_Slot s = slot("w", RT_SLOT_PARAM, 0);
	s.init = 1;
	s.init_std = 0.02;
	s.decay = true;
	CHECK(rt_program_add_slot(p, &s) == 0);
	s = slot("x", RT_SLOT_INPUT, 256);
	CHECK(rt_program_add_slot(p, &s) == 0);
	s = slot("y", RT_SLOT_OUTPUT, 512);
	CHECK(rt_program_add_slot(p, &s) == 0);
	uint8_t bits[N];
	for (int i = 0; i < N; i++)
		bits[i] = i % 3 != 0;
	s = slot("w.mask", RT_SLOT_MASK, 1280);
	s.bits = bits;
	s.param = 0;
	CHECK(rt_program_add_slot(p, &s) == 0);
	s = slot("tok", RT_SLOT_INPUT, 1536);
	s.dtype = RT_I32;
	s.vocab = 10;
	CHECK(rt_program_add_slot(p, &s) == 0);
	int64_t a1[] = {768, 256, 0}, a2[] = {1024, 768}, a3[] = {512, 1024, 256};
	CHECK(rt_program_add_symbol_step(p, "k_add", N, a1, 3, "k1_add", N) == 0);
	CHECK(rt_program_add_symbol_step(p, "k_scale", N, a2, 2, "k2_mul", N) == 0);
	CHECK(rt_program_add_symbol_step(p, "k_add", N, a3, 3, "k3_add", N) == 0);
	CHECK(rt_program_add_symbol_step(p, NULL, N, a3, 3, "bad", N) == -1);
	VEC_AT(p->step, rt_Step, 1).out_nbytes = N * 4;
	VEC_AT(p->step, rt_Step, 2).out_masks = true;
	p->phase_start[1] = 2;   /* forward 0..2, backward 2..3 */
	p->phase_start[2] = 3;
	p->phase_start[3] = 3;
	return p;
}

static int nresolved;

static rt_KernelFn resolve(void *user, const char *sym, uint32_t index, Diag *d)
{
	(void)user;
	(void)d;
	nresolved++;
	if (!strcmp(sym, "k_add"))
		return index == 0 ? k_add : NULL;
	if (!strcmp(sym, "k_scale"))
		return k_scale;
	return NULL;
}

static rt_KernelFn resolve_none(void *user, const char *sym, uint32_t index, Diag *d)
{
	(void)user;
	(void)index;
	return strcmp(sym, "k_scale") ? k_add : NULL;
}

static void test_round_trip(void)
{
	rt_Program *p = build();
	CHECK(p->kernel.len == 2);
	uint8_t *b1, *b2;
	size_t n1, n2;
	Diag d;
	diag_init(&d);
	CHECK(rt_program_write(p, &b1, &n1, &d) == 0);
	rt_Program *q;
	CHECK(rt_program_read("test", b1, n1, &q, &d) == 0);
	CHECK_MSG(d.nerror == 0, "%s", diag_text(&d));
	CHECK(rt_program_write(q, &b2, &n2, &d) == 0);
	CHECK(n1 == n2 && !memcmp(b1, b2, n1));
	CHECK(q->arena_size == 2048 && q->step.len == 3 && q->slot.len == 5 && q->kernel.len == 2);
	CHECK(!memcmp(q->phase_start, p->phase_start, sizeof p->phase_start));
	const rt_Slot *m = rt_program_find(q, "w.mask");
	CHECK(m && m->bits && m->param == 0);
	for (int i = 0; m && i < N; i++)
		CHECK(m->bits[i] == (i % 3 != 0));
	const rt_Slot *w = rt_program_find(q, "w");
	CHECK(w && w->init == 1 && w->init_std == 0.02 && w->decay);
	CHECK(rt_program_find(q, "tok")->vocab == 10);
	CHECK(VEC_AT(q->step, rt_Step, 1).out_nbytes == N * 4);
	CHECK(VEC_AT(q->step, rt_Step, 2).out_masks);
	CHECK(!strcmp(VEC_AT(q->step, rt_Step, 2).name, "k3_add"));
	CHECK(VEC_AT(q->step, rt_Step, 2).kernel == 0);
	mem_free(b1);
	mem_free(b2);
	rt_program_destroy(q);
	rt_program_destroy(p);
	/* A step built around a function pointer has no symbol to describe. */
	p = rt_program_create();
	int64_t a[] = {0};
	p->arena_size = 64;
	CHECK(rt_program_add_step(p, k_scale, 1, a, 1, "fn", 0) == 0);
	CHECK(rt_program_write(p, &b1, &n1, &d) == -1);
	CHECK(strstr(diag_text(&d), "names no kernel symbol") != NULL);
	rt_program_destroy(p);
	diag_free(&d);
}

static void run_and_check(rt_Program *p)
{
	Diag d;
	diag_init(&d);
	rt_Exec *e;
	CHECK(rt_exec_create(p, NULL, &e, &d) == 0);
	if (!e) {
		fprintf(stderr, "%s", diag_text(&d));
		diag_free(&d);
		return;
	}
	rt_Tensor w, x, y, mk;
	CHECK(rt_exec_tensor(e, "w", &w) == 0 && rt_exec_tensor(e, "x", &x) == 0);
	CHECK(rt_exec_tensor(e, "y", &y) == 0 && rt_exec_tensor(e, "w.mask", &mk) == 0);
	for (int i = 0; i < N; i++) {
		((float *)w.data)[i] = (float)i;
		((float *)x.data)[i] = 1.0f;
		CHECK(((float *)mk.data)[i] == (i % 3 != 0 ? 1.0f : 0.0f));
	}
	rt_exec_run(e);
	int bad = 0;
	for (int i = 0; i < N; i++)
		bad += ((float *)y.data)[i] != 2 * ((float)i + 1) + 1;
	CHECK(bad == 0);
	rt_exec_destroy(e);
	diag_free(&d);
}

static void test_bind(void)
{
	rt_Program *p = build();
	Diag d;
	diag_init(&d);
	rt_Exec *e;
	CHECK(!rt_program_bound(p));
	CHECK(rt_exec_create(p, NULL, &e, &d) == -1);
	CHECK(strstr(diag_text(&d), "not bound to code") != NULL);
	diag_free(&d);
	diag_init(&d);
	CHECK(rt_program_bind(p, resolve_none, NULL, &d) == -1);
	CHECK(strstr(diag_text(&d), "'k_scale'") != NULL);
	CHECK(VEC_AT(p->step, rt_Step, 0).fn == NULL);   /* nothing bound */
	nresolved = 0;
	CHECK(rt_program_bind(p, resolve, NULL, &d) == 0);
	CHECK(nresolved == 2);   /* once per symbol, not per step */
	CHECK(rt_program_bound(p));
	run_and_check(p);
	rt_program_destroy(p);
	diag_free(&d);
}

/* Damaged descriptions: an error, never a crash (ASan builds check the
 * "never"); what does read must pass or fail rt_exec_create cleanly. */
static void test_damage(void)
{
	rt_Program *p = build();
	uint8_t *b;
	size_t n;
	Diag d;
	diag_init(&d);
	CHECK(rt_program_write(p, &b, &n, &d) == 0);
	int cut_ok = 0;
	for (size_t k = 0; k < n; k++) {
		rt_Program *q;
		cut_ok += rt_program_read("cut", b, k, &q, &d) == 0;
		rt_program_destroy(q);
	}
	CHECK(cut_ok == 0);
	CHECK(strstr(diag_text(&d), "cut: error: program description: cut short") != NULL);
	uint8_t *c = mem_alloc(n + 1);
	for (size_t k = 0; k < n; k++)
		for (int v = 0; v < 3; v++) {
			memcpy(c, b, n);
			c[k] ^= (uint8_t)(v == 0 ? 0x01 : v == 1 ? 0x80 : 0xff);
			rt_Program *q;
			diag_free(&d);
			diag_init(&d);
			if (rt_program_read("flip", c, n, &q, &d) == 0) {
				rt_Exec *e = NULL;
				if (rt_program_bind(q, resolve_none, NULL, &d) == 0 &&
				    rt_exec_create(q, NULL, &e, &d) == 0)
					rt_exec_destroy(e);
				rt_program_destroy(q);
			}
		}
	memcpy(c, b, n);
	c[n] = 0;
	rt_Program *q;
	CHECK(rt_program_read("long", c, n + 1, &q, &d) == -1);
	CHECK(strstr(diag_text(&d), "bytes left after the last slot") != NULL);
	CHECK(rt_program_read("null", NULL, 0, &q, &d) == -1);
	mem_free(c);
	mem_free(b);
	rt_program_destroy(p);
	diag_free(&d);
}

static void test_image(void)
{
	rt_Program *p = build();
	uint8_t *b;
	size_t n;
	Diag d;
	diag_init(&d);
	CHECK(rt_program_write(p, &b, &n, &d) == 0);
	static const rt_KernelFn table[] = {k_add, k_scale};
	rt_ImageProgram ip = {.role = "forward", .desc = b, .desc_len = n, .fn = table, .nfn = 2};
	rt_Image img = {.magic = RT_IMAGE_MAGIC, .abi = RT_IMAGE_ABI, .name = "toy", .target = "test",
			.prog = &ip, .nprog = 1, .version = "0"};
	rt_Program *q;
	CHECK(rt_image_program(&img, "forward", &q, &d) == 0);
	if (q)
		run_and_check(q);
	rt_program_destroy(q);
	CHECK(rt_image_program(&img, "decode", &q, &d) == -1);
	CHECK(strstr(diag_text(&d), "toy has no decode program") != NULL);
	ip.nfn = 1;
	CHECK(rt_image_program(&img, "forward", &q, &d) == -1);
	CHECK(strstr(diag_text(&d), "its table holds 1") != NULL);
	ip.nfn = 2;
	img.abi++;
	CHECK(rt_image_program(&img, "forward", &q, &d) == -1);
	CHECK(strstr(diag_text(&d), "image ABI") != NULL);
	img.abi--;
	img.magic = 0;
	CHECK(rt_image_program(&img, "forward", &q, &d) == -1);
	img.magic = RT_IMAGE_MAGIC;
	/* The check itself, on made-up masks. */
	uint64_t v3 = (uint64_t)1 << RT_CPU_AVX2 | (uint64_t)1 << RT_CPU_FMA;
	uint64_t v4 = v3 | (uint64_t)1 << RT_CPU_AVX512F | (uint64_t)1 << RT_CPU_AVX512BW;
	diag_free(&d);
	diag_init(&d);
	CHECK(rt_cpu_check(v3, v4, "x86-64-v3", &d) == 0);
	CHECK(rt_cpu_check(v4, v3, "x86-64-v4", &d) == -1);
	CHECK(strstr(diag_text(&d), "compiled for x86-64-v4, and this CPU lacks avx512f, "
		     "avx512bw") != NULL);
	/* The host has what it reports, and an image needing more is refused. */
	uint64_t host = rt_cpu_host_features();
	if (host != ~(uint64_t)0 >> (64 - RT_CPU_COUNT)) {
		img.cpu_features = ~host & (~(uint64_t)0 >> (64 - RT_CPU_COUNT));
		CHECK(rt_image_program(&img, "forward", &q, &d) == -1);
		CHECK(strstr(diag_text(&d), "this CPU lacks") != NULL);
	}
	mem_free(b);
	rt_program_destroy(p);
	diag_free(&d);
}

static void test_caller_arena(void)
{
	rt_Program *p = build();
	Diag d;
	diag_init(&d);
	CHECK(rt_program_bind(p, resolve, NULL, &d) == 0);
	void *mem = mem_aligned(4096, RT_ALIGN);
	rt_Exec *e;
	CHECK(rt_exec_create_in(p, NULL, mem, 2047, &e, &d) == -1);
	CHECK(rt_exec_create_in(p, NULL, (char *)mem + 4, 4000, &e, &d) == -1);
	CHECK(strstr(diag_text(&d), "needs 2048 bytes aligned to 64") != NULL);
	CHECK(rt_exec_create_in(p, NULL, mem, 2048, &e, &d) == 0);
	CHECK(rt_exec_arena(e) == mem);
	rt_exec_destroy(e);   /* leaves the caller's memory alone */
	mem_aligned_free(mem);
	rt_program_destroy(p);
	diag_free(&d);
}

int main(void)
{
	RUN(test_round_trip);
	RUN(test_bind);
	RUN(test_damage);
	RUN(test_image);
	RUN(test_caller_arena);
	return check_report();
}
