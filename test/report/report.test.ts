// The report's pieces against hand-computed values: the results table (columns, overall figures,
// the RED verdict), metrics.jsonl parsing, the token view's colours and probability changes, and
// the per-token trace logprobs against a one-prefix-at-a-time forward, and a Hub-id base model
// found in the HF cache for the token view.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { EvalResults } from '../../src/eval/results.ts';
import { packSequences } from '../../src/model/batch.ts';
import { parseConfig } from '../../src/model/config.ts';
import { Qwen2Model } from '../../src/model/qwen2.ts';
import { referenceBackend } from '../../src/engine/reference.ts';
import { readMetrics } from '../../src/report/runs.ts';
import { resultsTable, tableMarkdown } from '../../src/report/table.ts';
import {
  deltaColor,
  probabilityDelta,
  shownTokenCount,
  tokenDiffSvg,
  traceLogprobs,
} from '../../src/report/tokendiff.ts';
import { curveSeries } from '../../src/report/figures.ts';
import { tinyQwen2Config } from '../helpers/tiny-config.ts';
import { tempDir } from '../helpers/tmp.ts';

function evalWithLevels(levels: Record<string, [number, number]>, acc: number, len: number): EvalResults {
  const byLevel = Object.fromEntries(
    Object.entries(levels).map(([l, [a, n]]) => [l, { problems: 10, acc: a, len: n }]),
  );
  return {
    model: 'm',
    prompt: 'qwen-boxed',
    seed: 0,
    benchmarks: [
      {
        name: 'heldout',
        title: 'heldout',
        file: 'x',
        sampling: { n: 4, temperature: 0.6, topP: 1, maxTokens: 64 },
        problems: 20,
        scored: 20,
        acc,
        len,
        clippedFrac: 0,
        passAtK: [],
        byLevel,
        unparseableGold: [],
        unfinished: 0,
      },
    ],
    overall: { acc, len, benchmarks: 1 },
    metrics: {},
  };
}

test('table: one column per level, Acc in %, the best non-base Acc in bold, and an honest verdict', () => {
  const t = resultsTable([
    {
      name: 'base',
      steps: 0,
      seed: null,
      eval: evalWithLevels({ 1: [0.5, 20], 2: [0.1, 30] }, 0.3, 25),
      trainSeconds: null,
      evalSeconds: 1,
    },
    {
      name: 'sft',
      steps: 5,
      seed: 42,
      eval: evalWithLevels({ 1: [0.9, 80], 2: [0.6, 90] }, 0.7, 85),
      trainSeconds: 3,
      evalSeconds: 1,
    },
    {
      name: 'grpo',
      steps: 5,
      seed: 42,
      eval: evalWithLevels({ 1: [0.7, 20], 2: [0.2, 22] }, 0.45, 21),
      trainSeconds: 4,
      evalSeconds: 1,
    },
    {
      name: 'red',
      steps: 5,
      seed: 42,
      eval: evalWithLevels({ 1: [0.8, 50], 2: [0.4, 60] }, 0.6, 55),
      trainSeconds: 5,
      evalSeconds: 1,
    },
  ]);
  assert.equal(t.columnKind, 'level');
  assert.deepEqual(
    t.columns.map((c) => c.title),
    ['L1', 'L2'],
  );
  // red 60% is below sft 70% and above grpo 45%: rank 2 of 3 methods (base excluded).
  // s.e. over 20 problems × 4 samples = 80: sqrt(0.6·0.4/80) = 5.48%, sqrt(0.7·0.3/80) = 5.12%.
  assert.equal(
    t.verdict,
    'RED: overall Acc 60.0 ± 5.5 (rank 2 of 3 methods); best other method: sft 70.0 ± 5.1. RED is NOT ahead on this run: 10.0 points behind sft, most on L2 (40.0 vs 60.0) and L1 (80.0 vs 90.0).',
  );
  const md = tableMarkdown(t);
  assert.match(md, /^\| sft \| 5 \| 90\.0 \| 60\.0 \| \*\*70\.0\*\* \| 85 \| - \| - \| - \| 3\.0 \| 1\.0 \|$/m);
  assert.match(md, /^\| red \| 5 \| 80\.0 \| 40\.0 \| 60\.0 \| 55 \| - \| - \| - \| 5\.0 \| 1\.0 \|$/m);
  assert.match(md, /^\| base \| 0 \| 50\.0 \| 10\.0 \| 30\.0 \| 25 \| - \| - \| - \| - \| 1\.0 \|$/m);
});

test('table: several benchmarks become one column each', () => {
  const e = evalWithLevels({}, 0.5, 10);
  const two: EvalResults = {
    ...e,
    benchmarks: [
      { ...e.benchmarks[0], name: 'aime24', title: 'AIME24', byLevel: undefined },
      { ...e.benchmarks[0], name: 'math500', title: 'MATH500', acc: 0.25, byLevel: undefined },
    ],
  };
  const t = resultsTable([{ name: 'red', steps: 1, seed: 1, eval: two, trainSeconds: null, evalSeconds: null }]);
  assert.equal(t.columnKind, 'benchmark');
  assert.deepEqual(
    t.columns.map((c) => c.title),
    ['AIME24', 'MATH500'],
  );
  assert.equal(t.rows[0].cells.math500.acc, 0.25);
  assert.equal(t.verdict, null, 'no other method to compare with');
});

test('metrics.jsonl: steps in order, a torn last line ignored, a bad middle line named', () => {
  const dir = tempDir('red-report-');
  const f = path.join(dir, 'metrics.jsonl');
  writeFileSync(f, '{"step":2,"acc/mean":0.5}\n{"step":1,"acc/mean":0.25,"red/w":1}\n{"step":3,"acc');
  const m = readMetrics(f);
  assert.deepEqual(
    m.map((x) => x.step),
    [1, 2],
  );
  const series = curveSeries([{ name: 'r', metrics: m }], 'acc/mean');
  assert.deepEqual(series, [
    {
      name: 'r',
      points: [
        { x: 1, y: 0.25 },
        { x: 2, y: 0.5 },
      ],
    },
  ]);
  assert.deepEqual(curveSeries([{ name: 'r', metrics: m }], 'red/w')[0].points, [{ x: 1, y: 1 }]);
  // Trailing mean over 2 points: (0.25), (0.25 + 0.5)/2.
  assert.deepEqual(curveSeries([{ name: 'r', metrics: m }], 'acc/mean', 2)[0].points, [
    { x: 1, y: 0.25 },
    { x: 2, y: 0.375 },
  ]);
  writeFileSync(f, '{"step":1}\nnot json\n{"step":3}\n');
  assert.throws(() => readMetrics(f), /metrics\.jsonl: line 2 is not JSON/);
});

test('token view: Δp = e^after − e^before; white at 0, red up, blue down, sqrt intensity', () => {
  const d = probabilityDelta(
    Float32Array.of(Math.log(0.25), Math.log(0.5)),
    Float32Array.of(Math.log(0.5), Math.log(0.25)),
  );
  assert.ok(Math.abs(d[0] - 0.25) < 1e-6 && Math.abs(d[1] + 0.25) < 1e-6, String(d));
  assert.equal(deltaColor(0), '#ffffff');
  assert.equal(deltaColor(1), '#ff0000');
  assert.equal(deltaColor(-1), '#0000ff');
  // |Δp| = 0.25 → intensity 0.5 → the other channels at round(255·0.5) = 128 = 0x80.
  assert.equal(deltaColor(0.25), '#ff8080');
  assert.equal(deltaColor(-0.25), '#8080ff');
  const svg = tokenDiffSvg({
    tokens: ['a', '<b>', '\n', 'c'],
    panels: [{ label: 'base → red', delta: [0.25, -1, 0, 1] }],
    caption: 'x',
  });
  assert.match(svg, /fill="#ff8080"><title>a: Δp 0\.250</);
  assert.match(svg, />&lt;b&gt;</, 'token text is escaped');
  assert.match(svg, />↵</, 'a newline token is shown as ↵');
});

test('traceLogprobs: each trace token scored as a forward over its own prefix scores it', () => {
  const config = parseConfig(tinyQwen2Config({ vocab_size: 40, max_position_embeddings: 64, initializer_range: 0.5 }));
  const model = Qwen2Model.init(config, 7, { backend: referenceBackend });
  const prompt = [1, 5, 9];
  const trace = [12, 3, 30, 7];
  const got = traceLogprobs(model, prompt, trace);
  for (let i = 0; i < trace.length; i++) {
    // Only the last token of prompt + trace[0..i] is a target: find its row by its target.
    const seq = [...prompt, ...trace.slice(0, i + 1)];
    const batch = packSequences([seq], [seq.length - 1]);
    const { logprob } = model.forward(batch);
    const row = [...batch.targets].findIndex((t) => t >= 0);
    assert.equal(batch.targets[row], trace[i]);
    assert.ok(Math.abs(got[i] - logprob[row]) < 1e-5, `token ${i}: ${got[i]} vs ${logprob[row]}`);
  }
});

test('table: the seeds of a method share a row (mean ± s.e. over seeds) and the compute columns show rollouts and tokens', () => {
  const run = (name: string, seed: number, acc: number, l1: number, rollouts: number, keptGroups = 6) => ({
    name,
    steps: 5,
    seed,
    eval: {
      ...evalWithLevels({ 1: [l1, 20] }, acc, 20),
      benchmarks: [{ ...evalWithLevels({ 1: [l1, 20] }, acc, 20).benchmarks[0], passAtK: [acc, acc + 0.1] }],
    },
    trainSeconds: 2,
    evalSeconds: 1,
    rollouts,
    keptGroups,
    trainTokens: 2500,
  });
  const t = resultsTable([
    run('grpo', 42, 0.4, 0.5, 1000),
    run('red', 42, 0.5, 0.6, 800),
    run('red', 43, 0.6, 0.8, 900, 7.5),
    run('red', 44, 0.7, 0.7, 1000, 4.5),
  ]);
  assert.deepEqual(
    t.rows.map((r) => r.name),
    ['grpo', 'red'],
  );
  const red = t.rows[1];
  assert.deepEqual(red.seeds, [42, 43, 44]);
  // Acc 0.5, 0.6, 0.7: mean 0.6, sample std 0.1, s.e. 0.1/√3 = 0.0577.
  assert.ok(Math.abs(red.acc! - 0.6) < 1e-12 && Math.abs(red.accSe! - 0.1 / Math.sqrt(3)) < 1e-12);
  assert.ok(Math.abs(red.cells['1'].acc - 0.7) < 1e-12 && Math.abs(red.cells['1'].accSe! - 0.1 / Math.sqrt(3)) < 1e-12);
  assert.equal(red.rollouts, 900);
  assert.deepEqual(
    red.passAtK.map((x) => Math.round(x * 100) / 100),
    [0.6, 0.7],
  );
  const md = tableMarkdown(t);
  // Groups/step: the mean over seeds of each run's mean kept groups, (6 + 7.5 + 4.5)/3 = 6.0.
  assert.equal(red.keptGroups, 6);
  assert.match(
    md,
    /^\| red \| 5 \| 70\.0 ± 5\.8 \| \*\*60\.0 ± 5\.8\*\* \| 20 \| 900 \| 6\.0 \| 2\.5k \| 2\.0 \| 1\.0 \|$/m,
  );
  assert.match(md, /\| Rollouts \| Groups\/step \| Train tokens \|/);
  assert.match(md, /mean ± s\.e\. over 3 seeds/);
  assert.match(t.verdict!, /RED: overall Acc 60\.0 ± 5\.8 \(s\.e\. over 3 seeds\)/);
});

test('token view: a trace cut to the limit ends at a line end and says how many tokens were left out', () => {
  const toks = ['a', 'b', '\n', 'c', 'd', '\n', 'e', 'f', 'g', 'h'];
  assert.equal(shownTokenCount(toks, 20), 10);
  assert.equal(shownTokenCount(toks, 8), 6, 'cut after the second newline, not mid-line');
  assert.equal(shownTokenCount(['x', 'y', 'z', 'w'], 3), 3, 'no newline in reach: the limit');
  const svg = tokenDiffSvg({
    tokens: toks.slice(0, 6),
    panels: [{ label: 'p', delta: [0, 0, 0, 0, 0, 0] }],
    caption: 'x',
    omitted: 4,
  });
  assert.match(svg, />… 4 more tokens</);
  assert.doesNotMatch(tokenDiffSvg({ tokens: toks, panels: [{ label: 'p', delta: [] }], caption: 'x' }), /more token/);
});

test('red report: a run whose model.path is a Hub id gets its token view from the HF cache, offline', async () => {
  const { writeTinySetup } = await import('../train/tiny.ts');
  const { runTrain } = await import('../../src/train/run.ts');
  const { createProgress } = await import('../../src/train/metrics.ts');
  const { buildReport } = await import('../../src/report/build.ts');
  const root = tempDir('red-report-hub-');
  const tiny = writeTinySetup(root, 8);
  // The huggingface_hub cache layout: refs/main names the commit, snapshots/<commit>/ the files.
  const cache = path.join(root, 'hub');
  const commit = 'a'.repeat(40);
  const snap = path.join(cache, 'models--tiny-org--base', 'snapshots', commit);
  mkdirSync(path.join(cache, 'models--tiny-org--base', 'refs'), { recursive: true });
  writeFileSync(path.join(cache, 'models--tiny-org--base', 'refs', 'main'), commit);
  cpSync(tiny.model, snap, { recursive: true });
  const env = { HF_HUB_CACHE: process.env.HF_HUB_CACHE, HF_HUB_OFFLINE: process.env.HF_HUB_OFFLINE };
  process.env.HF_HUB_CACHE = cache;
  process.env.HF_HUB_OFFLINE = '1';
  try {
    const config = path.join(root, 'sft.yaml');
    writeFileSync(
      config,
      `model: { path: tiny-org/base }
engine: { backend: reference }
data: { train: ${tiny.train} }
rollout: { maxTokens: 400 }
sft: { batchSize: 2 }
checkpoint: { every: 1, keep: 1 }
log: { progress: none, tensorboard: false }
`,
    );
    const run = path.join(root, 'run');
    await runTrain({ config, out: run, method: 'sft', sets: [], maxSteps: 1, resume: false }, createProgress('none'));
    const r = await buildReport({ runDirs: [run], out: path.join(root, 'report'), backend: 'reference' });
    assert.equal(r.tokenDiffSkipped ?? null, null, `token view skipped: ${r.tokenDiffSkipped}`);
  } finally {
    for (const [k, v] of Object.entries(env)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});
