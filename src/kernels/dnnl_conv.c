/* dnnl_conv.c - direct convolutions through oneDNN primitives: the fast path
 * of conv2d and convt2d (forward, backward-data, backward-weights), fp32 or
 * bf16 with fp32 accumulation.
 *
 * Why primitives and not im2col + GEMM: oneDNN's direct kernels
 * (jit:avx512_core, brgconv on AMX) work on channel-blocked layouts
 * (nChw16c, ...) with the kernel taps unrolled in registers, so there is no
 * column matrix to write and, for the input gradient, no col2im scatter; at
 * VGG shapes they ran at 1.0-1.5x the speed of im2col + sgemm, 0.9-1.3x
 * PyTorch's (docs/speed.md).
 *
 * How: each primitive is created from memory descriptors with
 * format_tag_any, so oneDNN picks the layouts its fastest implementation
 * wants (forcing plain layouts sends backward-data to "ref:any", ~2000x
 * slower). Activations are then packed here from NCHW fp32 into the chosen
 * layout (converted to bf16 when asked) in one pass that also does
 * reflection padding, and results are unpacked back to NCHW in one pass that
 * adds the bias, accumulates where the op contract says +=, and folds the
 * reflected border back. Weights go through a oneDNN reorder primitive
 * (their blocked layouts are many), each call unless the caller says they
 * are constant (below): a weight buffer may change between calls
 * (per-sample modulated weights, training), and the reorder costs one pass
 * over the weights. An implementation whose name contains
 * "ref" is refused (the caller's im2col path is faster).
 *
 * Cache: one entry per (problem, pass, precision, thread count) in a list,
 * holding the primitive, the weight reorder and the memory objects. The
 * packed activations, weights and oneDNN's scratchpad live in one arena
 * shared by all entries (calls run one at a time, under a lock), grown to
 * the largest problem seen, so memory is the largest layer's, not the sum.
 * A caller whose weight is constant (a frozen model while editing) may say
 * so (w_const): the entry then keeps its own packed copy, reordered only
 * when a different pointer comes, until ge_dconv_forget(w) says the values
 * changed.
 *
 * Determinism: the packing loops give every output element to one thread;
 * oneDNN's convolutions split work the same way for the same thread count,
 * so a thread count gives the same bytes on every run. */
#include "kernels/kernels.h"

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A channel-blocked 4-D layout: element (i, c, y, x) is at
 * i*sn + (c / cb)*sc + y*sy + x*sx + c % cb (in elements). Covers nchw
 * (cb 1), nhwc (cb 1, sx = C) and nChw16c / nChw8c. */
typedef struct {
    int cb, bf16;
    size_t sn, sc, sy, sx;
} blk_layout;

typedef struct dconv_entry {
    ge_dconv_shape s; /* key: problem, pass, precision, threads */
    int pass, bf16, nthr;
    int wino; /* the primitive is oneDNN's Winograd convolution */
    int ok;
    int ppad;                      /* reflection padding done while packing */
    int ih, iw, oh, ow;            /* the primitive's input (padded) and output sizes */
    dnnl_primitive_t prim;         /* the convolution */
    dnnl_primitive_t wre;          /* weights user <-> primitive (with sum for backward-weights) */
    dnnl_memory_t m_a, m_b;        /* activations: fwd (src, dst), bwd-data (diff_dst, diff_src),
                                      bwd-weights (src, diff_dst) */
    dnnl_memory_t m_w, m_uw, m_sp; /* primitive weights, user weights (oihw f32), scratchpad */
    blk_layout la, lb;
    size_t a_bytes, b_bytes, w_bytes, sp_bytes;
    void *wpack;             /* w_const: this entry's own packed weights */
    const float *wpack_from; /* the user weights wpack holds, or NULL */
    char impl[64];
    struct dconv_entry *next;
} dconv_entry;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t engine;
static dnnl_stream_t stream;
static dconv_entry *entries;
static unsigned char *arena;
static size_t arena_bytes;
static int enabled = -1; /* -1: not yet read from GANEDIT_CONV */
static int wino_on = 1;   /* Winograd where it pays (wino_wanted) */

/* GANEDIT_CONV=im2col in the environment starts with the fast path off, so
 * a whole program (a benchmark, the command line) can be timed both ways;
 * GANEDIT_CONV=direct keeps it on but without Winograd. */
static void read_env(void) {
    if (enabled < 0) {
        const char *e = getenv("GANEDIT_CONV");
        enabled = !(e && !strcmp(e, "im2col"));
        if (e && !strcmp(e, "direct")) wino_on = 0;
    }
}

int ge_dconv_enable(int on) {
    pthread_mutex_lock(&lock);
    read_env();
    int was = enabled;
    enabled = on != 0;
    pthread_mutex_unlock(&lock);
    return was;
}

int ge_dconv_winograd(int on) {
    pthread_mutex_lock(&lock);
    read_env();
    int was = wino_on;
    wino_on = on != 0;
    pthread_mutex_unlock(&lock);
    return was;
}

/* Whether a pass runs as oneDNN's Winograd convolution (F(2x2,3x3) or
 * F(4x4,3x3), fp32, 3x3 stride 1 only). Measured per VGG/DCGAN layer on
 * this machine (docs/speed.md): it pays for the forward when the weights
 * are constant (the transformed weights are then kept: transforming them
 * costs several direct convolutions) and the output has at least 16x16
 * pixels, and for the data gradient (which transforms the weights inside,
 * every call) from 32x32 outputs; below 32 channels on either side it
 * loses. Its results differ from the direct kernels' by rounding only
 * (relative 1e-6 at VGG shapes; tests/test_speed_conv.c). */
static int wino_wanted(const ge_dconv_shape *s, int pass, int bf16) {
    if (!wino_on || !s->wino || bf16 || s->kh != 3 || s->kw != 3 || s->stride != 1 || s->pad > 1) return 0;
    if (s->c_in < 32 || s->c_out < 32) return 0;
    int oh = s->h + 2 * s->pad - 2, ow = s->w + 2 * s->pad - 2;
    long px = (long)oh * ow;
    if (pass == GE_DCONV_FWD) return s->w_const && px >= 256;
    if (pass == GE_DCONV_BWD_DATA) return px >= 1024;
    return 0;
}

static void entry_free(dconv_entry *e) {
    free(e->wpack);
    if (e->prim) dnnl_primitive_destroy(e->prim);
    if (e->wre) dnnl_primitive_destroy(e->wre);
    dnnl_memory_t ms[] = {e->m_a, e->m_b, e->m_w, e->m_uw, e->m_sp};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        if (ms[i]) dnnl_memory_destroy(ms[i]);
    free(e);
}

void ge_dconv_release(void) {
    pthread_mutex_lock(&lock);
    while (entries) {
        dconv_entry *e = entries;
        entries = e->next;
        entry_free(e);
    }
    free(arena);
    arena = NULL;
    arena_bytes = 0;
    pthread_mutex_unlock(&lock);
}

/* ---- layouts and packing ---------------------------------------------------- */

static int layout_of(blk_layout *l, const dnnl_memory_desc_t *md) {
    if (md->ndims != 4 || md->format_kind != dnnl_blocked || md->offset0 != 0) return 0;
    for (int d = 0; d < 4; d++)
        if (md->padded_offsets[d] != 0) return 0;
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    if (b->inner_nblks == 0) {
        l->cb = 1;
    } else if (b->inner_nblks == 1 && b->inner_idxs[0] == 1) {
        l->cb = (int)b->inner_blks[0];
    } else {
        return 0;
    }
    if (md->data_type != dnnl_f32 && md->data_type != dnnl_bf16) return 0;
    l->bf16 = md->data_type == dnnl_bf16;
    l->sn = (size_t)b->strides[0];
    l->sc = (size_t)b->strides[1];
    l->sy = (size_t)b->strides[2];
    l->sx = (size_t)b->strides[3];
    return 1;
}

/* Round to nearest even; NaN stays NaN (quiet). */
static inline uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* Mirror index i into [0, n) without repeating the edge (ReflectionPad2d). */
static inline int reflect(int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) {
        if (i < 0) i = -i;
        if (i >= n) i = 2 * (n - 1) - i;
    }
    return i;
}

/* Offset of channel ch's element (0, ch, 0, 0). */
static inline size_t ch_off(const blk_layout *l, int ch) {
    return (size_t)(ch / l->cb) * l->sc + (size_t)(ch % l->cb);
}

/* The loops below walk one image row at a time, 16 channels by a few
 * columns: in every layout oneDNN picks here (nchw, nhwc, nChw16c) such a
 * tile is a few cache lines on both sides, whatever the strides. Where 16
 * channels sit side by side in the packed layout (nChw16c, nhwc) and the CPU
 * has AVX-512, a 16x16 tile is moved as 16 vector loads, an in-register
 * transpose and 16 vector stores; the scalar loops do the rest (edges,
 * reflected borders, odd channel counts) and are the reference. */
#define TILE 32
#define CGROUP 16

static int have_avx512; /* set once, with the engine */

/* 16 channels from c0 are contiguous in the packed layout. */
static int group_contiguous(const blk_layout *l) {
    return l->cb % CGROUP == 0 || (l->cb == 1 && l->sc == 1);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GE_AVX512 __attribute__((target("avx512f")))

/* r[16] (rows) -> its transpose, in place. */
GE_AVX512 __attribute__((always_inline)) static inline void tr16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    /* r[4i+j], 128-bit lane L: rows 4i..4i+3 of column 4L+j */
    for (int j = 0; j < 4; j++) {
        t[j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);
        t[4 + j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xdd);
        t[8 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
        t[12 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xdd);
    }
    for (int j = 0; j < 4; j++) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);
        r[4 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0x88);
        r[12 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0xdd);
    }
}

/* 16 floats to bf16, rounding to nearest even; NaN stays NaN (as to_bf16). */
GE_AVX512 __attribute__((always_inline)) static inline __m256i bf16x16(__m512 v) {
    __m512i u = _mm512_castps_si512(v);
    __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff)));
    r = _mm512_srli_epi32(r, 16);
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_mov_epi32(r, nan,
                              _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
    return _mm512_cvtepi32_epi16(r);
}

/* 16 channel rows (src + k*plane, 16 columns each) -> 16 packed columns
 * (d + col*sx, 16 channels each), fp32 or bf16. */
GE_AVX512 static void pack_tile(void *d, int bf16, size_t sx, const float *src, size_t plane) {
    __m512 r[16];
    for (int k = 0; k < 16; k++)
        r[k] = _mm512_loadu_ps(src + (size_t)k * plane);
    tr16(r);
    if (bf16)
        for (int k = 0; k < 16; k++)
            _mm256_storeu_si256((__m256i *)((uint16_t *)d + (size_t)k * sx), bf16x16(r[k]));
    else
        for (int k = 0; k < 16; k++)
            _mm512_storeu_ps((float *)d + (size_t)k * sx, r[k]);
}

/* The reverse: 16 packed columns (g + col*sx) -> 16 channel rows
 * (y + k*plane), = or += , plus b[k] (b may be NULL). */
GE_AVX512 static void unpack_tile(float *y, size_t plane, const float *g, size_t sx, const float *b,
                                  int accumulate) {
    __m512 r[16];
    for (int k = 0; k < 16; k++)
        r[k] = _mm512_loadu_ps(g + (size_t)k * sx);
    tr16(r);
    for (int k = 0; k < 16; k++) {
        __m512 v = b ? _mm512_add_ps(r[k], _mm512_set1_ps(b[k])) : r[k];
        float *yk = y + (size_t)k * plane;
        if (accumulate) v = _mm512_add_ps(_mm512_loadu_ps(yk), v);
        _mm512_storeu_ps(yk, v);
    }
}
#define HAVE_TILES 1
#else
#define HAVE_TILES 0
static void pack_tile(void *d, int bf16, size_t sx, const float *src, size_t plane) {}
static void unpack_tile(float *y, size_t plane, const float *g, size_t sx, const float *b,
                        int accumulate) {}
#endif

/* Scalar packing of channels [c0, c1) (zeros from c on), grid columns [x0, x1). */
static void pack_cols(void *dst, const blk_layout *l, size_t base, const float *x, int i, int c,
                      int c0, int c1, int h, int w, int p, int ys, int x0, int x1) {
    size_t sx = l->sx;
    for (int t0 = x0; t0 < x1; t0 += TILE) {
        int t1 = t0 + TILE < x1 ? t0 + TILE : x1;
        for (int ch = c0; ch < c1; ch++) {
            size_t off = base + ch_off(l, ch);
            const float *src = ch < c ? x + (((size_t)i * c + ch) * h + ys) * w : NULL;
            if (l->bf16) {
                uint16_t *d = (uint16_t *)dst + off;
                for (int xx = t0; xx < t1; xx++)
                    d[xx * sx] = src ? to_bf16(src[reflect(xx - p, w)]) : 0;
            } else if (!src) {
                float *d = (float *)dst + off;
                for (int xx = t0; xx < t1; xx++)
                    d[xx * sx] = 0.f;
            } else {
                /* grid columns [p, p + w) are the image's: no reflection there */
                float *d = (float *)dst + off;
                int in0 = t0 > p ? t0 : p, in1 = t1 < p + w ? t1 : p + w;
                if (in1 < in0) in0 = in1 = t1;
                for (int xx = t0; xx < in0; xx++)
                    d[xx * sx] = src[reflect(xx - p, w)];
                for (int xx = in0; xx < in1; xx++)
                    d[xx * sx] = src[xx - p];
                for (int xx = in1; xx < t1; xx++)
                    d[xx * sx] = src[reflect(xx - p, w)];
            }
        }
    }
}

/* dst (layout l, grid (h+2p, w+2p), channels padded to a multiple of cb
 * with zeros) from x (n, c, h, w) fp32, reflection-padded by p. */
static void pack(void *dst, const blk_layout *l, const float *x, int n, int c, int h, int w,
                 int p) {
    int gh = h + 2 * p, gw = w + 2 * p, cpad = (c + l->cb - 1) / l->cb * l->cb;
    int rows = n * gh, tiles = HAVE_TILES && have_avx512 && group_contiguous(l);
    size_t esz = l->bf16 ? 2 : 4;
#pragma omp parallel for schedule(static) if ((size_t)rows * gw * cpad > 32768)
    for (int r = 0; r < rows; r++) {
        int i = r / gh, yy = r % gh, ys = reflect(yy - p, h);
        size_t base = (size_t)i * l->sn + (size_t)yy * l->sy;
        for (int c0 = 0; c0 < cpad; c0 += CGROUP) {
            int c1 = c0 + CGROUP < cpad ? c0 + CGROUP : cpad;
            if (!tiles || c0 + CGROUP > c) {
                pack_cols(dst, l, base, x, i, c, c0, c1, h, w, p, ys, 0, gw);
                continue;
            }
            int tail = p + w / 16 * 16; /* interior columns [p, tail) go by tiles */
            const float *src = x + (((size_t)i * c + c0) * h + ys) * w;
            for (int xs = p; xs < tail; xs += 16)
                pack_tile((char *)dst + (base + ch_off(l, c0) + xs * l->sx) * esz, l->bf16, l->sx,
                          src + (xs - p), (size_t)h * w);
            pack_cols(dst, l, base, x, i, c, c0, c1, h, w, p, ys, 0, p);
            pack_cols(dst, l, base, x, i, c, c0, c1, h, w, p, ys, tail, gw);
        }
    }
}

/* y (n, c, h, w) from src (layout l, fp32, grid (h+2p, w+2p)): the grid
 * folded back onto the image where p > 0 (the adjoint of the reflection
 * padding), then y = that + b[c] (accumulate 0) or y += that + b[c]. Each
 * thread owns whole rows of y; the border of the grid is added after the
 * interior, in a fixed order. */
static void unpack(float *y, const blk_layout *l, const void *src, int n, int c, int h, int w,
                   int p, const float *b, int accumulate) {
    int gh = h + 2 * p, gw = w + 2 * p;
    const float *s = src;
    size_t sx = l->sx;
    int rows = n * h, tiles = HAVE_TILES && have_avx512 && group_contiguous(l);
#pragma omp parallel for schedule(static) if ((size_t)rows * w * c > 32768)
    for (int r = 0; r < rows; r++) {
        int i = r / h, ty = r % h;
        const float *g = s + (size_t)i * l->sn; /* this sample's grid */
        for (int c0 = 0; c0 < c; c0 += CGROUP) {
            int c1 = c0 + CGROUP < c ? c0 + CGROUP : c;
            int x0 = 0;
            if (tiles && c1 - c0 == CGROUP) {
                float *yr = y + (((size_t)i * c + c0) * h + ty) * w;
                const float *row = g + ch_off(l, c0) + (size_t)(ty + p) * l->sy + p * sx;
                for (; x0 + 16 <= w; x0 += 16)
                    unpack_tile(yr + x0, (size_t)h * w, row + x0 * sx, sx, b ? b + c0 : NULL,
                                accumulate);
            }
            for (; x0 < w; x0 += TILE) {
                int x1 = x0 + TILE < w ? x0 + TILE : w;
                for (int ch = c0; ch < c1; ch++) {
                    float *yr = y + (((size_t)i * c + ch) * h + ty) * w;
                    const float *row = g + ch_off(l, ch) + (size_t)(ty + p) * l->sy + p * sx;
                    float bias = b ? b[ch] : 0.f;
                    if (accumulate)
                        for (int tx = x0; tx < x1; tx++)
                            yr[tx] += row[tx * sx] + bias;
                    else
                        for (int tx = x0; tx < x1; tx++)
                            yr[tx] = row[tx * sx] + bias;
                }
            }
        }
        if (!p) continue;
        for (int ch = 0; ch < c; ch++) {
            float *yr = y + (((size_t)i * c + ch) * h + ty) * w;
            const float *gc = g + ch_off(l, ch);
            const float *row = gc + (size_t)(ty + p) * l->sy;
            /* grid columns outside the image, on this row */
            for (int xx = 0; xx < gw; xx++) {
                if (xx == p) xx = w + p;
                if (xx >= gw) break;
                yr[reflect(xx - p, w)] += row[xx * sx];
            }
            /* grid rows outside the image that mirror onto row ty */
            for (int yy = 0; yy < gh; yy++) {
                if (yy == p) yy = h + p;
                if (yy >= gh) break;
                if (reflect(yy - p, h) != ty) continue;
                const float *er = gc + (size_t)yy * l->sy;
                for (int xx = 0; xx < gw; xx++)
                    yr[reflect(xx - p, w)] += er[xx * sx];
            }
        }
    }
}

/* ---- primitives ----------------------------------------------------------- */

static int md_any(dnnl_memory_desc_t *md, int d0, int d1, int d2, int d3, dnnl_data_type_t dt) {
    dnnl_dims_t dims = {d0, d1, d2, d3};
    return dnnl_memory_desc_init_by_tag(md, 4, dims, dt, dnnl_format_tag_any) == dnnl_success;
}

static int mem_of(dnnl_memory_t *m, const dnnl_memory_desc_t *md) {
    return dnnl_memory_create(m, md, engine, DNNL_MEMORY_NONE) == dnnl_success;
}

/* The Winograd forward's primitive descriptor: oneDNN lists F(2x2,3x3)
 * first, but F(4x4,3x3) (fewer multiplications, its weights transformed
 * once when they are kept) ran 1.0-1.8x faster on every VGG layer here; the
 * first one when there is no other. NULL if none. */
static dnnl_primitive_desc_t wino_fwd_pd(const dnnl_convolution_desc_t *fd,
                                         dnnl_primitive_attr_t attr) {
    dnnl_primitive_desc_iterator_t it = NULL;
    dnnl_primitive_desc_t first = NULL, pick = NULL;
    if (dnnl_primitive_desc_iterator_create(&it, fd, attr, engine, NULL) != dnnl_success)
        return NULL;
    do {
        dnnl_primitive_desc_t c = dnnl_primitive_desc_iterator_fetch(it);
        const char *nm = NULL;
        if (!c) break;
        if (dnnl_primitive_desc_query(c, dnnl_query_impl_info_str, 0, &nm) == dnnl_success && nm &&
            strstr(nm, "wino") && !strstr(nm, "2x3")) {
            pick = c;
            break;
        }
        if (!first)
            first = c;
        else
            dnnl_primitive_desc_destroy(c);
    } while (dnnl_primitive_desc_iterator_next(it) == dnnl_success);
    dnnl_primitive_desc_iterator_destroy(it);
    if (pick) {
        if (first) dnnl_primitive_desc_destroy(first);
        return pick;
    }
    return first;
}

/* Builds e's primitive, weight reorder and memory objects; e->ok = 1 on success. */
static void entry_create(dconv_entry *e) {
    const ge_dconv_shape *s = &e->s;
    int refl = s->pad_mode == GE_PAD_REFLECT && s->pad > 0;
    int zp = refl ? 0 : s->pad;
    e->ppad = refl ? s->pad : 0;
    e->ih = s->h + 2 * e->ppad;
    e->iw = s->w + 2 * e->ppad;
    e->oh = (s->h + 2 * s->pad - s->kh) / s->stride + 1;
    e->ow = (s->w + 2 * s->pad - s->kw) / s->stride + 1;
    if (e->oh < 1 || e->ow < 1) return;
    dnnl_data_type_t at = e->bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t src, wei, dst, src32, dst32, wei32, user_w;
    if (!md_any(&src, s->n, s->c_in, e->ih, e->iw, at) ||
        !md_any(&src32, s->n, s->c_in, e->ih, e->iw, dnnl_f32) ||
        !md_any(&wei, s->c_out, s->c_in, s->kh, s->kw, at) ||
        !md_any(&wei32, s->c_out, s->c_in, s->kh, s->kw, dnnl_f32) ||
        !md_any(&dst, s->n, s->c_out, e->oh, e->ow, at) ||
        !md_any(&dst32, s->n, s->c_out, e->oh, e->ow, dnnl_f32))
        return;
    dnnl_dims_t wdims = {s->c_out, s->c_in, s->kh, s->kw};
    if (dnnl_memory_desc_init_by_tag(&user_w, 4, wdims, dnnl_f32,
                                     s->w_iohw ? dnnl_iohw : dnnl_oihw) != dnnl_success)
        return;
    dnnl_dims_t strides = {s->stride, s->stride}, pl = {zp, zp}, pr = {zp, zp};

    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t hint = NULL, pd = NULL, rpd = NULL;
    dnnl_primitive_attr_t rattr = NULL;
    dnnl_post_ops_t po = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return;
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);

    dnnl_convolution_desc_t fd, cd;
    dnnl_alg_kind_t alg = e->wino ? dnnl_convolution_winograd : dnnl_convolution_direct;
    /* the forward (also the hint the backward passes need) */
    if (dnnl_convolution_forward_desc_init(
            &fd, e->pass == GE_DCONV_FWD ? dnnl_forward_inference : dnnl_forward_training,
            alg, &src, &wei, NULL, e->pass == GE_DCONV_FWD ? &dst32 : &dst,
            strides, pl, pr) != dnnl_success)
        goto done;
    if (e->wino && e->pass == GE_DCONV_FWD) {
        if (!(hint = wino_fwd_pd(&fd, attr))) goto done;
    } else if (dnnl_primitive_desc_create(&hint, &fd, e->pass == GE_DCONV_FWD ? attr : NULL,
                                          engine, NULL) != dnnl_success) {
        goto done;
    }
    if (e->pass == GE_DCONV_FWD) {
        pd = hint;
        hint = NULL;
    } else if (e->pass == GE_DCONV_BWD_DATA) {
        if (dnnl_convolution_backward_data_desc_init(&cd, alg, &src32, &wei,
                                                     &dst, strides, pl, pr) != dnnl_success ||
            dnnl_primitive_desc_create(&pd, &cd, attr, engine, hint) != dnnl_success)
            goto done;
    } else {
        if (dnnl_convolution_backward_weights_desc_init(&cd, alg, &src, &wei32,
                                                        NULL, &dst, strides, pl,
                                                        pr) != dnnl_success ||
            dnnl_primitive_desc_create(&pd, &cd, attr, engine, hint) != dnnl_success)
            goto done;
    }
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl)
        goto done;
    strncpy(e->impl, impl, sizeof e->impl - 1);
    if (strstr(impl, "ref")) goto done;

    const dnnl_memory_desc_t *a_md, *b_md, *w_md, *sp_md;
    if (e->pass == GE_DCONV_FWD) {
        a_md = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
        b_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
        w_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    } else if (e->pass == GE_DCONV_BWD_DATA) {
        a_md = dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0);
        b_md = dnnl_primitive_desc_query_md(pd, dnnl_query_diff_src_md, 0);
        w_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    } else {
        a_md = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
        b_md = dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0);
        w_md = dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 0);
    }
    sp_md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (!a_md || !b_md || !w_md || !layout_of(&e->la, a_md) || !layout_of(&e->lb, b_md)) goto done;
    /* outputs the unpacker reads must be fp32 */
    if (e->pass != GE_DCONV_BWD_WEIGHTS && e->lb.bf16) goto done;
    e->a_bytes = dnnl_memory_desc_get_size(a_md);
    e->b_bytes = dnnl_memory_desc_get_size(b_md);
    e->w_bytes = dnnl_memory_desc_get_size(w_md);
    e->sp_bytes = sp_md ? dnnl_memory_desc_get_size(sp_md) : 0;
    if (!mem_of(&e->m_a, a_md) || !mem_of(&e->m_b, b_md) || !mem_of(&e->m_w, w_md) ||
        !mem_of(&e->m_uw, &user_w))
        goto done;
    if (e->sp_bytes && !mem_of(&e->m_sp, sp_md)) goto done;

    /* weights: user oihw fp32 -> primitive layout, or back with += */
    if (e->pass == GE_DCONV_BWD_WEIGHTS) {
        if (dnnl_primitive_attr_create(&rattr) != dnnl_success ||
            dnnl_post_ops_create(&po) != dnnl_success ||
            dnnl_post_ops_append_sum(po, 1.f) != dnnl_success ||
            dnnl_primitive_attr_set_post_ops(rattr, po) != dnnl_success ||
            dnnl_reorder_primitive_desc_create(&rpd, w_md, engine, &user_w, engine, rattr) !=
                dnnl_success)
            goto done;
    } else if (dnnl_reorder_primitive_desc_create(&rpd, &user_w, engine, w_md, engine, NULL) !=
               dnnl_success) {
        goto done;
    }
    if (dnnl_primitive_create(&e->prim, pd) != dnnl_success ||
        dnnl_primitive_create(&e->wre, rpd) != dnnl_success)
        goto done;
    e->ok = 1;
done:
    if (hint) dnnl_primitive_desc_destroy(hint);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (po) dnnl_post_ops_destroy(po);
    if (rattr) dnnl_primitive_attr_destroy(rattr);
    dnnl_primitive_attr_destroy(attr);
}

static int same_shape(const ge_dconv_shape *a, const ge_dconv_shape *b) {
    return a->n == b->n && a->c_in == b->c_in && a->h == b->h && a->w == b->w &&
           a->c_out == b->c_out && a->kh == b->kh && a->kw == b->kw && a->stride == b->stride &&
           a->pad == b->pad && (a->pad == 0 || a->pad_mode == b->pad_mode) &&
           a->w_iohw == b->w_iohw && a->w_const == b->w_const && a->wino == b->wino;
}

static int valid_shape(const ge_dconv_shape *s) {
    return s->n > 0 && s->c_in > 0 && s->h > 0 && s->w > 0 && s->c_out > 0 && s->kh > 0 &&
           s->kw > 0 && s->stride > 0 && s->pad >= 0 &&
           (s->pad_mode == GE_PAD_ZERO || s->pad_mode == GE_PAD_REFLECT) &&
           (s->pad_mode != GE_PAD_REFLECT || (s->pad < s->h && s->pad < s->w));
}

/* The ready entry for (s, pass) at the current precision and thread count,
 * or NULL. Called with the lock held. */
static dconv_entry *lookup(const ge_dconv_shape *s, int pass) {
    read_env();
    if (!enabled || !valid_shape(s)) return NULL;
    if (!engine) {
#if HAVE_TILES
        have_avx512 = __builtin_cpu_supports("avx512f");
#endif
        if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) return NULL;
        if (dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success) {
            dnnl_engine_destroy(engine);
            engine = NULL;
            return NULL;
        }
    }
    int bf16 = ge_use_bf16(), nthr = omp_get_max_threads();
    int wino = wino_wanted(s, pass, bf16);
    for (dconv_entry *e = entries; e; e = e->next)
        if (e->pass == pass && e->bf16 == bf16 && e->nthr == nthr && e->wino == wino &&
            same_shape(&e->s, s))
            return e->ok ? e : NULL;
    dconv_entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->s = *s;
    if (!s->pad) e->s.pad_mode = GE_PAD_ZERO;
    e->pass = pass;
    e->bf16 = bf16;
    e->nthr = nthr;
    e->wino = wino;
    entry_create(e);
    if (!e->ok && wino) { /* no Winograd kernel here: the direct one, under the same key */
        dconv_entry *d = calloc(1, sizeof *d);
        if (d) {
            d->s = e->s, d->pass = pass, d->bf16 = bf16, d->nthr = nthr;
            entry_create(d);
            d->wino = wino; /* the key; the primitive is direct */
            entry_free(e);
            e = d;
        }
    }
    if (!e->ok) { /* remember the failure (and its name), drop what was built */
        dconv_entry *f = calloc(1, sizeof *f);
        if (!f) {
            entry_free(e);
            return NULL;
        }
        f->s = e->s, f->pass = pass, f->bf16 = bf16, f->nthr = nthr, f->wino = wino;
        memcpy(f->impl, e->impl, sizeof f->impl);
        entry_free(e);
        e = f;
    }
    e->next = entries;
    entries = e;
    return e->ok ? e : NULL;
}

static size_t up64(size_t b) {
    return (b + 63) & ~(size_t)63;
}

/* Points e's memory objects into the arena (grown if needed): a, b, w, sp. */
static int bind(dconv_entry *e) {
    size_t need = up64(e->a_bytes) + up64(e->b_bytes) + up64(e->w_bytes) + up64(e->sp_bytes);
    if (need > arena_bytes) {
        free(arena);
        arena_bytes = 0;
        arena = aligned_alloc(64, need);
        if (!arena) return 0;
        arena_bytes = need;
    }
    unsigned char *p = arena;
    dnnl_memory_set_data_handle(e->m_a, p);
    p += up64(e->a_bytes);
    dnnl_memory_set_data_handle(e->m_b, p);
    p += up64(e->b_bytes);
    dnnl_memory_set_data_handle(e->m_w, p);
    p += up64(e->w_bytes);
    if (e->m_sp) dnnl_memory_set_data_handle(e->m_sp, p);
    return 1;
}

static void *handle(dnnl_memory_t m) {
    void *h = NULL;
    dnnl_memory_get_data_handle(m, &h);
    return h;
}

static int run(dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args) {
    return dnnl_primitive_execute(p, stream, nargs, args) == dnnl_success &&
           dnnl_stream_wait(stream) == dnnl_success;
}

/* Weights user -> primitive layout (forward, backward-data): into the arena,
 * or for w_const problems into the entry's own buffer, once per pointer. */
static int load_weights(dconv_entry *e, const float *w) {
    if (e->s.w_const) {
        if (!e->wpack) {
            e->wpack = aligned_alloc(64, up64(e->w_bytes));
            e->wpack_from = NULL;
        }
        if (e->wpack) {
            dnnl_memory_set_data_handle(e->m_w, e->wpack);
            if (e->wpack_from == w) return 1;
            e->wpack_from = NULL;
        }
    }
    dnnl_memory_set_data_handle(e->m_uw, (void *)w);
    dnnl_exec_arg_t a[] = {{DNNL_ARG_FROM, e->m_uw}, {DNNL_ARG_TO, e->m_w}};
    if (!run(e->wre, 2, a)) return 0;
    if (e->s.w_const && e->wpack) e->wpack_from = w;
    return 1;
}

void ge_dconv_forget(const float *w) {
    pthread_mutex_lock(&lock);
    for (dconv_entry *e = entries; e; e = e->next)
        if (e->wpack_from == w) e->wpack_from = NULL;
    pthread_mutex_unlock(&lock);
}

/* A batch that gets Winograd runs one sample per call (their blocking, and
 * so the rounding, depends on the batch size). Element counts of one
 * sample's input and output. */
static int wino_split(const ge_dconv_shape *s, int pass, size_t *in, size_t *out) {
    pthread_mutex_lock(&lock);
    read_env();
    int split = s->n > 1 && enabled && valid_shape(s) && wino_wanted(s, pass, ge_use_bf16());
    pthread_mutex_unlock(&lock);
    if (!split) return 0;
    int oh = (s->h + 2 * s->pad - s->kh) / s->stride + 1;
    int ow = (s->w + 2 * s->pad - s->kw) / s->stride + 1;
    *in = (size_t)s->c_in * s->h * s->w;
    *out = (size_t)s->c_out * oh * ow;
    return 1;
}

int ge_dconv_forward(float *y, const float *x, const float *w, const float *b,
                     const ge_dconv_shape *s, int accumulate) {
    size_t xs, ys;
    if (wino_split(s, GE_DCONV_FWD, &xs, &ys)) {
        ge_dconv_shape s1 = *s;
        s1.n = 1;
        for (int i = 0; i < s->n; i++) /* only the first call can decline (same entry after) */
            if (!ge_dconv_forward(y + i * ys, x + i * xs, w, b, &s1, accumulate)) return 0;
        return 1;
    }
    int done = 0;
    pthread_mutex_lock(&lock);
    dconv_entry *e = lookup(s, GE_DCONV_FWD);
    if (e && bind(e)) {
        pack(handle(e->m_a), &e->la, x, s->n, s->c_in, s->h, s->w, e->ppad);
        dnnl_exec_arg_t a[] = {{DNNL_ARG_SRC, e->m_a},
                               {DNNL_ARG_WEIGHTS, e->m_w},
                               {DNNL_ARG_DST, e->m_b},
                               {DNNL_ARG_SCRATCHPAD, e->m_sp}};
        if (load_weights(e, w) && run(e->prim, e->m_sp ? 4 : 3, a)) {
            unpack(y, &e->lb, handle(e->m_b), s->n, s->c_out, e->oh, e->ow, 0, b, accumulate);
            done = 1;
        }
    }
    pthread_mutex_unlock(&lock);
    return done;
}

int ge_dconv_backward_data(float *dx, const float *dy, const float *w, const float *b,
                           const ge_dconv_shape *s, int accumulate) {
    size_t xs, ys;
    if (wino_split(s, GE_DCONV_BWD_DATA, &xs, &ys)) {
        ge_dconv_shape s1 = *s;
        s1.n = 1;
        for (int i = 0; i < s->n; i++)
            if (!ge_dconv_backward_data(dx + i * xs, dy + i * ys, w, b, &s1, accumulate)) return 0;
        return 1;
    }
    int done = 0;
    pthread_mutex_lock(&lock);
    dconv_entry *e = lookup(s, GE_DCONV_BWD_DATA);
    if (e && bind(e)) {
        pack(handle(e->m_a), &e->la, dy, s->n, s->c_out, e->oh, e->ow, 0);
        dnnl_exec_arg_t a[] = {{DNNL_ARG_DIFF_DST, e->m_a},
                               {DNNL_ARG_WEIGHTS, e->m_w},
                               {DNNL_ARG_DIFF_SRC, e->m_b},
                               {DNNL_ARG_SCRATCHPAD, e->m_sp}};
        if (load_weights(e, w) && run(e->prim, e->m_sp ? 4 : 3, a)) {
            unpack(dx, &e->lb, handle(e->m_b), s->n, s->c_in, s->h, s->w, e->ppad, b, accumulate);
            done = 1;
        }
    }
    pthread_mutex_unlock(&lock);
    return done;
}

int ge_dconv_backward_weights(float *dw, const float *dy, const float *x, const ge_dconv_shape *s) {
    int done = 0;
    pthread_mutex_lock(&lock);
    dconv_entry *e = lookup(s, GE_DCONV_BWD_WEIGHTS);
    if (e && bind(e)) {
        pack(handle(e->m_a), &e->la, x, s->n, s->c_in, s->h, s->w, e->ppad);
        pack(handle(e->m_b), &e->lb, dy, s->n, s->c_out, e->oh, e->ow, 0);
        dnnl_exec_arg_t a[] = {{DNNL_ARG_SRC, e->m_a},
                               {DNNL_ARG_DIFF_DST, e->m_b},
                               {DNNL_ARG_DIFF_WEIGHTS, e->m_w},
                               {DNNL_ARG_SCRATCHPAD, e->m_sp}};
        dnnl_memory_set_data_handle(e->m_uw, dw);
        dnnl_exec_arg_t r[] = {{DNNL_ARG_FROM, e->m_w}, {DNNL_ARG_TO, e->m_uw}};
        done = run(e->prim, e->m_sp ? 4 : 3, a) && run(e->wre, 2, r);
    }
    pthread_mutex_unlock(&lock);
    return done;
}

const char *ge_dconv_impl(const ge_dconv_shape *s, int pass) {
    pthread_mutex_lock(&lock);
    dconv_entry *e = lookup(s, pass);
    pthread_mutex_unlock(&lock);
    return e ? e->impl : NULL;
}
