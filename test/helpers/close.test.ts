// The shared tolerance check must be able to fail: just outside atol + rtol·|want|, on NaN, and
// on arrays of different lengths; just inside, it passes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertAllClose, assertClose, closeness } from './close.ts';

test('assertClose: atol + rtol·|want|, NaN never close, a bare number means atol = rtol', () => {
  assertClose(10.0011, 10, { atol: 1e-4, rtol: 1e-4 }); // bound 1.1e-3
  assert.throws(() => assertClose(10.0012, 10, { atol: 1e-4, rtol: 1e-4 }), /\|diff\| 1\.20e-3/);
  assert.throws(() => assertClose(NaN, 0, 1));
  assertClose(2.9, 1, 1); // 1·(1 + 1) = 2
  assert.throws(() => assertClose(3.1, 1, 1));
  assert.throws(() => assertClose(1e-13, 0, { atol: 0, rtol: 1 }));
});

test('assertAllClose: reports the first element outside and the largest difference', () => {
  assertAllClose([1, 2, 3], [1, 2, 3.0005], { atol: 1e-3 });
  assert.throws(
    () => assertAllClose([1, 2.5, 3], [1, 2, 3.9], { atol: 0.6 }, 'v'),
    /v: element 2 got 3, expected 3\.9 \(max \|diff\| 9\.00e-1\)/,
  );
  assert.throws(() => assertAllClose([1, NaN], [1, 2], { atol: 1 }), /element 1/);
  assert.throws(() => assertAllClose([1, 2], [1, 2, 3], 1), /length/);
  assert.deepEqual(closeness([0, 5, NaN, 1], [0, 4, 0, 1], { atol: 2 }), { maxDiff: NaN, worst: 2 });
});
