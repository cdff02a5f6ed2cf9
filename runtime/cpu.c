/* cpu.c: the CPU features ahead-of-time code needs, and this CPU's.
 *
 * An object compiled for a target records, as a bit mask over
 * rt_CpuFeature, the features of that target which change the code LLVM
 * may emit for our kernels (the vector extensions, FMA, and the
 * bit-manipulation instructions the scalar code can use). Names are
 * LLVM's ("+avx512f" in a features string is RT_CPU_AVX512F), so the
 * backend builds the mask by name. The host's features come from
 * __builtin_cpu_supports, which also checks that the OS saves the AVX and
 * AVX-512 registers, and from cpuid for the few it does not know. Off x86
 * the host has none of these and an object needing any is refused. */
#include "rt.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

const char *const rt_cpu_feature_name[RT_CPU_COUNT] = {
	[RT_CPU_SSE3] = "sse3", [RT_CPU_SSSE3] = "ssse3", [RT_CPU_SSE41] = "sse4.1",
	[RT_CPU_SSE42] = "sse4.2", [RT_CPU_POPCNT] = "popcnt", [RT_CPU_AVX] = "avx",
	[RT_CPU_AVX2] = "avx2", [RT_CPU_FMA] = "fma", [RT_CPU_F16C] = "f16c",
	[RT_CPU_BMI] = "bmi", [RT_CPU_BMI2] = "bmi2", [RT_CPU_LZCNT] = "lzcnt",
	[RT_CPU_MOVBE] = "movbe", [RT_CPU_AVX512F] = "avx512f", [RT_CPU_AVX512BW] = "avx512bw",
	[RT_CPU_AVX512CD] = "avx512cd", [RT_CPU_AVX512DQ] = "avx512dq",
	[RT_CPU_AVX512VL] = "avx512vl", [RT_CPU_AVX512VNNI] = "avx512vnni",
	[RT_CPU_AVX512BF16] = "avx512bf16", [RT_CPU_AVX512IFMA] = "avx512ifma",
	[RT_CPU_AVX512VBMI] = "avx512vbmi", [RT_CPU_AVX512VBMI2] = "avx512vbmi2",
	[RT_CPU_AVX512BITALG] = "avx512bitalg", [RT_CPU_AVX512VPOPCNTDQ] = "avx512vpopcntdq",
};
static_assert(RT_CPU_COUNT == 25, "rt_cpu_feature_name: name the new feature");
static_assert(RT_CPU_COUNT <= 64, "features are bits of a uint64_t");

#define BIT(f) ((uint64_t)1 << (f))

uint64_t rt_cpu_host_features(void)
{
	uint64_t h = 0;
#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
	/* __builtin_cpu_supports takes string literals only, hence the list */
#define HAS(f, s) h |= __builtin_cpu_supports(s) ? BIT(f) : 0
	HAS(RT_CPU_SSE3, "sse3");
	HAS(RT_CPU_SSSE3, "ssse3");
	HAS(RT_CPU_SSE41, "sse4.1");
	HAS(RT_CPU_SSE42, "sse4.2");
	HAS(RT_CPU_POPCNT, "popcnt");
	HAS(RT_CPU_AVX, "avx");
	HAS(RT_CPU_AVX2, "avx2");
	HAS(RT_CPU_FMA, "fma");
	HAS(RT_CPU_BMI, "bmi");
	HAS(RT_CPU_BMI2, "bmi2");
	HAS(RT_CPU_AVX512F, "avx512f");
	HAS(RT_CPU_AVX512BW, "avx512bw");
	HAS(RT_CPU_AVX512CD, "avx512cd");
	HAS(RT_CPU_AVX512DQ, "avx512dq");
	HAS(RT_CPU_AVX512VL, "avx512vl");
	HAS(RT_CPU_AVX512VNNI, "avx512vnni");
	HAS(RT_CPU_AVX512IFMA, "avx512ifma");
	HAS(RT_CPU_AVX512VBMI, "avx512vbmi");
	HAS(RT_CPU_AVX512VBMI2, "avx512vbmi2");
	HAS(RT_CPU_AVX512BITALG, "avx512bitalg");
	HAS(RT_CPU_AVX512VPOPCNTDQ, "avx512vpopcntdq");
#undef HAS
	/* The rest from cpuid: F16C and MOVBE (leaf 1 ecx bits 29, 22), LZCNT
	 * (leaf 0x80000001 ecx bit 5), AVX512_BF16 (leaf 7 subleaf 1 eax bit
	 * 5, meaningful only with AVX-512F, whose OS support the builtin saw). */
	unsigned a, b, c, d;
	if (__get_cpuid(1, &a, &b, &c, &d)) {
		h |= (c >> 29 & 1) && (h & BIT(RT_CPU_AVX)) ? BIT(RT_CPU_F16C) : 0;
		h |= (c >> 22 & 1) ? BIT(RT_CPU_MOVBE) : 0;
	}
	if (__get_cpuid(0x80000001, &a, &b, &c, &d))
		h |= (c >> 5 & 1) ? BIT(RT_CPU_LZCNT) : 0;
	if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && (h & BIT(RT_CPU_AVX512F)))
		h |= (a >> 5 & 1) ? BIT(RT_CPU_AVX512BF16) : 0;
#endif
	return h;
}

static void list(uint64_t mask, char *buf, size_t n)
{
	size_t at = 0;
	buf[0] = 0;
	for (int f = 0; f < RT_CPU_COUNT && at < n; f++)
		if (mask & BIT(f))
			at += (size_t)snprintf(buf + at, n - at, "%s%s", at ? ", " : "",
					       rt_cpu_feature_name[f]);
}

int rt_cpu_check(uint64_t need, uint64_t have, const char *target, Diag *d)
{
	uint64_t missing = need & ~have;
	if (!missing)
		return 0;
	char miss[512];
	list(missing, miss, sizeof miss);
	return diag_error(d, (SrcLoc){0}, "this model's code was compiled for %s, and this CPU "
			  "lacks %s; compile it again with a --target-cpu this CPU has "
			  "(x86-64-v2, x86-64-v3, x86-64-v4) or native on this machine",
			  target ? target : "another CPU", miss);
}
