// The TypeScript reference backend: the living definition of every kernel in backend.ts.
// Plain loops, sums accumulated in doubles, no cleverness beyond register tiles and a
// cache-friendly loop order in the matrix products; the native addon is tested against this file, and it is the fallback
// when no compiler exists.
//
// One convention the contract leaves open, fixed here: in the loss head a target < 0 means
// "no target at this position": logprob = entropy = 0 and the dlogits row is zero.
import type { Backend } from './backend.ts';
import { fromBf16, roundToBf16, toBf16 } from './bf16.ts';

// Per-call scratch in double precision, grown on demand (never a T×T matrix).
let scratch = new Float64Array(1024);
function scratchOf(n: number): Float64Array {
  if (scratch.length < n) scratch = new Float64Array(Math.max(n, scratch.length * 2));
  return scratch;
}

// Two product shapes cover every matrix multiply here; both accumulate in doubles.
//  gemmDot:  out(M,N) = a(M,K)·b(N,K)ᵀ, rows of a and b contiguous in k (dot products), in
//            4×4 register tiles over blocks of 64 rows of b that stay in cache.
//  gemmAxpy: out(M,N) = A(M,K)·b(K,N) with A(i,k) = a[i·rs + k·cs] (any layout) and rows of b
//            contiguous in j (axpy: out[i,:] += A(i,k)·b[k,:]), four rows of out at a time.
const DOT_BLOCK = 64;

function gemmDot(out: Float32Array, a: Float32Array, b: Float32Array, M: number, N: number, K: number,
  accumulate: boolean, bias: Float32Array | null): void {
  for (let j0 = 0; j0 < N; j0 += DOT_BLOCK) {
    const j1 = Math.min(N, j0 + DOT_BLOCK);
    for (let i = 0; i < M; i += 4) {
      const mi = Math.min(4, M - i);
      for (let j = j0; j < j1; j += 4) {
        const nj = Math.min(4, j1 - j);
        if (mi === 4 && nj === 4) {
          const a0 = i * K, a1 = a0 + K, a2 = a1 + K, a3 = a2 + K;
          const b0 = j * K, b1 = b0 + K, b2 = b1 + K, b3 = b2 + K;
          let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
          let s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
          for (let k = 0; k < K; k++) {
            const x0 = a[a0 + k], x1 = a[a1 + k], x2 = a[a2 + k], x3 = a[a3 + k];
            const y0 = b[b0 + k], y1 = b[b1 + k], y2 = b[b2 + k], y3 = b[b3 + k];
            s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
            s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
            s20 += x2 * y0; s21 += x2 * y1; s22 += x2 * y2; s23 += x2 * y3;
            s30 += x3 * y0; s31 += x3 * y1; s32 += x3 * y2; s33 += x3 * y3;
          }
          const tile = [s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33];
          for (let ii = 0; ii < 4; ii++) {
            for (let jj = 0; jj < 4; jj++) {
              const o = (i + ii) * N + j + jj;
              const v = tile[ii * 4 + jj] + (bias ? bias[j + jj] : 0);
              out[o] = accumulate ? out[o] + v : v;
            }
          }
        } else {
          for (let ii = i; ii < i + mi; ii++) {
            for (let jj = j; jj < j + nj; jj++) {
              let sum = bias ? bias[jj] : 0;
              for (let k = 0; k < K; k++) sum += a[ii * K + k] * b[jj * K + k];
              const o = ii * N + jj;
              out[o] = accumulate ? out[o] + sum : sum;
            }
          }
        }
      }
    }
  }
}

let axpyAcc = new Float64Array(4 * 1024);
function gemmAxpy(out: Float32Array, a: Float32Array, rs: number, cs: number, b: Float32Array,
  M: number, N: number, K: number, accumulate: boolean): void {
  if (axpyAcc.length < 4 * N) axpyAcc = new Float64Array(4 * N);
  const acc = axpyAcc;
  for (let i = 0; i < M; i += 4) {
    const mi = Math.min(4, M - i);
    acc.fill(0, 0, 4 * N);
    for (let k = 0; k < K; k++) {
      const bo = k * N;
      if (mi === 4) {
        const x0 = a[i * rs + k * cs], x1 = a[(i + 1) * rs + k * cs], x2 = a[(i + 2) * rs + k * cs], x3 = a[(i + 3) * rs + k * cs];
        for (let j = 0; j < N; j++) {
          const y = b[bo + j];
          acc[j] += x0 * y;
          acc[N + j] += x1 * y;
          acc[2 * N + j] += x2 * y;
          acc[3 * N + j] += x3 * y;
        }
      } else {
        for (let ii = 0; ii < mi; ii++) {
          const x = a[(i + ii) * rs + k * cs];
          for (let j = 0; j < N; j++) acc[ii * N + j] += x * b[bo + j];
        }
      }
    }
    for (let ii = 0; ii < mi; ii++) {
      const oo = (i + ii) * N;
      if (accumulate) for (let j = 0; j < N; j++) out[oo + j] += acc[ii * N + j];
      else for (let j = 0; j < N; j++) out[oo + j] = acc[ii * N + j];
    }
  }
}

function matmul(out: Float32Array, a: Float32Array, b: Float32Array, M: number, N: number, K: number,
  transA: boolean, transB: boolean, accumulate: boolean): void {
  // a(i,k) = transA ? a[k*M+i] : a[i*K+k];  b(k,j) = transB ? b[j*K+k] : b[k*N+j].
  if (transB) {
    // b's rows are contiguous in k: dot products, after laying a out as (M,K) if needed.
    let am = a;
    if (transA) {
      am = new Float32Array(M * K);
      for (let k = 0; k < K; k++) for (let i = 0; i < M; i++) am[i * K + k] = a[k * M + i];
    }
    gemmDot(out, am, b, M, N, K, accumulate, null);
    return;
  }
  gemmAxpy(out, a, transA ? 1 : K, transA ? M : 1, b, M, N, K, accumulate);
}

function linearForward(out: Float32Array, inp: Float32Array, weight: Float32Array, bias: Float32Array | null,
  T: number, C: number, OC: number): void {
  // out[t,o] = bias[o] + Σ_c inp[t,c]·weight[o,c]
  gemmDot(out, inp, weight, T, OC, C, false, bias);
}

// bf16 operands: widened to fp32 (exact), then the fp32 definitions above (double sums).
function matmulBf16(out: Float32Array, a: Uint16Array, b: Uint16Array, M: number, N: number, K: number,
  transA: boolean, transB: boolean, accumulate: boolean): void {
  matmul(out, fromBf16(a.subarray(0, M * K)), fromBf16(b.subarray(0, K * N)), M, N, K, transA, transB, accumulate);
}

function linearForwardBf16(out: Float32Array, inp: Float32Array, weight: Uint16Array, bias: Float32Array | null,
  T: number, C: number, OC: number): void {
  gemmDot(out, roundToBf16(inp.subarray(0, T * C)), fromBf16(weight.subarray(0, OC * C)), T, OC, C, false, bias);
}

function linearBackwardBf16(dinp: Float32Array | null, dweight: Float32Array, dbias: Float32Array | null,
  dout: Float32Array, inp: Float32Array, weight: Uint16Array, T: number, C: number, OC: number): void {
  const d = roundToBf16(dout.subarray(0, T * OC));
  if (dinp) gemmAxpy(dinp, d, OC, 1, fromBf16(weight.subarray(0, OC * C)), T, C, OC, false);
  gemmAxpy(dweight, d, 1, OC, roundToBf16(inp.subarray(0, T * C)), OC, C, T, true);
  if (dbias) biasGrad(dbias, dout, T, OC);
}

// dbias[o] += Σ_t dout[t,o]
function biasGrad(dbias: Float32Array, dout: Float32Array, T: number, OC: number): void {
  for (let o = 0; o < OC; o++) {
    let sb = 0;
    for (let t = 0; t < T; t++) sb += dout[t * OC + o];
    dbias[o] += sb;
  }
}

function roundBf16(out: Uint16Array, x: Float32Array, n: number): void {
  out.set(toBf16(x.subarray(0, n)));
}

function linearBackward(dinp: Float32Array | null, dweight: Float32Array, dbias: Float32Array | null,
  dout: Float32Array, inp: Float32Array, weight: Float32Array, T: number, C: number, OC: number): void {
  // dinp[t,c] = Σ_o dout[t,o]·weight[o,c]   (written)
  if (dinp) gemmAxpy(dinp, dout, OC, 1, weight, T, C, OC, false);
  // dweight[o,c] += Σ_t dout[t,o]·inp[t,c]   (doutᵀ·inp, accumulated)
  gemmAxpy(dweight, dout, 1, OC, inp, OC, C, T, true);
  if (dbias) biasGrad(dbias, dout, T, OC);
}

function embeddingForward(out: Float32Array, ids: Int32Array, wte: Float32Array, T: number, C: number): void {
  for (let t = 0; t < T; t++) {
    const row = ids[t] * C;
    for (let c = 0; c < C; c++) out[t * C + c] = wte[row + c];
  }
}

function embeddingBackward(dwte: Float32Array, dout: Float32Array, ids: Int32Array, T: number, C: number): void {
  for (let t = 0; t < T; t++) {
    const row = ids[t] * C;
    for (let c = 0; c < C; c++) dwte[row + c] += dout[t * C + c];
  }
}

function rmsnormForward(out: Float32Array, rstd: Float32Array, inp: Float32Array, weight: Float32Array,
  T: number, C: number, eps: number): void {
  for (let t = 0; t < T; t++) {
    const o = t * C;
    let ss = 0;
    for (let c = 0; c < C; c++) ss += inp[o + c] * inp[o + c];
    const r = 1 / Math.sqrt(ss / C + eps);
    rstd[t] = r;
    for (let c = 0; c < C; c++) out[o + c] = inp[o + c] * r * weight[c];
  }
}

function rmsnormBackward(dinp: Float32Array, dweight: Float32Array, dout: Float32Array, inp: Float32Array,
  weight: Float32Array, rstd: Float32Array, T: number, C: number): void {
  // y_c = x_c·r·w_c, r = (mean(x²)+eps)^(−1/2), ∂r/∂x_c = −r³·x_c/C, so
  // dx_c = r·w_c·dy_c − (r³/C)·x_c·Σ_j dy_j·w_j·x_j;  dw_c += dy_c·x_c·r.
  for (let t = 0; t < T; t++) {
    const o = t * C;
    const r = rstd[t];
    let dot = 0;
    for (let c = 0; c < C; c++) dot += dout[o + c] * weight[c] * inp[o + c];
    const k = (r * r * r * dot) / C;
    for (let c = 0; c < C; c++) {
      dinp[o + c] += r * weight[c] * dout[o + c] - k * inp[o + c];
      dweight[c] += dout[o + c] * inp[o + c] * r;
    }
  }
}

// Rotate pairs (i, i + HD/2) of every head by ±angle; sign −1 is the transpose (backward).
function rope(x: Float32Array, positions: Int32Array, T: number, NH: number, HD: number, theta: number, sign: number): void {
  const half = HD / 2;
  for (let t = 0; t < T; t++) {
    const pos = positions[t];
    for (let i = 0; i < half; i++) {
      const angle = pos * Math.pow(theta, (-2 * i) / HD);
      const cos = Math.cos(angle);
      const sin = sign * Math.sin(angle);
      for (let h = 0; h < NH; h++) {
        const o = t * NH * HD + h * HD;
        const x1 = x[o + i];
        const x2 = x[o + i + half];
        // [x1, x2]·cos + [−x2, x1]·sin
        x[o + i] = x1 * cos - x2 * sin;
        x[o + i + half] = x2 * cos + x1 * sin;
      }
    }
  }
}

function ropeForward(x: Float32Array, positions: Int32Array, T: number, NH: number, HD: number, theta: number): void {
  rope(x, positions, T, NH, HD, theta, 1);
}

function ropeBackward(dx: Float32Array, positions: Int32Array, T: number, NH: number, HD: number, theta: number): void {
  rope(dx, positions, T, NH, HD, theta, -1);
}

function attentionForward(out: Float32Array, lse: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array,
  cuSeqlens: Int32Array, B: number, T: number, NH: number, NKV: number, HD: number): void {
  const scale = 1 / Math.sqrt(HD);
  const group = NH / NKV;
  const QS = NH * HD, KS = NKV * HD;
  const acc = new Float64Array(HD);
  for (let b = 0; b < B; b++) {
    const start = cuSeqlens[b], end = cuSeqlens[b + 1];
    const s = scratchOf(end - start);
    for (let h = 0; h < NH; h++) {
      const ko = Math.floor(h / group) * HD;
      for (let i = start; i < end; i++) {
        const qo = i * QS + h * HD;
        // scores s_j = q_i·k_j·scale for j = start..i (causal)
        let max = -Infinity;
        for (let j = start; j <= i; j++) {
          let d = 0;
          for (let e = 0; e < HD; e++) d += q[qo + e] * k[j * KS + ko + e];
          d *= scale;
          s[j - start] = d;
          if (d > max) max = d;
        }
        let sum = 0;
        for (let j = start; j <= i; j++) {
          const p = Math.exp(s[j - start] - max);
          s[j - start] = p;
          sum += p;
        }
        acc.fill(0);
        for (let j = start; j <= i; j++) {
          const p = s[j - start] / sum;
          for (let e = 0; e < HD; e++) acc[e] += p * v[j * KS + ko + e];
        }
        for (let e = 0; e < HD; e++) out[qo + e] = acc[e];
        lse[i * NH + h] = max + Math.log(sum);
      }
    }
  }
}

function attentionBackward(dq: Float32Array, dk: Float32Array, dv: Float32Array, dout: Float32Array,
  q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, lse: Float32Array,
  cuSeqlens: Int32Array, B: number, T: number, NH: number, NKV: number, HD: number): void {
  // Flash-style: p_ij = exp(s_ij − lse_i); D_i = Σ dO_i∘O_i; dS_ij = p_ij·(dO_i·v_j − D_i);
  // dq_i = scale·Σ_j dS_ij k_j; dk_j = scale·Σ_i dS_ij q_i; dv_j = Σ_i p_ij dO_i.
  const scale = 1 / Math.sqrt(HD);
  const group = NH / NKV;
  const QS = NH * HD, KS = NKV * HD;
  // dk, dv are sums over many (query row, head) pairs: accumulate in double, then write.
  const dkAcc = new Float64Array(T * KS);
  const dvAcc = new Float64Array(T * KS);
  const dqAcc = new Float64Array(HD);
  for (let b = 0; b < B; b++) {
    const start = cuSeqlens[b], end = cuSeqlens[b + 1];
    for (let h = 0; h < NH; h++) {
      const ko = Math.floor(h / group) * HD;
      for (let i = start; i < end; i++) {
        const qo = i * QS + h * HD;
        const l = lse[i * NH + h];
        let D = 0;
        for (let e = 0; e < HD; e++) D += dout[qo + e] * out[qo + e];
        dqAcc.fill(0);
        for (let j = start; j <= i; j++) {
          const kj = j * KS + ko;
          let sc = 0, dp = 0;
          for (let e = 0; e < HD; e++) {
            sc += q[qo + e] * k[kj + e];
            dp += dout[qo + e] * v[kj + e];
          }
          const p = Math.exp(sc * scale - l);
          const ds = p * (dp - D) * scale;
          for (let e = 0; e < HD; e++) {
            dvAcc[kj + e] += p * dout[qo + e];
            dqAcc[e] += ds * k[kj + e];
            dkAcc[kj + e] += ds * q[qo + e];
          }
        }
        for (let e = 0; e < HD; e++) dq[qo + e] = dqAcc[e];
      }
    }
  }
  for (let n = 0; n < T * KS; n++) {
    dk[n] = dkAcc[n];
    dv[n] = dvAcc[n];
  }
}

function attentionDecode(out: Float32Array, q: Float32Array, kCache: Float32Array, vCache: Float32Array,
  slots: Int32Array, lens: Int32Array, B: number, NH: number, NKV: number, HD: number, maxLen: number): void {
  const scale = 1 / Math.sqrt(HD);
  const group = NH / NKV;
  const QS = NH * HD, KS = NKV * HD;
  const acc = new Float64Array(HD);
  for (let b = 0; b < B; b++) {
    const base = slots[b] * maxLen * KS;
    const len = lens[b];
    const s = scratchOf(len);
    for (let h = 0; h < NH; h++) {
      const ko = Math.floor(h / group) * HD;
      const qo = b * QS + h * HD;
      let max = -Infinity;
      for (let j = 0; j < len; j++) {
        let d = 0;
        for (let e = 0; e < HD; e++) d += q[qo + e] * kCache[base + j * KS + ko + e];
        d *= scale;
        s[j] = d;
        if (d > max) max = d;
      }
      let sum = 0;
      for (let j = 0; j < len; j++) {
        s[j] = Math.exp(s[j] - max);
        sum += s[j];
      }
      acc.fill(0);
      for (let j = 0; j < len; j++) {
        const p = s[j] / sum;
        for (let e = 0; e < HD; e++) acc[e] += p * vCache[base + j * KS + ko + e];
      }
      for (let e = 0; e < HD; e++) out[qo + e] = acc[e];
    }
  }
}

function attentionDecodeBf16(out: Float32Array, q: Float32Array, kCache: Uint16Array, vCache: Uint16Array,
  slots: Int32Array, lens: Int32Array, B: number, NH: number, NKV: number, HD: number, maxLen: number): void {
  attentionDecode(out, q, fromBf16(kCache), fromBf16(vCache), slots, lens, B, NH, NKV, HD, maxLen);
}

function chooseToken(out: Float64Array, logits: Float32Array, V: number, invT: number, u: number): void {
  let max = -Infinity, arg = 0;
  for (let v = 0; v < V; v++) {
    const z = logits[v];
    if (z > max) { max = z; arg = v; } // first maximum, as torch.argmax
  }
  if (invT === 0) {
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logits[v] - max);
    out[0] = arg;
    out[1] = -Math.log(sum);
    return;
  }
  const p = scratchOf(V);
  let total = 0;
  for (let v = 0; v < V; v++) total += p[v] = Math.exp((logits[v] - max) * invT);
  const target = u * total;
  let acc = 0, id = V - 1;
  for (let v = 0; v < V; v++) {
    acc += p[v];
    if (acc > target) { id = v; break; }
  }
  while (id > 0 && p[id] === 0) id--; // u rounding past the last nonzero entry
  out[0] = id;
  out[1] = Math.log(p[id] / total);
}

function swigluForward(out: Float32Array, gate: Float32Array, up: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    out[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
}

function swigluBackward(dgate: Float32Array, dup: Float32Array, dout: Float32Array, gate: Float32Array,
  up: Float32Array, n: number): void {
  // silu'(g) = σ(g)·(1 + g·(1 − σ(g)))
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    const sig = 1 / (1 + Math.exp(-g));
    const d = dout[i];
    dgate[i] = d * up[i] * sig * (1 + g * (1 - sig));
    dup[i] = d * g * sig;
  }
}

function add(out: Float32Array, a: Float32Array, b: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
}

function lossHeadForward(logprob: Float32Array, entropy: Float32Array, logits: Float32Array, targets: Int32Array,
  T: number, V: number): void {
  for (let t = 0; t < T; t++) {
    const y = targets[t];
    if (y < 0) {
      logprob[t] = 0;
      entropy[t] = 0;
      continue;
    }
    const o = t * V;
    let max = -Infinity;
    for (let v = 0; v < V; v++) if (logits[o + v] > max) max = logits[o + v];
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logits[o + v] - max);
    const lse = max + Math.log(sum);
    // H = −Σ p·log p = lse − Σ p·z
    let pz = 0;
    for (let v = 0; v < V; v++) pz += Math.exp(logits[o + v] - lse) * logits[o + v];
    logprob[t] = logits[o + y] - lse;
    entropy[t] = lse - pz;
  }
}

function lossHeadBackward(dlogits: Float32Array, logits: Float32Array, targets: Int32Array,
  coefLogprob: Float32Array, coefEntropy: Float32Array, T: number, V: number): void {
  // dz_v = cl·(1[v=y] − p_v) − ce·p_v·(log p_v + H). The row is copied first: dlogits may be logits.
  const z = scratchOf(V);
  for (let t = 0; t < T; t++) {
    const o = t * V;
    const y = targets[t];
    if (y < 0) {
      for (let v = 0; v < V; v++) dlogits[o + v] = 0;
      continue;
    }
    let max = -Infinity;
    for (let v = 0; v < V; v++) {
      z[v] = logits[o + v];
      if (z[v] > max) max = z[v];
    }
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(z[v] - max);
    const lse = max + Math.log(sum);
    let pz = 0;
    for (let v = 0; v < V; v++) pz += Math.exp(z[v] - lse) * z[v];
    const H = lse - pz;
    const cl = coefLogprob[t], ce = coefEntropy[t];
    for (let v = 0; v < V; v++) {
      const logp = z[v] - lse;
      const p = Math.exp(logp);
      dlogits[o + v] = cl * ((v === y ? 1 : 0) - p) - ce * p * (logp + H);
    }
  }
}

function adamw(params: Float32Array, grads: Float32Array, m: Float32Array, v: Float32Array, n: number,
  lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void {
  const bc1 = 1 - Math.pow(beta1, step);
  const bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, step));
  const stepSize = lr / bc1;
  const decay = 1 - lr * weightDecay;
  for (let i = 0; i < n; i++) {
    const g = grads[i];
    const mi = beta1 * m[i] + (1 - beta1) * g;
    const vi = beta2 * v[i] + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] = params[i] * decay - (stepSize * mi) / (Math.sqrt(vi) / bc2Sqrt + eps);
  }
}

function sumSquares(x: Float32Array, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += x[i] * x[i];
  return s;
}

function scale(x: Float32Array, s: number, n: number): void {
  for (let i = 0; i < n; i++) x[i] *= s;
}

export const referenceBackend: Backend = {
  name: 'reference',
  isa: 'typescript',
  threads: 1,
  matmul,
  matmulBf16,
  linearForward,
  linearForwardBf16,
  linearBackward,
  linearBackwardBf16,
  roundBf16,
  embeddingForward,
  embeddingBackward,
  rmsnormForward,
  rmsnormBackward,
  ropeForward,
  ropeBackward,
  attentionForward,
  attentionBackward,
  attentionDecode,
  attentionDecodeBf16,
  chooseToken,
  swigluForward,
  swigluBackward,
  add,
  lossHeadForward,
  lossHeadBackward,
  adamw,
  sumSquares,
  scale,
};
