import { test } from 'node:test';
import assert from 'node:assert/strict';
import { memberEntropyMeans, type TokenBatch } from '../../src/rl/batch.ts';
import {
  entropyRegulatorStep,
  entropyWeight,
  initialEntropyState,
  parseEntropyState,
  relativeEntropyChange,
  smoothedEntropy,
  type EntropyRegulatorState,
} from '../../src/rl/entropy.ts';
import { RedError } from '../../src/util/errors.ts';
import { assertClose } from './helpers.ts';

test('H_rl, H_sft: token mean per member, then an unweighted mean over members', () => {
  // online [0,2): H = [1, 3] → 2; offline [2,4): H = [4, masked 99] → 4; online [4,7): H = [0.5, 0.5, 2] → 1.
  // H_rl = (2 + 1)/2 = 1.5 (the token mean (1+3+0.5+0.5+2)/5 = 1.4 would be wrong); H_sft = 4.
  const b: TokenBatch = {
    offsets: [0, 2, 4, 7],
    groupOf: [0, 0, 0],
    isOffline: [false, true, false],
    rewards: [0, 0, 0],
    accuracies: [0, 0, 0],
    logprobs: new Float64Array(7),
    entropies: [1, 3, 4, 99, 0.5, 0.5, 2],
    mask: [1, 1, 1, 0, 1, 1, 1],
  };
  const H = memberEntropyMeans(b);
  assertClose(H.rl, 1.5);
  assertClose(H.sft, 4);
});

test('ΔH = |1 − H(k)/H(k−1)| and w = clip(ΔH_sft / max(ΔH_rl, 1e-8), 1, G)', () => {
  assertClose(relativeEntropyChange(1.9, 2.0), 0.05);
  assertClose(relativeEntropyChange(2.2, 2.0), 0.1);
  assert.ok(Number.isNaN(relativeEntropyChange(1, null)));
  assertClose(entropyWeight(0.2, 0.05, 7), 4); // 0.2/0.05 = 4, inside [1, 7]
  assert.equal(entropyWeight(1.0, 0.05, 7), 7); // 20 → upper bound G
  assert.equal(entropyWeight(0.01, 0.05, 7), 1); // 0.2 → lower bound 1
  assert.equal(entropyWeight(0.3, 0, 7), 7); // ΔH_rl = 0 → 0.3/1e-8 → G
  assert.equal(entropyWeight(0, 0, 7), 1); // nothing moves: 0 → 1
});

const on = { enabled: true, maxWeight: 7, smoothing: 0 };

test('the regulator: w = 1 at the first step, then the ratio of entropy changes; state survives JSON', () => {
  let state = initialEntropyState();
  const s1 = entropyRegulatorStep(state, 2.0, 1.0, on);
  assert.equal(s1.w, 1);
  assert.equal(s1.metrics['red/w'], 1);
  assert.ok(Number.isNaN(s1.metrics['entropy/delta_rl']));
  state = s1.next;
  // Step 2: ΔH_rl = |1 − 1.9/2| = 0.05, ΔH_sft = |1 − 0.8/1| = 0.2 → w = 4.
  const s2 = entropyRegulatorStep(state, 1.9, 0.8, on);
  assertClose(s2.w, 4);
  assertClose(s2.metrics['entropy/delta_rl'], 0.05);
  assertClose(s2.metrics['entropy/delta_sft'], 0.2);
  assert.equal(s2.metrics['entropy/rl'], 1.9);
  assert.equal(s2.metrics['entropy/sft'], 0.8);
  state = s2.next;
  // Checkpoint and resume: a restored state continues exactly as the original.
  const restored = parseEntropyState(JSON.parse(JSON.stringify(state)));
  // Step 3: H_rl 1.9 → 1.9 (ΔH_rl = 0), H_sft 0.8 → 0.4 (ΔH_sft = 0.5) → w = G = 7.
  const s3 = entropyRegulatorStep(state, 1.9, 0.4, on);
  assert.equal(s3.w, 7);
  assert.equal(entropyRegulatorStep(restored, 1.9, 0.4, on).w, 7);
  assert.deepEqual(s3.next, { prevRl: 1.9, prevSft: 0.4, steps: 3 });
  // Lower bound: ΔH_rl = |1 − 0.95/1.9| = 0.5, ΔH_sft = |1 − 0.42/0.4| = 0.05 → 0.1 → 1.
  assert.equal(entropyRegulatorStep(s3.next, 0.95, 0.42, on).w, 1);
});

test('a step is pure: the state it was given is unchanged, so an uncommitted (failed) step leaves no trace', () => {
  const state = Object.freeze({ prevRl: 2, prevSft: 1, steps: 1 });
  const a = entropyRegulatorStep(state, 1.9, 0.8, on);
  const b = entropyRegulatorStep(state, 1.9, 0.8, on);
  assert.deepEqual(state, { prevRl: 2, prevSft: 1, steps: 1 });
  assert.deepEqual(a, b);
  assert.notEqual(a.next, state);
});

test('the regulator off (mixpolicy, red-II): w stays 1 while the entropies are still logged', () => {
  const off = { enabled: false, maxWeight: 7, smoothing: 0 };
  const s = entropyRegulatorStep(entropyRegulatorStep(initialEntropyState(), 2, 1, off).next, 2, 0.5, off);
  assert.equal(s.w, 1);
  assertClose(s.metrics['entropy/delta_sft'], 0.5);
});

test('a step without offline members keeps w = 1 and the previous H_sft', () => {
  const s1 = entropyRegulatorStep(initialEntropyState(), 2, 1, on);
  const s2 = entropyRegulatorStep(s1.next, 1.9, NaN, on);
  assert.equal(s2.w, 1);
  assert.equal(s2.next.prevSft, 1);
  assertClose(entropyRegulatorStep(s2.next, 1.9 * 0.95, 0.5, on).w, 7); // ΔH_rl = 0.05, ΔH_sft = |1 − 0.5/1| = 0.5 → 10 → 7
});

test('parseEntropyState names the key and what was expected', () => {
  assert.throws(
    () => parseEntropyState({ prevRl: 'x' }, 'ckpt/state.json: entropyRegulator'),
    (e: unknown) => e instanceof RedError && /ckpt\/state.json: entropyRegulator.*prevRl/.test(e.message),
  );
});

test('smoothing: an EMA S(k) = β·S(k−1) + (1−β)·H(k) before the ratio, logged, kept in the state', () => {
  const smooth = { enabled: true, maxWeight: 7, smoothing: 0.5 };
  assertClose(smoothedEntropy(1.8, 2, 0.5), 1.9);
  assert.equal(smoothedEntropy(1.8, null, 0.5), 1.8); // S(1) = H(1)
  assert.equal(smoothedEntropy(1.8, 2, 0), 1.8); // β = 0: the raw entropy
  assert.ok(Number.isNaN(smoothedEntropy(NaN, 2, 0.5)));
  const s1 = entropyRegulatorStep(initialEntropyState(), 2.0, 1.0, smooth);
  assert.equal(s1.w, 1);
  assert.deepEqual(s1.next, { prevRl: 2, prevSft: 1, steps: 1 });
  // Step 2, by hand: S_rl = 0.5·2 + 0.5·1.8 = 1.9, S_sft = 0.5·1 + 0.5·0.6 = 0.8 → ΔS_rl = 0.05,
  // ΔS_sft = 0.2 → w = 4. The raw ratio would be |1 − 0.6|/|1 − 0.9| = 4 too; step 3 tells them apart.
  const s2 = entropyRegulatorStep(s1.next, 1.8, 0.6, smooth);
  assertClose(s2.w, 4);
  assert.equal(s2.metrics['entropy/rl'], 1.8);
  assertClose(s2.metrics['entropy/rl_smoothed'] ?? NaN, 1.9);
  assertClose(s2.metrics['entropy/sft_smoothed'] ?? NaN, 0.8);
  // Step 3: H_rl = 2.0 → S_rl = 1.95, ΔS_rl = |1 − 1.95/1.9| = 1/38; H_sft = 0.8 → S_sft = 0.8,
  // ΔS_sft = 0 → w = 1 (raw: ΔH_rl = 1/9, ΔH_sft = 1/3 → w = 3).
  const s3 = entropyRegulatorStep(s2.next, 2.0, 0.8, smooth);
  assertClose(s3.metrics['entropy/delta_rl'], 1 / 38);
  assertClose(s3.metrics['entropy/delta_sft'], 0);
  assert.equal(s3.w, 1);
  assertClose(entropyRegulatorStep(s2.next, 2.0, 0.8, on).w, 1); // same state read raw: S(2) is the reference
  assertClose(entropyRegulatorStep({ prevRl: 1.8, prevSft: 0.6, steps: 2 }, 2.0, 0.8, on).w, 3);
  // A step without offline members keeps S_sft.
  const s4 = entropyRegulatorStep(s3.next, 2.0, NaN, smooth);
  assertClose(s4.next.prevSft ?? NaN, 0.8);
  // Off (β = 0): no smoothed series in the metrics, the paper's raw ratio.
  assert.ok(!('entropy/rl_smoothed' in entropyRegulatorStep(s1.next, 1.8, 0.6, on).metrics));
  assert.throws(() => entropyRegulatorStep(s1.next, 1.8, 0.6, { ...smooth, smoothing: 1 }), /smoothing/);
});

test('smoothing resumes exactly: a state through JSON (the checkpoint) continues the same series', () => {
  const smooth = { enabled: true, maxWeight: 4, smoothing: 0.8 };
  const H = Array.from({ length: 12 }, (_, k) => [1 + 0.3 * Math.sin(k), 2 + 0.5 * Math.cos(1.7 * k)]);
  const run = (state: EntropyRegulatorState, from: number, to: number) => {
    const w: number[] = [];
    for (let k = from; k < to; k++) {
      const s = entropyRegulatorStep(state, H[k][0], H[k][1], smooth);
      w.push(s.w);
      state = s.next;
    }
    return { w, state };
  };
  const straight = run(initialEntropyState(), 0, 12);
  const first = run(initialEntropyState(), 0, 5);
  const resumed = run(parseEntropyState(JSON.parse(JSON.stringify(first.state))), 5, 12);
  assert.deepEqual([...first.w, ...resumed.w], straight.w);
  assert.deepEqual(resumed.state, straight.state);
  assert.ok(new Set(straight.w).size > 2, 'w moves in this series');
});
