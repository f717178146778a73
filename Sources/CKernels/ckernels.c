#include "ckernels.h"
#include "dispatch.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef float v8f __attribute__((vector_size(32), aligned(4)));
typedef int32_t v8i __attribute__((vector_size(32), aligned(4)));
typedef float v16f __attribute__((vector_size(64), aligned(4)));
typedef int32_t v16i __attribute__((vector_size(64), aligned(4)));

// e^x on one vector, instantiated per vector type and instruction set.
#define CK_EXP(NAME, TARGET, VEC, IVEC)                                                     \
    /* e^x: Cody-Waite reduction and a degree-6 polynomial; relative error < 2e-7. */        \
    TARGET static inline __attribute__((always_inline)) void NAME(VEC *value) {              \
        VEC x = __builtin_elementwise_min(__builtin_elementwise_max(*value,                  \
                    ((VEC){0} + (float)(-87.33f))), ((VEC){0} + (float)(88.7f)));                  \
        /* Adding 1.5*2^23 rounds to an integer left in the low mantissa bits. */            \
        VEC shifted = x * 1.44269504f + 12582912.0f;                                         \
        VEC n = shifted - 12582912.0f;                                                       \
        VEC r = x - n * 0.693145751953125f - n * 1.428606765330187e-6f;                      \
        VEC p = r * 1.98756915e-4f + 1.3981999507e-3f;                                       \
        p = p * r + 8.3334519073e-3f;                                                        \
        p = p * r + 4.1665795894e-2f;                                                        \
        p = p * r + 1.6666665459e-1f;                                                        \
        p = p * r + 5.0000001201e-1f;                                                        \
        p = p * r * r + r + 1.0f;                                                            \
        /* 2^(n-1) * 2: n can reach 128 near the upper clamp. */                            \
        IVEC bits = ((IVEC)shifted - 0x4B400000 + 126) << 23;                                \
        *value = p * (VEC)bits * 2.0f;                                                       \
    }

// The row kernels, written once on LANES-float vectors; each instantiation below compiles
// them for one instruction set (VEC is v8f or v16f).
#define CK_KERNELS(SUFFIX, TARGET, VEC, IVEC, LANES)                                         \
    CK_EXP(ck_exp_##SUFFIX, TARGET, VEC, IVEC)                                               \
    TARGET static float ck_exp_row_##SUFFIX(float *row, size_t width) {                   \
        size_t full = width - width % LANES;                                                 \
        VEC vmax = ((VEC){0} + (float)(-INFINITY));                                             \
        for (size_t j = 0; j < full; j += LANES) {                                           \
            VEC v;                                                                           \
            memcpy(&v, row + j, sizeof v);                                                   \
            vmax = __builtin_elementwise_max(vmax, v);                                       \
        }                                                                                    \
        float maximum = -INFINITY;                                                           \
        for (int lane = 0; lane < LANES; lane++) maximum = fmaxf(maximum, vmax[lane]);       \
        for (size_t j = full; j < width; j++) maximum = fmaxf(maximum, row[j]);              \
        VEC vsum = ((VEC){0} + (float)(0));                                                     \
        for (size_t j = 0; j < full; j += LANES) {                                           \
            VEC v;                                                                           \
            memcpy(&v, row + j, sizeof v);                                                   \
            v -= maximum;                                                                    \
            ck_exp_##SUFFIX(&v);                                                             \
            memcpy(row + j, &v, sizeof v);                                                   \
            vsum += v;                                                                       \
        }                                                                                    \
        float sum = 0;                                                                       \
        for (int lane = 0; lane < LANES; lane++) sum += vsum[lane];                          \
        if (full < width) {                                                                  \
            VEC tail = ((VEC){0} + (float)(0));                                                 \
            for (size_t j = full; j < width; j++) tail[j - full] = row[j] - maximum;         \
            ck_exp_##SUFFIX(&tail);                                                          \
            for (size_t j = full; j < width; j++) {                                          \
                row[j] = tail[j - full];                                                     \
                sum += tail[j - full];                                                       \
            }                                                                                \
        }                                                                                    \
        return sum;                                                                          \
    }                                                                                        \
                                                                                             \
    TARGET static void ck_softmax_row_##SUFFIX(float *row, size_t width) {                   \
        size_t full = width - width % LANES;                                                 \
        float inverse = 1.0f / ck_exp_row_##SUFFIX(row, width);                              \
        for (size_t j = 0; j < full; j += LANES) {                                           \
            VEC v;                                                                           \
            memcpy(&v, row + j, sizeof v);                                                   \
            v *= inverse;                                                                    \
            memcpy(row + j, &v, sizeof v);                                                   \
        }                                                                                    \
        for (size_t j = full; j < width; j++) row[j] *= inverse;                             \
    }                                                                                        \
                                                                                             \
    TARGET static void ck_silu_##SUFFIX(const float *x, float *y, size_t count, float beta) { \
        size_t full = count - count % LANES;                                                 \
        for (size_t j = 0; j < full; j += LANES) {                                           \
            VEC v, e;                                                                        \
            memcpy(&v, x + j, sizeof v);                                                     \
            e = -(v * beta);                                                                 \
            ck_exp_##SUFFIX(&e);                                                             \
            v = v * (1.0f / (1.0f + e));                                                     \
            memcpy(y + j, &v, sizeof v);                                                     \
        }                                                                                    \
        if (full < count) {                                                                  \
            VEC v = ((VEC){0} + (float)(0)), e;                                              \
            for (size_t j = full; j < count; j++) v[j - full] = x[j];                        \
            e = -(v * beta);                                                                 \
            ck_exp_##SUFFIX(&e);                                                             \
            v = v * (1.0f / (1.0f + e));                                                     \
            for (size_t j = full; j < count; j++) y[j] = v[j - full];                        \
        }                                                                                    \
    }                                                                                        \
                                                                                             \
    /* a·gelu(g), gelu(g) = g/2·(1 + erf(g/√2)), erf from the Chebyshev fit of erfc */      \
    /* (Numerical Recipes' erfcc, fractional error < 1.2e-7).                        */       \
    TARGET static inline __attribute__((always_inline)) void ck_gelu_##SUFFIX(VEC *value) {   \
        VEC g = *value, x = g * 0.70710677f;                                                 \
        VEC z = __builtin_elementwise_abs(x);                                                \
        VEC t = 1.0f / (1.0f + 0.5f * z);                                                    \
        VEC p = t * 0.17087277f - 0.82215223f;                                               \
        p = p * t + 1.48851587f;                                                             \
        p = p * t - 1.13520398f;                                                             \
        p = p * t + 0.27886807f;                                                             \
        p = p * t - 0.18628806f;                                                             \
        p = p * t + 0.09678418f;                                                             \
        p = p * t + 0.37409196f;                                                             \
        p = p * t + 1.00002368f;                                                             \
        p = p * t - 1.26551223f;                                                             \
        VEC e = p - z * z;                                                                   \
        ck_exp_##SUFFIX(&e);                                                                 \
        VEC magnitude = 1.0f - t * e;                                                        \
        VEC erf = __builtin_elementwise_copysign(magnitude, x);                              \
        *value = 0.5f * g * (1.0f + erf);                                                    \
    }                                                                                        \
    TARGET static void ck_geglu_##SUFFIX(const float *a, const float *g, float *y, size_t count) { \
        size_t full = count - count % LANES;                                                 \
        for (size_t j = 0; j < full; j += LANES) {                                           \
            VEC v, w = ((VEC){0} + 1.0f);                                                    \
            memcpy(&v, g + j, sizeof v);                                                     \
            if (a) memcpy(&w, a + j, sizeof w);                                              \
            ck_gelu_##SUFFIX(&v);                                                            \
            v *= w;                                                                          \
            memcpy(y + j, &v, sizeof v);                                                     \
        }                                                                                    \
        if (full < count) {                                                                  \
            VEC v = ((VEC){0} + (float)(0)), w = ((VEC){0} + 1.0f);                          \
            for (size_t j = full; j < count; j++) {                                          \
                v[j - full] = g[j];                                                          \
                if (a) w[j - full] = a[j];                                                   \
            }                                                                                \
            ck_gelu_##SUFFIX(&v);                                                            \
            v *= w;                                                                          \
            for (size_t j = full; j < count; j++) y[j] = v[j - full];                        \
        }                                                                                    \
    }                                                                                        \

CK_KERNELS(baseline, , v8f, v8i, 8)
#if CK_X86
CK_KERNELS(avx2, __attribute__((target("avx2,fma"))), v8f, v8i, 8)
CK_KERNELS(avx512, __attribute__((target("avx512f,avx512dq,avx2,fma"))), v16f, v16i, 16)
#endif

// Attention of many queries over few keys (cross-attention to 77 text tokens), where GEMMs as
// thin as 77×40 run far below the sgemm rate. Sixteen queries at a time, held transposed: a
// vector is one key's scores (or one output channel) for eight queries, so the softmax runs
// down whole vectors with no horizontal reductions or padding lanes, and both products have
// the same register block: six keys (or channels) by sixteen queries, twelve FMAs for two
// vector loads and six broadcasts. 8×8 transposes bring queries in and results out.
#define CK_SHORT(SUFFIX, TARGET)                                                             \
    CK_EXP(ck_exp8_##SUFFIX, TARGET, v8f, v8i)                                               \
    TARGET static inline __attribute__((always_inline)) void ck_transpose8_##SUFFIX(v8f *r) { \
        v8f t0 = __builtin_shufflevector(r[0], r[1], 0, 8, 1, 9, 4, 12, 5, 13);              \
        v8f t1 = __builtin_shufflevector(r[0], r[1], 2, 10, 3, 11, 6, 14, 7, 15);            \
        v8f t2 = __builtin_shufflevector(r[2], r[3], 0, 8, 1, 9, 4, 12, 5, 13);              \
        v8f t3 = __builtin_shufflevector(r[2], r[3], 2, 10, 3, 11, 6, 14, 7, 15);            \
        v8f t4 = __builtin_shufflevector(r[4], r[5], 0, 8, 1, 9, 4, 12, 5, 13);              \
        v8f t5 = __builtin_shufflevector(r[4], r[5], 2, 10, 3, 11, 6, 14, 7, 15);            \
        v8f t6 = __builtin_shufflevector(r[6], r[7], 0, 8, 1, 9, 4, 12, 5, 13);              \
        v8f t7 = __builtin_shufflevector(r[6], r[7], 2, 10, 3, 11, 6, 14, 7, 15);            \
        v8f u0 = __builtin_shufflevector(t0, t2, 0, 1, 8, 9, 4, 5, 12, 13);                  \
        v8f u1 = __builtin_shufflevector(t0, t2, 2, 3, 10, 11, 6, 7, 14, 15);                \
        v8f u2 = __builtin_shufflevector(t1, t3, 0, 1, 8, 9, 4, 5, 12, 13);                  \
        v8f u3 = __builtin_shufflevector(t1, t3, 2, 3, 10, 11, 6, 7, 14, 15);                \
        v8f u4 = __builtin_shufflevector(t4, t6, 0, 1, 8, 9, 4, 5, 12, 13);                  \
        v8f u5 = __builtin_shufflevector(t4, t6, 2, 3, 10, 11, 6, 7, 14, 15);                \
        v8f u6 = __builtin_shufflevector(t5, t7, 0, 1, 8, 9, 4, 5, 12, 13);                  \
        v8f u7 = __builtin_shufflevector(t5, t7, 2, 3, 10, 11, 6, 7, 14, 15);                \
        r[0] = __builtin_shufflevector(u0, u4, 0, 1, 2, 3, 8, 9, 10, 11);                    \
        r[4] = __builtin_shufflevector(u0, u4, 4, 5, 6, 7, 12, 13, 14, 15);                  \
        r[1] = __builtin_shufflevector(u1, u5, 0, 1, 2, 3, 8, 9, 10, 11);                    \
        r[5] = __builtin_shufflevector(u1, u5, 4, 5, 6, 7, 12, 13, 14, 15);                  \
        r[2] = __builtin_shufflevector(u2, u6, 0, 1, 2, 3, 8, 9, 10, 11);                    \
        r[6] = __builtin_shufflevector(u2, u6, 4, 5, 6, 7, 12, 13, 14, 15);                  \
        r[3] = __builtin_shufflevector(u3, u7, 0, 1, 2, 3, 8, 9, 10, 11);                    \
        r[7] = __builtin_shufflevector(u3, u7, 4, 5, 6, 7, 12, 13, 14, 15);                  \
    }                                                                                        \
    /* dst[m*16 + lanes] += Σ_i src[i*16 + lanes] · w[m*wm + i*wi] for m < 6 (or < count, */   \
    /* one at a time, when fewer than six exist): both products' inner loop.             */   \
    TARGET static inline __attribute__((always_inline)) void ck_block6_##SUFFIX(           \
        const float *src, size_t count, const float *w, size_t wm, size_t wi, size_t len,    \
        float *dst) {                                                                        \
        size_t m0 = 0;                                                                       \
        for (; count >= 6 && m0 < count; m0 += 6) {                                          \
            if (m0 + 6 > count) m0 = count - 6;                                              \
            v8f a[6], b[6];                                                                  \
            for (int m = 0; m < 6; m++) a[m] = b[m] = (v8f){0};                              \
            const float *wr = w + m0 * wm;                                                   \
            for (size_t i = 0; i < len; i++) {                                               \
                v8f x, y;                                                                    \
                memcpy(&x, src + i * 16, sizeof x);                                          \
                memcpy(&y, src + i * 16 + 8, sizeof y);                                      \
                for (int m = 0; m < 6; m++) {                                                \
                    float s = wr[m * wm + i * wi];                                           \
                    a[m] += x * s;                                                           \
                    b[m] += y * s;                                                           \
                }                                                                            \
            }                                                                                \
            for (int m = 0; m < 6; m++) {                                                    \
                memcpy(dst + (m0 + m) * 16, &a[m], sizeof(v8f));                             \
                memcpy(dst + (m0 + m) * 16 + 8, &b[m], sizeof(v8f));                         \
            }                                                                                \
            if (m0 + 6 == count) return;                                                     \
        }                                                                                    \
        for (; m0 < count; m0++) {                                                           \
            v8f a = (v8f){0}, b = (v8f){0}, x, y;                                            \
            for (size_t i = 0; i < len; i++) {                                               \
                memcpy(&x, src + i * 16, sizeof x);                                          \
                memcpy(&y, src + i * 16 + 8, sizeof y);                                      \
                a += x * w[m0 * wm + i * wi];                                                \
                b += y * w[m0 * wm + i * wi];                                                \
            }                                                                                \
            memcpy(dst + m0 * 16, &a, sizeof a);                                             \
            memcpy(dst + m0 * 16 + 8, &b, sizeof b);                                         \
        }                                                                                    \
    }                                                                                        \
    TARGET static void ck_attention_short_##SUFFIX(                                          \
        const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv,   \
        float *out, size_t ldo, size_t rows, size_t nk, size_t d, size_t dv, float scale,     \
        float *scratch) {                                                                    \
        float *qt = scratch, *st = qt + d * 16, *ot = st + nk * 16;                          \
        for (size_t r0 = 0; r0 < rows; r0 += 16) {                                           \
            size_t n = rows - r0 < 16 ? rows - r0 : 16;                                      \
            /* Queries in, transposed and scaled (rows past the end repeat the last). */     \
            for (size_t half = 0; half < 16; half += 8) {                                    \
                size_t c = 0;                                                                \
                for (; c + 8 <= d; c += 8) {                                                 \
                    v8f block[8];                                                            \
                    for (size_t r = 0; r < 8; r++) {                                         \
                        size_t row = half + r < n ? half + r : n - 1;                        \
                        memcpy(&block[r], q + (r0 + row) * ldq + c, sizeof(v8f));            \
                    }                                                                        \
                    ck_transpose8_##SUFFIX(block);                                           \
                    for (size_t i = 0; i < 8; i++) {                                         \
                        block[i] *= scale;                                                   \
                        memcpy(qt + (c + i) * 16 + half, &block[i], sizeof(v8f));            \
                    }                                                                        \
                }                                                                            \
                for (; c < d; c++)                                                           \
                    for (size_t r = 0; r < 8; r++) {                                         \
                        size_t row = half + r < n ? half + r : n - 1;                        \
                        qt[c * 16 + half + r] = q[(r0 + row) * ldq + c] * scale;             \
                    }                                                                        \
            }                                                                                \
            ck_block6_##SUFFIX(qt, nk, k, ldk, 1, d, st);                                    \
            v8f m0 = (v8f){0} + (float)(-INFINITY), m1 = m0, s0 = (v8f){0}, s1 = (v8f){0};   \
            for (size_t j = 0; j < nk; j++) {                                                \
                v8f x, y;                                                                    \
                memcpy(&x, st + j * 16, sizeof x);                                           \
                memcpy(&y, st + j * 16 + 8, sizeof y);                                       \
                m0 = __builtin_elementwise_max(m0, x);                                       \
                m1 = __builtin_elementwise_max(m1, y);                                       \
            }                                                                                \
            for (size_t j = 0; j < nk; j++) {                                                \
                v8f x, y;                                                                    \
                memcpy(&x, st + j * 16, sizeof x);                                           \
                memcpy(&y, st + j * 16 + 8, sizeof y);                                       \
                x -= m0;                                                                     \
                y -= m1;                                                                     \
                ck_exp8_##SUFFIX(&x);                                                        \
                ck_exp8_##SUFFIX(&y);                                                        \
                s0 += x;                                                                     \
                s1 += y;                                                                     \
                memcpy(st + j * 16, &x, sizeof x);                                           \
                memcpy(st + j * 16 + 8, &y, sizeof y);                                       \
            }                                                                                \
            float inverse[16];                                                               \
            s0 = 1.0f / s0;                                                                  \
            s1 = 1.0f / s1;                                                                  \
            memcpy(inverse, &s0, sizeof s0);                                                 \
            memcpy(inverse + 8, &s1, sizeof s1);                                             \
            ck_block6_##SUFFIX(st, dv, v, 1, ldv, nk, ot);                                   \
            /* Results out, transposed back and divided by each query's softmax sum. */      \
            for (size_t half = 0; half < n; half += 8) {                                     \
                size_t c = 0;                                                                \
                for (; c + 8 <= dv; c += 8) {                                                \
                    v8f block[8];                                                            \
                    for (size_t i = 0; i < 8; i++) memcpy(&block[i], ot + (c + i) * 16 + half, sizeof(v8f)); \
                    ck_transpose8_##SUFFIX(block);                                           \
                    for (size_t r = 0; r < 8 && half + r < n; r++) {                         \
                        block[r] *= inverse[half + r];                                       \
                        memcpy(out + (r0 + half + r) * ldo + c, &block[r], sizeof(v8f));     \
                    }                                                                        \
                }                                                                            \
                for (; c < dv; c++)                                                          \
                    for (size_t r = 0; r < 8 && half + r < n; r++)                           \
                        out[(r0 + half + r) * ldo + c] = ot[c * 16 + half + r] * inverse[half + r]; \
            }                                                                                \
        }                                                                                    \
    }

CK_SHORT(baseline, )
#if CK_X86
CK_SHORT(avx2, __attribute__((target("avx2,fma"))))
CK_SHORT(avx512, __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma"))))
#endif

// Queries per block of the long-key attention kernel (its score buffer is this many rows).
#define CK_FLASH_ROWS 16
#define CK_SUFFIX baseline
#define CK_TARGET
#define CK_QR 2
#define CK_PR 1
#include "attention_rows.h"
#if CK_X86
#define CK_SUFFIX avx2
#define CK_TARGET __attribute__((target("avx2,fma")))
#define CK_QR 4
#define CK_PR 2
#include "attention_rows.h"
// 256-bit vectors with AVX-512VL's 32 registers: larger register blocks, same vector width.
#define CK_SUFFIX avx512
#define CK_TARGET __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma")))
#define CK_QR 8
#define CK_PR 4
#include "attention_rows.h"
#endif

void ck_softmax_row(float *row, size_t width) {
    CK_DISPATCH(ck_softmax_row, (row, width))
}

float ck_exp_row(float *row, size_t width) {
    CK_DISPATCH_RETURN(ck_exp_row, (row, width))
}

void ck_silu(const float *x, float *y, size_t count) {
    CK_DISPATCH(ck_silu, (x, y, count, 1.0f))
}

// x·σ(1.702x), CLIP's quick GELU: the SiLU kernel with its input scaled inside the sigmoid only (×1 is exact, so
// SiLU's bits are unchanged).
void ck_quick_gelu(const float *x, float *y, size_t count) {
    CK_DISPATCH(ck_silu, (x, y, count, 1.702f))
}

void ck_geglu(const float *a, const float *g, float *y, size_t count) {
    CK_DISPATCH(ck_geglu, (a, g, y, count))
}

size_t ck_attention_short_scratch(size_t nk, size_t d, size_t dv) {
    return d * 16 + nk * 16 + dv * 16;
}

void ck_attention_short(const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv,
                        float *out, size_t ldo, size_t rows, size_t nk, size_t d, size_t dv, float scale,
                        float *scratch) {
    CK_DISPATCH(ck_attention_short, (q, ldq, k, ldk, v, ldv, out, ldo, rows, nk, d, dv, scale, scratch))
}


size_t ck_flash_scratch(size_t nk, size_t d, size_t dv) {
    return CK_FLASH_ROWS * (d + (nk + 15) / 16 * 16 + (dv + 7) / 8 * 8 + 1);
}

void ck_flash_pack(const float *k, size_t ldk, const float *v, size_t ldv, size_t nk, size_t d, size_t dv,
                   float *kp, float *vp) {
    size_t nkp = (nk + 15) / 16 * 16, dvp = (dv + 7) / 8 * 8;
    for (size_t p = 0; p < nkp / 16; p++)
        for (size_t t = 0; t < d; t++)
            for (size_t i = 0; i < 16; i++) {
                size_t j = p * 16 + i;
                kp[(p * d + t) * 16 + i] = j < nk ? k[j * ldk + t] : 0;
            }
    for (size_t j = 0; j < nkp; j++)
        for (size_t c = 0; c < dvp; c++) vp[j * dvp + c] = j < nk && c < dv ? v[j * ldv + c] : 0;
}

void ck_flash_rows(const float *q, size_t ldq, const float *kp, const float *vp, float *out, size_t ldo,
                   size_t rows, size_t first, int causal, size_t nk, size_t d, size_t dv, float scale,
                   float *scratch) {
    CK_DISPATCH(ck_flash_rows, (q, ldq, kp, vp, out, ldo, rows, first, causal, nk, d, dv, scale, scratch))
}
