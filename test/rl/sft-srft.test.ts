import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TokenBatch } from '../../src/rl/batch.ts';
import { objectives } from '../../src/rl/objectives.ts';
import { parseAlgorithmOptions, resolvePreset } from '../../src/rl/options.ts';
import { HardQuestionBuffer, isHardGroup, nllLoss } from '../../src/rl/sft.ts';
import { srftLoss } from '../../src/rl/srft.ts';
import { RedError } from '../../src/util/errors.ts';
import { assertAllClose, assertClose, checkGradients, randomBatch } from './helpers.ts';

const L = Math.log;

test("SFT NLL, token mean over the batch, with ReLIFT's − 0.001·H", () => {
  // log π = [−1, −2, (masked −3)]: mean(−log π) = 1.5; H = [0.5, 1.5] → mean 1; loss = 1.5 − 0.001·1 = 1.499.
  const r = nllLoss({ logprobs: [-1, -2, -3], tokens: 3, mask: [1, 1, 0], entropies: [0.5, 1.5, 9] }, 0.001);
  assertClose(r.loss, 1.499);
  assertAllClose(r.dLogprobs, [-0.5, -0.5, 0]);
  assertAllClose(r.dEntropies ?? [], [-0.0005, -0.0005, 0]);
  assertClose(r.metrics['loss/sft'], 1.5);
  const plain = nllLoss({ logprobs: [-1, -2, -3], tokens: 3 });
  assertClose(plain.loss, 2);
  assert.equal(plain.dEntropies, null);
});

test('objective nll (the sft preset) over a packed batch: gradients match finite differences', () => {
  const b = randomBatch({ groups: 2, online: 0, offline: true, maxLen: 8, seed: 11 });
  checkGradients(b, (x) =>
    objectives.nll(x, parseAlgorithmOptions({ objective: 'nll', entropyCoef: 0.001 }), {
      offlineWeight: 1,
      maxResponseTokens: 8,
    }),
  );
  const sft = resolvePreset('sft');
  assert.equal(sft.objective, 'nll');
  assert.equal(sft.onlineRollouts, false);
});

test('SRFT by hand: demo SFT, demo RL (π_offline = one), self-rollout ±log π', () => {
  // Members: offline π [0.5, 0.1] H [1, 2]; online0 correct π [0.5, 0.25] H [0.5, 1.5]; online1 wrong π [0.8] H [1].
  // H_demo = 1.5 → w_sft = 0.5·e^−1.5; H_rollout = (0.5 + 1.5 + 1)/3 = 1 → w_rl = 0.1·e.
  // normalizeStd false: Â = R − 2/3 = [1/3, 1/3, −2/3]; seq-sum-norm with L_norm 4: κ = 1/(1·3·4) = 1/12.
  const b: TokenBatch = {
    offsets: [0, 2, 4, 5],
    groupOf: [0, 0, 0],
    isOffline: [true, false, false],
    rewards: [1, 1, 0],
    accuracies: [1, 1, 0],
    logprobs: [L(0.5), L(0.1), L(0.5), L(0.25), L(0.8)],
    entropies: [1, 2, 0.5, 1.5, 1],
  };
  const o = resolvePreset('srft', { lNorm: 4 });
  const r = srftLoss(b, o, { offlineWeight: 1, maxResponseTokens: 8192 });
  const wSft = 0.5 * Math.exp(-1.5);
  const wRl = 0.1 * Math.E;
  const demoSft = (wSft * -(L(0.5) + L(0.1))) / 2;
  const demoRl = -(1 / 12) * (1 / 3) * (0.5 + 0.1);
  const self = (1 / 12) * -wRl * (L(0.5) + L(0.25)) + (1 / 12) * L(0.8);
  assertClose(r.metrics['srft/w_sft'], wSft);
  assertClose(r.metrics['srft/w_rl'], wRl);
  assertClose(r.metrics['loss/sft'], demoSft);
  assertClose(r.metrics['loss/offline'], demoRl);
  assertClose(r.metrics['loss/policy'], self);
  assertClose(r.loss, demoSft + demoRl + self);
  assertAllClose(r.dLogprobs, [-wSft / 2 - (1 / 36) * 0.5, -wSft / 2 - (1 / 36) * 0.1, -wRl / 12, -wRl / 12, 1 / 12]);
  assert.equal(r.dEntropies, null); // the entropies only enter through sg(·)
});

test('SRFT gradients match finite differences (stop-gradient entropies held)', () => {
  const b = randomBatch({ groups: 2, online: 3, offline: true, maxLen: 5, seed: 5 });
  for (const aggregation of ['seq-sum-norm', 'seq-mean-token-mean'] as const) {
    const o = resolvePreset('srft', { aggregation, entropyCoef: 0.01, klCoef: 0.02 });
    checkGradients(b, (x) => objectives.srft(x, o, { offlineWeight: 1, maxResponseTokens: 10 }));
  }
});

test('ReLIFT buffer: hard questions once each, ready at N, drain the oldest N, state survives JSON', () => {
  assert.equal(isHardGroup([0, 0, 0]), true);
  assert.equal(isHardGroup([0, 1, 0]), false);
  const buf = new HardQuestionBuffer(3);
  assert.equal(buf.add('q1'), true);
  assert.equal(buf.add('q1'), false);
  buf.add('q2');
  assert.equal(buf.ready(), false);
  buf.add('q3');
  buf.add('q4');
  assert.equal(buf.ready(), true);
  const saved = JSON.parse(JSON.stringify(buf));
  assert.deepEqual(buf.drain(), ['q1', 'q2', 'q3']);
  assert.equal(buf.size, 1);
  assert.equal(buf.ready(), false);
  const back = HardQuestionBuffer.fromJSON(saved);
  assert.equal(back.size, 4);
  assert.deepEqual(back.drain(), ['q1', 'q2', 'q3']);
  assert.deepEqual(back.drain(), ['q4']);
  assert.throws(
    () => HardQuestionBuffer.fromJSON({ capacity: 0, ids: [] }, 'state.json: relift'),
    (e: unknown) => e instanceof RedError && /state.json: relift.*capacity/.test(e.message),
  );
  assert.equal(resolvePreset('relift').sftInterleave.bufferSize, 128);
});
