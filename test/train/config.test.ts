import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { DEFAULT_BF16_BACKWARD } from '../../src/engine/precision.ts';
import { applySets, configToYaml, engineSettings, readYamlConfig, resolveTrainConfig } from '../../src/train/config.ts';
import { RedError } from '../../src/util/errors.ts';
import { tempDir } from '../helpers/tmp.ts';

const minimal = () => ({ model: { path: 'm' }, data: { train: 't.jsonl' } }) as Record<string, unknown>;

test("defaults are RED-SPEC's paper-scale recipe", () => {
  const c = resolveTrainConfig(minimal(), 'test');
  // RED-SPEC "Defaults for the paper-scale recipe", written here from the spec.
  assert.equal(c.method, 'red');
  assert.equal(c.seed, 42);
  assert.equal(c.optim.lr, 2e-6);
  assert.deepEqual([c.optim.beta1, c.optim.beta2, c.optim.weightDecay, c.optim.maxGradNorm], [0.9, 0.95, 0, 1.0]);
  assert.deepEqual([c.schedule.warmupSteps, c.schedule.minLrRatio], [1, 0.1]);
  assert.deepEqual(
    [c.rollout.groupSize, c.rollout.promptsPerStep, c.rollout.temperature, c.rollout.topP, c.rollout.maxTokens],
    [7, 64, 1.0, 1.0, 8192],
  );
  assert.equal(c.data.maxPromptTokens, 1024);
  assert.equal(c.data.epochs, 5);
  assert.equal(c.optim.updatesPerBatch, 1);
  assert.deepEqual([c.sft.lr, c.sft.epochs], [5e-5, 3]);
  assert.equal(c.algorithm.groupFilter.maxFillAttempts, 6);
  assert.equal(c.algorithm.piOffline, 'accuracy'); // red = (I) + (II)
  assert.equal(c.algorithm.entropyRegulation, true);
});

test('every problem is listed by path in one error, the algorithm group included', () => {
  const raw = {
    ...minimal(),
    rollout: { groupSize: 1, tempreature: 1 },
    optim: { lr: 'fast' },
    log: { progress: 'fancy' },
    algorithm: { clip: { epsLow: -1 }, piOffline: 'two' },
  };
  assert.throws(
    () => resolveTrainConfig(raw, 'my.yaml'),
    (err: unknown) => {
      assert.ok(err instanceof RedError);
      const m = err.message;
      assert.match(m, /^invalid configuration \(my\.yaml\):/);
      for (const line of [
        'rollout.groupSize must be ≥ 2',
        'rollout.tempreature: unknown option',
        'optim.lr must be a number, got "fast"',
        'log.progress must be one of "auto", "bar", "plain", "none", got "fancy"',
        'algorithm.clip.epsLow must be ≥ 0',
        'algorithm.piOffline must be one of "one", "self", "luffy", "accuracy", "accuracy-no-sg", got "two"',
      ])
        assert.ok(m.includes(line), `missing "${line}" in:\n${m}`);
      return true;
    },
  );
  assert.throws(
    () => resolveTrainConfig({ method: 'ppo' }, 'x'),
    (err: Error) =>
      /model is required/.test(err.message) &&
      /data is required/.test(err.message) &&
      /method must be one of sft, grpo/.test(err.message),
  );
});

test('engine.bf16Backward: round or split (default DEFAULT_BF16_BACKWARD); anything else is named with the choices', () => {
  assert.equal(resolveTrainConfig(minimal(), 'test').engine.bf16Backward, DEFAULT_BF16_BACKWARD);
  for (const mode of ['round', 'split'] as const)
    assert.equal(
      resolveTrainConfig({ ...minimal(), engine: { bf16Backward: mode } }, 'test').engine.bf16Backward,
      mode,
    );
  assert.throws(
    () => resolveTrainConfig({ ...minimal(), engine: { precision: 'bf16', bf16Backward: 'nope' } }, 'my.yaml'),
    (err: unknown) =>
      err instanceof RedError &&
      err.message ===
        'invalid configuration (my.yaml):\n  engine.bf16Backward must be one of "round", "split", got "nope"',
  );
});

test('the engine group: its defaults, the EngineSettings built from it, and its keys named when wrong', () => {
  const c = resolveTrainConfig(minimal(), 'test');
  assert.deepEqual(c.engine, {
    kind: 'native',
    devices: 1,
    strategy: 'ddp',
    precision: 'fp32',
    activationCheckpointing: false,
    backend: 'auto',
    bf16Backward: DEFAULT_BF16_BACKWARD,
  });
  const log = () => {};
  const torch = resolveTrainConfig(
    {
      ...minimal(),
      model: { path: 'm', referencePath: 'r' },
      engine: { kind: 'torch', devices: 8, python: '/opt/py/bin/python3', strategy: 'fsdp', precision: 'bf16' },
      rollout: { engine: 'engine' },
    },
    'test',
  );
  assert.deepEqual(engineSettings(torch, true, log), {
    kind: 'torch',
    modelPath: 'm',
    referencePath: 'r',
    precision: 'bf16',
    activationCheckpointing: false,
    devices: 8,
    python: '/opt/py/bin/python3',
    strategy: 'fsdp',
    backend: 'auto',
    bf16Backward: DEFAULT_BF16_BACKWARD,
    log,
  });
  // The reference model is loaded only when a KL term needs it, from model.path by default.
  assert.equal(engineSettings(c, false, log).referencePath, null);
  assert.equal(engineSettings(c, true, log).referencePath, 'm');
  assert.throws(
    () => resolveTrainConfig({ ...minimal(), engine: { kind: 'cuda', strategy: 'zero3', devices: 0 } }, 'my.yaml'),
    (err: Error) =>
      /engine\.kind must be one of "native", "torch", got "cuda"/.test(err.message) &&
      /engine\.strategy must be one of "ddp", "fsdp", got "zero3"/.test(err.message) &&
      /engine\.devices must be ≥ 1/.test(err.message),
  );
});

test("engine.kind torch with rollout.engine local is refused with one line naming 'engine' and 'remote'", () => {
  assert.throws(
    () => resolveTrainConfig({ ...minimal(), engine: { kind: 'torch' } }, 'my.yaml'),
    (err: Error) =>
      err.message ===
      "invalid configuration (my.yaml):\n  rollout.engine: local samples on this process's CPU copy of the policy, which engine.kind torch does not keep; set rollout.engine: engine (sampling on the torch engine) or remote (red serve, SGLang or vLLM servers)",
  );
  for (const where of ['engine', 'remote'])
    assert.equal(
      resolveTrainConfig(
        { ...minimal(), engine: { kind: 'torch' }, rollout: { engine: where, servers: ['http://127.0.0.1:1'] } },
        'test',
      ).rollout.engine,
      where,
    );
});

test('rollout.weightSync nccl without engine.kind torch or rollout.engine remote is refused, one line each naming the fix', () => {
  const servers = ['http://127.0.0.1:1'];
  const problems = (engine: Record<string, unknown>, rollout: Record<string, unknown>) => {
    try {
      resolveTrainConfig({ ...minimal(), engine, rollout: { weightSync: 'nccl', ...rollout } }, 'my.yaml');
      return [];
    } catch (err) {
      return (err as Error).message.split('\n').slice(1);
    }
  };
  assert.deepEqual(problems({}, { engine: 'remote', servers }), [
    '  rollout.weightSync: nccl broadcasts from the PyTorch engine; set engine.kind: torch, or rollout.weightSync: disk',
  ]);
  assert.deepEqual(problems({ kind: 'torch' }, { engine: 'engine' }), [
    '  rollout.weightSync: nccl sends the weights to rollout.servers; set rollout.engine: remote, or rollout.weightSync: disk (rollout.engine is engine)',
  ]);
  const c = resolveTrainConfig(
    { ...minimal(), engine: { kind: 'torch' }, rollout: { engine: 'remote', servers, weightSync: 'nccl' } },
    'test',
  );
  assert.deepEqual([c.rollout.weightSync, c.rollout.nccl], ['nccl', { address: '127.0.0.1', port: 0 }]);
  assert.equal(resolveTrainConfig(minimal(), 'test').rollout.weightSync, 'disk');
});

test('model.precision, activationCheckpointing, bf16Backward and backend still work, read as engine.*, with one warning line', () => {
  const warnings: string[] = [];
  const c = resolveTrainConfig(
    {
      ...minimal(),
      model: {
        path: 'm',
        precision: 'bf16',
        activationCheckpointing: true,
        bf16Backward: 'round',
        backend: 'reference',
      },
    },
    'old.yaml',
    (line) => warnings.push(line),
  );
  assert.deepEqual(warnings, [
    'old.yaml: model.backend, model.precision, model.bf16Backward, model.activationCheckpointing moved to engine.backend, engine.precision, engine.bf16Backward, engine.activationCheckpointing; read as such (rename them in the config)',
  ]);
  assert.equal(c.engine.precision, 'bf16');
  assert.equal(c.engine.activationCheckpointing, true);
  assert.equal(c.engine.bf16Backward, 'round');
  assert.equal(c.engine.backend, 'reference');
  assert.deepEqual(Object.keys(c.model), ['path']);
  // Set in both places, the new key wins.
  const both = resolveTrainConfig(
    { ...minimal(), model: { path: 'm', precision: 'bf16' }, engine: { precision: 'fp32' } },
    'x',
    () => {},
  );
  assert.equal(both.engine.precision, 'fp32');
});

test('--set overrides any field with YAML-typed values', () => {
  const raw = minimal();
  applySets(raw, [
    'rollout.groupSize=4',
    'algorithm.clip.epsHigh=0.28',
    'rollout.stopStrings=["</s>", "Q:"]',
    'log.progress=plain',
    'algorithm.overlong.enabled=true',
  ]);
  const c = resolveTrainConfig(raw, 'x');
  assert.equal(c.rollout.groupSize, 4);
  assert.equal(c.algorithm.clip.epsHigh, 0.28);
  assert.deepEqual(c.rollout.stopStrings, ['</s>', 'Q:']);
  assert.equal(c.algorithm.overlong.enabled, true);
  assert.throws(() => applySets(minimal(), ['rollout.groupSize']), /expected key\.path=value/);
  assert.throws(() => applySets(minimal(), ['model.path.deep=1']), /model\.path is not an option group/);
});

test('the written config.yaml reads back to the same resolved config', () => {
  const raw = minimal();
  applySets(raw, ['method=luffy', 'rollout.groupSize=3']);
  const c = resolveTrainConfig(raw, 'x');
  const back = resolveTrainConfig(YAML.parse(configToYaml(c)), 'config.yaml');
  assert.deepEqual(back, c);
  assert.equal(back.algorithm.piOffline, 'luffy');
});

test('extends: a base file overridden key by key; paths relative to the file that sets them; cycles and missing bases are errors', () => {
  const dir = tempDir('red-cfg-');
  writeFileSync(
    path.join(dir, 'base.yaml'),
    'model: { path: m }\ndata: { train: t.jsonl, epochs: 2 }\nrollout: { groupSize: 4 }\n',
  );
  mkdirSync(path.join(dir, 'sub'));
  writeFileSync(
    path.join(dir, 'sub', 'grpo.yaml'),
    'extends: ../base.yaml\nmethod: grpo\nmodel: { referencePath: ref }\ndata: { epochs: 1 }\n',
  );
  const c = resolveTrainConfig(readYamlConfig(path.join(dir, 'sub', 'grpo.yaml')), 'grpo.yaml');
  assert.deepEqual(
    [c.method, c.model.path, c.model.referencePath, c.data.train, c.data.epochs, c.rollout.groupSize],
    ['grpo', path.join(dir, 'm'), path.join(dir, 'sub', 'ref'), path.join(dir, 't.jsonl'), 1, 4],
  );
  writeFileSync(path.join(dir, 'orphan.yaml'), 'extends: missing.yaml\n');
  assert.throws(
    () => readYamlConfig(path.join(dir, 'orphan.yaml')),
    (err: Error) =>
      err.message ===
      `${path.join(dir, 'orphan.yaml')}: extends missing.yaml, but ${path.join(dir, 'missing.yaml')} does not exist (the path is relative to ${path.join(dir, 'orphan.yaml')})`,
  );
  writeFileSync(path.join(dir, 'a.yaml'), 'extends: b.yaml\n');
  writeFileSync(path.join(dir, 'b.yaml'), 'extends: a.yaml\n');
  assert.throws(() => readYamlConfig(path.join(dir, 'a.yaml')), /forms a cycle/);
  writeFileSync(path.join(dir, 'bad.yaml'), 'model: [\n');
  assert.throws(() => readYamlConfig(path.join(dir, 'bad.yaml')), /bad\.yaml: not valid YAML/);
});
