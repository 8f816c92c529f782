// Supervised pieces: the token-mean NLL of the `sft` preset and of ReLIFT's interleaved SFT step
// (with its small entropy term), and ReLIFT's buffer of hard questions (RED-SPEC `relift` row).
import { z } from 'zod';
import { fail } from '../util/errors.ts';
import type { Floats } from './batch.ts';
import type { LossResult } from './policy-loss.ts';

export interface SftTokens {
  /** (≥ tokens) log π_θ of the teacher tokens. */
  logprobs: Floats;
  /** Tokens of the batch to read (the arrays may be longer). */
  tokens: number;
  /** (≥ tokens) 1 = counts; omitted: all count. */
  mask?: ArrayLike<number>;
  /** (≥ tokens) per-token entropy; needed when entropyCoef > 0. */
  entropies?: Floats;
  /** Micro-batching: evaluate only tokens [t0, t1) (inputs need only be filled there); the mean
   *  still divides by the counted tokens of the whole batch, so shares sum to the full loss. */
  range?: readonly [number, number];
}

/**
 * RED-SPEC `sft` and `relift` rows: loss = mean_t(−log π_t) − entropyCoef · mean_t(H_t) over the
 * counted tokens of the whole batch (token mean). d/dlog π_t = −1/N, d/dH_t = −entropyCoef/N.
 */
export function nllLoss(x: SftTokens, entropyCoef = 0): LossResult {
  const H = x.entropies;
  if (entropyCoef !== 0 && H === undefined) throw new Error('nllLoss: entropyCoef > 0 needs entropies');
  const counted = (t: number) => x.mask === undefined || x.mask[t] !== 0;
  let n = 0;
  for (let t = 0; t < x.tokens; t++) if (counted(t)) n++;
  const dLogprobs = new Float64Array(x.tokens);
  const dEntropies = entropyCoef !== 0 ? new Float64Array(x.tokens) : null;
  const [t0, t1] = x.range ?? [0, x.tokens];
  let nll = 0;
  let meanH = 0;
  for (let t = t0; t < t1 && n > 0; t++) {
    if (!counted(t)) continue;
    nll -= x.logprobs[t] / n;
    dLogprobs[t] = -1 / n;
    if (H !== undefined) meanH += H[t] / n;
    if (dEntropies) dEntropies[t] = -entropyCoef / n;
  }
  const loss = nll - entropyCoef * meanH;
  // entropy/sft is the regulator's (a mean per trace, on the pre-update policy), not this token mean.
  const metrics: Record<string, number> = { 'loss/sft': nll, 'loss/total': loss };
  return { loss, dLogprobs, dEntropies, metrics };
}

/** ReLIFT: a group is hard when none of its online rollouts is correct. */
export function isHardGroup(onlineAccuracies: Floats): boolean {
  for (let i = 0; i < onlineAccuracies.length; i++) if (onlineAccuracies[i] > 0) return false;
  return onlineAccuracies.length > 0;
}

export interface HardQuestionBufferState {
  capacity: number;
  ids: string[];
}

const BufferStateSchema = z.strictObject({ capacity: z.int().min(1), ids: z.array(z.string()) });

/**
 * ReLIFT's buffer (RED-SPEC `relift` row): ids of questions whose rollouts all failed, in the order
 * they failed, each at most once while buffered. When it holds `capacity` (N) questions the trainer
 * drains N of them and runs one SFT step on their teacher traces.
 */
export class HardQuestionBuffer {
  private ids: string[] = [];
  constructor(readonly capacity: number) {
    if (!(Number.isInteger(capacity) && capacity >= 1))
      throw new Error(`HardQuestionBuffer: capacity must be an integer ≥ 1, got ${capacity}`);
  }

  /** Adds a question id; returns false when it was already buffered. */
  add(id: string): boolean {
    if (this.ids.includes(id)) return false;
    this.ids.push(id);
    return true;
  }

  get size(): number {
    return this.ids.length;
  }

  /** True when an SFT step is due. */
  ready(): boolean {
    return this.ids.length >= this.capacity;
  }

  /** The oldest `capacity` ids (fewer if not full), removed from the buffer. */
  drain(): string[] {
    return this.ids.splice(0, this.capacity);
  }

  toJSON(): HardQuestionBufferState {
    return { capacity: this.capacity, ids: [...this.ids] };
  }

  static fromJSON(json: unknown, where = 'hardQuestionBuffer'): HardQuestionBuffer {
    const r = BufferStateSchema.safeParse(json);
    if (!r.success)
      fail(
        `${where}: not a hard-question buffer (${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')})`,
      );
    const b = new HardQuestionBuffer(r.data.capacity);
    for (const id of r.data.ids) b.add(id);
    return b;
  }
}
