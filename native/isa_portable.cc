// The kernels in plain C++ for the compiler's baseline target: any CPU, and the fallback when
// neither AVX2 nor AVX-512 is present (or RED_ISA=portable asks for it).
#include "engine.h"
#define RED_ISA_PORTABLE 1
#define RED_ISA_NAME "portable"
namespace red::portable {
#include "simd.h"
#include "gemm.inl"
#include "kernels.inl"
#include "attention.inl"
#include "table.inl"
}  // namespace red::portable
