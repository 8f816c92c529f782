// Bad bytes in a dataset: a UTF-8 BOM is stripped (it used to give a cryptic JSON error on row 1);
// rows that are not UTF-8 (they used to become U+FFFD silently) and rows over data.maxRowBytes
// (a 10 MB row used to stall a step for 17 s) are skipped, counted, and reported in one warning.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readRecordsDetailed } from '../../src/data/records.ts';
import { writeTinySetup } from '../train/tiny.ts';
import { tempDir } from '../helpers/tmp.ts';

const dir = tempDir('red-badrows-');
const BIN = fileURLToPath(new URL('../../bin/red.js', import.meta.url));
const row = (problem: string, answer: string) => Buffer.from(JSON.stringify({ problem, answer }) + '\n');

test('a UTF-8 BOM is not part of row 1', async () => {
  const file = path.join(dir, 'bom.jsonl');
  writeFileSync(file, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), row('1+1', '2'), row('2+2', '4')]));
  const r = await readRecordsDetailed(file);
  assert.deepEqual(r.records, [
    { problem: '1+1', answer: '2' },
    { problem: '2+2', answer: '4' },
  ]);
  assert.deepEqual(r.rows, [1, 2]);
});

test('rows that are not UTF-8 or over maxRowBytes are skipped and counted, in either onBadRow mode', async () => {
  const file = path.join(dir, 'mixed.jsonl');
  const latin1 = Buffer.from('{"problem": "caf\xe9", "answer": "1"}\n', 'latin1'); // é as one byte 0xE9
  const big = row('x'.repeat(5000), '3');
  writeFileSync(file, Buffer.concat([row('a', '1'), latin1, big, row('b', '2')]));
  for (const onBadRow of ['error', 'skip'] as const) {
    const r = await readRecordsDetailed(file, { onBadRow, maxRowBytes: 1000 });
    assert.deepEqual(r.records, [
      { problem: 'a', answer: '1' },
      { problem: 'b', answer: '2' },
    ]);
    assert.deepEqual(r.rows, [1, 4]);
    assert.deepEqual(r.skippedBy, { malformed: 0, nonUtf8: 1, tooLarge: 1 });
    assert.equal(r.skipped, 2);
  }
});

test('red train: one warning with the count, and the rows in data/skipped_rows', () => {
  const tiny = writeTinySetup(path.join(dir, 'tiny'), 6);
  const bad = path.join(dir, 'train.jsonl');
  const rows = readFileSync(tiny.train);
  const first = rows.indexOf(0x0a) + 1;
  const bigRow = Buffer.from(JSON.stringify({ problem: 'y'.repeat(20_000), answer: '1', distill: 'z' }) + '\n');
  writeFileSync(
    bad,
    Buffer.concat([
      Buffer.from([0xef, 0xbb, 0xbf]),
      rows.subarray(0, first),
      Buffer.from([0x7b, 0xff, 0x7d, 0x0a]),
      bigRow,
      rows.subarray(first),
    ]),
  );
  const cfg = path.join(dir, 'train.yaml');
  writeFileSync(
    cfg,
    `model: { path: ${tiny.model} }\nengine: { backend: reference }\ndata: { train: ${bad}, maxRowBytes: 10000 }\nsft: { batchSize: 2 }\nlog: { progress: none }\n`,
  );
  const out = path.join(dir, 'run');
  const r = spawnSync(
    process.execPath,
    [BIN, 'train', '--config', cfg, '--out', out, '--method', 'sft', '--max-steps', '1'],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  const warnings = r.stderr.split('\n').filter((l) => l.startsWith('warning:'));
  assert.deepEqual(warnings, [
    `warning: ${bad}: skipped 2 row(s) (1 not UTF-8, 1 over data.maxRowBytes); counted in data/skipped_rows`,
  ]);
  const m = JSON.parse(readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n')[0]) as Record<
    string,
    number
  >;
  assert.equal(m['data/skipped_rows'], 2);
});
