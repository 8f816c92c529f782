// The demo pipeline end to end at the smallest budget: data, a pretrained base, every Table 2
// method trained and evaluated, the table and the report, all in a temporary folder. Checks that
// every output exists and parses: results.json names every method, report.html references every
// figure, each SVG has marks and each PNG the PNG signature.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { BUDGETS, DEMO_METHODS } from '../../src/demo/budget.ts';
import YAML from 'yaml';
import { demoConfigYaml, runDemo } from '../../src/demo/run.ts';
import { resolveTrainConfig } from '../../src/train/config.ts';
import { PRESET_NAMES } from '../../src/rl/options.ts';
import { buildReport } from '../../src/report/build.ts';
import { tempDir } from '../helpers/tmp.ts';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

test('the demo methods are exactly the presets of Table 2', () => {
  assert.deepEqual([...DEMO_METHODS].sort(), [...PRESET_NAMES].sort());
});

test('--set reaches every run: train-config.yaml records it and it beats the preset row (the r̄ ablation)', () => {
  const yaml = demoConfigYaml(BUDGETS.tiny, '/m', '/t.jsonl', undefined, [
    'algorithm.accuracyIncludesOffline=false',
    'algorithm.entropySmoothing=0.9',
  ]);
  assert.match(yaml, /^# .*with --set algorithm\.accuracyIncludesOffline=false algorithm\.entropySmoothing=0\.9/);
  const raw = YAML.parse(yaml) as Record<string, unknown>;
  const red = resolveTrainConfig({ ...raw, method: 'red' }, 'test');
  assert.equal(red.algorithm.accuracyIncludesOffline, false); // the red preset row sets true
  assert.equal(red.algorithm.entropySmoothing, 0.9);
  assert.equal(red.algorithm.sftInterleave.bufferSize, BUDGETS.tiny.train.promptsPerStep); // the demo's own keys stay
});

test('red demo --tiny: every method trained, evaluated, tabulated and reported', async () => {
  const root = tempDir('red-demo-');
  const out = path.join(root, 'out');
  const lines: string[] = [];
  const result = await runDemo({
    out,
    budget: BUDGETS.tiny,
    cacheDir: path.join(root, 'cache'),
    log: (l) => lines.push(l),
  });

  // One progress line per phase and per method, each with its wall time.
  assert.equal(lines.length, 3 + DEMO_METHODS.length + 2, lines.join('\n'));
  for (const m of DEMO_METHODS)
    assert.ok(
      lines.some((l) => new RegExp(`\\] ${m}: \\d+ steps? in [\\d.]+ s`).test(l)),
      `no progress line for ${m}`,
    );
  assert.equal(result.runs.length, DEMO_METHODS.length + 1);

  // The base model as a Hugging Face folder, each run as red train leaves it.
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json'])
    assert.ok(existsSync(path.join(out, 'base', f)), `base/${f}`);
  for (const m of DEMO_METHODS) {
    for (const f of ['config.yaml', 'metrics.jsonl', 'eval/results.json'])
      assert.ok(existsSync(path.join(out, 'runs', m, 'seed-42', f)), `runs/${m}/seed-42/${f}`);
    assert.match(
      readFileSync(path.join(out, 'runs', m, 'seed-42', 'config.yaml'), 'utf8'),
      new RegExp(`^method: ${m}$`, 'm'),
    );
    assert.match(readFileSync(path.join(out, 'runs', m, 'seed-42', 'config.yaml'), 'utf8'), /^seed: 42$/m);
  }

  const results = JSON.parse(readFileSync(path.join(out, 'results.json'), 'utf8')) as {
    methods: Record<string, { acc: number | null; len: number | null; steps: number }>;
  };
  assert.deepEqual(Object.keys(results.methods).sort(), ['base', ...DEMO_METHODS].sort());
  for (const m of DEMO_METHODS) {
    const r = results.methods[m];
    assert.ok(r.acc !== null && r.acc >= 0 && r.acc <= 1, `${m}: acc ${r.acc}`);
    assert.ok(r.len !== null && r.len > 0 && r.len <= BUDGETS.tiny.eval.maxTokens, `${m}: len ${r.len}`);
    // Same budget: one step in all; sft-grpo cannot split one step, so it gets one per stage.
    assert.equal(r.steps, m === 'sft-grpo' ? 2 : 1, m);
  }
  const md = readFileSync(path.join(out, 'results.md'), 'utf8');
  for (const m of DEMO_METHODS) assert.match(md, new RegExp(`^\\| ${m} \\|`, 'm'));

  // The machine and the base weights, read back independently: /proc/cpuinfo and sha256sum.
  const rec = JSON.parse(readFileSync(path.join(out, 'results.json'), 'utf8')) as {
    machine: { cpu: string; amx: boolean; threads: number; isa: string };
    baseModel: { sha256: string };
    methods: Record<string, { keptGroups: number | null }>;
  };
  const sha = spawnSync('sha256sum', [path.join(out, 'base', 'model.safetensors')], { encoding: 'utf8' });
  assert.equal(rec.baseModel.sha256, sha.stdout.split(' ')[0]);
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim();
  if (model !== undefined) assert.equal(rec.machine.cpu, model);
  if (/^flags\s*:.*\bamx_tile\b/m.test(cpuinfo) === false) assert.equal(rec.machine.amx, false);
  assert.ok(rec.machine.threads >= 1 && rec.machine.isa.length > 0);
  assert.match(md, /Machine: .+ logical CPUs\); engine .+ threads?; Node v/);
  // Kept groups per step: the mean of groups/kept over grpo's metrics.jsonl.
  const grpoSteps = readFileSync(path.join(out, 'runs', 'grpo', 'seed-42', 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as Record<string, number>)['groups/kept']);
  assert.equal(rec.methods.grpo.keptGroups, grpoSteps.reduce((a, b) => a + b, 0) / grpoSteps.length);

  const html = readFileSync(path.join(out, 'report.html'), 'utf8');
  assert.doesNotMatch(
    html,
    /<script|https?:\/\/(?!www\.w3\.org)/,
    'report.html must be offline: no script, no external resource',
  );
  const figures = readdirSync(path.join(out, 'figures'));
  const ids = [...new Set(figures.map((f) => f.replace(/\.(svg|png)$/, '')))];
  for (const id of ['accuracy', 'length', 'entropy-rl', 'entropy-sft', 'red-w', 'passk', 'token-diff'])
    assert.ok(ids.includes(id), `figure ${id} missing (have ${ids.join(', ')})`);
  for (const id of ids) {
    assert.ok(html.includes(`figures/${id}.svg`) && html.includes(`id="${id}"`), `report.html does not show ${id}`);
    const svg = readFileSync(path.join(out, 'figures', `${id}.svg`), 'utf8');
    assert.ok(svg.startsWith('<svg'), `${id}.svg is not an SVG`);
    assert.match(
      svg,
      id === 'token-diff' ? /<rect[^>]+fill="#/ : /class="mark-(line|symbol) role-mark/,
      `${id}.svg has no marks`,
    );
    const png = readFileSync(path.join(out, 'figures', `${id}.png`));
    assert.deepEqual([...png.subarray(0, 8)], PNG_SIGNATURE, `${id}.png signature`);
  }

  // The same demo again: every finished method (and the base's evaluation) is reused, nothing retrains.
  const rerun: string[] = [];
  const t0 = readFileSync(path.join(out, 'runs', 'red', 'seed-42', 'metrics.jsonl'));
  await runDemo({ out, budget: BUDGETS.tiny, cacheDir: path.join(root, 'cache'), log: (l) => rerun.push(l) });
  for (const m of DEMO_METHODS)
    assert.ok(
      rerun.some((l) => new RegExp(`\\] ${m}: reused`).test(l)),
      `${m} was not reused:\n${rerun.join('\n')}`,
    );
  assert.ok(rerun.some((l) => /\] base: reused/.test(l)));
  assert.ok(t0.equals(readFileSync(path.join(out, 'runs', 'red', 'seed-42', 'metrics.jsonl'))));
  // A changed budget (another step count) is another config: that run retrains.
  const changed: string[] = [];
  await runDemo({
    out,
    budget: { ...BUDGETS.tiny, train: { ...BUDGETS.tiny.train, steps: 2 } },
    cacheDir: path.join(root, 'cache'),
    methods: ['grpo'],
    log: (l) => changed.push(l),
  });
  assert.ok(
    changed.some((l) => /\] grpo: 2 steps in/.test(l)),
    changed.join('\n'),
  );

  // A second demo reuses the cached data and base model.
  const again: string[] = [];
  await runDemo({
    out: path.join(root, 'again'),
    budget: BUDGETS.tiny,
    cacheDir: path.join(root, 'cache'),
    methods: ['sft'],
    log: (l) => again.push(l),
  });
  assert.match(again[0], /data: reused/);
  assert.match(again[1], /base model: reused/);

  // red report rebuilds the same table from the run folders alone.
  const rep = path.join(root, 'report');
  const built = await buildReport({
    runDirs: DEMO_METHODS.filter((m) => m !== 'grpo').map((m) => path.join(out, 'runs', m, 'seed-42')),
    out: rep,
    tokenDiff: 'off',
  });
  const rebuilt = JSON.parse(readFileSync(path.join(rep, 'results.json'), 'utf8')) as {
    methods: Record<string, { acc: number | null }>;
  };
  for (const m of DEMO_METHODS.filter((x) => x !== 'grpo'))
    assert.equal(rebuilt.methods[m].acc, results.methods[m].acc, m);
  assert.equal(built.tokenDiffSkipped, 'turned off');
});

test('red report and red demo: user errors are one line naming what is wrong', async () => {
  const bin = new URL('../../bin/red.js', import.meta.url).pathname;
  const root = tempDir('red-demo-err-');
  const missing = path.join(root, 'no-such-run');
  const r = spawnSync(process.execPath, [bin, 'report', missing, '--out', path.join(root, 'report')], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 1);
  assert.equal(r.stderr.trim(), `red: ${missing}: run folder not found`);
  const d = spawnSync(
    process.execPath,
    [bin, 'demo', '--tiny', '--methods', 'sft,nope', '--out', path.join(root, 'demo')],
    { encoding: 'utf8' },
  );
  assert.equal(d.status, 1);
  assert.match(d.stderr.trim(), /^red: --methods: unknown method 'nope'; expected some of sft, grpo, /);
  // --set is checked like red train's, before the output folder is made.
  const s = spawnSync(
    process.execPath,
    [bin, 'demo', '--tiny', '--set', 'algorithm.accuracyIncludesOffline=maybe', '--out', path.join(root, 'set')],
    { encoding: 'utf8' },
  );
  assert.equal(s.status, 1);
  assert.match(
    s.stderr,
    /^red: invalid configuration \(--set\):\n {2}algorithm\.accuracyIncludesOffline must be a boolean, got "maybe"\n$/,
  );
  assert.ok(!existsSync(path.join(root, 'set')), 'nothing written');
});

test('red demo: Ctrl-C says how to resume, and the same command then reuses what finished', async () => {
  const { spawn } = await import('node:child_process');
  const bin = new URL('../../bin/red.js', import.meta.url).pathname;
  const root = tempDir('red-demo-int-');
  const args = [
    bin,
    'demo',
    '--tiny',
    '--steps',
    '40',
    '--methods',
    'sft,grpo,red',
    '--out',
    path.join(root, 'out'),
    '--cache',
    path.join(root, 'cache'),
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve) =>
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (/\] sft: \d+ steps in/.test(stdout)) resolve();
    }),
  );
  child.kill('SIGINT');
  const code = await exited;
  assert.equal(code, 130, `exit ${code}; stderr: ${stderr}`);
  assert.match(
    stderr,
    /Interrupted\. Every method that finished is kept in .*runs and reused: run `red demo --tiny .*` again to resume/,
  );
  const again = spawnSync(
    process.execPath,
    args
      .slice(0, -6)
      .concat(['--methods', 'sft', '--out', path.join(root, 'out'), '--cache', path.join(root, 'cache')]),
    { encoding: 'utf8' },
  );
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /\] sft: reused/);
});
