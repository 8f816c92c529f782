import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadDataset } from '../../src/data/dataset.ts';
import { builtinRows, writeBuiltinDataset } from '../../src/data/task/builtin.ts';
import { generateProblems, kindsOf, LEVELS, splitOf, type Problem } from '../../src/data/task/problems.ts';
import { shortSolution, teacherTrace } from '../../src/data/task/teacher.ts';
import { Rng } from '../../src/util/rng.ts';

// Exact rationals as [numerator, denominator] with BigInt, to re-solve every problem independently.
type Q = [bigint, bigint];
const gcd = (a: bigint, b: bigint): bigint => (b === 0n ? (a < 0n ? -a : a) : gcd(b, a % b));
const norm = ([n, d]: Q): Q => {
  if (d < 0n) [n, d] = [-n, -d];
  const g = gcd(n, d) || 1n;
  return [n / g, d / g];
};
const show = (q: Q): string => {
  const [n, d] = norm(q);
  return d === 1n ? `${n}` : `${n}/${d}`;
};

/** A small recursive-descent evaluator for + - * / ^ and parentheses over exact rationals. */
function evaluate(expr: string): Q {
  let i = 0;
  const peek = () => expr[i];
  const atom = (): Q => {
    if (peek() === '(') {
      i++;
      const v = sum();
      assert.equal(expr[i++], ')');
      return v;
    }
    const m = /^\d+/.exec(expr.slice(i));
    assert.ok(m, `number expected at ${i} in ${expr}`);
    i += m[0].length;
    return [BigInt(m[0]), 1n];
  };
  const power = (): Q => {
    const b = atom();
    if (peek() !== '^') return b;
    i++;
    const e = atom();
    return [b[0] ** e[0], b[1] ** e[0]];
  };
  const product = (): Q => {
    let v = power();
    while (peek() === '*' || peek() === '/') {
      const op = expr[i++];
      const r = power();
      v = norm(op === '*' ? [v[0] * r[0], v[1] * r[1]] : [v[0] * r[1], v[1] * r[0]]);
    }
    return v;
  };
  const sum = (): Q => {
    let v = product();
    while (peek() === '+' || peek() === '-') {
      const op = expr[i++];
      const r = product();
      v = norm([op === '+' ? v[0] * r[1] + r[0] * v[1] : v[0] * r[1] - r[0] * v[1], v[1] * r[1]]);
    }
    return v;
  };
  const v = sum();
  assert.equal(i, expr.length, `trailing text in ${expr}`);
  return v;
}

/** The answer of a problem statement, computed from its text alone. */
function solveText(text: string): string {
  let m: RegExpExecArray | null;
  if ((m = /^Compute (.+)\.$/.exec(text))) return show(evaluate(m[1]));
  if ((m = /^Find (\d+)\^(\d+) mod (\d+)\.$/.exec(text))) return String(BigInt(m[1]) ** BigInt(m[2]) % BigInt(m[3]));
  if ((m = /^Find (\d+) mod (\d+)\.$/.exec(text))) return String(Number(m[1]) % Number(m[2]));
  if ((m = /^Solve (.+)=(.+)\.$/.exec(text))) {
    // Both sides are linear in x: try integers until the sides agree (the task only has x ≥ 1).
    const side = (s: string, x: number) => evaluate(s.replace(/(\d)x/g, `$1*${x}`).replace(/x/g, String(x)));
    for (let x = 0; x <= 200; x++) if (show(side(m[1], x)) === show(side(m[2], x))) return String(x);
    return 'none';
  }
  if ((m = /^x\+y=(\d+) and x-y=(\d+)\. Find x\.$/.exec(text))) {
    for (let x = 0; x <= 200; x++) if (2 * x - Number(m[1]) === Number(m[2])) return String(x);
    return 'none';
  }
  if ((m = /^\w+ has (\d+) bags of (\d+) \w+ and gives away (\d+)\. How many are left\?$/.exec(text)))
    return String(+m[1] * +m[2] - +m[3]);
  if ((m = /^\w+ buys (\d+) pens at \$(\d+) each and pays \$(\d+)\. What is the change\?$/.exec(text)))
    return String(+m[3] - +m[1] * +m[2]);
  return `unparsed: ${text}`;
}

const lastBoxed = (s: string) => [...s.matchAll(/\\boxed\{([^}]*)\}/g)].at(-1)?.[1];

test('every problem kind of every level yields the answer its own text implies', () => {
  const problems = generateProblems({ seed: 11, count: 1500, split: 'train' });
  const kinds = new Set(problems.map((p) => `${p.level}:${p.kind}`));
  for (const level of LEVELS)
    for (const k of kindsOf(level)) assert.ok(kinds.has(`${level}:${k}`), `kind ${level}:${k} never drawn`);
  for (const p of problems) {
    assert.equal(p.answer, solveText(p.text), `${p.text}`);
    assert.ok(p.text.length <= 80, `problem too long: ${p.text}`);
    assert.ok(
      (!p.answer.startsWith('-') && p.answer !== '0') || p.kind === 'mod' || p.kind === 'powMod',
      `unexpected answer ${p.answer} for ${p.text}`,
    );
  }
});

/** Every "a op b = c" chain written in a text must be true arithmetic. */
function checkEquations(text: string, where: string): number {
  let checked = 0;
  for (const m of text.matchAll(/(?<![\w/^(])(\d+(?:[+\-*/]\d+)+) = (\d+(?:\/\d+)?)(?![\d*/+^-])/g)) {
    assert.equal(show(evaluate(m[1])), show(evaluate(m[2])), `${where}: "${m[0]}" is false`);
    checked++;
  }
  return checked;
}

test('teacher traces are correct, end in the boxed answer and are several times longer than the short solution', () => {
  const problems = generateProblems({ seed: 12, count: 600, split: 'train' });
  const rng = new Rng(4);
  let longChars = 0;
  let shortChars = 0;
  let equations = 0;
  for (const p of problems) {
    const trace = teacherTrace(p, rng);
    const short = shortSolution(p);
    assert.match(trace, /^<think>\n[\s\S]+\n<\/think>\n\n/);
    assert.match(trace, /(verify|check|Check)/);
    // One line per column of the longer operand, each with its carry.
    const columns = trace.match(/^[a-z-]+: .* = \d+, write \d carry \d$/gm) ?? [];
    assert.equal(columns.length, Math.max(...(p.text.match(/\d+/g) ?? []).map((n) => n.length)), `${p.text}: ${trace}`);
    assert.equal(lastBoxed(trace), p.answer);
    assert.equal(lastBoxed(short), p.answer);
    assert.equal(trace.split('</think>')[1].match(/\\boxed/g)?.length, 1);
    equations += checkEquations(trace, p.text) + checkEquations(short, p.text);
    longChars += trace.length;
    shortChars += short.length;
  }
  assert.throws(() => checkEquations('so 3+4 = 8.', 'self-test'), /is false/); // the checker can fail
  assert.ok(equations > 1500, `only ${equations} equations checked`);
  assert.ok(longChars > 4 * shortChars, `traces ${longChars} chars vs short ${shortChars}`);
});

test('train and held-out splits never share a problem; generation is seeded', () => {
  const train = generateProblems({ seed: 1, count: 3000, split: 'train' });
  const test_ = generateProblems({ seed: 1, count: 400, split: 'test' });
  const trainTexts = new Set(train.map((p) => p.text));
  assert.equal(trainTexts.size, 3000);
  for (const p of test_) assert.ok(!trainTexts.has(p.text), `held-out problem in train: ${p.text}`);
  for (const p of test_) assert.equal(splitOf(p.text), 'test');
  // The held-out split covers every level.
  for (const level of LEVELS) assert.ok(test_.some((p: Problem) => p.level === level));
  assert.deepEqual(builtinRows('train', 50, 5), builtinRows('train', 50, 5));
  assert.notDeepEqual(builtinRows('train', 50, 5), builtinRows('train', 50, 6));
  // Level weights are honoured: all-easy gives only level 1.
  assert.ok(
    generateProblems({ seed: 2, count: 100, split: 'train', levelWeights: [1, 0, 0, 0, 0] }).every(
      (p) => p.level === 1,
    ),
  );
});

test('the written dataset goes through the paper-format loader', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'red-builtin-'));
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
  const dir = mkdtempSync(path.join(tmpdir(), 'red-builtin-cli-'));
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
});
