/* rng.c - the one random generator of ganedit: xoshiro256** seeded by
 * splitmix64, with Box-Muller normals. Chosen because it is small, fast,
 * documented, and gives the same stream everywhere for the same seed. */
#include "core/core.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void ge_rng_seed(ge_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t ge_rng_u64(ge_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float ge_rng_uniform(ge_rng *r) { return (float)((ge_rng_u64(r) >> 40) * (1.0 / 16777216.0)); }

float ge_rng_normal(ge_rng *r) {
    double u1 = ((ge_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0); /* (0,1] */
    double u2 = (ge_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void ge_rng_fill_normal(ge_rng *r, float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = ge_rng_normal(r);
}

void ge_rng_fill_uniform(ge_rng *r, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * ge_rng_uniform(r);
}
