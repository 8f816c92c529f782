// TIS in the update: with every importance weight at its cap C the policy gradient is exactly C
// times the uncorrected one (the gradient norm before clipping says so), and mode none ignores
// the sampler's logprobs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { objectives } from '../../src/rl/index.ts';
import { StepTimer } from '../../src/train/env.ts';
import type { Member } from '../../src/train/pack.ts';
import { ADAMW_DEFAULTS } from '../../src/train/engine.ts';
import { policyUpdate, updateSettings } from '../../src/train/update.ts';
import { BigramEngine, makeConfig, makeEnv } from './fakes.ts';

test('rolloutCorrection tis scales the policy gradient by min(π_old/π_rollout, C)', async () => {
  const config = makeConfig({ method: 'grpo', optim: { lr: 0.05, maxGradNorm: 0 } });
  const o = config.algorithm;
  // π_rollout far below π_old: every weight is capped at C.
  const members: Member[] = [
    {
      group: 0,
      promptIds: [1, 2],
      responseIds: [3, 4, 5],
      isOffline: false,
      accuracy: 1,
      reward: 1,
      clipped: false,
      rolloutLogprobs: [-50, -50, -50],
    },
    {
      group: 0,
      promptIds: [1, 2],
      responseIds: [6, 2],
      isOffline: false,
      accuracy: 0,
      reward: 0,
      clipped: false,
      rolloutLogprobs: [-50, -50],
    },
  ];
  const norm = async (mode: 'none' | 'tis', cap: number) => {
    const env = makeEnv(config, 6, new BigramEngine(3));
    await env.engine.createOptimizer('policy', { ...ADAMW_DEFAULTS, noDecay: 'none' });
    const r = await policyUpdate(
      env.engine,
      updateSettings(config),
      {
        members,
        lr: 0.05,
        optimizer: 'policy',
        loss: (b, ctx) => objectives[o.objective](b, o, ctx),
        klCoef: 0,
        regulator: null,
        rolloutCorrection: { mode, cap },
      },
      new StepTimer(),
    );
    assert.ok(r.ok);
    return r.metrics;
  };
  const plain = await norm('none', 2);
  const tis2 = await norm('tis', 2);
  const tis3 = await norm('tis', 3);
  assert.ok(plain['grad/norm'] > 0);
  assert.ok(
    Math.abs(tis2['grad/norm'] / plain['grad/norm'] - 2) < 1e-5,
    `${tis2['grad/norm']} vs 2 × ${plain['grad/norm']}`,
  );
  assert.ok(Math.abs(tis3['grad/norm'] / plain['grad/norm'] - 3) < 1e-5);
  assert.equal(tis2['rollout/is_weight_mean'], 2);
  assert.ok(plain['rollout/logprob_diff'] > 40);
});
