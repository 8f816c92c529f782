// Checks every kernel of the native addon against the TypeScript reference (src/engine/reference.ts,
// the definition of correctness) on random and awkward shapes: sizes off the SIMD/tile widths,
// 1-sized dimensions, views at odd offsets, packed sequences of unequal length, GQA, a 300-token
// sequence. The process runs the best instruction set of this CPU; it then re-runs this file in
// child processes with RED_ISA set to each lower one, so every dispatch path is compared.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { HostKernels } from '../../src/engine/kernels.ts';
import { loadNativeKernels } from '../../src/engine/native.ts';
import { referenceKernels as ref } from '../../src/engine/reference.ts';
import { fromBf16, roundToBf16, toBf16 } from '../../src/engine/bf16.ts';
import { Rng } from '../../src/util/rng.ts';
import { assertAllClose } from '../helpers/close.ts';

const native = loadNativeKernels();
const isChild = process.env.RED_NATIVE_TEST_CHILD === '1';
const ISAS = ['avx512', 'avx2', 'portable'];

function randn(rng: Rng, n: number, std = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * std;
  return a;
}

/** A view of n random values at a non-zero, non-aligned offset inside a larger buffer. */
function randView(rng: Rng, n: number, std = 1): Float32Array {
  const off = 1 + rng.int(7);
  return randn(rng, n + off + 3, std).subarray(off, off + n);
}

/** Asserts |got − want| ≤ atol + rtol·|want| everywhere; prints the largest difference. */
/** The shared allclose (test/helpers/close.ts), label first as this file's calls have it. */
function assertClose(label: string, got: ArrayLike<number>, want: ArrayLike<number>, atol: number, rtol: number): void {
  assertAllClose(got, want, { atol, rtol }, label);
}

/** Cumulative sequence offsets (B+1 entries) for the given lengths. */
function cuSeqlensOf(lengths: number[]): Int32Array {
  const cu = new Int32Array(lengths.length + 1);
  lengths.forEach((l, b) => (cu[b + 1] = cu[b] + l));
  return cu;
}

function compareKernels(nb: HostKernels): void {
  const tag = `[isa=${nb.isa}]`;

  test(`${tag} matmul: every transpose, with and without accumulate, awkward shapes and views`, () => {
    const rng = new Rng(1);
    // (M, N, K): 1-sized dims, the M ≤ 4 path, the few-rows path (M ≤ 336) and the blocked one,
    // tails of the 14x32 / 6x16 tiles, K past the K block in both paths (512 deep, 256 deep), N
    // past the blocked path's 1536-wide B block with a short last chunk of A micro-panels.
    const shapes: [number, number, number][] = [
      [1, 1, 1],
      [1, 37, 19],
      [3, 1, 50],
      [4, 70, 33],
      [5, 17, 1],
      [17, 33, 29],
      [29, 64, 64],
      [64, 31, 100],
      [15, 48, 7],
      [40, 70, 600],
      [350, 45, 530],
      [400, 1600, 70],
      [9, 3100, 20],
      // the GEMV path for every M ≤ 8: row groups with a remainder, K tails, and (2150·1000·4 B
      // ≥ 1 MiB of weights) its chunked parallel split
      [2, 39, 45],
      [3, 23, 16],
      [6, 13, 70],
      [8, 9, 33],
      [1, 2150, 1000],
    ];
    for (const [M, N, K] of shapes) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          for (const accumulate of [false, true]) {
            const a = randView(rng, M * K),
              b = randView(rng, K * N);
            const init = randn(rng, M * N);
            const got = randView(rng, M * N);
            got.set(init);
            const want = Float32Array.from(init);
            nb.matmul(got, a, b, M, N, K, transA, transB, accumulate);
            ref.matmul(want, a, b, M, N, K, transA, transB, accumulate);
            assertClose(
              `matmul ${M}x${N}x${K} tA=${+transA} tB=${+transB} acc=${+accumulate}`,
              got,
              want,
              2e-5 * Math.sqrt(K) + 1e-5,
              1e-4,
            );
          }
        }
      }
    }
  });

  test(`${tag} matmulBf16 / linearForwardBf16 match bf16-rounded inputs in fp32 math, awkward shapes`, () => {
    const rng = new Rng(21);
    // Odd K (padded to pairs), K past the K block (256 pairs), N past the 1536-wide B block, tile
    // tails, the GEMV path (M ≤ 8 with a (N,K) b; 4200·1000·2 B ≥ 1 MiB: chunked).
    const shapes: [number, number, number][] = [
      [1, 1, 1],
      [3, 37, 19],
      [9, 33, 1],
      [17, 33, 29],
      [29, 64, 64],
      [15, 48, 7],
      // decode batches on AMX (5-64 rows, even K, a (N,K) b): 16 and 32 columns per tile set, several
      // column blocks, tails
      [6, 45, 40],
      [12, 70, 98],
      [50, 37, 66],
      [100, 4100, 66], // past 64 rows: a wide, short weight (N ≥ 4096, K ≤ 1024)
      [200, 97, 1031],
      [350, 45, 530],
      [400, 1600, 70],
      [340, 3100, 40],
      [20, 3100, 40],
      [2, 39, 45],
      [8, 9, 33],
      [1, 4200, 1000],
    ];
    for (const [M, N, K] of shapes) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          for (const accumulate of [false, true]) {
            if (M * N * K > 2e6 && (transA || !transB || accumulate)) continue; // the big shapes once
            const a = toBf16(randn(rng, M * K)),
              b = toBf16(randn(rng, K * N));
            const init = randn(rng, M * N);
            const got = randView(rng, M * N);
            got.set(init);
            const want = Float32Array.from(init);
            nb.matmulBf16(got, a, b, M, N, K, transA, transB, accumulate);
            ref.matmul(want, fromBf16(a), fromBf16(b), M, N, K, transA, transB, accumulate);
            assertClose(
              `matmulBf16 ${M}x${N}x${K} tA=${+transA} tB=${+transB} acc=${+accumulate}`,
              got,
              want,
              2e-5 * Math.sqrt(K) + 1e-5,
              1e-4,
            );
          }
        }
      }
      const x = randView(rng, M * K),
        w = toBf16(randn(rng, N * K, 0.1)),
        bias = randn(rng, N);
      for (const bb of [bias, null]) {
        const got = new Float32Array(M * N),
          want = new Float32Array(M * N);
        nb.linearForwardBf16(got, x, w, bb, M, K, N);
        ref.linearForward(want, roundToBf16(x), fromBf16(w), bb, M, K, N);
        assertClose(`linearForwardBf16 ${M}x${K}->${N} bias=${+!!bb}`, got, want, 2e-5 * Math.sqrt(K) + 1e-5, 1e-4);
      }
    }
    // Mixed-precision backward: dinp written, dweight and dbias accumulate. Rounded: the same
    // rounding of dout and inp done on the host, then fp32 math. Split: as accurate as fp32 math on
    // the unrounded dout and inp with the widened weight (the bf16 pairs carry them to ~2⁻¹⁷;
    // rounding alone misses these bounds by ~100×).
    for (const split of [false, true]) {
      for (const [T, C, OC] of [
        [1, 5, 3],
        [7, 33, 17],
        [40, 64, 70],
        [129, 96, 50],
        [520, 64, 600], // dout past 2^18 elements: its rounding, split and transposes run on threads
      ]) {
        const dout = randView(rng, T * OC),
          inp = randView(rng, T * C),
          w = toBf16(randn(rng, OC * C, 0.1));
        const dw0 = randn(rng, OC * C),
          db0 = randn(rng, OC);
        const got = { dinp: new Float32Array(T * C), dw: Float32Array.from(dw0), db: Float32Array.from(db0) };
        const want = { dinp: new Float32Array(T * C), dw: Float32Array.from(dw0), db: Float32Array.from(db0) };
        nb.linearBackwardBf16(got.dinp, got.dw, got.db, dout, inp, w, T, C, OC, split);
        const [d, x] = split ? [dout, inp] : [roundToBf16(dout), roundToBf16(inp)];
        ref.linearBackward(want.dinp, want.dw, null, d, x, fromBf16(w), T, C, OC);
        for (let o = 0; o < OC; o++) for (let t = 0; t < T; t++) want.db[o] += dout[t * OC + o];
        const tol = 2e-5 * Math.sqrt(Math.max(T, OC)) + 1e-5;
        const label = `linearBackwardBf16 split=${split} ${T}x${C}x${OC}`;
        assertClose(`${label} dinp`, got.dinp, want.dinp, tol, 1e-4);
        assertClose(`${label} dweight`, got.dw, want.dw, tol, 1e-4);
        assertClose(`${label} dbias`, got.db, want.db, tol, 1e-4);
      }
    }
    const x = Float32Array.from([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -0, 3.4e38, NaN, ...randn(rng, 37)]);
    const bits = new Uint16Array(x.length + 1);
    nb.roundBf16(bits, x, x.length);
    assert.deepEqual(
      Array.from(bits.subarray(0, x.length)),
      Array.from(toBf16(x)).map((b, i) => (Number.isNaN(x[i]) ? bits[i] : b)),
    );
    assert.ok(Number.isNaN(fromBf16(bits.subarray(5, 6))[0]) && bits[x.length] === 0);
    assert.throws(
      () =>
        nb.matmulBf16(
          new Float32Array(4),
          new Float32Array(4) as unknown as Uint16Array,
          new Uint16Array(4),
          2,
          2,
          2,
          false,
          false,
          false,
        ),
      /matmulBf16: a must be a Uint16Array/,
    );
  });

  test(`${tag} task pool: back-to-back jobs of alternating size each run every task exactly once`, () => {
    // The few-rows GEMM (9 ≤ M ≤ 336) is one pool job per call with one task per NR-wide column
    // panel. A short job followed at once by a longer one is the pattern in which a helper still
    // holding the finished job's ticket could claim a task past its end (the demo's segfault);
    // with accumulate a task that ran twice, or not at all, shows up as a wrong column block.
    const rng = new Rng(11);
    const M = 9,
      K = 8;
    const bufs = [40, 1000, 70, 600].map((N) => ({
      N,
      a: randn(rng, M * K),
      b: randn(rng, K * N),
      init: randn(rng, M * N),
    }));
    const started = Date.now();
    for (let it = 0; it < 4000 && Date.now() - started < 4000; it++) {
      const { N, a, b, init } = bufs[it % bufs.length];
      const got = Float32Array.from(init),
        want = Float32Array.from(init);
      nb.matmul(got, a, b, M, N, K, false, true, true);
      ref.matmul(want, a, b, M, N, K, false, true, true);
      for (let i = 0; i < want.length; i++) {
        if (!(Math.abs(got[i] - want[i]) <= 1e-4 + 1e-4 * Math.abs(want[i]))) {
          assert.fail(`call ${it} (${M}x${N}x${K}): element ${i} got ${got[i]}, want ${want[i]}`);
        }
      }
    }
  });

  test(`${tag} matmul: K = 0 writes zeros (or leaves out when accumulating); wrong sizes throw`, () => {
    const out = Float32Array.from([1, 2, 3, 4, 5, 6]);
    nb.matmul(out, new Float32Array(0), new Float32Array(0), 2, 3, 0, false, false, true);
    assert.deepEqual(Array.from(out), [1, 2, 3, 4, 5, 6]);
    nb.matmul(out, new Float32Array(0), new Float32Array(0), 2, 3, 0, false, false, false);
    assert.deepEqual(Array.from(out), [0, 0, 0, 0, 0, 0]);
    assert.throws(
      () => nb.matmul(new Float32Array(5), new Float32Array(6), new Float32Array(9), 2, 3, 3, false, false, false),
      /matmul: out has 5 elements, the sizes need 6/,
    );
    assert.throws(
      () => nb.embeddingForward(new Float32Array(4), Int32Array.from([0, 2]), new Float32Array(4), 2, 2),
      /ids\[1\] = 2 is outside \[0, 2\)/,
    );
  });

  test(`${tag} linear forward/backward (bias and no bias, dinp null)`, () => {
    const rng = new Rng(2);
    for (const [T, C, OC] of [
      [1, 8, 5],
      [37, 29, 51],
      [130, 64, 96],
    ] as const) {
      const inp = randView(rng, T * C),
        w = randView(rng, OC * C, 0.2),
        bias = randView(rng, OC);
      for (const withBias of [true, false]) {
        const got = new Float32Array(T * OC),
          want = new Float32Array(T * OC);
        nb.linearForward(got, inp, w, withBias ? bias : null, T, C, OC);
        ref.linearForward(want, inp, w, withBias ? bias : null, T, C, OC);
        assertClose(`linearForward T=${T} C=${C} OC=${OC} bias=${withBias}`, got, want, 1e-4, 1e-4);
      }
      const dout = randView(rng, T * OC);
      const dw0 = randn(rng, OC * C),
        db0 = randn(rng, OC);
      for (const withDinp of [true, false]) {
        const dinpG = withDinp ? randn(rng, T * C) : null,
          dinpW = withDinp ? new Float32Array(T * C) : null;
        const dwG = Float32Array.from(dw0),
          dwW = Float32Array.from(dw0);
        const dbG = withDinp ? Float32Array.from(db0) : null,
          dbW = withDinp ? Float32Array.from(db0) : null;
        nb.linearBackward(dinpG, dwG, dbG, dout, inp, w, T, C, OC);
        ref.linearBackward(dinpW, dwW, dbW, dout, inp, w, T, C, OC);
        if (dinpG && dinpW) assertClose(`linearBackward dinp T=${T}`, dinpG, dinpW, 1e-4, 1e-4);
        assertClose(`linearBackward dweight (accumulated) T=${T}`, dwG, dwW, 1e-4 * Math.sqrt(T), 1e-4);
        if (dbG && dbW) assertClose(`linearBackward dbias (accumulated) T=${T}`, dbG, dbW, 1e-4 * Math.sqrt(T), 1e-4);
      }
    }
  });

  test(`${tag} embedding forward/backward with repeated ids`, () => {
    const rng = new Rng(3);
    const V = 11,
      C = 37,
      T = 40;
    const ids = Int32Array.from({ length: T }, () => rng.int(V));
    ids[5] = ids[6] = ids[30] = 4;
    const wte = randView(rng, V * C);
    const got = new Float32Array(T * C),
      want = new Float32Array(T * C);
    nb.embeddingForward(got, ids, wte, T, C);
    ref.embeddingForward(want, ids, wte, T, C);
    assertClose('embeddingForward', got, want, 0, 0);
    const dout = randn(rng, T * C),
      d0 = randn(rng, V * C);
    const dG = Float32Array.from(d0),
      dW = Float32Array.from(d0);
    nb.embeddingBackward(dG, dout, ids, T, C);
    ref.embeddingBackward(dW, dout, ids, T, C);
    assertClose('embeddingBackward (accumulated)', dG, dW, 1e-5, 1e-5);
  });

  test(`${tag} rmsnorm forward/backward (dinp accumulates)`, () => {
    const rng = new Rng(4);
    for (const [T, C] of [
      [1, 5],
      [33, 64],
      [70, 131],
    ] as const) {
      const inp = randView(rng, T * C, 2),
        w = randView(rng, C);
      const outG = new Float32Array(T * C),
        outW = new Float32Array(T * C);
      const rG = new Float32Array(T),
        rW = new Float32Array(T);
      nb.rmsnormForward(outG, rG, inp, w, T, C, 1e-6);
      ref.rmsnormForward(outW, rW, inp, w, T, C, 1e-6);
      assertClose(`rmsnormForward out T=${T} C=${C}`, outG, outW, 1e-5, 1e-5);
      assertClose(`rmsnormForward rstd T=${T} C=${C}`, rG, rW, 1e-6, 1e-5);
      const dout = randn(rng, T * C),
        dx0 = randn(rng, T * C),
        dw0 = randn(rng, C);
      const dxG = Float32Array.from(dx0),
        dxW = Float32Array.from(dx0);
      const dwG = Float32Array.from(dw0),
        dwW = Float32Array.from(dw0);
      nb.rmsnormBackward(dxG, dwG, dout, inp, w, rW, T, C);
      ref.rmsnormBackward(dxW, dwW, dout, inp, w, rW, T, C);
      assertClose(`rmsnormBackward dinp T=${T} C=${C}`, dxG, dxW, 1e-5, 1e-4);
      assertClose(`rmsnormBackward dweight T=${T} C=${C}`, dwG, dwW, 1e-4, 1e-4);
    }
  });

  test(`${tag} rope forward/backward`, () => {
    const rng = new Rng(5);
    for (const [T, NH, HD] of [
      [1, 1, 2],
      [19, 3, 6],
      [40, 4, 64],
      [9, 2, 128],
    ] as const) {
      const positions = Int32Array.from({ length: T }, (_, t) => (t < T / 2 ? t : t * 37));
      for (const dir of ['ropeForward', 'ropeBackward'] as const) {
        const x = randn(rng, T * NH * HD);
        const got = Float32Array.from(x),
          want = Float32Array.from(x);
        nb[dir](got, positions, T, NH, HD, 1e6);
        ref[dir](want, positions, T, NH, HD, 1e6);
        assertClose(`${dir} T=${T} NH=${NH} HD=${HD}`, got, want, 1e-5, 1e-5);
      }
    }
    // Same T and HD, new positions: the native cos/sin table must not be reused.
    const T = 40,
      NH = 4,
      HD = 64;
    const shifted = Int32Array.from({ length: T }, (_, t) => t + 1000);
    const x = randn(rng, T * NH * HD);
    const got = Float32Array.from(x),
      want = Float32Array.from(x);
    nb.ropeForward(got, shifted, T, NH, HD, 1e6);
    ref.ropeForward(want, shifted, T, NH, HD, 1e6);
    assertClose('ropeForward after the positions changed', got, want, 1e-5, 1e-5);
  });

  // (lengths, NH, NKV, HD): one token, packed unequal sequences incl. an empty one, GQA,
  // a 300-token sequence, head dims that are not a multiple of the vector width, and a sequence
  // whose Kᵀ and V outgrow 1 MB (the forward's multi-block passes, ending in a short one).
  const attentionCases: [number[], number, number, number][] = [
    [[1], 2, 1, 8],
    [[1, 17, 0, 40, 5], 4, 2, 16],
    [[300], 2, 1, 64],
    [[23, 9], 3, 3, 12],
    [[33], 4, 2, 80],
    [[7, 1100], 2, 1, 128],
  ];

  test(`${tag} attention forward/backward over packed sequences`, () => {
    const rng = new Rng(6);
    for (const [lengths, NH, NKV, HD] of attentionCases) {
      const cu = cuSeqlensOf(lengths);
      const B = lengths.length,
        T = cu[B];
      const q = randView(rng, T * NH * HD),
        k = randView(rng, T * NKV * HD),
        v = randView(rng, T * NKV * HD);
      const label = `lengths=[${lengths}] NH=${NH} NKV=${NKV} HD=${HD}`;
      const outG = new Float32Array(T * NH * HD),
        outW = new Float32Array(T * NH * HD);
      const lseG = new Float32Array(T * NH),
        lseW = new Float32Array(T * NH);
      nb.attentionForward(outG, lseG, q, k, v, cu, B, T, NH, NKV, HD);
      ref.attentionForward(outW, lseW, q, k, v, cu, B, T, NH, NKV, HD);
      assertClose(`attentionForward out ${label}`, outG, outW, 1e-5, 1e-4);
      assertClose(`attentionForward lse ${label}`, lseG, lseW, 1e-5, 1e-5);
      const dout = randn(rng, T * NH * HD);
      const grads = (be: HostKernels) => {
        const dq = new Float32Array(T * NH * HD).fill(7),
          dk = new Float32Array(T * NKV * HD).fill(7);
        const dv = new Float32Array(T * NKV * HD).fill(7); // written, so the 7s must vanish
        be.attentionBackward(dq, dk, dv, dout, q, k, v, outW, lseW, cu, B, T, NH, NKV, HD);
        return { dq, dk, dv };
      };
      const g = grads(nb),
        w = grads(ref);
      assertClose(`attentionBackward dq ${label}`, g.dq, w.dq, 1e-4, 1e-4);
      assertClose(`attentionBackward dk ${label}`, g.dk, w.dk, 1e-4, 1e-4);
      assertClose(`attentionBackward dv ${label}`, g.dv, w.dv, 1e-4, 1e-4);
    }
  });

  test(`${tag} attention decode against a KV cache (GQA, slots out of order)`, () => {
    const rng = new Rng(7);
    // the last shape has enough keys (Σ lens·NH·HD > 2^18) to take the parallel path
    for (const [NH, NKV, HD, maxLen] of [
      [4, 2, 16, 40],
      [3, 1, 12, 40],
      [2, 2, 64, 40],
      [8, 2, 64, 300],
    ] as const) {
      const S = 3,
        B = 4;
      const kCache = randn(rng, S * maxLen * NKV * HD),
        vCache = randn(rng, S * maxLen * NKV * HD);
      const slots = Int32Array.from([2, 0, 1, 2]);
      const lens = Int32Array.from([1, maxLen, Math.floor(maxLen * 0.42), maxLen - 7]);
      const q = randn(rng, B * NH * HD);
      const got = new Float32Array(B * NH * HD),
        want = new Float32Array(B * NH * HD);
      nb.attentionDecode(got, q, kCache, vCache, slots, lens, B, NH, NKV, HD, maxLen);
      ref.attentionDecode(want, q, kCache, vCache, slots, lens, B, NH, NKV, HD, maxLen);
      assertClose(`attentionDecode NH=${NH} NKV=${NKV} HD=${HD}`, got, want, 1e-5, 1e-4);
      // The bf16 cache: the same attention over the widened bf16 values (HD 12: a partial vector).
      const k16 = toBf16(kCache),
        v16 = toBf16(vCache);
      const got16 = new Float32Array(B * NH * HD),
        want16 = new Float32Array(B * NH * HD);
      nb.attentionDecodeBf16(got16, q, k16, v16, slots, lens, B, NH, NKV, HD, maxLen);
      ref.attentionDecode(want16, q, fromBf16(k16), fromBf16(v16), slots, lens, B, NH, NKV, HD, maxLen);
      assertClose(`attentionDecodeBf16 NH=${NH} NKV=${NKV} HD=${HD}`, got16, want16, 1e-5, 1e-4);
    }
  });

  test(`${tag} swiglu, add, scale, sumSquares`, () => {
    const rng = new Rng(8);
    const n = 1031;
    const [T, I] = [7, 147]; // rows of gate | up, a width past whole vectors
    const gateUp = randn(rng, T * 2 * I, 4),
      dout = randn(rng, T * I);
    gateUp[0] = 30;
    gateUp[1] = -30;
    gateUp[2] = 0;
    const fG = new Float32Array(T * I),
      fW = new Float32Array(T * I);
    nb.swigluForward(fG, gateUp, T, I);
    ref.swigluForward(fW, gateUp, T, I);
    assertClose('swigluForward', fG, fW, 1e-6, 1e-5);
    const dG = new Float32Array(T * 2 * I),
      dW = new Float32Array(T * 2 * I);
    nb.swigluBackward(dG, dout, gateUp, T, I);
    ref.swigluBackward(dW, dout, gateUp, T, I);
    assertClose('swigluBackward', dG, dW, 1e-6, 1e-5);
    const a = randn(rng, n),
      b = randn(rng, n);
    const sumW = new Float32Array(n);
    ref.add(sumW, a, b, n);
    const aliased = Float32Array.from(a);
    nb.add(aliased, aliased, b, n);
    assertClose('add (out aliases a)', aliased, sumW, 0, 0);
    const sG = Float32Array.from(a),
      sW = Float32Array.from(a);
    nb.scale(sG, 0.37, n);
    ref.scale(sW, 0.37, n);
    assertClose('scale', sG, sW, 0, 3e-7);
    const big = randn(rng, 100_003, 3);
    assertClose('sumSquares', [nb.sumSquares(big, big.length)], [ref.sumSquares(big, big.length)], 0, 1e-6);
  });

  test(`${tag} loss head forward/backward, targets < 0, dlogits aliasing logits`, () => {
    const rng = new Rng(9);
    for (const [T, V] of [
      [1, 7],
      [6, 1003],
      [2, 151936],
    ] as const) {
      const logits = randn(rng, T * V, 3);
      const targets = Int32Array.from({ length: T }, (_, t) => (t === 1 ? -1 : rng.int(V)));
      if (T > 2) targets[T - 1] = V - 1;
      const lpG = new Float32Array(T),
        enG = new Float32Array(T),
        lpW = new Float32Array(T),
        enW = new Float32Array(T);
      nb.lossHeadForward(lpG, enG, logits, targets, T, V);
      ref.lossHeadForward(lpW, enW, logits, targets, T, V);
      assertClose(`lossHeadForward logprob T=${T} V=${V}`, lpG, lpW, 1e-5, 1e-5);
      assertClose(`lossHeadForward entropy T=${T} V=${V}`, enG, enW, 1e-5, 1e-5);
      const cl = randn(rng, T),
        ce = randn(rng, T);
      const want = new Float32Array(T * V).fill(9);
      ref.lossHeadBackward(want, logits, targets, cl, ce, T, V);
      const separate = new Float32Array(T * V).fill(9);
      nb.lossHeadBackward(separate, logits, targets, cl, ce, T, V);
      assertClose(`lossHeadBackward T=${T} V=${V}`, separate, want, 1e-6, 1e-4);
      const inPlace = Float32Array.from(logits);
      nb.lossHeadBackward(inPlace, inPlace, targets, cl, ce, T, V);
      assertClose(`lossHeadBackward, dlogits === logits, T=${T} V=${V}`, inPlace, want, 1e-6, 1e-4);
    }
  });

  test(`${tag} chooseToken: greedy and inverse-CDF draws pick the reference's token, logprob to 1e-6`, () => {
    const rng = new Rng(31);
    for (const V of [1, 7, 1000, 4099]) {
      const z = randView(rng, V, 3);
      const got = new Float64Array(2),
        want = new Float64Array(2);
      nb.chooseToken(got, z, V, 0, 0);
      ref.chooseToken(want, z, V, 0, 0);
      assert.equal(got[0], want[0], `greedy V=${V}`);
      assert.ok(Math.abs(got[1] - want[1]) < 1e-6, `greedy logprob V=${V}: ${got[1]} vs ${want[1]}`);
      for (const invT of [1, 1 / 0.6, 0.25]) {
        // u at the middle of a token's CDF interval (computed in double here), far from any edge.
        let max = -Infinity;
        for (let v = 0; v < V; v++) max = Math.max(max, z[v]);
        const p = Array.from(z, (x) => Math.exp((x - max) * invT));
        const total = p.reduce((a, b) => a + b, 0);
        let before = 0;
        for (let v = 0; v < V; v++) {
          if (p[v] / total > 1e-4 && (v % 3 === 0 || V < 10)) {
            const u = (before + p[v] / 2) / total;
            nb.chooseToken(got, z, V, invT, u);
            ref.chooseToken(want, z, V, invT, u);
            assert.equal(want[0], v, 'the reference draws the token whose interval holds u');
            assert.equal(got[0], v, `V=${V} invT=${invT} u=${u}`);
            assert.ok(
              Math.abs(got[1] - Math.log(p[v] / total)) < 1e-5,
              `logprob V=${V}: ${got[1]} vs ${Math.log(p[v] / total)}`,
            );
          }
          before += p[v];
        }
      }
    }
    assert.throws(() => nb.chooseToken(new Float64Array(2), new Float32Array(3), 3, 1, 1), /u must be in \[0, 1\)/);
  });

  test(`${tag} chooseTokenTruncated: top-k/top-p draws pick the reference's token, logprob to 1e-5`, () => {
    const rng = new Rng(32);
    for (const V of [5, 1000, 4099]) {
      const z = randView(rng, V, 3);
      for (const [invT, topK, topP] of [
        [1, 3, 1],
        [1 / 0.6, 0, 0.9],
        [1, 50, 0.7],
        [0.5, 0, 0.3],
        [2, V + 5, 0.999],
      ]) {
        // The reference's kept set: ids whose draw interval holds u, in vocabulary order.
        const want = new Float64Array(2),
          got = new Float64Array(2);
        const seen = new Set<number>();
        for (let i = 0; i < 60; i++) {
          const u = (i + 0.5) / 60;
          ref.chooseTokenTruncated(want, z, V, invT, topK, topP, u);
          nb.chooseTokenTruncated(got, z, V, invT, topK, topP, u);
          seen.add(want[0]);
          // u near an interval's edge may fall either side under fp32 exp: compare the intervals' middles only.
          ref.chooseTokenTruncated(want, z, V, invT, topK, topP, Math.min(0.999999, u + 1e-4));
          const stable = want[0];
          ref.chooseTokenTruncated(want, z, V, invT, topK, topP, Math.max(0, u - 1e-4));
          if (want[0] !== stable) continue;
          assert.equal(got[0], stable, `V=${V} invT=${invT} k=${topK} p=${topP} u=${u}`);
          assert.ok(Math.abs(got[1] - want[1]) < 1e-5, `logprob ${got[1]} vs ${want[1]}`);
        }
        if (topK > 0 && topK < V) assert.ok(seen.size <= topK + 2, `top-${topK} drew ${seen.size} ids`);
      }
    }
    const out = new Float64Array(2),
      row = new Float32Array(3);
    assert.throws(() => nb.chooseTokenTruncated(out, row, 3, 0, 1, 1, 0.5), /invT must be > 0/);
    assert.throws(() => nb.chooseTokenTruncated(out, row, 3, 1, 1, 0, 0.5), /topP must be in \(0, 1\]/);
  });

  test(`${tag} adamw`, () => {
    const rng = new Rng(10);
    const n = 1029;
    const p = randn(rng, n),
      g = randn(rng, n),
      m = randn(rng, n, 0.1),
      v = randn(rng, n, 0.1).map(Math.abs);
    const [pG, mG, vG, pW, mW, vW] = [p, m, v, p, m, v].map((x) => Float32Array.from(x));
    nb.adamw(pG, g, mG, vG, n, 1e-3, 0.9, 0.95, 1e-8, 0.1, 3);
    ref.adamw(pW, g, mW, vW, n, 1e-3, 0.9, 0.95, 1e-8, 0.1, 3);
    assertClose('adamw params', pG, pW, 1e-6, 1e-6);
    assertClose('adamw m', mG, mW, 1e-7, 1e-6);
    assertClose('adamw v', vG, vW, 1e-7, 1e-6);
  });
}

if (!native) {
  console.log('native engine tests skipped: the addon is not built (run `node scripts/build-native.mjs`)');
  test('native engine matches the reference', { skip: 'native addon not built' }, () => {});
} else {
  if (isChild && process.env.RED_ISA) {
    test(`RED_ISA=${process.env.RED_ISA} selects that kernel set`, () => assert.equal(native.isa, process.env.RED_ISA));
  }
  if (isChild && process.env.RED_AMX === '0') {
    test('RED_AMX=0 selects the vdpbf16ps kernels (Bf16)', () => assert.equal(native.bf16Isa, 'avx512_bf16'));
  }
  compareKernels(native);
  if (!isChild) {
    // Every instruction set below the one this CPU runs by default, each in its own process.
    const lower = ISAS.slice(ISAS.indexOf(native.isa) + 1);
    const skipped = ISAS.slice(0, ISAS.indexOf(native.isa));
    if (skipped.length)
      console.log(`native engine: this CPU cannot run ${skipped.join(', ')}; those paths are not tested`);
    test('task pool: no task runs twice even when the caller is preempted while starting a job (child process)', () => {
      // RED_POOL_TEST_DELAY_US makes the caller sleep between publishing a job's task count and
      // opening its ticket, so a helper always finds that window; before the fix a helper then
      // re-ran the previous job's end task inside this one (3 of 3 runs failed within 5 calls).
      const env: NodeJS.ProcessEnv = { ...process.env, RED_POOL_TEST_DELAY_US: '30', RED_NATIVE_TEST_CHILD: '1' };
      delete env.NODE_TEST_CONTEXT;
      delete env.RED_ISA;
      const r = spawnSync(
        process.execPath,
        ['--import', 'tsx', '--test-name-pattern=task pool', fileURLToPath(import.meta.url)],
        { env, encoding: 'utf8', timeout: 60_000 },
      );
      const output = `${r.stdout}${r.stderr}`;
      assert.equal(
        r.status,
        0,
        `pool stress child failed (status ${r.status}, signal ${r.signal}):\n${output.slice(-3000)}`,
      );
      assert.match(output, /ok \d+ - \[isa=\w+\] task pool/, 'the pool stress test did not run');
      assert.match(output, /# fail 0/);
    });
    if (native.bf16Isa.includes('amx')) {
      test('the vdpbf16ps GEMM (no AMX) matches the reference too (child process, RED_AMX=0)', () => {
        const env: NodeJS.ProcessEnv = { ...process.env, RED_AMX: '0', RED_NATIVE_TEST_CHILD: '1' };
        delete env.NODE_TEST_CONTEXT;
        delete env.RED_ISA;
        const r = spawnSync(
          process.execPath,
          ['--import', 'tsx', '--test-name-pattern=Bf16', fileURLToPath(import.meta.url)],
          { env, encoding: 'utf8', timeout: 120_000 },
        );
        const output = `${r.stdout}${r.stderr}`;
        assert.equal(r.status, 0, `RED_AMX=0 run failed:\n${output.slice(-3000)}`);
        assert.match(output, /ok \d+ - \[isa=avx512\] matmulBf16/, 'RED_AMX=0: the bf16 comparisons did not run');
        assert.match(output, /# fail 0/);
      });
    }
    for (const isa of lower) {
      test(`the ${isa} kernels match the reference too (child process, RED_ISA=${isa})`, () => {
        // Without the runner's NODE_TEST_CONTEXT the child reports as plain TAP, which is read here.
        const env: NodeJS.ProcessEnv = { ...process.env, RED_ISA: isa, RED_NATIVE_TEST_CHILD: '1' };
        delete env.NODE_TEST_CONTEXT;
        const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], {
          env,
          encoding: 'utf8',
        });
        const output = `${r.stdout}${r.stderr}`;
        const failures = output
          .split('\n')
          .filter((l) => /^not ok|✖|max \|diff\|/.test(l.trim()))
          .slice(0, 40);
        assert.equal(r.status, 0, `RED_ISA=${isa} run failed:\n${failures.join('\n')}\n${output.slice(-3000)}`);
        // A child that could not load the addon would skip everything and still exit 0.
        assert.match(
          output,
          new RegExp(`ok \\d+ - \\[isa=${isa}\\] adamw`),
          `RED_ISA=${isa}: the comparisons did not run`,
        );
        assert.match(output, /# fail 0/);
      });
    }
  }
}
