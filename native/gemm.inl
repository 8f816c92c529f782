// GEMM: out(M,N) = op(a)(M,K)·op(b)(K,N) [+ out], the BLIS/Goto scheme with the roles of A and B
// chosen for this register tile (A broadcast from an MR-row micro-panel, B loaded as NR-wide
// vectors). Many rows (blockedGemm), loops outermost first:
//   pc: K in equal blocks ≤ KCB  (each block packed once, whatever the transposes: packing absorbs them)
//   jc: N in equal blocks ≤ NCB  (the packed B block, ≤ KCB×NCB: packed by all threads, then read by
//                                every core from its own L2)
//   ir: MR-row micro-panels of A, in chunks the threads take dynamically; each chunk is packed
//       into an L1 buffer and run against every B micro-panel of the block (with many threads and
//       few chunks, against a slice of them: the chunk is then packed once per slice)
//   jr: NR-column micro-panels of B → microKernel: an MR×NR register tile updated kc times by FMAs.
// Few rows (matmulFewRows): the threads take B micro-panels instead and pack them on the fly. Edges:
// the last A micro-panel is packed with fewer rows and a kernel for exactly that many rows runs;
// the last B micro-panel is zero-padded and stored through a lane mask. M ≤ 8 (decoding a few
// tokens) skips packing. Included by the isa_*.cc files inside their namespace, after simd.h.

// KC, MC: the few-rows path's K block and its row limit (2·MC); KCB, NCB: blockedGemm's blocks. A
// B block of KCB×NCB floats (1.5 MB with AVX-512) stays in a 2 MB L2 beside the A chunks streaming
// through L1. Against row blocks of a B block shared in L3 (the Goto order), measured on this
// 2-core Xeon (AMX/AVX-512), best of 20 interleaved: 1024³ +2-7%, 4096×896×896 +7-12%,
// 4096×896×4864 +4-11%, 20M fp32 train step +6%.
#if defined(RED_ISA_AVX512)
constexpr int MR = 14;   // 14×32 tile = 28 zmm accumulators + 2 for B (32 registers)
constexpr i64 KC = 512, MC = 168, KCB = 256, NCB = 1536;
#elif defined(RED_ISA_AVX2)
constexpr int MR = 6;    // 6×16 tile = 12 ymm accumulators + 2 for B + 1 broadcast (16 registers)
constexpr i64 KC = 256, MC = 120, KCB = 256, NCB = 1024;
#else
constexpr int MR = 4;
constexpr i64 KC = 256, MC = 64, KCB = 256, NCB = 512;
#endif
constexpr int NR = 2 * W;
static_assert(MR <= W, "packA transposes MR rows as one W×W block");

// The MR_×NR tile C(m ≤ MR_, n ≤ NR) at stride ldc ← [C +] Ap(kc,MR_)ᵀ·Bp(kc,NR).
template <int MR_>
static inline void microKernel(i64 kc, const float* __restrict Ap, const float* __restrict Bp, float* C, i64 ldc,
                               int n, bool add) {
  Vf c0[MR_], c1[MR_];
#pragma GCC unroll 16
  for (int i = 0; i < MR_; ++i) {  // zero the tile; start fetching C so the final update does not stall
    c0[i] = c1[i] = vzero();
    __builtin_prefetch(C + i * ldc);
    __builtin_prefetch(C + i * ldc + W);
  }
#pragma GCC unroll 4
  for (i64 k = 0; k < kc; ++k) {
    const Vf b0 = vload(Bp), b1 = vload(Bp + W);
#pragma GCC unroll 16
    for (int i = 0; i < MR_; ++i) {
      const Vf a = vset1(Ap[i]);
      c0[i] = vfmadd(a, b0, c0[i]);
      c1[i] = vfmadd(a, b1, c1[i]);
    }
    Ap += MR_;
    Bp += NR;
  }
  if (n == NR) {
#pragma GCC unroll 16
    for (int i = 0; i < MR_; ++i) {
      float* row = C + i * ldc;
      if (add) {
        c0[i] = vadd(c0[i], vload(row));
        c1[i] = vadd(c1[i], vload(row + W));
      }
      vstore(row, c0[i]);
      vstore(row + W, c1[i]);
    }
  } else {
    const int n0 = n < W ? n : W, n1 = n - n0;
    for (int i = 0; i < MR_; ++i) {
      float* row = C + i * ldc;
      if (n0 == W) {
        if (add) c0[i] = vadd(c0[i], vload(row));
        vstore(row, c0[i]);
      } else {
        if (add) c0[i] = vadd(c0[i], vloadPart(row, n0));
        vstorePart(row, c0[i], n0);
      }
      if (n1 > 0) {
        if (add) c1[i] = vadd(c1[i], vloadPart(row + W, n1));
        vstorePart(row + W, c1[i], n1);
      }
    }
  }
}

template <int... Ms>
struct MicroTable {
  using Fn = void (*)(i64, const float*, const float*, float*, i64, int, bool);
  static constexpr Fn fns[sizeof...(Ms)] = {&microKernel<Ms + 1>...};
};
template <int... Ms>
constexpr typename MicroTable<Ms...>::Fn MicroTable<Ms...>::fns[sizeof...(Ms)];
template <int... Is>
static constexpr auto makeMicroTable(std::integer_sequence<int, Is...>) { return MicroTable<Is...>{}; }

// microKernel<m> for m = 1..MR (the last row panel of a block may be short).
static inline void microKernelRows(int m, i64 kc, const float* Ap, const float* Bp, float* C, i64 ldc, int n,
                                   bool add) {
  if (m == MR) return microKernel<MR>(kc, Ap, Bp, C, ldc, n, add);
  using Table = decltype(makeMicroTable(std::make_integer_sequence<int, MR>{}));
  Table::fns[m - 1](kc, Ap, Bp, C, ldc, n, add);
}

// Packs op(a)[i0:i0+mc, p0:p0+kc] into row micro-panels: panel r holds rows r·MR.. as (kc, mr)
// with mr = min(MR, rows left), so a short last panel is dense too.
static void packA(float* __restrict dst, const float* a, bool transA, i64 M, i64 K, i64 i0, i64 mc, i64 p0,
                  i64 kc) {
  for (i64 ir = 0; ir < mc; ir += MR) {
    const int mr = (int)(mc - ir < MR ? mc - ir : MR);
    if (transA) {  // a is (K,M): rows i of op(a) are contiguous along M for each k
      for (i64 k = 0; k < kc; ++k) {
        const float* src = a + (p0 + k) * M + i0 + ir;
        for (int r = 0; r < mr; ++r) dst[k * mr + r] = src[r];
      }
    } else {  // a is (M,K): mr (≤ W) rows × W k at a time, transposed in registers
      const float* src = a + (i0 + ir) * K + p0;
      i64 k = 0;
      for (; k + W <= kc; k += W) {
        Vf r[W];
        for (int i = 0; i < W; ++i) r[i] = i < mr ? vload(src + i * K + k) : vzero();
        vtranspose(r);
        for (int i = 0; i < W; ++i) vstorePart(dst + (k + i) * mr, r[i], mr);
      }
      for (; k < kc; ++k)
        for (int r = 0; r < mr; ++r) dst[k * mr + r] = src[r * K + k];
    }
    dst += kc * mr;
  }
}

// Packs op(b)[p0:p0+kc, j0+jp·NR .. +NR] as one column micro-panel (kc, NR), zero-padded past N.
static void packBPanel(float* __restrict dst, const float* b, bool transB, i64 N, i64 K, i64 j0, i64 p0, i64 kc) {
  const int nr = (int)(N - j0 < NR ? N - j0 : NR);
  if (transB) {  // b is (N,K): W rows × W k at a time, transposed in registers
    for (int g = 0; g < NR; g += W) {
      const int rows = nr - g < 0 ? 0 : (nr - g < W ? nr - g : W);
      const float* src = b + (j0 + g) * K + p0;
      i64 k = 0;
      for (; k + W <= kc; k += W) {
        Vf r[W];
        for (int i = 0; i < W; ++i) r[i] = i < rows ? vload(src + i * K + k) : vzero();
        vtranspose(r);
        for (int i = 0; i < W; ++i) vstore(dst + (k + i) * NR + g, r[i]);
      }
      for (; k < kc; ++k)
        for (int i = 0; i < W; ++i) dst[k * NR + g + i] = i < rows ? src[i * K + k] : 0.0f;
    }
  } else {  // b is (K,N)
    for (i64 k = 0; k < kc; ++k) {
      const float* src = b + (p0 + k) * N + j0;
      float* d = dst + k * NR;
      if (nr == NR) {
        vstore(d, vload(src));
        vstore(d + W, vload(src + W));
      } else {
        for (int j = 0; j < NR; ++j) d[j] = j < nr ? src[j] : 0.0f;
      }
    }
  }
}

// M ≤ kSmallM (decoding a few tokens): memory bound, so B is streamed exactly once and every row of
// op(a) (contiguous (M, K), copied first only if transA) is applied to each piece of it; no packing.
constexpr i64 kSmallM = 8;

// out[i, j] (+)= Σ_k ar[i, k]·b[j, k] for weight rows j0 ≤ j < j1 of b (N, K) row-major (transB),
// all MM rows of ar (MM, K) at once: each weight float is loaded once and used MM times, and the
// weight rows are read one after another as a single sequential stream (4 rows interleaved ran
// 1.5× slower on the 20M model's shapes: the prefetcher follows one stream best). Two accumulator
// sets (k, k+W) when MM ≤ 4 keep 2·MM FMA chains in flight for long rows.
template <int MM>
static void gemvRows(float* out, const float* ar, const float* b, i64 j0, i64 j1, i64 N, i64 K, bool accumulate) {
  constexpr int S = MM <= 4 ? 2 : 1;
  const i64 kv = K / (S * W) * (S * W);
  for (i64 j = j0; j < j1; ++j) {
    const float* bj = b + j * K;
    Vf acc[S][MM];
#pragma GCC unroll 8
    for (int s = 0; s < S; ++s)
#pragma GCC unroll 8
      for (int i = 0; i < MM; ++i) acc[s][i] = vzero();
    for (i64 k = 0; k < kv; k += S * W) {
#pragma GCC unroll 2
      for (int s = 0; s < S; ++s) {
        const Vf bv = vload(bj + k + s * W);
#pragma GCC unroll 8
        for (int i = 0; i < MM; ++i) acc[s][i] = vfmadd(vload(ar + i * K + k + s * W), bv, acc[s][i]);
      }
    }
    for (i64 k = kv; k < K; k += W) {  // what is left: up to S·W − 1 floats
      const int n = K - k < W ? (int)(K - k) : W;
      const Vf bv = vloadPart(bj + k, n);
#pragma GCC unroll 8
      for (int i = 0; i < MM; ++i) acc[0][i] = vfmadd(vloadPart(ar + i * K + k, n), bv, acc[0][i]);
    }
    for (int i = 0; i < MM; ++i) {
      const float sum = vhsum(S == 2 ? vadd(acc[0][i], acc[S - 1][i]) : acc[0][i]);
      float* o = out + i * N + j;
      *o = accumulate ? *o + sum : sum;
    }
  }
}

template <int... Ms>
struct GemvTable {
  using Fn = void (*)(float*, const float*, const float*, i64, i64, i64, i64, bool);
  static constexpr Fn fns[sizeof...(Ms)] = {&gemvRows<Ms + 1>...};
};
template <int... Ms>
constexpr typename GemvTable<Ms...>::Fn GemvTable<Ms...>::fns[sizeof...(Ms)];
template <int... Is>
static constexpr auto makeGemvTable(std::integer_sequence<int, Is...>) { return GemvTable<Is...>{}; }

// Below this many bytes of weights a GEMV runs on the calling thread: waking a helper that the OS
// has descheduled costs 0.1-0.2 ms on the shared 2-core machine, more than a small GEMV takes.
// Above it, the rows go out in ~1 MB chunks as parallelTasks (pool.cc), so a late helper only
// takes fewer of them. At 8 MB the 0.5B model's q/k/v and o projections (1.6-4 MB) ran on one
// thread at ~11.7 GB/s against ~21 GB/s on two; at 1 MB, quiet machine, decode at batch 1 went
// from 8.2-8.6 to 5.2-6.2 ms per step (20M, fp32), 2.4-2.5 to 2.1 (20M, bf16), 93-100 to 85-86
// (0.5B, fp32) and 45-48 to 42-44 (0.5B, bf16).
constexpr i64 kGemvParallelBytes = 1 << 20;

static void matmulSmallM(float* out, const float* a, const float* b, i64 M, i64 N, i64 K, bool transA, bool transB,
                         bool accumulate) {
  const float* ar = a;  // (M, K)
  if (transA) {
    static thread_local Scratch aScratch;
    float* t = aScratch.get((size_t)M * K);
    for (i64 i = 0; i < M; ++i)
      for (i64 k = 0; k < K; ++k) t[i * K + k] = a[k * M + i];
    ar = t;
  }
  if (transB) {
    using Table = decltype(makeGemvTable(std::make_integer_sequence<int, (int)kSmallM>{}));
    const auto gemv = Table::fns[M - 1];
    if (N * K * (i64)sizeof(float) < kGemvParallelBytes || omp_get_max_threads() < 2) {
      gemv(out, ar, b, 0, N, N, K, accumulate);
      return;
    }
    const i64 chunk = std::max<i64>(4, (((i64)1 << 20) / (K * (i64)sizeof(float)) + 3) / 4 * 4);
    parallelTasks((N + chunk - 1) / chunk, [&](i64 c) {
      gemv(out, ar, b, c * chunk, std::min(N, (c + 1) * chunk), N, K, accumulate);
    });
  } else {  // out[i, :] = Σ_k ar[i, k]·b[k, :]: column chunks across threads, rows of b streamed once
    constexpr i64 chunk = 256;
#pragma omp parallel for schedule(static) if (N * K > 32768)
    for (i64 j0 = 0; j0 < N; j0 += chunk) {
      const i64 n = N - j0 < chunk ? N - j0 : chunk;
      float acc[kSmallM][chunk];
      for (i64 i = 0; i < M; ++i)
        for (i64 j = 0; j < n; ++j) acc[i][j] = accumulate ? out[i * N + j0 + j] : 0.0f;
      for (i64 k = 0; k < K; ++k) {
        const float* bk = b + k * N + j0;
        i64 j = 0;
        for (; j + W <= n; j += W) {
          const Vf bv = vload(bk + j);
          for (i64 i = 0; i < M; ++i) vstore(acc[i] + j, vfmadd(vset1(ar[i * K + k]), bv, vload(acc[i] + j)));
        }
        for (; j < n; ++j)
          for (i64 i = 0; i < M; ++i) acc[i][j] += ar[i * K + k] * bk[j];
      }
      for (i64 i = 0; i < M; ++i) std::memcpy(out + i * N + j0, acc[i], sizeof(float) * n);
    }
  }
}

// Few rows (M ≤ 2·MC: a loss-head chunk, a decode batch): all of op(a) fits in L2, so the caller
// packs one K block of it and the threads stream B micro-panels through an L1-sized buffer, each
// used once for every row: B is read once and never written back as a packed block. One
// parallelTasks job per K block (its return orders the K blocks of a panel); a helper that is
// late just takes fewer panels.
static void matmulFewRows(float* out, const float* a, const float* b, i64 M, i64 N, i64 K, bool transA, bool transB,
                          bool accumulate) {
  const i64 kcMax = K < KC ? K : KC;
  const i64 nPanels = (N + NR - 1) / NR;
  static thread_local Scratch aScratch;
  float* aPack = aScratch.get((size_t)M * kcMax);  // (M, kc) as MR-row micro-panels, shared
  for (i64 pc = 0; pc < K; pc += KC) {
    const i64 kc = K - pc < KC ? K - pc : KC;
    const bool add = accumulate || pc > 0;
    packA(aPack, a, transA, M, K, 0, M, pc, kc);
    parallelTasks(nPanels, [&](i64 jp) {
      static thread_local Scratch bScratch;
      float* bPanel = bScratch.get((size_t)kcMax * NR);  // (kc, NR)
      const i64 j = jp * NR;
      const int nr = (int)(N - j < NR ? N - j : NR);
      packBPanel(bPanel, b, transB, N, K, j, pc, kc);
      for (i64 ir = 0; ir < M; ir += MR) {
        const int mr = (int)(M - ir < MR ? M - ir : MR);
        float* c = out + ir * N + j;
        microKernelRows(mr, kc, aPack + ir * kc, bPanel, c, N, nr, add);
      }
    });
  }
}

// blockedGemm's work items per thread and K block: enough that a thread that ends a last item
// early idles for a small share of the step (with 8, at most 1/8 of it).
constexpr i64 kItemsPerThread = 8, kTailSlices = 4;

// n split into equal blocks of at most `most`, each a multiple of `step`.
static inline i64 evenBlock(i64 n, i64 most, i64 step) {
  const i64 blocks = (n + most - 1) / most;
  return ((n + blocks - 1) / blocks + step - 1) / step * step;
}

// The many-rows loop nest (see the file comment), written once for every blocked GEMM: fp32 here,
// and in bf16.cc vdpbf16ps and AMX, which count K in words (a word = one bf16 K-pair). Ops gives:
//   kPanelRows, kChunkPanels: rows per register-tile panel, panels per dynamically taken chunk;
//   kPad: each K block's packed depth kcp is kc rounded up to it (AMX tiles take 16 pairs);
//   packChunk(dst, r0, rows, p0, kc, kcp): op(a) rows r0.. of the K block as panels of (kcp, ·);
//   packPanel(dst, j0, p0, kc, kcp): one (kcp, NR) micro-panel of op(b), zero past kc and past N;
//   micro(mr, kcp, Ap, Bp, C, ldc, nr, add): one tile, C ← [C +] Apᵀ·Bp;
//   threadBegin() / threadEnd(): per-thread set-up (AMX tile state).
template <class Ops>
static void blockedGemm(float* out, i64 M, i64 N, i64 K, bool accumulate, const Ops& ops) {
  constexpr i64 pad = Ops::kPad, panelRows = Ops::kPanelRows, chunkRows = Ops::kChunkPanels * panelRows;
  const i64 kcMax = evenBlock(K, KCB, pad > 8 ? pad : 8), ncMax = evenBlock(N, NCB, NR);
  const i64 chunks = (M + chunkRows - 1) / chunkRows;
  const int nthreads = omp_get_max_threads();
  static thread_local Scratch bScratch;
  float* bPack = bScratch.get((size_t)kcMax * ncMax);  // (ncMax / NR) micro-panels of (kcp, NR)
#pragma omp parallel num_threads(nthreads)
  {
    Ops::threadBegin();
    static thread_local Scratch aScratch;
    float* aPack = aScratch.get((size_t)kcMax * chunkRows);
    for (i64 pc = 0; pc < K; pc += kcMax) {
      const i64 kc = std::min(K - pc, kcMax), kcp = (kc + pad - 1) / pad * pad;
      const bool add = accumulate || pc > 0;
      for (i64 jc = 0; jc < N; jc += ncMax) {
        const i64 nPanels = (std::min(N - jc, ncMax) + NR - 1) / NR;
#pragma omp for schedule(static)
        for (i64 jp = 0; jp < nPanels; ++jp) ops.packPanel(bPack + jp * kcp * NR, jc + jp * NR, pc, kc, kcp);
        // (implicit barrier: the whole B block is packed)
        // Work items: a chunk of A against a slice of the block's micro-panels. One slice unless
        // there are too few chunks for the threads to end together (many threads, few rows); the
        // last round of chunks (taken last) in kTailSlices times finer slices, so a thread that
        // ends early idles for a fraction of a chunk rather than a whole one.
        const i64 slices = std::min(nPanels, std::max<i64>(1, (kItemsPerThread * nthreads + chunks - 1) / chunks));
        const i64 tailChunks = nthreads > 1 ? std::min<i64>(chunks, nthreads) : 0;
        const i64 tailSlices = std::min(nPanels, slices * kTailSlices);
        const i64 headItems = (chunks - tailChunks) * slices;
#pragma omp for schedule(dynamic, 1)
        for (i64 item = 0; item < headItems + tailChunks * tailSlices; ++item) {
          const bool head = item < headItems;
          const i64 nsl = head ? slices : tailSlices, rel = head ? item : item - headItems;
          const i64 ch = (head ? 0 : chunks - tailChunks) + rel / nsl, sl = rel % nsl;
          const i64 r0 = ch * chunkRows, rows = std::min(M - r0, chunkRows);
          const i64 q0 = nPanels * sl / nsl, q1 = nPanels * (sl + 1) / nsl;
          ops.packChunk(aPack, r0, rows, pc, kc, kcp);
          for (i64 ir = 0; ir < rows; ir += panelRows) {
            const int mr = (int)std::min(rows - ir, panelRows);
            for (i64 jp = q0; jp < q1; ++jp) {
              const i64 j = jc + jp * NR;
              Ops::micro(mr, kcp, aPack + ir * kcp, bPack + jp * kcp * NR, out + (r0 + ir) * N + j, N,
                         (int)std::min<i64>(N - j, NR), add);
            }
          }
        }
        // (implicit barrier: bPack is free to be repacked)
      }
    }
    Ops::threadEnd();
  }
}

// blockedGemm's Ops for fp32.
struct Fp32Ops {
  static constexpr i64 kPanelRows = MR, kChunkPanels = 2, kPad = 1;
  const float *a, *b;
  bool transA, transB;
  i64 M, N, K;
  void packChunk(float* dst, i64 r0, i64 rows, i64 p0, i64 kc, i64) const {
    packA(dst, a, transA, M, K, r0, rows, p0, kc);
  }
  void packPanel(float* dst, i64 j0, i64 p0, i64 kc, i64) const { packBPanel(dst, b, transB, N, K, j0, p0, kc); }
  static void micro(int mr, i64 kc, const float* Ap, const float* Bp, float* C, i64 ldc, int nr, bool add) {
    microKernelRows(mr, kc, Ap, Bp, C, ldc, nr, add);
  }
  static void threadBegin() {}
  static void threadEnd() {}
};

static void matmul(float* out, const float* a, const float* b, i64 M, i64 N, i64 K, bool transA, bool transB,
                   bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate) std::memset(out, 0, sizeof(float) * M * N);
    return;
  }
  if (M <= kSmallM) return matmulSmallM(out, a, b, M, N, K, transA, transB, accumulate);
  if (M <= 2 * MC) return matmulFewRows(out, a, b, M, N, K, transA, transB, accumulate);
  blockedGemm(out, M, N, K, accumulate, Fp32Ops{a, b, transA, transB, M, N, K});
}

// The fp32 peak: NACC independent FMA chains per thread on registers only (enough chains to cover
// the FMA latency on every port), run on every thread at once; GFLOP/s over the wall time.
static double peakFp32(double seconds) {
#if defined(RED_ISA_AVX512)
  constexpr int NACC = 24;
#else
  constexpr int NACC = 12;
#endif
  const int nthreads = omp_get_max_threads();
  i64 iters = 1 << 16;
  double best = 0;
  for (;;) {  // grow the loop until one run takes `seconds`
    const auto t0 = std::chrono::steady_clock::now();
    float sink = 0;
#pragma omp parallel num_threads(nthreads) reduction(+ : sink)
    {
      Vf acc[NACC];
      const Vf x = vset1(0.999999f), y = vset1(1e-7f);
      for (int i = 0; i < NACC; ++i) acc[i] = vset1((float)i);
      for (i64 it = 0; it < iters; ++it) {
#pragma GCC unroll 32
        for (int i = 0; i < NACC; ++i) acc[i] = vfmadd(acc[i], x, y);
      }
      Vf s = acc[0];
      for (int i = 1; i < NACC; ++i) s = vadd(s, acc[i]);
      sink += vhsum(s);
    }
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    volatile float keep = sink;
    (void)keep;
    best = std::max(best, 2.0 * W * NACC * (double)iters * nthreads / dt / 1e9);
    if (dt >= seconds) return best;
    iters = dt < seconds / 8 ? iters * 4 : (i64)(iters * (seconds / dt) + 1);
  }
}
