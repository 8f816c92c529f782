// Shared by the rl tests: the suite's tolerance checks (re-exported from test/helpers), a random
// packed batch, and central finite differences of a loss over its per-token inputs.
import type { TokenBatch } from '../../src/rl/batch.ts';
import type { LossResult } from '../../src/rl/policy-loss.ts';
import { Rng } from '../../src/util/rng.ts';
import { assertAllClose } from '../helpers/close.ts';

export { assertAllClose, assertClose } from '../helpers/close.ts';

export interface RandomBatchSpec {
  groups: number;
  online: number; // G online members per group
  offline: boolean; // one offline member per group
  maxLen: number;
  seed: number;
}

/**
 * A random batch with every per-token input filled. Members are shuffled inside each group so the
 * offline member is not always last (the flag, not the position, must matter). Online ratios are
 * kept ≥ 0.01 away from the clip kinks 0.8 and 1.2 so central differences are smooth.
 */
export function randomBatch(
  s: RandomBatchSpec,
): TokenBatch & { oldLogprobs: Float64Array; entropies: Float64Array; refLogprobs: Float64Array; mask: Uint8Array } {
  const rng = new Rng(s.seed);
  const offsets = [0];
  const groupOf: number[] = [];
  const isOffline: boolean[] = [];
  const accuracies: number[] = [];
  const rewards: number[] = [];
  for (let g = 0; g < s.groups; g++) {
    const flags = [...Array<boolean>(s.online).fill(false), ...(s.offline ? [true] : [])];
    rng.shuffle(flags);
    for (const off of flags) {
      groupOf.push(g);
      isOffline.push(off);
      const a = off ? 1 : rng.int(2);
      accuracies.push(a);
      rewards.push(a + 0.1 * rng.normal());
      offsets.push(offsets[offsets.length - 1] + 1 + rng.int(s.maxLen));
    }
  }
  const T = offsets[offsets.length - 1];
  const logprobs = new Float64Array(T);
  const oldLogprobs = new Float64Array(T);
  const refLogprobs = new Float64Array(T);
  const entropies = new Float64Array(T);
  const mask = new Uint8Array(T);
  for (let t = 0; t < T; t++) {
    logprobs[t] = -0.05 - 3 * rng.uniform();
    let d = 0.6 * (2 * rng.uniform() - 1);
    while (Math.abs(Math.exp(d) - 0.8) < 0.01 || Math.abs(Math.exp(d) - 1.2) < 0.01) d += 0.02;
    oldLogprobs[t] = logprobs[t] - d;
    refLogprobs[t] = logprobs[t] + 0.5 * rng.normal();
    entropies[t] = 0.1 + 3 * rng.uniform();
    mask[t] = rng.uniform() < 0.85 ? 1 : 0;
  }
  return { offsets, groupOf, isOffline, rewards, accuracies, logprobs, oldLogprobs, refLogprobs, entropies, mask };
}

/**
 * Central differences of `loss(batch)` in every logprobs[t] and entropies[t], with the stop-gradient
 * values (batch.detached) held at the unperturbed inputs, compared with the returned gradients.
 */
export function checkGradients(
  batch: TokenBatch,
  loss: (b: TokenBatch) => LossResult,
  tol = 1e-6,
  h = 1e-5,
): LossResult {
  const logprobs = Float64Array.from(batch.logprobs);
  const entropies = batch.entropies ? Float64Array.from(batch.entropies) : undefined;
  const frozen: TokenBatch = {
    ...batch,
    detached: { logprobs: Float64Array.from(logprobs), entropies: entropies && Float64Array.from(entropies) },
  };
  const base = loss({ ...frozen, logprobs, entropies });
  const T = logprobs.length;
  const fdLogprobs = new Float64Array(T);
  const fdEntropies = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    const x = logprobs[t];
    logprobs[t] = x + h;
    const up = loss({ ...frozen, logprobs, entropies }).loss;
    logprobs[t] = x - h;
    const down = loss({ ...frozen, logprobs, entropies }).loss;
    logprobs[t] = x;
    fdLogprobs[t] = (up - down) / (2 * h);
    if (entropies) {
      const e = entropies[t];
      entropies[t] = e + h;
      const eu = loss({ ...frozen, logprobs, entropies }).loss;
      entropies[t] = e - h;
      const ed = loss({ ...frozen, logprobs, entropies }).loss;
      entropies[t] = e;
      fdEntropies[t] = (eu - ed) / (2 * h);
    }
  }
  assertAllClose(base.dLogprobs, fdLogprobs, tol, 'd loss / d logprob vs finite differences');
  if (entropies)
    assertAllClose(
      base.dEntropies ?? new Float64Array(T),
      fdEntropies,
      tol,
      'd loss / d entropy vs finite differences',
    );
  return base;
}
