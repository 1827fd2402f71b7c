/* dtype.c - the element types that weight files hold, and their conversion
 * to float32, which is the only type the rest of ganedit computes in.
 *
 * Every reader (safetensors, PyTorch zip and legacy, .npy) calls the one
 * converter here so that a half-precision or bfloat16 tensor gives the same
 * floats whatever file it came in. Sources are read with memcpy, so they may
 * sit at any alignment inside a mapped file; bytes are taken as little-endian,
 * which is what all three formats store (big-endian files are refused by the
 * readers before they get here). */
#include "io/io.h"

#include <string.h>

/* F32 data is copied and mapped as it lies in the file. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "ganedit assumes a little-endian host");

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [GE_DT_F32] = {"F32", 4},   [GE_DT_F64] = {"F64", 8}, [GE_DT_F16] = {"F16", 2},
    [GE_DT_BF16] = {"BF16", 2}, [GE_DT_I64] = {"I64", 8}, [GE_DT_I32] = {"I32", 4},
    [GE_DT_I16] = {"I16", 2},   [GE_DT_I8] = {"I8", 1},   [GE_DT_U8] = {"U8", 1},
    [GE_DT_BOOL] = {"BOOL", 1},
};

size_t ge_dtype_size(ge_dtype dt) {
    return (unsigned)dt < sizeof dtypes / sizeof dtypes[0] ? dtypes[dt].size : 0;
}

const char *ge_dtype_name(ge_dtype dt) {
    return (unsigned)dt < sizeof dtypes / sizeof dtypes[0] ? dtypes[dt].name : "?";
}

int ge_dtype_from_name(ge_dtype *dt, const char *name) {
    for (unsigned i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (!strcmp(name, dtypes[i].name)) {
            *dt = (ge_dtype)i;
            return 1;
        }
    return 0;
}

/* IEEE half to single: exact (every half is a single). */
static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {              /* subnormal half: a normal single after shifting the mantissa up */
            uint32_t e = 113; /* 127 - 15 + 1 */
            do {
                e--;
                man <<= 1;
            } while (!(man & 1024));
            bits = sign | (e << 23) | ((man & 1023) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13); /* inf, or NaN keeping its payload */
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint64_t load_le(const unsigned char *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

void ge_convert_to_f32(float *dst, const void *src_, size_t n, ge_dtype dt) {
    const unsigned char *src = src_;
    switch (dt) {
    case GE_DT_F32:
        memcpy(dst, src, n * 4);
        break;
    case GE_DT_F64:
        for (size_t i = 0; i < n; i++) {
            uint64_t b = load_le(src + 8 * i, 8);
            double d;
            memcpy(&d, &b, 8);
            dst[i] = (float)d;
        }
        break;
    case GE_DT_F16:
        for (size_t i = 0; i < n; i++)
            dst[i] = f16_to_f32((uint16_t)load_le(src + 2 * i, 2));
        break;
    case GE_DT_BF16:
        for (size_t i = 0; i < n; i++) {
            uint32_t b = (uint32_t)load_le(src + 2 * i, 2) << 16;
            memcpy(&dst[i], &b, 4);
        }
        break;
    case GE_DT_I64:
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)(int64_t)load_le(src + 8 * i, 8);
        break;
    case GE_DT_I32:
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)(int32_t)(uint32_t)load_le(src + 4 * i, 4);
        break;
    case GE_DT_I16:
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)(int16_t)(uint16_t)load_le(src + 2 * i, 2);
        break;
    case GE_DT_I8:
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)(int8_t)src[i];
        break;
    case GE_DT_U8:
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)src[i];
        break;
    case GE_DT_BOOL:
        for (size_t i = 0; i < n; i++)
            dst[i] = src[i] ? 1.f : 0.f;
        break;
    }
}
