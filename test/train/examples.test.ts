import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PRESET_NAMES } from '../../src/rl/options.ts';
import { readYamlConfig, resolveTrainConfig } from '../../src/train/config.ts';
import { configChanges } from '../../src/train/runfolder.ts';

const examples = fileURLToPath(new URL('../../examples/', import.meta.url));

test('examples/builtin: one valid config per method, named after it', () => {
  const files = readdirSync(path.join(examples, 'builtin')).filter((f) => f.endsWith('.yaml') && f !== 'base.yaml');
  assert.deepEqual(files.map((f) => f.replace(/\.yaml$/, '')).sort(), [...PRESET_NAMES].sort());
  for (const f of files) {
    const c = resolveTrainConfig(readYamlConfig(path.join(examples, 'builtin', f)), f);
    assert.equal(c.method, f.replace(/\.yaml$/, ''));
    // Paths are relative to the config file: these name the repository's runs/ (the README's commands).
    assert.equal(c.model.path, path.join(examples, '..', 'runs', 'builtin', 'base'));
    assert.equal(c.data.train, path.join(examples, '..', 'runs', 'builtin', 'data', 'train.jsonl'));
  }
});

test('examples/paper: the RED-SPEC recipe for Qwen2.5-Math-1.5B', () => {
  const c = resolveTrainConfig(readYamlConfig(path.join(examples, 'paper', 'qwen2.5-math-1.5b-red.yaml')), 'paper');
  assert.equal(c.method, 'red');
  assert.equal(c.data.fields, 'luffy');
  // Hub ids stay ids (the run resolves them to the HF cache); they are not made into paths beside the file.
  assert.deepEqual([c.model.path, c.data.train], ['Qwen/Qwen2.5-Math-1.5B', 'Elliott/Openr1-Math-46k-8192']);
  assert.deepEqual(
    [
      c.optim.lr,
      c.rollout.promptsPerStep,
      c.rollout.groupSize,
      c.rollout.maxTokens,
      c.data.maxPromptTokens,
      c.data.epochs,
      c.seed,
    ],
    [2e-6, 64, 7, 8192, 1024, 5, 42],
  );
});

test('examples/paper: the 8-GPU recipe is the paper recipe with only the engine, the rollout servers and the micro-batch changed', () => {
  const read = (f: string) => resolveTrainConfig(readYamlConfig(path.join(examples, 'paper', f)), f);
  const one = read('qwen2.5-math-1.5b-red.yaml');
  const eight = read('qwen2.5-math-1.5b-red-8gpu.yaml');
  assert.deepEqual(
    [eight.engine.kind, eight.engine.devices, eight.engine.strategy, eight.engine.precision],
    ['torch', 8, 'ddp', 'bf16'],
  );
  assert.equal(eight.engine.activationCheckpointing, true);
  assert.equal(eight.rollout.engine, 'remote');
  assert.equal(eight.rollout.servers.length, 2);
  // Every key outside these groups (method, model, data, algorithm, lr, G, prompts per step, …) is the paper's.
  const changed = configChanges(one, eight).map((c) => c.split(' ')[0]);
  const allowed = /^(engine\.|rollout\.(engine|servers|api|syncDir)$|optim\.microBatchTokens$)/;
  assert.deepEqual(
    changed.filter((k) => !allowed.test(k)),
    [],
  );
  assert.ok(changed.includes('engine.kind'));
});
