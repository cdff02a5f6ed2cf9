/* hash.c: xxh3 behind a small interface, so only this file includes xxhash.h. */
#include "support.h"

#include <stdio.h>
#include <xxhash.h>

uint64_t hash64(const void *p, size_t n, uint64_t seed)
{
	return XXH3_64bits_withSeed(p, n, seed);
}

Hash128 hash128(const void *p, size_t n)
{
	XXH128_hash_t h = XXH3_128bits(p, n);
	return (Hash128){h.low64, h.high64};
}

void hash128_hex(Hash128 h, char out[33])
{
	snprintf(out, 33, "%016llx%016llx", (unsigned long long)h.hi, (unsigned long long)h.lo);
}
