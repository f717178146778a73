// Winograd F(4×4, 3×3) convolution transforms (weights, inputs, outputs), compiled once per instruction set. The
// input and output transforms move eight horizontally adjacent tiles with whole-vector loads and shuffles where
// the eight lie inside one tile row and inside the image; tiles at the borders take the lane-by-lane path.
#include "ckernels.h"
#include "dispatch.h"

#include <stddef.h>
#include <string.h>

typedef float v8f __attribute__((vector_size(32), aligned(4)));

// Whether the eight tiles from t lie in one tile row of one image (the transforms then move them with whole vectors).
static inline int ck_wino_eight_in_row(size_t t, size_t left, size_t tw, size_t per) {
    return left >= 8 && (t % per) % tw + 8 <= tw;
}

// Winograd F(4×4, 3×3) for stride-1, padding-1 3×3 convolutions (Lavin & Gray 2016): each 4×4
// output tile is Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A over its 6×6 input patch d, so the 36 products per
// tile and channel pair become 36 GEMMs [O×C]·[C×tiles] with 4× fewer multiplications than the
// direct convolution. The transforms below work on eight tiles (or channels) at once, one per lane.
#define CK_WINOGRAD(SUFFIX, TARGET)                                                          \
    /* Bᵀ·d over one 6-vector (stride s in units of v8f). */                                  \
    TARGET static inline __attribute__((always_inline)) void ck_wino_bt_##SUFFIX(            \
        v8f *d, size_t s) {                                                                  \
        v8f d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];  \
        d[0] = 4.0f * d0 - 5.0f * d2 + d4;                                                   \
        d[s] = d3 + d4 - 4.0f * (d1 + d2);                                                   \
        d[2 * s] = 4.0f * (d1 - d2) + d4 - d3;                                               \
        d[3 * s] = 2.0f * (d3 - d1) + d4 - d2;                                               \
        d[4 * s] = 2.0f * (d1 - d3) + d4 - d2;                                               \
        d[5 * s] = 4.0f * d1 - 5.0f * d3 + d5;                                               \
    }                                                                                        \
    /* Aᵀ·m over one 6-vector into 4 values (stride s). */                                    \
    TARGET static inline __attribute__((always_inline)) void ck_wino_at_##SUFFIX(            \
        const v8f *m, size_t s, v8f *o, size_t t) {                                          \
        v8f a = m[s] + m[2 * s], b = m[s] - m[2 * s];                                         \
        v8f c = m[3 * s] + m[4 * s], e = m[3 * s] - m[4 * s];                                 \
        o[0] = m[0] + a + c;                                                                 \
        o[t] = b + 2.0f * e;                                                                 \
        o[2 * t] = a + 4.0f * c;                                                             \
        o[3 * t] = b + 8.0f * e + m[5 * s];                                                  \
    }                                                                                        \
    /* G·g over one 3-vector into 6 values (stride t). */                                    \
    TARGET static inline __attribute__((always_inline)) void ck_wino_g_##SUFFIX(             \
        const v8f *g, size_t s, v8f *o, size_t t) {                                          \
        v8f g0 = g[0], g1 = g[s], g2 = g[2 * s];                                              \
        o[0] = g0 * 0.25f;                                                                   \
        o[t] = (g0 + g1 + g2) * (-1.0f / 6);                                                 \
        o[2 * t] = (g0 - g1 + g2) * (-1.0f / 6);                                             \
        o[3 * t] = g0 * (1.0f / 24) + g1 * (1.0f / 12) + g2 * (1.0f / 6);                    \
        o[4 * t] = g0 * (1.0f / 24) - g1 * (1.0f / 12) + g2 * (1.0f / 6);                    \
        o[5 * t] = g2;                                                                       \
    }                                                                                        \
    /* One input row of eight horizontally adjacent tiles: p[4l + j] for lane l and j = 0..5 into d[j] (34 floats \
       from p), as four loads de-interleaved by shuffles instead of 48 scalar gathers. */                          \
    TARGET static inline __attribute__((always_inline)) void ck_wino_split8_##SUFFIX(        \
        const float *p, v8f *d) {                                                            \
        v8f a, b, c, e;                                                                      \
        memcpy(&a, p, sizeof a); memcpy(&b, p + 8, sizeof b);                                \
        memcpy(&c, p + 16, sizeof c); memcpy(&e, p + 24, sizeof e);                          \
        v8f ab01 = __builtin_shufflevector(a, b, 0, 4, 8, 12, 1, 5, 9, 13);                  \
        v8f ab23 = __builtin_shufflevector(a, b, 2, 6, 10, 14, 3, 7, 11, 15);                \
        v8f ce01 = __builtin_shufflevector(c, e, 0, 4, 8, 12, 1, 5, 9, 13);                  \
        v8f ce23 = __builtin_shufflevector(c, e, 2, 6, 10, 14, 3, 7, 11, 15);                \
        v8f tail = {p[32], p[33]};                                                           \
        d[0] = __builtin_shufflevector(ab01, ce01, 0, 1, 2, 3, 8, 9, 10, 11);                \
        d[1] = __builtin_shufflevector(ab01, ce01, 4, 5, 6, 7, 12, 13, 14, 15);              \
        d[2] = __builtin_shufflevector(ab23, ce23, 0, 1, 2, 3, 8, 9, 10, 11);                \
        d[3] = __builtin_shufflevector(ab23, ce23, 4, 5, 6, 7, 12, 13, 14, 15);              \
        d[4] = __builtin_shufflevector(d[0], tail, 1, 2, 3, 4, 5, 6, 7, 8);                  \
        d[5] = __builtin_shufflevector(d[1], tail, 1, 2, 3, 4, 5, 6, 7, 9);                  \
    }                                                                                        \
    /* The inverse for one output row of eight tiles: o[j][l] + bias into q[4l + j], 32 floats in four stores. */ \
    TARGET static inline __attribute__((always_inline)) void ck_wino_merge8_##SUFFIX(        \
        const v8f *o, float bias, float *q) {                                                \
        v8f lo01 = __builtin_shufflevector(o[0], o[1], 0, 8, 1, 9, 2, 10, 3, 11);            \
        v8f lo23 = __builtin_shufflevector(o[2], o[3], 0, 8, 1, 9, 2, 10, 3, 11);            \
        v8f hi01 = __builtin_shufflevector(o[0], o[1], 4, 12, 5, 13, 6, 14, 7, 15);          \
        v8f hi23 = __builtin_shufflevector(o[2], o[3], 4, 12, 5, 13, 6, 14, 7, 15);          \
        v8f r0 = __builtin_shufflevector(lo01, lo23, 0, 1, 8, 9, 2, 3, 10, 11) + bias;       \
        v8f r1 = __builtin_shufflevector(lo01, lo23, 4, 5, 12, 13, 6, 7, 14, 15) + bias;     \
        v8f r2 = __builtin_shufflevector(hi01, hi23, 0, 1, 8, 9, 2, 3, 10, 11) + bias;       \
        v8f r3 = __builtin_shufflevector(hi01, hi23, 4, 5, 12, 13, 6, 7, 14, 15) + bias;     \
        memcpy(q, &r0, sizeof r0); memcpy(q + 8, &r1, sizeof r1);                            \
        memcpy(q + 16, &r2, sizeof r2); memcpy(q + 24, &r3, sizeof r3);                      \
    }                                                                                        \
    TARGET static void ck_wino_weights_##SUFFIX(const float *w, size_t outs, size_t ins,     \
                                                 size_t o0, size_t o1, float *u) {           \
        for (size_t o = o0; o < o1; o++) {                                                   \
            for (size_t c = 0; c < ins; c += 8) {                                            \
                size_t lanes = ins - c < 8 ? ins - c : 8;                                    \
                v8f g[9], gg[18], uu[36];                                                    \
                for (int k = 0; k < 9; k++) {                                                \
                    g[k] = (v8f){0};                                                         \
                    for (size_t l = 0; l < lanes; l++) g[k][l] = w[((o * ins) + c + l) * 9 + k]; \
                }                                                                            \
                /* Columns of g (stride 3) into the 6×3 G·g, then its rows into 6×6. */       \
                for (int j = 0; j < 3; j++) ck_wino_g_##SUFFIX(g + j, 3, gg + j, 3);          \
                for (int i = 0; i < 6; i++) ck_wino_g_##SUFFIX(gg + i * 3, 1, uu + i * 6, 1); \
                for (int x = 0; x < 36; x++)                                                 \
                    for (size_t l = 0; l < lanes; l++) u[(x * outs + o) * ins + c + l] = uu[x][l]; \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    TARGET static void ck_wino_input_##SUFFIX(const float *x, size_t channels, size_t height, \
        size_t width, size_t t0, size_t count, size_t ldv, size_t c0, size_t c1, float *v) {  \
        size_t tw = (width + 3) / 4, per = tw * ((height + 3) / 4);                          \
        for (size_t c = c0; c < c1; c++) {                                                   \
            for (size_t g = 0; g < ldv; g += 8) {                                            \
                v8f d[36];                                                                   \
                if (ck_wino_eight_in_row(t0 + g, count - g, tw, per)) {                      \
                    size_t t = t0 + g, image = t / per, r = t % per;                         \
                    const float *plane = x + (image * channels + c) * height * width;        \
                    long y0 = (long)(r / tw) * 4 - 1, x0 = (long)(r % tw) * 4 - 1;            \
                    for (int i = 0; i < 6; i++) {                                            \
                        long yy = y0 + i;                                                    \
                        if (yy < 0 || yy >= (long)height) {                                  \
                            for (int j = 0; j < 6; j++) d[i * 6 + j] = (v8f){0};             \
                        } else if (x0 >= 0 && x0 + 34 <= (long)width) {                      \
                            ck_wino_split8_##SUFFIX(plane + yy * (long)width + x0, d + i * 6); \
                        } else {                                                             \
                            /* A row cut by the left or right edge: its 34 floats, zero-padded. */ \
                            float row[34] = {0};                                             \
                            long from = x0 < 0 ? 0 : x0, to = x0 + 34 < (long)width ? x0 + 34 : (long)width; \
                            memcpy(row + (from - x0), plane + yy * (long)width + from, (size_t)(to - from) * sizeof(float)); \
                            ck_wino_split8_##SUFFIX(row, d + i * 6);                         \
                        }                                                                    \
                    }                                                                        \
                } else {                                                                     \
                    for (int x = 0; x < 36; x++) d[x] = (v8f){0};                        \
                    for (size_t l = 0; l < 8 && g + l < count; l++) {                    \
                        size_t t = t0 + g + l, image = t / per, r = t % per;             \
                        long y0 = (long)(r / tw) * 4 - 1, x0 = (long)(r % tw) * 4 - 1;   \
                        const float *plane = x + (image * channels + c) * height * width; \
                        if (y0 >= 0 && x0 >= 0 && y0 + 6 <= (long)height && x0 + 6 <= (long)width) { \
                            const float *p = plane + y0 * (long)width + x0;              \
                            for (int i = 0; i < 6; i++)                                  \
                                for (int j = 0; j < 6; j++) d[i * 6 + j][l] = p[i * width + j]; \
                        } else {                                                         \
                            for (int i = 0; i < 6; i++) {                                \
                                long yy = y0 + i;                                        \
                                if (yy < 0 || yy >= (long)height) continue;              \
                                for (int j = 0; j < 6; j++) {                            \
                                    long xx = x0 + j;                                    \
                                    if (xx >= 0 && xx < (long)width) d[i * 6 + j][l] = plane[yy * (long)width + xx]; \
                                }                                                        \
                            }                                                            \
                        }                                                                \
                    }                                                                    \
                }                                                                            \
                for (int j = 0; j < 6; j++) ck_wino_bt_##SUFFIX(d + j, 6);                    \
                for (int i = 0; i < 6; i++) ck_wino_bt_##SUFFIX(d + i * 6, 1);                \
                for (int x = 0; x < 36; x++)                                                 \
                    memcpy(v + (x * channels + c) * ldv + g, &d[x], sizeof(v8f));            \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    TARGET static void ck_wino_output_##SUFFIX(const float *m, size_t mouts, size_t mfirst,  \
        size_t outs, size_t height, size_t width, size_t t0, size_t count, size_t ldm,       \
        const float *bias, size_t o0, size_t o1, float *y) {                                 \
        size_t tw = (width + 3) / 4, per = tw * ((height + 3) / 4);                          \
        for (size_t o = o0; o < o1; o++) {                                                   \
            float b = bias ? bias[o] : 0;                                                    \
            for (size_t g = 0; g < count; g += 8) {                                          \
                v8f s[36], mid[24], out[16];                                                 \
                for (int x = 0; x < 36; x++)                                                 \
                    memcpy(&s[x], m + (x * mouts + o - mfirst) * ldm + g, sizeof(v8f));     \
                for (int j = 0; j < 6; j++) ck_wino_at_##SUFFIX(s + j, 6, mid + j, 6);        \
                for (int i = 0; i < 4; i++) ck_wino_at_##SUFFIX(mid + i * 6, 1, out + i * 4, 1); \
                if (ck_wino_eight_in_row(t0 + g, count - g, tw, per)) {                      \
                    size_t t = t0 + g, image = t / per, r = t % per;                         \
                    size_t y0 = (r / tw) * 4, x0 = (r % tw) * 4;                             \
                    float *q = y + (image * outs + o) * height * width + y0 * width + x0;    \
                    size_t rows = height - y0 < 4 ? height - y0 : 4;                         \
                    size_t cols = width - x0 < 32 ? width - x0 : 32;                         \
                    for (size_t i = 0; i < rows; i++) {                                      \
                        if (cols == 32) {                                                    \
                            ck_wino_merge8_##SUFFIX(out + i * 4, b, q + i * width);          \
                        } else {                                                             \
                            /* The last tile is cut by the right edge. */                    \
                            float row[32];                                                   \
                            ck_wino_merge8_##SUFFIX(out + i * 4, b, row);                    \
                            memcpy(q + i * width, row, cols * sizeof(float));                \
                        }                                                                    \
                    }                                                                        \
                    continue;                                                                \
                }                                                                            \
                for (size_t l = 0; l < 8 && g + l < count; l++) {                            \
                    size_t t = t0 + g + l, image = t / per, r = t % per;                     \
                    size_t y0 = (r / tw) * 4, x0 = (r % tw) * 4;                             \
                    float *plane = y + (image * outs + o) * height * width;                  \
                    size_t rows = height - y0 < 4 ? height - y0 : 4;                         \
                    size_t cols = width - x0 < 4 ? width - x0 : 4;                           \
                    for (size_t i = 0; i < rows; i++)                                        \
                        for (size_t j = 0; j < cols; j++)                                    \
                            plane[(y0 + i) * width + x0 + j] = out[i * 4 + j][l] + b;        \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }

CK_WINOGRAD(baseline, )
#if CK_X86
CK_WINOGRAD(avx2, __attribute__((target("avx2,fma"))))
CK_WINOGRAD(avx512, __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma"))))
#endif


void ck_winograd_weights(const float *w, size_t outs, size_t ins, size_t o0, size_t o1, float *u) {
    CK_DISPATCH(ck_wino_weights, (w, outs, ins, o0, o1, u))
}

void ck_winograd_input(const float *x, size_t channels, size_t height, size_t width, size_t t0, size_t count,
                       size_t ldv, size_t c0, size_t c1, float *v) {
    CK_DISPATCH(ck_wino_input, (x, channels, height, width, t0, count, ldv, c0, c1, v))
}

void ck_winograd_output(const float *m, size_t mouts, size_t mfirst, size_t outs, size_t height, size_t width,
                        size_t t0, size_t count, size_t ldm, const float *bias, size_t o0, size_t o1, float *y) {
    CK_DISPATCH(ck_wino_output, (m, mouts, mfirst, outs, height, width, t0, count, ldm, bias, o0, o1, y))
}
