// End to end on a tiny real model (1-layer Qwen2, the built-in tokenizer, a half-right warm-up): every method
// runs through `red train`'s code path, leaves a loadable Hugging Face checkpoint and metrics;
// SFT lowers the NLL; a run killed with SIGKILL mid-step resumes to bit-identical weights; Ctrl-C
// checkpoints and exits cleanly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PRESET_NAMES } from '../../src/rl/options.ts';
import { runTrain } from '../../src/train/run.ts';
import { createProgress } from '../../src/train/metrics.ts';
import { Qwen2Model } from '../../src/model/qwen2.ts';
import { referenceBackend } from '../../src/engine/reference.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { paramLayout } from '../../src/model/params.ts';
import { MASTER_WEIGHTS_FILE } from '../../src/train/engine.ts';
import { writeCoinModel, writeTinySetup } from './tiny.ts';
import { tempDir } from '../helpers/tmp.ts';
import { writeVersion2State } from '../helpers/version2.ts';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const quiet = createProgress('none');
const setupDir = tempDir('red-e2e-');
const tiny = writeTinySetup(setupDir, 12);

// A model that can score (half right on its coin prompts): tiny.ts's warm-up.
const coin = await writeCoinModel(setupDir, tiny);

function config(extra = ''): string {
  const file = path.join(tempDir('red-cfg-'), 'train.yaml');
  writeFileSync(
    file,
    `model: { path: ${coin.model} }
engine: { backend: reference }
data: { train: ${coin.train}, epochs: 1 }
rollout: { groupSize: 2, promptsPerStep: 2, maxTokens: 12 }
algorithm: { sftInterleave: { bufferSize: 2 }, prefixSearch: { segments: 2 } }
optim: { lr: 1e-3 }
sft: { batchSize: 2 }
checkpoint: { every: 1, keep: 2 }
log: { progress: none }
${extra}`,
  );
  return file;
}
// The random tiny model on the built-in task, with room for whole teacher traces (they must verify).
const builtin = [`model.path=${tiny.model}`, `data.train=${tiny.train}`, 'rollout.maxTokens=400'];
const lines = (dir: string) =>
  readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>);
const out = () => path.join(tempDir('red-out-'), 'run');

for (const method of PRESET_NAMES) {
  test(`${method}: two steps, metrics and a loadable checkpoint`, async () => {
    const dir = out();
    // Options a preset does not use are harmless: relift's buffer and bread's segments are set for all.
    const overrides =
      method === 'relift' || method === 'bread'
        ? []
        : ['algorithm.sftInterleave.bufferSize=128', 'algorithm.prefixSearch.segments=10'];
    // sft-grpo gets one step per stage so both stages run.
    const sets = [...overrides, ...(method === 'sft-grpo' ? ['schedule.totalSteps=1'] : [])];
    const last = await runTrain({ config: config(), out: dir, method, sets, maxSteps: 2, resume: false }, quiet);
    assert.equal(last, 2);
    const m = lines(dir);
    assert.deepEqual(
      m.map((x) => x.step),
      [1, 2],
    );
    // Every step of every preset is a real update: groups kept, a non-zero finite gradient.
    for (const x of m) {
      assert.ok(
        x['grad/norm'] > 0 && Number.isFinite(x['grad/norm']),
        `step ${x.step}: grad/norm ${x['grad/norm']} (groups kept ${x['groups/kept']})`,
      );
    }
    const always = [
      'lr',
      'grad/norm',
      'loss/total',
      'timing_s/logprob',
      'timing_s/update',
      'throughput/tokens_per_s',
      'steps/skipped',
      'groups/dropped_frac',
    ];
    const online = [
      'reward/mean',
      'acc/mean',
      'completions/mean_length',
      'completions/clipped_frac',
      'entropy/rl',
      'red/w',
      'loss/policy',
      'loss/offline',
      'clip/frac',
      'timing_s/rollout',
      'timing_s/reward',
    ];
    const rolls = method !== 'sft'; // sft-grpo's second step is its GRPO stage
    for (const key of [...always, ...(rolls ? online : [])]) {
      assert.ok(key in m[1], `${key} missing from ${JSON.stringify(m[1])}`);
    }
    const ck = path.join(dir, 'checkpoints', 'step-2');
    for (const f of [
      'config.json',
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
      'optimizer-policy.safetensors',
      'trainer_state.json',
    ]) {
      assert.ok(existsSync(path.join(ck, f)), `${f} missing from the checkpoint`);
    }
    const loaded = await Qwen2Model.load(ck, { backend: referenceBackend });
    const base = await Qwen2Model.load(coin.model, { backend: referenceBackend });
    assert.ok(
      !Buffer.from(loaded.readParams().buffer).equals(Buffer.from(base.readParams().buffer)),
      'training changed nothing',
    );
    if (method === 'sft-grpo')
      assert.deepEqual(
        m.map((x) => x.stage),
        [0, 1],
      );
    const saved = readFileSync(path.join(dir, 'config.yaml'), 'utf8');
    assert.match(saved, new RegExp(`^method: ${method}$`, 'm'));
  });
}

test('klCoef > 0 loads the frozen reference model and logs the KL; several updates per batch with micro-batches run', async () => {
  const dir = out();
  await runTrain(
    {
      config: config(),
      out: dir,
      method: 'red',
      sets: ['algorithm.klCoef=0.05', 'optim.updatesPerBatch=2', 'optim.microBatchTokens=80'],
      maxSteps: 2,
      resume: false,
    },
    quiet,
  );
  const m = lines(dir);
  for (const x of m) {
    assert.ok(Number.isFinite(x['kl/mean']), 'kl/mean missing');
    assert.ok(x['kl/mean'] >= -1e-6, `k3 KL must be ≥ 0, got ${x['kl/mean']}`);
  }
  assert.ok(m[1]['kl/mean'] > 0, 'after one update the policy differs from the reference');
});

test('micro-batches accumulate the same gradient norm as the whole batch (real model)', async () => {
  const params = async (sets: string[]) => {
    const dir = out();
    // No clipping; the two runs differ only in micro-batching (each member ~54 tokens, so a
    // 60-token budget gives one member per micro-batch), and grad/norm is measured before AdamW.
    await runTrain(
      {
        config: config(),
        out: dir,
        method: 'mixpolicy',
        sets: ['optim.maxGradNorm=0', ...sets],
        maxSteps: 1,
        resume: false,
      },
      quiet,
    );
    return lines(dir)[0]['grad/norm'];
  };
  const whole = await params([]);
  const micro = await params(['optim.microBatchTokens=60']);
  assert.ok(Number.isFinite(whole) && whole > 0);
  assert.ok(Math.abs(whole - micro) <= 1e-5 * whole, `grad norm ${whole} (whole batch) vs ${micro} (micro-batches)`);
});

test('checkpoint.saveDtype bf16: BF16 weights (read by Python), fp32 masters beside them, exact resume', async () => {
  const sets = ['checkpoint.saveDtype=bf16'];
  const straight = out();
  await runTrain({ config: config(), out: straight, method: 'grpo', sets, maxSteps: 3, resume: false }, quiet);
  const split = out();
  await runTrain({ config: config(), out: split, method: 'grpo', sets, maxSteps: 1, resume: false }, quiet);
  await runTrain({ config: config(), out: split, method: 'grpo', sets, maxSteps: 3, resume: true }, quiet);
  const step3 = (dir: string) => path.join(dir, 'checkpoints', 'step-3');
  // Python's own JSON and struct read the header: every tensor BF16, 2 bytes per element.
  const py = spawnSync('python3', [
    '-c',
    `import json, struct, sys
f = open(sys.argv[1], 'rb'); n = struct.unpack('<Q', f.read(8))[0]; h = json.loads(f.read(n))
bad = [k for k, v in h.items() if k != '__metadata__' and (v['dtype'] != 'BF16' or v['data_offsets'][1] - v['data_offsets'][0] != 2 * max(1, __import__('math').prod(v['shape'])))]
print(len(h) - ('__metadata__' in h), 'tensors;', 'bad:', bad)`,
    path.join(step3(straight), 'model.safetensors'),
  ]);
  assert.equal(py.status, 0, String(py.stderr));
  assert.match(String(py.stdout), /^[1-9]\d* tensors; bad: \[\]/);
  // Resumed from the fp32 masters, not from their bf16 rounding: bit-identical to the straight run.
  const masters = (dir: string) => {
    const f = new SafetensorsFile(path.join(step3(dir), MASTER_WEIGHTS_FILE));
    const all = Float32Array.from(m0.layout.specs.flatMap((s) => [...f.readFloat(s.name)]));
    f.close();
    return all;
  };
  const m0 = await Qwen2Model.load(coin.model, { backend: referenceBackend });
  assert.ok(Buffer.from(masters(split).buffer).equals(Buffer.from(masters(straight).buffer)));
  // The BF16 folder loads as a model, its weights the masters rounded.
  const m = await Qwen2Model.load(step3(straight), { backend: referenceBackend });
  const want = masters(straight);
  const got = m.readParams(); // the layout order, as masters() reads them
  let worst = 0;
  for (let i = 0; i < want.length; i++)
    worst = Math.max(worst, Math.abs(got[i] - want[i]) / (Math.abs(want[i]) + 1e-30));
  assert.ok(worst > 0 && worst <= 2 ** -8, `bf16 rounding: largest relative change ${worst}`);
});

test('a checkpoint of the older parameter order (trainer state version 1) is refused with one line naming the fix', async () => {
  const dir = out();
  await runTrain({ config: config(), out: dir, method: 'grpo', sets: [], maxSteps: 1, resume: false }, quiet);
  const step1 = path.join(dir, 'checkpoints', 'step-1');
  const stateFile = path.join(step1, 'trainer_state.json');
  writeFileSync(stateFile, JSON.stringify({ ...JSON.parse(readFileSync(stateFile, 'utf8')), version: 1 }));
  await assert.rejects(
    runTrain({ config: config(), out: dir, method: 'grpo', sets: [], maxSteps: 2, resume: true }, quiet),
    (err: Error) => {
      assert.equal(
        err.message,
        `${step1}: written by an older red train whose parameter order differs, so its optimizer state cannot be resumed; start a new run from its weights (model.path: ${step1})`,
      );
      return true;
    },
  );
});

test('a version-2 checkpoint (flat state of the native layout, as red wrote it before the engine contract) resumes exactly', async () => {
  const sets = ['checkpoint.saveDtype=bf16'];
  const run = (dir: string, maxSteps: number, resume: boolean) =>
    runTrain({ config: config(), out: dir, method: 'relift', sets, maxSteps, resume }, quiet);
  const straight = out();
  await run(straight, 3, false);
  const split = out();
  await run(split, 1, false);
  // Rewrite step-1 as red wrote it before: master.safetensors one flat `params`, each optimiser
  // flat m, v and step in optimizer.safetensors / sft_optimizer.safetensors, trainer state version 2.
  const step1 = path.join(split, 'checkpoints', 'step-1');
  writeVersion2State(
    step1,
    step1,
    paramLayout((await Qwen2Model.load(coin.model, { backend: referenceBackend })).config),
  );
  const stateFile = path.join(step1, 'trainer_state.json');
  const state = JSON.parse(readFileSync(stateFile, 'utf8'));
  writeFileSync(
    stateFile,
    JSON.stringify({ ...state, version: 2, optimizers: ['optimizer.safetensors', 'sft_optimizer.safetensors'] }),
  );
  await run(split, 3, true);
  const step3 = (dir: string, f: string) => readFileSync(path.join(dir, 'checkpoints', 'step-3', f));
  for (const f of ['master.safetensors', 'optimizer-policy.safetensors', 'optimizer-sft.safetensors'])
    assert.ok(step3(straight, f).equals(step3(split, f)), `${f} differs from the uninterrupted run's`);
  const strip = (m: Record<string, number>) =>
    Object.fromEntries(
      Object.entries(m).filter(([k]) => !k.startsWith('timing_s/') && k !== 'throughput/tokens_per_s'),
    );
  assert.deepEqual(lines(split).map(strip), lines(straight).map(strip));
  assert.ok(
    lines(straight).some((m) => m['relift/sft_steps'] === 1),
    'ReLIFT made an SFT step (its optimiser is in the state)',
  );
});

test('rollout.engine engine (sampling on the training engine) draws what local draws: the same metrics, stop strings included', async () => {
  for (const extra of [[], ['rollout.stopStrings=["{"]']]) {
    const metrics = async (where: string) => {
      const dir = out();
      await runTrain(
        {
          config: config(),
          out: dir,
          method: 'grpo',
          sets: [`rollout.engine=${where}`, ...extra],
          maxSteps: 2,
          resume: false,
        },
        quiet,
      );
      return lines(dir).map((m) =>
        Object.fromEntries(
          Object.entries(m).filter(([k]) => !k.startsWith('timing_s/') && k !== 'throughput/tokens_per_s'),
        ),
      );
    };
    const local = await metrics('local');
    assert.deepEqual(await metrics('engine'), local, `rollout.engine engine vs local ${extra.join(' ')}`);
    if (extra.length === 0)
      assert.ok(
        local.some((m) => m['groups/kept'] > 0),
        'some step trained',
      );
    else
      assert.ok(
        local.every((m) => m['completions/mean_length'] < 5),
        'the stop string cut the samples short',
      );
  }
});

test('sft lowers the token-mean NLL of a fixed batch', async () => {
  const dir = out();
  // batchSize = the whole set: every step sees the same traces.
  await runTrain(
    {
      config: config(),
      out: dir,
      method: 'sft',
      sets: [...builtin, 'sft.batchSize=12', 'sft.lr=3e-3', 'schedule.totalSteps=4', 'schedule.warmupSteps=0'],
      maxSteps: 4,
      resume: false,
    },
    quiet,
  );
  const nll = lines(dir).map((x) => x['loss/sft']);
  assert.equal(nll.length, 4);
  for (let i = 1; i < nll.length; i++) assert.ok(nll[i] < nll[i - 1], `NLL went ${nll.join(' → ')}`);
});

test('a malformed row: an error naming file and row; with data.onBadRow skip it is counted', async () => {
  const bad = path.join(tempDir('red-bad-'), 'train.jsonl');
  const rows = readFileSync(tiny.train, 'utf8').trim().split('\n');
  rows.splice(2, 0, '{"problem": "no answer here"}');
  writeFileSync(bad, rows.join('\n') + '\n');
  await assert.rejects(
    runTrain({ config: config(), out: out(), sets: [`data.train=${bad}`], maxSteps: 1, resume: false }, quiet),
    (err: Error) => err.message.includes(bad) && /row 3/.test(err.message),
  );
  const dir = out();
  await runTrain(
    {
      config: config(),
      out: dir,
      method: 'sft',
      sets: [...builtin, `data.train=${bad}`, 'data.onBadRow=skip'],
      maxSteps: 1,
      resume: false,
    },
    quiet,
  );
  assert.equal(lines(dir)[0]['data/skipped_rows'], 1);
});

test('missing inputs are listed together before anything runs', async () => {
  await assert.rejects(
    runTrain(
      {
        config: config(),
        out: out(),
        sets: ['model.path=/nonexistent/model', 'data.train=/nonexistent/train.jsonl'],
        resume: false,
      },
      quiet,
    ),
    (err: Error) =>
      /model\.path: \/nonexistent\/model is not a model folder/.test(err.message) &&
      /data\.train: \/nonexistent\/train\.jsonl not found/.test(err.message),
  );
});

test('an unwritable output folder: a clear error before anything runs', async () => {
  const file = path.join(tempDir('red-f-'), 'file');
  writeFileSync(file, 'x');
  await assert.rejects(
    runTrain({ config: config(), out: path.join(file, 'run'), sets: [], maxSteps: 1, resume: false }, quiet),
    /cannot create the output folder .*file\/run: a part of the path is a file, not a folder \(ENOTDIR\)/,
  );
});

function redTrain(args: string[]): {
  child: ReturnType<typeof spawn>;
  done: Promise<{ code: number | null; signal: string | null; stderr: string }>;
} {
  const child = spawn(process.execPath, [path.join(repo, 'bin', 'red.js'), 'train', ...args], {
    cwd: repo,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; signal: string | null; stderr: string }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, stderr })),
  );
  return { child, done };
}

async function waitFor(cond: () => boolean, what: string, ms = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('SIGKILL mid-step, then --resume: bit-identical weights and optimiser at step 4', async () => {
  const cfg = config();
  const ref = out();
  await runTrain({ config: cfg, out: ref, method: 'red', sets: [], maxSteps: 4, resume: false }, quiet);

  const dir = out();
  const run = redTrain(['--config', cfg, '--out', dir, '--method', 'red', '--max-steps', '4']);
  // Kill as soon as step 2's checkpoint is complete: the process is then inside step 3.
  let exited = false;
  void run.done.then(() => (exited = true));
  await waitFor(
    () => exited || existsSync(path.join(dir, 'checkpoints', 'step-2', 'trainer_state.json')),
    'checkpoint step-2',
  );
  run.child.kill('SIGKILL');
  const r = await run.done;
  assert.equal(r.signal, 'SIGKILL', `the run ended before it was killed: ${r.stderr}`);
  assert.ok(!existsSync(path.join(dir, 'checkpoints', 'step-4')));
  await runTrain({ out: dir, sets: [], maxSteps: 4, resume: true }, quiet); // config from DIR/config.yaml
  for (const f of ['model.safetensors', 'optimizer-policy.safetensors']) {
    const a = readFileSync(path.join(ref, 'checkpoints', 'step-4', f));
    const b = readFileSync(path.join(dir, 'checkpoints', 'step-4', f));
    assert.ok(a.equals(b), `${f} differs between the uninterrupted and the resumed run`);
  }
  const strip = (m: Record<string, number>) =>
    Object.fromEntries(
      Object.entries(m).filter(([k]) => !k.startsWith('timing_s/') && k !== 'throughput/tokens_per_s'),
    );
  assert.deepEqual(lines(dir).map(strip), lines(ref).map(strip));
});

test('Ctrl-C: the current step finishes, a checkpoint is written, exit code 130', async () => {
  const dir = out();
  // Long enough (100 epochs) that only Ctrl-C ends it.
  const run = redTrain([
    '--config',
    config(),
    '--out',
    dir,
    '--method',
    'grpo',
    '--set',
    'checkpoint.every=1000',
    '--set',
    'data.epochs=100',
    '--set',
    'log.progress=plain',
  ]);
  let exited = false;
  void run.done.then(() => (exited = true));
  await waitFor(
    () =>
      exited ||
      (existsSync(path.join(dir, 'metrics.jsonl')) && readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').length > 0),
    'the first step',
  );
  if (exited) assert.fail(`the run ended by itself: ${(await run.done).stderr}`);
  run.child.kill('SIGINT');
  const r = await run.done;
  assert.equal(r.code, 130, r.stderr); // interrupted, as red eval and red demo report it
  assert.match(r.stderr, /Ctrl-C: finishing the current step/);
  assert.match(r.stderr, new RegExp(`to continue: red train --out ${dir} --resume\\n$`));
  const m = lines(dir);
  const last = m[m.length - 1].step;
  const state = JSON.parse(readFileSync(path.join(dir, 'checkpoints', `step-${last}`, 'trainer_state.json'), 'utf8'));
  assert.equal(state.step, last);
});

test('rollout/logprob_diff: the sampler and the trainer agree in fp32; mixed-precision training shows the drift', async () => {
  const diffs: number[] = [];
  for (const precision of ['fp32', 'bf16']) {
    const dir = out();
    await runTrain(
      {
        config: config(),
        out: dir,
        method: 'red',
        sets: [`engine.precision=${precision}`, 'engine.activationCheckpointing=true'],
        maxSteps: 2,
        resume: false,
      },
      quiet,
    );
    const m = lines(dir).filter((x) => (x['groups/kept'] ?? 0) > 0 && 'rollout/logprob_diff' in x);
    assert.ok(m.length > 0, `${precision}: no step logged rollout/logprob_diff`);
    diffs.push(Math.max(...m.map((x) => x['rollout/logprob_diff'])));
  }
  // fp32: the same model and backend score the sampled tokens (T = 1, no truncation): equal up to
  // summation order. bf16: the trainer's GEMMs round, the sampler's do not.
  console.log(`  rollout/logprob_diff: fp32 ${diffs[0].toExponential(2)}, bf16 mixed ${diffs[1].toExponential(2)}`);
  assert.ok(diffs[0] < 1e-4, `fp32 sampler vs trainer: ${diffs[0]}`);
  assert.ok(diffs[1] > 10 * diffs[0] && diffs[1] < 0.5, `bf16 mixed vs fp32 sampler: ${diffs[1]} (fp32 ${diffs[0]})`);
});
