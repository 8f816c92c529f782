// The reference attention (native/attention.inl's twin): causal GQA over packed sequences with the
// log-sum-exp kept for backward, and decode attention over KV-cache slots (fp32 or bf16).
import type { HostKernels } from '../kernels.ts';
import { fromBf16 } from '../bf16.ts';
import { scratchOf } from './scratch.ts';

export const attentionForward: HostKernels['attentionForward'] = (out, lse, q, k, v, cuSeqlens, B, T, NH, NKV, HD) => {
  const scale = 1 / Math.sqrt(HD);
  const group = NH / NKV;
  const QS = NH * HD,
    KS = NKV * HD;
  const acc = new Float64Array(HD);
  for (let b = 0; b < B; b++) {
    const start = cuSeqlens[b],
      end = cuSeqlens[b + 1];
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
};

export const attentionBackward: HostKernels['attentionBackward'] = (
  dq,
  dk,
  dv,
  dout,
  q,
  k,
  v,
  out,
  lse,
  cuSeqlens,
  B,
  T,
  NH,
  NKV,
  HD,
) => {
  // Flash-style: p_ij = exp(s_ij − lse_i); D_i = Σ dO_i∘O_i; dS_ij = p_ij·(dO_i·v_j − D_i);
  // dq_i = scale·Σ_j dS_ij k_j; dk_j = scale·Σ_i dS_ij q_i; dv_j = Σ_i p_ij dO_i.
  const scale = 1 / Math.sqrt(HD);
  const group = NH / NKV;
  const QS = NH * HD,
    KS = NKV * HD;
  // dk, dv are sums over many (query row, head) pairs: accumulate in double, then write.
  const dkAcc = new Float64Array(T * KS);
  const dvAcc = new Float64Array(T * KS);
  const dqAcc = new Float64Array(HD);
  for (let b = 0; b < B; b++) {
    const start = cuSeqlens[b],
      end = cuSeqlens[b + 1];
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
          let sc = 0,
            dp = 0;
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
};

export const attentionDecode: HostKernels['attentionDecode'] = (
  out,
  q,
  kCache,
  vCache,
  slots,
  lens,
  B,
  NH,
  NKV,
  HD,
  maxLen,
) => {
  const scale = 1 / Math.sqrt(HD);
  const group = NH / NKV;
  const QS = NH * HD,
    KS = NKV * HD;
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
};

export const attentionDecodeBf16: HostKernels['attentionDecodeBf16'] = (
  out,
  q,
  kCache,
  vCache,
  slots,
  lens,
  B,
  NH,
  NKV,
  HD,
  maxLen,
) => {
  attentionDecode(out, q, fromBf16(kCache), fromBf16(vCache), slots, lens, B, NH, NKV, HD, maxLen);
};
