// Loss aggregation as a separate, named step. Every mode of RED-SPEC's agg_t (followed by the
// group's 1/(G+1) and the mean over groups) is linear in the per-token losses ℓ_t, so each mode
// is a per-token coefficient κ_t and loss = Σ_t κ_t ℓ_t; a gradient is then κ_t · dℓ_t.
import type { AggregationName } from './options.ts';
import { counts, type BatchLayout, type TokenBatch } from './batch.ts';

/** (T) κ_t for every token of the batch; 0 on tokens the mask drops. */
export type TokenCoefficientsFn = (b: TokenBatch, layout: BatchLayout, lNorm: number) => Float64Array;

function perMember(b: TokenBatch, layout: BatchLayout, coef: (m: number) => number): Float64Array {
  const kappa = new Float64Array(layout.tokens);
  for (let m = 0; m < layout.members; m++) {
    const c = coef(m);
    for (let t = b.offsets[m]; t < b.offsets[m + 1]; t++) kappa[t] = counts(b, t) ? c : 0;
  }
  return kappa;
}

export const aggregations: Record<AggregationName, TokenCoefficientsFn> = {
  // RED-SPEC Objective: mean over groups of 1/(G+1) Σ_i (1/|o_i|) Σ_t ℓ_it.
  'seq-mean-token-mean': (b, layout) =>
    perMember(b, layout, (m) =>
      layout.counted[m] === 0 ? 0 : 1 / (layout.groups * layout.groupSize[m] * layout.counted[m]),
    ),
  // RED-SPEC agg_t option token-mean (DAPO): Σ over all counted tokens of the batch / their number.
  'token-mean': (b, layout) => {
    let total = 0;
    for (let m = 0; m < layout.members; m++) total += layout.counted[m];
    return perMember(b, layout, () => (total === 0 ? 0 : 1 / total));
  },
  // RED-SPEC agg_t option seq-sum-norm (Dr.GRPO, LUFFY): mean over groups of 1/(G+1) Σ_i Σ_t ℓ_it / L_norm.
  'seq-sum-norm': (b, layout, lNorm) => {
    if (!(lNorm > 0)) throw new Error(`seq-sum-norm needs L_norm > 0, got ${lNorm}`);
    return perMember(b, layout, (m) => 1 / (layout.groups * layout.groupSize[m] * lNorm));
  },
};

/** Σ_t κ_t ℓ_t over the first κ.length tokens. */
export function aggregateTokenLoss(tokenLoss: ArrayLike<number>, kappa: Float64Array): number {
  let s = 0;
  for (let t = 0; t < kappa.length; t++) if (kappa[t] !== 0) s += kappa[t] * tokenLoss[t];
  return s;
}
