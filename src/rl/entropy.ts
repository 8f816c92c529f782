// RED (I), dynamic entropy regulation (RED-SPEC "(I) Dynamic entropy regulation"): a pure step
// (state, H) → { w, next } across training steps that turns the relative change of the online and
// offline entropies into the offline weight w. Its state is two numbers, kept in checkpoints.
import { z } from 'zod';
import { fail } from '../util/errors.ts';

export const MIN_DELTA_RL = 1e-8;

/** What a checkpoint stores: the previous step's H_rl and H_sft (null before the first step). */
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

/** What the regulator reads from the options: whether w moves, and its upper bound G. */
export interface EntropyRegulatorSettings {
  /** false: w is always 1 (the entropies are still tracked and logged). */
  enabled: boolean;
  /** G, the number of online rollouts per group (w's upper bound). */
  maxWeight: number;
}

/** The state before the first step. */
export function initialEntropyState(): EntropyRegulatorState {
  return { prevRl: null, prevSft: null, steps: 0 };
}

/**
 * Step k as a pure function (state, H) → { w, next }: H_rl(k) and H_sft(k) from the pre-update
 * policy (memberEntropyMeans of the step's batch). w = 1 at the first step, or when a ratio is
 * undefined (no offline member this step, or a previous entropy of 0). A missing value (NaN)
 * keeps the previous one in `next`. The caller commits `next` only when its step succeeded, so a
 * skipped step leaves the regulator where it was.
 */
export function entropyRegulatorStep(
  state: Readonly<EntropyRegulatorState>,
  hRl: number,
  hSft: number,
  s: EntropyRegulatorSettings,
): EntropyStep & { next: EntropyRegulatorState } {
  if (!(s.maxWeight >= 1)) throw new Error(`entropyRegulatorStep: maxWeight (G) must be ≥ 1, got ${s.maxWeight}`);
  const deltaRl = relativeEntropyChange(hRl, state.prevRl);
  const deltaSft = relativeEntropyChange(hSft, state.prevSft);
  const defined = !Number.isNaN(deltaRl) && !Number.isNaN(deltaSft);
  const w = s.enabled && defined ? entropyWeight(deltaSft, deltaRl, s.maxWeight) : 1;
  const next = {
    prevRl: Number.isFinite(hRl) ? hRl : state.prevRl,
    prevSft: Number.isFinite(hSft) ? hSft : state.prevSft,
    steps: state.steps + 1,
  };
  return {
    w,
    next,
    metrics: {
      'entropy/rl': hRl,
      'entropy/sft': hSft,
      'entropy/delta_rl': deltaRl,
      'entropy/delta_sft': deltaSft,
      'red/w': w,
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
