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

/// The instruction set the kernels run with: "avx512", "avx2+fma" or "baseline".
const char *ck_instruction_set(void);

/// Caps the instruction set: 0 baseline, 1 AVX2+FMA, 2 AVX-512, negative for no cap
/// (tests use it to check every path on one machine).
void ck_limit_instruction_set(int level);

#endif
