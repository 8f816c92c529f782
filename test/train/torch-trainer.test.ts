// The trainer on the PyTorch engine (engine.kind torch, fp32, one CPU rank) against the native
// engine: every preset for two steps from the same weights and the same rollouts (one fixed
// sampler, the native sampler over the initial weights, serves both), exact resume on torch, a
// checkpoint moving between engines, a non-finite gradient or coefficient skipped alike, and
// `red train` through the CLI with rollout.engine engine. The engines are
// shared across cases (loadState puts the initial weights back, each stage creates its optimisers).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { closeVerifier } from '../../src/reward/index.ts';
import { PRESET_NAMES, resolveStages } from '../../src/rl/options.ts';
import { applySets, engineSettings, resolveTrainConfig, type TrainConfig } from '../../src/train/config.ts';
import type { OptimStepResult, TrainingEngine } from '../../src/train/engine.ts';
import { createTrainingEngine } from '../../src/train/engines/index.ts';
import { createProgress } from '../../src/train/metrics.ts';
import { buildEnv } from '../../src/train/run.ts';
import { mixSeed, Trainer, type TrainerEnv } from '../../src/train/trainer.ts';
import { tempDir } from '../helpers/tmp.ts';
import { red } from '../serve/helpers.ts';
import { writeCoinModel, writeConfig, writeTinySetup } from './tiny.ts';
import { SKIP_TORCH } from './torch-fixtures.ts';

type MetricRow = Record<string, number | null>;

const quiet = createProgress('none');
const lines = (dir: string): MetricRow[] =>
  readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as MetricRow);
const withoutTiming = (m: MetricRow): MetricRow =>
  Object.fromEntries(Object.entries(m).filter(([k]) => !k.startsWith('timing_s/') && k !== 'throughput/tokens_per_s'));
const checkpoint = (dir: string, step: number) => path.join(dir, 'checkpoints', `step-${step}`);

/** Every parameter of a checkpoint's fp32 model.safetensors, by name. */
function weights(dir: string): Map<string, Float32Array> {
  const f = new SafetensorsFile(path.join(dir, 'model.safetensors'));
  const out = new Map([...f.entries.keys()].map((n) => [n, f.readFloat(n)]));
  f.close();
  return out;
}

/**
 * The warmed tiny model (rollouts right about half the time) as a folder of its weights, config
 * and tokenizer only (no optimiser state to pick up), and its data.
 */
async function writeInitialModel(): Promise<{ init: string; train: string }> {
  const dir = tempDir('red-torch-trainer-');
  const coin = await writeCoinModel(dir, writeTinySetup(dir, 12));
  const init = path.join(dir, 'init');
  mkdirSync(init);
  for (const f of readdirSync(coin.model))
    if (!f.startsWith('optimizer-') && f !== 'trainer_state.json')
      copyFileSync(path.join(coin.model, f), path.join(init, f));
  return { init, train: coin.train };
}
const setup = SKIP_TORCH ? Promise.resolve({ init: '', train: '' }) : writeInitialModel();

describe('[torch] the trainer on engine.kind torch against native', { skip: SKIP_TORCH }, () => {
  let init: string; // the warmed tiny model: model.safetensors, config and tokenizer only
  let train: string;
  let env: TrainerEnv; // real data, tokenizer and verifier; generate: the frozen native sampler
  let native: TrainingEngine;
  let torch: TrainingEngine;

  const config = (method: string, sets: string[] = []): TrainConfig => {
    const raw: Record<string, unknown> = {
      method,
      seed: 3, // a seed whose first steps have an all-wrong group: ReLIFT and BREAD take their own steps
      model: { path: init },
      data: { train, epochs: 1 },
      rollout: { groupSize: 2, promptsPerStep: 2, maxTokens: 12 },
      algorithm: { sftInterleave: { bufferSize: 2 }, prefixSearch: { segments: 2 } },
      optim: { lr: 1e-3 },
      sft: { batchSize: 2 },
      checkpoint: { every: 1, keep: 10 },
      log: { progress: 'none' },
    };
    applySets(raw, sets);
    return resolveTrainConfig(raw, 'torch-trainer test');
  };

  /** The torch engine of `cfg` (fp32, one CPU rank), with the reference model the KL case needs. */
  const torchSettings = (cfg: TrainConfig) =>
    engineSettings({ ...cfg, engine: { ...cfg.engine, kind: 'torch' } }, true, () => {});

  /** Trains `engine` from the initial weights (or a checkpoint in `dir`, resume) up to maxSteps. */
  const trainOn = async (engine: TrainingEngine, cfg: TrainConfig, dir: string, maxSteps: number, resume = false) => {
    await engine.loadState(init);
    const trainer = new Trainer(
      { ...env, engine },
      { config: cfg, stages: resolveStages(cfg.algorithm), outDir: dir, maxSteps, resume, progress: quiet },
    );
    return trainer.run();
  };

  before(async () => {
    ({ init, train } = await setup);
    const cfg = config('red');
    env = await buildEnv(cfg, false);
    native = await createTrainingEngine(engineSettings(cfg, true, () => {}));
    torch = await createTrainingEngine(torchSettings(cfg));
  });
  after(async () => {
    await Promise.all([env?.engine.close(), native?.close(), torch?.close()]);
    await closeVerifier();
  });

  const cases: [string, string[], number][] = [
    ...PRESET_NAMES.map((m): [string, string[], number] => [m, m === 'sft-grpo' ? ['schedule.totalSteps=1'] : [], 2]),
    // The reference forward (KL), the rollback of several updates per batch, and micro-batches.
    ['red', ['algorithm.klCoef=0.05', 'optim.updatesPerBatch=2', 'optim.microBatchTokens=40'], 2],
    // RED (I)'s regulator where w leaves 1 (RED-SPEC Eq. 6): at lr 1e-3 the tiny model's entropies
    // move too little in these steps, at 1e-2 w is 1.24 at step 2.
    ['red', ['optim.lr=0.01'], 3],
  ];
  for (const [method, sets, steps] of cases) {
    test(`${method}${sets.length ? ` (${sets.join(' ')})` : ''}: ${steps} steps, native vs torch within fp32 tolerance`, async () => {
      const cfg = config(method, sets);
      const a = tempDir('red-tt-native-'),
        b = tempDir('red-tt-torch-');
      assert.equal(await trainOn(native, cfg, a, steps), steps);
      assert.equal(await trainOn(torch, cfg, b, steps), steps);
      assertSameRun(`${method} ${sets.join(' ')}`, a, b, init);
      const m = lines(b);
      // Every step is a real update, and the method's own step ran where it has one.
      for (const x of m) assert.ok(Number(x['grad/norm']) > 0, `step ${x.step}: grad/norm ${x['grad/norm']}`);
      if (method === 'relift')
        assert.ok(
          m.some((x) => x['relift/sft_steps'] === 1),
          'a ReLIFT SFT step ran',
        );
      if (method === 'bread')
        assert.ok(
          m.some((x) => Number(x['bread/branched_groups']) > 0),
          'BREAD branched',
        );
      if (method === 'sft-grpo')
        assert.deepEqual(
          m.map((x) => x.stage),
          [0, 1],
        );
      if (steps > 2)
        assert.ok(
          m.some((x) => x['red/w'] !== undefined && x['red/w'] !== 1),
          `red/w ${m.map((x) => x['red/w']).join(', ')}: the regulator moved w`,
        );
      if (sets.some((s) => s.startsWith('algorithm.klCoef')))
        assert.ok(Number(m[1]['kl/mean']) > 0, `kl/mean ${m[1]['kl/mean']}: the reference forward ran`);
    });
  }

  for (const method of ['red', 'relift']) {
    test(`${method} on torch: 2 steps, stop, resume in new engine processes for 2 more: bit-identical to 4 straight`, async () => {
      const cfg = config(method);
      const straight = tempDir('red-tt-straight-'),
        split = tempDir('red-tt-split-');
      assert.equal(await trainOn(torch, cfg, straight, 4), 4);
      assert.equal(await trainOn(torch, cfg, split, 2), 2);
      // As after a kill: nothing of the first half's engine process, all from the checkpoint.
      const fresh = await createTrainingEngine(torchSettings(cfg));
      try {
        assert.equal(await trainOn(fresh, cfg, split, 4, true), 4);
      } finally {
        await fresh.close();
      }
      assert.deepEqual(lines(split).map(withoutTiming), lines(straight).map(withoutTiming));
      // The state the checkpoint names (the shared engine may also hold other cases' optimisers).
      const state = JSON.parse(readFileSync(path.join(checkpoint(straight, 4), 'trainer_state.json'), 'utf8')) as {
        optimizers: string[];
      };
      assert.deepEqual(state.optimizers, method === 'relift' ? ['policy', 'sft'] : ['policy']);
      const files = ['trainer_state.json', 'model.safetensors', 'master.safetensors'].concat(
        state.optimizers.map((n) => `optimizer-${n}.safetensors`),
      );
      for (const f of files) {
        const x = readFileSync(path.join(checkpoint(straight, 4), f)),
          y = readFileSync(path.join(checkpoint(split, 4), f));
        assert.ok(x.equals(y), `${f} differs from the uninterrupted run's`);
      }
    });
  }

  for (const [from, to] of [
    ['native', 'torch'],
    ['torch', 'native'],
  ] as const) {
    test(`a checkpoint written on ${from} resumes on ${to}: within fp32 tolerance of 4 steps on either`, async () => {
      const cfg = config('relift');
      const engines = { native, torch };
      const straight = { native: tempDir('red-tt-n4-'), torch: tempDir('red-tt-t4-') };
      for (const k of ['native', 'torch'] as const) assert.equal(await trainOn(engines[k], cfg, straight[k], 4), 4);
      const moved = tempDir('red-tt-moved-');
      assert.equal(await trainOn(engines[from], cfg, moved, 2), 2);
      assert.equal(await trainOn(engines[to], cfg, moved, 4, true), 4);
      assertSameRun(`${from} → ${to} vs ${from}`, straight[from], moved, init);
      assertSameRun(`${from} → ${to} vs ${to}`, straight[to], moved, init);
    });
  }

  /**
   * Two steps on each engine with step 2 made bad by `poison` (undone after): step 2 must be counted
   * as skipped, change no parameter or moment (its checkpoint holds step 1's, bit for bit), and
   * leave the two engines' runs alike. Returns each engine's run folder.
   */
  const skippedStepRuns = async (
    cfg: TrainConfig,
    poison: (engine: TrainingEngine, e: TrainerEnv) => () => void,
  ): Promise<Record<string, string>> => {
    const runs: Record<string, string> = {};
    for (const engine of [native, torch]) {
      const dir = tempDir(`red-tt-skip-${engine.kind}-`);
      const undo = poison(engine, env);
      try {
        assert.equal(await trainOn(engine, cfg, dir, 2), 2);
      } finally {
        undo();
      }
      const m = lines(dir);
      assert.deepEqual(
        m.map((x) => x['steps/skipped']),
        [0, 1],
        `${engine.kind}: steps/skipped`,
      );
      assert.ok(!('grad/norm' in m[1]), `${engine.kind}: a non-finite grad/norm is left out of metrics.jsonl`);
      for (const f of ['model.safetensors', 'optimizer-policy.safetensors'])
        assert.ok(
          readFileSync(path.join(checkpoint(dir, 1), f)).equals(readFileSync(path.join(checkpoint(dir, 2), f))),
          `${engine.kind}: ${f} changed in the skipped step`,
        );
      runs[engine.kind] = dir;
    }
    assertSameRun('skipped step', runs.native, runs.torch, init);
    return runs;
  };

  test('a non-finite gradient: not applied on either engine (OptimStepResult), the step skipped alike', async () => {
    const results: Record<string, OptimStepResult[]> = { native: [], torch: [] };
    await skippedStepRuns(config('red'), (engine) => {
      // Step 2's coefficients are finite (±3e38 each) and overflow the gradient: the engine refuses it.
      const { forwardBackward, optimStep } = engine;
      let calls = 0;
      engine.forwardBackward = (h, dl, de) =>
        forwardBackward.call(engine, h, ++calls === 2 ? dl.map((x) => Math.sign(x) * 3e38) : dl, de);
      engine.optimStep = async (name, lr, max) => {
        const r = await optimStep.call(engine, name, lr, max);
        results[engine.kind].push(r);
        return r;
      };
      return () => ((engine.forwardBackward = forwardBackward), (engine.optimStep = optimStep));
    });
    for (const [kind, r] of Object.entries(results)) {
      assert.deepEqual(
        r.map((x) => x.applied),
        [true, false],
        `${kind}: applied per step`,
      );
      assert.ok(!Number.isFinite(r[1].gradNorm), `${kind}: grad norm ${r[1].gradNorm}`);
    }
  });

  test('a NaN coefficient (a NaN sampler logprob under TIS) skips the step alike on both engines', async () => {
    const cfg = config('grpo', ['algorithm.rolloutCorrection.mode=tis']);
    const step2 = mixSeed(cfg.seed, 2, 0); // the seed of step 2's first draw
    await skippedStepRuns(cfg, (_engine, e) => {
      const generate = e.generate;
      e.generate = async (prompts, req) => {
        const rows = await generate(prompts, req);
        if (req.seed !== step2) return rows;
        const [first, ...rest] = rows[0];
        return [[{ ...first, logprobs: [NaN, ...first.logprobs!.slice(1)] }, ...rest], ...rows.slice(1)];
      };
      return () => (e.generate = generate);
    });
  });
});

/**
 * fp32 tolerance between engines, from the golden tests' own: log π and entropy agree with
 * transformers to 1e-5 and gradients to 1e-5 of their largest entry, so every logged metric (means
 * of those, losses, grad norm, ratios, w, r̄) is held to |a − b| ≤ 1e-5·(1 + |a|), at every step.
 * The weights: AdamW's first steps are ≈ lr·sign(g), so an entry whose gradient is below that
 * agreement (|g| < 1e-5·max|g|) may step the other way; the update θ − θ0 is held to within 2% (in
 * L2) of itself, which allows one such entry in ~10^4 while a wrong gradient moves it by O(1).
 */
const METRIC_TOL = 1e-5;
const UPDATE_TOL = 2e-2;

function assertSameRun(what: string, a: string, b: string, init: string): void {
  const ma = lines(a).map(withoutTiming),
    mb = lines(b).map(withoutTiming);
  assert.equal(mb.length, ma.length, `${what}: steps`);
  let worst = 0,
    worstKey = '';
  ma.forEach((x, s) => {
    assert.deepEqual(Object.keys(mb[s]).sort(), Object.keys(x).sort(), `${what}: metric names at step ${s + 1}`);
    for (const [k, v] of Object.entries(x)) {
      const w = mb[s][k];
      if (v === null || w === null) {
        assert.equal(w, v, `${what}: ${k} at step ${s + 1}`);
        continue;
      }
      const d = Math.abs(v - w) / (1 + Math.abs(v));
      if (d > worst) ((worst = d), (worstKey = `${k} at step ${s + 1}: ${v} vs ${w}`));
    }
  });
  const wa = weights(checkpoint(a, ma.length)),
    wb = weights(checkpoint(b, mb.length)),
    w0 = weights(init);
  let diff = 0,
    moved = 0;
  for (const [n, x] of wa) {
    const y = wb.get(n)!,
      z = w0.get(n)!;
    for (let i = 0; i < x.length; i++) ((diff += (x[i] - y[i]) ** 2), (moved += (x[i] - z[i]) ** 2));
  }
  const update = Math.sqrt(diff / moved);
  console.log(
    `  ${what}: metrics within ${worst.toExponential(2)} (worst ${worstKey}); weights within ${update.toExponential(2)} of the update`,
  );
  assert.ok(worst <= METRIC_TOL, `${what}: ${worstKey} (|diff| / (1 + |a|) = ${worst.toExponential(2)})`);
  assert.ok(moved > 0 && update <= UPDATE_TOL, `${what}: weights differ by ${update.toExponential(2)} of the update`);
}

test(
  '[torch] red train through the CLI: engine.kind torch, rollout.engine engine, 2 GRPO steps, a checkpoint red generate loads; rollout.engine local refused',
  { skip: SKIP_TORCH },
  async () => {
    const { init, train } = await setup;
    const dir = tempDir('red-tt-cli-');
    const yaml = (where: string) =>
      writeConfig(
        path.join(dir, `${where}.yaml`),
        `model: { path: ${init} }
engine: { kind: torch }
data: { train: ${train}, epochs: 1 }
rollout: { engine: ${where}, groupSize: 2, promptsPerStep: 2, maxTokens: 12 }
optim: { lr: 1e-3 }
log: { progress: none }
`,
      );
    const out = path.join(dir, 'run');
    const r = red(['train', '--config', yaml('engine'), '--out', out, '--method', 'grpo', '--max-steps', '2']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^engine: .* 1 rank\(s\) on cpu, ddp, fp32$/m, 'the PyTorch engine trained');
    const m = lines(out);
    assert.deepEqual(
      m.map((x) => x.step),
      [1, 2],
    );
    for (const x of m) assert.ok(Number(x['grad/norm']) > 0 && Number(x['rollouts/generated']) > 0, JSON.stringify(x));
    const g = red([
      'generate',
      '--model',
      checkpoint(out, 2),
      '--prompt',
      'Pick 1 or 2.',
      '--chat',
      '--max-tokens',
      '6',
      '--json',
    ]);
    assert.equal(g.code, 0, g.stderr);
    const sample = JSON.parse(g.stdout.trim().split('\n')[0]) as { ids: number[] };
    assert.ok(sample.ids.length > 0 && sample.ids.length <= 6);

    const local = red(['train', '--config', yaml('local'), '--out', path.join(dir, 'refused'), '--max-steps', '1']);
    assert.notEqual(local.code, 0);
    assert.match(
      local.stderr,
      /^ {2}rollout\.engine: local .*engine\.kind torch.*rollout\.engine: engine .* or remote .*$/m,
    );
    assert.doesNotMatch(local.stderr, /^\s+at /m, 'no stack trace');
  },
);
