import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { EpochIterator, loadDataset, parseFieldMapping, promptMessages } from '../../src/data/dataset.ts';
import { RedError } from '../../src/util/errors.ts';
import { benchmarkPath as bench } from '../helpers/paths.ts';
import { tempDir } from '../helpers/tmp.ts';

const tmp = tempDir('red-dataset-');
const jsonl = (name: string, rows: unknown[]) => {
  const file = path.join(tmp, name);
  writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
};

test('luffy-eval preset on the real LUFFY parquet: chat prompt kept, user turn is the problem', async () => {
  const ds = await loadDataset(bench('luffy_valid.parquet'), { fields: 'luffy-eval' });
  assert.equal(ds.examples.length, 2019);
  const ex = ds.examples[0];
  assert.equal(ex.answer, '204');
  assert.equal(ex.id, 'luffy_valid.parquet:1');
  assert.deepEqual(
    ex.messages?.map((m) => m.role),
    ['system', 'user'],
  );
  assert.ok(ex.problem.startsWith('Every morning Aya'));
  assert.equal(promptMessages(ex), ex.messages);
  assert.equal(ds.examples[2018].answer, '10.1');
});

test('luffy preset takes the R1 trace from target[{role, content}]', async () => {
  const file = jsonl('luffy.jsonl', [
    {
      prompt: [
        { role: 'system', content: 'Think.' },
        { role: 'user', content: 'What is 2+3?' },
      ],
      target: [{ role: 'assistant', content: '<think>2+3=5</think>\\boxed{5}' }],
      reward_model: { ground_truth: '5', style: 'rule' },
    },
  ]);
  const [ex] = (await loadDataset(file, { fields: 'luffy' })).examples;
  assert.equal(ex.problem, 'What is 2+3?');
  assert.equal(ex.trace, '<think>2+3=5</think>\\boxed{5}');
  assert.equal(ex.answer, '5');
});

test('paper preset, numeric answers, and the qwen-boxed prompt for problem-only sources', async () => {
  const file = jsonl('paper.jsonl', [
    { problem: 'Compute 6*7.', answer: 42, distill: '<think>6*7=42</think> \\boxed{42}', level: 2 },
  ]);
  const [ex] = (await loadDataset(file)).examples;
  assert.deepEqual(ex, {
    id: 'paper.jsonl:1',
    problem: 'Compute 6*7.',
    answer: '42',
    trace: '<think>6*7=42</think> \\boxed{42}',
    level: 2,
  });
  assert.deepEqual(promptMessages(ex), [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'Compute 6*7.\nPlease reason step by step, and put your final answer within \\boxed{}.' },
  ]);
  const amc = await loadDataset(bench('amc23.jsonl'), { fields: 'paper-eval' });
  assert.equal(amc.examples[0].answer, '27'); // stored as the float 27.0
});

test('custom mappings by field path', async () => {
  const file = jsonl('custom.jsonl', [{ q: { text: 'Solve x+1=3.' }, sol: { final: '2' }, teacher: 'x=2 \\boxed{2}' }]);
  const [ex] = (await loadDataset(file, { fields: 'problem=q.text,answer=sol.final,trace=teacher' })).examples;
  assert.equal(ex.problem, 'Solve x+1=3.');
  assert.equal(ex.answer, '2');
  assert.equal(ex.trace, 'x=2 \\boxed{2}');
  assert.throws(() => parseFieldMapping('answer=a'), /exactly one of 'prompt'/);
  assert.throws(() => parseFieldMapping('problem=p,answr=a'), /bad entry 'answr=a'/);
  assert.throws(() => parseFieldMapping('nosuch'), /unknown field preset 'nosuch'/);
});

test('bad rows name file, row and field; skip counts them', async () => {
  const file = jsonl('bad.jsonl', [
    { problem: 'ok', answer: '1', distill: 't' },
    { problem: 'no answer', distill: 't' },
    { problem: 'x', answer: '2', distill: 7 },
    { problem: '', answer: '3', distill: 't' },
    { problem: 'fine', answer: '4', distill: 't' },
  ]);
  await assert.rejects(loadDataset(file), (err: Error) => {
    assert.ok(err instanceof RedError);
    assert.match(err.message, /bad\.jsonl: row 2: missing field 'answer'/);
    return true;
  });
  const ds = await loadDataset(file, { onBadRow: 'skip' });
  assert.equal(ds.skipped, 3);
  assert.deepEqual(
    ds.examples.map((e) => e.answer),
    ['1', '4'],
  );
  const traceFile = jsonl('bad-trace.jsonl', [{ problem: 'x', answer: '2', distill: 7 }]);
  await assert.rejects(loadDataset(traceFile), /row 1: field 'distill': expected the teacher trace as a string/);
  const chatFile = jsonl('bad-chat.jsonl', [
    { prompt: [{ role: 'bot', content: 'hi' }], reward_model: { ground_truth: '1' } },
  ]);
  await assert.rejects(
    loadDataset(chatFile, { fields: 'luffy-eval' }),
    /row 1: field 'prompt': item 0: role must be system, user or assistant/,
  );
  const allBad = jsonl('all-bad.jsonl', [{ nothing: 1 }]);
  await assert.rejects(loadDataset(allBad, { onBadRow: 'skip' }), /no usable rows \(1 skipped/);
});

test('epoch iterator: each epoch is a permutation; a resumed cursor draws the same items', () => {
  const items = Array.from({ length: 10 }, (_, i) => i);
  const it = new EpochIterator(items, 42);
  const first = it.take(10);
  assert.deepEqual(
    [...first].sort((a, b) => a - b),
    items,
  );
  assert.notDeepEqual(first, items); // 1/10! chance of identity
  const second = it.take(10);
  assert.deepEqual(
    [...second].sort((a, b) => a - b),
    items,
  );
  assert.notDeepEqual(second, first);

  const a = new EpochIterator(items, 7);
  a.take(13);
  const saved = JSON.parse(JSON.stringify(a.cursor()));
  assert.deepEqual(saved, { epoch: 1, index: 3 });
  const expected = a.take(25);
  const b = new EpochIterator(items, 7, saved);
  assert.deepEqual(b.take(25), expected);
  assert.notDeepEqual(new EpochIterator(items, 8).take(10), new EpochIterator(items, 7).take(10));
  assert.throws(() => new EpochIterator(items, 7, { epoch: 0, index: 11 }), /does not fit a dataset of 10/);
});
