#include "ckernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef float v8f __attribute__((vector_size(32), aligned(4)));
typedef int32_t v8i __attribute__((vector_size(32), aligned(4)));
typedef float v16f __attribute__((vector_size(64), aligned(4)));
typedef int32_t v16i __attribute__((vector_size(64), aligned(4)));

// The kernels' bodies, written once on LANES-float vectors; each instantiation
// below compiles them for one instruction set (VEC is v8f or v16f).
#define CK_KERNELS(SUFFIX, TARGET, VEC, IVEC, LANES)                                         \
    /* e^x: Cody-Waite reduction and a degree-6 polynomial; relative error < 2e-7. */        \
    TARGET static inline __attribute__((always_inline)) void ck_exp_##SUFFIX(VEC *value) {   \
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
    }                                                                                        \
                                                                                             \
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
    /* Attention of `rows` queries over few keys: K is transposed and V padded once,      */ \
    /* then each query's scores, softmax and weighted sum stay in registers and L1.       */ \
    TARGET static void ck_attention_short_##SUFFIX(                                          \
        const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv,   \
        float *out, size_t ldo, size_t rows, size_t nk, size_t d, size_t dv, float scale,     \
        float *scratch) {                                                                    \
        size_t nkp = (nk + LANES - 1) / LANES * LANES, dvp = (dv + LANES - 1) / LANES * LANES; \
        float *kt = scratch, *vp = kt + d * nkp, *scores = vp + nk * dvp;                    \
        for (size_t c = 0; c < d; c++) {                                                     \
            for (size_t j = 0; j < nk; j++) kt[c * nkp + j] = k[j * ldk + c] * scale;        \
            for (size_t j = nk; j < nkp; j++) kt[c * nkp + j] = 0;                           \
        }                                                                                    \
        for (size_t j = 0; j < nk; j++) {                                                    \
            for (size_t c = 0; c < dv; c++) vp[j * dvp + c] = v[j * ldv + c];                \
            for (size_t c = dv; c < dvp; c++) vp[j * dvp + c] = 0;                           \
        }                                                                                    \
        /* Eight queries at a time: eight independent FMA chains hide the FMA latency, and */ \
        /* each K or V vector loaded serves all eight.                                      */ \
        for (size_t r0 = 0; r0 < rows; r0 += 8) {                                            \
            const float *qr[8];                                                              \
            for (int rr = 0; rr < 8; rr++) qr[rr] = q + (r0 + rr < rows ? r0 + rr : rows - 1) * ldq; \
            for (size_t j = 0; j < nkp; j += LANES) {                                        \
                VEC acc[8];                                                                  \
                for (int rr = 0; rr < 8; rr++) acc[rr] = ((VEC){0});                         \
                for (size_t c = 0; c < d; c++) {                                             \
                    VEC kv;                                                                  \
                    memcpy(&kv, kt + c * nkp + j, sizeof kv);                                \
                    for (int rr = 0; rr < 8; rr++) acc[rr] += kv * qr[rr][c];                \
                }                                                                            \
                for (int rr = 0; rr < 8; rr++) memcpy(scores + rr * nkp + j, &acc[rr], sizeof(VEC)); \
            }                                                                                \
            /* Softmax over whole vectors: the padding lanes hold -inf and come out as ~0. */  \
            float inverse[8];                                                                \
            for (int rr = 0; rr < 8; rr++) {                                                 \
                float *row = scores + rr * nkp;                                              \
                for (size_t j = nk; j < nkp; j++) row[j] = -INFINITY;                        \
                VEC vmax = ((VEC){0} + (float)(-INFINITY));                                  \
                for (size_t j = 0; j < nkp; j += LANES) {                                    \
                    VEC x;                                                                   \
                    memcpy(&x, row + j, sizeof x);                                           \
                    vmax = __builtin_elementwise_max(vmax, x);                               \
                }                                                                            \
                float maximum = -INFINITY;                                                   \
                for (int lane = 0; lane < LANES; lane++) maximum = fmaxf(maximum, vmax[lane]); \
                VEC vsum = ((VEC){0});                                                       \
                for (size_t j = 0; j < nkp; j += LANES) {                                    \
                    VEC x;                                                                   \
                    memcpy(&x, row + j, sizeof x);                                           \
                    x -= maximum;                                                            \
                    ck_exp_##SUFFIX(&x);                                                     \
                    memcpy(row + j, &x, sizeof x);                                           \
                    vsum += x;                                                               \
                }                                                                            \
                float sum = 0;                                                               \
                for (int lane = 0; lane < LANES; lane++) sum += vsum[lane];                  \
                inverse[rr] = 1.0f / sum;                                                    \
            }                                                                                \
            for (size_t c = 0; c < dvp; c += LANES) {                                        \
                VEC acc[8];                                                                  \
                for (int rr = 0; rr < 8; rr++) acc[rr] = ((VEC){0});                         \
                for (size_t j = 0; j < nk; j++) {                                            \
                    VEC vv;                                                                  \
                    memcpy(&vv, vp + j * dvp + c, sizeof vv);                                \
                    for (int rr = 0; rr < 8; rr++) acc[rr] += vv * scores[rr * nkp + j];     \
                }                                                                            \
                size_t n = dv - c < LANES ? dv - c : LANES;                                  \
                for (int rr = 0; rr < 8 && r0 + rr < rows; rr++) {                           \
                    acc[rr] *= inverse[rr];                                                  \
                    memcpy(out + (r0 + rr) * ldo + c, &acc[rr], n * sizeof(float));          \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }

CK_KERNELS(baseline, , v8f, v8i, 8)
CK_KERNELS(avx2, __attribute__((target("avx2,fma"))), v8f, v8i, 8)
CK_KERNELS(avx512, __attribute__((target("avx512f,avx512dq,avx2,fma"))), v16f, v16i, 16)

typedef enum { CK_BASELINE = 0, CK_AVX2 = 1, CK_AVX512 = 2 } ck_level;

static int ck_ceiling = CK_AVX512;

static ck_level ck_level_now(void) {
    static int detected = -1;
    if (detected < 0) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) detected = CK_AVX512;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) detected = CK_AVX2;
        else detected = CK_BASELINE;
    }
    return (ck_level)(detected < ck_ceiling ? detected : ck_ceiling);
}

void ck_softmax_row(float *row, size_t width) {
    switch (ck_level_now()) {
    case CK_AVX512: ck_softmax_row_avx512(row, width); break;
    case CK_AVX2: ck_softmax_row_avx2(row, width); break;
    default: ck_softmax_row_baseline(row, width); break;
    }
}

float ck_exp_row(float *row, size_t width) {
    switch (ck_level_now()) {
    case CK_AVX512: return ck_exp_row_avx512(row, width);
    case CK_AVX2: return ck_exp_row_avx2(row, width);
    default: return ck_exp_row_baseline(row, width);
    }
}

size_t ck_attention_short_scratch(size_t nk, size_t d, size_t dv) {
    size_t nkp = (nk + 15) / 16 * 16, dvp = (dv + 15) / 16 * 16;
    return d * nkp + nk * dvp + 8 * nkp;
}

void ck_attention_short(const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv,
                        float *out, size_t ldo, size_t rows, size_t nk, size_t d, size_t dv, float scale,
                        float *scratch) {
    switch (ck_level_now()) {
    case CK_AVX512: ck_attention_short_avx512(q, ldq, k, ldk, v, ldv, out, ldo, rows, nk, d, dv, scale, scratch); break;
    case CK_AVX2: ck_attention_short_avx2(q, ldq, k, ldk, v, ldv, out, ldo, rows, nk, d, dv, scale, scratch); break;
    default: ck_attention_short_baseline(q, ldq, k, ldk, v, ldv, out, ldo, rows, nk, d, dv, scale, scratch); break;
    }
}

const char *ck_instruction_set(void) {
    switch (ck_level_now()) {
    case CK_AVX512: return "avx512";
    case CK_AVX2: return "avx2+fma";
    default: return "baseline";
    }
}

void ck_limit_instruction_set(int level) { ck_ceiling = level < 0 ? CK_AVX512 : level; }
