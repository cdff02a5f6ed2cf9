/* test_data.c: corpus loading, the train/validation split and the windows.
 *
 * The folder order, the split sizes and every window are computed here from
 * the documented rules (the random order with a private copy of splitmix64
 * and FNV-1a), not by asking the loader. */
#include "../check.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/rt.h"

static char dir[64];

static const char *tmp_path(const char *name)
{
	static char buf[256];
	snprintf(buf, sizeof buf, "%s/%s", dir, name);
	return buf;
}

static void put(const char *name, const char *text)
{
	FILE *f = fopen(tmp_path(name), "wb");
	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static uint64_t mix(uint64_t z)
{
	z += 0x9E3779B97F4A7C15ull;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* The documented random start, from scratch. */
static int64_t random_start(uint64_t seed, int64_t step, int64_t row, int64_t ntrain, int64_t seq)
{
	uint64_t h = 0xCBF29CE484222325ull;
	for (const char *s = "data.train"; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
	uint64_t key = mix(seed ^ mix(h));
	uint64_t ks = mix(key ^ mix((uint64_t)step));
	return (int64_t)(mix(ks ^ mix((uint64_t)row)) % (uint64_t)(ntrain - seq));
}

static void test_folder_order(void)
{
	Diag d;
	diag_init(&d);
	CHECK(mkdir(tmp_path("corpus"), 0777) == 0);
	CHECK(mkdir(tmp_path("corpus/a"), 0777) == 0);
	CHECK(mkdir(tmp_path("corpus/a/.git"), 0777) == 0);
	put("corpus/c", "C");
	put("corpus/b.txt", "BB");
	put("corpus/a/z.txt", "AZ");
	put("corpus/a-c.txt", "AC");     /* '-' sorts before '/' */
	put("corpus/.hidden", "H");
	put("corpus/a/.git/x", "G");
	rt_Data dt;
	CHECK(rt_data_load(tmp_path("corpus"), 0, &dt, &d) == 0);
	const char *want = "ACAZBBC";
	CHECK(dt.ntok == (int64_t)strlen(want) && dt.nfile == 4 && dt.ntrain == dt.ntok);
	int same = dt.ntok == (int64_t)strlen(want);
	for (int64_t i = 0; same && i < dt.ntok; i++)
		same = dt.tok[i] == want[i];
	CHECK(same);
	rt_data_free(&dt);

	/* one file; bytes >= 128 stay positive token ids */
	put("one.bin", "\xff\x80" "a");
	CHECK(rt_data_load(tmp_path("one.bin"), 0, &dt, &d) == 0);
	CHECK(dt.ntok == 3 && dt.tok[0] == 255 && dt.tok[1] == 128 && dt.tok[2] == 'a');
	rt_data_free(&dt);
	CHECK(d.nerror == 0);

	CHECK(rt_data_load(tmp_path("missing"), 0, &dt, &d) != 0);
	CHECK(mkdir(tmp_path("empty"), 0777) == 0);
	CHECK(rt_data_load(tmp_path("empty"), 0, &dt, &d) != 0);
	CHECK(strstr(diag_text(&d), "no files") != NULL);
	diag_free(&d);
}

static void test_split(void)
{
	Diag d;
	diag_init(&d);
	unsigned char bytes[997];
	for (int i = 0; i < 997; i++)
		bytes[i] = (unsigned char)(i * 7);
	double frac[4] = {0.05, 0.1, 0, 0.5};
	int64_t nval[4] = {49, 99, 0, 498};   /* floor(997 * f) */
	for (int k = 0; k < 4; k++) {
		rt_Data dt;
		CHECK(rt_data_from_bytes(bytes, sizeof bytes, frac[k], &dt, &d) == 0);
		CHECK(dt.ntok == 997 && dt.ntrain == 997 - nval[k]);
		int tail = 1;
		for (int64_t i = dt.ntrain; i < dt.ntok; i++)
			tail &= dt.tok[i] == bytes[i];
		CHECK(tail);
		rt_data_free(&dt);
	}
	rt_Data dt;
	CHECK(rt_data_from_bytes(bytes, sizeof bytes, 1, &dt, &d) != 0);
	CHECK(rt_data_from_bytes(bytes, sizeof bytes, -0.1, &dt, &d) != 0);
	diag_free(&d);
}

static void test_sequential(void)
{
	Diag d;
	diag_init(&d);
	const char *text = "0123456789abcdefghijklmnopqrstuvwxyzABCDE";   /* 41 bytes */
	rt_Data dt;
	CHECK(rt_data_from_bytes(text, 41, 0, &dt, &d) == 0);
	enum { B = 3, T = 4 };
	int32_t tok[B * T], tgt[B * T];
	int ok = 1;
	/* W = (41 - 1) / 4 = 10 windows at 0, 4, ..., 36; step 3 row 1 wraps to 0 */
	for (int64_t s = 0; s < 8; s++) {
		CHECK(rt_data_batch(&dt, RT_ORDER_SEQUENTIAL, 99, s, B, T, tok, tgt, &d) == 0);
		for (int i = 0; i < B; i++) {
			int64_t start = ((s * B + i) % 10) * T;
			ok &= rt_data_window(&dt, RT_ORDER_SEQUENTIAL, 99, s, i, B, T) == start;
			for (int j = 0; j < T; j++) {
				ok &= tok[i * T + j] == text[start + j];
				ok &= tgt[i * T + j] == text[start + j + 1];
			}
		}
	}
	CHECK(ok);
	CHECK(rt_data_window(&dt, RT_ORDER_SEQUENTIAL, 0, 3, 1, B, T) == 0);
	CHECK(rt_data_window(&dt, RT_ORDER_SEQUENTIAL, 0, 3, 0, B, T) == 36);
	/* the last window ends exactly at the end of the stream */
	CHECK(rt_data_window(&dt, RT_ORDER_SEQUENTIAL, 0, 3, 0, B, T) + T + 1 == 41);
	/* and the seed does not matter */
	CHECK(rt_data_window(&dt, RT_ORDER_SEQUENTIAL, 1, 2, 2, B, T) ==
	      rt_data_window(&dt, RT_ORDER_SEQUENTIAL, 7, 2, 2, B, T));
	rt_data_free(&dt);
	diag_free(&d);
}

static void test_random(void)
{
	Diag d;
	diag_init(&d);
	enum { N = 5000, B = 4, T = 16 };
	unsigned char bytes[N];
	for (int i = 0; i < N; i++)
		bytes[i] = (unsigned char)(i * 31 + (i >> 8));
	rt_Data dt;
	CHECK(rt_data_from_bytes(bytes, N, 0.05, &dt, &d) == 0);
	int64_t ntrain = dt.ntrain;
	CHECK(ntrain == 4750);
	int formula = 1, in_range = 1, shifted = 1;
	int64_t lo = ntrain, hi = -1;
	int32_t tok[B * T], tgt[B * T];
	for (int64_t s = 0; s < 500; s++) {
		CHECK(rt_data_batch(&dt, RT_ORDER_RANDOM, 42, s, B, T, tok, tgt, &d) == 0);
		for (int i = 0; i < B; i++) {
			int64_t at = random_start(42, s, i, ntrain, T);
			formula &= rt_data_window(&dt, RT_ORDER_RANDOM, 42, s, i, B, T) == at;
			in_range &= at >= 0 && at + T + 1 <= ntrain;
			lo = at < lo ? at : lo;
			hi = at > hi ? at : hi;
			for (int j = 0; j < T; j++) {
				shifted &= tok[i * T + j] == bytes[at + j];
				shifted &= tgt[i * T + j] == bytes[at + j + 1];
				if (j + 1 < T)
					shifted &= tgt[i * T + j] == tok[i * T + j + 1];
			}
		}
	}
	CHECK(formula);
	/* pinned by the Python transcription in docs/runtime.md */
	int64_t pinned[3][3] = {{0, 139, 3256}, {1, 2060, 1459}, {1000, 4072, 4572}};
	for (int k = 0; k < 3; k++) {
		CHECK(rt_data_window(&dt, RT_ORDER_RANDOM, 42, pinned[k][0], 0, B, T) == pinned[k][1]);
		CHECK(rt_data_window(&dt, RT_ORDER_RANDOM, 42, pinned[k][0], 3, B, T) == pinned[k][2]);
	}
	CHECK(in_range);
	CHECK(shifted);
	CHECK(lo < 50 && hi > ntrain - T - 50);   /* the whole range is used */

	/* resumable: step 123 alone equals step 123 in sequence; seeds differ */
	int32_t a[B * T], b[B * T], c[B * T];
	CHECK(rt_data_batch(&dt, RT_ORDER_RANDOM, 42, 123, B, T, a, tgt, &d) == 0);
	CHECK(rt_data_batch(&dt, RT_ORDER_RANDOM, 42, 123, B, T, b, tgt, &d) == 0);
	CHECK(rt_data_batch(&dt, RT_ORDER_RANDOM, 43, 123, B, T, c, tgt, &d) == 0);
	CHECK(memcmp(a, b, sizeof a) == 0);
	CHECK(memcmp(a, c, sizeof a) != 0);
	int differ = 0;
	for (int64_t s = 0; s < 50; s++)
		differ += rt_data_window(&dt, RT_ORDER_RANDOM, 1, s, 0, B, T) !=
			  rt_data_window(&dt, RT_ORDER_RANDOM, 2, s, 0, B, T);
	CHECK(differ > 45);

	/* a training part too short for one window is an error */
	rt_Data small;
	CHECK(rt_data_from_bytes(bytes, 20, 0.5, &small, &d) == 0);
	CHECK(rt_data_batch(&small, RT_ORDER_RANDOM, 1, 0, 1, 10, tok, tgt, &d) != 0);
	CHECK(rt_data_window(&small, RT_ORDER_SEQUENTIAL, 1, 0, 0, 1, 10) == -1);
	CHECK(rt_data_window(&small, RT_ORDER_SEQUENTIAL, 1, 0, 0, 1, 9) == 0);
	rt_data_free(&small);
	rt_data_free(&dt);
	diag_free(&d);
}

static void test_validation(void)
{
	Diag d;
	diag_init(&d);
	enum { N = 1000, B = 2, T = 8 };
	unsigned char bytes[N];
	for (int i = 0; i < N; i++)
		bytes[i] = (unsigned char)(i ^ (i >> 3));
	rt_Data dt;
	CHECK(rt_data_from_bytes(bytes, N, 0.2, &dt, &d) == 0);
	CHECK(dt.ntrain == 800);
	/* 200 tokens: (200 - 1) / 8 = 24 windows, 12 batches of 2 */
	CHECK(rt_data_val_batches(&dt, B, T) == 12);
	CHECK(rt_data_val_batches(&dt, 5, T) == 4);
	int32_t tok[B * T], tgt[B * T];
	int ok = 1;
	for (int64_t b = 0; b < 12; b++) {
		CHECK(rt_data_val_batch(&dt, b, B, T, tok, tgt, &d) == 0);
		for (int i = 0; i < B; i++)
			for (int j = 0; j < T; j++) {
				int64_t at = 800 + (b * B + i) * T + j;
				ok &= tok[i * T + j] == bytes[at] && tgt[i * T + j] == bytes[at + 1];
			}
	}
	CHECK(ok);
	CHECK(rt_data_val_batch(&dt, 12, B, T, tok, tgt, &d) != 0);
	CHECK(rt_data_val_batch(&dt, -1, B, T, tok, tgt, &d) != 0);
	rt_data_free(&dt);
	CHECK(rt_data_from_bytes(bytes, N, 0, &dt, &d) == 0);
	CHECK(rt_data_val_batches(&dt, B, T) == 0);
	rt_data_free(&dt);
	diag_free(&d);
}

/* Each allocation of a folder load failing in turn: an error, nothing
 * leaked (the sanitizer build checks), and then a clean load. */
static void test_out_of_memory(void)
{
	Diag d;
	diag_init(&d);
	rt_Data dt;
	int ok = 0, bad = 0;
	for (long k = 1; k < 200 && !ok; k++) {
		mem_fail_after(k);
		int rc = rt_data_load(tmp_path("corpus"), 0.25, &dt, &d);
		mem_fail_after(0);
		ok = rc == 0;
		bad += rc == 0 ? dt.ntok != 7 || dt.ntrain != 6 : dt.tok != NULL;
		if (ok)
			rt_data_free(&dt);
	}
	CHECK(ok && bad == 0);
	diag_free(&d);
}

int main(void)
{
	if (check_tmpdir(dir, "data"))
		return 1;
	RUN(test_folder_order);
	RUN(test_split);
	RUN(test_sequential);
	RUN(test_random);
	RUN(test_validation);
	RUN(test_out_of_memory);
	check_rmdir(dir);
	return check_report();
}
