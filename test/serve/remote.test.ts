// Remote rollouts against real `red serve` processes: a GRPO run over two servers (OpenAI and
// SGLang APIs) trains with weight sync and TIS, the servers' logprobs agree with the trainer's
// π_old; a server killed while it generates leaves the step to the other; a server that answers
// garbage is retried and then gives one clear error.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { RemoteRollouts } from '../../src/rollout/remote.ts';
import { resolveTrainConfig } from '../../src/train/config.ts';
import { createProgress } from '../../src/train/metrics.ts';
import { rolloutImportanceWeights } from '../../src/train/update.ts';
import { runTrain } from '../../src/train/run.ts';
import { writeTinySetup } from '../train/tiny.ts';
import { startServer, type Served } from './helpers.ts';
import { tempDir } from '../helpers/tmp.ts';

const tiny = writeTinySetup(tempDir('red-remote-'), 12);
let a: Served, b: Served;
// The reference backend on both sides: the servers then draw exactly the trainer's own tokens.
before(async () => {
  [a, b] = await Promise.all([
    startServer(tiny.model, ['--backend', 'reference']),
    startServer(tiny.model, ['--backend', 'reference']),
  ]);
});
after(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
});

const request = { n: 4, seed: 1, temperature: 1, topP: 1, topK: 0, maxTokens: 300, stopStrings: [], stopTokenIds: [] };

/** Runs 2 GRPO steps with `rollout` settings; returns the metrics of each step. */
async function grpoRun(rollout: string, dir = tempDir('red-remote-run-')): Promise<Record<string, number>[]> {
  const cfg = path.join(dir, 'train.yaml');
  writeFileSync(
    cfg,
    `model: { path: ${tiny.model} }
engine: { backend: reference }
data: { train: ${tiny.train}, epochs: 1 }
rollout: { groupSize: 2, promptsPerStep: 2, maxTokens: 12, syncDir: ${path.join(dir, 'sync')}, ${rollout} }
algorithm: { groupFilter: { enabled: false }, rolloutCorrection: { mode: tis }, entropyCoef: 1 }
optim: { lr: 1e-2 }
log: { progress: none }
`,
  );
  const out = path.join(dir, 'run');
  assert.equal(
    await runTrain({ config: cfg, out, method: 'grpo', sets: [], maxSteps: 2, resume: false }, createProgress('none')),
    2,
  );
  return readFileSync(path.join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>);
}

for (const api of ['openai', 'sglang'] as const) {
  test(`a GRPO run with rollout.engine remote (${api}) over two servers trains${api === 'openai' ? ' as the local engine does' : ''}`, async () => {
    // fp32 sync: the servers hold exactly the trainer's weights.
    const m = await grpoRun(`engine: remote, api: ${api}, servers: [${a.url}, ${b.url}], syncDtype: fp32`);
    // Same weights, same seeds, same kernels: the servers sample the tokens the local engine samples,
    // also after the first weight sync. (Through /generate each sample has a seed of its own, which
    // the local engine does not mirror: there only the logprobs below are compared.)
    if (api === 'openai') {
      const local = await grpoRun('engine: local');
      for (const key of ['completions/mean_length', 'reward/mean', 'loss/total', 'grad/norm']) {
        assert.deepEqual(
          m.map((x) => x[key]),
          local.map((x) => x[key]),
          key,
        );
      }
    }
    for (const step of m) {
      // The servers run the trainer's own f32 weights: their logprobs are π_old up to rounding.
      assert.ok(step['rollout/logprob_diff'] < 1e-4, `rollout/logprob_diff ${step['rollout/logprob_diff']}`);
      assert.ok(Math.abs(step['rollout/is_weight_mean'] - 1) < 1e-3);
      assert.ok(step['timing_s/weight_sync'] > 0);
    }
    for (const s of [a, b]) {
      const h = (await fetch(`${s.url}/health`).then((r) => r.json())) as { weight_version: string };
      assert.equal(h.weight_version, '2');
    }
  });
}

test('rollout.syncDtype bf16 (the default): the synced folder holds BF16 tensors and the servers sample from them', async () => {
  const dir = tempDir('red-remote-bf16-');
  const m = await grpoRun(`engine: remote, servers: [${a.url}, ${b.url}]`, dir);
  const st = readFileSync(path.join(dir, 'sync', 'policy', 'model.safetensors'));
  const header = JSON.parse(st.subarray(8, 8 + Number(st.readBigUInt64LE(0))).toString('utf8')) as Record<
    string,
    { dtype?: string }
  >;
  const dtypes = new Set(
    Object.entries(header)
      .filter(([k]) => k !== '__metadata__')
      .map(([, v]) => v.dtype),
  );
  assert.deepEqual([...dtypes], ['BF16']);
  for (const step of m.slice(1)) {
    // After the first optimiser step the servers' bf16 weights differ from the trainer's fp32 ones:
    // visible, and small.
    assert.ok(
      step['rollout/logprob_diff'] > 1e-6 && step['rollout/logprob_diff'] < 0.1,
      `rollout/logprob_diff ${step['rollout/logprob_diff']}`,
    );
  }
});

test('rollout.async: step k+1 is generated on the weights before step k, and the lag is logged', async () => {
  const dir = tempDir('red-remote-async-');
  const cfg = path.join(dir, 'train.yaml');
  writeFileSync(
    cfg,
    `model: { path: ${tiny.model} }
engine: { backend: reference }
data: { train: ${tiny.train}, epochs: 1 }
rollout: { groupSize: 2, promptsPerStep: 2, maxTokens: 12, engine: remote, servers: [${a.url}, ${b.url}], syncDir: ${path.join(dir, 'sync')}, async: true, syncDtype: fp32 }
algorithm: { groupFilter: { enabled: false }, rolloutCorrection: { mode: tis }, entropyCoef: 1 }
optim: { lr: 3e-2 }
log: { progress: none }
`,
  );
  const out = path.join(dir, 'run');
  assert.equal(
    await runTrain({ config: cfg, out, method: 'grpo', sets: [], maxSteps: 3, resume: false }, createProgress('none')),
    3,
  );
  const m = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>);
  assert.equal(m[0]['rollout/version_lag'], undefined);
  assert.deepEqual(
    m.slice(1).map((x) => x['rollout/version_lag']),
    [1, 1],
  );
  // Step 1 sampled from its own π_old; steps 2 and 3 from the policy one update older (the entropy
  // bonus moves the weights even where every reward of the random model is 0).
  assert.ok(m[0]['rollout/logprob_diff'] < 1e-4);
  for (const x of m.slice(1))
    assert.ok(x['rollout/logprob_diff'] > 1e-3, `rollout/logprob_diff ${x['rollout/logprob_diff']}`);
});

test('samples from an older weight_version than the one synced are refused', async () => {
  const client = new RemoteRollouts({ servers: [a.url], api: 'sglang', maxAttempts: 2, timeoutS: 30 });
  const h = (await fetch(`${a.url}/health`).then((r) => r.json())) as { weight_version: string };
  client.expectedVersion = String(Number(h.weight_version) + 5);
  await assert.rejects(client.generate([[1, 2, 3]], { ...request, maxTokens: 2 }), /older than \d+ \(a stale policy\)/);
});

test('a server killed while it generates: the batch completes on the other', async () => {
  const extra = await startServer(tiny.model);
  const client = new RemoteRollouts({
    servers: [extra.url, a.url],
    api: 'openai',
    maxAttempts: 3,
    timeoutS: 120,
    log: () => {},
  });
  const prompts = Array.from({ length: 6 }, (_, i) => [10 + i, 20, 30]);
  const pending = client.generate(prompts, request);
  pending.catch(() => {}); // awaited below; a failure must not surface as an unhandled rejection first
  // Wait until the doomed server is generating, then kill it.
  for (;;) {
    const h = (await fetch(`${extra.url}/health`).then((r) => r.json())) as { running: number };
    if (h.running > 0) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  extra.child.kill('SIGKILL');
  const samples = await pending;
  assert.equal(samples.length, 6);
  for (const row of samples) {
    assert.equal(row.length, 4);
    for (const s of row) assert.equal(s.logprobs.length, s.ids.length);
  }
  await extra.stop();
});

test('a server that answers garbage: retried, then one clear error; with a good server beside it, the batch completes', async () => {
  let calls = 0;
  const garbage = createServer((req, res) => {
    if (req.url !== '/health') calls++;
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(req.url === '/health' ? '{}' : "Ceci n'est pas du JSON");
  });
  await new Promise<void>((r) => garbage.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(garbage.address() as AddressInfo).port}`;
  try {
    const alone = new RemoteRollouts({ servers: [url], api: 'openai', maxAttempts: 3, timeoutS: 10 });
    await alone.checkHealth();
    await assert.rejects(alone.generate([[1, 2, 3]], { ...request, maxTokens: 4 }), (err: Error) => {
      assert.match(
        err.message,
        /^rollout: prompt 0 failed after 3 attempt\(s\) \(rollout\.maxAttempts = 3\): .*not JSON/,
      );
      assert.ok(!err.message.includes('\n'));
      return true;
    });
    assert.equal(calls, 3);
    const mixed = new RemoteRollouts({ servers: [url, a.url], api: 'sglang', maxAttempts: 2, timeoutS: 30 });
    const rows = await mixed.generate(
      [
        [1, 2, 3],
        [4, 5, 6],
        [7, 8, 9],
      ],
      { ...request, maxTokens: 4 },
    );
    assert.equal(rows.flat().length, 12);
    // A port nobody listens on: one that was free a moment ago.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const closed = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
    await new Promise((r) => probe.close(r));
    const down = new RemoteRollouts({ servers: [closed, a.url], api: 'openai', maxAttempts: 1, timeoutS: 5 });
    await assert.rejects(down.checkHealth(), (err: Error) => {
      assert.equal(
        err.message,
        `rollout.servers: no healthy answer to GET /health from ${closed} (ECONNREFUSED); start them (red serve --model DIR --port N) or fix the URLs`,
      );
      return true;
    });
  } finally {
    garbage.close();
  }
});

test('a busy server (HTTP 503, Retry-After) is waited for and retried; a refused request (HTTP 400) stops at once', async () => {
  const seen: number[] = [];
  let refuse = false;
  // Busy twice, then a proxy to a real server; in refuse mode every request is a 400.
  const front = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    seen.push(performance.now());
    if (refuse) {
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"unknown field n"}');
    } else if (seen.length <= 2) {
      res.writeHead(503, { 'retry-after': '1' }).end('overloaded');
    } else {
      const r = await fetch(`${a.url}${req.url}`, { method: 'POST', body: Buffer.concat(chunks) });
      res.writeHead(r.status, { 'content-type': 'application/json' }).end(await r.text());
    }
  });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
  try {
    const busy = new RemoteRollouts({ servers: [url], api: 'openai', maxAttempts: 3, timeoutS: 30 });
    const rows = await busy.generate([[1, 2, 3]], { ...request, maxTokens: 4 });
    assert.equal(rows[0].length, 4);
    assert.equal(seen.length, 3);
    for (const i of [1, 2]) {
      const gap = seen[i] - seen[i - 1];
      assert.ok(gap >= 950, `try ${i + 1} came ${gap.toFixed(0)} ms after the busy answer; Retry-After asked 1 s`);
    }
    refuse = true;
    seen.length = 0;
    const refused = new RemoteRollouts({ servers: [url], api: 'openai', maxAttempts: 3, timeoutS: 30 });
    await assert.rejects(refused.generate([[1, 2, 3]], { ...request, maxTokens: 4 }), (err: Error) => {
      assert.equal(
        err.message,
        `rollout: ${url}/v1/completions refused the request (HTTP 400 {"error":"unknown field n"}); check that rollout.api (openai) is the API this server speaks`,
      );
      return true;
    });
    assert.equal(seen.length, 1, 'a refused request is not sent again');
  } finally {
    front.close();
  }
});

test('TIS weights: min(π_old/π_rollout, C) per online token, and the mismatch metrics', () => {
  const members = [
    {
      group: 0,
      promptIds: [1],
      responseIds: [5, 6, 7],
      isOffline: false,
      accuracy: 1,
      reward: 1,
      clipped: false,
      rolloutLogprobs: [-1, -2, -0.1],
    },
    { group: 0, promptIds: [1], responseIds: [8], isOffline: true, accuracy: 1, reward: 1, clipped: false },
  ];
  const old = new Float32Array([-0.5, -3, 0.9, -4]); // Δ = 0.5, −1, 1 (capped at 2); the trace keeps 1
  const { weights, metrics } = rolloutImportanceWeights(members, new Int32Array([0, 3, 4]), old, 2);
  const want = [Math.exp(0.5), Math.exp(-1), 2, 1];
  want.forEach((w, t) => assert.ok(Math.abs(weights![t] - w) < 1e-6, `token ${t}: ${weights![t]} vs ${w}`));
  assert.ok(Math.abs(metrics['rollout/logprob_diff'] - (0.5 + 1 + 1) / 3) < 1e-6);
  assert.ok(Math.abs(metrics['rollout/is_weight_mean'] - (Math.exp(0.5) + Math.exp(-1) + 2) / 3) < 1e-6);
});

test('rollout.engine remote without servers is a config error naming the key', () => {
  assert.throws(
    () => resolveTrainConfig({ model: { path: 'm' }, data: { train: 'd' }, rollout: { engine: 'remote' } }, 'x.yaml'),
    /rollout\.servers: must list at least one server URL when rollout\.engine is remote/,
  );
});
