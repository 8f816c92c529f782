// The single-stage SRFT loss (RED-SPEC `srft` row) on the same TokenBatch as policyLoss: a demo SFT
// term weighted by sg(e^−H), the demo RL term of policyLoss (π_offline from the options, `one` in
// the preset), and a self-rollout term ±log π weighted on correct rollouts by sg(e^H).
import { counts, type BatchLayout, type TokenBatch } from './batch.ts';
import type { AlgorithmOptions } from './options.ts';
import {
  addEntropyBonus,
  addKlPenalty,
  addOfflineTerm,
  batchMetrics,
  groupTerms,
  offlineRatios,
  type LossContext,
  type LossResult,
} from './policy-loss.ts';

/** Token-mean of sg(H) over the counted tokens of the batch's online (offline = false) or offline members (all, not one micro-batch's). */
function detachedEntropyMean(b: TokenBatch, layout: BatchLayout, offline: boolean): number {
  const H = b.detached?.entropies ?? b.entropies;
  if (H === undefined) throw new Error('the srft loss needs TokenBatch.entropies');
  let s = 0;
  let n = 0;
  for (let m = 0; m < layout.members; m++) {
    if (layout.offline[m] !== (offline ? 1 : 0)) continue;
    for (let t = b.offsets[m]; t < b.offsets[m + 1]; t++)
      if (counts(b, t)) {
        s += H[t];
        n++;
      }
  }
  return n ? s / n : NaN;
}

/**
 * RED-SPEC `srft`: loss = w_sft·mean_{offline t}(−log π_t)                 (demo SFT, token mean)
 *                       − agg(w·ρ^off_t·Â_off)                            (demo RL, as policyLoss)
 *                       + agg(−w_rl·log π_t on correct, +log π_t on wrong online members)
 * with w_sft = sftScale·sg(e^−H_demo), w_rl = rlScale·sg(e^H_rollout), H = token-mean entropy of the
 * current policy on that data. Reading of the spec (and of the SRFT paper): w_rl weights only the
 * correct rollouts' term; wrong rollouts' term has weight 1.
 */
export function srftLoss(b: TokenBatch, options: AlgorithmOptions, ctx: LossContext): LossResult {
  const { layout, kappa, adv, rbar, acc } = groupTerms(b, options, ctx);

  const hDemo = detachedEntropyMean(b, layout, true);
  const hRollout = detachedEntropyMean(b, layout, false);
  const wSft = Number.isNaN(hDemo) ? 0 : options.srft.sftScale * Math.exp(-hDemo);
  const wRl = Number.isNaN(hRollout) ? 0 : options.srft.rlScale * Math.exp(hRollout);

  // Demo SFT: w_sft · mean over the batch's counted offline tokens of −log π.
  let nDemo = 0;
  for (let m = 0; m < layout.members; m++) if (layout.offline[m]) nDemo += layout.counted[m];
  let sft = 0;
  for (let m = layout.first; m < layout.end && nDemo > 0; m++) {
    if (!layout.offline[m]) continue;
    for (let t = b.offsets[m]; t < b.offsets[m + 1]; t++) {
      if (!counts(b, t)) continue;
      sft -= (wSft * b.logprobs[t]) / nDemo;
      acc.dLogprobs[t] -= wSft / nDemo;
    }
  }
  acc.add('loss/sft', sft);

  addOfflineTerm(
    acc,
    b,
    layout,
    kappa,
    adv,
    rbar,
    offlineRatios[options.piOffline],
    options.luffyGamma,
    ctx.offlineWeight,
  );

  // Self-rollout: ℓ_t = −w_rl·log π_t (correct) or +log π_t (wrong), aggregated like the RL terms.
  let self = 0;
  for (let m = layout.first; m < layout.end; m++) {
    if (layout.offline[m]) continue;
    const coef = b.accuracies[m] > 0 ? -wRl : 1;
    for (let t = b.offsets[m]; t < b.offsets[m + 1]; t++) {
      if (!counts(b, t)) continue;
      self += kappa[t] * coef * b.logprobs[t];
      acc.dLogprobs[t] += kappa[t] * coef;
    }
  }
  acc.add('loss/policy', self);

  addKlPenalty(acc, b, layout, kappa, options.klCoef, options.klEstimator);
  addEntropyBonus(acc, b, layout, kappa, options.entropyCoef);
  return acc.result({ ...batchMetrics(rbar), 'srft/w_sft': wSft, 'srft/w_rl': wRl });
}
