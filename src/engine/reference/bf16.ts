// The reference bf16 kernels (native/bf16.cc's twin): bf16 operands widened exactly, activations
// rounded to bf16 as the native kernels round them, the fp32 products of gemm.ts.
import { fromBf16, roundToBf16, toBf16 } from '../bf16.ts';
import { gemmAxpy, gemmDot, matmul } from './gemm.ts';
import { biasGrad } from './kernels.ts';

// bf16 operands: widened to fp32 (exact), then the fp32 definitions above (double sums).
export function matmulBf16(
  out: Float32Array,
  a: Uint16Array,
  b: Uint16Array,
  M: number,
  N: number,
  K: number,
  transA: boolean,
  transB: boolean,
  accumulate: boolean,
): void {
  matmul(out, fromBf16(a.subarray(0, M * K)), fromBf16(b.subarray(0, K * N)), M, N, K, transA, transB, accumulate);
}

export function linearForwardBf16(
  out: Float32Array,
  inp: Float32Array,
  weight: Uint16Array,
  bias: Float32Array | null,
  T: number,
  C: number,
  OC: number,
): void {
  gemmDot(out, roundToBf16(inp.subarray(0, T * C)), fromBf16(weight.subarray(0, OC * C)), T, OC, C, false, bias);
}

export function linearBackwardBf16(
  dinp: Float32Array | null,
  dweight: Float32Array,
  dbias: Float32Array | null,
  dout: Float32Array,
  inp: Float32Array,
  weight: Uint16Array,
  T: number,
  C: number,
  OC: number,
): void {
  const d = roundToBf16(dout.subarray(0, T * OC));
  if (dinp) gemmAxpy(dinp, d, OC, 1, fromBf16(weight.subarray(0, OC * C)), T, C, OC, false);
  gemmAxpy(dweight, d, 1, OC, roundToBf16(inp.subarray(0, T * C)), OC, C, T, true);
  if (dbias) biasGrad(dbias, dout, T, OC);
}

export function roundBf16(out: Uint16Array, x: Float32Array, n: number): void {
  out.set(toBf16(x.subarray(0, n)));
}
