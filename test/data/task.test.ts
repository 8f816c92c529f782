import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadDataset } from '../../src/data/dataset.ts';
import { builtinRows, writeBuiltinDataset } from '../../src/data/task/builtin.ts';
import { allProblems, generateProblems, LEVELS, splitOf, type Problem } from '../../src/data/task/problems.ts';
import { shortSolution, teacherTrace } from '../../src/data/task/teacher.ts';
import { Rng } from '../../src/util/rng.ts';
import { tempDir } from '../helpers/tmp.ts';

/** b^e mod m by BigInt exponentiation: an independent computation of the task's map. */
const powMod = (b: number, e: number, m: number) => Number(BigInt(b) ** BigInt(e) % BigInt(m));

/** The answer of a problem statement, computed from its text alone. */
function solveText(text: string): string {
  const m = /^Compute f\^(\d)\((\d+)\), where f\(n\) = (\d+)\^n mod (\d+)\.$/.exec(text);
  if (!m) return `unparsed: ${text}`;
  let x = Number(m[2]);
  for (let i = 0; i < Number(m[1]); i++) x = powMod(Number(m[3]), x, Number(m[4]));
  return String(x);
}

const lastBoxed = (s: string) => [...s.matchAll(/\\boxed\{([^}]*)\}/g)].at(-1)?.[1];

test('every problem of both splits yields the answer its own text implies; f has no short cycle', () => {
  const all = [...allProblems('train', 1), ...allProblems('test', 1)];
  assert.equal(all.length, 5 * 96);
  assert.equal(new Set(all.map((p) => p.text)).size, all.length);
  for (const level of LEVELS) assert.equal(all.filter((p) => p.level === level).length, 96);
  for (const p of all) {
    assert.equal(p.answer, solveText(p.text), p.text);
    assert.ok(p.text.length <= 80, `problem too long: ${p.text}`);
    assert.equal(p.worked.chain.length, p.level + 1);
  }
  // No start returns to itself within five steps, so no chain has a short-cut.
  for (let s = 1; s <= 96; s++) {
    let x = s;
    for (let k = 1; k <= 5; k++) {
      x = powMod(10, x, 97);
      assert.notEqual(x, s, `f^${k}(${s}) = ${s}`);
    }
  }
});

test('teacher traces are correct chains, end in the boxed answer and are several times longer than the short solution', () => {
  const problems = generateProblems({ seed: 12, count: 600, split: 'train', repeats: true });
  const rng = new Rng(4);
  let longTokens = 0;
  let shortTokens = 0;
  let steps = 0;
  for (const p of problems) {
    const trace = teacherTrace(p, rng);
    const short = shortSolution(p);
    assert.match(trace, /^<think>\n[\s\S]+\n<\/think>\n\n/);
    const chain = /^(\d+(?: → \d+)+)$/m.exec(trace)?.[1].split(' → ').map(Number);
    assert.ok(chain, trace);
    assert.equal(chain.length, p.level + 1, `${p.text}: ${trace}`);
    assert.equal(String(chain[0]), /\((\d+)\)/.exec(p.text)?.[1]);
    for (let i = 1; i < chain.length; i++, steps++) assert.equal(chain[i], powMod(10, chain[i - 1], 97), trace);
    assert.equal(lastBoxed(trace), p.answer);
    assert.equal(lastBoxed(short), p.answer);
    assert.equal(trace.split('</think>')[1].match(/\\boxed/g)?.length, 1);
    // Digits are single tokens, the arrow and its spaces about one: count digits and arrows.
    longTokens += (trace.match(/\d|→|\w+/g) ?? []).length;
    shortTokens += (short.match(/\d|→|\w+/g) ?? []).length;
  }
  assert.ok(steps > 1500, `only ${steps} steps checked`);
  assert.ok(longTokens > 2.5 * shortTokens, `traces ${longTokens} vs short ${shortTokens}`);
});

test('train and held-out splits never share a problem; generation is seeded', () => {
  const train = allProblems('train', 1);
  const test_ = allProblems('test', 1);
  assert.ok(test_.length >= 100, `${test_.length} held-out problems`);
  const trainTexts = new Set(train.map((p) => p.text));
  for (const p of test_) assert.ok(!trainTexts.has(p.text), `held-out problem in train: ${p.text}`);
  for (const p of test_) assert.equal(splitOf(p.text), 'test');
  // Every level is held out, and the first rows take turns between the levels.
  for (const level of LEVELS) assert.ok(test_.filter((p: Problem) => p.level === level).length >= 20);
  assert.deepEqual(
    test_.slice(0, 10).map((p) => p.level),
    [1, 2, 3, 4, 5, 1, 2, 3, 4, 5],
  );
  assert.deepEqual(builtinRows('train', 50, 5), builtinRows('train', 50, 5));
  assert.deepEqual(builtinRows('train', 50, 5), builtinRows('train', undefined, 5).slice(0, 50));
  assert.notDeepEqual(builtinRows('train', 50, 5), builtinRows('train', 50, 6));
  assert.throws(
    () => builtinRows('test', 500, 5),
    (e: unknown) =>
      e instanceof Error &&
      e.message === `the built-in task has ${test_.length} test problems; ask for at most ${test_.length}, not 500`,
  );
  // Level weights are honoured: all-easy gives only level 1.
  assert.ok(
    generateProblems({ seed: 2, count: 100, split: 'train', levelWeights: [1, 0, 0, 0, 0], repeats: true }).every(
      (p) => p.level === 1,
    ),
  );
});

test('the written dataset goes through the paper-format loader', async () => {
  const dir = tempDir('red-builtin-');
  const files = writeBuiltinDataset({ out: dir, seed: 7, train: 120, test: 30 });
  const train = await loadDataset(files.train, { fields: 'paper' });
  const held = await loadDataset(files.test, { fields: 'paper' });
  assert.equal(train.examples.length, 120);
  assert.equal(held.examples.length, 30);
  for (const ex of [...train.examples, ...held.examples]) {
    assert.equal(ex.answer, solveText(ex.problem));
    assert.equal(lastBoxed(ex.trace ?? ''), ex.answer);
    assert.ok(ex.level !== undefined && ex.level >= 1 && ex.level <= 5);
  }
  const trainSet = new Set(train.examples.map((e) => e.problem));
  assert.ok(held.examples.every((e) => !trainSet.has(e.problem)));
  assert.equal(
    Object.values(files.levels.train).reduce((a, b) => a + b, 0),
    120,
  );
});

test('red data builtin writes the files and rejects bad sizes with one line', () => {
  const dir = tempDir('red-builtin-cli-');
  const bin = fileURLToPath(new URL('../../bin/red.js', import.meta.url));
  const ok = spawnSync(
    process.execPath,
    [bin, 'data', 'builtin', '--out', dir, '--seed', '2', '--train', '40', '--test', '10'],
    { encoding: 'utf8' },
  );
  assert.equal(ok.status, 0, ok.stderr);
  for (const f of ['train.jsonl', 'test.jsonl', 'tokenizer.json', 'tokenizer_config.json'])
    assert.ok(existsSync(path.join(dir, f)), f);
  assert.equal(readFileSync(path.join(dir, 'train.jsonl'), 'utf8').trim().split('\n').length, 40);
  const bad = spawnSync(process.execPath, [bin, 'data', 'builtin', '--out', dir, '--train', 'many'], {
    encoding: 'utf8',
  });
  assert.equal(bad.status, 1);
  assert.equal(bad.stderr.trim(), "red: --train must be a non-negative integer, got 'many'");
  // More rows than a split has: one line, and nothing written (the train split is fine, yet not written).
  const fresh = tempDir('red-builtin-big-');
  const big = spawnSync(process.execPath, [bin, 'data', 'builtin', '--out', fresh, '--test', '500'], {
    encoding: 'utf8',
  });
  assert.equal(big.status, 1);
  assert.equal(big.stderr.trim(), 'red: the built-in task has 120 test problems; ask for at most 120, not 500');
  assert.deepEqual(
    readdirSync(fresh).filter((f) => !f.startsWith('.')),
    [],
  );
});
