// Every gold answer of the real benchmark files (../shared/data/benchmarks) must verify as equal to
// itself written in a box, with the identical-spelling shortcuts off so that each leaf really goes
// through parsing and the CAS. Integer golds must also differ from their successor.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { verifyBatch, closeVerifier, configureVerifier, goldAnswer, normalizeLatex } from '../../src/reward/index.ts';
import { parseAnswer } from '../../src/reward/parse.ts';
import { benchmarkPath } from '../helpers/paths.ts';

configureVerifier({ poolSize: 2 });
after(closeVerifier);

// file → how its gold field is read (SOURCES.md there describes the shapes).
const FILES: Record<string, (row: Record<string, unknown>) => unknown> = {
  'math500.jsonl': (r) => r.answer,
  'aime24.jsonl': (r) => r.answer,
  'aime25.jsonl': (r) => r.answer,
  'amc23.jsonl': (r) => r.answer,
  'amc83.jsonl': (r) => r.answer,
  'aime25_luffy.jsonl': (r) => r.answer,
  'minerva_math.jsonl': (r) => r.solution,
  'olympiadbench.jsonl': (r) => r.final_answer,
  'luffy_eval_unique.jsonl': (r) => r.answer,
};

type GoldField = string | number | string[];

function loadGolds(): Array<{ file: string; raw: GoldField }> {
  const out: Array<{ file: string; raw: GoldField }> = [];
  for (const [file, field] of Object.entries(FILES)) {
    const lines = readFileSync(benchmarkPath(file), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '');
    for (const line of lines) out.push({ file, raw: field(JSON.parse(line) as Record<string, unknown>) as GoldField });
  }
  return out;
}

test('every benchmark gold answer verifies against itself in \\boxed{}', async () => {
  const all = loadGolds();
  // Identical golds (the LUFFY set repeats the others) are checked once.
  const seen = new Map<string, { file: string; raw: GoldField; gold: string }>();
  const empty: string[] = [];
  for (const g of all) {
    const gold = goldAnswer(g.raw)[0];
    if (gold === undefined) empty.push(`${g.file}: ${JSON.stringify(g.raw)}`);
    else if (!seen.has(gold)) seen.set(gold, { ...g, gold });
  }
  const unique = [...seen.values()];
  const t = performance.now();
  const results = await verifyBatch(
    unique.map((u) => ({ gold: u.raw, pred: `The answer is $\\boxed{${u.gold}}$.` })),
    { timeoutMs: 5000, noShortcuts: true },
  );
  const failed = results.flatMap((r, i) =>
    r.equal ? [] : [`${unique[i].file}: ${JSON.stringify(unique[i].gold)} → ${JSON.stringify(r)}`],
  );
  console.log(
    `${all.length} gold fields (${unique.length} distinct) in ${Object.keys(FILES).length} files; ${failed.length} fail, ${empty.length} empty; ${(performance.now() - t).toFixed(0)} ms`,
  );
  assert.deepEqual(empty, []);
  assert.deepEqual(failed, []);
});

test('integer benchmark golds differ from their successor', async () => {
  const ints = [
    ...new Set(
      loadGolds()
        .flatMap((g) => goldAnswer(g.raw))
        .filter((g) => /^-?\d+$/.test(g)),
    ),
  ];
  assert.ok(ints.length > 300, `only ${ints.length} integer golds`);
  const results = await verifyBatch(ints.map((g) => ({ gold: g, pred: `\\boxed{${(BigInt(g) + 1n).toString()}}` })));
  const wrong = results.flatMap((r, i) => (r.equal ? [ints[i]] : []));
  assert.deepEqual(wrong, []);
});

test('every symbolic benchmark gold differs from itself plus one', async () => {
  // Catches a verifier that calls unparseable or huge answers equal: 2^{1009} vs 2^{1009}+1 needs
  // exact arithmetic, I(0) needs an application, not 0·I.
  const exprs = [...new Set(loadGolds().flatMap((g) => goldAnswer(g.raw)))].filter(
    (g) => parseAnswer(normalizeLatex(g))?.kind === 'expr',
  );
  assert.ok(exprs.length > 150, `only ${exprs.length} symbolic golds`);
  const results = await verifyBatch(
    exprs.map((g) => ({ gold: g, pred: `\\boxed{\\left(${g}\\right)+1}` })),
    { timeoutMs: 5000 },
  );
  const wrong = results.flatMap((r, i) => (r.equal ? [exprs[i]] : []));
  console.log(`${exprs.length} symbolic golds, ${wrong.length} equal to themselves plus one`);
  assert.deepEqual(wrong, []);
});
