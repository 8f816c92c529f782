// `red eval` end to end as a user runs it: a model folder (tiny random Qwen2 + tokenizer files),
// a JSONL benchmark with its own field names, protocol overrides, and every output file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { byteTokenizerFiles, tinyModel } from './tiny.ts';
import { tempDir } from '../helpers/tmp.ts';

const ROOT = tempDir('red-eval-cli-');
const BIN = new URL('../../bin/red.js', import.meta.url).pathname;

test('red eval writes results, samples and the pass@k chart, with field mapping and overrides', () => {
  const modelDir = path.join(ROOT, 'model');
  tinyModel().save(modelDir);
  const tok = byteTokenizerFiles();
  writeFileSync(path.join(modelDir, 'tokenizer.json'), JSON.stringify(tok.tokenizerJson));
  writeFileSync(path.join(modelDir, 'tokenizer_config.json'), JSON.stringify(tok.tokenizerConfig));
  const data = path.join(ROOT, 'q.jsonl');
  writeFileSync(
    data,
    [
      ['1+1', 2, 'easy'],
      ['3*3', 9, 'easy'],
      ['2^5', 32, 'hard'],
    ]
      .map(([q, a, d]) => JSON.stringify({ q, sol: `so \\boxed{${a}}`, diff: d }))
      .join('\n') + '\n',
  );
  const out = path.join(ROOT, 'out');
  const r = spawnSync(
    process.execPath,
    [
      BIN,
      'eval',
      '--model',
      modelDir,
      '--benchmarks',
      `toy=${data}`,
      '--problem-field',
      'q',
      '--answer-field',
      'boxed:sol',
      '--level-field',
      'diff',
      '--n',
      '3',
      '--max-tokens',
      '6',
      '--temperature',
      '1',
      '--backend',
      'reference',
      '--out',
      out,
    ],
    { encoding: 'utf8', env: { ...process.env, RED_BACKEND: '' } },
  );
  assert.equal(r.status, 0, r.stderr);
  const results = JSON.parse(readFileSync(path.join(out, 'results.json'), 'utf8'));
  const b = results.benchmarks[0];
  assert.equal(b.name, 'toy');
  assert.deepEqual(b.sampling, { n: 3, temperature: 1, topP: 1, maxTokens: 6 });
  assert.equal(b.scored, 3);
  assert.equal(b.passAtK.length, 3);
  assert.deepEqual(Object.keys(b.byLevel), ['easy', 'hard']);
  const samples = readFileSync(path.join(out, 'samples.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    samples.map((s) => s.gold),
    ['2', '9', '32'],
  );
  assert.ok(
    samples.every(
      (s) => s.samples.length === 3 && s.samples.every((x: { tokens: number }) => x.tokens >= 1 && x.tokens <= 6),
    ),
  );
  for (const f of ['results.md', 'passk.svg', 'passk.png', 'run.json']) assert.ok(existsSync(path.join(out, f)), f);
  assert.match(r.stdout, /\| toy \| avg@3, T=1, top-p=1, ≤6 tok \| 3 \|/);

  // A benchmark file that is not there is named.
  const bad = spawnSync(
    process.execPath,
    [BIN, 'eval', '--model', modelDir, '--benchmarks', 'x=/nonexistent/x.jsonl', '--out', out],
    { encoding: 'utf8' },
  );
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^red: \/nonexistent\/x\.jsonl: benchmark file not found/);
});
