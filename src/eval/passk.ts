// pass@k: the chance that at least one of k samples drawn without replacement from the n we
// generated is correct, estimated without bias from c correct out of n (Chen et al. 2021):
//   pass@k = 1 − C(n−c, k) / C(n, k)      (RED-SPEC "Reward and evaluation protocol")

/**
 * Unbiased pass@k for one problem with `c` correct out of `n` samples.
 * The ratio of binomials is evaluated as the product ∏_{i=n−c+1}^{n} (1 − k/i), which never forms
 * a factorial, so it stays exact to rounding for any n (C(64, 32) alone overflows 2^53).
 */
export function passAtK(n: number, c: number, k: number): number {
  if (
    !Number.isInteger(n) ||
    !Number.isInteger(c) ||
    !Number.isInteger(k) ||
    n < 1 ||
    c < 0 ||
    c > n ||
    k < 1 ||
    k > n
  ) {
    throw new RangeError(`passAtK needs integers 0 ≤ c ≤ n, 1 ≤ k ≤ n; got n=${n}, c=${c}, k=${k}`);
  }
  // Fewer wrong samples than k: every k-subset contains a correct one.
  if (n - c < k) return 1;
  let missAll = 1;
  for (let i = n - c + 1; i <= n; i++) missAll *= 1 - k / i;
  return 1 - missAll;
}

/**
 * The benchmark's pass@k curve for k = 1 … min(n_i): the mean over problems of passAtK(n_i, c_i, k).
 * `counts[i]` = { n, c } for problem i; problems may have different n (a custom --n on resume is
 * refused elsewhere), so the curve stops at the smallest n. pass@1 equals avg@n, the mean of c/n.
 */
export function passAtKCurve(counts: readonly { n: number; c: number }[]): number[] {
  if (counts.length === 0) return [];
  const kMax = Math.min(...counts.map((p) => p.n));
  const curve: number[] = [];
  for (let k = 1; k <= kMax; k++) {
    let sum = 0;
    for (const p of counts) sum += passAtK(p.n, p.c, k);
    curve.push(sum / counts.length);
  }
  return curve;
}
