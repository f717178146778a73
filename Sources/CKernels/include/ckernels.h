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

/// Floats of scratch `ck_attention_short` needs for these sizes.
size_t ck_attention_short_scratch(size_t nk, size_t d, size_t dv);

/// Attention of `rows` queries (row stride ldq) over `nk` keys and values of width d / dv,
/// for short key sequences (cross-attention to 77 text tokens): softmax(q·kᵀ·scale)·v into
/// `out` (row stride ldo). `scratch` holds ck_attention_short_scratch(nk, d, dv) floats.
void ck_attention_short(const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv,
                        float *out, size_t ldo, size_t rows, size_t nk, size_t d, size_t dv, float scale,
                        float *scratch);

/// The instruction set the kernels run with: "avx512", "avx2+fma" or "baseline".
const char *ck_instruction_set(void);

/// Caps the instruction set: 0 baseline, 1 AVX2+FMA, 2 AVX-512, negative for no cap
/// (tests use it to check every path on one machine).
void ck_limit_instruction_set(int level);

#endif
