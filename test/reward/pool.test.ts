// The CAS worker pool on its own: a worker that cannot start fails the waiting comparisons after a
// few tries instead of respawning forever, and the pool works again once workers can start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CasPool } from '../../src/reward/pool.ts';

test('a worker that cannot start: comparisons fail with a reason, no endless respawn', async () => {
  const pool = new CasPool(1, new URL('./no-such-worker.mjs', import.meta.url));
  const t = performance.now();
  const r = await pool.compare('1', '1', 1000);
  assert.equal(r.status, 'error');
  assert.match(r.reason ?? '', /cannot start/);
  assert.ok(performance.now() - t < 20_000);
  await pool.close();
});

test('a working pool answers equal / unequal and times out a hang', async () => {
  const pool = new CasPool(1);
  await pool.warm();
  assert.equal((await pool.compare('x^2-1', '(x-1)(x+1)', 5000)).status, 'equal');
  assert.equal((await pool.compare('x^2-1', '(x-1)(x-1)', 5000)).status, 'unequal');
  const hang = await pool.compare('2', '9^{9^{9^{9}}}', 300);
  assert.equal(hang.status, 'timeout');
  assert.ok(hang.elapsedMs >= 300 && hang.elapsedMs < 1300, `elapsed ${hang.elapsedMs}`);
  // The replacement worker takes the next comparison.
  assert.equal((await pool.compare('\\sqrt{8}', '2\\sqrt{2}', 5000)).status, 'equal');
  await pool.close();
  assert.equal((await pool.compare('1', '1', 1000)).status, 'error');
});
