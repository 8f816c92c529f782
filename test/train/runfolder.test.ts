// The run folder of `red train` cannot be lost or corrupted: a rerun without --resume is refused
// (it used to truncate metrics.jsonl and let `keep` delete its own new checkpoint), --force starts
// over keeping nothing, but only once the new run's inputs have loaded; --resume with another
// method is refused, other changed keys are listed;
// two `red train` processes on one folder: the second is refused with the first one's PID.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTrain } from '../../src/train/run.ts';
import { createProgress } from '../../src/train/metrics.ts';
import { writeTinySetup } from './tiny.ts';
import { tempDir } from '../helpers/tmp.ts';

const BIN = fileURLToPath(new URL('../../bin/red.js', import.meta.url));
const quiet = createProgress('none');
const root = tempDir('red-runfolder-');
const tiny = writeTinySetup(root, 8);
const cfg = path.join(root, 'train.yaml');
writeFileSync(
  cfg,
  `model: { path: ${tiny.model} }
engine: { backend: reference }
data: { train: ${tiny.train}, epochs: 1 }
rollout: { groupSize: 2, promptsPerStep: 2, maxTokens: 240 }  # whole teacher traces (they must verify within the limit)
sft: { batchSize: 2 }
checkpoint: { every: 1, keep: 2 }
log: { progress: none }
`,
);
let n = 0;
const outDir = () => path.join(root, `run-${n++}`);
const steps = (dir: string) =>
  readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { step: number }).step);
const checkpoints = (dir: string) =>
  readdirSync(path.join(dir, 'checkpoints'))
    .filter((d) => d.startsWith('step-'))
    .sort();

test('a rerun into a folder holding a run is refused and changes nothing; --force starts over keeping nothing', async () => {
  const dir = outDir();
  await runTrain({ config: cfg, out: dir, method: 'sft', sets: [], maxSteps: 3, resume: false }, quiet);
  const metricsBefore = readFileSync(path.join(dir, 'metrics.jsonl'));
  assert.deepEqual(checkpoints(dir), ['step-2', 'step-3']);
  await assert.rejects(
    runTrain({ config: cfg, out: dir, method: 'sft', sets: [], maxSteps: 1, resume: false }, quiet),
    (err: Error) =>
      err.message.startsWith(`${dir} already holds a run (`) &&
      /add --resume to continue it, --force to delete it and start over, or choose another --out$/.test(err.message),
  );
  assert.ok(readFileSync(path.join(dir, 'metrics.jsonl')).equals(metricsBefore), 'metrics.jsonl was touched');
  assert.deepEqual(checkpoints(dir), ['step-2', 'step-3']);

  await runTrain({ config: cfg, out: dir, method: 'sft', sets: [], maxSteps: 1, resume: false, force: true }, quiet);
  assert.deepEqual(steps(dir), [1]);
  assert.deepEqual(checkpoints(dir), ['step-1']);
});

test('a run that failed before its first step does not block the corrected command', async () => {
  const dir = outDir();
  await assert.rejects(
    runTrain(
      {
        config: cfg,
        out: dir,
        method: 'sft',
        sets: ['data.fields=problem=nope,answer=answer'],
        maxSteps: 1,
        resume: false,
      },
      quiet,
    ),
    /missing field 'nope'/,
  );
  await runTrain({ config: cfg, out: dir, method: 'sft', sets: [], maxSteps: 1, resume: false }, quiet);
  assert.deepEqual(steps(dir), [1]);
});

test('--force with an input that fails to load keeps the run it would replace', async () => {
  const dir = outDir();
  await runTrain({ config: cfg, out: dir, method: 'sft', sets: [], maxSteps: 2, resume: false }, quiet);
  const config = readFileSync(path.join(dir, 'config.yaml'), 'utf8');
  await assert.rejects(
    runTrain(
      {
        config: cfg,
        out: dir,
        method: 'grpo',
        sets: ['data.fields=problem=nope,answer=answer'],
        maxSteps: 1,
        resume: false,
        force: true,
      },
      quiet,
    ),
    /missing field 'nope'/,
  );
  assert.equal(readFileSync(path.join(dir, 'config.yaml'), 'utf8'), config);
  assert.deepEqual(steps(dir), [1, 2]);
  assert.deepEqual(checkpoints(dir), ['step-1', 'step-2']);
});

test('--resume with another method is refused and leaves config.yaml; other changed keys are listed', async () => {
  const dir = outDir();
  await runTrain({ config: cfg, out: dir, method: 'sft', sets: [], maxSteps: 1, resume: false }, quiet);
  const saved = readFileSync(path.join(dir, 'config.yaml'), 'utf8');
  const other = spawnSync(
    process.execPath,
    [BIN, 'train', '--out', dir, '--resume', '--method', 'grpo', '--max-steps', '2'],
    { encoding: 'utf8' },
  );
  assert.equal(other.status, 1, other.stderr);
  assert.equal(other.stderr.trim().split('\n').length, 1, other.stderr);
  assert.match(
    other.stderr,
    /^red: --resume: method "sft" → "grpo" since .* was started, so its checkpoint belongs to another run; resume with the same method, add --force/,
  );
  assert.equal(readFileSync(path.join(dir, 'config.yaml'), 'utf8'), saved);
  const forced = spawnSync(
    process.execPath,
    [BIN, 'train', '--out', dir, '--resume', '--force', '--method', 'grpo', '--max-steps', '2'],
    { encoding: 'utf8' },
  );
  assert.equal(forced.status, 0, forced.stderr);
  assert.match(forced.stderr, /resuming with settings changed since .*: method "sft" → "grpo"/);
  assert.match(readFileSync(path.join(dir, 'config.yaml'), 'utf8'), /^method: grpo$/m);
  assert.deepEqual(steps(dir), [1, 2]);

  const lr = spawnSync(
    process.execPath,
    [BIN, 'train', '--out', dir, '--resume', '--set', 'sft.lr=1e-4', '--max-steps', '3'],
    { encoding: 'utf8' },
  );
  assert.equal(lr.status, 0, lr.stderr);
  assert.match(lr.stderr, /resuming with settings changed since .*: sft\.lr 0\.00005 → 0\.0001/);
  assert.deepEqual(steps(dir), [1, 2, 3]);
});

test("two red train processes on one folder: the second is refused with the first one's PID", async () => {
  const dir = outDir();
  const first = spawn(
    process.execPath,
    [
      BIN,
      'train',
      '--config',
      cfg,
      '--out',
      dir,
      '--method',
      'sft',
      '--set',
      'sft.epochs=1000',
      '--set',
      'checkpoint.every=1000',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  first.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise((r) => first.on('exit', r));
  try {
    const t0 = Date.now();
    while (!(
      existsSync(path.join(dir, 'metrics.jsonl')) && readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').length > 0
    )) {
      if (Date.now() - t0 > 60_000 || first.exitCode !== null) assert.fail(`the first run did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const second = spawnSync(process.execPath, [BIN, 'train', '--out', dir, '--resume'], { encoding: 'utf8' });
    assert.equal(second.status, 1);
    assert.equal(
      second.stderr,
      `red: ${dir} is in use by PID ${first.pid} (red train); wait for it to finish, stop it, or use another folder\n`,
    );
  } finally {
    first.kill('SIGKILL');
    await exited;
  }
});

test('config paths are relative to the config file; config.yaml records them absolute, so --resume works from anywhere', () => {
  const cfgDir = path.join(root, 'configs');
  mkdirSync(cfgDir, { recursive: true });
  writeFileSync(
    path.join(cfgDir, 'rel.yaml'),
    `extends: ../train.yaml
model: { path: ${path.relative(cfgDir, tiny.model)} }
data: { train: ${path.relative(cfgDir, tiny.train)} }
`,
  );
  const dir = outDir();
  // Started from the folder above the config (the paths would not resolve from there as written).
  const first = spawnSync(
    process.execPath,
    [BIN, 'train', '--config', 'configs/rel.yaml', '--out', dir, '--method', 'sft', '--max-steps', '1'],
    { cwd: root, encoding: 'utf8' },
  );
  assert.equal(first.status, 0, first.stderr);
  const saved = readFileSync(path.join(dir, 'config.yaml'), 'utf8');
  assert.match(saved, new RegExp(`^  path: ${tiny.model}$`, 'm'));
  assert.match(saved, new RegExp(`^  train: ${tiny.train}$`, 'm'));
  const again = spawnSync(process.execPath, [BIN, 'train', '--out', dir, '--resume', '--max-steps', '2'], {
    cwd: tmpdir(),
    encoding: 'utf8',
  });
  assert.equal(again.status, 0, again.stderr);
  assert.deepEqual(steps(dir), [1, 2]);
});

test('rollout.syncDir has one writer: a second trainer syncing to the same folder is refused before it starts', async () => {
  const syncDir = path.join(root, 'shared-sync');
  const { lockFolder } = await import('../../src/util/lock.ts');
  const held = lockFolder(syncDir, 'train (weight sync)');
  try {
    const sets = ['rollout.engine=remote', 'rollout.servers=[http://127.0.0.1:9]', `rollout.syncDir=${syncDir}`];
    await assert.rejects(
      runTrain({ config: cfg, out: outDir(), method: 'grpo', sets, maxSteps: 1, resume: false }, quiet),
      (err: Error) =>
        err.message === `${syncDir} is in use by this process; wait for it to finish, stop it, or use another folder`,
    );
  } finally {
    held.release();
  }
});
