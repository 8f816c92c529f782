import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadBenchmark, resolveBenchmark, type EvalProblem } from '../../src/eval/benchmarks.ts';
import { lastBoxed } from '../../src/reward/extract.ts';
import {
  samplingFor,
  type AnswerVerifier,
  type Completion,
  type GenerationRequest,
  type Generator,
} from '../../src/eval/protocol.ts';
import type { EvalResults } from '../../src/eval/results.ts';
import { runEval, type EvalJob } from '../../src/eval/run.ts';
import { assertClose } from '../helpers/close.ts';
import { tempDir } from '../helpers/tmp.ts';

const EXACT = { atol: 1e-12 }; // sums of a few float64 fractions

const ROOT = tempDir('red-eval-test-');

// A verifier that needs no math: the last \boxed{} must equal a gold exactly. A gold spelled
// "???" stands for one the real verifier cannot parse.
const exactVerifier: AnswerVerifier = {
  async verify(gold, response) {
    const extracted = lastBoxed(response) ?? null;
    const golds = Array.isArray(gold) ? gold : [gold];
    if (golds.includes('???')) return { equal: false, reason: 'gold does not parse' };
    if (extracted === null) return { equal: false, reason: 'no answer' };
    return { equal: golds.includes(extracted), extracted };
  },
};

const problemOf = (r: GenerationRequest): string => {
  if (!('chat' in r.prompt)) throw new Error('expected a chat prompt');
  const user = r.prompt.chat[1].content;
  return user.slice(0, user.indexOf('\n'));
};

/**
 * Answers chosen per problem: `answers[problem][j]` is sample j's boxed answer, and its length in
 * tokens is 10·(j+1) + the problem's `extra` tokens, so Acc and LEN can be worked out by hand.
 */
function fakeGenerator(
  table: Record<string, { answers: string[]; extra: number }>,
  calls: GenerationRequest[][] = [],
): Generator {
  return async (requests, opts) => {
    calls.push([...requests]);
    assert.deepEqual(opts.stopStrings, ['<|im_end|>', '<|endoftext|>']);
    return requests.map((r): Completion[] => {
      const row = table[problemOf(r)];
      assert.equal(row.answers.length, r.n, `n for ${problemOf(r)}`);
      return row.answers.map((a, j) => {
        opts.onSequenceDone?.();
        return {
          text: `work… so \\boxed{${a}}`,
          tokens: 10 * (j + 1) + row.extra,
          finishReason: j === 3 ? 'length' : 'stop',
        };
      });
    });
  };
}

function writeJsonl(file: string, rows: object[]): string {
  writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
}

/** Two benchmarks as files: A at n=4 (3 problems), B at n=1 with levels (4 problems). */
async function setup(
  dir: string,
): Promise<{ jobs: EvalJob[]; table: Record<string, { answers: string[]; extra: number }> }> {
  const a = writeJsonl(path.join(dir, 'a.jsonl'), [
    { problem: 'A0', answer: '1' },
    { problem: 'A1', answer: '2' },
    { problem: 'A2', answer: 3.0 },
  ]);
  const b = writeJsonl(path.join(dir, 'b.jsonl'), [
    { problem: 'B0', answer: '5', level: 1 },
    { problem: 'B1', answer: '6', level: 1 },
    { problem: 'B2', answer: '7', level: 2 },
    { problem: 'B3', answer: '8', level: 2 },
  ]);
  const table = {
    A0: { answers: ['0', '0', '0', '0'], extra: 0 }, // 0 of 4
    A1: { answers: ['2', '9', '9', '9'], extra: 0 }, // 1 of 4
    A2: { answers: ['3', '3', '3', '3'], extra: 0 }, // 4 of 4
    B0: { answers: ['5'], extra: 0 }, // right, 10 tokens
    B1: { answers: ['0'], extra: 10 }, // wrong, 20 tokens
    B2: { answers: ['7'], extra: 20 }, // right, 30 tokens
    B3: { answers: ['8'], extra: 30 }, // right, 40 tokens
  };
  const jobs: EvalJob[] = [];
  for (const [arg, n] of [
    [`A=${a}`, 4],
    [`B=${b}`, 1],
  ] as const) {
    const spec = resolveBenchmark(arg, undefined, n);
    jobs.push({
      spec,
      file: spec.file,
      problems: await loadBenchmark(spec, undefined),
      sampling: samplingFor(spec, { maxTokens: 64 }),
    });
  }
  return { jobs, table };
}

test('Acc, LEN, per-level accuracy, pass@k and overall from controlled answers', async () => {
  const dir = mkdtempSync(path.join(ROOT, 'red-eval-'));
  const { jobs, table } = await setup(dir);
  const calls: GenerationRequest[][] = [];
  const r = await runEval({
    outDir: dir,
    model: 'fake',
    jobs,
    generate: fakeGenerator(table, calls),
    verifier: exactVerifier,
    prompt: 'qwen-boxed',
    seed: 1,
    chunkSamples: 1000,
  });
  // One call: every sample of every problem in one batch (the benchmarks differ in n only).
  assert.equal(calls.length, 1);
  assert.deepEqual(
    calls[0].map((q) => q.n),
    [4, 4, 4, 1, 1, 1, 1],
  );
  const [A, B] = r.benchmarks;
  // A: (0/4 + 1/4 + 4/4)/3 = 1.25/3; every problem has lengths 10,20,30,40 → LEN 25.
  assertClose(A.acc, 1.25 / 3, EXACT, 'A acc');
  assertClose(A.len, 25, EXACT, 'A len');
  assertClose(A.clippedFrac, 0.25, EXACT, 'A clipped (the 4th sample of each problem)');
  // pass@2: A0 0, A1 1 − C(3,2)/C(4,2) = 1/2, A2 1 → 1.5/3.
  assertClose(A.passAtK[1], 1.5 / 3, EXACT, 'A pass@2');
  assertClose(A.passAtK[3], 2 / 3, EXACT, 'A pass@4');
  assert.equal(A.passAtK.length, 4);
  // B: 3 of 4 right; lengths 10,20,30,40 → 25; level 1: 1 of 2, LEN 15; level 2: 2 of 2, LEN 35.
  assertClose(B.acc, 0.75, EXACT, 'B acc');
  assertClose(B.len, 25, EXACT, 'B len');
  assert.deepEqual(B.byLevel, { '1': { problems: 2, acc: 0.5, len: 15 }, '2': { problems: 2, acc: 1, len: 35 } });
  // Overall: mean of per-benchmark Acc, (1.25/3 + 0.75)/2.
  assertClose(r.overall.acc, (1.25 / 3 + 0.75) / 2, EXACT, 'overall acc');
  assertClose(r.overall.len, 25, EXACT, 'overall len');
  assertClose(r.metrics['eval/A/acc'], 1.25 / 3, EXACT, 'metric eval/A/acc');
  assertClose(r.metrics['eval/A/pass@4'], 2 / 3, EXACT, 'metric eval/A/pass@4');
  assertClose(r.metrics['eval/overall/len'], 25, EXACT, 'metric eval/overall/len');
  assert.equal(r.throughput?.problems, 7);
  assert.equal(r.throughput?.samples, 16);

  // The prompt is the paper's qwen-boxed one.
  const req = calls[0][0];
  assert.deepEqual(req.prompt, {
    chat: [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'A0\nPlease reason step by step, and put your final answer within \\boxed{}.' },
    ],
  });

  const lines = readFileSync(path.join(dir, 'samples.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(lines.length, 7);
  assert.deepEqual(
    lines[1].samples.map((s: { extracted: string; correct: boolean; tokens: number }) => [
      s.extracted,
      s.correct,
      s.tokens,
    ]),
    [
      ['2', true, 10],
      ['9', false, 20],
      ['9', false, 30],
      ['9', false, 40],
    ],
  );
  const md = readFileSync(path.join(dir, 'results.md'), 'utf8');
  assert.match(md, /\| A \| avg@4, T=0.6, top-p=1, ≤64 tok \| 3 \| 41.67 \| 25 \| 25.00% \|/);
  assert.match(md, /\| \*\*Overall\*\* \| mean of 2 \| \| \*\*58.33\*\* \| \*\*25\*\* \| \|/);
  assert.ok(existsSync(path.join(dir, 'results.json')));
});

function withoutThroughput(r: EvalResults): EvalResults {
  const { throughput: _t, ...rest } = r;
  return rest as EvalResults;
}

test('a run interrupted mid-way (crash, truncated last line) resumes to the same results', async () => {
  const data = mkdtempSync(path.join(ROOT, 'red-eval-data-'));
  const whole = mkdtempSync(path.join(ROOT, 'red-eval-whole-'));
  const { jobs, table } = await setup(data);
  const full = await runEval({
    outDir: whole,
    model: 'fake',
    jobs,
    generate: fakeGenerator(table),
    verifier: exactVerifier,
    prompt: 'qwen-boxed',
    seed: 1,
    chunkSamples: 4,
  });

  const dir = mkdtempSync(path.join(ROOT, 'red-eval-resume-'));
  const { jobs: jobs2 } = await setup(data);
  // Crash in the third generator call: the first two chunks (A0, A1) are on disk.
  let calls = 0;
  const inner = fakeGenerator(table);
  const crashing: Generator = async (req, opts) => {
    if (++calls === 3) throw new Error('killed');
    return inner(req, opts);
  };
  await assert.rejects(
    runEval({
      outDir: dir,
      model: 'fake',
      jobs: jobs2,
      generate: crashing,
      verifier: exactVerifier,
      prompt: 'qwen-boxed',
      seed: 1,
      chunkSamples: 4,
    }),
    /killed/,
  );
  const samplesFile = path.join(dir, 'samples.jsonl');
  assert.equal(readFileSync(samplesFile, 'utf8').trim().split('\n').length, 2);
  // The tables written after each chunk show the partial state: A0 (0/4) and A1 (1/4) scored.
  const partial = JSON.parse(readFileSync(path.join(dir, 'results.json'), 'utf8')) as EvalResults;
  assert.deepEqual(
    partial.benchmarks.map((b) => [b.scored, b.unfinished]),
    [
      [2, 1],
      [0, 4],
    ],
  );
  assertClose(partial.benchmarks[0].acc, 0.125, EXACT, 'partial A acc');
  // A write cut off mid-line: half of A2's record, no newline.
  const a2 = readFileSync(path.join(whole, 'samples.jsonl'), 'utf8').split('\n')[2];
  appendFileSync(samplesFile, a2.slice(0, a2.length >> 1));

  const seen: GenerationRequest[][] = [];
  const warnings: string[] = [];
  const { jobs: jobs3 } = await setup(data);
  const resumed = await runEval({
    outDir: dir,
    model: 'fake',
    jobs: jobs3,
    generate: fakeGenerator(table, seen),
    verifier: exactVerifier,
    prompt: 'qwen-boxed',
    seed: 1,
    chunkSamples: 4,
    onWarning: (w) => warnings.push(w),
  });
  assert.deepEqual(
    seen.flat().map(problemOf),
    ['A2', 'B0', 'B1', 'B2', 'B3'],
    'only the unfinished problems are generated',
  );
  assert.ok(warnings.some((w) => w.includes('dropped an unfinished last line')));
  assert.deepEqual(withoutThroughput(resumed), withoutThroughput(full));
  assert.equal(readFileSync(samplesFile, 'utf8'), readFileSync(path.join(whole, 'samples.jsonl'), 'utf8'));

  // Resuming with other sampling settings is refused, naming what changed.
  const { jobs: jobs4 } = await setup(data);
  jobs4[0].sampling = { ...jobs4[0].sampling, n: 8 };
  await assert.rejects(
    runEval({
      outDir: dir,
      model: 'fake',
      jobs: jobs4,
      generate: fakeGenerator(table),
      verifier: exactVerifier,
      prompt: 'qwen-boxed',
      seed: 1,
      chunkSamples: 4,
    }),
    /other settings \(A: .*"n":4.*→.*"n":8/,
  );
});

test('a gold answer that cannot be read or parsed is listed and warned about, not scored', async () => {
  const dir = mkdtempSync(path.join(ROOT, 'red-eval-gold-'));
  const file = writeJsonl(path.join(dir, 'g.jsonl'), [
    { problem: 'G0', answer: '4' },
    { problem: 'G1', answer: '' },
    { problem: 'G2', answer: '???' },
    { problem: 'G3' },
  ]);
  const spec = resolveBenchmark(`G=${file}`);
  const problems: EvalProblem[] = await loadBenchmark(spec, undefined);
  const warnings: string[] = [];
  const seen: GenerationRequest[][] = [];
  const r = await runEval({
    outDir: dir,
    model: 'fake',
    jobs: [{ spec, file, problems, sampling: samplingFor(spec) }],
    generate: fakeGenerator({ G0: { answers: ['5'], extra: 0 } }, seen),
    verifier: exactVerifier,
    prompt: 'qwen-boxed',
    seed: 0,
    chunkSamples: 16,
    onWarning: (w) => warnings.push(w),
  });
  const g = r.benchmarks[0];
  assert.deepEqual(seen.flat().map(problemOf), ['G0'], 'no samples are spent on unscorable problems');
  assert.equal(g.problems, 4);
  assert.equal(g.scored, 1);
  assert.equal(g.acc, 0);
  assert.deepEqual(
    g.unparseableGold.map((u) => [u.row, u.reason.slice(0, 28)]),
    [
      [2, '\'answer\' is "", expected a n'],
      [3, 'the verifier cannot parse th'],
      [4, "no 'answer' field"],
    ],
  );
  assert.match(warnings.join('\n'), /G: 3 problem\(s\) have a gold answer that cannot be parsed/);
  assert.match(
    readFileSync(path.join(dir, 'results.md'), 'utf8'),
    /## Not scored: gold answer could not be parsed\n\n- G problem 1 \(row 2\): 'answer' is ""/,
  );
});

test('resuming a folder with another model is refused', async () => {
  const data = mkdtempSync(path.join(ROOT, 'red-eval-model-data-'));
  const out = mkdtempSync(path.join(ROOT, 'red-eval-model-'));
  const { jobs, table } = await setup(data);
  await runEval({
    outDir: out,
    model: 'models/a',
    jobs,
    generate: fakeGenerator(table),
    verifier: exactVerifier,
    prompt: 'qwen-boxed',
    seed: 1,
    chunkSamples: 100,
  });
  await assert.rejects(
    runEval({
      outDir: out,
      model: 'models/b',
      jobs,
      generate: fakeGenerator(table),
      verifier: exactVerifier,
      prompt: 'qwen-boxed',
      seed: 1,
      chunkSamples: 100,
    }),
    /other settings \(model models\/a → models\/b\)/,
  );
});
