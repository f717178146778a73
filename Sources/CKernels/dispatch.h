// What the kernel files share about choosing an instruction set at run time (not part of the module's API).
#ifndef CK_DISPATCH_H
#define CK_DISPATCH_H

// The AVX2 and AVX-512 instantiations and the CPU detection exist on x86 only; elsewhere (arm64, riscv64) every
// kernel runs its baseline instantiation, which clang compiles to the host's own vector instructions.
#if defined(__x86_64__) || defined(__i386__)
#define CK_X86 1
#else
#define CK_X86 0
#endif

typedef enum { CK_BASELINE = 0, CK_AVX2 = 1, CK_AVX512 = 2 } ck_level;

/// The instruction set the kernels run with now: the best the CPU has, capped by ck_limit_instruction_set.
ck_level ck_level_now(void);

// The same call on the instruction set LEVEL names (each kernel is compiled once per set); CK_DISPATCH uses the
// best available, a kernel that needs more than a level promises (F16C) passes its own lower level, and
// CK_DISPATCH_RETURN returns what the kernel returns. LEAD is what goes before the call: nothing, or `return`.
#if CK_X86
#define CK_CALL_AT_(LEVEL, LEAD, NAME, ARGS)                                                 \
    switch (LEVEL) {                                                                         \
    case CK_AVX512: LEAD NAME##_avx512 ARGS; break;                                          \
    case CK_AVX2: LEAD NAME##_avx2 ARGS; break;                                              \
    default: LEAD NAME##_baseline ARGS; break;                                               \
    }
#else
#define CK_CALL_AT_(LEVEL, LEAD, NAME, ARGS) LEAD NAME##_baseline ARGS;
#endif

#define CK_DISPATCH_AT(LEVEL, NAME, ARGS) CK_CALL_AT_(LEVEL, , NAME, ARGS)
#define CK_DISPATCH_RETURN(NAME, ARGS) CK_CALL_AT_(ck_level_now(), return, NAME, ARGS)
#define CK_DISPATCH(NAME, ARGS) CK_DISPATCH_AT(ck_level_now(), NAME, ARGS)

#endif
