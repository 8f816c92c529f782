import { test } from 'node:test';
import assert from 'node:assert/strict';
import { passAtK, passAtKCurve } from '../../src/eval/passk.ts';

// C(n, k) as an exact BigInt: the direct definition the product form must agree with.
function binom(n: number, k: number): bigint {
  if (k < 0 || k > n) return 0n;
  let r = 1n;
  for (let i = 1; i <= k; i++) r = (r * BigInt(n - k + i)) / BigInt(i);
  return r;
}
function passAtKDirect(n: number, c: number, k: number): number {
  // 1 − C(n−c, k)/C(n, k), the ratio taken at 1e-15 resolution in integers.
  const scale = 10n ** 15n;
  return 1 - Number((binom(n - c, k) * scale) / binom(n, k)) / 1e15;
}

test('hand values', () => {
  // n=5, c=2, k=2: 1 − C(3,2)/C(5,2) = 1 − 3/10
  assert.ok(Math.abs(passAtK(5, 2, 2) - 0.7) < 1e-15);
  // k=1 is the fraction correct: 3/8
  assert.ok(Math.abs(passAtK(8, 3, 1) - 0.375) < 1e-15);
  // n=4, c=1, k=3: 1 − C(3,3)/C(4,3) = 1 − 1/4
  assert.ok(Math.abs(passAtK(4, 1, 3) - 0.75) < 1e-15);
  assert.equal(passAtK(10, 0, 5), 0);
  assert.equal(passAtK(10, 8, 3), 1); // only 2 wrong samples: any 3 contain a correct one
});

test('agrees with the exact binomial ratio for every c, k up to n = 64', () => {
  let worst = 0;
  for (const n of [1, 2, 7, 32, 64]) {
    for (let c = 0; c <= n; c++) {
      for (let k = 1; k <= n; k++) worst = Math.max(worst, Math.abs(passAtK(n, c, k) - passAtKDirect(n, c, k)));
    }
  }
  console.log(`largest |product − binomial| = ${worst.toExponential(2)}`);
  assert.ok(worst < 1e-12, `worst difference ${worst}`);
});

test('curve is the per-problem mean and pass@1 is the mean fraction correct', () => {
  const curve = passAtKCurve([
    { n: 4, c: 0 },
    { n: 4, c: 1 },
    { n: 4, c: 4 },
  ]);
  assert.equal(curve.length, 4);
  // k=1: (0 + 1/4 + 1)/3; k=2: (0 + (1 − C(3,2)/C(4,2)) + 1)/3 = (0 + 1/2 + 1)/3
  assert.ok(Math.abs(curve[0] - 1.25 / 3) < 1e-15);
  assert.ok(Math.abs(curve[1] - 1.5 / 3) < 1e-15);
  assert.ok(Math.abs(curve[3] - 2 / 3) < 1e-15);
  assert.throws(() => passAtK(4, 5, 1), RangeError);
});
