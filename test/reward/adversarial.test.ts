// Inputs meant to break the verifier: hangs in the CAS, pathological nesting, huge responses,
// broken LaTeX, garbage. verify() must never throw and must answer within its timeout plus a
// margin (measured with the pool warm: a worker's start-up is not comparison time).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  verify,
  closeVerifier,
  configureVerifier,
  warmVerifier,
  extractAnswer,
  goldAnswer,
} from '../../src/reward/index.ts';
import { Rng } from '../../src/util/rng.ts';

const TIMEOUT_MS = 1000;
// Main-thread work plus message passing on a busy 2-core CI machine.
const MARGIN_MS = 1000;

// One worker: every restart after a timeout costs a worker start-up, and the cases run one by one.
configureVerifier({ poolSize: 1 });
before(warmVerifier);
after(closeVerifier);

async function timed(gold: string, pred: string): Promise<{ r: Awaited<ReturnType<typeof verify>>; ms: number }> {
  await warmVerifier();
  const t = performance.now();
  const r = await verify(gold, pred, { timeoutMs: TIMEOUT_MS });
  return { r, ms: performance.now() - t };
}

test('a CAS comparison that hangs returns reason timeout within timeout + margin', async () => {
  // 9^(9^9) has 369,693,100 digits: comparing it exactly with its successor does not finish.
  for (const [gold, pred] of [
    ['9^{9^{9}}', '\\boxed{9^{9^{9}}+1}'],
    ['2', '\\boxed{9^{9^{9^{9}}}}'],
  ]) {
    const { r, ms } = await timed(gold, pred);
    console.log(`${gold} vs ${pred}: ${JSON.stringify(r)} in ${ms.toFixed(0)} ms`);
    assert.equal(r.equal, false);
    assert.equal(r.reason, 'timeout');
    assert.ok(ms >= TIMEOUT_MS * 0.9, `returned after ${ms} ms, before its timeout`);
    assert.ok(ms < TIMEOUT_MS + MARGIN_MS, `took ${ms} ms`);
  }
  // A shorter timeoutMs is honoured.
  await warmVerifier();
  const t = performance.now();
  assert.equal((await verify('2', '\\boxed{9^{9^{9^{9}}}}', { timeoutMs: 200 })).reason, 'timeout');
  assert.ok(performance.now() - t < 200 + MARGIN_MS);
  // The pool replaced the hung workers: ordinary symbolic work goes on.
  assert.equal((await verify('x^2-1', '\\boxed{(x-1)(x+1)}')).equal, true);
});

test('a gold list: one gold timing out does not hide a later one that matches', async () => {
  await warmVerifier();
  const r = await verify(['9^{9^{9^{9}}}', '7'], '\\boxed{7}', { timeoutMs: 300 });
  assert.equal(r.equal, true, JSON.stringify(r));
});

test('one budget per verify: a set of hanging elements still ends within timeout + margin', async () => {
  const { r, ms } = await timed('\\{1,2,3\\}', '\\boxed{\\{9^{9^{9^{9}}}, 9^{9^{9^{8}}}, 9^{9^{9^{7}}}\\}}');
  assert.equal(r.equal, false);
  assert.ok(ms < TIMEOUT_MS + MARGIN_MS, `took ${ms} ms`);
});

test('pathological inputs: no throw, a sensible verdict, within timeout + margin', async () => {
  const nested = '('.repeat(1000) + '1' + ')'.repeat(1000);
  const cases: Array<[string, string, boolean | null, string]> = [
    ['1', `\\boxed{${nested}}`, null, '1,000 nested parentheses'],
    ['5', 'x'.repeat(100_000) + ' so \\boxed{5}', true, '100 KB response'],
    ['5', 'y '.repeat(50_000) + ' \\boxed{6}', false, '100 KB response, wrong'],
    ['5', '\\boxed{}', false, 'empty box'],
    ['5', 'The final answer is '.repeat(5000) + '5', true, 'a repeated answer phrase'],
    ['5', '\\boxed{'.repeat(20000), false, 'boxes never closed'],
    ['5', `\\boxed{${'(1,'.repeat(2000)}5${')'.repeat(2000)}}`, false, 'tuples nested 2,000 deep'],
    ['5', `\\boxed{${'\\frac{1}{'.repeat(900)}2${'}'.repeat(900)}}`, false, 'fractions nested 900 deep'],
    ['5', '\\boxed{\\frac{5}{1}', false, 'unbalanced brace (cut off inside the box)'],
    ['5', '\\boxed{5}}}}', true, 'extra closing braces'],
    ['\\frac{1}{', '\\boxed{2}', false, 'unbalanced gold'],
    ['5', '\\boxed{NaN}', false, 'NaN'],
    ['5', '\\boxed{\\text{}}', false, 'empty \\text{}'],
    ['yes', '\\boxed{\\text{yes}}', true, 'answer only in \\text{}'],
    ['-5', '\\boxed{\u22125}', true, 'unicode minus'],
    ['x^{100000}', '\\boxed{x^{100001}}', false, 'huge exponents'],
    ['10^{10^{10}}', '\\boxed{10^{10^{10}}+1}', false, 'a number too large to build'],
    ['5', '\\boxed{\\frac{1}{0}}', false, 'division by zero'],
    ['1/0', '\\boxed{5}', false, 'gold divides by zero'],
    ['5', '\\boxed{\\begin{pmatrix}1&2\\\\}', false, 'broken matrix'],
    ['5', '\\boxed{\\left(\\right.}', false, 'stray delimiters'],
    ['5', `\\boxed{${'\\{'.repeat(500)}}`, false, 'escaped braces never closed'],
    ['5', `\\boxed{${'1,'.repeat(5000)}1}`, false, '5,001-element list'],
    [
      Array.from({ length: 1500 }, (_, i) => i).join(','),
      `\\boxed{${Array.from({ length: 1500 }, (_, i) => 1499 - i).join(',')}}`,
      true,
      'two 1,500-element lists, one reversed',
    ],
    [
      Array.from({ length: 1500 }, (_, i) => i).join(','),
      `\\boxed{${Array.from({ length: 1500 }, (_, i) => i + 1).join(',')}}`,
      false,
      'two 1,500-element lists, shifted',
    ],
    [
      Array.from({ length: 200 }, (_, i) => i).join(','),
      `\\boxed{${Array.from({ length: 200 }, (_, i) => `${i}.0`).join(',')}}`,
      true,
      '200 numbers spelled differently',
    ],
  ];
  for (const [gold, pred, expected, what] of cases) {
    const { r, ms } = await timed(gold, pred);
    if (expected !== null) assert.equal(r.equal, expected, `${what}: ${JSON.stringify(r).slice(0, 200)}`);
    assert.ok(ms < TIMEOUT_MS + MARGIN_MS, `${what}: took ${ms} ms`);
  }
});

test('random garbage never throws and never exceeds timeout + margin', async () => {
  const rng = new Rng(12345);
  const tokens = [
    '\\frac',
    '{',
    '}',
    '(',
    ')',
    '[',
    ']',
    '\\{',
    '\\}',
    '^',
    '_',
    '1',
    '2',
    'x',
    ',',
    '=',
    '\\le',
    '\\sqrt',
    '\\text{',
    '\\left(',
    '\\right)',
    '\\boxed{',
    '$',
    '\\',
    '&',
    '\\\\',
    '%',
    '\\infty',
    '\\cup',
    '-',
    '.',
    ' ',
    'e',
    '\\pi',
    'A',
    '(B)',
    '\\begin{pmatrix}',
    '\\end{pmatrix}',
  ];
  const pick = (): string => tokens[rng.int(tokens.length)];
  let slowest = 0;
  for (let i = 0; i < 60; i++) {
    const n = 1 + rng.int(25);
    let gold = '';
    let pred = '\\boxed{';
    for (let k = 0; k < n; k++) gold += pick();
    for (let k = 0; k < n; k++) pred += pick();
    pred += '}';
    const t = performance.now();
    const r = await verify(gold, pred, { timeoutMs: TIMEOUT_MS });
    slowest = Math.max(slowest, performance.now() - t);
    assert.equal(typeof r.equal, 'boolean');
  }
  console.log(`slowest random case: ${slowest.toFixed(0)} ms`);
  assert.ok(slowest < TIMEOUT_MS + MARGIN_MS + 1500, `slowest ${slowest} ms`); // may include a worker restart
});

test('verdicts do not depend on what the workers compared before', async () => {
  // The engine declares `f` a function on meeting f(x)=…; the next answer's f^2 must still read as a power.
  // (The pool has one worker, so both comparisons run in the same engine.)
  assert.equal((await verify('f(x)=x^2+1', '\\boxed{f(x)=1+x^2}')).equal, true);
  assert.equal((await verify('f^2', '\\boxed{f\\cdot f}')).equal, true);
  assert.equal((await verify('f^2', '\\boxed{2f}')).equal, false);
});

test('inputs of the wrong type are errors, not exceptions', async () => {
  const r = await verify(undefined as unknown as string, '\\boxed{5}');
  assert.equal(r.equal, false);
  const r2 = await verify('5', null as unknown as string);
  assert.equal(r2.equal, false);
});

test('extraction stays linear on texts built to make its searches quadratic', () => {
  const texts: Record<string, string> = {
    'the word answer 20,000 times': 'answer '.repeat(20_000),
    '50,000 unclosed \\[': '\\['.repeat(50_000),
    '50,000 unclosed \\(': '\\('.repeat(50_000),
    '20,000 "final answer" without "is"': 'final answer '.repeat(20_000),
    '30,000 operators': '1+ '.repeat(30_000),
  };
  for (const [what, text] of Object.entries(texts)) {
    const t = performance.now();
    extractAnswer(text);
    const ms = performance.now() - t;
    assert.ok(ms < 300, `${what}: ${ms.toFixed(0)} ms`);
  }
  // Boxes join as Math-Verify joins them, a repeated content once; 10,000 of them in one pass.
  assert.equal(extractAnswer('\\boxed{1} and '.repeat(10_000)), '1');
  const many = Array.from({ length: 10_000 }, (_, i) => `\\boxed{${i}} and `).join('');
  const t = performance.now();
  assert.equal(extractAnswer(many)?.split(',').length, 10_000);
  assert.ok(performance.now() - t < 300, `10,000 joined boxes: ${(performance.now() - t).toFixed(0)} ms`);
});

test('extractAnswer and goldAnswer', () => {
  assert.equal(extractAnswer('\\boxed{\\frac{1}{2}}. We check it once more to find \\boxed{\\{1,2\\}}'), '\\{1,2\\}');
  assert.equal(extractAnswer('\\boxed{\\frac{1}{2}} then \\boxed{\\{1,2\\}}'), '\\frac{1}{2},\\{1,2\\}');
  assert.equal(extractAnswer('<think>\\boxed{1}</think>no box after think'), null);
  assert.equal(extractAnswer('<think>\\boxed{1}</think>\\boxed{2}'), '2');
  assert.equal(extractAnswer('\\fbox{7}'), '7');
  assert.equal(extractAnswer('\\boxed {7}'), '7');
  assert.equal(extractAnswer('\\boxed{}'), null);
  assert.equal(extractAnswer('$\\boxed{3'), null);
  assert.equal(extractAnswer('The final answer is $\\frac{3}{4}$. Done.'), '\\frac{3}{4}');
  assert.deepEqual(goldAnswer(142.0), ['142']);
  assert.deepEqual(goldAnswer('142.0'), ['142']);
  assert.deepEqual(goldAnswer(1.9), ['1.9']);
  assert.deepEqual(goldAnswer(['$\\frac{4}{9}$']), ['\\frac{4}{9}']);
  assert.deepEqual(goldAnswer(['$90^{\\circ}$,$60^{\\circ}$']), ['90^{\\circ},60^{\\circ}']);
  assert.deepEqual(goldAnswer('so $x = \\boxed{12}$ cm.'), ['12']);
  assert.deepEqual(goldAnswer('\\$18.90'), ['\\$18.90']);
  assert.deepEqual(goldAnswer(''), []);
});
