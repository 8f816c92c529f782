import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CheckpointManager, TRAINER_STATE_FILE } from '../../src/train/checkpoint.ts';
import { RedError } from '../../src/util/errors.ts';
import { tempDir } from '../helpers/tmp.ts';

const writeStep = (step: number) => (dir: string) => {
  writeFileSync(path.join(dir, 'payload.txt'), `step ${step}`);
  writeFileSync(path.join(dir, TRAINER_STATE_FILE), JSON.stringify({ step }));
};

test('keeps the newest K, ignores partial folders, latest() is the newest complete one', async () => {
  const root = path.join(tempDir('red-ckpt-'), 'checkpoints');
  const m = new CheckpointManager(root, 2);
  assert.equal(m.latest(), null);
  for (const s of [1, 2, 3, 4]) await m.save(s, writeStep(s));
  assert.deepEqual(
    m.list().map((c) => c.step),
    [3, 4],
  );
  assert.deepEqual(readdirSync(root).sort(), ['step-3', 'step-4']);
  // A crash mid-write leaves a temporary folder and perhaps a step folder without its state file.
  mkdirSync(path.join(root, '.tmp-step-5-1'));
  writeFileSync(path.join(root, '.tmp-step-5-1', 'payload.txt'), 'half');
  mkdirSync(path.join(root, 'step-6'));
  assert.equal(m.latest()?.step, 4);
  // Numeric, not lexical, order.
  await m.save(10, writeStep(10));
  assert.equal(m.latest()?.step, 10);
  assert.equal(existsSync(path.join(root, '.tmp-step-5-1')), false, 'stale temporary folders are cleaned');
  // Re-saving an existing step replaces it.
  await m.save(10, (dir) => {
    writeStep(10)(dir);
    writeFileSync(path.join(dir, 'payload.txt'), 'again');
  });
  assert.equal(readFileSync(path.join(root, 'step-10', 'payload.txt'), 'utf8'), 'again');
});

test('a full disk mid-write: clear error, previous checkpoint intact, nothing half-written', async () => {
  const root = path.join(tempDir('red-ckpt-'), 'checkpoints');
  const m = new CheckpointManager(root, 3);
  await m.save(1, writeStep(1));
  const full = (dir: string) => {
    writeFileSync(path.join(dir, 'payload.txt'), 'partial');
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  };
  await assert.rejects(m.save(2, full), (err: unknown) => {
    assert.ok(err instanceof RedError);
    // The code once, with what it means and the fix (it used to read "(ENOSPC ENOSPC: no space …)").
    assert.match(err.message, /cannot write checkpoint .*step-2: the disk is full \(ENOSPC\); free some space/);
    assert.equal(err.message.split('ENOSPC').length, 2, err.message);
    assert.match(err.message, /previous checkpoint .*step-1 is intact/);
    return true;
  });
  assert.deepEqual(readdirSync(root), ['step-1']);
  assert.equal(readFileSync(path.join(root, 'step-1', 'payload.txt'), 'utf8'), 'step 1');
});

test('an unwritable output folder: clear error', async () => {
  const base = tempDir('red-ckpt-');
  writeFileSync(path.join(base, 'file'), 'x'); // a file where the folder should be
  const m = new CheckpointManager(path.join(base, 'file', 'checkpoints'), 3);
  await assert.rejects(m.save(1, writeStep(1)), /cannot write checkpoint .*step-1: .*no earlier checkpoint exists/);
});
