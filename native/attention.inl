// Causal grouped-query attention over packed sequences, flash-style: no T×T matrix is kept. For a
// block of RQ query rows the scores against the (causally visible) keys of its sequence are
// computed as a small GEMM against Kᵀ packed per (sequence, kv head), softmaxed in place, and
// multiplied by V; lse(T,NH) is saved so backward recomputes the probabilities row block by row.
// Vectors run along keys for the score products and along HD for the value products, so every
// inner loop is broadcast-FMA (no horizontal sums). Included by isa_*.cc after kernels.inl.

constexpr int RQ = 4;             // query rows per block
constexpr int KB = 2 * W;         // keys per score tile
constexpr int kMaxHeadDim = 256;  // addon.cc rejects larger HD
constexpr int NVMAX = (kMaxHeadDim + W - 1) / W;

static inline i64 roundUp(i64 x, i64 m) { return (x + m - 1) / m * m; }

// Per-thread work buffers of one (sequence, kv head) task.
struct AttnScratch {
  Scratch kt, vt, kr, vr, s, p, ds, qb, dob, dk, dv;
};

// src rows (L, stride) → dst (HD, Lp) transposed, zero past L; W×W blocks go through registers.
static void packTransposed(float* dst, const float* src, i64 stride, i64 L, i64 Lp, i64 HD) {
  for (i64 d = 0; d < HD; ++d) std::memset(dst + d * Lp + L, 0, sizeof(float) * (Lp - L));
  const i64 L0 = L / W * W, H0 = HD / W * W;
  for (i64 j = 0; j < L0; j += W) {
    for (i64 d = 0; d < H0; d += W) {
      Vf r[W];
      for (int i = 0; i < W; ++i) r[i] = vload(src + (j + i) * stride + d);
      vtranspose(r);
      for (int i = 0; i < W; ++i) vstore(dst + (d + i) * Lp + j, r[i]);
    }
    for (i64 d = H0; d < HD; ++d)
      for (i64 i = j; i < j + W; ++i) dst[d * Lp + i] = src[i * stride + d];
  }
  for (i64 j = L0; j < L; ++j)
    for (i64 d = 0; d < HD; ++d) dst[d * Lp + j] = src[j * stride + d];
}
// src rows (L, stride) → dst (Lp, HDp), zero-padded in both directions.
static void packRows(float* dst, const float* src, i64 stride, i64 L, i64 Lp, i64 HD, i64 HDp) {
  std::memset(dst, 0, sizeof(float) * Lp * HDp);
  for (i64 j = 0; j < L; ++j) std::memcpy(dst + j * HDp, src + j * stride, sizeof(float) * HD);
}
// RQ rows of src (stride) starting at row i, nr of them valid → dst (RQ, HDp), zeros elsewhere.
static void packQueryBlock(float* dst, const float* src, i64 stride, i64 nr, i64 HD, i64 HDp) {
  std::memset(dst, 0, sizeof(float) * RQ * HDp);
  for (i64 r = 0; r < nr; ++r) std::memcpy(dst + r * HDp, src + r * stride, sizeof(float) * HD);
}

// S(RQ, ncols) at row stride ldS = scale · Qb(RQ, HDp) · Kt(HD, Lp)[:, 0:ncols]; ncols % KB == 0.
static void blockScores(float* S, i64 ldS, const float* Qb, i64 HDp, const float* Kt, i64 Lp, i64 HD, i64 ncols,
                        float scale) {
  const Vf sc = vset1(scale);
  for (i64 j = 0; j < ncols; j += KB) {
    Vf acc[RQ][2];
#pragma GCC unroll 4
    for (int r = 0; r < RQ; ++r) acc[r][0] = acc[r][1] = vzero();
    for (i64 d = 0; d < HD; ++d) {
      const Vf k0 = vload(Kt + d * Lp + j), k1 = vload(Kt + d * Lp + j + W);
#pragma GCC unroll 4
      for (int r = 0; r < RQ; ++r) {
        const Vf qd = vset1(Qb[r * HDp + d]);
        acc[r][0] = vfmadd(qd, k0, acc[r][0]);
        acc[r][1] = vfmadd(qd, k1, acc[r][1]);
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < RQ; ++r) {
      vstore(S + r * ldS + j, vmul(acc[r][0], sc));
      vstore(S + r * ldS + j + W, vmul(acc[r][1], sc));
    }
  }
}

// outRows (RQ, HDp) [+]= P(RQ, ncols) · Rows(ncols, HDp); NVT > 0 fixes HDp/W at compile time.
template <int NVT>
static void blockTimesRows(float* outRows, const float* P, i64 ldP, const float* Rows, i64 HDp, i64 ncols,
                           bool accumulate) {
  const int nv = NVT > 0 ? NVT : (int)(HDp / W);
  Vf acc[RQ][NVT > 0 ? NVT : NVMAX];
  for (int r = 0; r < RQ; ++r)
    for (int v = 0; v < nv; ++v) acc[r][v] = accumulate ? vload(outRows + r * HDp + v * W) : vzero();
  for (i64 j = 0; j < ncols; ++j) {
    const float* row = Rows + j * HDp;
    Vf pj[RQ];
#pragma GCC unroll 4
    for (int r = 0; r < RQ; ++r) pj[r] = vset1(P[r * ldP + j]);
    for (int v = 0; v < nv; ++v) {
      const Vf x = vload(row + v * W);
#pragma GCC unroll 4
      for (int r = 0; r < RQ; ++r) acc[r][v] = vfmadd(pj[r], x, acc[r][v]);
    }
  }
  for (int r = 0; r < RQ; ++r)
    for (int v = 0; v < nv; ++v) vstore(outRows + r * HDp + v * W, acc[r][v]);
}

// Rows(ncols, HDp) += P(RQ, ncols)ᵀ · X(RQ, HDp)  (dK += dSᵀQ, dV += PᵀdO).
template <int NVT>
static void blockTransposeTimes(float* Rows, i64 HDp, const float* P, i64 ldP, const float* X, i64 ncols) {
  const int nv = NVT > 0 ? NVT : (int)(HDp / W);
  for (int v = 0; v < nv; ++v) {
    Vf x[RQ];
#pragma GCC unroll 4
    for (int r = 0; r < RQ; ++r) x[r] = vload(X + r * HDp + v * W);
    for (i64 j = 0; j < ncols; ++j) {
      float* row = Rows + j * HDp + v * W;
      Vf a = vload(row);
#pragma GCC unroll 4
      for (int r = 0; r < RQ; ++r) a = vfmadd(vset1(P[r * ldP + j]), x[r], a);
      vstore(row, a);
    }
  }
}

using TimesRowsFn = void (*)(float*, const float*, i64, const float*, i64, i64, bool);
using TransposeTimesFn = void (*)(float*, i64, const float*, i64, const float*, i64);
static TimesRowsFn pickTimesRows(i64 nv) {
  switch (nv) {
    case 1: return blockTimesRows<1>;
    case 2: return blockTimesRows<2>;
    case 4: return blockTimesRows<4>;
    case 8: return blockTimesRows<8>;
    default: return blockTimesRows<0>;
  }
}
static TransposeTimesFn pickTransposeTimes(i64 nv) {
  switch (nv) {
    case 1: return blockTransposeTimes<1>;
    case 2: return blockTransposeTimes<2>;
    case 4: return blockTransposeTimes<4>;
    case 8: return blockTransposeTimes<8>;
    default: return blockTransposeTimes<0>;
  }
}

// Row r of S (first n entries valid, ncols stored): p = e^{s − max} in place, zero past n;
// returns the row's log-sum-exp and leaves the row UNnormalised (the caller scales by 1/Σ).
static float softmaxRowInPlace(float* s, i64 n, i64 ncols, float* sumOut) {
  Vf mv = vset1(-INFINITY);
  i64 j = 0;
  for (; j + W <= n; j += W) mv = vmax(mv, vload(s + j));
  float mx = vhmax(mv);
  for (; j < n; ++j) mx = s[j] > mx ? s[j] : mx;
  const Vf mxv = vset1(mx);
  Vf sv = vzero();
  j = 0;
  for (; j + W <= n; j += W) {
    const Vf e = vexp(vsub(vload(s + j), mxv));
    vstore(s + j, e);
    sv = vadd(sv, e);
  }
  float sum = vhsum(sv);
  if (j < n) {
    const int r = (int)(n - j);
    const Vf e = vexp(vsub(vloadPart(s + j, r), mxv));
    vstorePart(s + j, e, r);
    float tmp[W];
    vstore(tmp, e);
    for (int l = 0; l < r; ++l) sum += tmp[l];
  }
  for (i64 z = n; z < ncols; ++z) s[z] = 0;
  *sumOut = sum;
  return mx + std::log(sum);
}

// The forward's blocks: where a sequence's Kᵀ and V outgrow half of a 2 MB L2, QSB blocks of RQ
// query rows pass over the keys together, a chunk of JC keys at a time, so each chunk of Kᵀ and of
// V (32 KB each at HD 64) is read from L3 once for QSB·RQ rows instead of RQ: at 4096 keys 188-202
// against 211-219 GFLOP/s on 2 threads. Shorter sequences keep one block per pass (QSB there cost
// 10-25% at 128-512 keys, for a reason not found).
constexpr i64 QSB = 4, JC = 128, kQsbBytes = 1 << 20;

// Rows s0.. (at most qsb·RQ) of one (sequence, query head): scores chunk by chunk, softmax in
// place (lse saved), then P·V chunk by chunk, normalised into out (row stride QS).
static void attentionForwardRows(float* out, float* lse, i64 lseStride, const float* Qb, const float* Kt,
                                 const float* Vr, float* S, float* O, i64 qsb, i64 s0, i64 L, i64 Lp, i64 HD,
                                 i64 HDp, i64 QS, float scale, TimesRowsFn timesRows) {
  const i64 rows = std::min(L - s0, qsb * RQ), blocks = (rows + RQ - 1) / RQ;
  auto visible = [&](i64 sb) { return std::min(L, s0 + (sb + 1) * RQ); };  // keys its last row sees
  for (i64 jc = 0; jc < roundUp(s0 + rows, KB); jc += JC)
    for (i64 sb = 0; sb < blocks; ++sb) {
      const i64 ncols = roundUp(visible(sb), KB);
      if (jc < ncols)
        blockScores(S + sb * RQ * Lp + jc, Lp, Qb + sb * RQ * HDp, HDp, Kt + jc, Lp, HD, std::min(JC, ncols - jc),
                    scale);
    }
  float inv[QSB * RQ];
  for (i64 r = 0; r < blocks * RQ; ++r) {
    const i64 ncols = roundUp(visible(r / RQ), KB);
    if (r < rows) {
      float sum;
      lse[(s0 + r) * lseStride] = softmaxRowInPlace(S + r * Lp, s0 + r + 1, ncols, &sum);
      inv[r] = 1.0f / sum;
    } else {
      std::memset(S + r * Lp, 0, sizeof(float) * ncols);
      inv[r] = 0;
    }
  }
  for (i64 jc = 0; jc < s0 + rows; jc += JC)
    for (i64 sb = 0; sb < blocks; ++sb)
      if (jc < visible(sb))
        timesRows(O + sb * RQ * HDp, S + sb * RQ * Lp + jc, Lp, Vr + jc * HDp, HDp, std::min(JC, visible(sb) - jc),
                  jc > 0);
  for (i64 r = 0; r < rows; ++r)
    for (i64 d = 0; d < HD; ++d) out[(s0 + r) * QS + d] = O[r * HDp + d] * inv[r];
}

// out(T, NH*HD), lse(T, NH) from q(T, NH*HD), k, v(T, NKV*HD); sequence b = tokens cu[b]..cu[b+1]−1.
static void attentionForward(float* out, float* lse, const float* q, const float* k, const float* v,
                             const int32_t* cu, i64 B, i64 T, i64 NH, i64 NKV, i64 HD) {
  (void)T;
  const i64 group = NH / NKV, QS = NH * HD, KS = NKV * HD, HDp = roundUp(HD, W);
  const float scale = (float)(1.0 / std::sqrt((double)HD));
  const TimesRowsFn timesRows = pickTimesRows(HDp / W);
#pragma omp parallel
  {
    static thread_local AttnScratch sc;
#pragma omp for schedule(dynamic, 1)
    for (i64 task = 0; task < B * NH; ++task) {
      const i64 b = task / NH, h = task % NH, g = h / group;
      const i64 start = cu[b], L = cu[b + 1] - start;
      if (L <= 0) continue;
      const i64 Lp = roundUp(L, KB);
      float* Kt = sc.kt.get(HD * Lp);              // (HD, Lp)
      float* Vr = sc.vr.get(Lp * HDp);             // (Lp, HDp)
      float* S = sc.s.get(QSB * RQ * Lp);          // (QSB·RQ, Lp)
      float* Qb = sc.qb.get(QSB * RQ * HDp);       // (QSB·RQ, HDp)
      float* O = sc.dob.get(QSB * RQ * HDp);       // (QSB·RQ, HDp)
      packTransposed(Kt, k + start * KS + g * HD, KS, L, Lp, HD);
      packRows(Vr, v + start * KS + g * HD, KS, L, Lp, HD, HDp);
      const i64 qsb = 2 * Lp * HDp * (i64)sizeof(float) > kQsbBytes ? QSB : 1;
      for (i64 s0 = 0; s0 < L; s0 += qsb * RQ) {
        for (i64 i0 = s0; i0 < std::min(L, s0 + qsb * RQ); i0 += RQ)
          packQueryBlock(Qb + (i0 - s0) * HDp, q + (start + i0) * QS + h * HD, QS, std::min<i64>(RQ, L - i0), HD, HDp);
        attentionForwardRows(out + start * QS + h * HD, lse + start * NH + h, NH, Qb, Kt, Vr, S, O, qsb, s0, L, Lp,
                             HD, HDp, QS, scale, timesRows);
      }
    }
  }
}

// One (sequence, kv head) task of attentionBackward, at one query head: its packed operands and
// accumulators, every (·, HDp) buffer Lp rows and zero past L.
struct AttnBackwardHead {
  const float *Kt, *Vt;   // (HD, Lp) keys and values transposed
  const float* Kr;        // (Lp, HDp) key rows
  const float *Qh, *dOh;  // (Lp, HDp) the head's q and dO rows
  const float* rowStats;  // (2, Lp) lse_i, then D_i = dO_i·O_i
  float *dQh, *dK, *dV;   // (Lp, HDp) accumulated: the head's dq, the kv head's dk and dv
  float *P, *dS;          // (RQ, KB) work
  i64 L, Lp, HD, HDp;
  float scale;
  TimesRowsFn timesRows;
  TransposeTimesFn transposeTimes;
};

// Query rows i0..i0+RQ−1 against keys j0..j0+KB−1 (j0 ≤ i0): p and dS recomputed (zero where a
// row may not see a key), then dq_i += dS·k, dk_j += dSᵀ·q and dv_j += pᵀ·dO.
static void attentionBackwardBlock(const AttnBackwardHead& t, i64 i0, i64 j0) {
  const i64 nr = t.L - i0 < RQ ? t.L - i0 : RQ;
  const float *Qb = t.Qh + i0 * t.HDp, *dOb = t.dOh + i0 * t.HDp;
  blockScores(t.P, KB, Qb, t.HDp, t.Kt + j0, t.Lp, t.HD, KB, t.scale);
  blockScores(t.dS, KB, dOb, t.HDp, t.Vt + j0, t.Lp, t.HD, KB, 1.0f);
  for (i64 r = 0; r < RQ; ++r) {
    float *pr = t.P + r * KB, *dsr = t.dS + r * KB;
    const i64 n = r < nr ? std::min<i64>(KB, i0 + r + 1 - j0) : 0;  // the keys row i0+r sees here
    const Vf lv = vset1(t.rowStats[i0 + r]), Dv = vset1(t.rowStats[t.Lp + i0 + r]), sv = vset1(t.scale);
    i64 j = 0;
    for (; j + W <= n; j += W) {
      const Vf p = vexp(vsub(vload(pr + j), lv));
      vstore(pr + j, p);
      vstore(dsr + j, vmul(vmul(p, vsub(vload(dsr + j), Dv)), sv));
    }
    if (j < n) {
      const int rem = (int)(n - j);
      const Vf p = vexp(vsub(vloadPart(pr + j, rem), lv));
      vstorePart(pr + j, p, rem);
      vstorePart(dsr + j, vmul(vmul(p, vsub(vloadPart(dsr + j, rem), Dv)), sv), rem);
      j = n;
    }
    for (; j < KB; ++j) pr[j] = dsr[j] = 0;
  }
  t.timesRows(t.dQh + i0 * t.HDp, t.dS, KB, t.Kr + j0 * t.HDp, t.HDp, KB, true);
  t.transposeTimes(t.dK + j0 * t.HDp, t.HDp, t.dS, KB, Qb, KB);
  t.transposeTimes(t.dV + j0 * t.HDp, t.HDp, t.P, KB, dOb, KB);
}

// dq(T, NH*HD), dk, dv(T, NKV*HD) written. With p = e^{s − lse}, D_i = dO_i·O_i:
// dS_ij = p_ij·(dO_i·v_j − D_i)·scale; dq_i = Σ_j dS_ij k_j; dk_j = Σ_i dS_ij q_i; dv_j = Σ_i p_ij dO_i.
// One task per (sequence, kv head) owns that head's dk, dv rows, so tasks never share an output.
// Per query head of the group, the FlashAttention-2 order: key blocks of KB keys outermost, so a
// block's dk, dv rows stay in L1 while every query row that sees them passes. (Query blocks
// outermost re-read all of dk, dv from L2/L3 for every RQ rows: 75 against now 202 GFLOP/s at
// 4096 keys, 119 against 205 at 2048, on this machine's 2 threads.)
static void attentionBackward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                              const float* v, const float* out, const float* lse, const int32_t* cu, i64 B, i64 T,
                              i64 NH, i64 NKV, i64 HD) {
  (void)T;
  const i64 group = NH / NKV, QS = NH * HD, KS = NKV * HD, HDp = roundUp(HD, W);
  const float scale = (float)(1.0 / std::sqrt((double)HD));
#pragma omp parallel
  {
    static thread_local AttnScratch sc;
#pragma omp for schedule(dynamic, 1)
    for (i64 task = 0; task < B * NKV; ++task) {
      const i64 b = task / NKV, g = task % NKV;
      const i64 start = cu[b], L = cu[b + 1] - start;
      if (L <= 0) continue;
      const i64 Lp = roundUp(L, KB);
      float *Kt = sc.kt.get(HD * Lp), *Vt = sc.vt.get(HD * Lp), *Kr = sc.kr.get(Lp * HDp);
      float *Qh = sc.qb.get(Lp * HDp), *dOh = sc.dob.get(Lp * HDp), *rowStats = sc.s.get(2 * Lp);
      AttnBackwardHead t{Kt, Vt, Kr, Qh, dOh, rowStats, sc.vr.get(Lp * HDp), sc.dk.get(Lp * HDp),
                         sc.dv.get(Lp * HDp), sc.p.get(RQ * KB), sc.ds.get(RQ * KB),
                         L, Lp, HD, HDp, scale, pickTimesRows(HDp / W), pickTransposeTimes(HDp / W)};
      const float* kseq = k + start * KS + g * HD;
      const float* vseq = v + start * KS + g * HD;
      packTransposed(Kt, kseq, KS, L, Lp, HD);
      packTransposed(Vt, vseq, KS, L, Lp, HD);
      packRows(Kr, kseq, KS, L, Lp, HD, HDp);
      std::memset(t.dK, 0, sizeof(float) * Lp * HDp);
      std::memset(t.dV, 0, sizeof(float) * Lp * HDp);
      for (i64 h = g * group; h < (g + 1) * group; ++h) {
        packRows(Qh, q + start * QS + h * HD, QS, L, Lp, HD, HDp);
        packRows(dOh, dout + start * QS + h * HD, QS, L, Lp, HD, HDp);
        std::memset(t.dQh, 0, sizeof(float) * Lp * HDp);
        for (i64 i = 0; i < L; ++i) {
          rowStats[i] = lse[(start + i) * NH + h];
          rowStats[Lp + i] = dotRow(dOh + i * HDp, out + (start + i) * QS + h * HD, HD);
        }
        for (i64 j0 = 0; j0 < L; j0 += KB)
          for (i64 i0 = j0; i0 < L; i0 += RQ) attentionBackwardBlock(t, i0, j0);  // the rows that see j0..
        for (i64 i = 0; i < L; ++i) std::memcpy(dq + (start + i) * QS + h * HD, t.dQh + i * HDp, sizeof(float) * HD);
      }
      for (i64 j = 0; j < L; ++j) {
        std::memcpy(dk + (start + j) * KS + g * HD, t.dK + j * HDp, sizeof(float) * HD);
        std::memcpy(dv + (start + j) * KS + g * HD, t.dV + j * HDp, sizeof(float) * HD);
      }
    }
  }
}

// Decoding: token b (slot slots[b], keys 0..lens[b]−1 of that slot) against kCache, vCache
// (S, maxLen, NKV*HD); q, out (B, NH*HD). One task per (token, kv head). With one query row per
// head there is nothing to block, so unlike the forward pass nothing is packed: scores are dot
// products with the cached key rows in place, and the output is Σ_j p_j·v_j with up to 4W columns
// held in registers (4 independent FMA chains). Packing Kᵀ and V per task had made this 4.9 ms of
// a 56 ms batch-64 step of the 20M model.
// KV is float (an fp32 cache) or uint16_t (a bf16 cache, widened exactly as it is read).
template <class KV>
static void attentionDecodeT(float* out, const float* q, const KV* kCache, const KV* vCache,
                             const int32_t* slots, const int32_t* lens, i64 B, i64 NH, i64 NKV, i64 HD, i64 maxLen) {
  const i64 group = NH / NKV, QS = NH * HD, KS = NKV * HD;
  const float scale = (float)(1.0 / std::sqrt((double)HD));
  const i64 hdFull = HD / W * W;
  const int hdTail = (int)(HD - hdFull);
  // Parallel only for real work (Σ lens·NH·HD multiply-adds): a batch-1 step's few dozen keys
  // take microseconds, less than waking a helper.
  i64 work = 0;
  for (i64 b = 0; b < B; ++b) work += (i64)lens[b] * NH * HD;
  auto decodeTask = [&](i64 task) {
    static thread_local Scratch scoreScratch;
    const i64 b = task / NKV, g = task % NKV;
    const i64 n = lens[b];
    const i64 slot = (i64)slots[b] * maxLen * KS + g * HD;
    const KV* kb = kCache + slot;  // key j: kb + j·KS, HD values
    const KV* vb = vCache + slot;
    float* S = scoreScratch.get(n);   // (n) one head's scores, then exp(score − max)
    for (i64 h = g * group; h < (g + 1) * group; ++h) {  // the group's query heads share k/v head g
      const float* qh = q + b * QS + h * HD;
      for (i64 j = 0; j < n; ++j) {
        const KV* kj = kb + j * KS;
        Vf acc = vzero();
        for (i64 d = 0; d < hdFull; d += W) acc = vfmadd(vload(qh + d), vload(kj + d), acc);
        if (hdTail) acc = vfmadd(vloadPart(qh + hdFull, hdTail), vloadPart(kj + hdFull, hdTail), acc);
        S[j] = vhsum(acc) * scale;
      }
      float sum;
      softmaxRowInPlace(S, n, n, &sum);
      const Vf inv = vset1(1.0f / sum);
      float* o = out + b * QS + h * HD;
      for (i64 d0 = 0; d0 < HD; d0 += 4 * W) {
        const i64 cols = HD - d0 < 4 * W ? HD - d0 : 4 * W;
        const int nv = (int)((cols + W - 1) / W), last = (int)(cols - (nv - 1) * W);  // last ≤ W
        Vf acc[4] = {vzero(), vzero(), vzero(), vzero()};
        for (i64 j = 0; j < n; ++j) {
          const Vf p = vset1(S[j]);
          const KV* vj = vb + j * KS + d0;
          for (int v = 0; v < nv; ++v)
            acc[v] = vfmadd(p, v + 1 < nv || last == W ? vload(vj + v * W) : vloadPart(vj + v * W, last), acc[v]);
        }
        for (int v = 0; v < nv; ++v) {
          const Vf r = vmul(acc[v], inv);
          if (v + 1 < nv || last == W) vstore(o + d0 + v * W, r);
          else vstorePart(o + d0 + v * W, r, last);
        }
      }
    }
  };
  if (work > kParallelMin) parallelTasks(B * NKV, decodeTask);
  else for (i64 task = 0; task < B * NKV; ++task) decodeTask(task);
}

static void attentionDecode(float* out, const float* q, const float* kCache, const float* vCache,
                            const int32_t* slots, const int32_t* lens, i64 B, i64 NH, i64 NKV, i64 HD, i64 maxLen) {
  attentionDecodeT(out, q, kCache, vCache, slots, lens, B, NH, NKV, HD, maxLen);
}

static void attentionDecodeBf16(float* out, const float* q, const uint16_t* kCache, const uint16_t* vCache,
                                const int32_t* slots, const int32_t* lens, i64 B, i64 NH, i64 NKV, i64 HD, i64 maxLen) {
  attentionDecodeT(out, q, kCache, vCache, slots, lens, B, NH, NKV, HD, maxLen);
}
