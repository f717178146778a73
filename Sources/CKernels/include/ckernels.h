// Hot loops of the Tensors module that need explicit vectors. Each is compiled
// three times (baseline x86-64, AVX2+FMA, AVX-512) and the best one the CPU
// supports is chosen at run time, so one binary runs on every x86-64 host.
#ifndef CKERNELS_H
#define CKERNELS_H

#include <stddef.h>

/// Softmax of one row in place (max-subtracted, so large inputs cannot overflow).
void ck_softmax_row(float *row, size_t width);

/// Replaces each value x by e^(x - max(row)) and returns their sum: softmax
/// without the final division, which attention applies to its (narrower) output.
float ck_exp_row(float *row, size_t width);

/// y = x·σ(x) (SiLU) over `count` floats; y may be x.
void ck_silu(const float *x, float *y, size_t count);

/// y = x·σ(1.702·x) (CLIP's quick GELU); y may be x.
void ck_quick_gelu(const float *x, float *y, size_t count);

/// y = a·gelu(g) over `count` floats (GEGLU's gate), or y = gelu(g) when a is NULL; gelu is the
/// exact (erf) form. y may be a or g.
void ck_geglu(const float *a, const float *g, float *y, size_t count);

/// Floats of scratch `ck_attention_short` needs for these sizes.
size_t ck_attention_short_scratch(size_t nk, size_t d, size_t dv);

/// Attention of `rows` queries (row stride ldq) over `nk` keys and values of width d / dv,
/// for short key sequences (cross-attention to 77 text tokens): softmax(q·kᵀ·scale)·v into
/// `out` (row stride ldo). `scratch` holds ck_attention_short_scratch(nk, d, dv) floats.
void ck_attention_short(const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv,
                        float *out, size_t ldo, size_t rows, size_t nk, size_t d, size_t dv, float scale,
                        float *scratch);

/// Floats of scratch `ck_flash_rows` needs for these sizes.
size_t ck_flash_scratch(size_t nk, size_t d, size_t dv);

/// Packs one head's keys k [nk, d] (row stride ldk) and values v [nk, dv] (row stride ldv) for
/// `ck_flash_rows`: kp gets ⌈nk/16⌉·16·d floats (panels of 16 keys, one 16-float row per
/// dimension), vp gets ⌈nk/16⌉·16 rows of dv rounded up to 8 floats; the padding is zeros.
void ck_flash_pack(const float *k, size_t ldk, const float *v, size_t ldv, size_t nk, size_t d, size_t dv,
                   float *kp, float *vp);

/// softmax(q·kᵀ·scale)·v for `rows` queries (row stride ldq) over one head's packed keys and
/// values, into `out` (row stride ldo). With `causal`, query i (numbered from `first`) sees keys
/// 0…first+i only. `scratch` holds ck_flash_scratch(nk, d, dv) floats.
void ck_flash_rows(const float *q, size_t ldq, const float *kp, const float *vp, float *out, size_t ldo,
                   size_t rows, size_t first, int causal, size_t nk, size_t d, size_t dv, float scale,
                   float *scratch);

/// Winograd F(4×4, 3×3) weight transform of output channels o0..<o1: w is [outs, ins, 3, 3]
/// (PyTorch's layout), u receives G·g·Gᵀ as 36 matrices [outs, ins] (u[(ξ·outs + o)·ins + c]).
void ck_winograd_weights(const float *w, size_t outs, size_t ins, size_t o0, size_t o1, float *u);

/// Winograd input transform of channels c0..<c1 for tiles t0..<t0+count of an NCHW batch x
/// (4×4 output tiles, row-major per image, images one after another; padding 1): v receives
/// Bᵀ·d·B as 36 matrices [channels, ldv] (v[(ξ·channels + c)·ldv + t − t0]); ldv is count
/// rounded up to 8, and the columns past count are zeros.
void ck_winograd_input(const float *x, size_t channels, size_t height, size_t width, size_t t0, size_t count,
                       size_t ldv, size_t c0, size_t c1, float *v);

/// Winograd output transform of output channels o0..<o1 (of `outs`): m holds the 36 GEMM results
/// for channels mfirst..<mfirst+mouts, [mouts, ldm] each, for tiles t0..<t0+count; writes
/// Aᵀ·m·A plus bias[o] (bias may be NULL) into the NCHW output y, cropping tiles at the right
/// and bottom edges.
void ck_winograd_output(const float *m, size_t mouts, size_t mfirst, size_t outs, size_t height, size_t width,
                        size_t t0, size_t count, size_t ldm, const float *bias, size_t o0, size_t o1, float *y);

/// Widens `count` IEEE half-precision values (little-endian, any alignment) to Float32, exactly.
void ck_widen_f16(const void *src, float *dst, size_t count);

/// Widens `count` bfloat16 values (little-endian, any alignment) to Float32, exactly.
void ck_widen_bf16(const void *src, float *dst, size_t count);

/// Narrows `count` floats to IEEE halves, rounding to nearest even (overflow gives infinity).
void ck_narrow_f16(const float *src, void *dst, size_t count);

/// Narrows `count` floats to bfloat16, rounding to nearest even.
void ck_narrow_bf16(const float *src, void *dst, size_t count);

/// The instruction set the kernels run with: "avx512", "avx2+fma" or "baseline".
const char *ck_instruction_set(void);

/// What the processor offers (not capped by ck_limit_instruction_set): CK_CPU_* bits. The BLAS core check
/// compares them with the kernels OpenBLAS chose.
#define CK_CPU_AVX2 1u
#define CK_CPU_FMA 2u
#define CK_CPU_AVX512 4u
#define CK_CPU_AVX512_BF16 8u
#define CK_CPU_AMD 16u
unsigned ck_cpu_features(void);

/// Caps the instruction set: 0 baseline, 1 AVX2+FMA, 2 AVX-512, negative for no cap
/// (tests use it to check every path on one machine).
void ck_limit_instruction_set(int level);

/// Returns the C allocator's free pages to the system (glibc's malloc_trim; elsewhere nothing): 1 if any went back.
int ck_return_free_pages(void);

/// A tensor buffer of `bytes` (64-byte aligned; from 4 MiB on 2 MiB aligned with transparent huge pages asked
/// for, unless FARM_HUGEPAGES=0); NULL when out of memory. Free it with ck_free_buffer.
void *ck_alloc_buffer(size_t bytes);

/// Frees a buffer from ck_alloc_buffer.
void ck_free_buffer(void *pointer);

/// Whether ck_alloc_buffer asks for huge pages (FARM_HUGEPAGES is not "0").
int ck_huge_pages(void);

#endif
