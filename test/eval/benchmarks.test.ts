import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  benchmarkByName,
  BENCHMARKS,
  loadBenchmark,
  readGold,
  resolveBenchmark,
  stripDollars,
} from '../../src/eval/benchmarks.ts';
import { benchmarkPath } from '../helpers/paths.ts';

const DATA = benchmarkPath();
const line = (file: string, row: number): string => readFileSync(benchmarkPath(file), 'utf8').split('\n')[row - 1];

test('row counts of the real files match SOURCES.md', async () => {
  const expected: Record<string, number> = {
    math500: 500,
    aime24: 30,
    aime25: 30,
    amc: 83,
    minerva: 272,
    olympiad: 675,
    amc23: 40,
  };
  for (const spec of BENCHMARKS) {
    const problems = await loadBenchmark(spec, DATA);
    assert.equal(problems.length, expected[spec.name], spec.name);
    // Every gold of the shipped files is readable by the loader's rules.
    assert.deepEqual(
      problems.filter((p) => p.gold === null).map((p) => p.row),
      [],
      `${spec.name} golds`,
    );
  }
});

test('gold answers and fields of a few rows, checked against the file text', async () => {
  const math = await loadBenchmark(benchmarkByName('math500'), DATA);
  assert.equal(math[0].gold, '\\left( 3, \\frac{\\pi}{2} \\right)');
  assert.equal(math[0].level, '2');
  assert.ok(line('math500.jsonl', 500).includes('"answer": "106^\\\\circ"'));
  assert.equal(math[499].gold, '106^\\circ');
  assert.equal(math[499].level, '4');

  const aime24 = await loadBenchmark(benchmarkByName('aime24'), DATA);
  assert.ok(aime24[0].problem.startsWith('Every morning Aya goes for a $9$-kilometer-long walk'));
  assert.equal(aime24[0].gold, '204');
  assert.equal(aime24[0].id, '60');

  // AIME25 keeps the text under `question` and the answer as a float (`240.0` in the file).
  const aime25 = await loadBenchmark(benchmarkByName('aime25'), DATA);
  assert.ok(line('aime25.jsonl', 30).endsWith('"answer": 240.0}'));
  assert.equal(aime25[29].gold, '240');
  assert.ok(aime25[0].problem.startsWith('Find the sum of all integer bases $b>9$'));

  // AMC83's answers are strings such as "142.0"; kept verbatim for the verifier.
  const amc = await loadBenchmark(benchmarkByName('amc'), DATA);
  assert.equal(amc[0].gold, '142.0');
  assert.equal(amc[82].gold, '8.0');

  // Minerva: the last \boxed{} of the solution, nested braces kept.
  const minerva = await loadBenchmark(benchmarkByName('minerva'), DATA);
  assert.equal(minerva[0].gold, '1.6');
  assert.equal(minerva[3].gold, '20.39');
  assert.equal(minerva[25].gold, '\\frac{a M^{1 / 3}}{G M^{2 / 3}+b}');
  assert.equal(minerva[271].gold, '10.1');

  // OlympiadBench: `question`, and final_answer[0] without its $ delimiters.
  const olympiad = await loadBenchmark(benchmarkByName('olympiad'), DATA);
  assert.equal(olympiad[0].gold, '2');
  assert.ok(olympiad[0].problem.startsWith('Xenia and Sergey play the following game.'));
  assert.ok(line('olympiadbench.jsonl', 14).includes('"final_answer": ["$69$,$84$"]'));
  assert.equal(olympiad[13].gold, '69, 84');
});

test('--limit keeps the first K problems', async () => {
  const p = await loadBenchmark(benchmarkByName('olympiad'), DATA, 3);
  assert.deepEqual(
    p.map((x) => x.index),
    [0, 1, 2],
  );
});

test('stripDollars and gold rules on hand cases', () => {
  assert.deepEqual(readGold({ s: 'a \\boxed{1} then \\boxed{\\frac{1}{2}} end' }, { kind: 'lastBoxed', path: 's' }), {
    gold: '\\frac{1}{2}',
  });
  assert.ok('error' in readGold({ s: 'cut off \\boxed{12' }, { kind: 'lastBoxed', path: 's' }));
  assert.equal(stripDollars('$\\frac{32}{9}$,$\\frac{1}{2}$'), '\\frac{32}{9}, \\frac{1}{2}');
  assert.deepEqual(readGold({ answer: 142.0 }, { kind: 'field', path: 'answer' }), { gold: '142' });
  assert.deepEqual(readGold({ answer: ['1', 2] }, { kind: 'field', path: 'answer' }), { gold: ['1', '2'] });
  assert.ok('error' in readGold({ answer: '  ' }, { kind: 'field', path: 'answer' }));
  assert.ok('error' in readGold({}, { kind: 'field', path: 'answer' }));
  assert.ok('error' in readGold({ solution: 'the answer is 3' }, { kind: 'lastBoxed', path: 'solution' }));
  assert.deepEqual(readGold({ rm: { gt: '5' } }, { kind: 'field', path: 'rm.gt' }), { gold: '5' });
});

test('benchmarks given as files: name=path, bare path, field mapping, boxed: answers', () => {
  const a = resolveBenchmark('heldout=/tmp/h.jsonl');
  assert.equal(a.name, 'heldout');
  assert.equal(a.file, '/tmp/h.jsonl');
  assert.equal(a.levelField, 'level');
  assert.equal(resolveBenchmark('runs/x/test.parquet').name, 'test');
  const b = resolveBenchmark('m=/d/minerva.jsonl', { problem: 'q', answer: 'boxed:solution', level: 'lvl' }, 4);
  assert.deepEqual(b.gold, { kind: 'lastBoxed', path: 'solution' });
  assert.equal(b.problemField, 'q');
  assert.equal(b.samples, 4);
  assert.throws(() => resolveBenchmark('nosuch'), /unknown benchmark 'nosuch'/);
  assert.equal(resolveBenchmark('OlympiadBench').name, 'olympiad');
});

test('a Parquet file with a dotted field mapping (the LUFFY validation set) loads through the same code', async () => {
  const spec = resolveBenchmark(`luffy=${benchmarkPath('luffy_valid.parquet')}`, {
    problem: 'prompt.1.content',
    answer: 'reward_model.ground_truth',
    level: 'data_source',
  });
  const problems = await loadBenchmark(spec, undefined);
  assert.equal(problems.length, 2019);
  const perSource: Record<string, number> = {};
  for (const p of problems) perSource[p.level ?? '?'] = (perSource[p.level ?? '?'] ?? 0) + 1;
  // SOURCES.md: olympiad_bench 675, math 500, amc 332 (=83×4), minerva 272, aime 240 (=30×8).
  assert.deepEqual(perSource, { aime: 240, math: 500, olympiad_bench: 675, amc: 332, minerva: 272 });
  assert.ok(problems[0].problem.startsWith('Every morning Aya goes for a $9$-kilometer-long walk'));
  assert.equal(problems[0].gold, '204');
});
