// Choosing the instruction set the kernels run with: what the CPU has, capped by the engine's setting.
#include "ckernels.h"
#include "dispatch.h"

static int ck_ceiling = CK_AVX512;

ck_level ck_level_now(void) {
#if !CK_X86
    return CK_BASELINE;
#else
    static int detected = -1;
    if (detected < 0) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) detected = CK_AVX512;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) detected = CK_AVX2;
        else detected = CK_BASELINE;
    }
    return (ck_level)(detected < ck_ceiling ? detected : ck_ceiling);
#endif
}

const char *ck_instruction_set(void) {
    switch (ck_level_now()) {
    case CK_AVX512: return "avx512";
    case CK_AVX2: return "avx2+fma";
    default: return "baseline";
    }
}

void ck_limit_instruction_set(int level) { ck_ceiling = level < 0 ? CK_AVX512 : level; }

unsigned ck_cpu_features(void) {
#if !CK_X86
    return 0;
#else
    __builtin_cpu_init();
    unsigned features = 0;
    if (__builtin_cpu_supports("avx2")) features |= CK_CPU_AVX2;
    if (__builtin_cpu_supports("fma")) features |= CK_CPU_FMA;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512vl")) features |= CK_CPU_AVX512;
    if (__builtin_cpu_supports("avx512bf16")) features |= CK_CPU_AVX512_BF16;
    if (__builtin_cpu_is("amd")) features |= CK_CPU_AMD;
    return features;
#endif
}
