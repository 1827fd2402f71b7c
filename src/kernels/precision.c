/* precision.c - which arithmetic the convolutions use (fp32 or bf16) and
 * what this CPU can do in bf16, found at run time.
 *
 * bf16 is opt-in (ge_set_precision): the fast convolution path then feeds
 * oneDNN bf16 activations and weights and gets fp32 results (fp32
 * accumulation); everything else stays fp32. It is used only where it is
 * faster than fp32, which means AMX:
 *  - AMX-BF16 (CPUID.(7,0):EDX bits 22 and 24) with the tile state enabled
 *    by the OS (XCR0 bits 17-18) and granted to this process: Linux hands
 *    the 8 KB tile-data state out only on request, arch_prctl(
 *    ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), made once here.
 *  - AVX512-BF16 (CPUID.(7,1):EAX bit 5, AVX-512 state enabled in XCR0) is
 *    detected and reported, but not used by default: on the Xeons here
 *    vdpbf16ps issues at half the rate of the fp32 FMAs, so oneDNN's
 *    avx512_core_bf16 convolutions ran at 75-80 GFLOP/s where fp32 ran at
 *    140-150 (bench/conv_bench.c, docs/speed.md). The tests switch it on
 *    (ge_bf16_allow_avx512), and GANEDIT_BF16_AVX512=1 in the environment
 *    does for a whole program, to check the bf16 numerics on such machines.
 * Elsewhere a bf16 request falls back to fp32 (ge_get_precision says which
 * is in effect). The detection runs once; the result is cached. */
#include "core/core.h"
#include "kernels/kernels.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define GE_X86 1
#endif

#define ARCH_GET_XCOMP_PERM 0x1022
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static ge_precision requested = GE_PRECISION_FP32;
static int allow_avx512 = 0;
static int bf16_level = -1; /* GE_BF16_*, -1 until detected */
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;

#ifdef GE_X86
static unsigned long long xgetbv0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif

static void detect(void) {
    int level = GE_BF16_NONE;
    /* GANEDIT_BF16_AVX512=1: let bf16 run without AMX (to check its numerics) */
    const char *env = getenv("GANEDIT_BF16_AVX512");
    if (env && !strcmp(env, "1")) allow_avx512 = 1;
#ifdef GE_X86
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(1, 0, a, b, c, d);
        int osxsave = (c >> 27) & 1;
        unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
        int avx512_os = (xcr0 & 0xE6) == 0xE6;
        __cpuid_count(7, 0, a, b, c, d);
        int avx512f = (b >> 16) & 1, amx_bf16 = (d >> 22) & 1, amx_tile = (d >> 24) & 1;
        unsigned max_sub = a;
        int avx512_bf16 = 0;
        if (max_sub >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            avx512_bf16 = (a >> 5) & 1;
        }
        if (avx512f && avx512_os && avx512_bf16) level = GE_BF16_AVX512;
        if (avx512f && avx512_os && amx_bf16 && amx_tile && (xcr0 & 0x60000) == 0x60000) {
#ifdef SYS_arch_prctl
            unsigned long perm = 0;
            long r = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA);
            if (r == 0 && syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &perm) == 0 &&
                (perm >> XFEATURE_XTILEDATA) & 1)
                level = GE_BF16_AMX;
#endif
        }
    }
#endif
    bf16_level = level;
}

ge_bf16_support ge_bf16_supported(void) {
    pthread_once(&detect_once, detect);
    return (ge_bf16_support)bf16_level;
}

ge_status ge_set_precision(ge_precision p) {
    if (p != GE_PRECISION_FP32 && p != GE_PRECISION_BF16)
        return ge_fail(GE_ERR_ARG, "precision %d is neither fp32 nor bf16", (int)p);
    requested = p;
    return GE_OK;
}

ge_precision ge_get_precision(void) {
    ge_bf16_support b = requested == GE_PRECISION_BF16 ? ge_bf16_supported() : GE_BF16_NONE;
    if (b == GE_BF16_AMX || (b == GE_BF16_AVX512 && allow_avx512)) return GE_PRECISION_BF16;
    return GE_PRECISION_FP32;
}

int ge_bf16_allow_avx512(int on) {
    pthread_once(&detect_once, detect); /* the environment's say comes first */
    int was = allow_avx512;
    allow_avx512 = on != 0;
    return was;
}

int ge_use_bf16(void) {
    return ge_get_precision() == GE_PRECISION_BF16;
}
