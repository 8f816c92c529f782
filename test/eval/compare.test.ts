import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { compareFolders } from '../../src/eval/compare.ts';
import { metricsOf, overallOf, type BenchmarkResult, type EvalResults } from '../../src/eval/results.ts';
import { tempDir } from '../helpers/tmp.ts';

const ROOT = tempDir('red-eval-test-');

function bench(name: string, title: string, acc: number, len: number): BenchmarkResult {
  return {
    name,
    title,
    file: `${name}.jsonl`,
    sampling: { n: 1, temperature: 0.6, topP: 1, maxTokens: 8192 },
    problems: 10,
    scored: 10,
    acc,
    len,
    clippedFrac: 0,
    passAtK: [acc],
    unparseableGold: [],
    unfinished: 0,
  };
}

function results(model: string, benchmarks: BenchmarkResult[]): EvalResults {
  const overall = overallOf(benchmarks);
  return { model, prompt: 'qwen-boxed', seed: 0, benchmarks, overall, metrics: metricsOf(benchmarks, overall) };
}

function writeRun(root: string, name: string, r: EvalResults): string {
  const dir = path.join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'results.json'), JSON.stringify(r));
  return dir;
}

test('--compare lays models side by side with the mean of per-benchmark Acc and LEN', async () => {
  const root = mkdtempSync(path.join(ROOT, 'red-compare-'));
  const grpo = writeRun(
    root,
    'grpo',
    results('m1', [bench('aime24', 'AIME24', 0.1, 1000), bench('math500', 'MATH500', 0.7, 600)]),
  );
  // RED has one benchmark more; its overall covers three, GRPO's two.
  const red = writeRun(
    root,
    'red',
    results('m2', [
      bench('aime24', 'AIME24', 0.2, 2000),
      bench('math500', 'MATH500', 0.75, 700),
      bench('amc', 'AMC', 0.45, 1500),
    ]),
  );
  const out = path.join(root, 'cmp');
  const md = await compareFolders([grpo, red], out);
  const lines = md.split('\n');
  assert.equal(
    lines[0],
    '| Model | AIME24 Acc | AIME24 LEN | MATH500 Acc | MATH500 LEN | AMC Acc | AMC LEN | Avg Acc | Avg LEN |',
  );
  // grpo: (10 + 70)/2 = 40.00, (1000 + 600)/2 = 800
  assert.equal(lines[2], '| grpo | 10.00 | 1000 | 70.00 | 600 | – | – | 40.00 | 800 |');
  // red: (20 + 75 + 45)/3 = 46.67, (2000 + 700 + 1500)/3 = 1400
  assert.equal(lines[3], '| red | 20.00 | 2000 | 75.00 | 700 | 45.00 | 1500 | 46.67 | 1400 |');
  assert.match(md, /grpo: overall over 2 of 3 benchmarks\./);
  assert.equal(readFileSync(path.join(out, 'compare.md'), 'utf8'), md);
});

test('red eval --compare prints the table and names a folder without results', () => {
  const root = mkdtempSync(path.join(ROOT, 'red-compare-cli-'));
  const a = writeRun(root, 'a', results('m', [bench('math500', 'MATH500', 0.5, 10)]));
  const bin = new URL('../../bin/red.js', import.meta.url).pathname;
  const ok = spawnSync(process.execPath, [bin, 'eval', '--compare', a], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /\| a \| 50\.00 \| 10 \| 50\.00 \| 10 \|/);
  const bad = spawnSync(process.execPath, [bin, 'eval', '--compare', a, path.join(root, 'missing')], {
    encoding: 'utf8',
  });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^red: .*missing\/results\.json not found/);
});
