// The GRPO-family policy loss of RED-SPEC "Objective" (GRPO, MixPolicy, LUFFY, RED I/II) on a packed
// TokenBatch: its value, d loss / d logprob_t and d loss / d entropy_t for every token, and metrics.
// Math in float64; stop-gradient terms read batch.detached (default: the inputs' own values).
import { aggregations } from './aggregate.ts';
import { groupAdvantages, groupMeanAccuracy } from './advantages.ts';
import { batchLayout, counts, type BatchLayout, type Floats, type TokenBatch } from './batch.ts';
import type { AlgorithmOptions, KlEstimatorName, PiOfflineName } from './options.ts';

/** What the loss needs besides the batch and the options. */
export interface LossContext {
  /** w of RED (I) for this step (entropyRegulatorStep), 1 when regulation is off. */
  offlineWeight: number;
  /** The response token limit: L_norm of seq-sum-norm when options.lNorm is null. */
  maxResponseTokens: number;
  /**
   * Micro-batching: evaluate only members [first, end). Per-token inputs need only be filled for
   * those members' tokens (sg entropies of srft: for all); advantages, r̄ and the aggregation still
   * use the whole batch, so the returned loss and `loss/*` metrics are these members' share of the
   * full loss (shares sum to it) and the gradients are exact for their tokens (0 elsewhere).
   */
  members?: readonly [number, number];
}

export interface LossResult {
  /** The scalar loss (the objective's negative). */
  loss: number;
  /** (T) d loss / d logprob_t: backpropagate these through the log-softmax of token t. */
  dLogprobs: Float64Array;
  /** (T) d loss / d entropy_t, or null when the loss does not use entropies. */
  dEntropies: Float64Array | null;
  metrics: Record<string, number>;
}

/** ρ^off_t and dρ/dlog π_t with the sg(·) terms held at their values. */
export interface OfflineRatio {
  value: number;
  dLogprob: number;
}
/** logp = log π (differentiated), sgLogp = the same value behind sg, rbar = group accuracy r̄. */
export type OfflineRatioFn = (logp: number, sgLogp: number, rbar: number, gamma: number) => OfflineRatio;

// RED-SPEC "π_offline: the variants", one row each.
export const offlineRatios: Record<PiOfflineName, OfflineRatioFn> = {
  // one: π_offline = 1, ρ = π, dρ/dlog π = π.
  one: (logp) => {
    const p = Math.exp(logp);
    return { value: p, dLogprob: p };
  },
  // self: ρ = π / sg(π), value 1, dρ/dlog π = π/sg(π) = 1.
  self: (logp, sgLogp) => {
    const r = Math.exp(logp - sgLogp);
    return { value: r, dLogprob: r };
  },
  // luffy: ρ = π/(π+γ), full gradient dρ/dlog π = π·γ/(π+γ)².
  luffy: (logp, _sg, _rbar, gamma) => {
    const p = Math.exp(logp);
    return { value: p / (p + gamma), dLogprob: (p * gamma) / ((p + gamma) * (p + gamma)) };
  },
  // accuracy (RED II): ρ = π / sg(π + (1−π)·r̄), dρ/dlog π = π / π_offline.
  // In log space so that r̄ = 0 gives exactly ρ = π/sg(π) even where π underflows.
  accuracy: (logp, sgLogp, rbar) => {
    const sp = Math.exp(sgLogp);
    const logPiOffline = rbar === 0 ? sgLogp : Math.log(sp + (1 - sp) * rbar);
    const r = Math.exp(logp - logPiOffline);
    return { value: r, dLogprob: r };
  },
  // accuracy-no-sg (RED-SPEC's note, for study): π_offline = π + (1−π)·r̄ with the gradient through
  // both. With D = π + (1−π)·r̄ = r̄ + (1−r̄)·π and ρ = π/D:
  //   dρ/dπ = (D − π·(1−r̄))/D² = r̄/D²,  so  dρ/dlog π = π·r̄/D² = ρ·r̄/D.
  // Against `accuracy` (dρ/dlog π = ρ) every token's gradient is scaled by r̄/D ≤ 1: r̄ = 1 gives
  // `one` (ρ = π, gradient π); r̄ = 0 gives ρ ≡ 1 and no gradient at all (the trace teaches nothing).
  'accuracy-no-sg': (logp, _sg, rbar) => {
    const p = Math.exp(logp);
    const logD = rbar === 0 ? logp : Math.log(rbar + (1 - rbar) * p);
    const r = Math.exp(logp - logD);
    return { value: r, dLogprob: rbar === 0 ? 0 : (r * rbar) / Math.exp(logD) };
  },
};

/** Per-token KL(π‖π_ref) estimators on samples of π: value and d/dlog π. */
export const klEstimators: Record<KlEstimatorName, (logp: number, refLogp: number) => OfflineRatio> = {
  // k1 = log π − log π_ref.
  k1: (logp, ref) => ({ value: logp - ref, dLogprob: 1 }),
  // k3 = e^(ref−logp) − (ref−logp) − 1 (Schulman's low-variance estimator), d/dlogp = 1 − e^(ref−logp).
  k3: (logp, ref) => {
    const e = Math.exp(ref - logp);
    return { value: e - (ref - logp) - 1, dLogprob: 1 - e };
  },
};

/** Gradient buffers and term values that the loss pieces add into. */
export class LossAccumulator {
  readonly dLogprobs: Float64Array;
  dEntropies: Float64Array | null = null;
  readonly terms: Record<string, number> = {};
  constructor(tokens: number) {
    this.dLogprobs = new Float64Array(tokens);
  }
  entropyGrad(): Float64Array {
    this.dEntropies ??= new Float64Array(this.dLogprobs.length);
    return this.dEntropies;
  }
  add(name: string, value: number): void {
    this.terms[name] = (this.terms[name] ?? 0) + value;
  }
  total(): number {
    return Object.values(this.terms).reduce((a, b) => a + b, 0);
  }
  result(metrics: Record<string, number>): LossResult {
    const loss = this.total();
    return {
      loss,
      dLogprobs: this.dLogprobs,
      dEntropies: this.dEntropies,
      metrics: { ...this.terms, 'loss/total': loss, ...metrics },
    };
  }
}

export function lNormOf(options: AlgorithmOptions, ctx: LossContext): number {
  return options.lNorm ?? ctx.maxResponseTokens;
}

/**
 * RED-SPEC "Objective", online part: ℓ_t = −min(ρ_t·Â, clip(ρ_t, 1−ε_low, 1+ε_high)·Â),
 * ρ_t = exp(log π − log π_old); no clip when clip.enabled is false. Adds `loss/policy`; returns
 * the clipped fraction of counted online tokens.
 */
export function addOnlineSurrogate(
  acc: LossAccumulator,
  b: TokenBatch,
  layout: BatchLayout,
  kappa: Float64Array,
  adv: Float64Array,
  clip: AlgorithmOptions['clip'],
): { clipFrac: number } {
  const old = b.oldLogprobs ?? b.detached?.logprobs ?? b.logprobs;
  let value = 0;
  let clipped = 0;
  let seen = 0;
  for (let m = layout.first; m < layout.end; m++) {
    if (layout.offline[m]) continue;
    const A = adv[m];
    for (let t = b.offsets[m]; t < b.offsets[m + 1]; t++) {
      if (!counts(b, t)) continue;
      seen++;
      const rho = Math.exp(b.logprobs[t] - old[t]);
      let surrogate = rho * A;
      let dSurrogate = rho * A; // d(ρ·Â)/dlog π = ρ·Â
      if (clip.enabled) {
        const clippedRho = Math.min(Math.max(rho, 1 - clip.epsLow), 1 + clip.epsHigh);
        if (clippedRho * A < surrogate) {
          surrogate = clippedRho * A;
          dSurrogate = 0;
          clipped++;
        }
      }
      value -= kappa[t] * surrogate;
      acc.dLogprobs[t] -= kappa[t] * dSurrogate;
    }
  }
  acc.add('loss/policy', value);
  return { clipFrac: seen ? clipped / seen : 0 };
}

/**
 * RED-SPEC "Objective", offline part: ℓ_t = −w · ρ^off_t · Â_off with ρ^off from `offlineRatios`
 * (never clipped). Adds `loss/offline`; returns the mean ρ^off over counted offline tokens.
 */
export function addOfflineTerm(
  acc: LossAccumulator,
  b: TokenBatch,
  layout: BatchLayout,
  kappa: Float64Array,
  adv: Float64Array,
  rbar: Float64Array,
  ratio: OfflineRatioFn,
  gamma: number,
  w: number,
): { ratioMean: number } {
  const sg = b.detached?.logprobs ?? b.logprobs;
  let value = 0;
  let ratioSum = 0;
  let seen = 0;
  for (let m = layout.first; m < layout.end; m++) {
    if (!layout.offline[m]) continue;
    const A = adv[m];
    const r = rbar[b.groupOf[m]];
    for (let t = b.offsets[m]; t < b.offsets[m + 1]; t++) {
      if (!counts(b, t)) continue;
      const rho = ratio(b.logprobs[t], sg[t], r, gamma);
      value -= kappa[t] * w * rho.value * A;
      acc.dLogprobs[t] -= kappa[t] * w * A * rho.dLogprob;
      ratioSum += rho.value;
      seen++;
    }
  }
  acc.add('loss/offline', value);
  return { ratioMean: seen ? ratioSum / seen : NaN };
}

/** klCoef · agg(KL_t) over online tokens only: k1/k3 estimate KL(π‖π_ref) from samples of π. */
export function addKlPenalty(
  acc: LossAccumulator,
  b: TokenBatch,
  layout: BatchLayout,
  kappa: Float64Array,
  coef: number,
  estimator: KlEstimatorName,
): { klMean: number } {
  if (coef === 0) return { klMean: NaN };
  if (b.refLogprobs === undefined) throw new Error('klCoef > 0 needs TokenBatch.refLogprobs');
  const kl = klEstimators[estimator];
  let value = 0;
  let sum = 0;
  let seen = 0;
  for (let m = layout.first; m < layout.end; m++) {
    if (layout.offline[m]) continue;
    for (let t = b.offsets[m]; t < b.offsets[m + 1]; t++) {
      if (!counts(b, t)) continue;
      const k = kl(b.logprobs[t], b.refLogprobs[t]);
      value += kappa[t] * coef * k.value;
      acc.dLogprobs[t] += kappa[t] * coef * k.dLogprob;
      sum += k.value;
      seen++;
    }
  }
  acc.add('loss/kl', value);
  return { klMean: seen ? sum / seen : NaN };
}

/** Entropy bonus −entropyCoef · agg(H_t) over every member's counted tokens (d/dH_t = −coef·κ_t). */
export function addEntropyBonus(
  acc: LossAccumulator,
  b: TokenBatch,
  layout: BatchLayout,
  kappa: Float64Array,
  coef: number,
): void {
  if (coef === 0) return;
  if (b.entropies === undefined) throw new Error('entropyCoef > 0 needs TokenBatch.entropies');
  const dH = acc.entropyGrad();
  let value = 0;
  for (let t = b.offsets[layout.first]; t < b.offsets[layout.end]; t++) {
    if (kappa[t] === 0) continue;
    value -= kappa[t] * coef * b.entropies[t];
    dH[t] -= kappa[t] * coef;
  }
  acc.add('loss/entropy_bonus', value);
}

/**
 * Metrics every group loss reports from its batch. entropy/rl, entropy/sft and red/w are not among
 * them: their one writer is the entropy regulator's step, on the pre-update policy (a loss may be
 * called again after an update, on the updated one).
 */
export function batchMetrics(rbar: Float64Array): Record<string, number> {
  return { 'red/rbar_mean': mean(rbar) };
}

function mean(x: Floats): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  return x.length ? s / x.length : NaN;
}

/**
 * What every group objective starts from: the member layout, the aggregation coefficients κ, the
 * advantages Â (RED-SPEC "Advantage"), r̄ per group and an empty accumulator for the gradients.
 */
export function groupTerms(b: TokenBatch, options: AlgorithmOptions, ctx: LossContext) {
  const layout = batchLayout(b, ctx.members);
  const kappa = aggregations[options.aggregation](b, layout, lNormOf(options, ctx));
  const adv = groupAdvantages(b.rewards, b.groupOf, options.normalizeStd);
  const rbar = groupMeanAccuracy(b.accuracies, b.groupOf, b.isOffline, options.accuracyIncludesOffline);
  return { layout, kappa, adv, rbar, acc: new LossAccumulator(layout.tokens) };
}

/**
 * The loss of objective `group-policy` (RED-SPEC "Objective"; GRPO when the batch has no offline
 * member): advantages from batch.rewards, r̄ from batch.accuracies, aggregation `options.aggregation`.
 */
export function policyLoss(b: TokenBatch, options: AlgorithmOptions, ctx: LossContext): LossResult {
  const { layout, kappa, adv, rbar, acc } = groupTerms(b, options, ctx);
  const { clipFrac } = addOnlineSurrogate(acc, b, layout, kappa, adv, options.clip);
  const { ratioMean } = addOfflineTerm(
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
  const { klMean } = addKlPenalty(acc, b, layout, kappa, options.klCoef, options.klEstimator);
  addEntropyBonus(acc, b, layout, kappa, options.entropyCoef);
  const metrics: Record<string, number> = { ...batchMetrics(rbar), 'clip/frac': clipFrac };
  if (!Number.isNaN(ratioMean)) metrics['offline/ratio_mean'] = ratioMean;
  if (!Number.isNaN(klMean)) metrics['kl/mean'] = klMean;
  return acc.result(metrics);
}
