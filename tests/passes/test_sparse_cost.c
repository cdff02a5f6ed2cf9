/* test_sparse_cost.c: the sparse cost model's decisions with given rates
 * (passes/sparse_cost.c), no measuring:
 *   - sparse_rates takes every rate it needs from the host rates and
 *     refuses rates that lack one (the model then keeps products masked);
 *   - the predictions follow the formulas (dense 2MKN / rate; csr 2M nnz /
 *     rate + a share of the dense size + transposes, none when shared);
 *   - the pick is the fastest prediction, a sparse one only when it beats
 *     masked by more than the noise; forced formats win; no rates, no
 *     guess; unrolled only for small patterns and never for the weight
 *     gradient;
 *   - the same shapes pick differently on machines whose rates differ
 *     (the point of calibrating). */
#include "passes/passes.h"
#include "tests/check.h"

#include <math.h>
#include <string.h>

static const char *const prod[3] = {"forward", "input-grad", "weight-grad"};

/* dense D flop/s, csr C flop/s, no overhead, transposes T bytes/s. */
static HostRates host(double D, double C, double T, double noise)
{
	HostRates h = {0};
	char n[RATES_NAME_MAX];
	for (int p = 0; p < 3; p++) {
		snprintf(n, sizeof n, "dense.%s", prod[p]);
		rates_set(&h, n, D);
		snprintf(n, sizeof n, "csr.%s.flops", prod[p]);
		rates_set(&h, n, C);
		snprintf(n, sizeof n, "csr.%s.dense", prod[p]);
		rates_set(&h, n, 0);
	}
	rates_set(&h, "transpose.bytes", T);
	rates_set(&h, "noise", noise);
	snprintf(h.cpu, sizeof h.cpu, "test CPU");
	snprintf(h.source, sizeof h.source, "given");
	return h;
}

static void test_rates_from_host(void)
{
	HostRates h = host(200e9, 100e9, 50e9, 0.05);
	SparseRates r;
	CHECK(sparse_rates(&h, &r) == 0);
	CHECK(r.dense_flops[SPP_INPUT_GRAD] == 200e9 && r.csr_flops[SPP_WEIGHT_GRAD] == 100e9);
	CHECK(r.transpose_bytes == 50e9 && r.noise == 0.05);
	CHECK(r.unrolled_speedup == 0);   /* not measured: no unrolled picks */
	CHECK(!strcmp(r.cpu, "test CPU") && !strcmp(r.source, "given"));
	CHECK(sparse_rates(NULL, &r) == -1);
	HostRates lack = {0};
	for (int i = 0; i < h.n; i++)   /* every rate but one */
		if (strcmp(h.rate[i].name, "csr.input-grad.flops"))
			rates_set(&lack, h.rate[i].name, h.rate[i].value);
	CHECK(sparse_rates(&lack, &r) == -1);
	rates_set(&lack, "csr.input-grad.flops", -1);   /* nonsense */
	CHECK(sparse_rates(&lack, &r) == -1);
}

static void test_predictions(void)
{
	HostRates h = host(200e9, 100e9, 40e9, 0.05);
	rates_set(&h, "csr.forward.dense", 1e-13);
	SparseRates r;
	CHECK(sparse_rates(&h, &r) == 0);
	SparseShape s = {.rows = 1024, .k = 256, .n = 768, .nnz = 256 * 768 / 4};
	double dense = 2.0 * 1024 * 256 * 768 / 200e9;
	double kernel = 2.0 * 1024 * (256 * 768 / 4) / 100e9;
	double trans = 8.0 * 1024 * (256 + 768) / 40e9;
	CHECK_NEAR(sparse_cost(SPP_FORWARD, SPF_MASKED, &s, false, &r), dense, 1e-12);
	CHECK_NEAR(sparse_cost(SPP_FORWARD, SPF_CSR, &s, false, &r),
		   kernel + 1e-13 * 1024 * 256 * 768 + trans, 1e-12);
	CHECK_NEAR(sparse_cost(SPP_WEIGHT_GRAD, SPF_CSR, &s, true, &r), kernel, 1e-12);
	CHECK(isinf(sparse_cost(SPP_FORWARD, SPF_UNROLLED, &s, false, &r)));
	CHECK(isinf(sparse_cost(SPP_FORWARD, SPF_CSR, &s, false, NULL)));
}

static void test_choice(void)
{
	HostRates h = host(200e9, 100e9, 1e15, 0.05);   /* transposes ~free */
	SparseRates r;
	CHECK(sparse_rates(&h, &r) == 0);
	SparseShape s = {.rows = 1024, .k = 256, .n = 768};
	double cost[SPF_COUNT];
	/* csr at half the dense rate: wins from above 50% sparsity */
	s.nnz = 256 * 768 / 4;
	CHECK(sparse_choose(SPP_FORWARD, &s, false, SPF_AUTO, &r, cost) == SPF_CSR);
	CHECK(cost[SPF_CSR] < cost[SPF_MASKED]);
	s.nnz = 256 * 768 / 2 + 1000;
	CHECK(sparse_choose(SPP_FORWARD, &s, false, SPF_AUTO, &r, NULL) == SPF_MASKED);
	/* 4% faster predicted, 5% noise: not worth it; 1% noise: csr */
	s.nnz = (int64_t)(256 * 768 / 2 * 0.96);
	CHECK(sparse_choose(SPP_INPUT_GRAD, &s, false, SPF_AUTO, &r, NULL) == SPF_MASKED);
	rates_set(&h, "noise", 0.01);
	CHECK(sparse_rates(&h, &r) == 0);
	CHECK(sparse_choose(SPP_INPUT_GRAD, &s, false, SPF_AUTO, &r, NULL) == SPF_CSR);
	/* a forced format is taken as it is; unrolled has no weight gradient */
	CHECK(sparse_choose(SPP_FORWARD, &s, false, SPF_MASKED, &r, NULL) == SPF_MASKED);
	CHECK(sparse_choose(SPP_FORWARD, &s, false, SPF_UNROLLED, &r, NULL) == SPF_UNROLLED);
	CHECK(sparse_choose(SPP_WEIGHT_GRAD, &s, false, SPF_UNROLLED, &r, NULL) == SPF_CSR);
	/* no rates: never guess */
	s.nnz = 256 * 768 / 10;
	CHECK(sparse_choose(SPP_FORWARD, &s, false, SPF_AUTO, NULL, cost) == SPF_MASKED);
	CHECK(sparse_choose(SPP_FORWARD, &s, false, SPF_CSR, NULL, NULL) == SPF_CSR);
}

/* Decoding a few sequences: the kernels have no vector code for so few
 * rows, so no sparse format is predicted however sparse the weight. */
static void test_few_rows(void)
{
	HostRates h = host(200e9, 100e9, 1e15, 0.0);
	SparseRates r;
	CHECK(sparse_rates(&h, &r) == 0);
	SparseShape s = {.rows = SPARSE_MIN_ROWS - 1, .k = 256, .n = 768, .nnz = 256 * 768 / 20};
	for (int p = 0; p < SPP_COUNT; p++) {
		CHECK(sparse_choose((SparseProduct)p, &s, false, SPF_AUTO, &r, NULL) == SPF_MASKED);
		CHECK(isinf(sparse_cost((SparseProduct)p, SPF_CSR, &s, false, &r)));
	}
	CHECK(sparse_choose(SPP_FORWARD, &s, false, SPF_CSR, &r, NULL) == SPF_CSR);   /* forced */
	s.rows = SPARSE_MIN_ROWS;
	CHECK(sparse_choose(SPP_FORWARD, &s, false, SPF_AUTO, &r, NULL) == SPF_CSR);
}

static void test_transposes_decide(void)
{
	/* slow transposes make the forward lose where the shared weight
	 * gradient still wins */
	HostRates h = host(200e9, 100e9, 1e9, 0.0);
	SparseRates r;
	CHECK(sparse_rates(&h, &r) == 0);
	SparseShape s = {.rows = 1024, .k = 256, .n = 768, .nnz = 256 * 768 / 4};
	CHECK(sparse_choose(SPP_FORWARD, &s, false, SPF_AUTO, &r, NULL) == SPF_MASKED);
	CHECK(sparse_choose(SPP_WEIGHT_GRAD, &s, true, SPF_AUTO, &r, NULL) == SPF_CSR);
	CHECK(sparse_choose(SPP_WEIGHT_GRAD, &s, false, SPF_AUTO, &r, NULL) == SPF_MASKED);
}

static void test_unrolled(void)
{
	HostRates h = host(200e9, 100e9, 1e15, 0.02);
	rates_set(&h, "unrolled.speedup", 1.2);
	rates_set(&h, "unrolled.max-nnz", 5000);
	SparseRates r;
	CHECK(sparse_rates(&h, &r) == 0);
	SparseShape s = {.rows = 1024, .k = 64, .n = 256, .nnz = 64 * 256 / 10};
	CHECK(sparse_choose(SPP_FORWARD, &s, false, SPF_AUTO, &r, NULL) == SPF_UNROLLED);
	CHECK(sparse_choose(SPP_WEIGHT_GRAD, &s, false, SPF_AUTO, &r, NULL) == SPF_CSR);
	s = (SparseShape){.rows = 1024, .k = 256, .n = 768, .nnz = 256 * 768 / 10};
	CHECK(sparse_choose(SPP_FORWARD, &s, false, SPF_AUTO, &r, NULL) == SPF_CSR);
}

/* A machine whose sparse kernels are slow relative to its dense matmul
 * (the Xeon of the issue) keeps 75% products dense that a machine with
 * relatively fast ones makes sparse. */
static void test_machines_differ(void)
{
	HostRates xeon = host(175e9, 35e9, 30e9, 0.03), zen = host(115e9, 45e9, 30e9, 0.03);
	SparseRates rx, rz;
	CHECK(sparse_rates(&xeon, &rx) == 0 && sparse_rates(&zen, &rz) == 0);
	SparseShape s = {.rows = 1024, .k = 256, .n = 768, .nnz = 256 * 768 / 4};
	CHECK(sparse_choose(SPP_INPUT_GRAD, &s, false, SPF_AUTO, &rx, NULL) == SPF_MASKED);
	CHECK(sparse_choose(SPP_INPUT_GRAD, &s, false, SPF_AUTO, &rz, NULL) == SPF_CSR);
}

static void test_print(void)
{
	HostRates h = host(200e9, 100e9, 40e9, 0.05);
	SparseRates r;
	CHECK(sparse_rates(&h, &r) == 0);
	char buf[4096] = "";
	FILE *f = fmemopen(buf, sizeof buf - 1, "w");
	sparse_print_rates(f, &r);
	SparseShape s = {.rows = 1024, .k = 256, .n = 768, .nnz = 256 * 768 / 4};
	double cost[SPF_COUNT];
	SparseFormat pick = sparse_choose(SPP_FORWARD, &s, false, SPF_AUTO, &r, cost);
	sparse_print_choice(f, "h.0.w", SPP_FORWARD, &s, cost, pick, false);
	fclose(f);
	CHECK(strstr(buf, "; sparse rates on test CPU, from given:"));
	CHECK(strstr(buf, "dense matmul 200.0 / 200.0 / 200.0 GFLOP/s"));
	CHECK(strstr(buf, "; h.0.w [256,768] kept 49152 (75.0% sparse) M 1024 forward"));
	CHECK(strstr(buf, "unrolled - -> csr\n"));
}

int main(void)
{
	RUN(test_rates_from_host);
	RUN(test_predictions);
	RUN(test_choice);
	RUN(test_few_rows);
	RUN(test_transposes_decide);
	RUN(test_unrolled);
	RUN(test_machines_differ);
	RUN(test_print);
	return check_report();
}
