// The kernels compiled for AVX2 + FMA (Haswell, Zen 1-3); addon.cc runs them only when the CPU has them.
#include "engine.h"
#if defined(__x86_64__) || defined(__i386__)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,bmi2"))), apply_to = function)
#else
#pragma GCC target("avx2,fma,bmi2")
#endif
#define RED_ISA_AVX2 1
#define RED_ISA_NAME "avx2"
namespace red::avx2 {
#include "simd.h"
#include "gemm.inl"
#include "kernels.inl"
#include "attention.inl"
#include "table.inl"
}  // namespace red::avx2
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
