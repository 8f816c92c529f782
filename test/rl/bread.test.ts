import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prefixSearch, prefixSearchAsync, prefixTokens } from '../../src/rl/bread.ts';

const band = { segments: 10, targetLow: 0.1, targetHigh: 0.9 };

test('BREAD: the shortest prefix whose success reaches the band, in about log2(S) evaluations', () => {
  // success by k = 0..10; the first k with success ≥ 0.1 is 4 (0.2, inside [0.1, 0.9]).
  const est = [0, 0, 0, 0.05, 0.2, 0.5, 0.8, 1, 1, 1, 1];
  const c = prefixSearch(est, band);
  assert.equal(c.segments, 4);
  assert.equal(c.success, 0.2);
  assert.equal(c.inBand, true);
  // Binary search over 1..10: mid 5 (0.5 ≥ 0.1 → hi 5), mid 3 (0.05 → lo 4), mid 4 (0.2 → hi 4): 3 evaluations, none repeated.
  assert.deepEqual(c.evaluated, [5, 3, 4]);
  // Against a plain scan for the same answer on every monotone step profile.
  for (let jump = 1; jump <= 10; jump++) {
    const e = Array.from({ length: 11 }, (_, k) => (k >= jump ? 0.5 : 0));
    const r = prefixSearch(e, band);
    assert.equal(
      r.segments,
      e.findIndex((s) => s >= 0.1),
    );
    assert.ok(r.evaluated.length <= 5, `${r.evaluated.length} evaluations`);
  }
});

test('BREAD: success jumping over the band, or never reaching it, is reported as out of band', () => {
  const jump = prefixSearch([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1], band);
  assert.deepEqual([jump.segments, jump.success, jump.inBand], [6, 1, false]);
  const never = prefixSearch(new Array(11).fill(0), band);
  assert.deepEqual([never.segments, never.inBand], [10, false]);
});

test('BREAD: the callback form asks the same k as the array form', async () => {
  const est = [0, 0, 0.05, 0.1, 0.3, 0.6, 0.9, 1, 1, 1, 1];
  const asked: number[] = [];
  const c = await prefixSearchAsync(async (k) => {
    asked.push(k);
    return est[k];
  }, band);
  assert.equal(c.segments, 3);
  assert.deepEqual(asked, c.evaluated);
  assert.deepEqual(prefixSearch(est, band), c);
  // Prefix tokens of k = 3 of 10 segments of a 97-token trace: round(29.1) = 29.
  assert.equal(prefixTokens(3, 97, 10), 29);
  assert.equal(prefixTokens(10, 97, 10), 97);
});
