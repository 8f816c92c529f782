import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Trainer, type TrainerEnv } from '../../src/train/trainer.ts';
import { resolveStages } from '../../src/rl/options.ts';
import { learningRate } from '../../src/train/schedule.ts';
import type { TrainConfig } from '../../src/train/config.ts';
import type { EngineBatch } from '../../src/train/engine.ts';
import { BigramEngine, fakeGenerate, makeConfig, makeEnv, quiet, TRAINER_STATE_FILE, V } from './fakes.ts';
import { mixSeed } from '../../src/train/env.ts';
import { resolveTrainConfig } from '../../src/train/config.ts';
import { tempDir } from '../helpers/tmp.ts';

const out = () => tempDir('red-train-');
const trainer = (
  env: TrainerEnv,
  config: TrainConfig,
  outDir: string,
  extra: { maxSteps?: number; resume?: boolean } = {},
) =>
  new Trainer(env, {
    config,
    stages: resolveStages(config.algorithm),
    outDir,
    maxSteps: extra.maxSteps,
    resume: extra.resume ?? false,
    progress: quiet,
  });
const metricLines = (dir: string) =>
  readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>);
const withoutTiming = (m: Record<string, number>) =>
  Object.fromEntries(Object.entries(m).filter(([k]) => !k.startsWith('timing_s/') && k !== 'throughput/tokens_per_s'));
const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

for (const method of ['red', 'sft-grpo', 'relift', 'bread', 'srft', 'luffy']) {
  test(`${method}: stopped at step 3, killed after step 5, resumed: bit-identical to an uninterrupted run`, async () => {
    const over = { method, algorithm: method === 'relift' ? { sftInterleave: { bufferSize: 2 } } : {} };
    const config = makeConfig(over);
    const dirA = out();
    const envA = makeEnv(config);
    const stepsA = await trainer(envA, config, dirA).run();
    assert.ok(stepsA >= 6, `ran ${stepsA} steps`);

    const dirB = out();
    assert.equal(await trainer(makeEnv(config), config, dirB, { maxSteps: 3 }).run(), 3);
    assert.ok(existsSync(path.join(dirB, 'checkpoints', 'step-3', TRAINER_STATE_FILE)));
    const cfgEvery2 = makeConfig({ ...over, checkpoint: { every: 2, keep: 10 } });
    assert.equal(await trainer(makeEnv(cfgEvery2), cfgEvery2, dirB, { maxSteps: 5, resume: true }).run(), 5);
    // SIGKILL after step 5 but before its checkpoint: only step-4 survives; the metrics file has step 5.
    rmSync(path.join(dirB, 'checkpoints', 'step-5'), { recursive: true });
    const envB = makeEnv(config, 6, new BigramEngine(99)); // different init: the checkpoint must overwrite it
    assert.equal(await trainer(envB, config, dirB, { resume: true }).run(), stepsA);

    assert.ok(bits(envA.engine.readParams()).equals(bits(envB.engine.readParams())), 'parameters differ');
    const a = metricLines(dirA).map(withoutTiming);
    const b = metricLines(dirB).map(withoutTiming);
    assert.deepEqual(b, a);
    assert.deepEqual(
      a.map((m) => m.step),
      Array.from({ length: stepsA }, (_, i) => i + 1),
    );
    for (const key of ['lr', 'grad/norm', 'loss/policy', 'groups/dropped_frac'])
      assert.ok(key in a[a.length - 1], `${key} missing`);
  });
}

test('lr follows the schedule per stage: sft stage with sft.lr, then grpo with optim.lr', async () => {
  const config = makeConfig({ method: 'sft-grpo' });
  const dir = out();
  await trainer(makeEnv(config), config, dir).run();
  const m = metricLines(dir);
  const sftSteps = Math.ceil((1 * 6) / 2); // sft.epochs × examples / sft.batchSize
  const rlSteps = Math.ceil((2 * 6) / 2); // data.epochs × examples / promptsPerStep
  assert.equal(m.length, sftSteps + rlSteps);
  for (let k = 0; k < m.length; k++) {
    const inSft = k < sftSteps;
    const expected = learningRate(inSft ? k + 1 : k + 1 - sftSteps, {
      lr: inSft ? 5e-5 : 0.05,
      warmupSteps: 1,
      minLrRatio: 0.1,
      totalSteps: inSft ? sftSteps : rlSteps,
    });
    assert.equal(m[k].lr, expected);
    assert.equal(m[k].stage, inSft ? 0 : 1);
  }
  assert.equal(m[0].lr, 5e-5);
  assert.ok(Math.abs(m[sftSteps - 1].lr - 5e-6) < 1e-18); // floor 0.1·lr at the last sft step
  assert.equal(m[sftSteps].lr, 0.05);
});

test('luffy: lrScale 0.5 halves optim.lr at every step', async () => {
  const config = makeConfig({ method: 'luffy' });
  const dir = out();
  await trainer(makeEnv(config), config, dir).run();
  const m = metricLines(dir);
  assert.ok(m.length >= 2);
  m.forEach((x, k) =>
    assert.equal(x.lr, learningRate(k + 1, { lr: 0.05 / 2, warmupSteps: 1, minLrRatio: 0.1, totalSteps: m.length })),
  );
  assert.equal(m[0].lr, 0.05 / 2);
});

test('algorithm.lr is refused with the two names a learning rate has (optim.lr, sft.lr)', () => {
  assert.throws(
    () =>
      resolveTrainConfig(
        { model: { path: 'm' }, data: { train: 'd' }, method: 'luffy', algorithm: { lr: 0.02 } },
        'x.yaml',
      ),
    /algorithm\.lr: the learning rate has one name per stage kind: set optim\.lr \(RL stages\) or sft\.lr \(SFT stages\)/,
  );
});

/** −Σ over scored tokens of log p(token | previous token) / N over recorded batches, computed directly from W. */
function directNll(w: Float32Array, batches: EngineBatch[]): number {
  let s = 0;
  let n = 0;
  for (const b of batches) {
    for (let q = 0; q + 1 < b.cuSeqlens.length; q++) {
      for (let t = b.cuSeqlens[q] + b.scoredFrom[q]; t < b.cuSeqlens[q + 1]; t++) {
        const row = Array.from(w.subarray(b.ids[t - 1] * V, b.ids[t - 1] * V + V), Number);
        const lse = Math.log(row.reduce((a, z) => a + Math.exp(z), 0));
        s -= row[b.ids[t]] - lse;
        n++;
      }
    }
  }
  return s / n;
}

test('SFT step: the gradient handed to the optimiser is d(token-mean NLL)/dW (finite differences), micro-batches included', async () => {
  for (const microBatchTokens of [0, 6]) {
    const config = makeConfig({ method: 'sft', optim: { lr: 0.05, microBatchTokens, maxGradNorm: 0 } });
    const env = makeEnv(config);
    const e = env.engine;
    const batches: EngineBatch[] = [];
    let grads: Float32Array | null = null;
    let micro = 0;
    const load = e.loadBatch.bind(e);
    e.loadBatch = async (b, o) => {
      const h = await load(b, o);
      if (!grads) {
        batches.push(b);
        micro = e.lastMicroBatches;
      }
      return h;
    };
    const optimStep = e.optimStep.bind(e);
    e.optimStep = async (name, lr, max) => {
      grads ??= e.readGrads();
      return optimStep(name, lr, max);
    };
    const w0 = e.readParams();
    await trainer(env, config, out(), { maxSteps: 1 }).run();
    assert.ok(grads);
    assert.equal(batches.length, 1, 'one batch per step');
    if (microBatchTokens > 0) assert.ok(micro > 1, 'expected several micro-batches');
    let worst = 0;
    for (let i = 0; i < V * V; i++) {
      const h = 1e-3;
      const wp = w0.slice();
      wp[i] += h;
      const wm = w0.slice();
      wm[i] -= h;
      const fd = (directNll(wp, batches) - directNll(wm, batches)) / (2 * h);
      worst = Math.max(worst, Math.abs(fd - grads![i]));
    }
    assert.ok(worst < 2e-4, `largest |FD − grad| = ${worst} (microBatchTokens ${microBatchTokens})`);
  }
});

test('offline traces: the chat prompt, then the trace truncated to the response limit, EOS only when not truncated', async () => {
  // A 3-token trace with a 3-token limit: trace + EOS would exceed the limit a rollout obeys, so
  // the EOS is what gets cut (the response is marked clipped).
  for (const [maxTokens, expectEos] of [
    [5, true],
    [4, true],
    [2, false],
    [3, false],
  ] as const) {
    const config = makeConfig({ method: 'sft', rollout: { groupSize: 3, promptsPerStep: 2, maxTokens } });
    const env = makeEnv(config);
    env.traceIds = (e) => [Number(e.answer), Number(e.answer) + 1, Number(e.answer) + 2].slice(0, 3); // 3 tokens
    const seen: EngineBatch[] = [];
    const load = env.engine.loadBatch.bind(env.engine);
    env.engine.loadBatch = (b, o) => {
      seen.push(b);
      return load(b, o);
    };
    await trainer(env, config, out(), { maxSteps: 1 }).run();
    const b = seen[0];
    const first = Array.from(b.ids.subarray(b.cuSeqlens[0], b.cuSeqlens[1]));
    const p = first[0];
    const a = (p + 1) % 7; // examples(): answer = problem + 1 (mod 7), prompt = [p, p]
    const trace = [a, a + 1, a + 2].slice(0, maxTokens);
    assert.ok(first.length - 2 <= maxTokens);
    assert.deepEqual(first, [p, p, ...trace, ...(expectEos ? [7] : [])], `maxTokens ${maxTokens}`);
    // Only the response is scored: the tokens after the 2-token prompt.
    assert.equal(b.scoredFrom[0], 2);
  }
});

test('step metrics describe the rollouts: accuracy, reward, length, clipped fraction', async () => {
  const config = makeConfig({ method: 'grpo', rollout: { groupSize: 3, promptsPerStep: 2, maxTokens: 5 } });
  const env = makeEnv(config);
  env.verify = async (items) => items.map((_, i) => i % 2); // [0,1,0 | 1,0,1]: 3 of 6 correct
  const dir = out();
  await trainer(env, config, dir, { maxSteps: 1 }).run();
  const [m] = metricLines(dir);
  // The same samples, drawn directly from the fake sampler with step 1's seed.
  const samples = (
    await fakeGenerate([[0], [0]], {
      n: 3,
      seed: mixSeed(7, 1, 0),
      temperature: 1,
      topP: 1,
      topK: 0,
      maxTokens: 5,
      stopStrings: [],
    })
  ).flat();
  assert.equal(m['acc/mean'], 0.5);
  assert.equal(m['reward/mean'], 0.5);
  assert.equal(m['reward/std'], 0.5); // rewards 0,1,0,1,0,1
  assert.equal(m['completions/mean_length'], samples.reduce((a, x) => a + x.ids.length, 0) / 6);
  assert.equal(m['completions/clipped_frac'], samples.filter((x) => x.finishReason === 'length').length / 6);
  assert.equal(m['groups/dropped_frac'], 0);
  assert.equal(m['rollouts/generated'], 6);
  assert.equal(
    m['tokens/trained'],
    samples.reduce((a, x) => a + x.ids.length, 0),
    'response tokens the update trained on',
  );
});

test('group filtering: all groups equal → every draw dropped, maxFillAttempts draws, no update', async () => {
  const config = makeConfig({ method: 'red', algorithm: { groupFilter: { maxFillAttempts: 3 } } });
  const env = makeEnv(config);
  env.verify = async (items) => items.map(() => 1); // rollouts all correct, like the trace
  let draws = 0;
  const gen = env.generate;
  env.generate = async (p, r) => {
    draws++;
    return gen(p, r);
  };
  const w0 = env.engine.readParams();
  const dir = out();
  await trainer(env, config, dir, { maxSteps: 1 }).run();
  const [m] = metricLines(dir);
  assert.equal(draws, 3);
  assert.equal(m['groups/draws'], 3);
  assert.equal(m['groups/dropped_frac'], 1);
  assert.equal(m['groups/kept'], 0);
  assert.equal(
    m['rollouts/generated'],
    3 * 2 * 3,
    'compute: 3 draws of 2 prompts × G = 3, all dropped, still generated',
  );
  assert.equal(m['tokens/trained'] ?? 0, 0);
  assert.equal(m['acc/mean'], 1);
  assert.ok(bits(w0).equals(bits(env.engine.readParams())));
});

test('NaN in the loss: the step is skipped (nothing applied, no checkpoint), 3 in a row stop the run', async () => {
  const config = makeConfig({ method: 'grpo' });
  const env = makeEnv(config);
  env.verify = async (items) => items.map((_, i) => i % 2); // every group has signal
  let step = 0;
  const gen = env.generate;
  env.generate = async (p, r) => {
    step++;
    return gen(p, r);
  };
  env.engine.poison = () => step === 2;
  const dir = out();
  let after1: Float32Array | null = null;
  const optimStep = env.engine.optimStep.bind(env.engine);
  env.engine.optimStep = async (name, lr, max) => {
    const r = await optimStep(name, lr, max);
    if (step === 1) after1 = env.engine.readParams();
    return r;
  };
  await trainer(env, config, dir, { maxSteps: 2 }).run();
  const m = metricLines(dir);
  assert.equal(m[1]['steps/skipped'], 1);
  assert.ok(!('loss/total' in m[1]), 'the NaN loss is not a number in the metrics');
  assert.ok(bits(after1!).equals(bits(env.engine.readParams())), 'a bad step changed the parameters');
  assert.ok(existsSync(path.join(dir, 'checkpoints', 'step-2')), 'the final checkpoint (good params) is written');
  const state = (s: number) =>
    JSON.parse(readFileSync(path.join(dir, 'checkpoints', `step-${s}`, TRAINER_STATE_FILE), 'utf8'));
  assert.deepEqual(state(2).entropyRegulator, state(1).entropyRegulator, 'the bad step moved the entropy regulator');

  const env2 = makeEnv(config);
  env2.verify = env.verify;
  let s2 = 0;
  env2.generate = async (p, r) => {
    s2++;
    return gen(p, r);
  };
  env2.engine.poison = () => s2 >= 2;
  const dir2 = out();
  await assert.rejects(trainer(env2, config, dir2).run(), /3 steps in a row \(up to step 4\) had NaN or Inf/);
  assert.deepEqual(
    metricLines(dir2).map((x) => x['steps/skipped']),
    [0, 1, 2],
  );
  assert.ok(existsSync(path.join(dir2, 'checkpoints', 'step-1')));
  assert.ok(
    !existsSync(path.join(dir2, 'checkpoints', 'step-2')) && !existsSync(path.join(dir2, 'checkpoints', 'step-3')),
  );
});

test('several updates per batch: a NaN in the second update undoes the first (params and moments)', async () => {
  const config = makeConfig({ method: 'grpo', optim: { lr: 0.05, updatesPerBatch: 2 } });
  const env = makeEnv(config);
  const e = env.engine;
  env.verify = async (items) => items.map((_, i) => i % 2);
  let step = 0;
  let forwardsAtStepStart = 0;
  const gen = env.generate;
  env.generate = async (p, r) => {
    step++;
    forwardsAtStepStart = e.forwards;
    return gen(p, r);
  };
  // Step 2: forward 1 is π_old (fine), forward 2 recomputes the policy for the second update (NaN).
  e.poison = () => step === 2 && e.forwards - forwardsAtStepStart >= 2;
  let snapshot: { params: Float32Array; m: Float32Array; step: number } | null = null;
  const optimStep = e.optimStep.bind(e);
  e.optimStep = async (name, lr, max) => {
    const r = await optimStep(name, lr, max);
    const s = e.optimizers.get('policy')!.state();
    if (step === 1 && s.step === 2) snapshot = { params: e.readParams(), m: s.m, step: s.step };
    return r;
  };
  const dir = out();
  await trainer(env, config, dir, { maxSteps: 2 }).run();
  const m = metricLines(dir);
  assert.equal(m[1]['steps/skipped'], 1);
  // (assigned inside a callback, which the compiler's narrowing does not see)
  const snap = snapshot as { params: Float32Array; m: Float32Array; step: number } | null;
  assert.ok(snap, 'step 1 made two updates');
  assert.ok(bits(snap.params).equals(bits(e.readParams())), 'the first update of the bad step was not undone');
  const opt = e.optimizers.get('policy')!.state();
  assert.equal(opt.step, 2);
  assert.ok(bits(snap.m).equals(bits(opt.m)));
});

test('a stop request (Ctrl-C) lets the step finish, checkpoints and returns', async () => {
  const config = makeConfig({ method: 'red', checkpoint: { every: 100, keep: 2 } });
  const env = makeEnv(config);
  const dir = out();
  const t = trainer(env, config, dir);
  let calls = 0;
  const gen = env.generate;
  env.generate = async (p, r) => {
    if (++calls === 2) t.requestStop();
    return gen(p, r);
  };
  const last = await t.run();
  assert.equal(last, t.step);
  assert.ok(last >= 1 && last <= 2);
  const state = JSON.parse(readFileSync(path.join(dir, 'checkpoints', `step-${last}`, TRAINER_STATE_FILE), 'utf8'));
  assert.equal(state.step, last);
});

test('teacher traces are verified: one whose answer does not verify is dropped from the offline pool and counted', async () => {
  // examples(): answer = problem + 1 (mod 7); ex:1 and ex:4 get a trace without their answer.
  const bad = new Set(['ex:1', 'ex:4']);
  for (const method of ['sft', 'red', 'relift']) {
    const config = makeConfig({
      method,
      sft: { batchSize: 2, epochs: 2 },
      algorithm: method === 'relift' ? { sftInterleave: { bufferSize: 2 } } : {},
    });
    const env = makeEnv(config);
    const calls: string[] = [];
    env.traceIds = (e) => {
      calls.push(e.id);
      const a = Number(e.answer);
      return bad.has(e.id) ? [(a + 3) % 7, (a + 3) % 7] : [a, a];
    };
    const dir = out();
    await trainer(env, config, dir, { maxSteps: 4 }).run();
    const m = metricLines(dir);
    assert.deepEqual(
      m.map((x) => x['data/offline_dropped']),
      [2, 2, 2, 2],
      method,
    );
    // The first 6 calls verify the pool; no later use (an offline member, an SFT batch) reads a dropped trace.
    assert.deepEqual(calls.slice(0, 6).sort(), ['ex:0', 'ex:1', 'ex:2', 'ex:3', 'ex:4', 'ex:5'], method);
    assert.ok(calls.length > 6, `${method}: no trace was used after the pool`);
    assert.deepEqual(
      calls.slice(6).filter((id) => bad.has(id)),
      [],
      `${method}: a trace that does not verify was used`,
    );
  }
});

test('entropy/rl and entropy/sft are logged once, from the pre-update policy: equal with 1 or 2 updates per batch', async () => {
  const first = async (updatesPerBatch: number) => {
    const config = makeConfig({ method: 'red', optim: { lr: 0.05, updatesPerBatch } });
    const dir = out();
    await trainer(makeEnv(config), config, dir, { maxSteps: 1 }).run();
    return metricLines(dir)[0];
  };
  const [one, two] = [await first(1), await first(2)];
  for (const key of ['entropy/rl', 'entropy/sft', 'red/w']) {
    assert.ok(Number.isFinite(one[key]), `${key} missing`);
    assert.equal(two[key], one[key], `${key}: the second update's post-update value was logged`);
  }
});

test("sft: entropy/sft is the mean over traces of each trace's token-mean entropy (pre-update)", async () => {
  const config = makeConfig({
    method: 'sft',
    sft: { batchSize: 6, epochs: 1 },
    rollout: { groupSize: 3, promptsPerStep: 2, maxTokens: 8 },
  });
  const env = makeEnv(config);
  // Traces of 1, 2 and 3 tokens (+ EOS): a token mean would weight the long ones more.
  env.traceIds = (e) => Array.from({ length: 1 + (Number(e.id.slice(3)) % 3) }, () => Number(e.answer));
  const W = env.engine.readParams();
  const entropyAt = (row: number): number => {
    const z = Array.from(W.subarray(row * V, row * V + V));
    const mx = Math.max(...z);
    const e = z.map((x) => Math.exp(x - mx));
    const s = e.reduce((a, b) => a + b, 0);
    return -e.reduce((h, x) => h + (x / s) * Math.log(x / s), 0);
  };
  // Response token t is predicted at the token before it: the last prompt token, then the trace.
  const perTrace = env.examples.map((e) => {
    const p = Number(e.problem);
    const trace = env.traceIds(e);
    const inputs = [p, ...trace]; // predicts trace tokens then EOS
    return inputs.reduce((a, row) => a + entropyAt(row), 0) / inputs.length;
  });
  const dir = out();
  await trainer(env, config, dir, { maxSteps: 1 }).run();
  const [m] = metricLines(dir);
  const expected = perTrace.reduce((a, b) => a + b, 0) / perTrace.length;
  assert.ok(
    Math.abs(m['entropy/sft'] - expected) < 1e-5,
    `entropy/sft ${m['entropy/sft']} vs per-trace mean ${expected}`,
  );
});
