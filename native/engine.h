// The native engine's kernel table: one `Kernels` per instruction set (isa_avx512.cc, isa_avx2.cc,
// isa_portable.cc compile the same kernel sources under different targets); addon.cc picks one at
// load time and binds its entries to JavaScript. Semantics are those of src/engine/backend.ts.
// Shape vocabulary: T tokens, C channels, OC output channels, V vocab, NH/NKV heads, HD head dim,
// B sequences (or decode slots). Every buffer is row-major float32 (ids int32).
#pragma once

// Every standard header the kernel sources use is included here, BEFORE any `#pragma GCC target`,
// so that library inline functions keep the default target and the linker never merges an
// AVX-512 copy of one into the portable path.
#if defined(__x86_64__) || defined(__i386__)
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_ps() and warn falsely (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif
#ifdef _OPENMP
#include <omp.h>
#else
// Built without OpenMP (a compiler without it, e.g. clang lacking libomp): the pragmas are
// ignored and the kernels run on one thread; the task pool then has no helpers.
inline int omp_get_max_threads() { return 1; }
#endif
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <functional>
#include <chrono>
#include <type_traits>
#include <utility>
#include <vector>

namespace red {

using i64 = int64_t;

// Grow-only, 64-byte aligned scratch; kernels keep one per thread (`static thread_local`), so each
// JS thread and each OpenMP worker has its own and nothing is allocated per call in steady state.
struct Scratch {
  void* ptr = nullptr;
  size_t cap = 0;  // bytes
  ~Scratch() { std::free(ptr); }
  void* bytes(size_t n) {
    if (n > cap) {
      std::free(ptr);
      cap = (n + n / 4 + 63) / 64 * 64;
      ptr = std::aligned_alloc(64, cap);
    }
    return ptr;
  }
  float* get(size_t floats) { return static_cast<float*>(bytes(floats * sizeof(float))); }
  int32_t* ints(size_t n) { return static_cast<int32_t*>(bytes(n * sizeof(int32_t))); }
};

// Memory-bound loops below this much work (elements) stay on one thread. An OpenMP fork costs
// microseconds on an idle machine but 0.1-0.3 ms when the worker's core is busy (the shared 2-core
// machine): at 2^15 a batch-64 decode step's SwiGLU (64×1408) took 2.2 ms over 8 layers on two
// threads vs 0.46 ms on one. 2^18 floats (1 MiB) stream in ~50 µs on one thread.
constexpr i64 kParallelMin = 1 << 18;

// Runs fn(ctx, task) for task = 0..n−1 on the calling thread and the pool's helper threads
// (pool.cc), in any order, each task once; returns when all are done. Unlike an OpenMP parallel
// region, the caller never waits for a helper that has not started, so on a busy machine a small
// job costs no more than running it alone. Not reentrant: a task must not call it (it would run
// serially). Tasks use their own thread's `static thread_local` Scratch.
void runTasks(i64 n, void (*fn)(void* ctx, i64 task), void* ctx);
template <class F>
inline void parallelTasks(i64 n, F&& body) {
  using Body = std::remove_reference_t<F>;
  runTasks(n, [](void* ctx, i64 task) { (*static_cast<Body*>(ctx))(task); }, (void*)&body);
}

struct Kernels {
  const char* isa;
  // out(M,N) = op(a)(M,K)·op(b)(K,N) [+ out]; a (M,K) or (K,M) if transA; b (K,N) or (N,K) if transB.
  void (*matmul)(float* out, const float* a, const float* b, i64 M, i64 N, i64 K, bool transA, bool transB,
                 bool accumulate);
  void (*linearForward)(float* out, const float* inp, const float* weight, const float* bias, i64 T, i64 C, i64 OC);
  void (*linearBackward)(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                         const float* weight, i64 T, i64 C, i64 OC);
  void (*embeddingForward)(float* out, const int32_t* ids, const float* wte, i64 T, i64 C);
  void (*embeddingBackward)(float* dwte, const float* dout, const int32_t* ids, i64 T, i64 C);
  void (*rmsnormForward)(float* out, float* rstd, const float* inp, const float* weight, i64 T, i64 C, float eps);
  void (*rmsnormBackward)(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                          const float* rstd, i64 T, i64 C);
  void (*ropeForward)(float* x, const int32_t* positions, i64 T, i64 NH, i64 HD, double theta);
  void (*ropeBackward)(float* dx, const int32_t* positions, i64 T, i64 NH, i64 HD, double theta);
  void (*attentionForward)(float* out, float* lse, const float* q, const float* k, const float* v,
                           const int32_t* cuSeqlens, i64 B, i64 T, i64 NH, i64 NKV, i64 HD);
  void (*attentionBackward)(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                            const float* v, const float* out, const float* lse, const int32_t* cuSeqlens, i64 B,
                            i64 T, i64 NH, i64 NKV, i64 HD);
  void (*attentionDecode)(float* out, const float* q, const float* kCache, const float* vCache,
                          const int32_t* slots, const int32_t* lens, i64 B, i64 NH, i64 NKV, i64 HD, i64 maxLen);
  // attentionDecode reading a bf16 cache (raw bits), widened exactly.
  void (*attentionDecodeBf16)(float* out, const float* q, const uint16_t* kCache, const uint16_t* vCache,
                              const int32_t* slots, const int32_t* lens, i64 B, i64 NH, i64 NKV, i64 HD, i64 maxLen);
  void (*swigluForward)(float* out, const float* gateUp, i64 T, i64 I);
  void (*swigluBackward)(float* dgateUp, const float* dout, const float* gateUp, i64 T, i64 I);
  void (*add)(float* out, const float* a, const float* b, i64 n);
  void (*lossHeadForward)(float* logprob, float* entropy, const float* logits, const int32_t* targets, i64 T, i64 V);
  void (*lossHeadBackward)(float* dlogits, const float* logits, const int32_t* targets, const float* coefLogprob,
                           const float* coefEntropy, i64 T, i64 V);
  void (*adamw)(float* params, const float* grads, float* m, float* v, i64 n, double lr, double beta1, double beta2,
                double eps, double weightDecay, double step);
  double (*sumSquares)(const float* x, i64 n);
  void (*scale)(float* x, float s, i64 n);
  // GFLOP/s of a register-only loop of independent FMAs on every thread for about `seconds`: the
  // machine's fp32 peak as this ISA reaches it (no memory traffic).
  double (*peakFp32)(double seconds);
  // out[0] = id, out[1] = logprob of a token drawn from logits z (V) at 1/T = invT (0: greedy) with
  // the uniform u ∈ [0, 1): inverse CDF in vocabulary order (src/engine/backend.ts chooseToken).
  void (*chooseToken)(double* out, const float* z, i64 V, double invT, double u);
  // The same with top-k (topK > 0) and/or top-p (topP < 1) at invT > 0 (src/engine/kernels.ts
  // chooseTokenTruncated): the draw is the inverse CDF over the kept ids in vocabulary order.
  void (*chooseTokenTruncated)(double* out, const float* z, i64 V, double invT, i64 topK, double topP, double u);
};

// bf16 operands (raw bfloat16 bits in uint16_t), fp32 accumulation. One table with AVX-512 BF16
// dot products (vdpbf16ps, bf16.cc); addon.cc falls back to converting to fp32 for the fp32
// kernels when the CPU lacks them. Semantics are those of src/engine/backend.ts.
struct Bf16Kernels {
  const char* isa;
  // What the blocked bf16 GEMM runs on: "avx512_bf16" (vdpbf16ps) or "avx512_bf16+amx" (AMX tiles).
  const char* (*unit)();
  // out(M,N) fp32 = op(a)(M,K)·op(b)(K,N) [+ out], a and b bf16, as matmul.
  void (*matmul)(float* out, const uint16_t* a, const uint16_t* b, i64 M, i64 N, i64 K, bool transA, bool transB,
                 bool accumulate);
  // out(T,OC) = bf16(inp)(T,C)·weight(OC,C)ᵀ + bias: the input rounded to bf16 (nearest even).
  void (*linearForward)(float* out, const float* inp, const uint16_t* weight, const float* bias, i64 T, i64 C,
                        i64 OC);
  // dinp(T,C) = bf16(dout)·weight (written; may be null); dweight(OC,C) += bf16(dout)ᵀ·bf16(inp);
  // dbias(OC) += Σ_t dout (fp32; may be null). split: dout and inp as bf16 hi+lo pairs instead of
  // rounded, as accurate as fp32 products on the widened weight.
  void (*linearBackward)(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                         const uint16_t* weight, i64 T, i64 C, i64 OC, bool split);
  // out(n) ← bf16 bits of x (nearest even).
  void (*round)(uint16_t* out, const float* x, i64 n);
  // GFLOP/s of a register-only loop of bf16 dot products (2 products + 2 adds per fp32 lane).
  double (*peak)(double seconds);
  // GFLOP/s of a tile-only loop of AMX TDPBF16PS; 0 without AMX.
  double (*peakAmx)(double seconds);
};
namespace avx512bf16 { extern const Bf16Kernels kernels; }

namespace avx512 { extern const Kernels kernels; }
namespace avx2 { extern const Kernels kernels; }
namespace portable { extern const Kernels kernels; }

}  // namespace red
