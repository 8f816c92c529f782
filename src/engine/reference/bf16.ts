// The reference bf16 kernels (native/bf16.cc's twin): bf16 operands widened exactly, activations
// rounded to bf16 (or split into bf16 pairs) as the native kernels do, the fp32 products of gemm.ts. widenBf16 and
// embeddingForwardBf16 have no C++ twin: the native backend runs these loops too (native.ts).
import type { HostKernels } from '../kernels.ts';
import { fromBf16, roundToBf16, toBf16 } from '../bf16.ts';
import { gemmAxpy, gemmDot, matmul } from './gemm.ts';
import { biasGrad } from './kernels.ts';

// bf16 operands: widened to fp32 (exact), then the fp32 definitions above (double sums).
export const matmulBf16: HostKernels['matmulBf16'] = (out, a, b, M, N, K, transA, transB, accumulate) => {
  matmul(out, fromBf16(a.subarray(0, M * K)), fromBf16(b.subarray(0, K * N)), M, N, K, transA, transB, accumulate);
};

export const linearForwardBf16: HostKernels['linearForwardBf16'] = (out, inp, weight, bias, T, C, OC) => {
  gemmDot(out, roundToBf16(inp.subarray(0, T * C)), fromBf16(weight.subarray(0, OC * C)), T, OC, C, false, bias);
};

/**
 * x as a sum of bf16 values: rounded, [bf16(x)]; split, [hi, lo] with hi = bf16(x) and
 * lo = bf16(x − hi) (hi + lo is exact in fp32).
 */
function bf16Parts(x: Float32Array, split: boolean): Float32Array[] {
  const hi = roundToBf16(x);
  if (!split) return [hi];
  const rest = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) rest[i] = x[i] - hi[i];
  return [hi, roundToBf16(rest)];
}

// dinp = (Σ parts of dout)·W and dweight += Σ dᵢᵀ·xⱼ over the parts with i + j ≤ 1: rounded,
// bf16(dout)ᵀ·bf16(inp); split, dhᵀ·xh + dlᵀ·xh + dhᵀ·xl (dlᵀ·xl, below 2⁻¹⁷, is left out as
// native/bf16.cc leaves it out).
export const linearBackwardBf16: HostKernels['linearBackwardBf16'] = (
  dinp,
  dweight,
  dbias,
  dout,
  inp,
  weight,
  T,
  C,
  OC,
  split,
) => {
  const ds = bf16Parts(dout.subarray(0, T * OC), split),
    xs = bf16Parts(inp.subarray(0, T * C), split);
  if (dinp) {
    const d = new Float32Array(T * OC);
    for (const part of ds) for (let i = 0; i < d.length; i++) d[i] += part[i];
    gemmAxpy(dinp, d, OC, 1, fromBf16(weight.subarray(0, OC * C)), T, C, OC, false);
  }
  for (let i = 0; i < ds.length; i++)
    for (let j = 0; i + j < ds.length; j++) gemmAxpy(dweight, ds[i], 1, OC, xs[j], OC, C, T, true);
  if (dbias) biasGrad(dbias, dout, T, OC);
};

export const roundBf16: HostKernels['roundBf16'] = (out, x, n) => {
  out.set(toBf16(x.subarray(0, n)));
};

export const widenBf16: HostKernels['widenBf16'] = (out, x, n) => {
  out.set(fromBf16(x.subarray(0, n)));
};

export const embeddingForwardBf16: HostKernels['embeddingForwardBf16'] = (out, ids, wte, T, C) => {
  const V = Math.floor(wte.length / C),
    o32 = new Uint32Array(out.buffer, out.byteOffset, T * C);
  for (let t = 0; t < T; t++) {
    const id = ids[t];
    if (!(id >= 0 && id < V)) throw new RangeError(`embedding: ids[${t}] = ${id} is outside [0, ${V})`);
    for (let c = 0, r = id * C, o = t * C; c < C; c++) o32[o + c] = wte[r + c] << 16;
  }
};
