// Per-call scratch of the reference kernels, in double precision, grown on demand (never a T×T matrix).
let scratch = new Float64Array(1024);

export function scratchOf(n: number): Float64Array {
  if (scratch.length < n) scratch = new Float64Array(Math.max(n, scratch.length * 2));
  return scratch;
}
