// The reference matrix products (native/gemm.inl's twin).
//
// Two product shapes cover every matrix multiply here; both accumulate in doubles.
//  gemmDot:  out(M,N) = a(M,K)·b(N,K)ᵀ, rows of a and b contiguous in k (dot products), in
//            4×4 register tiles over blocks of 64 rows of b that stay in cache.
//  gemmAxpy: out(M,N) = A(M,K)·b(K,N) with A(i,k) = a[i·rs + k·cs] (any layout) and rows of b
//            contiguous in j (axpy: out[i,:] += A(i,k)·b[k,:]), four rows of out at a time.
import type { HostKernels } from '../kernels.ts';
const DOT_BLOCK = 64;

export function gemmDot(
  out: Float32Array,
  a: Float32Array,
  b: Float32Array,
  M: number,
  N: number,
  K: number,
  accumulate: boolean,
  bias: Float32Array | null,
): void {
  for (let j0 = 0; j0 < N; j0 += DOT_BLOCK) {
    const j1 = Math.min(N, j0 + DOT_BLOCK);
    for (let i = 0; i < M; i += 4) {
      const mi = Math.min(4, M - i);
      for (let j = j0; j < j1; j += 4) {
        const nj = Math.min(4, j1 - j);
        if (mi === 4 && nj === 4) {
          const a0 = i * K,
            a1 = a0 + K,
            a2 = a1 + K,
            a3 = a2 + K;
          const b0 = j * K,
            b1 = b0 + K,
            b2 = b1 + K,
            b3 = b2 + K;
          let s00 = 0,
            s01 = 0,
            s02 = 0,
            s03 = 0,
            s10 = 0,
            s11 = 0,
            s12 = 0,
            s13 = 0;
          let s20 = 0,
            s21 = 0,
            s22 = 0,
            s23 = 0,
            s30 = 0,
            s31 = 0,
            s32 = 0,
            s33 = 0;
          for (let k = 0; k < K; k++) {
            const x0 = a[a0 + k],
              x1 = a[a1 + k],
              x2 = a[a2 + k],
              x3 = a[a3 + k];
            const y0 = b[b0 + k],
              y1 = b[b1 + k],
              y2 = b[b2 + k],
              y3 = b[b3 + k];
            s00 += x0 * y0;
            s01 += x0 * y1;
            s02 += x0 * y2;
            s03 += x0 * y3;
            s10 += x1 * y0;
            s11 += x1 * y1;
            s12 += x1 * y2;
            s13 += x1 * y3;
            s20 += x2 * y0;
            s21 += x2 * y1;
            s22 += x2 * y2;
            s23 += x2 * y3;
            s30 += x3 * y0;
            s31 += x3 * y1;
            s32 += x3 * y2;
            s33 += x3 * y3;
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

export function gemmAxpy(
  out: Float32Array,
  a: Float32Array,
  rs: number,
  cs: number,
  b: Float32Array,
  M: number,
  N: number,
  K: number,
  accumulate: boolean,
): void {
  if (axpyAcc.length < 4 * N) axpyAcc = new Float64Array(4 * N);
  const acc = axpyAcc;
  for (let i = 0; i < M; i += 4) {
    const mi = Math.min(4, M - i);
    acc.fill(0, 0, 4 * N);
    for (let k = 0; k < K; k++) {
      const bo = k * N;
      if (mi === 4) {
        const x0 = a[i * rs + k * cs],
          x1 = a[(i + 1) * rs + k * cs],
          x2 = a[(i + 2) * rs + k * cs],
          x3 = a[(i + 3) * rs + k * cs];
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

export const matmul: HostKernels['matmul'] = (out, a, b, M, N, K, transA, transB, accumulate) => {
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
};
