// The kernels compiled for AVX-512 (F/BW/VL/DQ + FMA); addon.cc runs them only when the CPU has them.
#include "engine.h"
#if defined(__x86_64__) || defined(__i386__)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi2"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi2")
#endif
#define RED_ISA_AVX512 1
#define RED_ISA_NAME "avx512"
namespace red::avx512 {
#include "simd.h"
#include "gemm.inl"
#include "kernels.inl"
#include "attention.inl"
#include "table.inl"
}  // namespace red::avx512
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
