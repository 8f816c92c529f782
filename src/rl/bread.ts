// BREAD's prefix search (RED-SPEC `bread` row): for a group with no correct rollout, a binary search
// over the teacher trace cut into S segments for the shortest prefix whose continuations succeed
// at a rate inside [targetLow, targetHigh]. Pure: success rates come from an array or a callback.

export interface PrefixBand {
  segments: number; // S
  targetLow: number;
  targetHigh: number;
}

export interface PrefixChoice {
  /** k: the prefix is the first k of S segments (prefixTokens(k, L, S) tokens). */
  segments: number;
  /** The success rate measured at k (NaN when nothing was measured, i.e. S = 0). */
  success: number;
  /** Whether that rate is inside the band; false when even the full trace stays below targetLow or
   *  the rate jumped over the band (then k is still the shortest prefix reaching targetLow). */
  inBand: boolean;
  /** The k evaluated, in order (each at most once). */
  evaluated: number[];
}

/** Tokens in the first k of S equal segments of an L-token trace (segment bounds rounded). */
export function prefixTokens(k: number, traceTokens: number, segments: number): number {
  return Math.round((k * traceTokens) / segments);
}

/**
 * The search as a generator: it yields the k to evaluate next and receives its success rate, so
 * the same steps drive a synchronous array or an asynchronous rollout callback. Success is assumed
 * non-decreasing in k; k = 0 (no prefix) already failed, so the search runs over 1..S and needs
 * about log2(S) evaluations: the smallest k with success ≥ targetLow.
 */
export function* prefixSearchSteps(band: PrefixBand): Generator<number, PrefixChoice, number> {
  const seen = new Map<number, number>();
  const evaluated: number[] = [];
  const measure = function* (k: number): Generator<number, number, number> {
    const known = seen.get(k);
    if (known !== undefined) return known;
    const s: number = yield k;
    seen.set(k, s);
    evaluated.push(k);
    return s;
  };
  if (band.segments < 1) return { segments: 0, success: NaN, inBand: false, evaluated };
  let lo = 1;
  let hi = band.segments;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((yield* measure(mid)) >= band.targetLow) hi = mid;
    else lo = mid + 1;
  }
  const success = yield* measure(lo);
  return { segments: lo, success, inBand: success >= band.targetLow && success <= band.targetHigh, evaluated };
}

/** The search over precomputed success rates: estimates[k] for k = 0..S. */
export function prefixSearch(estimates: ArrayLike<number>, band: PrefixBand): PrefixChoice {
  const steps = prefixSearchSteps(band);
  let r = steps.next(0);
  while (!r.done) r = steps.next(estimates[r.value]);
  return r.value;
}

/** The search with a callback that rolls out from prefix k and returns its success rate. */
export async function prefixSearchAsync(
  successAt: (k: number) => number | Promise<number>,
  band: PrefixBand,
): Promise<PrefixChoice> {
  const steps = prefixSearchSteps(band);
  let r = steps.next(0);
  while (!r.done) r = steps.next(await successAt(r.value));
  return r.value;
}
