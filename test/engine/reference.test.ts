// Checks every kernel of the host kernel contract (kernels.ts) on every available kernel table: backward passes
// against central finite differences of the forward, forward passes against direct loops and
// hand-computed cases written out here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableBackends, availableKernels, getBackend, skippedBackends } from '../../src/engine/index.ts';
import { referenceBackend } from '../../src/engine/reference.ts';
import { RedError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';
import { assertAllClose } from '../helpers/close.ts';

const backends = availableKernels();
if (skippedBackends().length) console.log(`engine kernels: skipped backends: ${skippedBackends().join(', ')}`);

function randn(rng: Rng, n: number, std = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * std;
  return a;
}

/** Σ out·w in double: the scalar whose gradient w.r.t. out is w. */
function dot(out: Float32Array, w: Float32Array, n = w.length): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += out[i] * w[i];
  return s;
}

/** Central differences of loss() w.r.t. every element of x (perturbed in place, restored). */
function finiteDiff(x: Float32Array, loss: () => number, eps: number): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i];
    x[i] = x0 + eps;
    const hi = x[i];
    const lp = loss();
    x[i] = x0 - eps;
    const lo = x[i];
    const lm = loss();
    x[i] = x0;
    g[i] = (lp - lm) / (hi - lo);
  }
  return g;
}

for (const be of backends) {
  const tag = `[${be.name}]`;

  test(`${tag} matmul: all four transpose combinations, with and without accumulate, equal a direct loop`, () => {
    const rng = new Rng(1);
    const M = 5,
      N = 7,
      K = 6;
    const A = randn(rng, M * K),
      Bm = randn(rng, K * N); // logical A(M,K), B(K,N)
    const At = new Float32Array(K * M),
      Bt = new Float32Array(N * K);
    for (let i = 0; i < M; i++) for (let k = 0; k < K; k++) At[k * M + i] = A[i * K + k];
    for (let k = 0; k < K; k++) for (let j = 0; j < N; j++) Bt[j * K + k] = Bm[k * N + j];
    const want = new Float64Array(M * N);
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += A[i * K + k] * Bm[k * N + j];
        want[i * N + j] = s;
      }
    const old = randn(rng, M * N);
    for (const [ta, tb] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      const out = new Float32Array(M * N).fill(99);
      be.matmul(out, ta ? At : A, tb ? Bt : Bm, M, N, K, ta, tb, false);
      assertAllClose(out, want, { atol: 1e-5, rtol: 1e-5 }, `matmul transA=${ta} transB=${tb}`);
      const acc = old.slice();
      be.matmul(acc, ta ? At : A, tb ? Bt : Bm, M, N, K, ta, tb, true);
      assertAllClose(
        acc,
        want.map((w, i) => w + old[i]),
        { atol: 1e-5, rtol: 1e-5 },
        `matmul accumulate transA=${ta} transB=${tb}`,
      );
    }
  });

  for (const withBias of [true, false]) {
    test(`${tag} linear ${withBias ? 'with' : 'without'} bias: forward = direct loop, backward = finite differences, grads accumulate`, () => {
      const rng = new Rng(2);
      const T = 5,
        C = 5,
        OC = 6; // both the 4×4 tiles and the remainders of the product kernels
      const inp = randn(rng, T * C),
        w = randn(rng, OC * C),
        bias = withBias ? randn(rng, OC) : null;
      const R = randn(rng, T * OC);
      const out = new Float32Array(T * OC);
      be.linearForward(out, inp, w, bias, T, C, OC);
      const want = new Float64Array(T * OC);
      for (let t = 0; t < T; t++)
        for (let o = 0; o < OC; o++) {
          let s = bias ? bias[o] : 0;
          for (let c = 0; c < C; c++) s += inp[t * C + c] * w[o * C + c];
          want[t * OC + o] = s;
        }
      assertAllClose(out, want, { atol: 1e-5, rtol: 1e-5 }, 'linear forward');
      const loss = (): number => {
        be.linearForward(out, inp, w, bias, T, C, OC);
        return dot(out, R);
      };
      const dinp = new Float32Array(T * C).fill(7); // written, so the 7s must vanish
      const dw0 = randn(rng, OC * C),
        db0 = randn(rng, OC);
      const dw = dw0.slice(),
        db = db0.slice();
      be.linearBackward(dinp, dw, withBias ? db : null, R, inp, w, T, C, OC);
      assertAllClose(dinp, finiteDiff(inp, loss, 1e-2), { atol: 1e-3, rtol: 1e-3 }, 'linear dinp');
      assertAllClose(
        dw.map((x, i) => x - dw0[i]),
        finiteDiff(w, loss, 1e-2),
        { atol: 1e-3, rtol: 1e-3 },
        'linear dweight (+= old)',
      );
      if (bias)
        assertAllClose(
          db.map((x, i) => x - db0[i]),
          finiteDiff(bias, loss, 1e-2),
          { atol: 1e-3, rtol: 1e-3 },
          'linear dbias (+= old)',
        );
      // dinp = null computes only the weight gradients.
      const dw2 = new Float32Array(OC * C);
      be.linearBackward(null, dw2, null, R, inp, w, T, C, OC);
      assertAllClose(
        dw2,
        dw.map((x, i) => x - dw0[i]),
        { atol: 1e-6, rtol: 1e-6 },
        'linear dweight with dinp=null',
      );
    });
  }

  test(`${tag} embedding: rows gathered, repeated ids accumulate their gradients`, () => {
    const rng = new Rng(3);
    const V = 6,
      C = 4;
    const ids = Int32Array.from([2, 5, 2, 0, 2]);
    const T = ids.length;
    const wte = randn(rng, V * C);
    const out = new Float32Array(T * C);
    be.embeddingForward(out, ids, wte, T, C);
    for (let t = 0; t < T; t++) for (let c = 0; c < C; c++) assert.equal(out[t * C + c], wte[ids[t] * C + c]);
    const R = randn(rng, T * C);
    const dwte = new Float32Array(V * C).fill(1);
    be.embeddingBackward(dwte, R, ids, T, C);
    const loss = (): number => {
      be.embeddingForward(out, ids, wte, T, C);
      return dot(out, R);
    };
    assertAllClose(
      dwte.map((x) => x - 1),
      finiteDiff(wte, loss, 1e-2),
      { atol: 1e-3, rtol: 1e-3 },
      'embedding dwte (+= 1)',
    );
    // row 2 appears three times: its gradient is the sum of those three rows of dout
    assert.ok(Math.abs(dwte[2 * C] - 1 - (R[0] + R[2 * C] + R[4 * C])) < 1e-5);
  });

  test(`${tag} rmsnorm: forward by hand, backward = finite differences, dinp accumulates`, () => {
    // hand case: x = [3, 4], mean(x²) = 12.5, eps = 0: out = x/sqrt(12.5)·w
    const out1 = new Float32Array(2),
      r1 = new Float32Array(1);
    be.rmsnormForward(out1, r1, Float32Array.from([3, 4]), Float32Array.from([1, 2]), 1, 2, 0);
    assertAllClose(out1, [3 / Math.sqrt(12.5), 8 / Math.sqrt(12.5)], { atol: 1e-6, rtol: 1e-6 }, 'rmsnorm hand case');
    assertAllClose(r1, [1 / Math.sqrt(12.5)], { atol: 1e-7, rtol: 1e-6 }, 'rmsnorm rstd');

    const rng = new Rng(4);
    const T = 3,
      C = 8,
      eps = 1e-6;
    const inp = randn(rng, T * C),
      w = randn(rng, C, 0.5).map((x) => x + 1);
    const R = randn(rng, T * C);
    const out = new Float32Array(T * C),
      rstd = new Float32Array(T);
    const loss = (): number => {
      be.rmsnormForward(out, rstd, inp, w, T, C, eps);
      return dot(out, R);
    };
    loss();
    const dinp0 = randn(rng, T * C),
      dw0 = randn(rng, C);
    const dinp = dinp0.slice(),
      dw = dw0.slice();
    be.rmsnormBackward(dinp, dw, R, inp, w, rstd, T, C);
    assertAllClose(
      dinp.map((x, i) => x - dinp0[i]),
      finiteDiff(inp, loss, 1e-2),
      { atol: 2e-3, rtol: 2e-3 },
      'rmsnorm dinp (+= old)',
    );
    assertAllClose(
      dw.map((x, i) => x - dw0[i]),
      finiteDiff(w, loss, 1e-2),
      { atol: 2e-3, rtol: 2e-3 },
      'rmsnorm dweight (+= old)',
    );
  });

  test(`${tag} rope: rotate-half by hand, position 0 is identity, backward = finite differences`, () => {
    // HD = 4: pairs (0,2) at angle pos·θ^0 = pos and (1,3) at angle pos·θ^(−1/2).
    const theta = 100;
    const x = Float32Array.from([1, 0, 0, 1, /* t=1 */ 1, 2, 3, 4]);
    be.ropeForward(x, Int32Array.from([0, 1]), 2, 1, 4, theta);
    const a0 = 1,
      a1 = 1 / Math.sqrt(theta);
    const want = [
      1,
      0,
      0,
      1,
      1 * Math.cos(a0) - 3 * Math.sin(a0),
      2 * Math.cos(a1) - 4 * Math.sin(a1),
      3 * Math.cos(a0) + 1 * Math.sin(a0),
      4 * Math.cos(a1) + 2 * Math.sin(a1),
    ];
    assertAllClose(x, want, { atol: 1e-6, rtol: 1e-6 }, 'rope hand case');

    const rng = new Rng(5);
    const T = 3,
      NH = 2,
      HD = 6;
    const pos = Int32Array.from([0, 7, 3]);
    const xin = randn(rng, T * NH * HD),
      R = randn(rng, T * NH * HD);
    const tmp = new Float32Array(xin.length);
    const loss = (): number => {
      tmp.set(xin);
      be.ropeForward(tmp, pos, T, NH, HD, 10000);
      return dot(tmp, R);
    };
    const dx = R.slice();
    be.ropeBackward(dx, pos, T, NH, HD, 10000);
    assertAllClose(dx, finiteDiff(xin, loss, 1e-2), { atol: 1e-3, rtol: 1e-3 }, 'rope dx');
  });

  test(`${tag} attention: 3 packed sequences (5, 1, 3 tokens), GQA NH=4 NKV=2: hand cases and finite differences`, () => {
    const rng = new Rng(6);
    const NH = 4,
      NKV = 2,
      HD = 4;
    const lens = [5, 1, 3];
    const cu = Int32Array.from([0, 5, 6, 9]);
    const B = 3,
      T = 9,
      QS = NH * HD,
      KS = NKV * HD;
    const q = randn(rng, T * QS),
      k = randn(rng, T * KS),
      v = randn(rng, T * KS);
    const out = new Float32Array(T * QS),
      lse = new Float32Array(T * NH);
    be.attentionForward(out, lse, q, k, v, cu, B, T, NH, NKV, HD);

    // The 1-token sequence (token 5) attends only to itself: out = v of its kv head, lse = q·k/sqrt(HD).
    for (let h = 0; h < NH; h++) {
      const g = Math.floor(h / 2);
      let s = 0;
      for (let e = 0; e < HD; e++) {
        assert.ok(Math.abs(out[5 * QS + h * HD + e] - v[5 * KS + g * HD + e]) < 1e-6, 'single token returns v');
        s += q[5 * QS + h * HD + e] * k[5 * KS + g * HD + e];
      }
      assert.ok(Math.abs(lse[5 * NH + h] - s / 2) < 1e-5, 'single token lse');
    }
    // The first token of every sequence too.
    for (const t of [0, 6])
      for (let h = 0; h < NH; h++)
        for (let e = 0; e < HD; e++) {
          assert.ok(Math.abs(out[t * QS + h * HD + e] - v[t * KS + Math.floor(h / 2) * HD + e]) < 1e-6);
        }
    // Second token of sequence 0, head 3 (kv head 1), written out: softmax over two scores.
    {
      const s0 = [0, 1].map((j) => {
        let s = 0;
        for (let e = 0; e < HD; e++) s += q[1 * QS + 3 * HD + e] * k[j * KS + HD + e];
        return s / 2;
      });
      const m = Math.max(...s0),
        p = s0.map((s) => Math.exp(s - m)),
        z = p[0] + p[1];
      const want = [0, 1, 2, 3].map((e) => (p[0] * v[0 * KS + HD + e] + p[1] * v[1 * KS + HD + e]) / z);
      assertAllClose(
        out.subarray(1 * QS + 3 * HD, 1 * QS + 4 * HD),
        want,
        { atol: 1e-6, rtol: 1e-5 },
        'attention 2-token row by hand',
      );
      assert.ok(Math.abs(lse[1 * NH + 3] - (m + Math.log(z))) < 1e-5);
    }
    // Packed = each sequence run alone.
    for (let b = 0; b < B; b++) {
      const s = cu[b],
        n = lens[b];
      const o1 = new Float32Array(n * QS),
        l1 = new Float32Array(n * NH);
      be.attentionForward(
        o1,
        l1,
        q.slice(s * QS, (s + n) * QS),
        k.slice(s * KS, (s + n) * KS),
        v.slice(s * KS, (s + n) * KS),
        Int32Array.from([0, n]),
        1,
        n,
        NH,
        NKV,
        HD,
      );
      assertAllClose(
        out.subarray(s * QS, (s + n) * QS),
        o1,
        { atol: 1e-6, rtol: 1e-6 },
        `attention packed = alone (seq ${b})`,
      );
      assertAllClose(
        lse.subarray(s * NH, (s + n) * NH),
        l1,
        { atol: 1e-6, rtol: 1e-6 },
        `attention lse packed = alone (seq ${b})`,
      );
    }

    const R = randn(rng, T * QS);
    const loss = (): number => {
      be.attentionForward(out, lse, q, k, v, cu, B, T, NH, NKV, HD);
      return dot(out, R);
    };
    loss();
    const dq = new Float32Array(T * QS).fill(5),
      dk = new Float32Array(T * KS).fill(5),
      dv = new Float32Array(T * KS).fill(5);
    be.attentionBackward(dq, dk, dv, R, q, k, v, out, lse, cu, B, T, NH, NKV, HD);
    assertAllClose(dq, finiteDiff(q, loss, 1e-2), { atol: 2e-3, rtol: 2e-3 }, 'attention dq');
    assertAllClose(dk, finiteDiff(k, loss, 1e-2), { atol: 2e-3, rtol: 2e-3 }, 'attention dk');
    assertAllClose(dv, finiteDiff(v, loss, 1e-2), { atol: 2e-3, rtol: 2e-3 }, 'attention dv');
  });

  test(`${tag} attentionDecode: equals the last row of full causal attention, per slot`, () => {
    const rng = new Rng(7);
    const NH = 4,
      NKV = 2,
      HD = 4,
      maxLen = 6,
      S = 3,
      KS = NKV * HD,
      QS = NH * HD;
    const kCache = randn(rng, S * maxLen * KS),
      vCache = randn(rng, S * maxLen * KS);
    const slots = Int32Array.from([2, 0]),
      lens = Int32Array.from([4, 6]);
    const q = randn(rng, 2 * QS);
    const out = new Float32Array(2 * QS);
    be.attentionDecode(out, q, kCache, vCache, slots, lens, 2, NH, NKV, HD, maxLen);
    for (let b = 0; b < 2; b++) {
      const n = lens[b],
        base = slots[b] * maxLen * KS;
      const qs = new Float32Array(n * QS);
      qs.set(q.subarray(b * QS, (b + 1) * QS), (n - 1) * QS);
      const o = new Float32Array(n * QS),
        l = new Float32Array(n * NH);
      be.attentionForward(
        o,
        l,
        qs,
        kCache.slice(base, base + n * KS),
        vCache.slice(base, base + n * KS),
        Int32Array.from([0, n]),
        1,
        n,
        NH,
        NKV,
        HD,
      );
      assertAllClose(
        out.subarray(b * QS, (b + 1) * QS),
        o.subarray((n - 1) * QS),
        { atol: 1e-6, rtol: 1e-5 },
        `attentionDecode slot ${slots[b]}`,
      );
    }
  });

  test(`${tag} copyColumns: a column block moves between strides, nothing else is touched`, () => {
    // src (3, 5) = 10·r + c; columns 1..3 of each row into dst (3, 4) at column 1.
    const src = Float32Array.from({ length: 15 }, (_, i) => 10 * Math.floor(i / 5) + (i % 5));
    const dst = new Float32Array(12).fill(-1);
    be.copyColumns(dst, src, 3, 3, 4, 1, 5, 1);
    assert.deepEqual(Array.from(dst), [-1, 1, 2, 3, -1, 11, 12, 13, -1, 21, 22, 23]);
    // The join back: dst's block into a wider (3, 7) at column 4.
    const wide = new Float32Array(21);
    be.copyColumns(wide, dst, 3, 3, 7, 4, 4, 1);
    assert.deepEqual(Array.from(wide.subarray(14)), [0, 0, 0, 0, 21, 22, 23]);
    // Large enough for the native rows to go to threads (2000·200 > 2^18 elements).
    const [rows, cols, ss, sc, ds, dc] = [2000, 200, 300, 50, 250, 30];
    const big = Float32Array.from({ length: rows * ss }, (_, i) => i);
    const into = new Float32Array(rows * ds).fill(-1);
    be.copyColumns(into, big, rows, cols, ds, dc, ss, sc);
    let wrong = 0;
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < ds; c++) {
        const want = c >= dc && c < dc + cols ? r * ss + sc + (c - dc) : -1;
        if (into[r * ds + c] !== want) wrong++;
      }
    assert.equal(wrong, 0, 'copyColumns 2000x200: elements out of place');
    if (be.name === 'native') {
      assert.throws(() => be.copyColumns(dst, src, 3, 3, 4, 2, 5, 1), /runs past a row/);
      assert.throws(() => be.copyColumns(dst, src, 4, 3, 4, 1, 5, 1), RangeError);
    }
  });

  test(`${tag} swiglu: forward by hand, backward = finite differences`, () => {
    // Two rows of gate | up (I = 2): row 0 gate [0, 2] up [5, 3]; row 1 gate [1, −1] up [2, 4].
    const silu = (x: number): number => x / (1 + Math.exp(-x));
    const o = new Float32Array(4);
    be.swigluForward(o, Float32Array.from([0, 2, 5, 3, 1, -1, 2, 4]), 2, 2);
    const hand = [0, silu(2) * 3, silu(1) * 2, silu(-1) * 4];
    assertAllClose(o, hand, { atol: 1e-6, rtol: 1e-6 }, 'swiglu hand case');
    const rng = new Rng(8);
    const [T, I] = [3, 4];
    const gateUp = randn(rng, T * 2 * I, 2),
      R = randn(rng, T * I);
    const out = new Float32Array(T * I);
    const loss = (): number => {
      be.swigluForward(out, gateUp, T, I);
      return dot(out, R);
    };
    const d = new Float32Array(T * 2 * I);
    be.swigluBackward(d, R, gateUp, T, I);
    assertAllClose(d, finiteDiff(gateUp, loss, 1e-2), { atol: 1e-3, rtol: 1e-3 }, 'swiglu d gate|up');
  });

  test(`${tag} loss head: uniform logits by hand; backward with arbitrary coefficients = finite differences, in place`, () => {
    const V = 10;
    const lp = new Float32Array(1),
      ent = new Float32Array(1);
    be.lossHeadForward(lp, ent, new Float32Array(V).fill(3), Int32Array.from([4]), 1, V);
    assertAllClose(lp, [-Math.log(V)], { atol: 1e-6, rtol: 1e-6 }, 'uniform logprob = −log V');
    assertAllClose(ent, [Math.log(V)], { atol: 1e-6, rtol: 1e-6 }, 'uniform entropy = log V');

    const rng = new Rng(9);
    const T = 4;
    const logits = randn(rng, T * V, 2);
    const targets = Int32Array.from([3, 0, -1, 9]);
    const cl = Float32Array.from([1.5, -0.7, 2, 0.3]),
      ce = Float32Array.from([-0.4, 1.1, 3, 0.8]);
    const logprob = new Float32Array(T),
      entropy = new Float32Array(T);
    be.lossHeadForward(logprob, entropy, logits, targets, T, V);
    // direct: row 0
    {
      const z = Array.from(logits.subarray(0, V));
      const m = Math.max(...z),
        lse = m + Math.log(z.reduce((s, x) => s + Math.exp(x - m), 0));
      const H = -z.reduce((s, x) => s + Math.exp(x - lse) * (x - lse), 0);
      assertAllClose(
        [logprob[0], entropy[0]],
        [z[3] - lse, H],
        { atol: 1e-5, rtol: 1e-5 },
        'loss head row 0 by formula',
      );
    }
    assert.equal(logprob[2], 0, 'target −1 gives logprob 0');
    assert.equal(entropy[2], 0, 'target −1 gives entropy 0');
    const loss = (): number => {
      be.lossHeadForward(logprob, entropy, logits, targets, T, V);
      return dot(logprob, cl) + dot(entropy, ce);
    };
    const dl = new Float32Array(T * V).fill(9);
    be.lossHeadBackward(dl, logits, targets, cl, ce, T, V);
    assertAllClose(dl, finiteDiff(logits, loss, 1e-2), { atol: 2e-3, rtol: 2e-3 }, 'loss head dlogits');
    for (let v = 0; v < V; v++) assert.equal(dl[2 * V + v], 0, 'no target: zero gradient row');
    const inPlace = logits.slice();
    be.lossHeadBackward(inPlace, inPlace, targets, cl, ce, T, V);
    assertAllClose(inPlace, dl, { atol: 1e-7, rtol: 1e-6 }, 'loss head dlogits in place (dlogits === logits)');
  });

  test(`${tag} adamw two steps = torch's formula written out; add, sumSquares, scale`, () => {
    const p = Float32Array.from([0.5, -1, 2]),
      g1 = Float32Array.from([0.1, -0.2, 0]),
      g2 = Float32Array.from([-0.3, 0.05, 1]);
    const m = new Float32Array(3),
      v = new Float32Array(3);
    const lr = 1e-2,
      b1 = 0.9,
      b2 = 0.95,
      eps = 1e-8,
      wd = 0.1;
    const ref = Array.from(p),
      rm = [0, 0, 0],
      rv = [0, 0, 0];
    for (const [step, g] of [
      [1, g1],
      [2, g2],
    ] as const) {
      be.adamw(p, g, m, v, 3, lr, b1, b2, eps, wd, step);
      for (let i = 0; i < 3; i++) {
        ref[i] *= 1 - lr * wd;
        rm[i] = b1 * rm[i] + (1 - b1) * g[i];
        rv[i] = b2 * rv[i] + (1 - b2) * g[i] * g[i];
        const mhat = rm[i] / (1 - b1 ** step),
          denom = Math.sqrt(rv[i]) / Math.sqrt(1 - b2 ** step) + eps;
        ref[i] -= (lr * mhat) / denom;
      }
      assertAllClose(p, ref, { atol: 1e-7, rtol: 1e-6 }, `adamw params after step ${step}`);
      assertAllClose(m, rm, { atol: 1e-8, rtol: 1e-6 }, `adamw m after step ${step}`);
      assertAllClose(v, rv, { atol: 1e-9, rtol: 1e-6 }, `adamw v after step ${step}`);
    }
    const out = new Float32Array(3);
    be.add(out, Float32Array.from([1, 2, 3]), Float32Array.from([10, 20, 30]), 3);
    assert.deepEqual(Array.from(out), [11, 22, 33]);
    be.add(out, out, out, 2); // aliasing
    assert.deepEqual(Array.from(out), [22, 44, 33]);
    assert.equal(be.sumSquares(Float32Array.from([3, 4, 100]), 2), 25);
    const s = Float32Array.from([1, -2, 4]);
    be.scale(s, 0.5, 2);
    assert.deepEqual(Array.from(s), [0.5, -1, 4]);
  });
}

test('getBackend: RED_BACKEND overrides the preference; a bad value is a RedError naming it', () => {
  const saved = process.env.RED_BACKEND;
  try {
    process.env.RED_BACKEND = 'reference';
    assert.equal(getBackend('native'), referenceBackend);
    process.env.RED_BACKEND = 'fast';
    assert.throws(
      () => getBackend(),
      (e: unknown) => e instanceof RedError && e.message.includes('RED_BACKEND') && e.message.includes('fast'),
    );
    delete process.env.RED_BACKEND;
    assert.equal(getBackend('reference'), referenceBackend);
    // auto: native when built, else the reference
    assert.equal(getBackend('auto').name, skippedBackends().length ? 'reference' : 'native');
    assert.ok(availableBackends().includes(referenceBackend));
  } finally {
    if (saved === undefined) delete process.env.RED_BACKEND;
    else process.env.RED_BACKEND = saved;
  }
});
