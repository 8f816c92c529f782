// The handle contract of backend.ts on every available backend: alloc zero-fills, views share
// storage and nest, upload/download round-trip each dtype bit for bit, copy and zero, kernels
// on tensors equal the host kernels on arrays, and every misuse (out of range, wrong dtype) throws
// a one-line error naming the call. A tensor shows its dtype and length and nothing else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, DType, HostArrayOf } from '../../src/engine/backend.ts';
import { availableBackends, availableKernels, skippedBackends } from '../../src/engine/index.ts';
import { fromBf16, toBf16 } from '../../src/engine/bf16.ts';
import { RedError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';

if (skippedBackends().length) console.log(`backend contract: skipped backends: ${skippedBackends().join(', ')}`);

/** Random host arrays of each dtype: f32 with awkward values, bf16 and i32 as random bits. */
function randomHost<D extends DType>(dtype: D, n: number, rng: Rng): HostArrayOf[D] {
  if (dtype === 'f32') {
    const a = Float32Array.from({ length: n }, () => rng.normal() * 1e3);
    a.set([-0, Infinity, -Infinity, 1e-40].slice(0, n));
    return a as HostArrayOf[D];
  }
  if (dtype === 'bf16') return Uint16Array.from({ length: n }, () => rng.int(0x10000)) as HostArrayOf[D];
  return Int32Array.from({ length: n }, () => rng.int(0x7fffffff) * (rng.uniform() < 0.5 ? -1 : 1)) as HostArrayOf[D];
}

const DTYPES: DType[] = ['f32', 'bf16', 'i32'];

/** Throws a RedError whose one-line message matches `re`. */
function throwsClearly(f: () => unknown, re: RegExp): void {
  assert.throws(f, (e: unknown) => e instanceof RedError && re.test(e.message) && !e.message.includes('\n'));
}

availableBackends().forEach((be: Backend, i) => {
  const kernels = availableKernels()[i];

  test(`[${be.name}] alloc zero-fills; upload/download round-trip every dtype exactly; a tensor shows only dtype and length`, () => {
    const rng = new Rng(1);
    for (const dtype of DTYPES) {
      const t = be.alloc(dtype, 37);
      assert.deepEqual(Object.keys(t).sort(), ['dtype', 'length']);
      assert.equal(t.dtype, dtype);
      assert.equal(t.length, 37);
      assert.ok(
        be.download(t).every((x) => x === 0),
        `${dtype}: alloc is not zero`,
      );
      const host = randomHost(dtype, 37, rng);
      be.upload(t, host);
      const back = be.download(t);
      assert.notEqual(back, host);
      assert.deepEqual(Buffer.from(back.buffer, back.byteOffset, back.byteLength), Buffer.from(host.buffer));
      // into a caller's (longer) buffer: written at its start, returned
      const into = new (host.constructor as new (n: number) => typeof host)(40);
      assert.equal(be.download(t, into), into);
      assert.deepEqual(Array.from(into.subarray(0, 37)), Array.from(host));
      // a shorter upload writes a prefix
      be.upload(t, host.subarray(0, 3) as typeof host);
      be.zero(t);
      assert.ok(
        be.download(t).every((x) => x === 0),
        `${dtype}: zero left values`,
      );
    }
  });

  test(`[${be.name}] views share storage, nest, copy between tensors; out of range throws`, () => {
    const t = be.alloc('f32', 10);
    const v = be.view(t, 2, 6); // elements 2..7
    const vv = be.view(v, 1, 3); // elements 3..5 of t
    be.upload(vv, Float32Array.from([1, 2, 3]));
    assert.deepEqual(Array.from(be.download(t)), [0, 0, 0, 1, 2, 3, 0, 0, 0, 0]);
    assert.deepEqual(Array.from(be.download(v)), [0, 1, 2, 3, 0, 0]);
    be.copy(be.view(t, 7, 3), vv); // a copy into another part of the same storage
    assert.deepEqual(Array.from(be.download(t)), [0, 0, 0, 1, 2, 3, 0, 1, 2, 3]);
    be.zero(vv);
    assert.deepEqual(Array.from(be.download(t)), [0, 0, 0, 0, 0, 0, 0, 1, 2, 3]);
    assert.equal(be.view(t, 10, 0).length, 0);
    throwsClearly(() => be.view(t, 8, 3), /view: \[8, 11\) is outside a tensor of 10/);
    throwsClearly(() => be.view(v, -1, 2), /view/);
    throwsClearly(() => be.view(vv, 0, 4), /outside a tensor of 3/);
    throwsClearly(() => be.upload(vv, new Float32Array(4)), /upload: 4 elements do not fit a tensor of 3/);
    throwsClearly(() => be.copy(vv, t), /copy: 10 elements do not fit a tensor of 3/);
    throwsClearly(() => be.download(t, new Float32Array(9)), /download: 10 elements do not fit an array of 9/);
    throwsClearly(() => be.alloc('f32', -1), /alloc/);
  });

  test(`[${be.name}] dtype mismatches throw naming the call and both dtypes`, () => {
    const f = be.alloc('f32', 4),
      h = be.alloc('bf16', 4),
      ids = be.alloc('i32', 4);
    throwsClearly(() => be.upload(h as never, new Float32Array(4)), /upload: a f32 array into a bf16 tensor/);
    throwsClearly(() => be.upload(ids as never, new Uint16Array(4)), /upload: a bf16 array into a i32 tensor/);
    throwsClearly(() => be.download(f as never, new Int32Array(4)), /download: a f32 tensor into a i32 array/);
    throwsClearly(() => be.copy(f as never, h), /copy: expected a bf16 tensor, got f32/);
    throwsClearly(() => be.add(f, f, h as never, 4), /add: expected a f32 tensor, got bf16/);
    throwsClearly(() => be.linearForward(f, f, h as never, null, 1, 2, 2), /linear: expected a f32 tensor, got bf16/);
    throwsClearly(() => be.linearForwardBf16(f, f, f as never, null, 1, 2, 2), /expected a bf16 tensor, got f32/);
    throwsClearly(() => be.ropeForward(f, f as never, 1, 1, 4, 1e4), /rope: expected a i32 tensor, got f32/);
    throwsClearly(() => be.add(f, f, { dtype: 'f32', length: 4 }, 4), /add: not a tensor of a CPU backend/);
  });

  test(`[${be.name}] kernels on tensors (views included) equal the host kernels on arrays`, () => {
    const rng = new Rng(2);
    const [M, N, K] = [3, 5, 7];
    const a = randomHost('f32', 2 + M * K, rng),
      b = randomHost('f32', K * N, rng).map((x) => x / 1e3);
    a.set([1, 2]); // finite values ahead of the view
    const at = be.alloc('f32', a.length),
      bt = be.alloc('f32', b.length),
      out = be.alloc('f32', M * N);
    be.upload(at, a);
    be.upload(bt, b);
    be.matmul(out, be.view(at, 2, M * K), bt, M, N, K, false, false, false);
    const want = new Float32Array(M * N);
    kernels.matmul(want, a.subarray(2), b, M, N, K, false, false, false);
    assert.deepEqual(be.download(out), want);
    assert.equal(be.sumSquares(be.view(at, 0, 2), 2), 5); // a small result stays a host number
    const chosen = new Float64Array(2);
    be.chooseToken(chosen, be.view(bt, 0, N), N, 0, 0); // written into a host array
    const wantChosen = new Float64Array(2);
    kernels.chooseToken(wantChosen, b.subarray(0, N), N, 0, 0);
    assert.deepEqual(chosen, wantChosen);
  });
});

test('widenBf16 and embeddingForwardBf16 (the bf16 model kernels) widen bf16 bits exactly, on every backend', () => {
  const rng = new Rng(3);
  const [V, C, T] = [5, 3, 4];
  const table = toBf16(Float32Array.from({ length: V * C }, () => rng.normal()));
  const ids = Int32Array.from([4, 0, 4, 2]);
  for (const be of availableBackends()) {
    const wte = be.alloc('bf16', V * C),
      idsT = be.alloc('i32', T);
    be.upload(wte, table);
    be.upload(idsT, ids);
    const wide = be.alloc('f32', V * C);
    be.widenBf16(wide, wte, V * C);
    assert.deepEqual(be.download(wide), fromBf16(table));
    const out = be.alloc('f32', T * C);
    be.embeddingForwardBf16(out, idsT, wte, T, C);
    const want = new Float32Array(T * C);
    ids.forEach((id, t) => want.set(fromBf16(table.subarray(id * C, (id + 1) * C)), t * C));
    assert.deepEqual(be.download(out), want, `[${be.name}] embeddingForwardBf16`);
    be.upload(idsT, Int32Array.from([V]));
    assert.throws(() => be.embeddingForwardBf16(out, idsT, wte, 1, C), /outside \[0, 5\)/);
  }
});
