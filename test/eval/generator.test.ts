// The evaluator over the real sampler: a tiny random Qwen2 on the reference backend and a
// byte-level tokenizer with a ChatML template, so prompts, stop ids and per-problem seeds are
// exercised end to end in well under a second of decoding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadBenchmark, resolveBenchmark } from '../../src/eval/benchmarks.ts';
import { encodePrompt, samplerGenerator, stopRule } from '../../src/eval/generator.ts';
import { buildPrompt, samplingFor, type AnswerVerifier, type Generator } from '../../src/eval/protocol.ts';
import { runEval, type EvalJob } from '../../src/eval/run.ts';
import { byteTokenizer, tinyModel } from './tiny.ts';
import { lastBoxed } from '../../src/reward/extract.ts';
import { tempDir } from '../helpers/tmp.ts';

const ROOT = tempDir('red-eval-test-');

const exactVerifier: AnswerVerifier = {
  async verify(gold, response) {
    const extracted = lastBoxed(response) ?? undefined;
    return { equal: extracted !== undefined && extracted === gold, ...(extracted !== undefined ? { extracted } : {}) };
  },
};

test('prompts go through the chat template and both end markers stop generation', () => {
  const tok = byteTokenizer();
  assert.deepEqual(stopRule(tok, ['<|im_end|>', '<|endoftext|>']), { eosIds: [256, 258], stopStrings: [] });
  assert.deepEqual(stopRule(tok, ['<|endoftext|>', '\n\nProblem:']), {
    eosIds: [256, 258],
    stopStrings: ['\n\nProblem:'],
  });
  const ids = encodePrompt(tok, buildPrompt('qwen-boxed', 'What is 2+2?'));
  assert.equal(
    tok.decode(ids, false),
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n',
  );
  assert.equal(ids[0], 257);
});

test('with the real sampler, an interrupted and resumed run writes the same samples as one uninterrupted run', async () => {
  const data = mkdtempSync(path.join(ROOT, 'red-evalgen-'));
  const file = path.join(data, 'q.jsonl');
  writeFileSync(
    file,
    ['1+1', '2+3', '4*2', '9-5', '6/3']
      .map((p, i) => JSON.stringify({ problem: `Compute ${p}.`, answer: String(i) }))
      .join('\n') + '\n',
  );
  const spec = resolveBenchmark(`q=${file}`, undefined, 3);
  const job = async (): Promise<EvalJob[]> => [
    {
      spec,
      file,
      problems: await loadBenchmark(spec, undefined),
      sampling: samplingFor(spec, { maxTokens: 12, temperature: 1 }),
    },
  ];
  const model = tinyModel();
  const tokenizer = byteTokenizer();

  const whole = path.join(data, 'whole');
  let calls = 0;
  const real = samplerGenerator({ model, tokenizer, maxBatch: 4 });
  const counting: Generator = (r, o) => {
    calls++;
    return real(r, o);
  };
  const a = await runEval({
    outDir: whole,
    model: 'tiny',
    jobs: await job(),
    generate: counting,
    verifier: exactVerifier,
    prompt: 'qwen-boxed',
    seed: 5,
    chunkSamples: 1000,
  });
  assert.equal(calls, 1, 'all 15 samples in one continuous-batching call');
  assert.equal(a.benchmarks[0].scored, 5);

  const parts = path.join(data, 'parts');
  let n = 0;
  const crashing: Generator = (r, o) => (++n === 2 ? Promise.reject(new Error('killed')) : real(r, o));
  await assert.rejects(
    runEval({
      outDir: parts,
      model: 'tiny',
      jobs: await job(),
      generate: crashing,
      verifier: exactVerifier,
      prompt: 'qwen-boxed',
      seed: 5,
      chunkSamples: 6,
    }),
    /killed/,
  );
  await runEval({
    outDir: parts,
    model: 'tiny',
    jobs: await job(),
    generate: real,
    verifier: exactVerifier,
    prompt: 'qwen-boxed',
    seed: 5,
    chunkSamples: 3,
  });

  const wholeLines = readFileSync(path.join(whole, 'samples.jsonl'), 'utf8');
  assert.equal(readFileSync(path.join(parts, 'samples.jsonl'), 'utf8'), wholeLines);
  for (const line of wholeLines.trim().split('\n')) {
    const rec = JSON.parse(line) as { samples: { text: string; tokens: number; finish: string }[] };
    assert.equal(rec.samples.length, 3);
    for (const s of rec.samples) {
      assert.ok(s.tokens >= 1 && s.tokens <= 12);
      assert.ok(s.finish === 'stop' || s.finish === 'length');
      if (s.finish === 'length') assert.equal(s.tokens, 12);
    }
    // A random model's three samples of one prompt differ (own RNG stream per sample).
    assert.ok(new Set(rec.samples.map((s) => s.text)).size > 1);
  }
});
