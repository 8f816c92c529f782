// The one tolerance check of the test suite: |got − want| ≤ atol + rtol·|want| element-wise,
// with the largest difference seen printed (arrays) or named in the failure (scalars).
// A bare number `tol` means atol = rtol = tol, i.e. |got − want| ≤ tol·(1 + |want|).
import assert from 'node:assert/strict';

export type Tolerance = number | { atol: number; rtol?: number };

function bounds(tol: Tolerance): { atol: number; rtol: number } {
  return typeof tol === 'number' ? { atol: tol, rtol: tol } : { atol: tol.atol, rtol: tol.rtol ?? 0 };
}

/** The largest |got − want| and the first index outside the tolerance (-1 when none is). */
export function closeness(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: Tolerance,
): { maxDiff: number; worst: number } {
  assert.equal(got.length, want.length, 'closeness: the arrays differ in length');
  const { atol, rtol } = bounds(tol);
  let maxDiff = 0,
    worst = -1;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!Number.isNaN(maxDiff) && !(d <= maxDiff)) maxDiff = d; // a NaN, once seen, stays the answer
    if (!(d <= atol + rtol * Math.abs(want[i])) && worst < 0) worst = i;
  }
  return { maxDiff, worst };
}

export function assertClose(got: number, want: number, tol: Tolerance = 1e-12, what = 'value'): void {
  const { atol, rtol } = bounds(tol);
  const d = Math.abs(got - want);
  assert.ok(
    d <= atol + rtol * Math.abs(want),
    `${what}: got ${got}, expected ${want} (|diff| ${d.toExponential(2)}, atol ${atol}, rtol ${rtol})`,
  );
}

/** Asserts every element is close and prints the largest difference over the array. */
export function assertAllClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: Tolerance = 1e-12,
  what = 'array',
): void {
  assert.equal(got.length, want.length, `${what}: length`);
  const { maxDiff, worst } = closeness(got, want, tol);
  console.log(`  ${what}: max |diff| = ${maxDiff.toExponential(2)} over ${want.length}`);
  assert.ok(
    worst < 0,
    `${what}: element ${worst} got ${got[worst]}, expected ${want[worst]} (max |diff| ${maxDiff.toExponential(2)})`,
  );
}

/** The largest |got − want|, for a test that gathers it over many steps before asserting. */
export function maxAbsDiff(got: ArrayLike<number>, want: ArrayLike<number>): number {
  return closeness(got, want, Infinity).maxDiff;
}
