// RED (I), dynamic entropy regulation (RED-SPEC "(I) Dynamic entropy regulation"): a pure step
// (state, H) → { w, next } across training steps that turns the relative change of the online and
// offline entropies into the offline weight w. Its state is two numbers, kept in checkpoints.
// Beyond the paper, H may be smoothed by an EMA before the ratio (entropySmoothing, off by default).
import { z } from 'zod';
import { fail } from '../util/errors.ts';
import type { AlgorithmOptions } from './options.ts';

export const MIN_DELTA_RL = 1e-8;

/**
 * What a checkpoint stores: the previous step's H_rl and H_sft as the ratio reads them (the EMA
 * S(k−1) when smoothing is on, H(k−1) itself when it is off; null before the first step), so a
 * resumed run continues exactly.
 */
export interface EntropyRegulatorState {
  prevRl: number | null;
  prevSft: number | null;
  steps: number;
}

const StateSchema = z.strictObject({
  prevRl: z.number().nullable(),
  prevSft: z.number().nullable(),
  steps: z.int().min(0),
});

export interface EntropyStep {
  /** w(k): multiplies the whole offline term of this step (LossContext.offlineWeight). */
  w: number;
  metrics: {
    'entropy/rl': number;
    'entropy/sft': number;
    'entropy/delta_rl': number;
    'entropy/delta_sft': number;
    'red/w': number;
    /** S(k), only when smoothing is on. */
    'entropy/rl_smoothed'?: number;
    'entropy/sft_smoothed'?: number;
  };
}

/** RED-SPEC (I): ΔH = |1 − H(k)/H(k−1)|; NaN when either value is missing or the previous is ≤ 0. */
export function relativeEntropyChange(current: number, previous: number | null): number {
  if (previous === null || !(previous > 0) || !Number.isFinite(current)) return NaN;
  return Math.abs(1 - current / previous);
}

/** RED-SPEC (I): w = clip(ΔH_sft / max(ΔH_rl, 1e-8), 1, G). */
export function entropyWeight(deltaSft: number, deltaRl: number, maxWeight: number): number {
  const raw = deltaSft / Math.max(deltaRl, MIN_DELTA_RL);
  return Math.min(Math.max(raw, 1), maxWeight);
}

/**
 * Beyond the paper (RED-SPEC (I), "Noise"): S(k) = β·S(k−1) + (1−β)·H(k), S(1) = H(1). β = 0 gives
 * H(k) itself. A missing H (NaN: no member of that kind this step) gives NaN, and the caller keeps S.
 */
export function smoothedEntropy(current: number, previous: number | null, beta: number): number {
  if (!Number.isFinite(current)) return NaN;
  return previous === null || beta === 0 ? current : beta * previous + (1 - beta) * current;
}

/** What the regulator reads from the options: whether w moves, its upper bound G, and β. */
export interface EntropyRegulatorSettings {
  /** false: w is always 1 (the entropies are still tracked and logged). */
  enabled: boolean;
  /** G, the number of online rollouts per group (w's upper bound). */
  maxWeight: number;
  /** β of the EMA of H before the ratio (options.entropySmoothing); 0 = the paper's raw ratio. */
  smoothing: number;
}

/** The regulator's settings from a stage's options and G (rollout.groupSize). */
export function entropyRegulatorSettings(o: AlgorithmOptions, groupSize: number): EntropyRegulatorSettings {
  return { enabled: o.entropyRegulation, maxWeight: groupSize, smoothing: o.entropySmoothing };
}

/** The state before the first step. */
export function initialEntropyState(): EntropyRegulatorState {
  return { prevRl: null, prevSft: null, steps: 0 };
}

/**
 * Step k as a pure function (state, H) → { w, next }: H_rl(k) and H_sft(k) from the pre-update
 * policy (memberEntropyMeans of the step's batch), smoothed to S(k) when s.smoothing > 0. w = 1 at
 * the first step, or when a ratio is undefined (no offline member this step, or a previous entropy
 * of 0). A missing value (NaN) keeps the previous one in `next`. The caller commits `next` only
 * when its step succeeded, so a skipped step leaves the regulator where it was.
 */
export function entropyRegulatorStep(
  state: Readonly<EntropyRegulatorState>,
  hRl: number,
  hSft: number,
  s: EntropyRegulatorSettings,
): EntropyStep & { next: EntropyRegulatorState } {
  if (!(s.maxWeight >= 1)) throw new Error(`entropyRegulatorStep: maxWeight (G) must be ≥ 1, got ${s.maxWeight}`);
  if (!(s.smoothing >= 0 && s.smoothing < 1))
    throw new Error(`entropyRegulatorStep: smoothing (β) must be in [0, 1), got ${s.smoothing}`);
  const sRl = smoothedEntropy(hRl, state.prevRl, s.smoothing);
  const sSft = smoothedEntropy(hSft, state.prevSft, s.smoothing);
  // RED-SPEC Eq. 9/11 on S (= H when smoothing is off).
  const deltaRl = relativeEntropyChange(sRl, state.prevRl);
  const deltaSft = relativeEntropyChange(sSft, state.prevSft);
  const defined = !Number.isNaN(deltaRl) && !Number.isNaN(deltaSft);
  const w = s.enabled && defined ? entropyWeight(deltaSft, deltaRl, s.maxWeight) : 1;
  const next = {
    prevRl: Number.isFinite(sRl) ? sRl : state.prevRl,
    prevSft: Number.isFinite(sSft) ? sSft : state.prevSft,
    steps: state.steps + 1,
  };
  const smoothed = s.smoothing > 0 ? { 'entropy/rl_smoothed': sRl, 'entropy/sft_smoothed': sSft } : {};
  return {
    w,
    next,
    metrics: {
      'entropy/rl': hRl,
      'entropy/sft': hSft,
      'entropy/delta_rl': deltaRl,
      'entropy/delta_sft': deltaSft,
      'red/w': w,
      ...smoothed,
    },
  };
}

/** A checkpoint's regulator state, validated; `where` names the file/key in the error. */
export function parseEntropyState(json: unknown, where = 'entropyRegulator'): EntropyRegulatorState {
  const r = StateSchema.safeParse(json);
  if (!r.success)
    fail(
      `${where}: not an entropy regulator state (${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')})`,
    );
  return r.data;
}
