import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { getPath, readRecords, readRecordsDetailed, streamRecords } from '../../src/data/records.ts';
import { RedError } from '../../src/util/errors.ts';
import { benchmarkPath as bench } from '../helpers/paths.ts';
import { tempDir } from '../helpers/tmp.ts';

const tmp = tempDir('red-records-');

test('reads the LUFFY validation parquet (snappy, verl schema) with the row counts SOURCES.md states', async () => {
  const rows = await readRecords(bench('luffy_valid.parquet'));
  assert.equal(rows.length, 2019);
  const bySource = new Map<string, number>();
  for (const r of rows) bySource.set(String(r.data_source), (bySource.get(String(r.data_source)) ?? 0) + 1);
  assert.deepEqual(Object.fromEntries([...bySource].sort()), {
    aime: 240,
    amc: 332,
    math: 500,
    minerva: 272,
    olympiad_bench: 675,
  });
  const first = rows[0];
  const prompt = getPath(first, 'prompt') as { role: string; content: string }[];
  assert.deepEqual(
    prompt.map((m) => m.role),
    ['system', 'user'],
  );
  assert.ok(prompt[1].content.startsWith('Every morning Aya goes for a $9$-kilometer-long walk'));
  assert.equal(getPath(first, 'reward_model.ground_truth'), '204'); // AIME 2024 I-1
  assert.equal(getPath(first, 'prompt.0.role'), 'system');
  assert.equal(typeof getPath(first, 'extra_info.index'), 'number'); // int64 → number
});

test('reads JSONL benchmark files', async () => {
  const math = await readRecords(bench('math500.jsonl'));
  assert.equal(math.length, 500);
  assert.equal(typeof math[0].problem, 'string');
  const aime = await readRecords(bench('aime24.jsonl'));
  assert.equal(aime.length, 30);
  let n = 0;
  for await (const { row } of streamRecords(bench('amc83.jsonl'))) assert.equal(row, ++n);
  assert.equal(n, 83);
});

test('a malformed JSONL line names the file and its 1-based row; skip counts it', async () => {
  const file = path.join(tmp, 'broken.jsonl');
  writeFileSync(
    file,
    '{"problem":"1+1","answer":"2"}\n\n{"problem": "2+2", "answer":\n[1,2]\n{"problem":"3+3","answer":"6"}\n',
  );
  await assert.rejects(readRecords(file), (err: Error) => {
    assert.ok(err instanceof RedError);
    assert.match(err.message, /broken\.jsonl: row 3: malformed JSON/);
    return true;
  });
  const res = await readRecordsDetailed(file, { onBadRow: 'skip' });
  assert.equal(res.skipped, 2); // line 3 (truncated) and line 4 (an array, not an object)
  assert.deepEqual(res.rows, [1, 5]);
  assert.deepEqual(
    res.records.map((r) => r.answer),
    ['2', '6'],
  );
  await assert.rejects(async () => {
    for await (const _ of streamRecords(file)) void _;
  }, /row 3/);
  const arrFile = path.join(tmp, 'array.jsonl');
  writeFileSync(arrFile, '{"a":1}\n[1,2]\n');
  await assert.rejects(readRecords(arrFile), /array\.jsonl: row 2: expected a JSON object, got an array of 2/);
});

test('broken or missing files give one clear error', async () => {
  const bad = path.join(tmp, 'bad.parquet');
  writeFileSync(bad, 'this is not parquet at all');
  await assert.rejects(
    readRecords(bad),
    (err: Error) => err instanceof RedError && /bad\.parquet: not a readable Parquet file/.test(err.message),
  );
  await assert.rejects(
    readRecords(path.join(tmp, 'nope.jsonl')),
    (err: Error) => err instanceof RedError && /nope\.jsonl: cannot read/.test(err.message),
  );
  await assert.rejects(readRecords(path.join(tmp, 'x.csv')), /unknown dataset format '\.csv'/);
});

test('getPath names the file, row and the missing key', () => {
  const rec = { reward_model: { style: 'rule' }, prompt: [{ role: 'user', content: 'hi' }] };
  assert.equal(getPath(rec, 'prompt.0.content'), 'hi');
  assert.throws(
    () => getPath(rec, 'reward_model.ground_truth', { file: 'train.parquet', row: 17 }),
    (err: Error) =>
      err instanceof RedError &&
      err.message ===
        "train.parquet: row 17: missing field 'reward_model.ground_truth' (no 'ground_truth' in 'reward_model'; it has keys 'style')",
  );
  assert.throws(() => getPath(rec, 'prompt.3.content'), /no '3' in 'prompt'; it is an array of 1/);
  assert.throws(() => getPath(rec, 'answer'), /no 'answer' in the record; it has keys 'reward_model', 'prompt'/);
});
