import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  filterGroups,
  groupAdvantages,
  groupHasSignal,
  groupMeanAccuracy,
  needsAnotherDraw,
  overlongPenalty,
  shapeRewards,
} from '../../src/rl/advantages.ts';
import { assertAllClose, assertClose } from './helpers.ts';

test('group advantages: statistics over all G+1 members, unbiased std, +1e-6', () => {
  // Group 0: R = [1, 0, 0, 1] (the last is the offline member). mean 0.5, deviations ±0.5,
  // Σ dev² = 4·0.25 = 1, unbiased var = 1/3, std = √(1/3) = 0.5773502692 → Â = ±0.5/(0.5773502692 + 1e-6).
  // Group 1: R = [1, 1, 0]: mean 2/3, dev [1/3, 1/3, −2/3], Σ dev² = 6/9, var = 1/3, same std.
  const rewards = [1, 0, 0, 1, 1, 1, 0];
  const groupOf = [0, 0, 0, 0, 1, 1, 1];
  const s = Math.sqrt(1 / 3) + 1e-6;
  assertAllClose(
    groupAdvantages(rewards, groupOf, true),
    [0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s, 1 / 3 / s, 1 / 3 / s, -2 / 3 / s],
    1e-14,
  );
  // normalizeStd false: Â = R − mean.
  assertAllClose(groupAdvantages(rewards, groupOf, false), [0.5, -0.5, -0.5, 0.5, 1 / 3, 1 / 3, -2 / 3], 1e-14);
  assertClose(0.5 / s, 0.8660239, 1e-6, 'numeric value of 0.5/√(1/3)');
});

test('group advantages: all-equal rewards give 0 (std 0 → 0/1e-6), a single member gives 0', () => {
  assertAllClose(groupAdvantages([1, 1, 1, 0.5], [0, 0, 0, 1], true), [0, 0, 0, 0]);
});

test('r̄: mean accuracy of the online members, or of all G+1 with accuracyIncludesOffline', () => {
  const acc = [1, 0, 0, 1, /* group 1 */ 1, 1];
  const groupOf = [0, 0, 0, 0, 1, 1];
  const off = [false, false, false, true, true, false];
  // group 0 online: (1+0+0)/3 = 1/3; with offline: 2/4. group 1 online: 1/1; with offline 2/2.
  assertAllClose(groupMeanAccuracy(acc, groupOf, off, false), [1 / 3, 1]);
  assertAllClose(groupMeanAccuracy(acc, groupOf, off, true), [0.5, 1]);
});

test('DAPO overlong penalty: (L_max − L_buf − L)/L_buf past L_max − L_buf', () => {
  // L_max 8192, L_buf 2000: the ramp starts after 6192 tokens.
  assert.equal(overlongPenalty(6000, 8192, 2000), 0);
  assert.equal(overlongPenalty(6192, 8192, 2000), 0);
  assertClose(overlongPenalty(7192, 8192, 2000), (6192 - 7192) / 2000); // −0.5
  assertClose(overlongPenalty(8192, 8192, 2000), -1);
  // Shaped rewards: acc + format + overlong, the penalty on online members only.
  const r = shapeRewards(
    { accuracies: [1, 0, 1], lengths: [7192, 100, 8192], isOffline: [false, false, true], formatRewards: [0, 0.1, 0] },
    { enabled: true, bufferTokens: 2000 },
    8192,
  );
  assertAllClose(r, [1 - 0.5, 0.1, 1]);
  assertAllClose(
    shapeRewards(
      { accuracies: [1], lengths: [8192], isOffline: [false] },
      { enabled: false, bufferTokens: 2000 },
      8192,
    ),
    [1],
  );
});

test('group filtering drops a group whose G+1 accuracies are all equal', () => {
  // group 0: [1,1,1,1] dropped; group 1: [0,1,0,1] kept; group 2: [0,0,0,0] dropped (even with an offline member).
  const acc = [1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 0, 0];
  const groupOf = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2];
  const f = filterGroups(acc, groupOf, true);
  assert.deepEqual(f.keep, [false, true, false]);
  assertClose(f.metrics['groups/dropped_frac'], 2 / 3);
  assert.deepEqual(filterGroups(acc, groupOf, false).keep, [true, true, true]);
  assert.equal(groupHasSignal([1, 1, 1]), false);
  assert.equal(groupHasSignal([1, 1, 0]), true);
});

test('refill: draw again while short of groups and under maxFillAttempts', () => {
  assert.equal(needsAnotherDraw(3, 4, 1, 6), true);
  assert.equal(needsAnotherDraw(4, 4, 1, 6), false);
  assert.equal(needsAnotherDraw(3, 4, 6, 6), false);
});
