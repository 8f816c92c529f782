// The verifier against the hand-written table (test/reward/cases.ts): every category of
// equivalence, equal and not equal, through the public verify()/verifyBatch() with the CAS pool.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { verify, verifyBatch, accuracyReward, closeVerifier, configureVerifier } from '../../src/reward/index.ts';
import { CASES } from './cases.ts';

configureVerifier({ poolSize: 2 });
after(closeVerifier);

function response(pred: string, category: string): string {
  return category === 'extract' || pred.includes('\\boxed')
    ? pred
    : `Some reasoning. So the answer is $\\boxed{${pred}}$.`;
}

test('hand-written table: every case gets its expected verdict', async () => {
  assert.ok(CASES.length >= 150, `only ${CASES.length} cases`);
  // Generous timeout: this table checks verdicts, not speed, and CI cores are busy.
  const results = await verifyBatch(
    CASES.map(([gold, pred, , cat]) => ({ gold, pred: response(pred, cat) })),
    { timeoutMs: 5000 },
  );
  const wrong: string[] = [];
  results.forEach((r, i) => {
    const [gold, pred, expected, category] = CASES[i];
    if (r.equal !== expected)
      wrong.push(
        `[${category}] gold ${JSON.stringify(gold)} pred ${JSON.stringify(pred)}: expected ${expected}, got ${JSON.stringify(r)}`,
      );
  });
  const categories = new Set(CASES.map((c) => c[3]));
  console.log(`${CASES.length} cases in ${categories.size} categories, ${wrong.length} wrong`);
  assert.deepEqual(wrong, []);
});

test('verdicts are the same when the gold is given as a list, as a number, or as a solution', async () => {
  // OlympiadBench: any element of the list counts.
  assert.equal((await verify(['$3$', '$x=4$'], '\\boxed{4}')).equal, true);
  assert.equal((await verify(['$3$', '$x=4$'], '\\boxed{5}')).equal, false);
  // AMC/AIME floats.
  assert.equal((await verify(142.0 as unknown as string, '\\boxed{142}')).equal, true);
  // Minerva: the gold is a full solution; its last box is the answer.
  const solution = 'First \\boxed{7} was wrong; the mass is $\\boxed{1.2 \\times 10^{3}}$ kg.';
  assert.equal((await verify(solution, 'so \\boxed{1200}')).equal, true);
  assert.equal((await verify(solution, 'so \\boxed{7}')).equal, false);
});

test('accuracyReward is 1 for a correct response and 0 otherwise', async () => {
  assert.equal(await accuracyReward('<think>2+2</think>The answer is \\boxed{4}.', '4'), 1);
  assert.equal(await accuracyReward('<think>2+2</think>The answer is \\boxed{5}.', '4'), 0);
  assert.equal(await accuracyReward('no answer at all\n...', '4'), 0);
});

test('reasons: no_answer, not_equal, extracted answer reported', async () => {
  assert.deepEqual(await verify('5', 'I am not sure.\nMaybe later.'), { equal: false, reason: 'no_answer' });
  const r = await verify('5', '\\boxed{6}');
  assert.equal(r.equal, false);
  assert.equal(r.reason, 'not_equal');
  assert.equal(r.extracted, '6');
  assert.deepEqual(await verify('5', '\\boxed{5}'), {
    equal: true,
    extracted: '5',
    target: 'boxed',
    rule: 'identical after normalisation',
  });
});
