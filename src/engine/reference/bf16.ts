// The reference bf16 kernels (native/bf16.cc's twin): bf16 operands widened exactly, activations
// rounded to bf16 as the native kernels round them, the fp32 products of gemm.ts. widenBf16 and
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

/** x ≈ hi + lo, both bf16 values: hi = bf16(x), lo = bf16(x − hi) (hi + lo is exact in fp32). */
function splitBf16(x: Float32Array): [Float32Array, Float32Array] {
  const hi = roundToBf16(x);
  const rest = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) rest[i] = x[i] - hi[i];
  return [hi, roundToBf16(rest)];
}

// dout and inp are split, not rounded (native/bf16.cc says why): dinp = (dh + dl)·W and
// dweight += dhᵀ·xh + dlᵀ·xh + dhᵀ·xl.
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
) => {
  const [dh, dl] = splitBf16(dout.subarray(0, T * OC));
  if (dinp) {
    const d = new Float32Array(T * OC);
    for (let i = 0; i < d.length; i++) d[i] = dh[i] + dl[i];
    gemmAxpy(dinp, d, OC, 1, fromBf16(weight.subarray(0, OC * C)), T, C, OC, false);
  }
  const [xh, xl] = splitBf16(inp.subarray(0, T * C));
  for (const [d, x] of [
    [dh, xh],
    [dl, xh],
    [dh, xl],
  ])
    gemmAxpy(dweight, d, 1, OC, x, OC, C, T, true);
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
