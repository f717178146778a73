// Half-precision weights: IEEE binary16 (f16) and bfloat16 (bf16) to and from Float32. Weights stay resident as their
// files store them and are widened where a product reads them, once per layer per call, so widening must run at memory
// speed: F16C and AVX-512 convert 8 or 16 values an instruction. Elsewhere exact bit manipulation gives the same bits
// (NaNs come out quiet, as the hardware makes them), so a model computes the same on every host.
#include "ckernels.h"
#include "dispatch.h"

#include <stdint.h>
#include <string.h>

#if CK_X86
#include <immintrin.h>
#endif

#define CK_INLINE static inline __attribute__((always_inline))

CK_INLINE uint16_t ck_load16(const unsigned char *bytes, size_t index) {
    uint16_t value;
    memcpy(&value, bytes + 2 * index, sizeof value);
    return value;
}

CK_INLINE float ck_bits_float(uint32_t bits) {
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

CK_INLINE uint32_t ck_float_bits(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}

// Exact: every half is a float. The exponent is rebiased in place; subnormals (exponent 0) become
// 2^-14 · (1 + m/1024) and then lose the 2^-14, which leaves m · 2^-24 exactly. Written with selects, not
// branches, so that the loops over it vectorise.
CK_INLINE float ck_f16_to_f32(uint16_t half) {
    uint32_t magnitude = (uint32_t)(half & 0x7fff) << 13;
    uint32_t exponent = magnitude & 0x0f800000u;
    uint32_t normal = magnitude + ((uint32_t)(127 - 15) << 23);
    uint32_t special = (normal + ((uint32_t)(128 - 16) << 23)) | ((magnitude & 0x007fe000u) ? 0x00400000u : 0);
    uint32_t subnormal = ck_float_bits(ck_bits_float(normal + (1u << 23)) - 6.103515625e-05f);
    uint32_t bits = exponent == 0x0f800000u ? special : exponent == 0 ? subnormal : normal;
    return ck_bits_float(bits | (uint32_t)(half & 0x8000) << 16);
}

// Round to nearest, ties to even; overflow gives infinity, NaN a quiet NaN keeping the payload's top bits.
CK_INLINE uint16_t ck_f32_to_f16(float value) {
    uint32_t bits = ck_float_bits(value);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000);
    bits &= 0x7fffffffu;
    uint16_t half;
    if (bits > 0x7f800000u) {
        half = (uint16_t)(0x7e00 | ((bits >> 13) & 0x3ff));
    } else if (bits >= 0x47800000u) {
        half = 0x7c00;
    } else if (bits < 0x38800000u) {
        // Below the smallest normal half: adding 0.5 lines the subnormal's bits up at the bottom, rounded by the FPU.
        half = (uint16_t)(ck_float_bits(ck_bits_float(bits) + 0.5f) - 0x3f000000u);
    } else {
        uint32_t odd = (bits >> 13) & 1;
        bits += ((uint32_t)(15 - 127) << 23) + 0xfff + odd;
        half = (uint16_t)(bits >> 13);
    }
    return half | sign;
}

CK_INLINE float ck_bf16_to_f32(uint16_t half) { return ck_bits_float((uint32_t)half << 16); }

CK_INLINE uint16_t ck_f32_to_bf16(float value) {
    uint32_t bits = ck_float_bits(value);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40);
    return (uint16_t)((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
}

// The portable loops, compiled once per instruction set (they vectorise; bf16 is a shift everywhere).
#define CK_HALF_LOOPS(SUFFIX, TARGET)                                                        \
    TARGET static void ck_widen_f16_loop_##SUFFIX(const unsigned char *src, float *dst, size_t count) { \
        for (size_t i = 0; i < count; i++) dst[i] = ck_f16_to_f32(ck_load16(src, i));        \
    }                                                                                        \
    TARGET static void ck_narrow_f16_loop_##SUFFIX(const float *src, unsigned char *dst, size_t count) { \
        for (size_t i = 0; i < count; i++) {                                                 \
            uint16_t half = ck_f32_to_f16(src[i]);                                           \
            memcpy(dst + 2 * i, &half, sizeof half);                                         \
        }                                                                                    \
    }                                                                                        \
    TARGET static void ck_widen_bf16_##SUFFIX(const void *src, float *dst, size_t count) {   \
        const unsigned char *bytes = src;                                                    \
        for (size_t i = 0; i < count; i++) dst[i] = ck_bf16_to_f32(ck_load16(bytes, i));     \
    }                                                                                        \
    TARGET static void ck_narrow_bf16_##SUFFIX(const float *src, void *dst, size_t count) {  \
        unsigned char *bytes = dst;                                                          \
        for (size_t i = 0; i < count; i++) {                                                 \
            uint16_t half = ck_f32_to_bf16(src[i]);                                          \
            memcpy(bytes + 2 * i, &half, sizeof half);                                       \
        }                                                                                    \
    }

CK_HALF_LOOPS(baseline, )

static void ck_widen_f16_baseline(const void *src, float *dst, size_t count) {
    ck_widen_f16_loop_baseline(src, dst, count);
}

static void ck_narrow_f16_baseline(const float *src, void *dst, size_t count) {
    ck_narrow_f16_loop_baseline(src, dst, count);
}

#if CK_X86
#define CK_AVX2_TARGET __attribute__((target("avx2,fma,f16c")))
#define CK_AVX512_TARGET __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma,f16c")))
CK_HALF_LOOPS(avx2, CK_AVX2_TARGET)
CK_HALF_LOOPS(avx512, CK_AVX512_TARGET)

// F16C: eight halves an instruction; the tail through the portable loop (the same bits).
CK_AVX2_TARGET static void ck_widen_f16_avx2(const void *src, float *dst, size_t count) {
    const unsigned char *bytes = src;
    size_t i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(bytes + 2 * i))));
    ck_widen_f16_loop_avx2(bytes + 2 * i, dst + i, count - i);
}

CK_AVX2_TARGET static void ck_narrow_f16_avx2(const float *src, void *dst, size_t count) {
    unsigned char *bytes = dst;
    size_t i = 0;
    for (; i + 8 <= count; i += 8)
        _mm_storeu_si128((__m128i *)(bytes + 2 * i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    ck_narrow_f16_loop_avx2(src + i, bytes + 2 * i, count - i);
}

CK_AVX512_TARGET static void ck_widen_f16_avx512(const void *src, float *dst, size_t count) {
    const unsigned char *bytes = src;
    size_t i = 0;
    for (; i + 16 <= count; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(bytes + 2 * i))));
    ck_widen_f16_loop_avx512(bytes + 2 * i, dst + i, count - i);
}

CK_AVX512_TARGET static void ck_narrow_f16_avx512(const float *src, void *dst, size_t count) {
    unsigned char *bytes = dst;
    size_t i = 0;
    for (; i + 16 <= count; i += 16)
        _mm256_storeu_si256((__m256i *)(bytes + 2 * i), _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    ck_narrow_f16_loop_avx512(src + i, bytes + 2 * i, count - i);
}

// The AVX2 level asks for AVX2 and FMA; every such processor has F16C, but it is checked rather than assumed.
static ck_level ck_half_level(void) {
    static int f16c = -1;
    if (f16c < 0) {
        __builtin_cpu_init();
        f16c = __builtin_cpu_supports("f16c") ? 1 : 0;
    }
    ck_level level = ck_level_now();
    return level == CK_AVX2 && !f16c ? CK_BASELINE : level;
}

#define CK_HALF_DISPATCH(NAME, ARGS) CK_DISPATCH_AT(ck_half_level(), NAME, ARGS)
#else
#define CK_HALF_DISPATCH(NAME, ARGS) CK_DISPATCH_AT(CK_BASELINE, NAME, ARGS)
#endif

void ck_widen_f16(const void *src, float *dst, size_t count) { CK_HALF_DISPATCH(ck_widen_f16, (src, dst, count)) }

void ck_widen_bf16(const void *src, float *dst, size_t count) { CK_HALF_DISPATCH(ck_widen_bf16, (src, dst, count)) }

void ck_narrow_f16(const float *src, void *dst, size_t count) { CK_HALF_DISPATCH(ck_narrow_f16, (src, dst, count)) }

void ck_narrow_bf16(const float *src, void *dst, size_t count) { CK_HALF_DISPATCH(ck_narrow_bf16, (src, dst, count)) }
