import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { createProgress, MetricsWriter } from '../../src/train/metrics.ts';
import { tempDir } from '../helpers/tmp.ts';

test('metrics.jsonl: one line per step, non-finite left out, resume drops steps after the checkpoint', () => {
  const file = path.join(tempDir('red-m-'), 'metrics.jsonl');
  const w = new MetricsWriter(file);
  for (let s = 1; s <= 4; s++) w.write({ step: s, 'reward/mean': s / 4, 'loss/policy': s === 2 ? NaN : 1 });
  appendFileSync(file, '{"step": 5, "rew'); // torn by a kill
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  assert.equal(lines.length, 5);
  assert.deepEqual(JSON.parse(lines[1]), { step: 2, 'reward/mean': 0.5 });
  const resumed = new MetricsWriter(file, 3);
  resumed.write({ step: 4, 'reward/mean': 9 });
  const after = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { step: number });
  assert.deepEqual(
    after.map((m) => m.step),
    [1, 2, 3, 4],
  );
  assert.equal((after[3] as Record<string, number>)['reward/mean'], 9);
});

test('progress off a terminal: one plain line per step', () => {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  const p = createProgress('auto', out as unknown as NodeJS.WriteStream);
  p.start(10, 1);
  p.update(1, { 'reward/mean': 0.25, 'acc/mean': 0.5, 'red/w': 1, 'throughput/tokens_per_s': 1234.4 });
  p.update(2, {});
  p.stop();
  const lines = text.trim().split('\n');
  assert.equal(lines.length, 2);
  assert.match(
    lines[0],
    /^train step 1\/10 \| reward 0\.250 \| acc 0\.500 \| w 1\.00 \| .*1234 tok\/s \| eta \d+m\d\ds$/,
  );
  assert.match(lines[1], /reward - \| acc -/);
});
