#!/usr/bin/env bash
# CKernels must build on hosts that are not x86-64 (their AVX2/AVX-512 paths are x86-only; the
# baseline path is portable C vectors). Cross-compiles each of its C files for arm64 and riscv64 with the
# toolchain's clang and fails on any error or warning. The host's glibc headers stand in for the
# targets' (only math.h, stdint.h and string.h are used); an empty gnu/stubs-32.h satisfies them.
set -euo pipefail
cd "$(dirname "$0")/.."
clang="$(dirname "$(command -v swift)")/clang"
stubs="$(mktemp -d)"
trap 'rm -rf "$stubs"' EXIT
mkdir -p "$stubs/gnu" && touch "$stubs/gnu/stubs-32.h"
for target in aarch64-linux-gnu riscv64-linux-gnu; do
    for source in Sources/CKernels/*.c; do
        "$clang" --target="$target" -O3 -Wall -Werror -c -o "$stubs/$(basename "$source" .c)-$target.o" \
            -isystem "$stubs" -isystem "/usr/include/$(uname -m)-linux-gnu" -ISources/CKernels/include "$source"
    done
done
echo "the CKernels sources build for aarch64 and riscv64"
