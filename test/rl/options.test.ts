import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  algorithmOptionIssues,
  parseAlgorithmOptions,
  PRESET_NAMES,
  PRESETS,
  resolvePreset,
  resolveStages,
} from '../../src/rl/options.ts';
import { resolveTrainConfig } from '../../src/train/config.ts';
import { RedError } from '../../src/util/errors.ts';

const repo = fileURLToPath(new URL('../../', import.meta.url));

test("defaults: the spec's choices when nothing is set", () => {
  const o = parseAlgorithmOptions({});
  assert.equal(o.normalizeStd, true);
  assert.deepEqual(o.clip, { enabled: true, epsLow: 0.2, epsHigh: 0.2 });
  assert.equal(o.aggregation, 'seq-mean-token-mean');
  assert.equal(o.entropyCoef, 0);
  assert.equal(o.klCoef, 0);
  assert.deepEqual(o.groupFilter, { enabled: true, maxFillAttempts: 6 });
  assert.equal(o.luffyGamma, 0.1);
  assert.equal(o.accuracyIncludesOffline, true); // r̄ over all G+1 members (RED-SPEC "π_offline")
  assert.equal(o.entropySmoothing, 0); // the paper's raw ratio
});

test('presets are rows of options (RED-SPEC Table 2)', () => {
  const red = resolvePreset('red');
  assert.deepEqual([red.offlineMember, red.piOffline, red.entropyRegulation], [true, 'accuracy', true]);
  const red1 = resolvePreset('red-I');
  assert.deepEqual([red1.piOffline, red1.entropyRegulation], ['one', true]);
  const red2 = resolvePreset('red-II');
  assert.deepEqual([red2.piOffline, red2.entropyRegulation], ['accuracy', false]);
  const luffy = resolvePreset('luffy');
  assert.deepEqual(
    [
      luffy.piOffline,
      luffy.luffyGamma,
      luffy.clip.enabled,
      luffy.normalizeStd,
      luffy.aggregation,
      luffy.lNorm,
      luffy.entropyCoef,
      luffy.lrScale,
    ],
    ['luffy', 0.1, false, false, 'seq-sum-norm', null, 0.001, 0.5],
  );
  // RED-SPEC: luffy lr 1e-6 where the others use 2e-6 (the trainer's default optim.lr).
  assert.equal(2e-6 * luffy.lrScale, 1e-6);
  assert.equal(resolvePreset('grpo').lrScale, 1);
  assert.equal(resolvePreset('grpo').offlineMember, false);
  assert.deepEqual(
    [resolvePreset('mixpolicy').piOffline, resolvePreset('mixpolicy').entropyRegulation],
    ['one', false],
  );
  assert.equal(resolvePreset('bread').prefixSearch.enabled, true);
  assert.equal(resolvePreset('relift').sftInterleave.enabled, true);
  assert.equal(resolvePreset('srft').objective, 'srft');
  for (const name of PRESET_NAMES) assert.ok(PRESETS[name].description.length > 0);
});

test('sft-grpo: two stages, sft then grpo', () => {
  const stages = resolveStages(resolvePreset('sft-grpo'));
  assert.deepEqual(
    stages.map((s) => s.objective),
    ['nll', 'group-policy'],
  );
  assert.equal(stages[1].offlineMember, false);
  assert.equal(resolveStages(resolvePreset('red')).length, 1);
  assert.throws(() => resolveStages(parseAlgorithmOptions({ stages: ['sft-grpo'] })), /stages do not nest/);
});

test("sft-grpo: the user's algorithm overrides reach every stage (the config the trainer records is what runs)", () => {
  const config = resolveTrainConfig(
    {
      method: 'sft-grpo',
      model: { path: 'm' },
      data: { train: 't.jsonl' },
      algorithm: { clip: { epsHigh: 0.28 }, groupFilter: { maxFillAttempts: 2 }, klCoef: 0.01 },
    },
    'test',
  );
  const stages = resolveStages(config.algorithm);
  assert.deepEqual(
    stages.map((s) => s.objective),
    ['nll', 'group-policy'],
  );
  for (const s of stages) assert.deepEqual([s.clip.epsHigh, s.groupFilter.maxFillAttempts, s.klCoef], [0.28, 2, 0.01]);
  // The stage presets' own settings stay: SFT has no rollouts and no group filter.
  assert.deepEqual(
    [stages[0].onlineRollouts, stages[0].groupFilter.enabled, stages[1].groupFilter.enabled],
    [false, false, true],
  );
});

test('overrides merge deeply over the preset row; every problem is named by its path', () => {
  const o = resolvePreset('luffy', { clip: { epsHigh: 0.28 }, lrScale: 0.25 });
  assert.deepEqual([o.clip.enabled, o.clip.epsHigh, o.lrScale, o.piOffline], [false, 0.28, 0.25, 'luffy']);
  const issues = algorithmOptionIssues({ clip: { epsLow: -1, typo: 1 }, piOffline: 'two', bogus: true });
  assert.ok(
    issues.some((l) => l.startsWith('algorithm.clip.epsLow:')),
    issues.join('\n'),
  );
  assert.ok(issues.includes('algorithm.clip.typo: unknown option'), issues.join('\n'));
  assert.ok(issues.includes('algorithm.bogus: unknown option'), issues.join('\n'));
  assert.ok(
    issues.some((l) => l.startsWith('algorithm.piOffline:')),
    issues.join('\n'),
  );
  assert.throws(
    () => resolvePreset('red', { groupFilter: { maxFillAttempts: 0 } }),
    (e: unknown) => e instanceof RedError && /algorithm\.groupFilter\.maxFillAttempts/.test(e.message),
  );
  assert.throws(
    () => resolvePreset('redd'),
    (e: unknown) => e instanceof RedError && /unknown method "redd".*red-II/.test(e.message),
  );
  assert.throws(
    () => resolvePreset('bread', { prefixSearch: { targetLow: 0.95 } }),
    /prefixSearch.targetLow: must be ≤/,
  );
});

test('`red methods --json` lists every preset with the options it sets', () => {
  const r = spawnSync(process.execPath, ['bin/red.js', 'methods', '--json'], { cwd: repo, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as {
    presets: Array<{
      name: string;
      sets: Record<string, unknown>;
      options: Record<string, unknown> & { clip: { enabled: boolean } };
    }>;
    options: Array<{ key: string; default: unknown; description: string }>;
  };
  assert.deepEqual(
    out.presets.map((p) => p.name),
    [...PRESET_NAMES],
  );
  const byName = Object.fromEntries(out.presets.map((p) => [p.name, p]));
  assert.equal(byName.luffy.sets.piOffline, 'luffy');
  assert.equal(byName.luffy.options.normalizeStd, false);
  assert.equal(byName.luffy.options.clip.enabled, false);
  assert.equal(byName['red-II'].options.piOffline, 'accuracy');
  assert.equal(byName['red-II'].options.entropyRegulation, false);
  assert.equal(byName.red.options.entropyRegulation, true);
  // RED II's r̄ reading is shown on its rows (the G+1 members), the G-only reading as an option.
  for (const m of ['red', 'red-II']) assert.equal(byName[m].sets.accuracyIncludesOffline, true, m);
  const rbar = out.options.find((o) => o.key === 'accuracyIncludesOffline');
  assert.equal(rbar?.default, true);
  assert.match(rbar?.description ?? '', /false = the G online ones only \(an ablation/);
  assert.equal(out.options.find((o) => o.key === 'entropySmoothing')?.default, 0);
  assert.deepEqual(byName['sft-grpo'].sets.stages, ['sft', 'grpo']);
  const epsLow = out.options.find((o) => o.key === 'clip.epsLow');
  assert.equal(epsLow?.default, 0.2);
  assert.ok(
    out.options.every((o) => o.description.length > 0),
    'every option is documented',
  );
  // The terminal table names the presets too.
  const table = spawnSync(process.execPath, ['bin/red.js', 'methods'], { cwd: repo, encoding: 'utf8' });
  assert.equal(table.status, 0, table.stderr);
  assert.match(table.stdout, /^red-II\s+RED \(II\)/m);
  assert.match(table.stdout, /piOffline=luffy/);
  assert.match(table.stdout, /piOffline=accuracy {2}accuracyIncludesOffline=true {2}entropyRegulation=true/);
});
