// bf16 GEMM, GEMV and linear layer with AVX-512 BF16 dot products (vdpbf16ps: each fp32 lane
// gains a[2i]·b[2i] + a[2i+1]·b[2i+1]); addon.cc runs them only when the CPU has avx512_bf16.
// The scheme is gemm.inl's (same blocking, same MR×NR tile, same threading), on K *pairs*: a bf16
// pair is one 32-bit word, so op(a) (M,K) row-major is an (M, K/2) matrix of words that gemm.inl's
// packA packs unchanged, and a (N,K) weight likewise for packBPanel; a (K,N) b is packed by
// interleaving rows 2p and 2p+1 (vpermt2w). Odd K or a transposed a are first copied into a
// padded (M, K+1) layout with a zero column, which leaves every sum unchanged.
// Where the CPU has AMX (amx_bf16) and Linux grants this process the tile state, the blocked
// product runs on AMX tiles instead (TDPBF16PS: a 16×32 by 32×16 bf16 block product per
// instruction), on the same packed B panels; vdpbf16ps remains for CPUs without AMX and RED_AMX=0.
// Decode-size products (M ≤ 8 with a (N,K) weight) are memory bound: the weight is widened to fp32
// in registers (a 16-bit shift) and multiplied by FMAs, streaming it once.
#include "engine.h"
#include <sys/syscall.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,amx-tile,amx-bf16,avx2,fma,bmi2"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,amx-tile,amx-bf16,avx2,fma,bmi2")
#endif
// gemm.inl's fp32 entry points are compiled here too but unused: only its packing is shared.
#pragma GCC diagnostic ignored "-Wunused-function"
#define RED_ISA_AVX512 1
#define RED_ISA_NAME "avx512_bf16"
namespace red::avx512bf16 {
#include "simd.h"
#include "gemm.inl"

// fp32 → bf16 bits, round to nearest even (NaN stays NaN).
static inline uint16_t toBf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
static inline float fromBf16(uint16_t h) {
  const uint32_t u = (uint32_t)h << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}
// 16 bf16 → 16 fp32 (exact).
static inline __m512 widen16(const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16));
}
static inline __m512 widenPart(const uint16_t* p, int n) {
  const __m256i h = _mm256_maskz_loadu_epi16((__mmask16)((1u << n) - 1u), p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
// x[0..n) → bf16 bits (nearest even).
static void roundToBf16(uint16_t* dst, const float* x, i64 n) {
  const i64 nv = n / 16;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (i64 v = 0; v < nv; ++v)
    _mm256_storeu_si256((__m256i*)(dst + v * 16), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + v * 16)));
  for (i64 i = nv * 16; i < n; ++i) dst[i] = toBf16(x[i]);
}

// The MR_×NR tile C ← [C +] Σ over kp K-pairs of Ap(kp, MR_) words · Bp(kp, NR) words.
// Both panels are read through float pointers (bit moves only) and reinterpreted in registers.
template <int MR_>
static inline void microKernelBf16(i64 kp, const float* __restrict Ap, const float* __restrict Bp, float* C, i64 ldc,
                                   int n, bool add) {
  __m512 c0[MR_], c1[MR_];
#pragma GCC unroll 16
  for (int i = 0; i < MR_; ++i) {
    c0[i] = c1[i] = _mm512_setzero_ps();
    __builtin_prefetch(C + i * ldc);
    __builtin_prefetch(C + i * ldc + W);
  }
#pragma GCC unroll 4
  for (i64 k = 0; k < kp; ++k) {
    const __m512bh b0 = (__m512bh)_mm512_castps_si512(_mm512_loadu_ps(Bp));
    const __m512bh b1 = (__m512bh)_mm512_castps_si512(_mm512_loadu_ps(Bp + W));
#pragma GCC unroll 16
    for (int i = 0; i < MR_; ++i) {
      const __m512bh a = (__m512bh)_mm512_castps_si512(_mm512_set1_ps(Ap[i]));
      c0[i] = _mm512_dpbf16_ps(c0[i], a, b0);
      c1[i] = _mm512_dpbf16_ps(c1[i], a, b1);
    }
    Ap += MR_;
    Bp += NR;
  }
  const int n0 = n < W ? n : W, n1 = n - n0;
  for (int i = 0; i < MR_; ++i) {
    float* row = C + i * ldc;
    Vf v0{c0[i]}, v1{c1[i]};
    if (add) v0 = vadd(v0, n0 == W ? vload(row) : vloadPart(row, n0));
    if (n0 == W) vstore(row, v0);
    else vstorePart(row, v0, n0);
    if (n1 > 0) {
      if (add) v1 = vadd(v1, n1 == W ? vload(row + W) : vloadPart(row + W, n1));
      if (n1 == W) vstore(row + W, v1);
      else vstorePart(row + W, v1, n1);
    }
  }
}

template <int... Ms>
struct MicroTableBf16 {
  using Fn = void (*)(i64, const float*, const float*, float*, i64, int, bool);
  static constexpr Fn fns[sizeof...(Ms)] = {&microKernelBf16<Ms + 1>...};
};
template <int... Ms>
constexpr typename MicroTableBf16<Ms...>::Fn MicroTableBf16<Ms...>::fns[sizeof...(Ms)];
template <int... Is>
static constexpr auto makeMicroTableBf16(std::integer_sequence<int, Is...>) { return MicroTableBf16<Is...>{}; }

static inline void microBf16(int m, i64 kp, const float* Ap, const float* Bp, float* C, i64 ldc, int n, bool add) {
  if (m == MR) return microKernelBf16<MR>(kp, Ap, Bp, C, ldc, n, add);
  using Table = decltype(makeMicroTableBf16(std::make_integer_sequence<int, MR>{}));
  Table::fns[m - 1](kp, Ap, Bp, C, ldc, n, add);
}

// Packs the K-pairs p0..p0+kp of a (K,N) bf16 b, columns j0..j0+NR, as one (kp, NR) panel of
// words (b[2p, j], b[2p+1, j]), zero past N. K is even here.
static void packBPairs(float* __restrict dst, const uint16_t* b, i64 N, i64 j0, i64 p0, i64 kp) {
  const int nr = (int)(N - j0 < NR ? N - j0 : NR);
  static const __m512i lo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38, 6,
                                             37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
  static const __m512i hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
  const __mmask32 mask = nr == NR ? ~(__mmask32)0 : (__mmask32)((1ull << nr) - 1);
  for (i64 p = 0; p < kp; ++p) {
    const uint16_t* r0 = b + 2 * (p0 + p) * N + j0;
    const __m512i x0 = _mm512_maskz_loadu_epi16(mask, r0), x1 = _mm512_maskz_loadu_epi16(mask, r0 + N);
    _mm512_storeu_ps(dst + p * NR, _mm512_castsi512_ps(_mm512_permutex2var_epi16(x0, lo, x1)));
    _mm512_storeu_ps(dst + p * NR + W, _mm512_castsi512_ps(_mm512_permutex2var_epi16(x0, hi, x1)));
  }
}

// op(b)'s K-pairs p0..+kp for columns j0..+NR as a (kp, NR) word panel, whatever b's layout.
static inline void packBPanelBf16(float* dst, const uint16_t* b, bool transB, i64 N, i64 K, i64 j0, i64 p0, i64 kp) {
  if (transB) packBPanel(dst, reinterpret_cast<const float*>(b), true, N, K / 2, j0, p0, kp);
  else packBPairs(dst, b, N, j0, p0, kp);
}

// The operands of a blocked bf16 product (a (M,K) row-major, K even; b as transB says), shared by
// its two Ops below.
struct Bf16Operands {
  const uint16_t *a, *b;
  bool transB;
  i64 M, N, K;
};

// blockedGemm's Ops for vdpbf16ps: a (M,K) row-major with K even (see the file comment) is an (M, K/2)
// matrix of words that packA packs unchanged.
struct DpBf16Ops : Bf16Operands {
  static constexpr i64 kPanelRows = MR, kChunkPanels = 2, kPad = 1;
  void packChunk(float* dst, i64 r0, i64 rows, i64 p0, i64 kp, i64) const {
    packA(dst, reinterpret_cast<const float*>(a), false, M, K / 2, r0, rows, p0, kp);
  }
  void packPanel(float* dst, i64 j0, i64 p0, i64 kp, i64) const { packBPanelBf16(dst, b, transB, N, K, j0, p0, kp); }
  static void micro(int mr, i64 kp, const float* Ap, const float* Bp, float* C, i64 ldc, int nr, bool add) {
    microBf16(mr, kp, Ap, Bp, C, ldc, nr, add);
  }
  static void threadBegin() {}
  static void threadEnd() {}
};

static void matmulBlocked(float* out, const uint16_t* a, const uint16_t* b, i64 M, i64 N, i64 K, bool transB,
                          bool accumulate) {
  blockedGemm(out, M, N, K / 2, accumulate, DpBf16Ops{{a, b, transB, M, N, K}});
}

// How far ahead (elements: 16 KB) gemvBf16 prefetches the weight stream; rows are contiguous, so
// near a row's end this fetches the next rows. Measured on 0.5B decode at batch 1: 56-58 ms per
// step without it, 49 ms with it (2-8K elements were within noise of each other).
constexpr i64 kGemvPrefetch = 8192;
// out[i, j] (+)= Σ_k ar[i, k]·w[j, k] for rows j0 ≤ j < j1 of the bf16 weight w (N, K), ar fp32
// (MM, K): the weight is streamed once and widened in registers.
template <int MM>
static void gemvBf16(float* out, const float* ar, const uint16_t* w, i64 j0, i64 j1, i64 N, i64 K, bool accumulate) {
  constexpr int S = MM <= 4 ? 2 : 1;
  const i64 kv = K / (S * W) * (S * W);
  for (i64 j = j0; j < j1; ++j) {
    const uint16_t* wj = w + j * K;
    __m512 acc[S][MM];
#pragma GCC unroll 8
    for (int s = 0; s < S; ++s)
#pragma GCC unroll 8
      for (int i = 0; i < MM; ++i) acc[s][i] = _mm512_setzero_ps();
    for (i64 k = 0; k < kv; k += S * W) {
      _mm_prefetch((const char*)(wj + k + kGemvPrefetch), _MM_HINT_T0);
#pragma GCC unroll 2
      for (int s = 0; s < S; ++s) {
        const __m512 bv = widen16(wj + k + s * W);
#pragma GCC unroll 8
        for (int i = 0; i < MM; ++i) acc[s][i] = _mm512_fmadd_ps(_mm512_loadu_ps(ar + i * K + k + s * W), bv, acc[s][i]);
      }
    }
    for (i64 k = kv; k < K; k += W) {
      const int n = K - k < W ? (int)(K - k) : W;
      const __m512 bv = widenPart(wj + k, n);
#pragma GCC unroll 8
      for (int i = 0; i < MM; ++i)
        acc[0][i] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), ar + i * K + k), bv, acc[0][i]);
    }
    for (int i = 0; i < MM; ++i) {
      const float sum = vhsum(Vf{S == 2 ? _mm512_add_ps(acc[0][i], acc[S - 1][i]) : acc[0][i]});
      float* o = out + i * N + j;
      *o = accumulate ? *o + sum : sum;
    }
  }
}

template <int... Ms>
struct GemvTableBf16 {
  using Fn = void (*)(float*, const float*, const uint16_t*, i64, i64, i64, i64, bool);
  static constexpr Fn fns[sizeof...(Ms)] = {&gemvBf16<Ms + 1>...};
};
template <int... Ms>
constexpr typename GemvTableBf16<Ms...>::Fn GemvTableBf16<Ms...>::fns[sizeof...(Ms)];
template <int... Is>
static constexpr auto makeGemvTableBf16(std::integer_sequence<int, Is...>) { return GemvTableBf16<Is...>{}; }

// M ≤ kSmallM rows of fp32 ar (M, K) times the bf16 weight w (N, K)ᵀ; threads as matmulSmallM.
static void gemvRowsBf16(float* out, const float* ar, const uint16_t* w, i64 M, i64 N, i64 K, bool accumulate) {
  using Table = decltype(makeGemvTableBf16(std::make_integer_sequence<int, (int)kSmallM>{}));
  const auto gemv = Table::fns[M - 1];
  if (N * K * 2 < kGemvParallelBytes || omp_get_max_threads() < 2) return gemv(out, ar, w, 0, N, N, K, accumulate);
  const i64 chunk = std::max<i64>(4, (((i64)1 << 20) / (K * 2) + 3) / 4 * 4);
  parallelTasks((N + chunk - 1) / chunk,
                [&](i64 c) { gemv(out, ar, w, c * chunk, std::min(N, (c + 1) * chunk), N, K, accumulate); });
}

// ---- AMX ----
// Tiles: 0-3 a 32×32 fp32 block of C (2×2 tiles of 16×16), 4-5 two 16-row A tiles (16 rows × 16
// K-pairs), 6-7 two B tiles (16 K-pairs × 16 columns, pair-interleaved: one packed B panel's halves).
struct alignas(64) TileConfig {
  uint8_t palette, startRow, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

// The tile configuration of this thread (loaded on every entry: cheap, and other code may release it).
static inline void amxBegin() {
  TileConfig cfg;
  std::memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
}

// Linux keeps AMX tile state off until a process asks (arch_prctl ARCH_REQ_XCOMP_PERM); RED_AMX=0
// turns AMX off here (the vdpbf16ps kernels then run).
static bool amxAvailable() {
  static const bool ok = [] {
    const char* env = std::getenv("RED_AMX");
    if (env && std::strcmp(env, "0") == 0) return false;
    unsigned a, b, c, d;
    __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
    if (!((d >> 22) & 1) || !((d >> 24) & 1)) return false;  // amx_bf16, amx_tile
    constexpr long kReqXcompPerm = 0x1023, kXtileData = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXtileData) == 0;
  }();
  return ok;
}

// C(m ≤ 32, n ≤ 32) at stride ldc [+]= Ap(32 rows at stride lda words, kp pairs)·Bp(kp, 32 words),
// kp a multiple of 16; padded rows of Ap and pairs past K are zero. A partial block goes through
// a 32×32 buffer (tile stores write whole rows of 16 floats).
static void amxBlock(i64 kp, const float* Ap, i64 lda, const float* Bp, float* C, i64 ldc, int m, int n, bool add) {
  alignas(64) float tmp[32 * 32];
  const bool full = m == 32 && n == 32;
  float* c = full ? C : tmp;
  const i64 ldcBytes = (full ? ldc : 32) * 4;
  if (!full) {
    std::memset(tmp, 0, sizeof tmp);
    if (add)
      for (int i = 0; i < m; ++i) std::memcpy(tmp + i * 32, C + i * ldc, n * 4);
  }
  __asm__ volatile("" ::: "memory");  // the AMX intrinsics are asm without a memory clobber
  const i64 ldcF = ldcBytes / 4;
  if (add) {
    _tile_loadd(0, c, ldcBytes);
    _tile_loadd(1, c + 16, ldcBytes);
    _tile_loadd(2, c + 16 * ldcF, ldcBytes);
    _tile_loadd(3, c + 16 * ldcF + 16, ldcBytes);
  } else {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  const i64 ldaBytes = lda * 4;
  // Software-pipelined: tiles are not renamed, so each operand of step k+1 is loaded as soon as
  // the last product of step k that reads its tile has been issued.
  _tile_loadd(4, Ap, ldaBytes);
  _tile_loadd(6, Bp, NR * 4);
  _tile_loadd(7, Bp + 16, NR * 4);
  _tile_loadd(5, Ap + 16 * lda, ldaBytes);
  for (i64 k = 0; k < kp; k += 16) {
    const i64 n = k + 16;
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    if (n < kp) _tile_loadd(4, Ap + n, ldaBytes);
    _tile_dpbf16ps(2, 5, 6);
    if (n < kp) _tile_loadd(6, Bp + n * NR, NR * 4);
    _tile_dpbf16ps(3, 5, 7);
    if (n < kp) {
      _tile_loadd(7, Bp + n * NR + 16, NR * 4);
      _tile_loadd(5, Ap + 16 * lda + n, ldaBytes);
    }
  }
  _tile_stored(0, c, ldcBytes);
  _tile_stored(1, c + 16, ldcBytes);
  _tile_stored(2, c + 16 * ldcF, ldcBytes);
  _tile_stored(3, c + 16 * ldcF + 16, ldcBytes);
  __asm__ volatile("" ::: "memory");
  if (!full)
    for (int i = 0; i < m; ++i) std::memcpy(C + i * ldc, tmp + i * 32, n * 4);
}

// blockedGemm's Ops for AMX: chunks of one 32-row block, copied as zero-padded rows of kcp words
// (a multiple of 16 pairs, as the B panels).
struct AmxOps : Bf16Operands {
  static constexpr i64 kPanelRows = 32, kChunkPanels = 1, kPad = 16;
  void packChunk(float* dst, i64 r0, i64 rows, i64 p0, i64 kp, i64 kpp) const {
    const uint32_t* aw = reinterpret_cast<const uint32_t*>(a);
    for (i64 r = 0; r < kPanelRows; ++r) {
      float* d = dst + r * kpp;
      if (r < rows) {
        std::memcpy(d, aw + (r0 + r) * (K / 2) + p0, kp * 4);
        std::memset(d + kp, 0, (kpp - kp) * 4);
      } else {
        std::memset(d, 0, kpp * 4);
      }
    }
  }
  void packPanel(float* dst, i64 j0, i64 p0, i64 kp, i64 kpp) const {
    packBPanelBf16(dst, b, transB, N, K, j0, p0, kp);
    std::memset(dst + kp * NR, 0, (kpp - kp) * NR * 4);
  }
  static void micro(int mr, i64 kpp, const float* Ap, const float* Bp, float* C, i64 ldc, int nr, bool add) {
    amxBlock(kpp, Ap, kpp, Bp, C, ldc, mr, nr, add);
  }
  static void threadBegin() { amxBegin(); }
  static void threadEnd() { _tile_release(); }
};

// The blocked product on AMX tiles; the loop nest and its blocks are gemm.inl's (KCB, NCB: measured
// against a B block shared in L3 with 192-row A blocks, best of 15 interleaved: +9-29% on five of
// six shapes, 896×4096×4864 within noise).
static void matmulAmx(float* out, const uint16_t* a, const uint16_t* b, i64 M, i64 N, i64 K, bool transB,
                      bool accumulate) {
  blockedGemm(out, M, N, K / 2, accumulate, AmxOps{{a, b, transB, M, N, K}});
}

// Decode batches on AMX (a few rows of a against a (N,K) weight w, K even): w is the tiles' A
// operand, loaded straight from its rows (16 rows × 16 K-pairs a tile), so it streams once and is
// never packed; the rows of a are packed instead, as K-pair words transposed to (K/2, Mp). A task
// takes 32 rows of w (16 with at most 16 rows of a) through 4 C tiles per 32 (16) columns and
// writes outᵀ back transposed. The blocked path packs all of w on every call: a 0.5B decode step
// at batch 16 took 3-4× the time to stream its weights.
// Where it wins (measured, 2-core Xeon): from 5 rows (8 rows × the 0.5B MLP weights: 0.21-0.22 ms
// against 0.35-0.53 through FMAs; they tie at 4) to 64; up to 256 rows when w is wide and short
// (N ≥ 4096, K ≤ 1024: 1.2-1.75× at 96-256 rows of the 0.5B gate/up and lm head), where its 32
// rows stay in L1 while the column blocks pass; with N = 896-1152 or K = 4864 the blocked path was
// as fast or faster.
static inline bool amxWeightRows(i64 M, i64 N, i64 K, bool transA, bool transB) {
  const bool shape = M <= 64 || (M <= 256 && K <= 1024 && N >= 4096);
  return M >= 5 && shape && transB && !transA && K % 2 == 0 && amxAvailable();
}

// Where one A tile (16 rows of w from n, K-pairs k..k+16) loads from, and its row stride in bytes:
// w itself when the tile is all there, else a zero-padded copy in pad.
static inline const uint32_t* weightTile(const uint32_t* ww, i64 N, i64 K2, i64 n, i64 k, uint32_t* pad,
                                         i64& strideBytes) {
  strideBytes = K2 * 4;
  if (n + 16 <= N && k + 16 <= K2) return ww + n * K2 + k;
  std::memset(pad, 0, 16 * 16 * 4);
  for (i64 r = 0; r < 16 && n + r < N; ++r)
    std::memcpy(pad + r * 16, ww + (n + r) * K2 + k, std::min<i64>(16, K2 - k) * 4);
  strideBytes = 64;
  return pad;
}
// (The AMX intrinsics are asm without a memory clobber: the fences keep pad's copy before the tile
// load that reads it, and the next copy after.)
#define RED_LOAD_WEIGHT_TILE(T, n)                                      \
  do {                                                                  \
    i64 stride_;                                                        \
    const uint32_t* src_ = weightTile(ww, N, K2, (n), k, pad, stride_); \
    __asm__ volatile("" ::: "memory");                                  \
    _tile_loadd(T, src_, stride_);                                      \
    __asm__ volatile("" ::: "memory");                                  \
  } while (0)

// C tile (16 rows n0.. of w × 16 columns t0.. of a), stored in tmp, transposed into out[t][n].
static inline void storeTransposedTile(float* out, const float* tmp, i64 M, i64 N, i64 n0, i64 t0, bool accumulate) {
  Vf r[16];
  for (int i = 0; i < 16; ++i) r[i] = vload(tmp + i * 16);
  vtranspose(r);  // r[j] = column t0 + j over the 16 rows n0..
  const int nn = (int)std::min<i64>(16, N - n0);
  for (int j = 0; j < 16 && t0 + j < M; ++j) {
    float* o = out + (t0 + j) * N + n0;
    Vf v = r[j];
    if (accumulate) v = vadd(v, nn == 16 ? vload(o) : vloadPart(o, nn));
    if (nn == 16) vstore(o, v);
    else vstorePart(o, v, nn);
  }
}

// Rows n0..n0+64/MB of w against the M columns of xT (K2p, Mp) words, 16·MB columns at a time
// (MB = 1: 4 n-groups × 1 column tile; MB = 2: 2 × 2).
template <int MB>
static void amxWeightRowsTask(float* out, const uint32_t* xT, i64 Mp, const uint32_t* ww, i64 M, i64 N, i64 K2,
                              i64 n0, bool accumulate) {
  alignas(64) uint32_t pad[16 * 16];
  alignas(64) float tmp[4][16 * 16];
  const i64 xs = Mp * 4;  // xT's row stride in bytes
  for (i64 m0 = 0; m0 < M; m0 += 16 * MB) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (i64 k = 0; k < K2; k += 16) {
      const uint32_t* xk = xT + k * Mp + m0;  // 16 K-pair rows of this column block
      if constexpr (MB == 1) {
        _tile_loadd(6, xk, xs);
        RED_LOAD_WEIGHT_TILE(4, n0);
        _tile_dpbf16ps(0, 4, 6);
        RED_LOAD_WEIGHT_TILE(5, n0 + 16);
        _tile_dpbf16ps(1, 5, 6);
        RED_LOAD_WEIGHT_TILE(4, n0 + 32);
        _tile_dpbf16ps(2, 4, 6);
        RED_LOAD_WEIGHT_TILE(5, n0 + 48);
        _tile_dpbf16ps(3, 5, 6);
      } else {
        RED_LOAD_WEIGHT_TILE(4, n0);
        RED_LOAD_WEIGHT_TILE(5, n0 + 16);
        _tile_loadd(6, xk, xs);
        _tile_loadd(7, xk + 16, xs);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
    }
    _tile_stored(0, tmp[0], 64);
    _tile_stored(1, tmp[1], 64);
    _tile_stored(2, tmp[2], 64);
    _tile_stored(3, tmp[3], 64);
    __asm__ volatile("" ::: "memory");
    for (int c = 0; c < 4; ++c) {  // C tile c = n-group c / MB, column tile c % MB
      const i64 n = n0 + 16 * (c / MB);
      if (n < N) storeTransposedTile(out, tmp[c], M, N, n, m0 + 16 * (c % MB), accumulate);
    }
  }
}

#undef RED_LOAD_WEIGHT_TILE

static void matmulAmxWeightRows(float* out, const uint16_t* a, const uint16_t* w, i64 M, i64 N, i64 K,
                                bool accumulate) {
  const i64 K2 = K / 2, K2p = (K2 + 15) / 16 * 16, MB = M <= 16 ? 1 : 2, Mp = (M + 16 * MB - 1) / (16 * MB) * 16 * MB;
  static thread_local Scratch sx;
  uint32_t* xT = static_cast<uint32_t*>(sx.bytes((size_t)K2p * Mp * 4));  // (K2p, Mp), zero past K2 and M
  std::memset(xT, 0, (size_t)K2p * Mp * 4);
  const uint32_t* aw = reinterpret_cast<const uint32_t*>(a);
  for (i64 t = 0; t < M; ++t)
    for (i64 p = 0; p < K2; ++p) xT[p * Mp + t] = aw[t * K2 + p];
  const uint32_t* ww = reinterpret_cast<const uint32_t*>(w);
  const auto task = MB == 1 ? amxWeightRowsTask<1> : amxWeightRowsTask<2>;
  const i64 rows = 64 / MB;  // rows of w per task: 4 / MB n-groups of 16
  parallelTasks((N + rows - 1) / rows, [&](i64 g) {
    amxBegin();
    task(out, xT, Mp, ww, M, N, K2, g * rows, accumulate);
    _tile_release();
  });
}

// The AMX peak: 4 independent TDPBF16PS chains on registers-only tiles, every thread at once.
static double peakAmx(double seconds) {
  if (!amxAvailable()) return 0;
  const int nthreads = omp_get_max_threads();
  i64 iters = 1 << 12;
  double best = 0;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(nthreads)
    {
      amxBegin();
      alignas(64) static thread_local uint16_t src[16 * 32];
      for (int i = 0; i < 16 * 32; ++i) src[i] = 0x3f80;
      __asm__ volatile("" ::: "memory");
      _tile_loadd(4, src, 64);
      _tile_loadd(5, src, 64);
      _tile_loadd(6, src, 64);
      _tile_loadd(7, src, 64);
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (i64 it = 0; it < iters; ++it) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
      _tile_release();
    }
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 4.0 * 16 * 16 * 32 * 2 * (double)iters * nthreads / dt / 1e9);
    if (dt >= seconds) return best;
    iters = dt < seconds / 8 ? iters * 4 : (i64)(iters * (seconds / dt) + 1);
  }
}

static void matmulBf16(float* out, const uint16_t* a, const uint16_t* b, i64 M, i64 N, i64 K, bool transA, bool transB,
                       bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate) std::memset(out, 0, sizeof(float) * M * N);
    return;
  }
  if (amxWeightRows(M, N, K, transA, transB)) return matmulAmxWeightRows(out, a, b, M, N, K, accumulate);
  if (M <= kSmallM && transB) {  // decode: a widened to fp32 (exact), the weight streamed once
    static thread_local Scratch sa;
    float* af = sa.get((size_t)M * K);
    for (i64 i = 0; i < M; ++i)
      for (i64 k = 0; k < K; ++k) af[i * K + k] = fromBf16(transA ? a[k * M + i] : a[i * K + k]);
    return gemvRowsBf16(out, af, b, M, N, K, accumulate);
  }
  const auto blocked = amxAvailable() ? matmulAmx : matmulBlocked;
  if (K % 2 == 0 && !transA) return blocked(out, a, b, M, N, K, transB, accumulate);
  // Odd K or a transposed a: copy into even-K row-major layouts (zero-padded K), then as above.
  const i64 Kp = K + (K & 1);
  static thread_local Scratch sa, sb;
  uint16_t* ap = static_cast<uint16_t*>(sa.bytes((size_t)M * Kp * 2));
  for (i64 i = 0; i < M; ++i) {
    for (i64 k = 0; k < K; ++k) ap[i * Kp + k] = transA ? a[k * M + i] : a[i * K + k];
    if (Kp > K) ap[i * Kp + K] = 0;
  }
  const uint16_t* bp = b;
  if (Kp > K) {
    uint16_t* t = static_cast<uint16_t*>(sb.bytes((size_t)N * Kp * 2));
    if (transB) {
      for (i64 j = 0; j < N; ++j) {
        std::memcpy(t + j * Kp, b + j * K, K * 2);
        t[j * Kp + K] = 0;
      }
    } else {
      std::memcpy(t, b, (size_t)K * N * 2);
      std::memset(t + K * N, 0, N * 2);
    }
    bp = t;
  }
  blocked(out, ap, bp, M, N, Kp, transB, accumulate);
}

static void linearForwardBf16(float* out, const float* inp, const uint16_t* weight, const float* bias, i64 T, i64 C,
                              i64 OC) {
  if (T <= 0 || OC <= 0) return;
  // A few rows without AMX tiles for them: the input rounded to bf16 values kept in fp32, then
  // the weight streamed once; otherwise the input rounded to bf16 and matmulBf16.
  if (T <= kSmallM && !amxWeightRows(T, OC, C, false, true)) {
    static thread_local Scratch sx;
    float* xr = sx.get((size_t)T * C);
    for (i64 i = 0; i < T * C; ++i) xr[i] = fromBf16(toBf16(inp[i]));
    gemvRowsBf16(out, xr, weight, T, OC, C, false);
  } else {
    static thread_local Scratch sx;
    uint16_t* xb = static_cast<uint16_t*>(sx.bytes((size_t)T * C * 2));
    roundToBf16(xb, inp, T * C);
    matmulBf16(out, xb, weight, T, OC, C, false, true, false);
  }
  if (bias)
    for (i64 t = 0; t < T; ++t)
      for (i64 o = 0; o < OC; ++o) out[t * OC + o] += bias[o];
}

// x ≈ hi + lo with hi = bf16(x) and lo = bf16(x − hi): the pair carries x to about 2⁻¹⁷ of its
// size (hi + lo is exact in fp32), where hi alone carries it to 2⁻⁹. split16 is 16 lanes of it.
static inline void split16(__m512 v, __m256i& hi, __m256i& lo) {
  hi = (__m256i)_mm512_cvtneps_pbh(v);
  const __m512 hf = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(hi), 16));
  lo = (__m256i)_mm512_cvtneps_pbh(_mm512_sub_ps(v, hf));
}
static void splitBf16(uint16_t* hi, uint16_t* lo, const float* x, i64 n) {
  const i64 nv = n / 16;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (i64 v = 0; v < nv; ++v) {
    __m256i h, l;
    split16(_mm512_loadu_ps(x + v * 16), h, l);
    _mm256_storeu_si256((__m256i*)(hi + v * 16), h);
    _mm256_storeu_si256((__m256i*)(lo + v * 16), l);
  }
  for (i64 i = nv * 16; i < n; ++i) {
    hi[i] = toBf16(x[i]);
    lo[i] = toBf16(x[i] - fromBf16(hi[i]));
  }
}

// x (T, C) read transposed: for each column c and 16 rows t0.., store(v, m, c·T + t0) gets the 16
// values in one register (lanes past T are 0 and off in the mask m) and their offset in the (C, T)
// layout, where they are 16 consecutive elements. 16×16 blocks are transposed in registers (a
// gather per column took ~3× as long: ~150 ms of a 20M bf16 backward); row blocks go to threads.
template <class Store>
static inline void forEachTransposed16(const float* x, i64 T, i64 C, Store store) {
  const i64 rowBlocks = (T + 15) / 16;
#pragma omp parallel for schedule(static) if (T * C > kParallelMin)
  for (i64 rb = 0; rb < rowBlocks; ++rb) {
    const i64 t0 = rb * 16;
    const int n = T - t0 < 16 ? (int)(T - t0) : 16;
    const __mmask16 m = (__mmask16)((1u << n) - 1u);
    const float* base = x + t0 * C;
    for (i64 c0 = 0; c0 < C; c0 += 16) {
      const int w = C - c0 < 16 ? (int)(C - c0) : 16;
      Vf r[16];
      for (int i = 0; i < 16; ++i) r[i] = i >= n ? vzero() : w == 16 ? vload(base + i * C + c0) : vloadPart(base + i * C + c0, w);
      vtranspose(r);
      for (int j = 0; j < w; ++j) store(r[j].v, m, (c0 + j) * T + t0);
    }
  }
}
// Rows t of x (T, C) rounded to bf16 and transposed: dst (C, T).
static void roundTransposed(uint16_t* dst, const float* x, i64 T, i64 C) {
  forEachTransposed16(x, T, C, [&](__m512 v, __mmask16 m, i64 o) {
    _mm256_mask_storeu_epi16(dst + o, m, (__m256i)_mm512_cvtneps_pbh(v));
  });
}
// splitBf16 of x (T, C), each part transposed to (C, T).
static void splitTransposed(uint16_t* hi, uint16_t* lo, const float* x, i64 T, i64 C) {
  forEachTransposed16(x, T, C, [&](__m512 v, __mmask16 m, i64 o) {
    __m256i h, l;
    split16(v, h, l);
    _mm256_mask_storeu_epi16(hi + o, m, h);
    _mm256_mask_storeu_epi16(lo + o, m, l);
  });
}

// dout and inp are fp32; the bf16 weight is exact. Rounded (split false, the usual mixed
// precision): dinp = bf16(dout)·W and dweight += bf16(dout)ᵀ·bf16(inp), one bf16 product each.
// Split (splitBf16): dinp = (dh + dl)·W (two products) and dweight += dhᵀ·xh + dlᵀ·xh + dhᵀ·xl
// (three; dlᵀ·xl is below 2⁻¹⁷): fp32's accuracy to about 2⁻¹⁶ at 2.5× the bf16 products' work,
// still faster than fp32 FMAs where AMX runs them. Which trains better is open (model.bf16Backward).
static void linearBackwardBf16(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                               const uint16_t* weight, i64 T, i64 C, i64 OC, bool split) {
  if (T <= 0) return;
  static thread_local Scratch sdh, sdl, sxh, sxl;
  uint16_t* dh = static_cast<uint16_t*>(sdh.bytes((size_t)T * OC * 2));
  uint16_t* dl = split ? static_cast<uint16_t*>(sdl.bytes((size_t)T * OC * 2)) : nullptr;
  uint16_t* xh = static_cast<uint16_t*>(sxh.bytes((size_t)T * C * 2));
  uint16_t* xl = split ? static_cast<uint16_t*>(sxl.bytes((size_t)T * C * 2)) : nullptr;
  if (dinp) {
    if (split) splitBf16(dh, dl, dout, T * OC);
    else roundToBf16(dh, dout, T * OC);
    matmulBf16(dinp, dh, weight, T, C, OC, false, false, false);  // (T,OC)·(OC,C)
    if (split) matmulBf16(dinp, dl, weight, T, C, OC, false, false, true);
  }
  if (split) {
    splitTransposed(dh, dl, dout, T, OC);  // (OC, T) each
    splitBf16(xh, xl, inp, T * C);
  } else {
    roundTransposed(dh, dout, T, OC);  // (OC, T)
    roundToBf16(xh, inp, T * C);
  }
  matmulBf16(dweight, dh, xh, OC, C, T, false, false, true);  // (OC,T)·(T,C), accumulated
  if (split) {
    matmulBf16(dweight, dl, xh, OC, C, T, false, false, true);
    matmulBf16(dweight, dh, xl, OC, C, T, false, false, true);
  }
  if (dbias)
    for (i64 t = 0; t < T; ++t)
      for (i64 o = 0; o < OC; ++o) dbias[o] += dout[t * OC + o];
}

// The bf16 peak: NACC independent vdpbf16ps chains per thread on registers, every thread at once.
static double peakBf16(double seconds) {
  constexpr int NACC = 24;
  const int nthreads = omp_get_max_threads();
  i64 iters = 1 << 16;
  double best = 0;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    float sink = 0;
#pragma omp parallel num_threads(nthreads) reduction(+ : sink)
    {
      __m512 acc[NACC];
      const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3380);  // 1, ~6e-8
      for (int i = 0; i < NACC; ++i) acc[i] = _mm512_set1_ps((float)i);
      for (i64 it = 0; it < iters; ++it) {
#pragma GCC unroll 32
        for (int i = 0; i < NACC; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
      }
      __m512 s = acc[0];
      for (int i = 1; i < NACC; ++i) s = _mm512_add_ps(s, acc[i]);
      sink += vhsum(Vf{s});
    }
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    volatile float keep = sink;
    (void)keep;
    best = std::max(best, 4.0 * W * NACC * (double)iters * nthreads / dt / 1e9);
    if (dt >= seconds) return best;
    iters = dt < seconds / 8 ? iters * 4 : (i64)(iters * (seconds / dt) + 1);
  }
}

extern const Bf16Kernels kernels;
static const char* unitName() { return amxAvailable() ? "avx512_bf16+amx" : RED_ISA_NAME; }

const Bf16Kernels kernels = {RED_ISA_NAME, unitName, matmulBf16, linearForwardBf16, linearBackwardBf16, roundToBf16,
                              peakBf16, peakAmx};
}  // namespace red::avx512bf16
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
