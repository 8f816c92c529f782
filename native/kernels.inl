// The memory-bound kernels of backend.ts: linear (bias and the GEMM calls), embedding, RMSNorm,
// RoPE, SwiGLU, add, the loss head, AdamW and the reductions. Written with the Vf vector of
// simd.h; rows are split across threads, per-channel sums (dweight, dbias, dwte) across columns so
// no two threads add into the same element. Included by the isa_*.cc files, after gemm.inl.


// ---- linear: out(T,OC) = inp(T,C)·weight(OC,C)ᵀ + bias(OC) ----

static void linearForward(float* out, const float* inp, const float* weight, const float* bias, i64 T, i64 C,
                          i64 OC) {
  matmul(out, inp, weight, T, OC, C, false, true, false);
  if (!bias) return;
#pragma omp parallel for schedule(static) if (T * OC > kParallelMin)
  for (i64 t = 0; t < T; ++t) {
    float* o = out + t * OC;
    i64 j = 0;
    for (; j + W <= OC; j += W) vstore(o + j, vadd(vload(o + j), vload(bias + j)));
    for (; j < OC; ++j) o[j] += bias[j];
  }
}

// dcol(N) += Σ_t src(T,N)[t, :], columns split across threads.
static void accumulateColumnSums(float* dcol, const float* src, i64 T, i64 N) {
  const i64 chunk = 256;
#pragma omp parallel for schedule(static) if (T * N > kParallelMin)
  for (i64 j0 = 0; j0 < N; j0 += chunk) {
    const i64 n = N - j0 < chunk ? N - j0 : chunk;
    float acc[chunk] = {};
    for (i64 t = 0; t < T; ++t) {
      const float* s = src + t * N + j0;
      i64 j = 0;
      for (; j + W <= n; j += W) vstore(acc + j, vadd(vload(acc + j), vload(s + j)));
      for (; j < n; ++j) acc[j] += s[j];
    }
    for (i64 j = 0; j < n; ++j) dcol[j0 + j] += acc[j];
  }
}

// dinp(T,C) = dout(T,OC)·weight(OC,C) written; dweight(OC,C) += dout^T·inp; dbias(OC) += Σ_t dout.
static void linearBackward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                           const float* weight, i64 T, i64 C, i64 OC) {
  if (dinp) matmul(dinp, dout, weight, T, C, OC, false, false, false);
  matmul(dweight, dout, inp, OC, C, T, true, false, true);
  if (dbias) accumulateColumnSums(dbias, dout, T, OC);
}

// ---- embedding: out(T,C) = wte(V,C)[ids] ----

static void embeddingForward(float* out, const int32_t* ids, const float* wte, i64 T, i64 C) {
#pragma omp parallel for schedule(static) if (T * C > kParallelMin)
  for (i64 t = 0; t < T; ++t) std::memcpy(out + t * C, wte + (i64)ids[t] * C, sizeof(float) * C);
}

// dwte(V,C) rows ids[t] += dout(T,C)[t]; a token may repeat, so threads split channels, not tokens.
static void embeddingBackward(float* dwte, const float* dout, const int32_t* ids, i64 T, i64 C) {
  const i64 chunk = 64;
#pragma omp parallel for schedule(static) if (T * C > kParallelMin)
  for (i64 c0 = 0; c0 < C; c0 += chunk) {
    const i64 n = C - c0 < chunk ? C - c0 : chunk;
    for (i64 t = 0; t < T; ++t) {
      float* d = dwte + (i64)ids[t] * C + c0;
      const float* s = dout + t * C + c0;
      for (i64 c = 0; c < n; ++c) d[c] += s[c];
    }
  }
}

// ---- RMSNorm: out = inp·rstd·weight, rstd(T) = (mean(inp²) + eps)^(−1/2) ----

static inline float dotRow(const float* a, const float* b, i64 n) {
  Vf s0 = vzero(), s1 = vzero();
  i64 i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    s0 = vfmadd(vload(a + i), vload(b + i), s0);
    s1 = vfmadd(vload(a + i + W), vload(b + i + W), s1);
  }
  for (; i + W <= n; i += W) s0 = vfmadd(vload(a + i), vload(b + i), s0);
  if (i < n) s1 = vfmadd(vloadPart(a + i, (int)(n - i)), vloadPart(b + i, (int)(n - i)), s1);
  return vhsum(vadd(s0, s1));
}

static void rmsnormForward(float* out, float* rstd, const float* inp, const float* weight, i64 T, i64 C,
                           float eps) {
#pragma omp parallel for schedule(static) if (T * C > kParallelMin)
  for (i64 t = 0; t < T; ++t) {
    const float* x = inp + t * C;
    float* o = out + t * C;
    const float r = (float)(1.0 / std::sqrt((double)dotRow(x, x, C) / (double)C + (double)eps));
    rstd[t] = r;
    const Vf rv = vset1(r);
    i64 c = 0;
    for (; c + W <= C; c += W) vstore(o + c, vmul(vmul(vload(x + c), rv), vload(weight + c)));
    for (; c < C; ++c) o[c] = x[c] * r * weight[c];
  }
}

// dx_c += r·w_c·dy_c − (r³/C)·x_c·Σ_j dy_j·w_j·x_j  (dinp is the residual stream: accumulates);
// dw_c += Σ_t dy_c·x_c·r.
static void rmsnormBackward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                            const float* rstd, i64 T, i64 C) {
#pragma omp parallel for schedule(static) if (T * C > kParallelMin)
  for (i64 t = 0; t < T; ++t) {
    const float* x = inp + t * C;
    const float* dy = dout + t * C;
    float* dx = dinp + t * C;
    const float r = rstd[t];
    Vf s = vzero();
    i64 c = 0;
    for (; c + W <= C; c += W) s = vfmadd(vmul(vload(dy + c), vload(weight + c)), vload(x + c), s);
    float dot = vhsum(s);
    for (; c < C; ++c) dot += dy[c] * weight[c] * x[c];
    const float k = r * r * r * dot / (float)C;
    const Vf rv = vset1(r), kv = vset1(k);
    c = 0;
    for (; c + W <= C; c += W) {
      const Vf g = vmul(vmul(rv, vload(weight + c)), vload(dy + c));
      vstore(dx + c, vadd(vload(dx + c), vfnmadd(kv, vload(x + c), g)));
    }
    for (; c < C; ++c) dx[c] += r * weight[c] * dy[c] - k * x[c];
  }
  const i64 chunk = 256;
#pragma omp parallel for schedule(static) if (T * C > kParallelMin)
  for (i64 c0 = 0; c0 < C; c0 += chunk) {
    const i64 n = C - c0 < chunk ? C - c0 : chunk;
    float acc[chunk] = {};
    for (i64 t = 0; t < T; ++t) {
      const float* x = inp + t * C + c0;
      const float* dy = dout + t * C + c0;
      const Vf rv = vset1(rstd[t]);
      i64 c = 0;
      for (; c + W <= n; c += W) vstore(acc + c, vfmadd(vmul(vload(dy + c), vload(x + c)), rv, vload(acc + c)));
      for (; c < n; ++c) acc[c] += dy[c] * x[c] * rstd[t];
    }
    for (i64 c = 0; c < n; ++c) dweight[c0 + c] += acc[c];
  }
}

// ---- RoPE (rotate-half): pairs (i, i + HD/2) of each head rotated by pos·theta^(−2i/HD) ----

// The cos/sin table (T, HD): row t holds cos(pos_t·f_i) for i < HD/2, then sin(pos_t·f_i), with
// f_i = theta^(−2i/HD) and the angles in double as the reference computes them. Every layer's q
// and k, forward and backward, rotate by the same positions, so the last table is kept and reused
// while (positions, HD, theta) are unchanged.
struct RopeTable {
  Scratch positions, table;
  i64 T = -1, HD = -1;
  double theta = 0;
};

static const float* ropeTable(const int32_t* positions, i64 T, i64 HD, double theta) {
  static thread_local RopeTable cache;
  const i64 half = HD / 2;
  if (cache.T == T && cache.HD == HD && cache.theta == theta &&
      std::memcmp(cache.positions.ints(T), positions, sizeof(int32_t) * T) == 0)
    return cache.table.get(T * HD);
  cache.T = -1;  // invalid while being rebuilt
  float* cs = cache.table.get(T * HD);
  std::memcpy(cache.positions.ints(T), positions, sizeof(int32_t) * T);
#pragma omp parallel for schedule(static) if (T * HD > 4096)
  for (i64 t = 0; t < T; ++t) {
    for (i64 i = 0; i < half; ++i) {
      const double angle = (double)positions[t] * std::pow(theta, (double)(-2 * i) / (double)HD);
      cs[t * HD + i] = (float)std::cos(angle);
      cs[t * HD + half + i] = (float)std::sin(angle);
    }
  }
  cache.T = T;
  cache.HD = HD;
  cache.theta = theta;
  return cs;
}

// x(T, NH*HD) in place; sign = +1 rotates by the angle, −1 by its negative (the transpose).
static void rope(float* x, const int32_t* positions, i64 T, i64 NH, i64 HD, double theta, float sign) {
  const i64 half = HD / 2;
  const float* table = ropeTable(positions, T, HD, theta);
  const Vf sg = vset1(sign);
#pragma omp parallel for schedule(static) if (T * NH * HD > kParallelMin)
  for (i64 t = 0; t < T; ++t) {
    const float* cs = table + t * HD;
    for (i64 h = 0; h < NH; ++h) {
      float* x1 = x + (t * NH + h) * HD;
      float* x2 = x1 + half;
      i64 i = 0;
      for (; i + W <= half; i += W) {
        const Vf a = vload(x1 + i), b = vload(x2 + i), c = vload(cs + i), s = vmul(sg, vload(cs + half + i));
        vstore(x1 + i, vfnmadd(b, s, vmul(a, c)));  // x1·cos − x2·sin
        vstore(x2 + i, vfmadd(a, s, vmul(b, c)));   // x2·cos + x1·sin
      }
      for (; i < half; ++i) {
        const float a = x1[i], b = x2[i], s = sign * cs[half + i];
        x1[i] = a * cs[i] - b * s;
        x2[i] = b * cs[i] + a * s;
      }
    }
  }
}

static void ropeForward(float* x, const int32_t* positions, i64 T, i64 NH, i64 HD, double theta) {
  rope(x, positions, T, NH, HD, theta, 1.0f);
}
static void ropeBackward(float* dx, const int32_t* positions, i64 T, i64 NH, i64 HD, double theta) {
  rope(dx, positions, T, NH, HD, theta, -1.0f);
}

// ---- elementwise ----

static inline Vf vsigmoid(Vf g) { return vdiv(vset1(1.0f), vadd(vset1(1.0f), vexp(vsub(vzero(), g)))); }
static inline float sigmoid1(float g) { return 1.0f / (1.0f + std::exp(-g)); }

// out(T, I) = silu(gate)·up, gate and up the halves of each row of gateUp(T, 2I).
static void swigluForward(float* out, const float* gateUp, i64 T, i64 I) {
#pragma omp parallel for schedule(static) if (T * I > kParallelMin)
  for (i64 t = 0; t < T; ++t) {
    const float *gate = gateUp + t * 2 * I, *up = gate + I;
    float* o = out + t * I;
    i64 i = 0;
    for (; i + W <= I; i += W) {
      const Vf g = vload(gate + i);
      vstore(o + i, vmul(vmul(g, vsigmoid(g)), vload(up + i)));
    }
    for (; i < I; ++i) o[i] = gate[i] * sigmoid1(gate[i]) * up[i];
  }
}

// dgate = dout·up·σ(g)·(1 + g·(1 − σ(g))), dup = dout·silu(g), written as the halves of each row
// of dgateUp(T, 2I).
static void swigluBackward(float* dgateUp, const float* dout, const float* gateUp, i64 T, i64 I) {
#pragma omp parallel for schedule(static) if (T * I > kParallelMin)
  for (i64 t = 0; t < T; ++t) {
    const float *gate = gateUp + t * 2 * I, *up = gate + I, *d = dout + t * I;
    float *dgate = dgateUp + t * 2 * I, *dup = dgate + I;
    const Vf one = vset1(1.0f);
    i64 i = 0;
    for (; i + W <= I; i += W) {
      const Vf g = vload(gate + i), dv = vload(d + i), s = vsigmoid(g);
      const Vf dsilu = vmul(s, vfmadd(g, vsub(one, s), one));
      vstore(dgate + i, vmul(vmul(dv, vload(up + i)), dsilu));
      vstore(dup + i, vmul(dv, vmul(g, s)));
    }
    for (; i < I; ++i) {
      const float g = gate[i], s = sigmoid1(g);
      dgate[i] = d[i] * up[i] * s * (1 + g * (1 - s));
      dup[i] = d[i] * g * s;
    }
  }
}

static void add(float* out, const float* a, const float* b, i64 n) {
#pragma omp parallel for schedule(static) if (n > 4 * kParallelMin)
  for (i64 i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

static void scale(float* x, float s, i64 n) {
#pragma omp parallel for schedule(static) if (n > 4 * kParallelMin)
  for (i64 i = 0; i < n; ++i) x[i] *= s;
}

// Σ x², vector partial sums in float over blocks of 1024, the blocks summed in double.
static double sumSquares(const float* x, i64 n) {
  double total = 0;
  const i64 block = 1024;
#pragma omp parallel for schedule(static) reduction(+ : total) if (n > 4 * kParallelMin)
  for (i64 i0 = 0; i0 < n; i0 += block) {
    const i64 m = n - i0 < block ? n - i0 : block;
    const float* p = x + i0;
    Vf s0 = vzero(), s1 = vzero();
    i64 i = 0;
    for (; i + 2 * W <= m; i += 2 * W) {
      const Vf a = vload(p + i), b = vload(p + i + W);
      s0 = vfmadd(a, a, s0);
      s1 = vfmadd(b, b, s1);
    }
    double s = (double)vhsum(vadd(s0, s1));
    for (; i < m; ++i) s += (double)p[i] * p[i];
    total += s;
  }
  return total;
}

// torch.optim.AdamW: p ← p·(1 − lr·wd) − (lr/bc1)·m / (sqrt(v)/sqrt(bc2) + eps), moments updated first.
static void adamw(float* params, const float* grads, float* m, float* v, i64 n, double lr, double beta1,
                  double beta2, double eps, double weightDecay, double step) {
  const float b1 = (float)beta1, b2 = (float)beta2, omb1 = (float)(1 - beta1), omb2 = (float)(1 - beta2);
  const float stepSize = (float)(lr / (1 - std::pow(beta1, step)));
  const float invBc2Sqrt = (float)(1 / std::sqrt(1 - std::pow(beta2, step)));
  const float decay = (float)(1 - lr * weightDecay), epsf = (float)eps;
  const i64 chunk = 4096;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (i64 i0 = 0; i0 < n; i0 += chunk) {
    const i64 i1 = i0 + chunk < n ? i0 + chunk : n;
    i64 i = i0;
    for (; i + W <= i1; i += W) {
      const Vf g = vload(grads + i);
      const Vf mi = vfmadd(vset1(b1), vload(m + i), vmul(vset1(omb1), g));
      const Vf vi = vfmadd(vset1(b2), vload(v + i), vmul(vmul(vset1(omb2), g), g));
      vstore(m + i, mi);
      vstore(v + i, vi);
      const Vf denom = vfmadd(vsqrt(vi), vset1(invBc2Sqrt), vset1(epsf));
      vstore(params + i, vsub(vmul(vload(params + i), vset1(decay)), vdiv(vmul(vset1(stepSize), mi), denom)));
    }
    for (; i < i1; ++i) {
      const float g = grads[i];
      const float mi = b1 * m[i] + omb1 * g, vi = b2 * v[i] + omb2 * g * g;
      m[i] = mi;
      v[i] = vi;
      params[i] = params[i] * decay - stepSize * mi / (std::sqrt(vi) * invBc2Sqrt + epsf);
    }
  }
}

// ---- loss head on logits(T,V): log-probability of the target and entropy of each row ----

struct RowStats {
  float lse;      // log Σ_v e^{z_v}
  float entropy;  // H = lse − Σ_v p_v z_v
};

// One pass for the max, one for Σ e^{z−max} and Σ e^{z−max}·z (blocks of 1024 summed in double).
static RowStats softmaxRowStats(const float* z, i64 V) {
  Vf mv = vset1(-INFINITY);
  i64 v = 0;
  for (; v + W <= V; v += W) mv = vmax(mv, vload(z + v));
  float mx = vhmax(mv);
  for (; v < V; ++v) mx = z[v] > mx ? z[v] : mx;
  const Vf mxv = vset1(mx);
  double sum = 0, sumz = 0;
  for (i64 v0 = 0; v0 < V; v0 += 1024) {
    const i64 n = V - v0 < 1024 ? V - v0 : 1024;
    Vf s = vzero(), sz = vzero();
    i64 i = 0;
    for (; i + W <= n; i += W) {
      const Vf zz = vload(z + v0 + i), e = vexp(vsub(zz, mxv));
      s = vadd(s, e);
      sz = vfmadd(e, zz, sz);
    }
    if (i < n) {
      const int r = (int)(n - i);
      const Vf zz = vloadPart(z + v0 + i, r), e = vexp(vsub(zz, mxv));
      float tmp[W];
      vstore(tmp, e);
      for (int l = 0; l < r; ++l) {
        sum += tmp[l];
        sumz += (double)tmp[l] * z[v0 + i + l];
      }
    }
    sum += vhsum(s);
    sumz += vhsum(sz);
  }
  const double lse = mx + std::log(sum);
  return {(float)lse, (float)(lse - sumz / sum)};
}

// A target < 0 means "no target here" (the reference's convention): logprob = entropy = 0.
static void lossHeadForward(float* logprob, float* entropy, const float* logits, const int32_t* targets, i64 T,
                            i64 V) {
#pragma omp parallel for schedule(dynamic, 1) if (T * V > kParallelMin)
  for (i64 t = 0; t < T; ++t) {
    const i64 y = targets[t];
    if (y < 0) {
      logprob[t] = entropy[t] = 0;
      continue;
    }
    const float* z = logits + t * V;
    const RowStats st = softmaxRowStats(z, V);
    logprob[t] = z[y] - st.lse;
    entropy[t] = st.entropy;
  }
}

// dz_v = cl·(1[v=y] − p_v) − ce·p_v·(log p_v + H) = cl·1[v=y] − p_v·(cl + ce·(z_v − lse + H)).
// Each element is read before it is written, so dlogits may be logits.
static void lossHeadBackward(float* dlogits, const float* logits, const int32_t* targets, const float* coefLogprob,
                             const float* coefEntropy, i64 T, i64 V) {
#pragma omp parallel for schedule(dynamic, 1) if (T * V > kParallelMin)
  for (i64 t = 0; t < T; ++t) {
    const i64 y = targets[t];
    const float* z = logits + t * V;
    float* d = dlogits + t * V;
    if (y < 0) {
      std::memset(d, 0, sizeof(float) * V);
      continue;
    }
    const RowStats st = softmaxRowStats(z, V);
    const float cl = coefLogprob[t], ce = coefEntropy[t];
    const Vf lse = vset1(st.lse), clv = vset1(cl), cev = vset1(ce), shift = vset1(st.entropy - st.lse);
    i64 v = 0;
    for (; v + W <= V; v += W) {
      const Vf zz = vload(z + v), p = vexp(vsub(zz, lse));
      vstore(d + v, vsub(vzero(), vmul(p, vfmadd(cev, vadd(zz, shift), clv))));
    }
    if (v < V) {
      const int r = (int)(V - v);
      const Vf zz = vloadPart(z + v, r), p = vexp(vsub(zz, lse));
      vstorePart(d + v, vsub(vzero(), vmul(p, vfmadd(cev, vadd(zz, shift), clv))), r);
    }
    // The target's own term, from its logit read before the row was overwritten.
    d[y] += cl;
  }
}

// Choosing the next token from one row of logits z (V), without truncation (src/rollout/sampling.ts
// keeps top-k/top-p in TypeScript): out[0] = the id, out[1] = its logprob. invT = 0 is greedy:
// the first maximum, with the T = 1 log-softmax. Otherwise p_v = exp((z_v − max)·invT) and the
// token is the first whose cumulative mass exceeds u·Σp (inverse CDF in vocabulary order); its
// logprob is log(p/Σp). Sums in double, exp in fp32 (relative error ~1e-7).
// p_v = exp((z_v − max)·scale) into p (fp32 exp, relative error ~1e-7); returns Σp in double and the first maximum's id.
static double expRow(float* p, const float* z, i64 V, float scale, i64* argmax) {
  Vf mv = vset1(-INFINITY);
  i64 v = 0;
  for (; v + W <= V; v += W) mv = vmax(mv, vload(z + v));
  float mx = vhmax(mv);
  for (; v < V; ++v) mx = std::max(mx, z[v]);
  i64 arg = 0;
  while (arg < V - 1 && !(z[arg] == mx)) ++arg;  // the first maximum, as torch.argmax
  *argmax = arg;
  double total = 0;
  const Vf mxv = vset1(mx), sv = vset1(scale);
  for (v = 0; v + W <= V; v += W) {
    const Vf e = vexp(vmul(vsub(vload(z + v), mxv), sv));
    vstore(p + v, e);
    total += vhsum(e);
  }
  for (; v < V; ++v) total += p[v] = std::exp((z[v] - mx) * scale);
  return total;
}

static void chooseToken(double* out, const float* z, i64 V, double invT, double u) {
  static thread_local Scratch scratch;
  float* p = scratch.get((size_t)V);
  i64 arg = 0;
  const double total = expRow(p, z, V, invT == 0 ? 1.0f : (float)invT, &arg);
  if (invT == 0) {
    out[0] = (double)arg;
    out[1] = -std::log(total);
    return;
  }
  const double target = u * total;
  double acc = 0;
  i64 id = V - 1, v = 0;
  for (; v + W <= V; v += W) {  // whole vectors while the cumulative mass stays below target
    const double s = vhsum(vload(p + v));
    if (acc + s > target) break;
    acc += s;
  }
  for (; v < V; ++v) {
    acc += p[v];
    if (acc > target) {
      id = v;
      break;
    }
  }
  while (id > 0 && p[id] == 0) --id;  // u rounding past the last nonzero entry
  out[0] = (double)id;
  out[1] = std::log(p[id] / total);
}

// chooseToken with top-k and/or top-p (src/engine/kernels.ts chooseTokenTruncated): the kept set is
// the ids with p ≥ the topK-th largest (ties kept), then the shortest run of the most likely of
// those (equal p: lower id first) reaching topP of their mass; the draw is the inverse CDF over the
// kept ids in vocabulary order. Top-p finds its boundary without a full sort: ids are binned by
// (max − z)·invT (NB bins over RANGE nats), bins are walked from the most likely until their mass
// reaches the target, and only the boundary bin is sorted.
static void chooseTokenTruncated(double* out, const float* z, i64 V, double invT, i64 topK, double topP, double u) {
  static thread_local Scratch pS, keptS, idS;
  float* p = pS.get((size_t)V);
  i64 arg = 0;
  expRow(p, z, V, (float)invT, &arg);
  float* keep = keptS.get((size_t)V);  // 1 where kept (floats: Scratch holds floats)
  int32_t* ids = reinterpret_cast<int32_t*>(idS.get((size_t)V));
  i64 n = 0;
  float kth = 0;
  if (topK > 0 && topK < V) {
    // The k-th largest p: a min-heap of the k largest so far; most ids fail the first comparison.
    float* heap = keep;
    std::memcpy(heap, p, (size_t)topK * 4);
    std::make_heap(heap, heap + topK, std::greater<float>());
    for (i64 v = topK; v < V; ++v)
      if (p[v] > heap[0]) {
        std::pop_heap(heap, heap + topK, std::greater<float>());
        heap[topK - 1] = p[v];
        std::push_heap(heap, heap + topK, std::greater<float>());
      }
    kth = heap[0];
  }
  double mass = 0;
  for (i64 v = 0; v < V; ++v)
    if (p[v] >= kth) {
      ids[n++] = (int32_t)v;
      mass += p[v];
    }
  for (i64 v = 0; v < V; ++v) keep[v] = 0;
  if (topP < 1) {
    constexpr int NB = 4096;
    constexpr double RANGE = 64, perUnit = NB / RANGE;
    static thread_local std::vector<double> binMass;
    static thread_local std::vector<uint16_t> binOf;
    binMass.assign(NB, 0);
    binOf.resize((size_t)n);
    const double mx = (double)z[arg], target = topP * mass;
    for (i64 i = 0; i < n; ++i) {
      const int b = (int)std::min<double>(NB - 1, std::floor((mx - (double)z[ids[i]]) * invT * perUnit));
      binOf[i] = (uint16_t)b;
      binMass[b] += p[ids[i]];
    }
    double above = 0;
    int last = NB - 1;
    for (int b = 0; b < NB; ++b) {
      if (above + binMass[b] >= target) {
        last = b;
        break;
      }
      above += binMass[b];
    }
    std::vector<int32_t> boundary;
    for (i64 i = 0; i < n; ++i) {
      if (binOf[i] < last) keep[ids[i]] = 1;
      else if (binOf[i] == last) boundary.push_back(ids[i]);
    }
    std::sort(boundary.begin(), boundary.end(), [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    double acc = above;
    bool any = above > 0;
    for (int32_t id : boundary) {
      if (any && acc >= target) break;
      keep[id] = 1;
      acc += p[id];
      any = true;
    }
  } else {
    for (i64 i = 0; i < n; ++i) keep[ids[i]] = 1;
  }
  double kept = 0;
  for (i64 v = 0; v < V; ++v)
    if (keep[v] != 0) kept += p[v];
  const double target = u * kept;
  double acc = 0;
  i64 id = -1;
  for (i64 v = 0; v < V; ++v) {
    if (keep[v] == 0) continue;
    if (p[v] > 0) id = v;  // u rounding past the last kept token with mass: that one
    acc += p[v];
    if (acc > target && p[v] > 0) break;
  }
  out[0] = (double)id;
  out[1] = std::log(p[id] / kept);
}
