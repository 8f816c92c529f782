// rollout.weightSync nccl on CPU: the PyTorch engine's rank 0 broadcasts its parameters to a
// stand-in SGLang server over loopback HTTP (test/serve/python/sglang_standin.py, a separate Python
// process that joins the group as SGLang's workers do, with gloo in place of NCCL). What the
// stand-in receives is compared byte for byte with what an independent reader finds in the
// engine's own saveForSampler folder, and a 2-step `red train` run syncs through it to a real
// `red serve` behind it. The vLLM flavour needs a real vLLM and a GPU (never here): its HTTP
// protocol is checked against recorded shapes in test/serve/weight-transfer.test.ts only.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { NcclWeightSync, type TensorSpec } from '../../src/rollout/weight-transfer.ts';
import { createProgress } from '../../src/train/metrics.ts';
import { runTrain } from '../../src/train/run.ts';
import { startServer, type Served } from '../serve/helpers.ts';
import { tempDir } from '../helpers/tmp.ts';
import { SKIP_TORCH, TORCH_PYTHON, goldenCase, openTorchEngine } from './torch-fixtures.ts';
import { writeTinySetup } from './tiny.ts';

const STANDIN = path.resolve('test/serve/python/sglang_standin.py');
const children: ChildProcess[] = [];
after(() => children.forEach((c) => c.kill('SIGKILL')));

/** Starts the stand-in SGLang server; `forward`: the red serve that gets every other route. */
function startStandIn(model: string, out: string, forward?: string): Promise<string> {
  const args = [STANDIN, '--model', model, '--out', out, ...(forward ? ['--forward', forward] : [])];
  const child = spawn(TORCH_PYTHON!, args, {
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    let text = '';
    child.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(text);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`the stand-in exited (${code}): ${err}`)));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

interface RawTensor {
  dtype: string;
  shape: number[];
  bytes: Buffer;
}

/** A safetensors file read from its definition (8-byte header length, JSON header, raw bytes): no reader of ours. */
function rawTensors(file: string): Map<string, RawTensor> {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const out = new Map<string, RawTensor>();
  for (const [name, h] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [a, b] = h.data_offsets;
    out.set(name, { dtype: h.dtype, shape: h.shape, bytes: buf.subarray(8 + n + a, 8 + n + b) });
  }
  return out;
}

/** Every tensor of `want` is in `got` with the same dtype, shape and bytes; returns how many were compared. */
function assertSameTensors(got: Map<string, RawTensor>, want: Map<string, RawTensor>, what: string): number {
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), `${what}: the same tensor names`);
  for (const [name, w] of want) {
    const g = got.get(name)!;
    assert.deepEqual([g.dtype, g.shape], [w.dtype, w.shape], `${what}: ${name}'s dtype and shape`);
    assert.ok(g.bytes.equals(w.bytes), `${what}: ${name} differs in its bytes`);
  }
  return want.size;
}

/** The calls the stand-in logged (route and body), in order. */
function standInCalls(out: string): { route: string; body: Record<string, unknown> }[] {
  return readFileSync(path.join(out, 'calls.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { route: string; body: Record<string, unknown> });
}

test(
  "[torch] NCCL sync to a stand-in SGLang (gloo): the received tensors are saveForSampler's, bit for bit, bf16 and fp32, after an optimiser step on two ranks",
  { skip: SKIP_TORCH },
  async () => {
    const g = goldenCase('untied');
    const out = tempDir('red-nccl-standin-');
    // Two ranks (DDP): rank 0 alone joins and sends; the other takes the requests and does nothing.
    const [e, url] = await Promise.all([openTorchEngine(g.dir, { devices: 2 }), startStandIn(g.dir, out)]);
    try {
      const b = await e.loadBatch(g.batch, { microBatchTokens: 0 });
      await e.createOptimizer('policy', { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0, noDecay: 'none' });
      await e.forwardBackward(b, g.coefLogprob, g.coefEntropy);
      assert.ok((await e.optimStep('policy', 1e-2, Infinity)).applied);
      assert.equal(e.world, 2);
      assert.equal(e.transferBackend, 'gloo', 'CPU ranks: gloo');
      const sync = new NcclWeightSync(
        {
          servers: [url],
          protocol: 'sglang',
          masterAddress: '127.0.0.1',
          masterPort: await freePort(),
          backend: e.transferBackend,
          timeoutS: 60,
        },
        e,
      );
      await sync.init();
      const source = rawTensors(path.join(g.dir, 'model.safetensors'));
      for (const [version, dtype, torchDtype] of [
        ['1', 'bf16', 'bfloat16'],
        ['2', 'fp32', 'float32'],
      ] as const) {
        const specs: TensorSpec[] = e.info.tensors.map((t) => ({ name: t.name, dtype: torchDtype, shape: t.shape }));
        await sync.sync(specs, version);
        const folder = path.join(tempDir('red-nccl-saved-'), 'policy');
        await e.saveForSampler(folder, dtype);
        const saved = rawTensors(path.join(folder, 'model.safetensors'));
        const received = rawTensors(path.join(out, `v${version}`, 'model.safetensors'));
        const n = assertSameTensors(received, saved, `${dtype} broadcast vs saveForSampler`);
        console.log(`  ${dtype}: ${n} tensors received bit for bit`);
        if (dtype === 'fp32') {
          const moved = [...received].filter(([name, t]) => !t.bytes.equals(source.get(name)!.bytes)).length;
          assert.ok(moved > 0, 'the optimiser step moved the weights the servers receive');
        }
      }
      // SGLang's request bodies: the group as the trainer's rank 0 joined it, the specs in the engine's order.
      const calls = standInCalls(out);
      assert.deepEqual(
        calls.map((c) => c.route),
        ['/init_weights_update_group', '/update_weights_from_distributed', '/update_weights_from_distributed'],
      );
      assert.deepEqual([calls[0].body.world_size, calls[0].body.rank_offset, calls[0].body.backend], [2, 1, 'gloo']);
      assert.deepEqual(
        calls[1].body.names,
        e.info.tensors.map((t) => t.name),
      );
      await e.releaseBatch(b);
    } finally {
      await e.close();
    }
  },
);

test(
  '[torch] red train with rollout.weightSync nccl: 2 steps, every sync through the group to the stand-in and the red serve behind it',
  { skip: SKIP_TORCH },
  async () => {
    const dir = tempDir('red-nccl-train-');
    const tiny = writeTinySetup(dir, 12);
    const out = path.join(dir, 'standin');
    let served: Served | null = null;
    try {
      served = await startServer(tiny.model, ['--backend', 'reference']);
      const url = await startStandIn(tiny.model, out, served.url);
      const cfg = path.join(dir, 'train.yaml');
      writeFileSync(
        cfg,
        `model: { path: ${tiny.model} }
engine: { kind: torch }
data: { train: ${tiny.train}, epochs: 1 }
rollout: { engine: remote, api: sglang, servers: [${url}], weightSync: nccl, groupSize: 2, promptsPerStep: 2, maxTokens: 12 }
algorithm: { groupFilter: { enabled: false }, rolloutCorrection: { mode: tis } }
optim: { lr: 1e-2 }
log: { progress: none }
`,
      );
      const run = path.join(dir, 'run');
      const last = await runTrain(
        { config: cfg, out: run, method: 'grpo', sets: [], maxSteps: 2, resume: false },
        createProgress('none'),
      );
      assert.equal(last, 2);
      const metrics = readFileSync(path.join(run, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, number>);
      assert.equal(metrics.length, 2);
      for (const m of metrics) assert.ok(m['timing_s/weight_sync'] > 0, 'timed');
      // One group, then one update per sync: the starting weights (version 0) and after each step.
      const calls = standInCalls(out);
      assert.deepEqual(
        calls.map((c) => `${c.route} ${c.body.weight_version ?? ''}`.trim()),
        [
          '/init_weights_update_group',
          '/update_weights_from_distributed 0',
          '/update_weights_from_distributed 1',
          '/update_weights_from_distributed 2',
        ],
      );
      assert.ok(
        calls.slice(1).every((c) => (c.body.dtypes as string[]).every((d) => d === 'bfloat16')),
        'rollout.syncDtype bf16 (the default)',
      );
      // The server behind generated from the broadcast weights: it loaded version 2's folder.
      const h = (await fetch(`${served.url}/health`).then((r) => r.json())) as { weight_version: string };
      assert.equal(h.weight_version, '2');
      // Version 2 is the run's final fp32 master weights rounded to bf16 (round to nearest even, computed here).
      const master = rawTensors(path.join(run, 'checkpoints', 'step-2', 'master.safetensors'));
      const received = rawTensors(path.join(out, 'v2', 'model.safetensors'));
      for (const [name, t] of received) {
        const f32 = master.get(name)!;
        const bits = new Uint32Array(
          f32.bytes.buffer.slice(f32.bytes.byteOffset, f32.bytes.byteOffset + f32.bytes.length),
        );
        const want = Buffer.alloc(bits.length * 2);
        bits.forEach((x, i) => want.writeUInt16LE(((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff, 2 * i));
        assert.ok(t.bytes.equals(want), `${name}: version 2 is the final master weights in bf16`);
      }
    } finally {
      await served?.stop();
    }
  },
);
