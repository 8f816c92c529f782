// The reference element-wise and row kernels (native/kernels.inl's twin): linear layers on the
// products of gemm.ts, embedding, RMSNorm, RoPE, SwiGLU, the loss head, AdamW, token choice.
//
// One convention the contract leaves open, fixed here: in the loss head a target < 0 means
// "no target at this position": logprob = entropy = 0 and the dlogits row is zero.
import type { HostKernels } from '../kernels.ts';
import { gemmAxpy, gemmDot } from './gemm.ts';
import { scratchOf } from './scratch.ts';

export const linearForward: HostKernels['linearForward'] = (out, inp, weight, bias, T, C, OC) => {
  // out[t,o] = bias[o] + Σ_c inp[t,c]·weight[o,c]
  gemmDot(out, inp, weight, T, OC, C, false, bias);
};

// dbias[o] += Σ_t dout[t,o]
export function biasGrad(dbias: Float32Array, dout: Float32Array, T: number, OC: number): void {
  for (let o = 0; o < OC; o++) {
    let sb = 0;
    for (let t = 0; t < T; t++) sb += dout[t * OC + o];
    dbias[o] += sb;
  }
}

export const linearBackward: HostKernels['linearBackward'] = (dinp, dweight, dbias, dout, inp, weight, T, C, OC) => {
  // dinp[t,c] = Σ_o dout[t,o]·weight[o,c]   (written)
  if (dinp) gemmAxpy(dinp, dout, OC, 1, weight, T, C, OC, false);
  // dweight[o,c] += Σ_t dout[t,o]·inp[t,c]   (doutᵀ·inp, accumulated)
  gemmAxpy(dweight, dout, 1, OC, inp, OC, C, T, true);
  if (dbias) biasGrad(dbias, dout, T, OC);
};

export const embeddingForward: HostKernels['embeddingForward'] = (out, ids, wte, T, C) => {
  for (let t = 0; t < T; t++) {
    const row = ids[t] * C;
    for (let c = 0; c < C; c++) out[t * C + c] = wte[row + c];
  }
};

export const embeddingBackward: HostKernels['embeddingBackward'] = (dwte, dout, ids, T, C) => {
  for (let t = 0; t < T; t++) {
    const row = ids[t] * C;
    for (let c = 0; c < C; c++) dwte[row + c] += dout[t * C + c];
  }
};

export const rmsnormForward: HostKernels['rmsnormForward'] = (out, rstd, inp, weight, T, C, eps) => {
  for (let t = 0; t < T; t++) {
    const o = t * C;
    let ss = 0;
    for (let c = 0; c < C; c++) ss += inp[o + c] * inp[o + c];
    const r = 1 / Math.sqrt(ss / C + eps);
    rstd[t] = r;
    for (let c = 0; c < C; c++) out[o + c] = inp[o + c] * r * weight[c];
  }
};

export const rmsnormBackward: HostKernels['rmsnormBackward'] = (dinp, dweight, dout, inp, weight, rstd, T, C) => {
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
};

// Rotate pairs (i, i + HD/2) of every head by ±angle; sign −1 is the transpose (backward).
function rope(
  x: Float32Array,
  positions: Int32Array,
  T: number,
  NH: number,
  HD: number,
  theta: number,
  sign: number,
): void {
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

export const ropeForward: HostKernels['ropeForward'] = (x, positions, T, NH, HD, theta) => {
  rope(x, positions, T, NH, HD, theta, 1);
};

export const ropeBackward: HostKernels['ropeBackward'] = (dx, positions, T, NH, HD, theta) => {
  rope(dx, positions, T, NH, HD, theta, -1);
};

export const chooseToken: HostKernels['chooseToken'] = (out, logits, V, invT, u) => {
  let max = -Infinity,
    arg = 0;
  for (let v = 0; v < V; v++) {
    const z = logits[v];
    if (z > max) {
      max = z;
      arg = v;
    } // first maximum, as torch.argmax
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
  let acc = 0,
    id = V - 1;
  for (let v = 0; v < V; v++) {
    acc += p[v];
    if (acc > target) {
      id = v;
      break;
    }
  }
  while (id > 0 && p[id] === 0) id--; // u rounding past the last nonzero entry
  out[0] = id;
  out[1] = Math.log(p[id] / total);
};

export const chooseTokenTruncated: HostKernels['chooseTokenTruncated'] = (out, logits, V, invT, topK, topP, u) => {
  let max = -Infinity;
  for (let v = 0; v < V; v++) max = Math.max(max, logits[v]);
  const p = Float64Array.from({ length: V }, (_, v) => Math.exp((logits[v] - max) * invT));
  // Most likely first, equal p by the lower id: top-k keeps a prefix (with the k-th's ties),
  // top-p the shortest prefix of that reaching its share of the mass.
  let kept = Array.from({ length: V }, (_, v) => v).sort((a, b) => p[b] - p[a] || a - b);
  if (topK > 0 && topK < V) {
    const kth = p[kept[topK - 1]];
    kept = kept.filter((v) => p[v] >= kth);
  }
  if (topP < 1) {
    const target = topP * kept.reduce((acc, v) => acc + p[v], 0);
    let acc = 0,
      n = 0;
    while (n < kept.length && acc < target) acc += p[kept[n++]];
    kept = kept.slice(0, Math.max(1, n));
  }
  kept.sort((a, b) => a - b); // the draw: inverse CDF in vocabulary order
  const mass = kept.reduce((acc, v) => acc + p[v], 0);
  let acc = 0,
    id = -1;
  for (const v of kept) {
    if (p[v] > 0) id = v; // u rounding past the last kept token with mass: that one
    acc += p[v];
    if (acc > u * mass && p[v] > 0) break;
  }
  out[0] = id;
  out[1] = Math.log(p[id] / mass);
};

export const swigluForward: HostKernels['swigluForward'] = (out, gateUp, T, I) => {
  for (let t = 0; t < T; t++)
    for (let j = 0; j < I; j++) {
      const g = gateUp[t * 2 * I + j];
      out[t * I + j] = (g / (1 + Math.exp(-g))) * gateUp[t * 2 * I + I + j];
    }
};

export const swigluBackward: HostKernels['swigluBackward'] = (dgateUp, dout, gateUp, T, I) => {
  // silu'(g) = σ(g)·(1 + g·(1 − σ(g)))
  for (let t = 0; t < T; t++)
    for (let j = 0; j < I; j++) {
      const gi = t * 2 * I + j,
        g = gateUp[gi],
        sig = 1 / (1 + Math.exp(-g)),
        d = dout[t * I + j];
      dgateUp[gi] = d * gateUp[gi + I] * sig * (1 + g * (1 - sig));
      dgateUp[gi + I] = d * g * sig;
    }
};

export const add: HostKernels['add'] = (out, a, b, n) => {
  for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
};

export const copyColumns: HostKernels['copyColumns'] = (dst, src, rows, cols, dstStride, dstCol, srcStride, srcCol) => {
  for (let r = 0; r < rows; r++) {
    const d = r * dstStride + dstCol,
      s = r * srcStride + srcCol;
    for (let j = 0; j < cols; j++) dst[d + j] = src[s + j];
  }
};

export const lossHeadForward: HostKernels['lossHeadForward'] = (logprob, entropy, logits, targets, T, V) => {
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
};

export const lossHeadBackward: HostKernels['lossHeadBackward'] = (
  dlogits,
  logits,
  targets,
  coefLogprob,
  coefEntropy,
  T,
  V,
) => {
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
    const cl = coefLogprob[t],
      ce = coefEntropy[t];
    for (let v = 0; v < V; v++) {
      const logp = z[v] - lse;
      const p = Math.exp(logp);
      dlogits[o + v] = cl * ((v === y ? 1 : 0) - p) - ce * p * (logp + H);
    }
  }
};

export const adamw: HostKernels['adamw'] = (params, grads, m, v, n, lr, beta1, beta2, eps, weightDecay, step) => {
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
};

export const sumSquares: HostKernels['sumSquares'] = (x, n) => {
  let s = 0;
  for (let i = 0; i < n; i++) s += x[i] * x[i];
  return s;
};

export const scale: HostKernels['scale'] = (x, s, n) => {
  for (let i = 0; i < n; i++) x[i] *= s;
};
